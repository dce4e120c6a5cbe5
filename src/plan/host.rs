//! Host-side state: sysctls (in the order they must be applied) and
//! proxy-NDP entries.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::nptv6::map_address;
use super::ports::{ContainerPlan, Endpoint};
use super::{HostRoute, Mode, NetworkPlan, Note, ProxyEntry, SysctlSetting};
use crate::snapshot::{HostFacts, Interface};
use crate::text::quoted;

pub(super) fn sysctls(
    host: &HostFacts,
    uplink_facts: Option<&Interface>,
    uplink: Option<&str>,
    networks: &[NetworkPlan],
    notes: &mut Vec<Note>,
) -> Vec<SysctlSetting> {
    let managed = networks.iter().any(|n| n.mode.forwards());
    if !managed {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(uplink) = uplink {
        let current = uplink_facts.and_then(|f| f.accept_ra);
        if current == Some(0) {
            notes.push(Note::info(format!(
                "uplink {uplink}: accept_ra is 0 (static configuration); left as it is"
            )));
        } else {
            out.push(SysctlSetting {
                scope: uplink.to_string(),
                name: "accept_ra".into(),
                value: 2,
                current,
                keep_if: Some(0),
                reason:
                    "keep the RA-learned default route once forwarding is on (before forwarding)"
                        .into(),
            });
        }
    }
    let reason = if host.forwarding == Some(0) || host.forwarding_enabled_by_dock6 {
        "route container traffic (it was 0: only Docker traffic is forwarded)"
    } else {
        "route container traffic"
    };
    out.push(SysctlSetting {
        scope: "all".into(),
        name: "forwarding".into(),
        value: 1,
        current: host.forwarding,
        keep_if: None,
        reason: reason.into(),
    });
    let onlink = uplink_facts
        .map(|u| u.onlink_prefixes.as_slice())
        .unwrap_or(&[]);
    let proxied = |n: &NetworkPlan| {
        n.mode == Mode::NdpProxy || n.nptv6.is_some_and(|p| inside_onlink(&p, onlink))
    };
    if let Some(uplink) = uplink
        && networks.iter().any(proxied)
    {
        out.push(SysctlSetting {
            scope: uplink.to_string(),
            name: "proxy_ndp".into(),
            value: 1,
            current: None,
            keep_if: None,
            reason: "answer neighbour solicitations for ndp-proxy containers".into(),
        });
    }
    out
}

/// One entry per container address on a (non-internal) ndp-proxy network,
/// on the uplink. Sealed containers get one too: their own outbound replies
/// need the upstream router to find them. An address dock6 cannot own — not
/// inside both its network's subnet and an on-link prefix, the host's own,
/// the default router's, or one another node on the link answers for — gets
/// no entry (and so no unsolicited NA that would override the real owner),
/// with a note naming the container.
pub(super) fn proxy_entries(
    others: &Others,
    uplink: Option<&str>,
    uplink_facts: Option<&Interface>,
    networks: &[NetworkPlan],
    containers: &[ContainerPlan],
    notes: &mut Vec<Note>,
) -> Vec<ProxyEntry> {
    let Some(uplink) = uplink else {
        return Vec::new();
    };
    let mut entries: Vec<ProxyEntry> = Vec::new();
    for c in containers {
        for e in &c.endpoints {
            if let Some(entry) = mapped_entry(others, uplink, uplink_facts, networks, c, e, notes) {
                entries.push(entry);
                continue;
            }
            let Some(network) = networks
                .iter()
                .find(|n| n.name == e.network && n.mode == Mode::NdpProxy && !n.internal)
            else {
                continue;
            };
            match refusal(others, uplink_facts, network, e.address) {
                Some(why) => notes.push(Note::warn(format!(
                    "container {} (network {}): no proxy-NDP entry for {}: {why}",
                    quoted(&c.name),
                    network.name,
                    e.address
                ))),
                None => entries.push(ProxyEntry {
                    interface: uplink.to_string(),
                    address: e.address,
                    container: c.name.clone(),
                    network: e.network.clone(),
                }),
            }
        }
    }
    entries.sort();
    entries.dedup_by(|a, b| a.address == b.address);
    entries
}

/// The entry for an `nptv6` container's mapped address, where the mapped
/// prefix lies inside an on-link prefix of the uplink (the upstream router
/// asks for it by neighbour solicitation); a mapped address someone else
/// answers for gets none, with a note.
fn mapped_entry(
    others: &Others,
    uplink: &str,
    uplink_facts: Option<&Interface>,
    networks: &[NetworkPlan],
    c: &ContainerPlan,
    e: &Endpoint,
    notes: &mut Vec<Note>,
) -> Option<ProxyEntry> {
    let network = networks
        .iter()
        .find(|n| n.name == e.network && !n.internal)?;
    let (subnet, prefix) = (network.subnets.first()?, network.nptv6?);
    let onlink = uplink_facts
        .map(|u| u.onlink_prefixes.as_slice())
        .unwrap_or(&[]);
    if !inside_onlink(&prefix, onlink) {
        return None;
    }
    let address = map_address(e.address, subnet, &prefix);
    if let Some(why) = others.claim(address) {
        notes.push(Note::warn(format!(
            "container {} (network {}): no proxy-NDP entry for its mapped address {address}: {why}",
            quoted(&c.name),
            network.name
        )));
        return None;
    }
    Some(ProxyEntry {
        interface: uplink.to_string(),
        address,
        container: c.name.clone(),
        network: e.network.clone(),
    })
}

fn inside_onlink(prefix: &Ipv6Net, onlink: &[Ipv6Net]) -> bool {
    onlink.iter().any(|p| p.contains(prefix))
}

/// Why dock6 must not answer neighbour solicitations for `address`, if so.
fn refusal(
    others: &Others,
    uplink: Option<&Interface>,
    network: &NetworkPlan,
    address: Ipv6Addr,
) -> Option<&'static str> {
    let onlink = uplink.map(|u| u.onlink_prefixes.as_slice()).unwrap_or(&[]);
    if !network.subnets.iter().any(|s| s.contains(&address)) {
        return Some("it is outside the network's subnets");
    }
    if !onlink.iter().any(|p| p.contains(&address)) {
        return Some("it is outside the uplink's on-link prefixes");
    }
    others.claim(address)
}

