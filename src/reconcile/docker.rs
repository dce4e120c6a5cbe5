//! The Docker watcher: subscribe to events first, then take the full
//! snapshot, then follow the events by inspecting only what they name.
//! Docker down or restarting: log, back off (capped), reconnect with a fresh
//! client, never exit.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::{Peekable, Stream, StreamExt as _};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::retry::Backoff;
use super::view::DockerUpdate;
use crate::source::docker::{self, DockerError, DockerEvent};

/// How long the first poll of the event stream may wait for an event.
const SUBSCRIBE_WAIT: Duration = Duration::from_millis(500);

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
    let mut events = Box::pin(docker::event_stream(&client).peekable());
    if !subscribed(events.as_mut()).await? {
        return Ok(());
    }
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
                Some(Ok(event)) => match inspect(&client, event, &mut internal).await? {
                    Some(update) => update,
                    None => continue,
                },
            },
            Some(()) = resync.recv() => full_snapshot(&client, &mut internal).await?,
        };
        if tx.send(update).await.is_err() {
            return Ok(());
        }
    }
}

/// Makes sure the event subscription is open before the snapshot is taken:
/// bollard sends the request only when the stream is first polled, so it is
/// polled here until an event arrives or [`SUBSCRIBE_WAIT`] has passed. An
/// event (the subscription asks for events `since` a moment ago, so a recent
/// one comes at once) proves Docker has registered the subscription; after
/// the wait without one, the request has been sent and answered for that
/// long, and anything between then and now is still replayed thanks to
/// `since`. False when the stream ended; an error is Docker's.
async fn subscribed<S>(mut events: std::pin::Pin<&mut Peekable<S>>) -> Result<bool, DockerError>
where
    S: Stream<Item = Result<DockerEvent, DockerError>>,
{
    match tokio::time::timeout(SUBSCRIBE_WAIT, events.as_mut().peek()).await {
        Err(_) => debug!("Docker event subscription open (no event within {SUBSCRIBE_WAIT:?})"),
        Ok(None) => return Ok(false),
        Ok(Some(Ok(_))) => debug!("Docker event subscription open (first event in)"),
        Ok(Some(Err(_))) => {
            if let Some(Err(e)) = events.next().await {
                return Err(e);
            }
        }
    }
    Ok(true)
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
/// `None`: the container named could not be inspected (and was skipped).
async fn inspect(
    client: &bollard::Docker,
    event: DockerEvent,
    internal: &mut BTreeSet<String>,
) -> Result<Option<DockerUpdate>, DockerError> {
    Ok(Some(match event {
        DockerEvent::ContainerChanged { id } => {
            match docker::inspect_container(client, &id, internal).await {
                Ok(container) => DockerUpdate::Container {
                    id,
                    container: container.map(Box::new),
                },
                Err(e) => {
                    docker::skip_unless_docker_is_down(client, &id, e).await?;
                    return Ok(None);
                }
            }
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
    }))
}
