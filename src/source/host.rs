//! Host facts over rtnetlink: the IPv6 default route's interface and
//! gateways, each interface's global addresses, on-link prefixes (and which
//! of them the network handed out), neighbours and `accept_ra`, the prefixes
//! delegated to the host, and `all.forwarding`. A bridge's ports (each
//! container's veth) are not interfaces of the host's here.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

use futures::TryStreamExt as _;
use ipnet::Ipv6Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol, RouteType};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::apply::{is_bridge_port, link_names, read_sysctl};
use crate::snapshot::{HostFacts, Interface};

#[derive(Debug, thiserror::Error)]
#[error("reading host facts ({what}): {source}")]
pub struct HostFactsError {
    what: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// One IPv6 address as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressFact {
    pub ifindex: u32,
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    /// Tentative or DAD-failed: not usable yet.
    pub unusable: bool,
    /// Past its preferred lifetime.
    pub deprecated: bool,
    /// Has a lifetime (SLAAC, DHCPv6): handed out by the network, not
    /// configured on the host.
    pub dynamic: bool,
}

/// One IPv6 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFact {
    pub destination: Ipv6Net,
    pub gateway: Option<Ipv6Addr>,
    pub oif: Option<u32>,
    pub kind: RouteKind,
    /// Learned from a router advertisement or DHCP, or expires: the
    /// network's, not the host's own configuration.
    pub dynamic: bool,
}

/// What a route does with what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Unicast,
    /// Unreachable, blackhole or prohibit: how a prefix delegation client
    /// holds the whole delegated prefix (its parts routed more specifically).
    Reject,
    Other,
}

const RT_TABLE_MAIN: u8 = 254;

/// A neighbour-cache entry for an address another node answers for, or a
/// proxy entry dock6 made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourFact {
    pub ifindex: u32,
    pub address: Ipv6Addr,
    /// A proxy entry tagged as dock6's, rather than another node.
    pub dock6_proxy: bool,
}

/// Dumps links, addresses and routes, reads the neighbours of the
/// interfaces that may be the uplink, then assembles the facts.
///
/// A bridge's ports (every container's host-side veth) are left out before
/// anything else is read about them: they carry no address of the host's,
/// no on-link prefix and no neighbour (those are the bridge's), so the facts
/// and the work of a pass do not grow with the containers. The kernel still
/// sends each port's link, link-local address and `fe80::/64` route in the
/// dumps (they are dropped as they are read); neighbours are asked for per
/// interface, so a Docker bridge's hundreds of container entries are not.
pub async fn host_facts(handle: &Handle) -> Result<HostFacts, HostFactsError> {
    let state = link_state(handle).await?;
    host_facts_from(handle, &state).await
}

/// What the link, address and route dumps say, the bridge's ports left
/// out. Even without them the dumps grow with the containers (the kernel
/// sends each port's link, link-local address and routes, parsed and
/// dropped here: milliseconds a pass at a thousand containers), so the agent keeps this
/// between passes and dumps again only when a notification may have
/// changed it ([`LinkState::concerns`]).
#[derive(Debug, Clone, Default)]
pub struct LinkState {
    links: BTreeMap<u32, String>,
    addresses: Vec<AddressFact>,
    routes: Vec<RouteFact>,
}

/// Dumps links, addresses and routes.
pub async fn link_state(handle: &Handle) -> Result<LinkState, HostFactsError> {
    let links = link_names(handle).await.map_err(|e| HostFactsError {
        what: "links",
        source: e.into(),
    })?;
    let addresses = addresses(handle, &links).await?;
    let routes = routes(handle, &links).await?;
    Ok(LinkState {
        links,
        addresses,
        routes,
    })
}

/// The host facts from `state` and what is read afresh each time: the
/// neighbours of the interfaces that may be the uplink and dock6's proxy
/// entries (no notification comes for those), and the sysctls.
pub async fn host_facts_from(
    handle: &Handle,
    state: &LinkState,
) -> Result<HostFacts, HostFactsError> {
    let links = &state.links;
    let mut neighbours = Vec::new();
    for index in links_with_neighbours(links) {
        neighbours.extend(neighbours_of(handle, index).await?);
    }
    neighbours.extend(dock6_proxies(handle, links).await?);
    let mut facts = assemble(links, &state.addresses, &state.routes, &neighbours, |i| {
        read_sysctl(i, "accept_ra").ok()
    });
    facts.forwarding = read_sysctl("all", "forwarding").ok();
    Ok(facts)
}

