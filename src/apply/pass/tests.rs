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

/// The calls of a pass after `table_call` on the scenario all-three-modes:
/// its host parts, in the order they must be made.
fn host_parts_after(table_call: &str) -> Vec<String> {
    [
        table_call,
        "sysctl net.ipv6.conf.eth0.accept_ra=2",
        "solicit eth0",
        "sysctl net.ipv6.conf.all.forwarding=1",
        "sysctl net.ipv6.conf.eth0.proxy_ndp=1",
        "routes 0",
        "proxies 1",
    ]
    .map(String::from)
    .to_vec()
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
    assert_eq!(k.calls, host_parts_after("replace dock6"));
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

// ---- apply_pass: the agent's path ------------------------------------------
//
// The agent keeps the plan itself and tells `apply_pass` what the table is
// to get; the conntrack deletes it defers to a thread of its own.

/// A pass to `next` from the table `last` as the agent makes it: element
/// changes when only elements differ, else the whole table.
fn change_to(last: &Table, next: &Table) -> TableChange {
    match diff(last, next) {
        TableDiff::Same => TableChange::Unchanged,
        TableDiff::Elements(changes) => TableChange::Elements {
            table: next.name.clone(),
            changes,
        },
        TableDiff::Structure => TableChange::Replace {
            table: next.clone(),
            since: None,
        },
    }
}

/// The mappings of `removed`, given twice and out of order (as stale flows
/// of an earlier pass and a new removal can overlap).
fn doubled(removed: &[DnatTarget]) -> Vec<DnatTarget> {
    let mut flows: Vec<DnatTarget> = removed.iter().rev().copied().collect();
    flows.extend(removed.iter().copied());
    flows
}

/// Two published mappings gone: the one of host port 8080 and another one.
fn two_mappings_gone(plan: &Plan) -> (Plan, Vec<DnatTarget>) {
    let mut next = without_port_8080(plan);
    if let Some(set) = next
        .ruleset
        .sets
        .iter_mut()
        .find(|s| s.name == MAP_DNAT_ANY)
    {
        set.elements.pop();
    }
    let removed = removed_dnat_targets(&plan.ruleset, &next.ruleset);
    assert_eq!(removed.len(), 2, "two mappings gone: {removed:?}");
    (next, removed)
}

#[test]
fn an_element_change_goes_in_as_one_element_batch_and_never_as_a_replace() {
    let plan = all_three_modes();
    let next = without_port_8080(&plan);
    let change = change_to(&plan.ruleset, &next.ruleset);
    assert!(
        matches!(&change, TableChange::Elements { changes, .. } if changes.len() == 1),
        "{change:?}"
    );
    let mut k = Recorder::default();
    let report = apply_pass(&mut k, &change, &HostState::of(&next), Vec::new(), true);
    assert!(report.is_complete(), "{:?}", report.failures());
    assert_eq!(report.table_action(), Some(TableAction::Updated(1)));
    assert_eq!(k.calls, host_parts_after("update dock6 1"));
}

#[test]
fn a_whole_table_change_is_one_replace_before_forwarding() {
    let plan = all_three_modes();
    let change = TableChange::Replace {
        table: plan.ruleset.clone(),
        since: None,
    };
    let mut k = Recorder::default();
    let report = apply_pass(&mut k, &change, &HostState::of(&plan), Vec::new(), true);
    assert!(report.is_complete(), "{:?}", report.failures());
    assert_eq!(report.table_action(), Some(TableAction::Replaced));
    assert_eq!(k.calls[0], "replace dock6");
    assert!(
        !k.calls.iter().any(|c| c.starts_with("update")),
        "{:?}",
        k.calls
    );
    let forwarding = k
        .calls
        .iter()
        .position(|c| c == "sysctl net.ipv6.conf.all.forwarding=1");
    assert!(
        forwarding.is_some_and(|at| at > 0),
        "forwarding after the replace: {:?}",
        k.calls
    );
}

#[test]
fn an_unchanged_table_is_not_sent_and_the_host_is_still_made_right() {
    let plan = all_three_modes();
    let mut k = Recorder::default();
    let change = change_to(&plan.ruleset, &plan.ruleset);
    let report = apply_pass(&mut k, &change, &HostState::of(&plan), Vec::new(), true);
    assert!(report.is_complete(), "{:?}", report.failures());
    assert_eq!(report.table_action(), Some(TableAction::Unchanged));
    assert!(
        !k.calls
            .iter()
            .any(|c| c.starts_with("update") || c.starts_with("replace")),
        "{:?}",
        k.calls
    );
    assert!(
        k.calls
            .contains(&"sysctl net.ipv6.conf.all.forwarding=1".to_string()),
        "{:?}",
        k.calls
    );
    assert_eq!(k.calls.last().map(String::as_str), Some("proxies 1"));
}

/// Someone else changed the table (an element dock6 removes is gone, say):
/// the element batch fails. The pass does not replace the table behind the
/// caller's back (the agent replaces it with the next pass, from its whole
/// plan), switches no forwarding on, and keeps the flows of the removed
/// mappings; the restoring pass puts the table in and only then deletes
/// them.
#[test]
fn a_table_changed_by_someone_else_is_restored_by_the_next_pass_and_its_flows_wait_for_it() {
    let plan = all_three_modes();
    let (next, removed) = two_mappings_gone(&plan);
    let host = HostState::of(&next);
    let change = change_to(&plan.ruleset, &next.ruleset);
    let mut k = failing(&["update"]);
    let report = apply_pass(&mut k, &change, &host, removed.clone(), true);
    assert_eq!(report.table_action(), None);
    assert!(
        !k.calls.iter().any(|c| c.starts_with("replace")),
        "the element batch failed: no replace in the same pass: {:?}",
        k.calls
    );
    assert!(
        !k.calls.iter().any(|c| c.contains("forwarding")),
        "{:?}",
        k.calls
    );
    assert!(k.flows.is_empty(), "no conntrack delete: {:?}", k.flows);
    assert!(
        matches!(report.conntrack, Some(Part::Skipped(_))),
        "{:?}",
        report.conntrack
    );
    assert_eq!(report.flow_targets, removed, "kept for the next pass");
    let failures = report.failures();
    assert!(
        failures[0].starts_with("table: nftables: update dock6"),
        "{failures:?}"
    );

    // The restore: the whole table, then the flows of the removed mappings.
    let mut k = Recorder::default();
    let restore = TableChange::Replace {
        table: next.ruleset.clone(),
        since: None,
    };
    let flows = report.flow_targets.clone();
    let report = apply_pass(&mut k, &restore, &host, flows, false);
    assert!(report.is_complete(), "{:?}", report.failures());
    assert_eq!(report.table_action(), Some(TableAction::Replaced));
    assert_eq!(k.calls.first().map(String::as_str), Some("replace dock6"));
    assert_eq!(k.calls.last().map(String::as_str), Some("conntrack 2"));
    assert_eq!(k.flows, [removed]);
}

/// The agent's passes defer the conntrack deletes: once the table is in,
/// the report hands every removed mapping back once (stale ones of an
/// earlier pass and new ones overlap), and the pass itself deletes nothing.
#[test]
fn deferred_flows_are_handed_back_once_each_when_the_table_is_in() {
    let plan = all_three_modes();
    let (next, removed) = two_mappings_gone(&plan);
    let change = change_to(&plan.ruleset, &next.ruleset);
    let mut k = Recorder::default();
    let report = apply_pass(
        &mut k,
        &change,
        &HostState::of(&next),
        doubled(&removed),
        true,
    );
    assert!(report.is_complete(), "{:?}", report.failures());
    assert!(report.conntrack.is_none(), "{:?}", report.conntrack);
    assert!(k.flows.is_empty(), "deferred: {:?}", k.flows);
    let mut want = removed.clone();
    want.sort();
    assert_eq!(report.flow_targets, want);
}

/// Without deferring (`dock6 apply`), the flows go after everything else,
/// in one call, each mapping once; a failed delete keeps them in the report.
#[test]
fn flows_are_deleted_once_each_after_the_table_and_kept_when_that_fails() {
    let plan = all_three_modes();
    let (next, removed) = two_mappings_gone(&plan);
    let change = change_to(&plan.ruleset, &next.ruleset);
    let mut want = removed.clone();
    want.sort();
    let mut k = Recorder::default();
    let report = apply_pass(
        &mut k,
        &change,
        &HostState::of(&next),
        doubled(&removed),
        false,
    );
    assert!(report.is_complete(), "{:?}", report.failures());
    assert_eq!(k.calls.first().map(String::as_str), Some("update dock6 2"));
    assert_eq!(k.calls.last().map(String::as_str), Some("conntrack 2"));
    assert_eq!(k.flows, [want.clone()]);

    let mut k = failing(&["conntrack"]);
    let report = apply_pass(
        &mut k,
        &change,
        &HostState::of(&next),
        doubled(&removed),
        false,
    );
    assert_eq!(report.table_action(), Some(TableAction::Updated(2)));
    assert!(
        report.failures()[0].starts_with("conntrack deletes:"),
        "{:?}",
        report.failures()
    );
    assert_eq!(report.flow_targets, want, "kept for the next pass");
}
