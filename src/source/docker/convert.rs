//! Bollard's models as dock6's snapshot types: pure functions, tested
//! against Docker's JSON without a daemon. What does not make sense is
//! skipped with a warning naming the object and the field.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use bollard::models::{ContainerInspectResponse, EndpointSettings, Ipam, NetworkInspect};
use ipnet::IpNet;
use tracing::debug;

use super::data_warnings::data_warn;

use super::short_id;
use crate::snapshot::{Container, Endpoint, Network, PortBinding, SortedMap, Subnet};
use crate::text::{clip, quoted};
use compact_str::CompactString;

/// Docker ≥ 27's network option (also in `default-network-opts`) for IPv6.
pub const ENABLE_IPV6_OPTION: &str = "com.docker.network.enable_ipv6";

/// The bridge through which swarm tasks and other containers on overlay networks reach
/// everything outside the swarm, and through which their host-mode ports are published.
pub const GATEWAY_BRIDGE: &str = "docker_gwbridge";

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
/// `EnableIPv6` as the `com.docker.network.enable_ipv6` option says, else false. IPAM entries whose subnet does not parse are
/// skipped, as are gateways that do not parse (the subnet is kept).
/// `bridge` stays `None`: the planner derives it as Docker does.
pub fn network_from_docker(n: NetworkFields) -> Option<Network> {
    let Some(id) = n.id.filter(|s| !s.is_empty()) else {
        data_warn!(
            "Docker network {} without Id; skipped",
            quoted(n.name.as_deref().unwrap_or(""))
        );
        return None;
    };
    let Some(name) = n.name.filter(|s| !s.is_empty()) else {
        data_warn!("Docker network {}: no Name; skipped", clip(short_id(&id)));
        return None;
    };
    let Some(driver) = n.driver.filter(|s| !s.is_empty()) else {
        data_warn!(
            "Docker network {} ({}): no Driver; skipped",
            clip(&name),
            clip(short_id(&id))
        );
        return None;
    };
    let internal = n.internal.unwrap_or_else(|| {
        data_warn!(
            "Docker network {}: no Internal field; treated as internal",
            clip(&name)
        );
        true
    });
    // Docker ≥ 27 reports the effective setting (`--ipv6`, the network's
    // option or the daemon's `default-network-opts`) in EnableIPv6; only an
    // answer without the field falls back to the option.
    let enable_ipv6 = n.enable_ipv6.unwrap_or_else(|| {
        n.options
            .as_ref()
            .and_then(|o| o.get(ENABLE_IPV6_OPTION))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    });
    Some(Network {
        id,
        enable_ipv6,
        internal,
        subnets: ipam_subnets(&name, n.ipam),
        name,
        driver,
        bridge: None,
        options: sorted(n.options),
        labels: sorted(n.labels),
    })
}

/// IPAM entries as subnets; an entry whose subnet does not parse is
/// skipped, a gateway that does not parse is dropped (the subnet is kept).
fn ipam_subnets(name: &str, ipam: Option<Ipam>) -> Vec<Subnet> {
    let mut subnets = Vec::new();
    for (i, config) in ipam
        .and_then(|ipam| ipam.config)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let subnet_text = config.subnet.unwrap_or_default();
        let subnet = match subnet_text.trim().parse::<IpNet>() {
            Ok(subnet) => subnet,
            Err(_) => {
                data_warn!(
                    "Docker network {}: IPAM.Config[{i}].Subnet {} is not a subnet; entry skipped",
                    clip(name),
                    quoted(&subnet_text)
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
                    data_warn!(
                        "Docker network {}: IPAM.Config[{i}].Gateway {} is not an address; ignored",
                        clip(name),
                        quoted(g)
                    );
                    None
                }
            },
        };
        subnets.push(Subnet { subnet, gateway });
    }
    subnets
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
        data_warn!(
            "Docker container {} without Id; skipped",
            quoted(c.name.as_deref().unwrap_or(""))
        );
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
            data_warn!(
                "Docker container {}: no Name; using its id",
                clip(short_id(&id))
            );
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
    let labels = own_labels(c.config.and_then(|config| config.labels));
    let settings = c.network_settings.unwrap_or_default();
    let docker_endpoints: BTreeMap<String, EndpointSettings> =
        settings.networks.unwrap_or_default().into_iter().collect();
    Some(Container {
        networks: endpoints(&name, &docker_endpoints),
        gateway_network: gateway_network(&docker_endpoints, internal_networks),
        ports: port_bindings(&name, settings.ports.unwrap_or_default()),
        id,
        name,
        labels,
    })
}

/// A container inspect answer as a container Docker is about to start: its
/// name, labels, networks (no addresses yet) and, in `ports`, the bindings
/// of its `HostConfig` (Docker's shape, `"80/tcp": [{"HostIp": "",
/// "HostPort": "8080"}]`). `None` unless its state is `created`.
pub fn created_container_from_docker(c: ContainerInspectResponse) -> Option<Container> {
    let created = c.state.as_ref().and_then(|s| s.status)
        == Some(bollard::models::ContainerStateStatusEnum::CREATED);
    let id = c.id.filter(|s| !s.is_empty() && created)?;
    let name = c
        .name
        .as_deref()
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| short_id(&id).to_string());
    let networks = c
        .network_settings
        .and_then(|s| s.networks)
        .unwrap_or_default()
        .into_keys()
        .map(|network| (network, Endpoint::default()))
        .collect();
    let bindings = c
        .host_config
        .and_then(|h| h.port_bindings)
        .unwrap_or_default();
    Some(Container {
        labels: own_labels(c.config.and_then(|config| config.labels)),
        networks,
        gateway_network: None,
        ports: port_bindings(&name, bindings),
        id,
        name,
    })
}

