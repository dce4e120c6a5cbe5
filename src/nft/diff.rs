//! What it takes to go from one table to another: nothing, element updates,
//! or a whole-table replace (when sets or chains differ).

use std::collections::BTreeSet;

use super::{Element, Table};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ElementChange {
    Add { set: String, element: Element },
    Remove { set: String, element: Element },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableDiff {
    Same,
    /// Removals first, then additions (a map entry whose data changed is
    /// removed and added again), to go in one batch.
    Elements(Vec<ElementChange>),
    /// Sets' types or chains differ: replace the whole table.
    Structure,
}

/// Same name, chains and sets (by name and type): only elements may differ.
pub fn same_shape(old: &Table, new: &Table) -> bool {
    old.name == new.name
        && old.chains == new.chains
        && old.sets.len() == new.sets.len()
        && old
            .sets
            .iter()
            .zip(&new.sets)
            .all(|(a, b)| a.name == b.name && a.key == b.key && a.data == b.data)
}

pub fn diff(old: &Table, new: &Table) -> TableDiff {
    if !same_shape(old, new) {
        return TableDiff::Structure;
    }
    let mut removes = Vec::new();
    let mut adds = Vec::new();
    for (a, b) in old.sets.iter().zip(&new.sets) {
        let (gone, came) = element_difference(&a.elements, &b.elements);
        removes.extend(gone.into_iter().map(|e| ElementChange::Remove {
            set: a.name.clone(),
            element: e.clone(),
        }));
        adds.extend(came.into_iter().map(|e| ElementChange::Add {
            set: b.name.clone(),
            element: e.clone(),
        }));
    }
    if removes.is_empty() && adds.is_empty() {
        return TableDiff::Same;
    }
    removes.extend(adds);
    TableDiff::Elements(removes)
}

/// The elements only in `old` and those only in `new`, each in order. The
/// planner emits every set sorted, so this is one merge pass (a pass with
/// 100,000 elements and one change costs no allocation per element); other
/// input falls back to ordered sets.
fn element_difference<'a>(
    old: &'a [Element],
    new: &'a [Element],
) -> (Vec<&'a Element>, Vec<&'a Element>) {
    let strictly_sorted = |v: &[Element]| v.windows(2).all(|w| w[0] < w[1]);
    if !strictly_sorted(old) || !strictly_sorted(new) {
        let before: BTreeSet<&Element> = old.iter().collect();
        let after: BTreeSet<&Element> = new.iter().collect();
        return (
            before.difference(&after).copied().collect(),
            after.difference(&before).copied().collect(),
        );
    }
    let (mut gone, mut came) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        match old[i].cmp(&new[j]) {
            std::cmp::Ordering::Less => {
                gone.push(&old[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                came.push(&new[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    gone.extend(&old[i..]);
    came.extend(&new[j..]);
    (gone, came)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{KeyType, L4Proto, Set, Value};

    fn table(elements: &[(u16, &str)]) -> Table {
        Table {
            name: "dock6".into(),
            sets: vec![Set {
                name: "dnat_any".into(),
                key: vec![KeyType::InetProto, KeyType::InetService],
                data: vec![KeyType::Ipv6Addr, KeyType::InetService],
                elements: elements
                    .iter()
                    .map(|(port, to)| Element {
                        key: vec![Value::Proto(L4Proto::Tcp), Value::Port(*port)],
                        data: vec![Value::Addr(to.parse().unwrap()), Value::Port(80)],
                    })
                    .collect(),
            }],
            chains: vec![],
        }
    }

    #[test]
    fn same_elements_need_nothing() {
        assert_eq!(
            diff(&table(&[(80, "fd00::2")]), &table(&[(80, "fd00::2")])),
            TableDiff::Same
        );
    }

    #[test]
    fn changed_map_data_is_removed_then_added() {
        let d = diff(
            &table(&[(80, "fd00::2"), (81, "fd00::3")]),
            &table(&[(80, "fd00::4"), (81, "fd00::3")]),
        );
        let TableDiff::Elements(changes) = d else {
            panic!("expected element changes, got {d:?}")
        };
        assert_eq!(changes.len(), 2);
        assert!(matches!(changes[0], ElementChange::Remove { .. }));
        assert!(matches!(changes[1], ElementChange::Add { .. }));
    }

    #[test]
    fn a_new_set_type_is_a_structure_change() {
        let mut other = table(&[]);
        other.sets[0].data = vec![KeyType::Ipv6Addr];
        assert_eq!(diff(&table(&[]), &other), TableDiff::Structure);
    }

    /// The merge over sorted sets and the fallback for unsorted ones agree.
    #[test]
    fn sorted_and_unsorted_sets_give_the_same_changes() {
        let old = [
            (80, "fd00::2"),
            (81, "fd00::3"),
            (82, "fd00::4"),
            (90, "fd00::9"),
        ];
        let new = [
            (79, "fd00::1"),
            (81, "fd00::3"),
            (82, "fd00::5"),
            (91, "fd00::9"),
        ];
        let sorted = diff(&table(&old), &table(&new));
        let (mut old_rev, mut new_rev) = (old.to_vec(), new.to_vec());
        old_rev.reverse();
        new_rev.reverse();
        let unsorted = diff(&table(&old_rev), &table(&new_rev));
        assert_eq!(sorted, unsorted);
        let TableDiff::Elements(changes) = sorted else {
            panic!("expected element changes, got {sorted:?}")
        };
        let count = |remove: bool| {
            changes
                .iter()
                .filter(|c| matches!(c, ElementChange::Remove { .. }) == remove)
                .count()
        };
        assert_eq!((count(true), count(false)), (3, 3));
    }
}
