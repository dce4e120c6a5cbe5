//! Snapshot JSON through the planner: any snapshot that parses gives a plan
//! that keeps the planner's invariants, and its text form renders.

#![no_main]

use std::path::Path;

use dock6::plan::{Policy, check_invariants, plan};
use dock6::source::parse_snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(snapshot) = parse_snapshot(text, Path::new("fuzz.json")) else {
        return;
    };
    let plan = plan(&Policy::default(), &snapshot);
    let violations = check_invariants(&snapshot, &plan);
    assert!(
        violations.is_empty(),
        "invariants violated:\n{}",
        violations.join("\n")
    );
    let _ = plan.to_string();
});
