//! Docker's event stream as hints of what to refresh.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptions;
use futures::{Stream, StreamExt};
use tracing::warn;

use super::{DockerError, DockerEvent};

/// Seconds subtracted from "now" for the events subscription's `since`, so a
/// clock step between dock6's and the daemon's view cannot lose an event.
/// Events are hints; a duplicate costs one inspect.
const EVENTS_SINCE_SLACK_SECS: u64 = 2;

/// Container and network events that can change dock6's plan, as
/// [`DockerEvent`] hints. Ends (or yields an error) when Docker goes away:
/// reconnect, subscribe again, and take a full snapshot.
///
/// Subscribe *before* taking the snapshot. The subscription asks Docker for
/// events `since` the moment this function is called (less a little slack),
/// so an event that happens after the call but before the stream is first
/// polled is still delivered from Docker's event buffer.
pub fn event_stream(
    docker: &Docker,
) -> impl Stream<Item = Result<DockerEvent, DockerError>> + use<> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(EVENTS_SINCE_SLACK_SECS))
        .unwrap_or(0);
    let filters = HashMap::from([
        (
            "type".to_string(),
            vec!["container".to_string(), "network".to_string()],
        ),
        (
            "event".to_string(),
            [
                "start",
                "die",
                "destroy",
                "rename",
                "create",
                "connect",
                "disconnect",
            ]
            .map(String::from)
            .to_vec(),
        ),
    ]);
    let options = EventsOptions {
        since: Some(since.to_string()),
        until: None,
        filters: Some(filters),
    };
    docker.events(Some(options)).filter_map(|item| async move {
        match item {
            Ok(message) => event_from_docker(&message).map(Ok),
            Err(e) => Some(Err(DockerError::Request {
                doing: "reading Docker events".into(),
                source: e,
            })),
        }
    })
}

/// Maps one Docker event to a hint; `None` for events that change nothing
/// dock6 sees (other types, malformed events).
pub fn event_from_docker(message: &EventMessage) -> Option<DockerEvent> {
    let action = message.action.as_deref().unwrap_or("");
    // Health-check and exec events carry a suffix ("exec_start: sh"); only the verb matters.
    let verb = action.split(':').next().unwrap_or("").trim();
    let actor = message.actor.as_ref();
    let actor_id = actor.and_then(|a| a.id.clone()).filter(|id| !id.is_empty());
    let attribute = |key: &str| {
        actor
            .and_then(|a| a.attributes.as_ref())
            .and_then(|attrs| attrs.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let missing = |what: &str| {
        warn!(
            "Docker event {:?} {} without {what}; ignored",
            message.typ,
            crate::text::quoted(action)
        );
        None
    };
    match message.typ {
        Some(EventMessageTypeEnum::CONTAINER) => {
            let event: fn(String) -> DockerEvent = match verb {
                "start" | "rename" => |id| DockerEvent::ContainerChanged { id },
                "die" | "destroy" => |id| DockerEvent::ContainerGone { id },
                "create" => |id| DockerEvent::ContainerCreated { id },
                _ => return None,
            };
            match actor_id {
                Some(id) => Some(event(id)),
                None => missing("Actor.ID"),
            }
        }
        Some(EventMessageTypeEnum::NETWORK) => match verb {
            "create" => actor_id
                .map(|id| DockerEvent::NetworkChanged { id })
                .or_else(|| missing("Actor.ID")),
            "destroy" => actor_id
                .map(|id| DockerEvent::NetworkGone { id })
                .or_else(|| missing("Actor.ID")),
            "connect" | "disconnect" => match attribute("container") {
                Some(id) => Some(DockerEvent::ContainerChanged { id }),
                None => missing("Actor.Attributes.container"),
            },
            _ => None,
        },
        _ => None,
    }
}