/// The containers' endpoints on [`GATEWAY_BRIDGE`] (by container id, with the IPv6 address
/// when there is a valid one), from that network's inspect: the only place Docker lists them
/// (see [`with_gateway_bridge`]). Entries that are not containers (`ingress-sbox`) are kept:
/// no container has their key for an id.
pub fn gateway_bridge_endpoints(n: NetworkInspect) -> BTreeMap<String, Endpoint> {
    let name = n.name.unwrap_or_default();
    n.containers
        .unwrap_or_default()
        .into_iter()
        .map(|(id, resource)| {
            let ipv6_address = resource.ipv6_address.as_deref().and_then(|text| {
                let address = text.split('/').next().unwrap_or(text).trim();
                match address.parse::<Ipv6Addr>() {
                    Ok(a) => Some(a),
                    Err(_) if address.is_empty() => None,
                    Err(_) => {
                        data_warn!(
                            "Docker network {}: Containers.{}.IPv6Address {} is not an IPv6 address; ignored",
                            clip(&name),
                            clip(short_id(&id)),
                            quoted(text)
                        );
                        None
                    }
                }
            });
            (id, Endpoint { ipv6_address })
        })
        .collect()
}

/// Whether the container may have an endpoint on [`GATEWAY_BRIDGE`] that its inspect does not
/// show: no network of its own gives it a gateway, yet it is on one that is neither `host` nor
/// `none` (an overlay: a swarm task, or a container on an attachable overlay).
pub fn may_have_hidden_gateway_bridge(container: &Container) -> bool {
    container.gateway_network.is_none()
        && !container.networks.contains_key(GATEWAY_BRIDGE)
        && container
            .networks
            .keys()
            .any(|n| !matches!(n.as_str(), "host" | "none"))
}

/// A container on overlay networks only gets from Docker a second endpoint, on
/// [`GATEWAY_BRIDGE`], which gives it its default routes (IPv4 and IPv6) and carries its
/// host-mode published ports; Docker's container inspect does not list it (20.10 and 28
/// alike), the bridge network's inspect does (`endpoints`, see [`gateway_bridge_endpoints`]).
/// Adds that endpoint and makes it the gateway network, so the published ports are DNAT'ed to
/// the address that answers. Nothing changes for a container that has a gateway of its own or
/// no endpoint there.
pub fn with_gateway_bridge(container: &mut Container, endpoints: &BTreeMap<String, Endpoint>) {
    if !may_have_hidden_gateway_bridge(container) {
        return;
    }
    let Some(endpoint) = endpoints.get(&container.id) else {
        return;
    };
    container
        .networks
        .insert(GATEWAY_BRIDGE.to_string(), endpoint.clone());
    container.gateway_network = Some(GATEWAY_BRIDGE.to_string());
}

/// Every network the container is on, with its IPv6 address when it has a
/// valid one (an unparsable `GlobalIPv6Address` is warned about).
fn endpoints(
    name: &str,
    docker_endpoints: &BTreeMap<String, EndpointSettings>,
) -> SortedMap<String, Endpoint> {
    let mut networks = Vec::new();
    for (network, endpoint) in docker_endpoints {
        let ipv6_address = match endpoint.global_ipv6_address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match text.parse::<Ipv6Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    data_warn!(
                        "container {}: NetworkSettings.Networks.{}.GlobalIPv6Address {} is not an IPv6 address; ignored",
                        clip(name),
                        clip(network),
                        quoted(text)
                    );
                    None
                }
            },
        };
        networks.push((network.clone(), Endpoint { ipv6_address }));
    }
    networks.into_iter().collect()
}

/// Docker's `NetworkSettings.Ports` in its own shape, but for bindings
/// without `HostIp` or `HostPort` (an absent host IP must not read as "all
/// addresses"): dropped with a warning.
fn port_bindings(
    name: &str,
    docker_ports: HashMap<String, Option<Vec<bollard::models::PortBinding>>>,
) -> SortedMap<CompactString, Option<Vec<PortBinding>>> {
    let mut ports = Vec::new();
    for (key, bindings) in docker_ports {
        let bindings = bindings.map(|bindings| {
            bindings
                .into_iter()
                .filter_map(|b| match (b.host_ip, b.host_port) {
                    // IPv4 bindings are Docker's own business (the planner
                    // skips them); not keeping them halves what a container
                    // published on both families costs in memory.
                    (Some(host_ip), Some(_)) if is_ipv4(&host_ip) => None,
                    (Some(host_ip), Some(host_port)) => Some(PortBinding {
                        host_ip: host_ip.into(),
                        host_port: host_port.into(),
                    }),
                    (ip, port) => {
                        data_warn!(
                            "container {}: NetworkSettings.Ports.{}: binding without HostIp or HostPort (HostIp {:?}, HostPort {:?}); skipped",
                            clip(name),
                            clip(&key),
                            ip.as_deref().map(clip),
                            port.as_deref().map(clip)
                        );
                        None
                    }
                })
                .collect()
        });
        ports.push((key.into(), bindings));
    }
    ports.into_iter().collect()
}

fn is_ipv4(host_ip: &str) -> bool {
    host_ip.trim().parse::<std::net::Ipv4Addr>().is_ok()
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
                network.as_str() == GATEWAY_BRIDGE,
                !has(&e.ipv6_gateway),
                std::cmp::Reverse(e.gw_priority.unwrap_or(0)),
                network.as_str(),
            )
        })
        .map(|(network, _)| network.clone())
}

/// A container's `dock6.*` labels: the only ones the planner reads. The
/// agent keeps every running container in memory, and images and compose
/// give each a dozen long labels of their own.
fn own_labels(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with(OWN_LABEL_PREFIX))
        .collect()
}

const OWN_LABEL_PREFIX: &str = "dock6.";

fn sorted(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}
