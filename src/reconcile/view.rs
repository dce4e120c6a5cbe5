//! dock6's view of Docker, kept up to date from full snapshots and from the
//! objects that events name.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use crate::snapshot::{Container, HostFacts, Network, Snapshot};
use crate::source::docker::Engine;

/// What the Docker watcher tells the reconcile loop.
#[derive(Debug, Clone)]
pub enum DockerUpdate {
    /// A full, successful snapshot: replaces the whole view.
    Full {
        networks: Vec<Network>,
        containers: Vec<Container>,
    },
    /// One container as inspected after an event; `None`: gone or stopped.
    Container {
        id: String,
        container: Option<Box<Container>>,
    },
    /// One network as inspected after an event; `None`: gone.
    Network {
        id: String,
        network: Option<Box<Network>>,
    },
    /// Docker is unreachable; the kernel keeps what it has.
    Lost,
    /// What `/info` said when Docker answered (again): whose IPv6 firewall it is depends on it.
    Engine(Engine),
}

/// Docker's networks and containers, each sorted by id, kept as the
/// planner's input itself: a pass lends it out with fresh host facts
/// ([`DockerView::snapshot`]) rather than copying thousands of containers.
#[derive(Debug, Default, Clone)]
pub struct DockerView {
    /// False until the first successful full snapshot: no plan is built before.
    pub synced: bool,
    state: Snapshot,
    /// Ids of the containers changed since the last [`DockerView::take_changed`].
    changed: BTreeSet<String>,
}

impl DockerView {
    /// Applies an update; returns whether the view changed.
    pub fn apply(&mut self, update: DockerUpdate) -> bool {
        match update {
            DockerUpdate::Full {
                mut networks,
                mut containers,
            } => {
                sort_dedup_by_id(&mut networks, |n| &n.id);
                sort_dedup_by_id(&mut containers, |c| &c.id);
                let before = self.changed.len();
                changed_ids(&self.state.containers, &containers, &mut self.changed);
                let changed =
                    !self.synced || networks != self.state.networks || self.changed.len() > before;
                self.state.networks = networks;
                self.state.containers = containers;
                self.synced = true;
                changed
            }
            DockerUpdate::Container { id, container } => {
                let changed = upsert(
                    &mut self.state.containers,
                    &id,
                    container.map(|c| *c),
                    |c| &c.id,
                );
                if changed {
                    self.changed.insert(id);
                }
                changed
            }
            DockerUpdate::Network { id, network } => {
                upsert(&mut self.state.networks, &id, network.map(|n| *n), |n| {
                    &n.id
                })
            }
            DockerUpdate::Lost | DockerUpdate::Engine(_) => false,
        }
    }

    /// The planner's input: the view with `host` as its host facts.
    pub fn snapshot(&mut self, host: HostFacts) -> &Snapshot {
        self.state.host = host;
        &self.state
    }

    pub fn container_count(&self) -> usize {
        self.state.containers.len()
    }

    /// The containers, sorted by id.
    pub fn containers(&self) -> &[Container] {
        &self.state.containers
    }

    /// The ids of the containers that changed (came, went or differ) since
    /// the last call: what the planner plans again.
    pub fn take_changed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }
}

/// Adds to `changed` the id of every container that differs between the
/// two id-sorted lists (in one, or in both but not equal).
fn changed_ids(old: &[Container], new: &[Container], changed: &mut BTreeSet<String>) {
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.id.cmp(&b.id),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                changed.insert(old[i].id.clone());
                i += 1;
            }
            Ordering::Greater => {
                changed.insert(new[j].id.clone());
                j += 1;
            }
            Ordering::Equal => {
                if old[i] != new[j] {
                    changed.insert(new[j].id.clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
}

/// Sorts by id; of two entries with the same id the last one stays (as a
/// map keyed by id would keep it).
fn sort_dedup_by_id<T>(items: &mut Vec<T>, id: impl Fn(&T) -> &String) {
    items.reverse();
    items.sort_by(|a, b| id(a).cmp(id(b)));
    items.dedup_by(|later, earlier| id(later) == id(earlier));
}

/// Puts `item` in place of the entry with `key` in the id-sorted `items`
/// (removes the entry for `None`); true when anything changed.
fn upsert<T: PartialEq>(
    items: &mut Vec<T>,
    key: &str,
    item: Option<T>,
    id: impl Fn(&T) -> &String,
) -> bool {
    let at = items.binary_search_by(|probe| id(probe).as_str().cmp(key));
    match (at, item) {
        (Ok(i), Some(item)) if items[i] == item => false,
        (Ok(i), Some(item)) => {
            items[i] = item;
            true
        }
        (Ok(i), None) => {
            items.remove(i);
            true
        }
        (Err(i), Some(item)) => {
            items.insert(i, item);
            true
        }
        (Err(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str) -> Container {
        Container {
            id: id.into(),
            name: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn events_update_only_what_they_name() {
        let mut view = DockerView::default();
        assert!(view.apply(DockerUpdate::Full {
            networks: vec![],
            containers: vec![container("a")]
        }));
        assert!(view.synced);
        assert!(!view.apply(DockerUpdate::Container {
            id: "a".into(),
            container: Some(Box::new(container("a")))
        }));
        assert!(view.apply(DockerUpdate::Container {
            id: "b".into(),
            container: Some(Box::new(container("b")))
        }));
        assert!(view.apply(DockerUpdate::Container {
            id: "a".into(),
            container: None
        }));
        assert!(!view.apply(DockerUpdate::Container {
            id: "a".into(),
            container: None
        }));
        assert_eq!(view.container_count(), 1);
        assert_eq!(
            view.take_changed(),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
        let mut renamed = container("b");
        renamed.name = "b2".into();
        assert!(view.apply(DockerUpdate::Full {
            networks: vec![],
            containers: vec![container("c"), renamed]
        }));
        assert_eq!(
            view.take_changed(),
            BTreeSet::from(["b".to_string(), "c".to_string()]),
            "a full snapshot names what differs from the view"
        );
        assert!(!view.apply(DockerUpdate::Full {
            networks: vec![],
            containers: vec![container("c"), {
                let mut b = container("b");
                b.name = "b2".into();
                b
            }]
        }));
        assert!(view.take_changed().is_empty());
        assert!(!view.apply(DockerUpdate::Lost));
        assert!(
            view.synced,
            "losing Docker keeps the view: the kernel keeps what it has"
        );
    }
}
