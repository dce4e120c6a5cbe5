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

pub fn diff(old: &Table, new: &Table) -> TableDiff {
    let same_shape = old.name == new.name
        && old.chains == new.chains
        && old.sets.len() == new.sets.len()
        && old
            .sets
            .iter()
            .zip(&new.sets)
            .all(|(a, b)| a.name == b.name && a.key == b.key && a.data == b.data);
    if !same_shape {
        return TableDiff::Structure;
    }
    let mut removes = Vec::new();
    let mut adds = Vec::new();
    for (a, b) in old.sets.iter().zip(&new.sets) {
        let before: BTreeSet<&Element> = a.elements.iter().collect();
        let after: BTreeSet<&Element> = b.elements.iter().collect();
        removes.extend(before.difference(&after).map(|e| ElementChange::Remove {
            set: a.name.clone(),
            element: (*e).clone(),
        }));
        adds.extend(after.difference(&before).map(|e| ElementChange::Add {
            set: b.name.clone(),
            element: (*e).clone(),
        }));
    }
    if removes.is_empty() && adds.is_empty() {
        return TableDiff::Same;
    }
    removes.extend(adds);
    TableDiff::Elements(removes)
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
}
