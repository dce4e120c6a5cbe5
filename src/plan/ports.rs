//! Per-container decisions: where published ports go, what is open at the
//! container's own addresses, which addresses are sealed.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use super::egress::EGRESS_LABEL;
use super::labels::{EXPOSE_LABEL, Expose, parse_expose};
use super::{Mode, NetworkPlan, Note};
use crate::nft::L4Proto;
use crate::snapshot::{Container, PortBinding};
use crate::text::{clip, quoted};

/// A container's address on a network dock6 manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    pub network: String,
    pub address: Ipv6Addr,
    pub mode: Mode,
    pub internal: bool,
}

/// Where a published binding listens on IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Listen {
    /// `::` or no host IP: every local address.
    Any,
    /// One specific host address.
    Addr(Ipv6Addr),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Published {
    pub listen: Listen,
    pub proto: L4Proto,
    pub host_port: u16,
    pub target: Ipv6Addr,
    pub container_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ContainerPlan {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub sealed: bool,
    pub published: Vec<Published>,
    /// (address, proto, port) open at the container's own address.
    pub open: BTreeSet<(Ipv6Addr, L4Proto, u16)>,
    /// The `dock6.egress-address` label as given (checked against the
    /// uplink in `egress.rs`).
    pub egress_label: Option<String>,
}

/// What is published to and open at `container` on the managed `networks`.
pub(super) fn container_plan(
    container: &Container,
    networks: &[NetworkPlan],
    notes: &mut Vec<Note>,
) -> ContainerPlan {
    let (expose, malformed) = expose_label(container, notes);
    let mut plan = ContainerPlan {
        name: container.name.clone(),
        endpoints: managed_endpoints(container, networks, notes),
        sealed: expose == Expose::Sealed,
        published: Vec::new(),
        open: BTreeSet::new(),
        egress_label: container.labels.get(EGRESS_LABEL).cloned(),
    };
    if plan.endpoints.is_empty() {
        return plan;
    }
    let bindings = ipv6_bindings(container, notes);
    if plan.sealed {
        if !bindings.is_empty() && !malformed {
            notes.push(Note::info(format!(
                "container {}: {EXPOSE_LABEL}=false, its published ports are not reachable on IPv6",
                quoted(&container.name)
            )));
        }
        return plan;
    }
    plan.published = published(container, &plan.endpoints, &bindings, notes);
    plan.open = open_at_own_addresses(&plan.endpoints, &bindings, &expose);
    plan
}

/// The host ports a container Docker is still starting is to publish on
/// IPv6: those [`container_plan`] will DNAT once it runs and has an
/// address (a binding on a network dock6 filters, not internal, the
/// container not sealed). Docker holds them from the start of its start on,
/// with a socket that never accepts; dock6 refuses connections to them
/// until the DNAT is in. Notes are left to the plan of the running
/// container.
pub(super) fn starting_ports(
    container: &Container,
    networks: &[NetworkPlan],
) -> Vec<(Listen, L4Proto, u16)> {
    let reachable = container.networks.keys().any(|name| {
        networks
            .iter()
            .any(|n| &n.name == name && n.mode.filtered() && !n.internal)
    });
    let mut ignored = Vec::new();
    if !reachable || expose_label(container, &mut ignored).0 == Expose::Sealed {
        return Vec::new();
    }
    ipv6_bindings(container, &mut ignored)
        .into_iter()
        .filter_map(|b| Some((b.listen, b.proto, b.host_port?)))
        .collect()
}

/// The `dock6.expose` label; a malformed value fails closed (as `false`,
/// with a warning). The flag says it was malformed.
fn expose_label(container: &Container, notes: &mut Vec<Note>) -> (Expose, bool) {
    let Some(value) = container.labels.get(EXPOSE_LABEL) else {
        return (Expose::Default, false);
    };
    match parse_expose(value) {
        Ok(expose) => (expose, false),
        Err(why) => {
            notes.push(Note::warn(format!(
                "container {}: label {EXPOSE_LABEL}={} is malformed ({why}); failing closed: nothing inbound on IPv6",
                quoted(&container.name),
                quoted(value)
            )));
            (Expose::Sealed, true)
        }
    }
}

/// The bindings DNAT'ed to the container's target address, if it has one.
fn published(
    container: &Container,
    endpoints: &[Endpoint],
    bindings: &[Binding],
    notes: &mut Vec<Note>,
) -> Vec<Published> {
    let Some(target) = dnat_target(container, endpoints) else {
        if bindings.iter().any(|b| b.host_port.is_some()) {
            notes.push(Note::info(format!(
                "container {}: published ports not DNAT'ed on IPv6: no IPv6 address on a non-internal managed network",
                quoted(&container.name)
            )));
        }
        return Vec::new();
    };
    bindings
        .iter()
        .filter_map(|b| {
            Some(Published {
                listen: b.listen,
                proto: b.proto,
                host_port: b.host_port?,
                target,
                container_port: b.container_port,
            })
        })
        .collect()
}

/// Published container ports and `dock6.expose`d ones, open at the
/// container's own addresses where those are reachable (routed/ndp-proxy).
fn open_at_own_addresses(
    endpoints: &[Endpoint],
    bindings: &[Binding],
    expose: &Expose,
) -> BTreeSet<(Ipv6Addr, L4Proto, u16)> {
    let mut ports: BTreeSet<(L4Proto, u16)> = bindings
        .iter()
        .map(|b| (b.proto, b.container_port))
        .collect();
    if let Expose::Ports(extra) = expose {
        ports.extend(extra.iter().copied());
    }
    endpoints
        .iter()
        .filter(|e| e.mode.addresses_reachable() && !e.internal)
        .flat_map(|e| ports.iter().map(|(proto, port)| (e.address, *proto, *port)))
        .collect()
}

/// The container's addresses on networks dock6 filters. An address that
/// cannot be the container's on that network (outside its subnets,
/// link-local, multicast, unspecified) is left out with a warning: it must
/// never become a set element, a DNAT target or a proxy entry.
fn managed_endpoints(
    container: &Container,
    networks: &[NetworkPlan],
    notes: &mut Vec<Note>,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for (name, ep) in &container.networks {
        let Some(network) = networks
            .iter()
            .find(|n| &n.name == name && n.mode.filtered())
        else {
            continue;
        };
        let Some(address) = ep.ipv6_address else {
            continue;
        };
        if let Some(why) = odd_address(address, network) {
            notes.push(Note::warn(format!(
                "container {} (network {}): address {address} {why}; left out",
                quoted(&container.name),
                quoted(name)
            )));
            continue;
        }
        out.push(Endpoint {
            network: name.clone(),
            address,
            mode: network.mode,
            internal: network.internal,
        });
    }
    out
}

fn odd_address(address: Ipv6Addr, network: &NetworkPlan) -> Option<&'static str> {
    if address.is_unspecified() {
        Some("is unspecified")
    } else if address.is_loopback() {
        Some("is loopback")
    } else if address.to_ipv4_mapped().is_some() {
        Some("is IPv4-mapped")
    } else if address.is_multicast() {
        Some("is multicast")
    } else if address.is_unicast_link_local() {
        Some("is link-local")
    } else if !network.subnets.iter().any(|s| s.contains(&address)) {
        Some("is outside the network's subnets")
    } else {
        None
    }
}