impl LinkState {
    /// Whether a link, address or route notification may change what the
    /// dumps would say: an interface here renamed, made a port or gone, a
    /// new interface that is not a bridge's port, an address or route of an
    /// interface here, or a route through no interface (a reject route).
    /// Of a link, the dumps keep only its name and whether it is a port: a
    /// bridge's own notification when a port joins it (at every container
    /// start) changes neither. A port's link, addresses and routes never
    /// matter; nor does a new veth named as Docker names a container's host
    /// side, which is made a bridge's port a moment later.
    pub fn concerns(&self, message: &RouteNetlinkMessage) -> bool {
        match message {
            RouteNetlinkMessage::NewLink(link) => match self.links.get(&link.header.index) {
                Some(name) => {
                    is_bridge_port(&link.attributes)
                        || link_name(&link.attributes).is_some_and(|n| n != name)
                }
                None => !(is_bridge_port(&link.attributes) || docker_veth(&link.attributes)),
            },
            RouteNetlinkMessage::DelLink(link) => self.links.contains_key(&link.header.index),
            RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => {
                self.links.contains_key(&a.header.index)
            }
            RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
                let oif = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                });
                oif.is_none_or(|i| self.links.contains_key(&i))
            }
            _ => true,
        }
    }
}

/// A link named as Docker names a container's host-side veth: `veth` and
/// seven hex digits.
fn docker_veth(attributes: &[LinkAttribute]) -> bool {
    link_name(attributes).is_some_and(|name| {
        name.strip_prefix("veth")
            .is_some_and(|id| id.len() == 7 && id.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

fn link_name(attributes: &[LinkAttribute]) -> Option<&str> {
    attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

/// The interfaces whose neighbours may matter: any that could be the uplink.
/// Docker's bridges (by the names Docker gives them) hold one entry per
/// container that talked, and `lo` none.
fn links_with_neighbours(links: &BTreeMap<u32, String>) -> Vec<u32> {
    links
        .iter()
        .filter(|(_, name)| name.as_str() != "lo" && !crate::plan::docker_made_bridge_name(name))
        .map(|(index, _)| *index)
        .collect()
}

/// The pure part: which interface carries the default route, and what each
/// interface has. Link-local addresses and prefixes are left out.
pub fn assemble(
    links: &BTreeMap<u32, String>,
    addresses: &[AddressFact],
    routes: &[RouteFact],
    neighbours: &[NeighbourFact],
    accept_ra: impl Fn(&str) -> Option<u8>,
) -> HostFacts {
    let defaults = || {
        routes
            .iter()
            .filter(|r| r.kind == RouteKind::Unicast && r.destination.prefix_len() == 0)
    };
    let default_route_interface =
        defaults().find_map(|r| r.oif.and_then(|i| links.get(&i)).cloned());
    let neighbours_of = |index: u32, dock6: bool| -> Vec<Ipv6Addr> {
        neighbours
            .iter()
            .filter(|n| n.ifindex == index && n.dock6_proxy == dock6)
            .map(|n| n.address)
            .collect()
    };
    let interfaces = links
        .iter()
        .filter(|(_, name)| name.as_str() != "lo")
        .map(|(index, name)| {
            let usable: Vec<&AddressFact> = addresses
                .iter()
                .filter(|a| {
                    a.ifindex == *index && !a.unusable && !a.address.is_unicast_link_local()
                })
                .collect();
            let onlink: Vec<&RouteFact> = routes
                .iter()
                .filter(|r| {
                    r.kind == RouteKind::Unicast
                        && r.oif == Some(*index)
                        && r.gateway.is_none()
                        && r.destination.prefix_len() > 0
                        && r.destination.prefix_len() < 128
                        && !r.destination.addr().is_unicast_link_local()
                })
                .collect();
            Interface {
                name: name.clone(),
                accept_ra: accept_ra(name),
                addresses: usable
                    .iter()
                    .filter_map(|a| Ipv6Net::new(a.address, a.prefix_len).ok())
                    .collect(),
                onlink_prefixes: onlink.iter().map(|r| r.destination).collect(),
                neighbours: neighbours_of(*index, false),
                dock6_proxies: neighbours_of(*index, true),
                dynamic_prefixes: onlink
                    .iter()
                    .filter(|r| {
                        r.dynamic
                            || usable
                                .iter()
                                .any(|a| a.dynamic && r.destination.contains(&a.address))
                    })
                    .map(|r| r.destination)
                    .collect(),
                deprecated_addresses: usable
                    .iter()
                    .filter(|a| a.deprecated)
                    .map(|a| a.address)
                    .collect(),
            }
        })
        .collect();
    HostFacts {
        default_route_interface,
        default_routers: defaults().filter_map(|r| r.gateway).collect(),
        forwarding: None,
        forwarding_enabled_by_dock6: false,
        interfaces,
        delegated_prefixes: delegated_prefixes(routes),
        former_prefixes: Vec::new(),
    }
}

/// The prefixes a delegation client holds for the host: reject routes
/// (systemd-networkd, dhcpcd and odhcp6c install `unreachable`) for a
/// global prefix of /64 or shorter.
fn delegated_prefixes(routes: &[RouteFact]) -> Vec<Ipv6Net> {
    let mut out: Vec<Ipv6Net> = routes
        .iter()
        .filter(|r| {
            let p = r.destination;
            r.kind == RouteKind::Reject
                && (1..=64).contains(&p.prefix_len())
                && crate::plan::is_global_unicast(&p)
        })
        .map(|r| r.destination.trunc())
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn addresses(
    handle: &Handle,
    links: &BTreeMap<u32, String>,
) -> Result<Vec<AddressFact>, HostFactsError> {
    let err = |source: rtnetlink::Error| HostFactsError {
        what: "addresses",
        source: source.into(),
    };
    let mut stream = handle.address().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(err)? {
        let address = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V6(v6)) => Some(*v6),
            _ => None,
        });
        if let Some(address) = address
            && links.contains_key(&msg.header.index)
        {
            let flags = msg.header.flags;
            out.push(AddressFact {
                ifindex: msg.header.index,
                address,
                prefix_len: msg.header.prefix_len,
                unusable: flags.contains(AddressHeaderFlags::Tentative)
                    || flags.contains(AddressHeaderFlags::Dadfailed),
                deprecated: flags.contains(AddressHeaderFlags::Deprecated),
                dynamic: !flags.contains(AddressHeaderFlags::Permanent),
            });
        }
    }
    Ok(out)
}

/// Global addresses in one interface's neighbour cache that a node has
/// answered for (a link-layer address and a state other than incomplete or
/// failed). The kernel filters by interface; a kernel too old to do so sends
/// them all, and the others are dropped here.
async fn neighbours_of(handle: &Handle, index: u32) -> Result<Vec<NeighbourFact>, HostFactsError> {
    let err = |source: rtnetlink::Error| HostFactsError {
        what: "neighbours",
        source: source.into(),
    };
    let mut request = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet6);
    request
        .message_mut()
        .attributes
        .push(NeighbourAttribute::IfIndex(index));
    let mut stream = request.execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(err)? {
        let answered = matches!(
            msg.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
        );
        let has_lladdr = msg
            .attributes
            .iter()
            .any(|a| matches!(a, NeighbourAttribute::LinkLayerAddress(l) if !l.is_empty()));
        let address = msg.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(*a),
            _ => None,
        });
        if let Some(address) = address.filter(|a| !a.is_unicast_link_local())
            && msg.header.ifindex == index
            && answered
            && has_lladdr
            && !msg.header.flags.contains(NeighbourFlags::Proxy)
        {
            out.push(NeighbourFact {
                ifindex: msg.header.ifindex,
                address,
                dock6_proxy: false,
            });
        }
    }
    Ok(out)
}

