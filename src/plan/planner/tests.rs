use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::nft::ElementChange;
use crate::plan::{plan, removed_dnat_targets};
use crate::snapshot::PortBinding;

/// A golden scenario as the agent would run it: its name, the policy of
/// its own `dock6.toml` (the default one without), and its snapshot.
pub(crate) struct Scenario {
    pub name: String,
    pub policy: Policy,
    pub snapshot: Snapshot,
}

/// The golden scenarios, each with its `dock6.toml` when it has one (each
/// container once, sorted by id, as the agent's view holds them).
pub(crate) fn scenarios() -> Vec<Scenario> {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&rules).unwrap() {
        let dir = dir.unwrap().path();
        let file = dir.join("snapshot.json");
        if !file.exists() {
            continue;
        }
        let mut snapshot = crate::source::load_snapshot(&file).unwrap();
        snapshot.containers.sort_by(|a, b| a.id.cmp(&b.id));
        snapshot.containers.dedup_by(|a, b| a.id == b.id);
        let config = dir.join("dock6.toml");
        let policy = match config.exists() {
            true => {
                crate::config::Config::load(Some(&config))
                    .unwrap_or_else(|e| panic!("{}: {e}", config.display()))
                    .policy
            }
            false => Policy::default(),
        };
        assert!(
            !config.exists() || policy != Policy::default(),
            "{}: its dock6.toml changes nothing",
            dir.display()
        );
        out.push(Scenario {
            name: dir.display().to_string(),
            policy,
            snapshot,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() > 10, "the golden scenarios are found");
    assert!(
        out.iter().any(|s| s.policy != Policy::default()),
        "some scenarios have a dock6.toml of their own"
    );
    out
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// `container` changed the way Docker changes containers: renamed (its
/// claims then rank elsewhere), a port published more or less, sealed,
/// moved onto another container's host port, or given another
/// container's labels (its egress address, say).
fn variant(container: &Container, other: &Container, which: usize) -> Container {
    let mut c = container.clone();
    match which {
        0 => c.name = format!("{}-renamed", c.name),
        1 => {
            c.ports.insert(
                "9999/tcp".into(),
                Some(vec![PortBinding {
                    host_ip: Default::default(),
                    host_port: "9999".into(),
                }]),
            );
        }
        2 => {
            c.labels.insert("dock6.expose".into(), "false".into());
        }
        3 => c.ports = other.ports.clone(),
        4 => c.labels = other.labels.clone(),
        _ => {
            c.ports.clear();
        }
    }
    c
}

/// Applies `changes` to `table` as the kernel would.
fn apply_changes(table: &mut Table, changes: &[ElementChange]) {
    for change in changes {
        let (set, element, add) = match change {
            ElementChange::Add { set, element } => (set, element, true),
            ElementChange::Remove { set, element } => (set, element, false),
        };
        let set = table
            .sets
            .iter_mut()
            .find(|s| &s.name == set)
            .unwrap_or_else(|| panic!("a change names set {set}, which the table lacks"));
        let at = set.elements.iter().position(|e| e == element);
        match (add, at) {
            (true, None) => set.elements.push(element.clone()),
            (false, Some(i)) => {
                set.elements.remove(i);
            }
            (true, Some(_)) => panic!("{element:?} added to {} twice", set.name),
            (false, None) => panic!("{element:?} removed from {}, which lacks it", set.name),
        }
    }
    for set in &mut table.sets {
        set.elements.sort();
    }
}

/// From any start, under the scenario's own configuration, any sequence of
/// container changes (and one change of the host facts every part reads,
/// and a reload that swaps the scenario's configuration for the default
/// one and back) ends where planning the snapshot from scratch does; each
/// update's element changes lead exactly from the old table to the new
/// one, and its removed mappings are those the tables lost.
#[test]
fn updates_end_where_planning_from_scratch_does() {
    for Scenario {
        name,
        policy: own,
        snapshot: full,
    } in scenarios()
    {
        // A reload (SIGHUP) plans the same view under the other policy.
        let policies = [own, Policy::default()];
        let mut reloaded = false;
        let policy = &policies[0];
        let mut random = Random(0x9e3779b97f4a7c15);
        let all = full.containers.clone();
        let mut snapshot = full.clone();
        snapshot.containers.retain(|_| random.below(2) == 0);
        let mut planner = Planner::default();
        planner.update(policy, &snapshot, None);
        assert_eq!(planner.plan(), plan(policy, &snapshot), "{name}: start");
        for step in 0..60 {
            let before = planner.table();
            let mut changed = BTreeSet::new();
            let mut host_changed = false;
            match random.below(9) {
                8 => reloaded = !reloaded,
                // The host: a neighbour appears on (or leaves) the uplink
                // at a container's address.
                0 => {
                    host_changed = true;
                    let address = all
                        .iter()
                        .flat_map(|c| c.networks.values())
                        .find_map(|e| e.ipv6_address);
                    if let (Some(a), Some(i)) = (address, snapshot.host.interfaces.first_mut()) {
                        match i.neighbours.contains(&a) {
                            true => i.neighbours.retain(|n| *n != a),
                            false => i.neighbours.push(a),
                        }
                    }
                }
                _ if all.is_empty() => continue,
                kind => {
                    let c = &all[random.below(all.len())];
                    let other = &all[random.below(all.len())];
                    changed.insert(c.id.clone());
                    let at = snapshot.containers.binary_search_by(|x| x.id.cmp(&c.id));
                    match (kind, at) {
                        (1 | 2, Ok(i)) => {
                            snapshot.containers.remove(i);
                        }
                        (1 | 2, Err(i)) => snapshot.containers.insert(i, c.clone()),
                        (_, Ok(i)) => {
                            snapshot.containers[i] = variant(c, other, random.below(6));
                        }
                        (_, Err(i)) => {
                            snapshot
                                .containers
                                .insert(i, variant(c, other, random.below(6)));
                        }
                    }
                }
            }
            let policy = &policies[usize::from(reloaded)];
            let update = planner.update(policy, &snapshot, Some(&changed));
            let expected = plan(policy, &snapshot);
            let what = format!(
                "{name}, step {step} (host changed: {host_changed}, default config: {reloaded})"
            );
            assert_eq!(planner.plan(), expected, "{what}: the plan");
            if !update.shape_changed {
                let mut table = before.clone();
                apply_changes(&mut table, &update.changes.into_batch());
                assert_eq!(table, expected.ruleset, "{what}: the element changes");
            }
            assert_eq!(
                update.removed_dnat,
                removed_dnat_targets(&before, &expected.ruleset),
                "{what}: removed mappings"
            );
        }
    }
}

/// One more container among many: a few element changes, one part planned.
#[test]
fn one_container_more_is_planned_alone() {
    let Scenario {
        policy,
        snapshot: full,
        ..
    } = scenarios()
        .into_iter()
        .find(|s| s.name.ends_with("nat66-published-ports"))
        .expect("the nat66-published-ports scenario");
    let mut snapshot = full.clone();
    let last = snapshot.containers.pop().expect("a container");
    let mut planner = Planner::default();
    planner.update(&policy, &snapshot, None);
    let at = snapshot
        .containers
        .binary_search_by(|c| c.id.cmp(&last.id))
        .unwrap_err();
    snapshot.containers.insert(at, last.clone());
    let update = planner.update(&policy, &snapshot, Some(&BTreeSet::from([last.id.clone()])));
    assert_eq!(update.replanned, 1);
    assert!(!update.shape_changed);
    assert!(!update.changes.is_empty(), "its ports are added");
    let batch = update.changes.into_batch();
    assert!(
        batch.iter().all(|c| matches!(c, ElementChange::Add { .. })),
        "{batch:?}"
    );
    assert_eq!(planner.plan(), plan(&policy, &snapshot));
}

/// Nothing changed: nothing to do, and no part is planned again.
#[test]
fn an_update_without_changes_changes_nothing() {
    for Scenario {
        name,
        policy,
        snapshot,
    } in scenarios()
    {
        let mut planner = Planner::default();
        planner.update(&policy, &snapshot, None);
        let update = planner.update(&policy, &snapshot, Some(&BTreeSet::new()));
        assert!(update.changes.is_empty(), "{name}");
        assert!(!update.shape_changed, "{name}");
        assert_eq!(update.replanned, 0, "{name}");
        let again = planner.update(&policy, &snapshot, None);
        assert!(
            again.changes.is_empty(),
            "{name}: a full update of the same"
        );
        assert_eq!(again.replanned, 0, "{name}: no part differs");
    }
}
