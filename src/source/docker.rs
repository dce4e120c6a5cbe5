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
//! use futures::StreamExt;
//! let client = docker::connect(None).await?;
//! let mut events = Box::pin(docker::event_stream(&client));
//! let state = docker::docker_snapshot(&client).await?;
//! while let Some(event) = events.next().await {
//!     // inspect only what `event?` names and update `state`
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerInspectResponse, EndpointSettings, EventMessage, EventMessageTypeEnum, Ipam,
    NetworkInspect,
};
use bollard::query_parameters::{
    EventsOptions, InspectContainerOptions, InspectNetworkOptions, ListContainersOptions,
    ListNetworksOptions,
};
use futures::{Stream, StreamExt};
use ipnet::IpNet;
use tracing::{debug, warn};

use crate::snapshot::{Container, Endpoint, Network, PortBinding, Subnet};

/// Where Docker listens when neither `--docker-host` nor `DOCKER_HOST` says.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds a request may wait for Docker's response headers. The event
/// stream is not limited by it (its headers come at once; the body is open-ended).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Seconds subtracted from "now" for the events subscription's `since`, so a
/// clock step between dock6's and the daemon's view cannot lose an event.
/// Events are hints; a duplicate costs one inspect.
const EVENTS_SINCE_SLACK_SECS: u64 = 2;

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
    /// Created.
    NetworkChanged { id: String },
    /// Destroyed.
    NetworkGone { id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("connecting to Docker at {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: BollardError,
    },
    /// `doing` says what was being done: "inspecting container web (0123456789ab)".
    #[error("{doing}: {source}")]
    Request {
        doing: String,
        #[source]
        source: BollardError,
    },
}

