//! The Docker watcher: subscribe to events first, then take the full
//! snapshot, then follow the events by inspecting only what they name.
//! Docker down or restarting: log, back off (capped), reconnect with a fresh
//! client, never exit. While nothing listens on Docker's socket it is tried
//! again every [`NOT_LISTENING_RETRY`], without backing off.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::{Peekable, Stream, StreamExt as _};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::retry::Backoff;
use super::view::DockerUpdate;
use crate::source::docker::{self, DockerError, DockerEvent, Engine};
use crate::source::listeners;

/// How long the inspect of a created container may take: one that waited
/// for Docker's start to end finds it running, and is of no use.
const CREATED_INSPECT_WAIT: Duration = Duration::from_secs(2);

/// How long the first poll of the event stream may wait for an event.
const SUBSCRIBE_WAIT: Duration = Duration::from_millis(500);

/// How soon Docker is tried again when nothing listens on its socket (not
/// started yet, or restarting): a refused connection costs Docker nothing,
/// and a Docker that is back is followed again at once, not after a backoff
/// grown while it was away.
const NOT_LISTENING_RETRY: Duration = Duration::from_millis(250);

/// How long a session must follow events without trouble (or handle an
/// event) before Docker counts as back: a Docker that answers the snapshot
/// and then breaks the event stream every time is still failing, and is
/// neither announced as recovered nor retried without backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Runs until the receiver is gone. `resync` asks for a full snapshot.
pub async fn watch(
    docker_host: Option<String>,
    tx: mpsc::Sender<DockerUpdate>,
    mut resync: mpsc::Receiver<()>,
) {
    let mut backoff = Backoff::default();
    let mut trouble = Trouble::default();
    let mut engine = None;
    loop {
        let result = session(
            docker_host.as_deref(),
            &tx,
            &mut resync,
            &mut backoff,
            &mut trouble,
            &mut engine,
        )
        .await;
        if tx.is_closed() {
            return;
        }
        let (what, delay) = match result {
            Ok(()) => (
                "Docker event stream ended".to_string(),
                backoff.next_delay(),
            ),
            Err(e) if e.nothing_listens() => (format!("Docker: {e}"), NOT_LISTENING_RETRY),
            Err(e) => (format!("Docker: {e}"), backoff.next_delay()),
        };
        let first = trouble.failed(what);
        let _ = tx.send(DockerUpdate::Lost).await;
        match first {
            true => {
                info!("reconnecting to Docker in {delay:?}; the kernel keeps its rules meanwhile")
            }
            false => debug!("reconnecting to Docker in {delay:?}"),
        }
        tokio::time::sleep(delay).await;
    }
}

/// The same Docker problem, retried with backoff, is logged at warn once;
/// its repeats go to debug, and their count is logged when the problem
/// changes or Docker is back.
#[derive(Debug, Default)]
struct Trouble {
    /// The last failure's text, and how often it came since it was logged.
    last: Option<(String, u64)>,
}

impl Trouble {
    /// Logs a failure; true when it is new (logged at warn).
    fn failed(&mut self, what: String) -> bool {
        match &mut self.last {
            Some((last, repeats)) if *last == what => {
                *repeats += 1;
                debug!("{what} (again: {} times)", *repeats + 1);
                false
            }
            _ => {
                if let Some((_, repeats)) = self.last.take()
                    && repeats > 0
                {
                    info!("the previous Docker problem came {} times", repeats + 1);
                }
                warn!("{what}");
                self.last = Some((what, 0));
                true
            }
        }
    }

    /// Docker answers and its events flow: logs the end of the trouble, if any.
    fn healthy(&mut self) {
        if let Some((_, repeats)) = self.last.take() {
            info!(
                "Docker answers again (the last problem came {} times)",
                repeats + 1
            );
        }
    }
}

