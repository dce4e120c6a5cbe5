//! Docker as a source: a client (`connect`), the full snapshot of networks and
//! running containers (`docker_snapshot`), single-object refreshes
//! (`inspect_container`, `inspect_network`) and an event stream of hints
//! (`event_stream`) telling the caller which object to refresh.
//!
//! The conversions from bollard's models to dock6's snapshot types are pure
//! functions (`network_from_docker`, `container_from_docker`), tested against
//! Docker 20.10 JSON without a daemon. Whatever Docker reports that does not
//! make sense (a missing id, an unparsable subnet or address) is skipped with
//! a `warn!` naming the object and the field; it never fails the snapshot.
//!
//! Usage, in this order so no change falls between the two:
//! ```no_run
//! # async fn f() -> Result<(), dock6::source::docker::DockerError> {
//! use dock6::source::docker;
//! //! let client = docker::connect(None).await?;
//! let mut events = Box::pin(docker::event_stream(&client));
//! let state = docker::docker_snapshot(&client).await?;
//! while let Some(event) = events.next().await {
//!     // inspect only what `event?` names and update `state`
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    InspectContainerOptions, InspectNetworkOptions, ListContainersOptions, ListNetworksOptions,
};
use futures::{StreamExt as _, TryStreamExt as _};
use tracing::{debug, warn};

use crate::snapshot::{Container, Endpoint, Network};
use crate::text::clip;

/// Where Docker listens when neither `--docker-host` nor `DOCKER_HOST` says.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds a request may wait for Docker's response headers (bollard's
/// limit; the whole answer is bounded by `transport`). The event stream's
/// headers come at once; its body is open-ended.
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// How many container inspects a full snapshot keeps in flight.
const INSPECT_CONCURRENCY: usize = 16;

/// Docker's networks and running containers. Host facts come from netlink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DockerState {
    /// Every network Docker reports, whatever the driver (the planner skips
    /// non-bridge ones with a log line). Sorted by name.
    pub networks: Vec<Network>,
    /// Running containers. Sorted by name.
    pub containers: Vec<Container>,
}

/// A hint that one object changed. Each variant names the single object to
/// look at again: `ContainerChanged` → [`inspect_container`] (which answers
/// `None` when the container is no longer running: drop it),
/// `NetworkChanged` → [`inspect_network`]; the `…Gone` variants need no
/// inspect: drop the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEvent {
    /// Started, renamed, or connected to / disconnected from a network
    /// (Docker reports those as network events; they are mapped here to the
    /// container, whose endpoints changed).
    ContainerChanged { id: String },
    /// Died or destroyed: no longer running.
    ContainerGone { id: String },
    /// Created: about to be started, perhaps ([`inspect_created`]).
    ContainerCreated { id: String },
    /// Created.
    NetworkChanged { id: String },
    /// Destroyed.
    NetworkGone { id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("connecting to Docker at {host}: {}", describe(source))]
    Connect {
        host: String,
        #[source]
        source: BollardError,
    },
    /// `doing` says what was being done: "inspecting container web (0123456789ab)".
    #[error("{doing}: {}", describe(source))]
    Request {
        doing: String,
        #[source]
        source: BollardError,
    },
}

impl DockerError {
    /// Nothing listens where Docker should (no socket, the connection
    /// refused): Docker is not running, or is restarting. Trying again soon
    /// costs it nothing.
    pub fn nothing_listens(&self) -> bool {
        let DockerError::Connect {
            source: BollardError::IOError { err },
            ..
        } = self
        else {
            return false;
        };
        matches!(
            err.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        )
    }

    fn request(doing: impl Into<String>) -> impl FnOnce(BollardError) -> DockerError {
        let doing = doing.into();
        move |source| DockerError::Request { doing, source }
    }
}

