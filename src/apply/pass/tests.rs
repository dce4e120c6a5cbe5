use super::*;
use crate::apply::fake::Recorder;
use crate::nft::Value;
use crate::plan::MAP_DNAT_ANY;
use crate::snapshot::Snapshot;

pub(crate) fn all_three_modes() -> Plan {
    let text = include_str!("../../../rules/all-three-modes/snapshot.json");
    let snapshot: Snapshot = serde_json::from_str(text).expect("bundled scenario parses");
    crate::plan::plan(&crate::plan::Policy::default(), &snapshot)
}

/// The plan with one published mapping (host port 8080) gone.
fn without_port_8080(plan: &Plan) -> Plan {
    let mut next = plan.clone();
    if let Some(set) = next
        .ruleset
        .sets
        .iter_mut()
        .find(|s| s.name == MAP_DNAT_ANY)
    {
        set.elements
            .retain(|e| e.key.get(1) != Some(&Value::Port(8080)));
    }
    next
}

fn replace() -> Previous<'static> {
    Previous {
        replace: true,
        ..Default::default()
    }
}

fn after(table: &Table, replace: bool) -> Previous<'_> {
    Previous {
        table: Some(table),
        replace,
        ..Default::default()
    }
}

fn failing(prefixes: &[&str]) -> Recorder {
    Recorder {
        fail: prefixes.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn filtering_goes_in_before_forwarding_and_accept_ra_before_forwarding() {
    let mut k = Recorder::default();
    let report = apply_plan(&mut k, &all_three_modes(), replace());
    assert!(report.is_complete(), "{:?}", report.failures());
    assert_eq!(
        k.calls,
        [
            "replace dock6",
            "sysctl net.ipv6.conf.eth0.accept_ra=2",
            "solicit eth0",
            "sysctl net.ipv6.conf.all.forwarding=1",
            "sysctl net.ipv6.conf.eth0.proxy_ndp=1",
            "routes 0",
            "proxies 1",
        ]
    );
}

#[test]
fn a_failed_table_is_never_followed_by_forwarding_but_the_rest_runs() {
    let plan = all_three_modes();
    let mut k = failing(&["replace"]);
    let report = apply_plan(
        &mut k,
        &without_port_8080(&plan),
        after(&plan.ruleset, true),
    );
    assert!(
        !k.calls.iter().any(|c| c.contains("forwarding")),
        "{:?}",
        k.calls
    );
    assert!(
        k.calls
            .contains(&"sysctl net.ipv6.conf.eth0.proxy_ndp=1".to_string())
    );
    assert!(k.calls.contains(&"proxies 1".to_string()));
    assert!(
        !k.calls.iter().any(|c| c.starts_with("conntrack")),
        "old mappings are still in: deleting their flows is pointless"
    );
    let failures = report.failures();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(
        failures[0].starts_with("table: nftables: replace dock6"),
        "{failures:?}"
    );
    assert!(
        failures[1].contains("all.forwarding: skipped: the table is not in"),
        "{failures:?}"
    );
    assert!(failures[2].starts_with("conntrack deletes: skipped"));
}

#[test]
fn a_failed_accept_ra_skips_forwarding_only() {
    let mut k = failing(&["sysctl net.ipv6.conf.eth0.accept_ra"]);
    let report = apply_plan(&mut k, &all_three_modes(), replace());
    assert_eq!(
        k.calls,
        [
            "replace dock6",
            "sysctl net.ipv6.conf.eth0.accept_ra=2",
            "sysctl net.ipv6.conf.eth0.proxy_ndp=1",
            "routes 0",
            "proxies 1",
        ]
    );
    let failures = report.failures();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("eth0.accept_ra"), "{failures:?}");
    assert!(failures[1].contains("accept_ra failed, so forwarding is not switched on"));
}

#[test]
fn a_failed_proxy_ndp_sysctl_skips_neither_proxies_nor_conntrack() {
    let plan = all_three_modes();
    let mut k = failing(&["sysctl net.ipv6.conf.eth0.proxy_ndp"]);
    let report = apply_plan(
        &mut k,
        &without_port_8080(&plan),
        after(&plan.ruleset, false),
    );
    assert_eq!(
        k.calls,
        [
            "update dock6 1",
            "sysctl net.ipv6.conf.eth0.accept_ra=2",
            "solicit eth0",
            "sysctl net.ipv6.conf.all.forwarding=1",
            "sysctl net.ipv6.conf.eth0.proxy_ndp=1",
            "routes 0",
            "proxies 1",
            "conntrack 1",
        ]
    );
    let failures = report.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("eth0.proxy_ndp"), "{failures:?}");
}