async fn session(
    docker_host: Option<&str>,
    tx: &mpsc::Sender<DockerUpdate>,
    resync: &mut mpsc::Receiver<()>,
    backoff: &mut Backoff,
    trouble: &mut Trouble,
    engine: &mut Option<Engine>,
) -> Result<(), DockerError> {
    let client = docker::connect(docker_host).await?;
    if let Some(seen) = say_engine(&client, engine).await
        && tx.send(DockerUpdate::Engine(seen)).await.is_err()
    {
        return Ok(());
    }
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
    // Not yet back: see HEALTHY_AFTER.
    let healthy_timer = tokio::time::sleep(HEALTHY_AFTER);
    tokio::pin!(healthy_timer);
    let mut healthy = false;
    loop {
        let update = tokio::select! {
            event = events.next() => match event {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(DockerEvent::ContainerCreated { id })) => {
                    read_starting(&client, id, tx);
                    continue;
                }
                Some(Ok(event)) => match inspect(&client, event, &mut internal).await? {
                    Inspected::Update(update) => {
                        now_healthy(&mut healthy, backoff, trouble);
                        update
                    }
                    Inspected::Unreadable { id } => {
                        // What dock6 knew of it may be stale (after a
                        // `disconnect`, its address may already be another
                        // container's): closed now, then everything is read again.
                        let closed = DockerUpdate::Container { id, container: None };
                        if tx.send(closed).await.is_err() {
                            return Ok(());
                        }
                        full_snapshot(&client, &mut internal).await?
                    }
                },
            },
            Some(()) = resync.recv() => full_snapshot(&client, &mut internal).await?,
            () = &mut healthy_timer, if !healthy => {
                now_healthy(&mut healthy, backoff, trouble);
                continue;
            }
        };
        if tx.send(update).await.is_err() {
            return Ok(());
        }
    }
}

/// The first time a session proves healthy: the backoff starts over and
/// the end of any trouble is logged.
fn now_healthy(healthy: &mut bool, backoff: &mut Backoff, trouble: &mut Trouble) {
    if !std::mem::replace(healthy, true) {
        backoff.reset();
        trouble.healthy();
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

/// Reads, beside the event loop, the host ports a container Docker just
/// created is to publish, and tells the loop of them unless something on
/// the host holds them already (see [`listeners`]). The inspect must come
/// before Docker's start takes the container, so it is not queued behind
/// other events; one that comes too late finds the container running, and
/// nothing is sent (the `start` event brings it).
fn read_starting(client: &bollard::Docker, id: String, tx: &mpsc::Sender<DockerUpdate>) {
    let (client, tx) = (client.clone(), tx.clone());
    tokio::spawn(async move {
        let inspected =
            tokio::time::timeout(CREATED_INSPECT_WAIT, docker::inspect_created(&client, &id)).await;
        let mut container = match inspected {
            Ok(Ok(Some(container))) => container,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                debug!("{e}");
                return;
            }
        };
        let held = tokio::task::spawn_blocking(listeners::held_ports).await;
        match held {
            Ok(Ok(held)) => listeners::without_held_ports(&mut container, &held),
            Ok(Err(e)) => {
                debug!("{e}: the ports of the starting container {id} are left alone");
                return;
            }
            Err(_) => return,
        }
        let _ = tx.send(DockerUpdate::Starting(Box::new(container))).await;
    });
}

/// What the inspect after an event gave.
enum Inspected {
    Update(DockerUpdate),
    /// The container named could not be inspected while Docker answers.
    Unreadable {
        id: String,
    },
}

/// Inspects what the event names; network events keep `internal` current.
/// An error is Docker's own (it does not answer at all). The loop reads a
/// created container's ports beside itself ([`read_starting`]); here it
/// would be inspected as any other change.
async fn inspect(
    client: &bollard::Docker,
    event: DockerEvent,
    internal: &mut BTreeSet<String>,
) -> Result<Inspected, DockerError> {
    Ok(Inspected::Update(match event {
        DockerEvent::ContainerChanged { id } | DockerEvent::ContainerCreated { id } => {
            match docker::inspect_container(client, &id, internal).await {
                Ok(container) => DockerUpdate::Container {
                    id,
                    container: container.map(Box::new),
                },
                Err(e) => {
                    docker::skip_unless_docker_is_down(client, &id, e).await?;
                    return Ok(Inspected::Unreadable { id });
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

/// Logs which engine answers and its firewall backend, once per engine: again only after an
/// upgrade or a switch of backend, not at every reconnect; returns what `/info` said, for the
/// loop (at every connect: daemon.json may have changed with a restart). A failed `/info` is
/// only a debug line: the snapshot that follows reports a Docker that does not answer.
async fn say_engine(client: &bollard::Docker, last: &mut Option<Engine>) -> Option<Engine> {
    let seen = match docker::engine(client).await {
        Ok(seen) => seen,
        Err(e) => {
            debug!("{e}");
            return None;
        }
    };
    if last.as_ref() == Some(&seen) {
        return Some(seen);
    }
    info!("connected to {seen}");
    if seen.with_firewalld() {
        warn!(
            "Docker's firewall backend is managed by firewalld ({}): a firewalld reload \
             re-creates Docker's rules; dock6 restores its own table when it changes, but \
             keep dock6's bridges out of firewalld zones that drop forwarded traffic",
            seen.firewall_backend.as_deref().unwrap_or_default()
        );
    }
    *last = Some(seen.clone());
    Some(seen)
}