impl DockerError {
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
    let client = if let Some(path) = host
        .strip_prefix("unix://")
        .or(host.starts_with('/').then_some(host.as_str()))
    {
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(&host, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        Err(BollardError::UnsupportedURISchemeError { uri: host.clone() })
    }
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
/// consistent view. Containers are listed, then each is inspected; one that
/// disappears in between is left out (its destroy event follows).
pub async fn docker_snapshot(docker: &Docker) -> Result<DockerState, DockerError> {
    let mut networks = list_networks(docker).await?;
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    let internal = internal_network_ids(&networks);

    let summaries = docker
        .list_containers(None::<ListContainersOptions>)
        .await
        .map_err(DockerError::request("listing running containers"))?;
    let mut containers = Vec::with_capacity(summaries.len());
    for summary in summaries {
        let Some(id) = summary.id.filter(|id| !id.is_empty()) else {
            warn!("container list: an entry without Id; skipped");
            continue;
        };
        let name = summary
            .names
            .and_then(|names| names.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string());
        match inspect_container_named(docker, &id, name.as_deref(), &internal).await {
            Ok(Some(container)) => containers.push(container),
            Ok(None) => {}
            Err(e) => skip_unless_docker_is_down(docker, &id, e).await?,
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
/// request.
pub async fn inspect_container(
    docker: &Docker,
    id: &str,
    internal: &BTreeSet<String>,
) -> Result<Option<Container>, DockerError> {
    inspect_container_named(docker, id, None, internal).await
}

async fn list_networks(docker: &Docker) -> Result<Vec<Network>, DockerError> {
    let listed = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .map_err(DockerError::request("listing networks"))?;
    Ok(listed.into_iter().filter_map(network_from_list).collect())
}

/// The fields dock6 reads, from either of bollard's two network types
/// (list entry and inspect answer), which have them under the same names.
macro_rules! network_fields {
    ($n:expr) => {
        NetworkFields {
            id: $n.id,
            name: $n.name,
            driver: $n.driver,
            enable_ipv6: $n.enable_ipv6,
            internal: $n.internal,
            ipam: $n.ipam,
            options: $n.options,
            labels: $n.labels,
        }
    };
}

/// A network list entry as a snapshot network (see [`network_from_docker`]).
pub fn network_from_list(n: bollard::models::Network) -> Option<Network> {
    network_from_docker(network_fields!(n))
}

/// The ids of the internal networks, as [`container_from_docker`] wants them.
pub fn internal_network_ids(networks: &[Network]) -> BTreeSet<String> {
    networks
        .iter()
        .filter(|n| n.internal)
        .map(|n| n.id.clone())
        .collect()
}

async fn inspect_container_named(
    docker: &Docker,
    id: &str,
    name: Option<&str>,
    internal: &BTreeSet<String>,
) -> Result<Option<Container>, DockerError> {
    let doing = match name {
        Some(name) => format!("inspecting container {name} ({})", short_id(id)),
        None => format!("inspecting container {}", short_id(id)),
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
/// left out with a warning naming it (its ports stay closed until an event
/// or the next resync), rather than failing the whole snapshot. When Docker
/// itself no longer answers (a ping fails), the error stands: a snapshot
/// missing every container must never be applied.
pub async fn skip_unless_docker_is_down(
    docker: &Docker,
    id: &str,
    error: DockerError,
) -> Result<(), DockerError> {
    match docker.ping().await {
        Ok(_) => {
            warn!("{error}; container {id} skipped until its next event or the next resync");
            Ok(())
        }
        Err(_) => Err(error),
    }
}

/// The network, if it exists (`None` otherwise).
pub async fn inspect_network(docker: &Docker, id: &str) -> Result<Option<Network>, DockerError> {
    let doing = format!("inspecting network {}", short_id(id));
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
/// dock6 sees (a container `create`, other types, malformed events).
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
            "Docker event {:?} {action:?} without {what}; ignored",
            message.typ
        );
        None
    };
    match message.typ {
        Some(EventMessageTypeEnum::CONTAINER) => {
            let event: fn(String) -> DockerEvent = match verb {
                "start" | "rename" => |id| DockerEvent::ContainerChanged { id },
                "die" | "destroy" => |id| DockerEvent::ContainerGone { id },
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

/// The network fields dock6 reads; Docker's list and inspect answers (two
/// bollard types) both carry them.
#[derive(Debug, Clone, Default)]
pub struct NetworkFields {
    pub id: Option<String>,
    pub name: Option<String>,
    pub driver: Option<String>,
    pub enable_ipv6: Option<bool>,
    pub internal: Option<bool>,
    pub ipam: Option<Ipam>,
    pub options: Option<HashMap<String, String>>,
    pub labels: Option<HashMap<String, String>>,
}

/// A network inspect answer as a snapshot network (see [`network_from_docker`]).
pub fn network_from_inspect(n: NetworkInspect) -> Option<Network> {
    network_from_docker(network_fields!(n))
}

/// Docker's view of a network as a snapshot network. `None` (with a
/// warning) without an id, a name or a driver. A missing `Internal` counts as
/// internal (no egress, nothing published: fails closed); a missing
/// `EnableIPv6` as false. IPAM entries whose subnet does not parse are
/// skipped, as are gateways that do not parse (the subnet is kept).
/// `bridge` stays `None`: the planner derives it as Docker does.
pub fn network_from_docker(n: NetworkFields) -> Option<Network> {
    let Some(id) = n.id.filter(|s| !s.is_empty()) else {
        warn!(network = ?n.name, "Docker network without Id; skipped");
        return None;
    };
    let Some(name) = n.name.filter(|s| !s.is_empty()) else {
        warn!("Docker network {}: no Name; skipped", short_id(&id));
        return None;
    };
    let Some(driver) = n.driver.filter(|s| !s.is_empty()) else {
        warn!(
            "Docker network {name} ({}): no Driver; skipped",
            short_id(&id)
        );
        return None;
    };
    let internal = n.internal.unwrap_or_else(|| {
        warn!("Docker network {name}: no Internal field; treated as internal");
        true
    });
    let mut subnets = Vec::new();
    for (i, config) in n
        .ipam
        .and_then(|ipam| ipam.config)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let subnet_text = config.subnet.unwrap_or_default();
        let subnet = match subnet_text.trim().parse::<IpNet>() {
            Ok(subnet) => subnet,
            Err(_) => {
                warn!(
                    "Docker network {name}: IPAM.Config[{i}].Subnet {subnet_text:?} is not a subnet; entry skipped"
                );
                continue;
            }
        };
        let gateway = match config
            .gateway
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            None => None,
            // Docker ≤ 1.x style "fd00::1/64" is tolerated.
            Some(g) => match g.split('/').next().unwrap_or(g).parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    warn!(
                        "Docker network {name}: IPAM.Config[{i}].Gateway {g:?} is not an address; ignored"
                    );
                    None
                }
            },
        };
        subnets.push(Subnet { subnet, gateway });
    }
    Some(Network {
        id,
        name,
        driver,
        bridge: None,
        enable_ipv6: n.enable_ipv6.unwrap_or(false),
        internal,
        subnets,
        options: sorted(n.options),
        labels: sorted(n.labels),
    })
}

/// A container inspect answer as a snapshot container; `None` when it is not
/// running or has no id. Endpoints keep every network the container is on
/// (an empty or unparsable `GlobalIPv6Address` becomes `None`, the latter
/// with a warning); port bindings keep Docker's shape, except bindings
/// without `HostIp` or `HostPort`, which are dropped with a warning (an absent
/// host IP must not read as "all addresses"). `internal_networks` holds the
/// ids of internal networks (see [`internal_network_ids`]), which the
/// gateway-network rule needs and a container inspect does not carry.
pub fn container_from_docker(
    c: ContainerInspectResponse,
    internal_networks: &BTreeSet<String>,
) -> Option<Container> {
    let Some(id) = c.id.filter(|s| !s.is_empty()) else {
        warn!(name = ?c.name, "Docker container without Id; skipped");
        return None;
    };
    let name = match c
        .name
        .as_deref()
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !n.is_empty())
    {
        Some(n) => n.to_string(),
        None => {
            warn!("Docker container {}: no Name; using its id", short_id(&id));
            short_id(&id).to_string()
        }
    };
    let running = c.state.as_ref().and_then(|s| s.running);
    if running != Some(true) {
        debug!(
            "container {name} ({}): not running; left out",
            short_id(&id)
        );
        return None;
    }
    let labels = sorted(c.config.and_then(|config| config.labels));
    let settings = c.network_settings.unwrap_or_default();
    let docker_endpoints: BTreeMap<String, EndpointSettings> =
        settings.networks.unwrap_or_default().into_iter().collect();
    let mut networks = BTreeMap::new();
    for (network, endpoint) in &docker_endpoints {
        let ipv6_address = match endpoint.global_ipv6_address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match text.parse::<Ipv6Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    warn!(
                        "container {name}: NetworkSettings.Networks.{network}.GlobalIPv6Address {text:?} is not an IPv6 address; ignored"
                    );
                    None
                }
            },
        };
        networks.insert(network.clone(), Endpoint { ipv6_address });
    }
    let gateway_network = gateway_network(&docker_endpoints, internal_networks);
    let mut ports = BTreeMap::new();
    for (key, bindings) in settings.ports.unwrap_or_default() {
        let bindings = bindings.map(|bindings| {
            bindings
                .into_iter()
                .filter_map(|b| match (b.host_ip, b.host_port) {
                    (Some(host_ip), Some(host_port)) => Some(PortBinding { host_ip, host_port }),
                    (ip, port) => {
                        warn!(
                            "container {name}: NetworkSettings.Ports.{key}: binding without HostIp or HostPort (HostIp {ip:?}, HostPort {port:?}); skipped"
                        );
                        None
                    }
                })
                .collect()
        });
        ports.insert(key, bindings);
    }
    Some(Container {
        id,
        name,
        labels,
        networks,
        gateway_network,
        ports,
    })
}

/// The network that gives the container its default gateway, computed as
/// libnetwork does it (Docker 20.10, `libnetwork/sandbox.go`): the sandbox
/// keeps its endpoints in a heap ordered by `epHeap.Less`, and
/// `getGatewayEndpoint` takes the first endpoint, in that order, whose
/// network is not `null`/`host` and that has a gateway (`ep.Gateway()`, the
/// IPv4 gateway; the IPv6 default route comes from the same endpoint).
/// `Less` orders:
/// 1. endpoints in `docker_gwbridge` (swarm) last,
/// 2. endpoints in internal networks last,
/// 3. endpoints with both an IPv4 and an IPv6 gateway before those without,
/// 4. higher endpoint priority first,
/// 5. then by network name.
///
/// From inspect data: an endpoint's network is internal when its
/// `NetworkID` is in `internal_networks` (a container inspect does not say;
/// Docker 20.10 even reports `Gateway` and `IPv6Gateway` for endpoints on
/// internal networks, although the container gets no route through them,
/// measured); internal endpoints are never chosen (libnetwork sorts them last
/// and gives them no gateway). "Has a gateway" is a non-empty `Gateway`; rule
/// 3 reads `Gateway` and `IPv6Gateway`; the priority is `GwPriority` where
/// Docker reports it (API ≥ 1.48), else 0 — Docker 20.10 offers no way to set
/// it. The heap is only partially sorted, so this is exact when the heap's
/// minimum has a gateway, which holds unless no endpoint has one. Newer
/// Docker (28+) chooses the IPv4 and IPv6 gateway endpoints separately; this
/// rule then names the IPv4 one, an approximation. `None` when no endpoint
/// qualifies.
pub fn gateway_network(
    endpoints: &BTreeMap<String, EndpointSettings>,
    internal_networks: &BTreeSet<String>,
) -> Option<String> {
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    let internal = |e: &EndpointSettings| {
        e.network_id
            .as_ref()
            .is_some_and(|id| internal_networks.contains(id))
    };
    endpoints
        .iter()
        .filter(|(network, e)| {
            !matches!(network.as_str(), "host" | "none") && !internal(e) && has(&e.gateway)
        })
        .min_by_key(|(network, e)| {
            (
                network.as_str() == "docker_gwbridge",
                !has(&e.ipv6_gateway),
                std::cmp::Reverse(e.gw_priority.unwrap_or(0)),
                network.as_str(),
            )
        })
        .map(|(network, _)| network.clone())
}

fn sorted(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

/// The first 12 characters of an id, as Docker shows it.
fn short_id(id: &str) -> &str {
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

#[cfg(test)]
mod tests;