/// A fresh client for `docker_host` (`--docker-host`), else `DOCKER_HOST`,
/// else [`DEFAULT_DOCKER_HOST`], speaking the daemon's API version
/// (`negotiate_version`: Docker 20.10 speaks 1.41 and rejects newer ones).
/// Accepts `unix://PATH`, a bare absolute socket path, `tcp://` and `http://`.
/// Each call builds a new client: after a daemon upgrade the version may differ.
pub async fn connect(docker_host: Option<&str>) -> Result<Docker, DockerError> {
    let env = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    let host = docker_host
        .map(str::to_string)
        .or(env)
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.into());
    let connect_error = |source| DockerError::Connect {
        host: host.clone(),
        source,
    };
    let endpoint = if let Some(path) = host
        .strip_prefix("unix://")
        .or(host.starts_with('/').then_some(host.as_str()))
    {
        transport::Endpoint::Unix(path.into())
    } else if let Some(authority) = host.strip_prefix("tcp://").or(host.strip_prefix("http://")) {
        transport::Endpoint::Tcp(authority.trim_end_matches('/').to_string())
    } else {
        return Err(connect_error(BollardError::UnsupportedURISchemeError {
            uri: host.clone(),
        }));
    };
    // dock6's own transport bounds each answer's size and time (see `transport`).
    let client = Docker::connect_with_custom_transport(
        move |request| transport::send(endpoint.clone(), request),
        Some("http://docker"),
        REQUEST_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(connect_error)?;
    let client = client.negotiate_version().await.map_err(connect_error)?;
    debug!(host = %host, api = %client.client_version(), "connected to Docker");
    Ok(client)
}

/// All networks and all running containers.
///
/// Networks come from one list call: Docker's network list carries the same
/// fields as an inspect (IPAM, EnableIPv6, Internal, Options, Labels) except
/// the endpoints, which dock6 reads from the containers; one call is also a
/// consistent view. Containers are listed, then inspected (a few at a time); one that
/// disappears in between is left out (its destroy event follows).
pub async fn docker_snapshot(docker: &Docker) -> Result<DockerState, DockerError> {
    data_warnings::next_snapshot();
    let mut networks = list_networks(docker).await?;
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    let internal = internal_network_ids(&networks);

    let summaries = docker
        .list_containers(None::<ListContainersOptions>)
        .await
        .map_err(DockerError::request("listing running containers"))?;
    // A few inspects in flight at once: on a host with thousands of
    // containers one at a time is a round trip each; more than a few only
    // queue up inside Docker.
    let inspects = summaries.into_iter().filter_map(|summary| {
        let Some(id) = summary.id.filter(|id| !id.is_empty()) else {
            warn!("container list: an entry without Id; skipped");
            return None;
        };
        let name = summary
            .names
            .and_then(|names| names.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string());
        let internal = &internal;
        Some(async move {
            match inspect_container_named(docker, &id, name.as_deref(), internal).await {
                Ok(container) => Ok(container),
                Err(e) => skip_unless_docker_is_down(docker, &id, e)
                    .await
                    .map(|()| None),
            }
        })
    });
    let mut containers: Vec<Container> = futures::stream::iter(inspects)
        .buffer_unordered(INSPECT_CONCURRENCY)
        .try_filter_map(|c| std::future::ready(Ok(c)))
        .try_collect()
        .await?;
    // After the containers: every container inspected above that Docker attached to the
    // gateway bridge was attached before it started, so it is listed there by now.
    if containers.iter().any(may_have_hidden_gateway_bridge) {
        let endpoints = match inspect_gateway_bridge(docker).await {
            Ok(endpoints) => endpoints,
            // Without their endpoints these containers publish nothing: closed, not wrong.
            Err(e) if docker.ping().await.is_ok() => {
                warn!(
                    "{e}; the published ports of containers on overlay networks stay closed until Docker answers for it"
                );
                BTreeMap::new()
            }
            Err(e) => return Err(e),
        };
        for container in &mut containers {
            with_gateway_bridge(container, &endpoints);
        }
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    Ok(DockerState {
        networks,
        containers,
    })
}

/// The container, if it exists and is running (`None` otherwise). `internal`
/// holds the ids of the internal networks (see [`internal_network_ids`]),
/// which its gateway network depends on (see [`gateway_network`]); the caller
/// keeps them from its snapshot and network events, so an event costs one
/// request (two for a container on overlay networks only: its endpoint on
/// `docker_gwbridge` is read from that network, see [`with_gateway_bridge`]).
pub async fn inspect_container(
    docker: &Docker,
    id: &str,
    internal: &BTreeSet<String>,
) -> Result<Option<Container>, DockerError> {
    let Some(mut container) = inspect_container_named(docker, id, None, internal).await? else {
        return Ok(None);
    };
    if may_have_hidden_gateway_bridge(&container) {
        let endpoints = inspect_gateway_bridge(docker).await?;
        with_gateway_bridge(&mut container, &endpoints);
    }
    Ok(Some(container))
}

/// The containers' endpoints on `docker_gwbridge` (none when there is no such network).
async fn inspect_gateway_bridge(
    docker: &Docker,
) -> Result<BTreeMap<String, Endpoint>, DockerError> {
    match docker
        .inspect_network(GATEWAY_BRIDGE, None::<InspectNetworkOptions>)
        .await
    {
        Ok(network) => Ok(gateway_bridge_endpoints(network)),
        Err(e) if is_not_found(&e) => Ok(BTreeMap::new()),
        Err(e) => Err(DockerError::request(format!(
            "inspecting network {GATEWAY_BRIDGE}"
        ))(e)),
    }
}

async fn list_networks(docker: &Docker) -> Result<Vec<Network>, DockerError> {
    let listed = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .map_err(DockerError::request("listing networks"))?;
    Ok(listed.into_iter().filter_map(network_from_list).collect())
}

async fn inspect_container_named(
    docker: &Docker,
    id: &str,
    name: Option<&str>,
    internal: &BTreeSet<String>,
) -> Result<Option<Container>, DockerError> {
    let doing = match name {
        Some(name) => format!(
            "inspecting container {} ({})",
            clip(name),
            clip(short_id(id))
        ),
        None => format!("inspecting container {}", clip(short_id(id))),
    };
    match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(response) => Ok(container_from_docker(response, internal)),
        Err(e) if is_not_found(&e) => {
            debug!("{doing}: gone");
            Ok(None)
        }
        Err(e) => Err(DockerError::request(doing)(e)),
    }
}