/// The addresses that belong to someone other than a container: the host's
/// own, the default routers', and those another node answers for on the
/// uplink (unless dock6 already proxies them: a neighbour entry planted
/// later does not take one away). Link-local addresses are left out: no
/// container address is one (such an endpoint is dropped before), and they
/// come and go with every container's veth, which would otherwise make
/// every container's plan depend on every other container's interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Others {
    host: BTreeSet<Ipv6Addr>,
    routers: BTreeSet<Ipv6Addr>,
    neighbours: BTreeSet<Ipv6Addr>,
}

impl Others {
    pub fn new(host: &HostFacts, uplink: Option<&Interface>) -> Others {
        let host_addresses = host
            .interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().map(|a| a.addr()))
            .filter(|a| !a.is_unicast_link_local())
            .collect();
        let neighbours = uplink
            .map(|u| {
                u.neighbours
                    .iter()
                    .filter(|a| !u.dock6_proxies.contains(a))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        Others {
            host: host_addresses,
            routers: host.default_routers.iter().copied().collect(),
            neighbours,
        }
    }

    /// Why `address` is someone else's, if it is.
    pub fn claim(&self, address: Ipv6Addr) -> Option<&'static str> {
        if self.host.contains(&address) {
            Some("it is one of the host's own addresses")
        } else if self.routers.contains(&address) {
            Some("it is the default router's address")
        } else if self.neighbours.contains(&address) {
            Some("another node on the uplink already answers for it")
        } else {
            None
        }
    }
}

/// A route into the bridge for each proxied address on a network whose
/// subnet covers an on-link prefix of the uplink (see [`HostRoute`]).
pub(super) fn host_routes(
    uplink: Option<&Interface>,
    networks: &[NetworkPlan],
    proxies: &[ProxyEntry],
) -> Vec<HostRoute> {
    let onlink = uplink.map(|u| u.onlink_prefixes.as_slice()).unwrap_or(&[]);
    let covers_link = |n: &NetworkPlan| {
        n.subnets
            .iter()
            .any(|s| onlink.iter().any(|p| s.contains(p)))
    };
    let mut routes: Vec<HostRoute> = proxies
        .iter()
        .filter_map(|e| {
            let network = networks.iter().find(|n| n.name == e.network)?;
            covers_link(network).then(|| HostRoute {
                address: e.address,
                interface: network.bridge.clone(),
                container: e.container.clone(),
            })
        })
        .collect();
    routes.sort();
    routes
}
