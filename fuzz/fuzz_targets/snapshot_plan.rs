//! Snapshot JSON through the planner: any snapshot that parses gives a plan
//! that keeps the planner's invariants, and its text form renders. Planned
//! twice: with the default policy, and with every network's mode (and the
//! uplink) forced as a config file would, so that the config-mode paths
//! (ndp-proxy off-link, routed on a ULA) are fuzzed as well.

#![no_main]

use std::path::Path;

use dock6::plan::{Mode, Policy, check_invariants, plan};
use dock6::snapshot::Snapshot;
use dock6::source::parse_snapshot;
use libfuzzer_sys::fuzz_target;

const MODES: [Mode; 6] = [
    Mode::Nat66,
    Mode::NdpProxy,
    Mode::Routed,
    Mode::Nptv6,
    Mode::Off,
    Mode::Unfiltered,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(snapshot) = parse_snapshot(text, Path::new("fuzz.json")) else {
        return;
    };
    check(&Policy::default(), &snapshot);
    check(&forced(&snapshot, data.len()), &snapshot);
});

fn check(policy: &Policy, snapshot: &Snapshot) {
    let plan = plan(policy, snapshot);
    let violations = check_invariants(snapshot, &plan);
    assert!(
        violations.is_empty(),
        "invariants violated (policy {policy:?}):\n{}",
        violations.join("\n")
    );
    let _ = plan.to_string();
}

/// A config-like policy derived from the input: each network a mode picked
/// from its name and `salt` (the input's length, so that a mutation of
/// whitespace alone tries other modes), the first interface as the uplink
/// on odd salts.
fn forced(snapshot: &Snapshot, salt: usize) -> Policy {
    let network_modes = snapshot
        .networks
        .iter()
        .map(|n| {
            let sum = n.name.bytes().map(usize::from).sum::<usize>();
            (n.name.clone(), MODES[(sum + salt) % MODES.len()])
        })
        .collect();
    Policy {
        uplink: (salt % 2 == 1)
            .then(|| snapshot.host.interfaces.first().map(|i| i.name.clone()))
            .flatten(),
        network_modes,
        ..Policy::default()
    }
}
