//! dock6's view of Docker, kept up to date from full snapshots and from the
//! objects that events name.

use std::collections::BTreeMap;

use crate::snapshot::{Container, HostFacts, Network, Snapshot};

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
}

#[derive(Debug, Default, Clone)]
pub struct DockerView {
    /// False until the first successful full snapshot: no plan is built before.
    pub synced: bool,
    networks: BTreeMap<String, Network>,
    containers: BTreeMap<String, Container>,
}

impl DockerView {
    /// Applies an update; returns whether the view changed.
    pub fn apply(&mut self, update: DockerUpdate) -> bool {
        match update {
            DockerUpdate::Full {
                networks,
                containers,
            } => {
                let networks: BTreeMap<_, _> =
                    networks.into_iter().map(|n| (n.id.clone(), n)).collect();
                let containers: BTreeMap<_, _> =
                    containers.into_iter().map(|c| (c.id.clone(), c)).collect();
                let changed =
                    !self.synced || networks != self.networks || containers != self.containers;
                self.networks = networks;
                self.containers = containers;
                self.synced = true;
                changed
            }
            DockerUpdate::Container { id, container } => match container {
                Some(c) => self.containers.insert(id, *c.clone()).as_ref() != Some(&*c),
                None => self.containers.remove(&id).is_some(),
            },
            DockerUpdate::Network { id, network } => match network {
                Some(n) => self.networks.insert(id, *n.clone()).as_ref() != Some(&*n),
                None => self.networks.remove(&id).is_some(),
            },
            DockerUpdate::Lost => false,
        }
    }

    pub fn snapshot(&self, host: HostFacts) -> Snapshot {
        Snapshot {
            host,
            networks: self.networks.values().cloned().collect(),
            containers: self.containers.values().cloned().collect(),
        }
    }

    pub fn container_count(&self) -> usize {
        self.containers.len()
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
        assert!(!view.apply(DockerUpdate::Lost));
        assert!(
            view.synced,
            "losing Docker keeps the view: the kernel keeps what it has"
        );
    }
}