/// dock6's own proxy entries (one read of the proxy table).
async fn dock6_proxies(
    handle: &Handle,
    links: &BTreeMap<u32, String>,
) -> Result<Vec<NeighbourFact>, HostFactsError> {
    // The links are already dumped: no second link dump per pass.
    let entries = crate::apply::list_with_names(handle, links)
        .await
        .map_err(|e| HostFactsError {
            what: "proxy-NDP entries",
            source: e.into(),
        })?;
    Ok(entries
        .into_iter()
        .filter(|e| e.is_dock6())
        .map(|e| NeighbourFact {
            ifindex: e.ifindex,
            address: e.address,
            dock6_proxy: true,
        })
        .collect())
}

/// The main table's IPv6 routes, but those through a link left out (a
/// bridge's port: its `fe80::/64`).
async fn routes(
    handle: &Handle,
    links: &BTreeMap<u32, String>,
) -> Result<Vec<RouteFact>, HostFactsError> {
    let err = |source: rtnetlink::Error| HostFactsError {
        what: "routes",
        source: source.into(),
    };
    let mut stream = handle
        .route()
        .get(RouteMessageBuilder::<Ipv6Addr>::new().build())
        .execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(err)? {
        if msg.header.table != RT_TABLE_MAIN {
            continue;
        }
        let mut destination = Ipv6Addr::UNSPECIFIED;
        let mut gateway = None;
        let mut oif = None;
        let mut expires = false;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = *a,
                RouteAttribute::Gateway(RouteAddress::Inet6(a)) => gateway = Some(*a),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Expires(_) => expires = true,
                _ => {}
            }
        }
        let Ok(destination) = Ipv6Net::new(destination, msg.header.destination_prefix_length)
        else {
            continue;
        };
        if oif.is_some_and(|i| !links.contains_key(&i)) {
            continue;
        }
        out.push(RouteFact {
            destination,
            gateway,
            oif,
            kind: match msg.header.kind {
                RouteType::Unicast => RouteKind::Unicast,
                RouteType::Unreachable | RouteType::BlackHole | RouteType::Prohibit => {
                    RouteKind::Reject
                }
                _ => RouteKind::Other,
            },
            dynamic: expires
                || matches!(msg.header.protocol, RouteProtocol::Ra | RouteProtocol::Dhcp),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, gw: Option<&str>, oif: u32) -> RouteFact {
        RouteFact {
            destination: dst.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            oif: Some(oif),
            kind: RouteKind::Unicast,
            dynamic: false,
        }
    }

    fn address(ifindex: u32, address: &str, prefix_len: u8) -> AddressFact {
        AddressFact {
            ifindex,
            address: address.parse().unwrap(),
            prefix_len,
            unusable: false,
            deprecated: false,
            dynamic: false,
        }
    }

    #[test]
    fn default_route_interface_addresses_and_onlink_prefixes() {
        let links = BTreeMap::from([
            (1, "lo".to_string()),
            (2, "eth0.100".to_string()),
            (3, "docker0".to_string()),
        ]);
        let addresses = vec![
            AddressFact {
                ifindex: 2,
                address: "2001:db8:1::10".parse().unwrap(),
                prefix_len: 64,
                unusable: false,
                deprecated: false,
                dynamic: false,
            },
            AddressFact {
                ifindex: 2,
                address: "fe80::1".parse().unwrap(),
                prefix_len: 64,
                unusable: false,
                deprecated: false,
                dynamic: false,
            },
            AddressFact {
                ifindex: 2,
                address: "2001:db8:1::11".parse().unwrap(),
                prefix_len: 64,
                unusable: true,
                deprecated: false,
                dynamic: false,
            },
            AddressFact {
                ifindex: 3,
                address: "fd00:d0c::1".parse().unwrap(),
                prefix_len: 64,
                unusable: false,
                deprecated: false,
                dynamic: false,
            },
        ];
        let routes = vec![
            route("::/0", Some("fe80::1"), 2),
            route("2001:db8:1::/64", None, 2),
            route("fe80::/64", None, 2),
            route("2001:db8:9::/48", Some("2001:db8:1::1"), 2),
            route("fd00:d0c::/64", None, 3),
        ];
        let facts = assemble(&links, &addresses, &routes, &[], |name| {
            (name == "eth0.100").then_some(1)
        });
        assert_eq!(facts.default_route_interface.as_deref(), Some("eth0.100"));
        let up = facts.interface("eth0.100").unwrap();
        assert_eq!(up.accept_ra, Some(1));
        assert_eq!(
            up.addresses,
            vec!["2001:db8:1::10/64".parse::<Ipv6Net>().unwrap()]
        );
        assert_eq!(
            up.onlink_prefixes,
            vec!["2001:db8:1::/64".parse::<Ipv6Net>().unwrap()]
        );
        assert!(facts.interface("lo").is_none());
        assert_eq!(facts.interface("docker0").unwrap().onlink_prefixes.len(), 1);
    }

    #[test]
    fn prefixes_from_the_network_deprecated_addresses_and_delegations() {
        let links = BTreeMap::from([(2, "eth0".to_string())]);
        let slaac = AddressFact {
            dynamic: true,
            ..address(2, "2001:db8:a::10", 64)
        };
        let old = AddressFact {
            dynamic: true,
            deprecated: true,
            ..address(2, "2001:db8:9::10", 64)
        };
        let routes = vec![
            route("::/0", Some("fe80::1"), 2),
            // Static, with a static address.
            route("2001:db8:1::/64", None, 2),
            // The address in it has a lifetime.
            route("2001:db8:a::/64", None, 2),
            // Announced by the router (proto ra / expires).
            RouteFact {
                dynamic: true,
                ..route("2001:db8:b::/64", None, 2)
            },
            route("2001:db8:9::/64", None, 2),
            RouteFact {
                kind: RouteKind::Reject,
                oif: Some(1),
                ..route("2001:db8:100::/56", None, 1)
            },
            // Not delegations: a ULA, a host route, a unicast /48.
            RouteFact {
                kind: RouteKind::Reject,
                ..route("fd00:1::/48", None, 1)
            },
            RouteFact {
                kind: RouteKind::Reject,
                ..route("2001:db8:7::1/128", None, 1)
            },
            route("2001:db8:200::/48", Some("fe80::1"), 2),
        ];
        let addresses = vec![address(2, "2001:db8:1::10", 64), slaac, old];
        let facts = assemble(&links, &addresses, &routes, &[], |_| None);
        let up = facts.interface("eth0").unwrap();
        let nets = |v: &[&str]| {
            v.iter()
                .map(|s| s.parse().unwrap())
                .collect::<Vec<Ipv6Net>>()
        };
        assert_eq!(
            up.dynamic_prefixes,
            nets(&["2001:db8:a::/64", "2001:db8:b::/64", "2001:db8:9::/64"])
        );
        assert_eq!(
            up.deprecated_addresses,
            vec!["2001:db8:9::10".parse::<Ipv6Addr>().unwrap()]
        );
        assert_eq!(facts.delegated_prefixes, nets(&["2001:db8:100::/56"]));
    }

    #[test]
    fn no_default_route_means_no_uplink() {
        let links = BTreeMap::from([(2, "eth0".to_string())]);
        let facts = assemble(
            &links,
            &[],
            &[route("2001:db8:1::/64", None, 2)],
            &[],
            |_| None,
        );
        assert_eq!(facts.default_route_interface, None);
    }

    /// A container's veth (a bridge's port, or a veth named as Docker names
    /// one, about to be made a port) changes nothing the dumps say; the
    /// interfaces dock6 reads, a new one of the operator's, and a route
    /// through no interface do.
    #[test]
    fn only_notifications_about_the_hosts_own_interfaces_concern_the_dumps() {
        use rtnetlink::packet_route::address::AddressMessage;
        use rtnetlink::packet_route::link::LinkMessage;
        use rtnetlink::packet_route::route::RouteMessage;
        let state = LinkState {
            links: BTreeMap::from([(2, "eth0".to_string()), (3, "br-0123456789ab".to_string())]),
            ..LinkState::default()
        };
        let link = |index: u32, name: &str| {
            let mut l = LinkMessage::default();
            l.header.index = index;
            l.attributes.push(LinkAttribute::IfName(name.to_string()));
            RouteNetlinkMessage::NewLink(l)
        };
        let address = |index: u32| {
            let mut a = AddressMessage::default();
            a.header.index = index;
            RouteNetlinkMessage::NewAddress(a)
        };
        let route = |oif: Option<u32>| {
            let mut r = RouteMessage::default();
            r.attributes.extend(oif.map(RouteAttribute::Oif));
            RouteNetlinkMessage::NewRoute(r)
        };
        assert!(
            !state.concerns(&link(10, "veth0a1b2c3")),
            "a container's veth"
        );
        assert!(!state.concerns(&address(10)), "its link-local address");
        assert!(!state.concerns(&route(Some(10))), "its fe80::/64");
        assert!(
            state.concerns(&link(11, "br-lan")),
            "the operator's new bridge"
        );
        assert!(
            state.concerns(&link(12, "veth0")),
            "a veth of the operator's"
        );
        assert!(
            !state.concerns(&link(3, "br-0123456789ab")),
            "a bridge's own notification as a port joins it"
        );
        assert!(state.concerns(&link(2, "eth1")), "the uplink renamed");
        let mut gone = LinkMessage::default();
        gone.header.index = 2;
        assert!(
            state.concerns(&RouteNetlinkMessage::DelLink(gone)),
            "the uplink gone"
        );
        let mut unknown_gone = LinkMessage::default();
        unknown_gone.header.index = 10;
        assert!(
            !state.concerns(&RouteNetlinkMessage::DelLink(unknown_gone)),
            "a veth gone"
        );
        assert!(state.concerns(&address(2)));
        assert!(state.concerns(&route(Some(3))));
        assert!(state.concerns(&route(None)), "a reject route");
    }
}