#[test]
fn failed_proxies_and_conntrack_are_reported_each() {
    let plan = all_three_modes();
    let mut k = failing(&["proxies", "conntrack"]);
    let report = apply_plan(
        &mut k,
        &without_port_8080(&plan),
        after(&plan.ruleset, false),
    );
    let failures = report.failures();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].starts_with("proxy-NDP entries: nftables: proxies 1"),
        "{failures:?}"
    );
    assert!(
        failures[1].starts_with("conntrack deletes: nftables: conntrack 1"),
        "{failures:?}"
    );
    assert_eq!(report.table_action(), Some(TableAction::Updated(1)));
}

#[test]
fn a_companion_pass_leaves_the_table_alone() {
    let mut k = Recorder::default();
    let report = apply_companion(&mut k, &HostState::of(&all_three_modes()));
    assert!(report.is_complete());
    assert!(report.table.is_none());
    assert!(
        k.calls.iter().all(|c| !c.starts_with("replace")),
        "{:?}",
        k.calls
    );
    assert!(
        k.calls
            .contains(&"sysctl net.ipv6.conf.all.forwarding=1".to_string())
    );
}

#[test]
fn a_plan_differing_in_elements_only_sends_element_changes() {
    let mut k = Recorder::default();
    let plan = all_three_modes();
    let report = apply_plan(&mut k, &plan, after(&plan.ruleset, false));
    assert_eq!(report.table_action(), Some(TableAction::Unchanged));
    let mut previous = plan.ruleset.clone();
    previous.sets.iter_mut().for_each(|s| s.elements.clear());
    let report = apply_plan(&mut k, &plan, after(&previous, false));
    assert_eq!(
        report.table_action(),
        Some(TableAction::Updated(plan.ruleset.element_count()))
    );
    assert!(
        k.calls.iter().all(|c| !c.starts_with("replace")),
        "{:?}",
        k.calls
    );
}

#[test]
fn a_failed_element_batch_falls_back_to_a_replace() {
    let plan = all_three_modes();
    let mut k = failing(&["update"]);
    let report = apply_plan(
        &mut k,
        &without_port_8080(&plan),
        after(&plan.ruleset, false),
    );
    assert_eq!(report.table_action(), Some(TableAction::Replaced));
    assert_eq!(&k.calls[..2], ["update dock6 1", "replace dock6"]);
}

#[test]
fn flows_whose_delete_failed_are_deleted_at_the_next_apply() {
    let plan = all_three_modes();
    let next = without_port_8080(&plan);
    let mut k = failing(&["conntrack"]);
    let report = apply_plan(&mut k, &next, after(&plan.ruleset, false));
    assert_eq!(report.flow_targets.len(), 1);
    assert!(!report.is_complete());
    // The next pass: the table is the same, the stale flows are still deleted.
    let mut k = Recorder::default();
    let previous = Previous {
        table: Some(&next.ruleset),
        replace: false,
        stale_flows: &report.flow_targets,
        ..Default::default()
    };
    let retry = apply_plan(&mut k, &next, previous);
    assert!(retry.is_complete(), "{:?}", retry.failures());
    assert_eq!(retry.table_action(), Some(TableAction::Unchanged));
    assert_eq!(k.calls.last().map(String::as_str), Some("conntrack 1"));
}

#[test]
fn forwarding_dock6_turns_on_is_recorded_before_and_never_turned_on_unrecorded() {
    let text = include_str!("../../../rules/all-three-modes/snapshot.json");
    let mut snapshot: Snapshot = serde_json::from_str(text).expect("bundled scenario parses");
    snapshot.host.forwarding = Some(0);
    let plan = crate::plan::plan(&crate::plan::Policy::default(), &snapshot);
    let forwarding = "sysctl net.ipv6.conf.all.forwarding=1";

    let mut k = Recorder::default();
    assert!(apply_plan(&mut k, &plan, replace()).is_complete());
    let at = |calls: &[String], call: &str| calls.iter().position(|c| c == call);
    let recorded = at(&k.calls, "remember forwarding").expect("recorded");
    assert!(Some(recorded) < at(&k.calls, forwarding), "{:?}", k.calls);

    let mut k = failing(&["remember forwarding"]);
    let report = apply_plan(&mut k, &plan, replace());
    assert_eq!(at(&k.calls, forwarding), None, "{:?}", k.calls);
    assert!(
        report.failures().iter().any(|f| f.contains("remember")),
        "{:?}",
        report.failures()
    );

    // Control: forwarding the operator's (the scenario says nothing of it) is not recorded.
    let mut k = Recorder::default();
    apply_plan(&mut k, &all_three_modes(), replace());
    assert!(at(&k.calls, forwarding).is_some(), "{:?}", k.calls);
    assert_eq!(at(&k.calls, "remember forwarding"), None, "{:?}", k.calls);
}
