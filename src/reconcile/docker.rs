//! The Docker watcher: subscribe to events first, then take the full
//! snapshot, then follow the events by inspecting only what they name.
//! Docker down or restarting: log, back off (capped), reconnect with a fresh
//! client, never exit.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::view::DockerUpdate;
use crate::source::docker::{self, DockerError, DockerEvent};

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Capped exponential backoff.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_CAP);
        delay
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

/// Runs until the receiver is gone. `resync` asks for a full snapshot.
pub async fn watch(
    docker_host: Option<String>,
    tx: mpsc::Sender<DockerUpdate>,
    mut resync: mpsc::Receiver<()>,
) {
    let mut backoff = Backoff::default();
    loop {
        let result = session(docker_host.as_deref(), &tx, &mut resync, &mut backoff).await;
        if tx.is_closed() {
            return;
        }
        match result {
            Ok(()) => warn!("Docker event stream ended"),
            Err(e) => warn!("Docker: {e}"),
        }
        let _ = tx.send(DockerUpdate::Lost).await;
        let delay = backoff.next_delay();
        info!("reconnecting to Docker in {delay:?}; the kernel keeps its rules meanwhile");
        tokio::time::sleep(delay).await;
    }
}

async fn session(
    docker_host: Option<&str>,
    tx: &mpsc::Sender<DockerUpdate>,
    resync: &mut mpsc::Receiver<()>,
    backoff: &mut Backoff,
) -> Result<(), DockerError> {
    let client = docker::connect(docker_host).await?;
    // Subscribe first: events that happen while the snapshot is taken are
    // buffered by the stream and replayed afterwards (inspecting is idempotent).
    let mut events = Box::pin(docker::event_stream(&client));
    let mut internal = BTreeSet::new();
    let full = full_snapshot(&client, &mut internal).await?;
    if tx.send(full).await.is_err() {
        return Ok(());
    }
    backoff.reset();
    loop {
        let update = tokio::select! {
            event = events.next() => match event {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(event)) => inspect(&client, event, &mut internal).await?,
            },
            Some(()) = resync.recv() => full_snapshot(&client, &mut internal).await?,
        };
        if tx.send(update).await.is_err() {
            return Ok(());
        }
    }
}

/// A full snapshot; also refreshes the ids of the internal networks, which
/// container inspects need (the gateway network is never an internal one).
async fn full_snapshot(
    client: &bollard::Docker,
    internal: &mut BTreeSet<String>,
) -> Result<DockerUpdate, DockerError> {
    let state = docker::docker_snapshot(client).await?;
    info!(
        networks = state.networks.len(),
        containers = state.containers.len(),
        "Docker snapshot taken"
    );
    *internal = docker::internal_network_ids(&state.networks);
    Ok(DockerUpdate::Full {
        networks: state.networks,
        containers: state.containers,
    })
}

/// Inspects what the event names; network events keep `internal` current.
async fn inspect(
    client: &bollard::Docker,
    event: DockerEvent,
    internal: &mut BTreeSet<String>,
) -> Result<DockerUpdate, DockerError> {
    Ok(match event {
        DockerEvent::ContainerChanged { id } => {
            let container = docker::inspect_container(client, &id, internal)
                .await?
                .map(Box::new);
            DockerUpdate::Container { id, container }
        }
        DockerEvent::ContainerGone { id } => DockerUpdate::Container {
            id,
            container: None,
        },
        DockerEvent::NetworkChanged { id } => {
            let network = docker::inspect_network(client, &id).await?;
            internal.remove(&id);
            if network.as_ref().is_some_and(|n| n.internal) {
                internal.insert(id.clone());
            }
            DockerUpdate::Network {
                id,
                network: network.map(Box::new),
            }
        }
        DockerEvent::NetworkGone { id } => {
            internal.remove(&id);
            DockerUpdate::Network { id, network: None }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], BACKOFF_START);
        assert_eq!(delays[1], BACKOFF_START * 2);
        assert_eq!(*delays.last().unwrap(), BACKOFF_CAP);
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_START);
    }
}
