//! dock6's view of Docker, kept up to date from full snapshots and from the
//! objects that events name.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

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
    /// A container Docker created and is about to start, with the host
    /// ports it is to publish (see `Snapshot::starting`).
    Starting(Box<Container>),
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

/// How long the ports of a container being started are refused at most: one
/// created and never started, or whose start failed, must not keep them.
/// Docker's start takes well under a second on an idle host, seconds on a
/// busy one.
pub const STARTING_HOLD: Duration = Duration::from_secs(30);

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
    /// Until when each container of `state.starting` stays there.
    starting_until: BTreeMap<String, Instant>,
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
                let running: Vec<String> = self
                    .starting_until
                    .keys()
                    .filter(|id| self.is_running(id))
                    .cloned()
                    .collect();
                for id in &running {
                    self.not_starting(id);
                }
                changed || !running.is_empty()
            }
            DockerUpdate::Starting(container) => self.starting(*container, Instant::now()),
            DockerUpdate::Container { id, container } => {
                let started = self.not_starting(&id);
                let changed = upsert(
                    &mut self.state.containers,
                    &id,
                    container.map(|c| *c),
                    |c| &c.id,
                );
                if changed {
                    self.changed.insert(id);
                }
                changed || started
            }
            DockerUpdate::Network { id, network } => {
                upsert(&mut self.state.networks, &id, network.map(|n| *n), |n| {
                    &n.id
                })
            }
            DockerUpdate::Lost | DockerUpdate::Engine(_) => false,
        }
    }

    /// A container being started, until `now` + [`STARTING_HOLD`] or until
    /// Docker says more of it; nothing if it runs already (an inspect that
    /// came after its start).
    fn starting(&mut self, container: Container, now: Instant) -> bool {
        if self.is_running(&container.id) {
            return false;
        }
        let id = container.id.clone();
        self.starting_until.insert(id.clone(), now + STARTING_HOLD);
        upsert(&mut self.state.starting, &id, Some(container), |c| &c.id)
    }

    /// Forgets container `id` as being started; true when it was.
    fn not_starting(&mut self, id: &str) -> bool {
        self.starting_until.remove(id);
        upsert(&mut self.state.starting, id, None, |c| &c.id)
    }

    fn is_running(&self, id: &str) -> bool {
        self.state
            .containers
            .binary_search_by(|c| c.id.as_str().cmp(id))
            .is_ok()
    }

    /// Forgets the containers being started whose time is over at `now`;
    /// true when there were any.
    pub fn expire_starting(&mut self, now: Instant) -> bool {
        let over: Vec<String> = self
            .starting_until
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &over {
            self.not_starting(id);
        }
        !over.is_empty()
    }

    /// When the first container being started is to be forgotten.
    pub fn starting_deadline(&self) -> Option<Instant> {
        self.starting_until.values().min().copied()
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

    /// A container being started is in the planner's input until it runs,
    /// goes, or its time is over; one that already runs never is.
    #[test]
    fn a_starting_container_lasts_until_docker_says_more_or_its_time_is_over() {
        let mut view = DockerView::default();
        view.apply(DockerUpdate::Full {
            networks: vec![],
            containers: vec![container("running")],
        });
        let t0 = Instant::now();
        assert!(!view.starting(container("running"), t0), "runs already");
        assert!(view.starting(container("a"), t0));
        assert!(view.starting(container("b"), t0 + Duration::from_secs(1)));
        let ids = |v: &mut DockerView| -> Vec<String> {
            let s = v.snapshot(HostFacts::default());
            s.starting.iter().map(|c| c.id.clone()).collect()
        };
        assert_eq!(ids(&mut view), ["a", "b"]);
        assert_eq!(view.starting_deadline(), Some(t0 + STARTING_HOLD));

        // a runs: Docker's word replaces the guess.
        assert!(view.apply(DockerUpdate::Container {
            id: "a".into(),
            container: Some(Box::new(container("a")))
        }));
        assert_eq!(ids(&mut view), ["b"]);
        assert_eq!(view.container_count(), 2);
        assert!(view.take_changed().contains("a"));

        // b is never started: forgotten once its time is over, not before.
        assert!(!view.expire_starting(t0 + STARTING_HOLD));
        assert_eq!(ids(&mut view), ["b"]);
        assert!(view.expire_starting(t0 + STARTING_HOLD + Duration::from_secs(1)));
        assert!(ids(&mut view).is_empty());
        assert_eq!(view.starting_deadline(), None);

        // c goes (destroyed before it ran), and a full snapshot drops one that runs.
        view.starting(container("c"), t0);
        view.starting(container("d"), t0);
        assert!(view.apply(DockerUpdate::Container {
            id: "c".into(),
            container: None
        }));
        assert!(view.apply(DockerUpdate::Full {
            networks: vec![],
            containers: vec![container("a"), container("d"), container("running")],
        }));
        assert!(ids(&mut view).is_empty());
    }
}