/// The container's address on the network giving its default gateway, else
/// on its first IPv6 network by name (endpoints are sorted by name).
fn dnat_target(container: &Container, endpoints: &[Endpoint]) -> Option<Ipv6Addr> {
    let usable = || endpoints.iter().filter(|e| !e.internal);
    container
        .gateway_network
        .as_ref()
        .and_then(|gw| usable().find(|e| &e.network == gw))
        .or_else(|| usable().next())
        .map(|e| e.address)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Binding {
    listen: Listen,
    proto: L4Proto,
    /// `None`: Docker published no host port (see [`classify`]); the container port is only
    /// open at the container's own addresses.
    host_port: Option<u16>,
    container_port: u16,
}

/// The bindings Docker reports that publish on IPv6. IPv4 ones are Docker's
/// business; `[::1]` and link-local ones cannot be DNAT'ed and are noted.
fn ipv6_bindings(container: &Container, notes: &mut Vec<Note>) -> Vec<Binding> {
    let mut out = BTreeSet::new();
    for (key, bindings) in &container.ports {
        let Some(bindings) = bindings else { continue };
        let Some((container_port, proto)) = parse_port_key(key) else {
            notes.push(Note::warn(format!(
                "container {}: port {} not understood (expected like 80/tcp); skipped",
                quoted(&container.name),
                quoted(key)
            )));
            continue;
        };
        for binding in bindings {
            match classify(binding) {
                Ok(Some((listen, host_port))) => {
                    out.insert(Binding {
                        listen,
                        proto,
                        host_port,
                        container_port,
                    });
                }
                Ok(None) => {}
                Err(why) => notes.push(Note::info(format!(
                    "container {}: binding [{}]:{}->{} skipped: {why}",
                    quoted(&container.name),
                    clip(&binding.host_ip),
                    clip(&binding.host_port),
                    clip(key)
                ))),
            }
        }
    }
    out.into_iter().collect()
}

fn parse_port_key(key: &str) -> Option<(u16, L4Proto)> {
    let (port, proto) = key.split_once('/')?;
    let proto = match proto {
        "tcp" => L4Proto::Tcp,
        "udp" => L4Proto::Udp,
        _ => return None,
    };
    Some((port.parse().ok().filter(|p| *p > 0)?, proto))
}

/// `Ok(None)` for an IPv4 binding, `Err` for an IPv6 one that cannot work.
/// An empty host port is how Docker ≥ 28 reports `-p` on a container whose
/// IPv6 gateway network is in `gateway_mode_ipv6=routed`: no port on the
/// host, the container port open at the container's own address.
fn classify(binding: &PortBinding) -> Result<Option<(Listen, Option<u16>)>, String> {
    let listen = match binding.host_ip.trim() {
        "" | "::" => Listen::Any,
        text => match text
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            Ok(IpAddr::V4(_)) => return Ok(None),
            Ok(IpAddr::V6(a)) if a.is_loopback() => {
                return Err("[::1] cannot be NATed in IPv6".into());
            }
            Ok(IpAddr::V6(a)) if a.is_unicast_link_local() => {
                return Err("link-local destinations are never DNAT'ed".into());
            }
            Ok(IpAddr::V6(a)) if a.to_ipv4_mapped().is_some() => return Ok(None),
            Ok(IpAddr::V6(a)) => Listen::Addr(a),
            Err(_) => return Err(format!("host IP {} is not an address", quoted(text))),
        },
    };
    let host_port = binding.host_port.trim();
    if host_port.is_empty() {
        return Ok(Some((listen, None)));
    }
    match host_port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(Some((listen, Some(p)))),
        _ => Err(format!(
            "host port {} is not a port number",
            quoted(&binding.host_port)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: ip.into(),
            host_port: port.into(),
        }
    }

    #[test]
    fn classify_bindings() {
        assert_eq!(
            classify(&binding("::", "8080")),
            Ok(Some((Listen::Any, Some(8080))))
        );
        assert_eq!(
            classify(&binding("", "8080")),
            Ok(Some((Listen::Any, Some(8080))))
        );
        assert_eq!(classify(&binding("0.0.0.0", "8080")), Ok(None));
        assert_eq!(classify(&binding("127.0.0.1", "8080")), Ok(None));
        assert!(
            classify(&binding("::1", "8080"))
                .unwrap_err()
                .contains("[::1]")
        );
        assert!(
            classify(&binding("fe80::1", "8080"))
                .unwrap_err()
                .contains("link-local")
        );
        let a: Ipv6Addr = "2001:db8::5".parse().unwrap();
        assert_eq!(
            classify(&binding("2001:db8::5", "53")),
            Ok(Some((Listen::Addr(a), Some(53))))
        );
        // Docker 28, routed gateway mode: open at the container, no host port.
        assert_eq!(classify(&binding("::", "")), Ok(Some((Listen::Any, None))));
        assert!(classify(&binding("::", "0")).is_err());
        assert!(classify(&binding("::", "http")).is_err());
        assert!(classify(&binding("nonsense", "80")).is_err());
    }

    #[test]
    fn port_keys() {
        assert_eq!(parse_port_key("80/tcp"), Some((80, L4Proto::Tcp)));
        assert_eq!(parse_port_key("53/udp"), Some((53, L4Proto::Udp)));
        assert_eq!(parse_port_key("9/sctp"), None);
        assert_eq!(parse_port_key("80"), None);
    }
}