/// One container's inspect failed while Docker answers: the container is
/// left out with a warning naming it (its ports closed until it is read
/// again), rather than failing the whole snapshot. When Docker itself no
/// longer answers (a ping fails), the error stands: a snapshot missing every
/// container must never be applied.
pub async fn skip_unless_docker_is_down(
    docker: &Docker,
    id: &str,
    error: DockerError,
) -> Result<(), DockerError> {
    match docker.ping().await {
        Ok(_) => {
            warn!(
                "{error}; container {} left out, its ports closed, until Docker answers for it",
                clip(id)
            );
            Ok(())
        }
        Err(_) => Err(error),
    }
}

/// A container Docker has created and not started yet, with the host ports
/// it is to publish (its `HostConfig`'s bindings, which Docker reports in
/// `NetworkSettings.Ports` only once it runs) and its networks without
/// addresses; `None` when it is gone or no longer just created. Docker
/// holds a container locked for the whole of its start: an inspect sent
/// right after the `create` event usually comes before the start, one sent
/// later waits for the start to end (and finds it running).
pub async fn inspect_created(docker: &Docker, id: &str) -> Result<Option<Container>, DockerError> {
    match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(response) => Ok(created_container_from_docker(response)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(DockerError::request(format!(
            "inspecting the created container {}",
            clip(short_id(id))
        ))(e)),
    }
}

/// The network, if it exists (`None` otherwise).
pub async fn inspect_network(docker: &Docker, id: &str) -> Result<Option<Network>, DockerError> {
    let doing = format!("inspecting network {}", clip(short_id(id)));
    match docker
        .inspect_network(id, None::<InspectNetworkOptions>)
        .await
    {
        Ok(n) => Ok(network_from_inspect(n)),
        Err(e) if is_not_found(&e) => {
            debug!("{doing}: gone");
            Ok(None)
        }
        Err(e) => Err(DockerError::request(doing)(e)),
    }
}

/// A bollard error with its causes (the cause is where the reason is, e.g.
/// "error reading a body from connection: Docker's answer is larger than
/// 32 MiB"), each cut by [`clip`]: Docker's own texts (a 500's message, JSON
/// it sent) are repeated in them.
fn describe(error: &BollardError) -> String {
    let mut text = clip(&error.to_string()).into_owned();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        let part = e.to_string();
        // Some errors repeat their cause in their own text.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&clip(&part));
        }
        cause = e.source();
    }
    text
}

/// The first 12 characters of an id, as Docker shows it.
pub(super) fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

mod convert;
mod data_warnings;
mod engine;
mod events;
mod transport;

pub use convert::{
    GATEWAY_BRIDGE, NetworkFields, container_from_docker, created_container_from_docker,
    gateway_bridge_endpoints, gateway_network, internal_network_ids,
    may_have_hidden_gateway_bridge, network_from_docker, network_from_inspect, network_from_list,
    with_gateway_bridge,
};
pub use engine::{Engine, engine};
pub use events::{event_from_docker, event_stream};
pub use transport::{ANSWER_TIMEOUT, MAX_ANSWER_BYTES};

#[cfg(test)]
mod tests;
