//! Kernel proxy-NDP entries (`ip -6 neigh add proxy ADDR dev IF`), over
//! rtnetlink.
//!
//! Every entry dock6 adds carries the neighbour protocol attribute
//! (`NDA_PROTOCOL`) set to [`DOCK6_NEIGH_PROTOCOL`]: that tag is how dock6
//! knows its own entries after a restart, and the only thing cleanup and sync
//! ever delete. Entries without the tag (added by the operator or another
//! tool) are never touched, not even re-tagged.
//!
//! The kernel sends no notifications for proxy entries: the reconcile loop
//! must verify them by dump ([`list_proxy_entries`]).
//!
//! Interface names are resolved to indices here, with one link dump per call,
//! never in the planner.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{InfoPortKind, LinkAttribute, LinkExtentMask, LinkInfo};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
};
use rtnetlink::packet_route::route::RouteProtocol;
use tracing::{debug, info, warn};

use super::{HostError, progress};
use crate::plan::ProxyEntry;

/// The `NDA_PROTOCOL` value that marks a proxy-NDP entry as dock6's own
/// (`ip -6 neigh show proxy` prints it as `proto 214`). It is outside the
/// values iproute2 names in `/etc/iproute2/rt_protos` (0–18, 42, 99, 186–192);
/// the kernel stores it for proxy entries and dumps it back (checked by the
/// namespace tests).
pub const DOCK6_NEIGH_PROTOCOL: u8 = 0xd6;

/// One proxy-NDP entry as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyNeighbour {
    /// 0 for an entry bound to no interface.
    pub ifindex: u32,
    /// The interface's name, when the index resolved to one.
    pub interface: Option<String>,
    pub address: Ipv6Addr,
    /// The `NDA_PROTOCOL` value, 0 when the entry has none.
    pub protocol: u8,
}

impl ProxyNeighbour {
    /// Whether dock6 added this entry.
    pub fn is_dock6(&self) -> bool {
        self.protocol == DOCK6_NEIGH_PROTOCOL
    }

    fn interface_label(&self) -> String {
        match &self.interface {
            Some(name) => name.clone(),
            None => format!("ifindex {}", self.ifindex),
        }
    }
}

impl std::fmt::Display for ProxyNeighbour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} dev {} proto {}",
            self.address,
            self.interface_label(),
            self.protocol
        )
    }
}

/// What [`sync_proxy_entries`] did.
#[derive(Debug, Default)]
pub struct ProxySyncReport {
    /// Entries added (tagged as dock6's).
    pub added: Vec<ProxyEntry>,
    /// dock6 entries that were no longer wanted and have been deleted.
    pub removed: Vec<ProxyNeighbour>,
    /// Wanted entries that were already there with dock6's tag.
    pub unchanged: usize,
    /// Wanted entries already present *without* dock6's tag: they answer
    /// for the address already, so dock6 leaves them (and never deletes them).
    pub foreign: Vec<ProxyNeighbour>,
    /// Per-entry failures (the others were still applied).
    pub errors: Vec<HostError>,
}

impl ProxySyncReport {
    /// Whether the kernel now holds every wanted entry and no stale dock6 one.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether the sync changed anything.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

fn netlink(what: String) -> impl FnOnce(rtnetlink::Error) -> HostError {
    move |source| HostError::Netlink { what, source }
}

/// Interface index → name of every link but a bridge's ports, from one
/// link dump without the statistics the kernel would add to each link.
///
/// A bridge's ports (each container's host-side veth) carry no address,
/// proxy entry or route of dock6's (those are the bridge's), so what is
/// built from this at every pass does not grow with the containers.
pub async fn link_names(handle: &Handle) -> Result<BTreeMap<u32, String>, HostError> {
    let mut links = handle
        .link()
        .get()
        .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
        .execute();
    let mut names = BTreeMap::new();
    while let Some(link) = links
        .try_next()
        .await
        .map_err(netlink("dumping links".into()))?
    {
        if is_bridge_port(&link.attributes) {
            continue;
        }
        let name = link.attributes.iter().find_map(|attr| match attr {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        });
        if let Some(name) = name {
            names.insert(link.header.index, name);
        }
    }
    Ok(names)
}

/// The index of each named interface that exists: one lookup by name each
/// (the kernel finds it in a hash), not a dump of every link.
pub async fn link_indices<'a>(
    handle: &Handle,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, u32>, HostError> {
    let mut out = HashMap::new();
    for name in names {
        if out.contains_key(name) {
            continue;
        }
        let mut reply = handle.link().get().match_name(name.to_string()).execute();
        match reply.try_next().await {
            Ok(Some(link)) => {
                out.insert(name.to_string(), link.header.index);
            }
            Ok(None) => {}
            Err(e) if no_such_device(&e) => {}
            Err(e) => return Err(netlink(format!("looking up interface {name}"))(e)),
        }
    }
    Ok(out)
}

/// The name of each interface index that exists: one lookup each.
pub async fn link_names_of(
    handle: &Handle,
    indices: impl IntoIterator<Item = u32>,
) -> Result<BTreeMap<u32, String>, HostError> {
    let mut out = BTreeMap::new();
    for index in indices {
        if out.contains_key(&index) {
            continue;
        }
        let mut reply = handle.link().get().match_index(index).execute();
        let link = match reply.try_next().await {
            Ok(link) => link,
            Err(e) if no_such_device(&e) => None,
            Err(e) => return Err(netlink(format!("looking up interface {index}"))(e)),
        };
        let name = link.and_then(|l| {
            l.attributes.into_iter().find_map(|attr| match attr {
                LinkAttribute::IfName(name) => Some(name),
                _ => None,
            })
        });
        if let Some(name) = name {
            out.insert(index, name);
        }
    }
    Ok(out)
}

fn no_such_device(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::ENODEV)
}

/// A port of a bridge (a container's veth, a bridge's physical port): its
/// layer 3 is the bridge's.
pub fn is_bridge_port(attributes: &[LinkAttribute]) -> bool {
    attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::PortKind(InfoPortKind::Bridge))),
        _ => false,
    })
}

/// The IPv6 proxy-NDP entries the kernel holds, dock6's and others'.
pub async fn list_proxy_entries(handle: &Handle) -> Result<Vec<ProxyNeighbour>, HostError> {
    let names = link_names(handle).await?;
    list_with_names(handle, &names).await
}

/// The same, with the interface names of a link dump already taken.
pub async fn list_with_names(
    handle: &Handle,
    names: &BTreeMap<u32, String>,
) -> Result<Vec<ProxyNeighbour>, HostError> {
    // The kernel dumps the proxy table (instead of the neighbour cache) when
    // the request's ndm_flags is exactly NTF_PROXY.
    let mut dump = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet6)
        .proxies()
        .execute();
    let mut entries = Vec::new();
    while let Some(msg) = dump
        .try_next()
        .await
        .map_err(netlink("dumping proxy-NDP entries".into()))?
    {
        if !msg.header.flags.contains(NeighbourFlags::Proxy)
            || msg.header.family != AddressFamily::Inet6
        {
            continue;
        }
        let mut address = None;
        let mut protocol = 0;
        for attr in &msg.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => address = Some(*a),
                NeighbourAttribute::Protocol(p) => protocol = u8::from(*p),
                _ => {}
            }
        }
        let Some(address) = address else { continue };
        let ifindex = msg.header.ifindex;
        entries.push(ProxyNeighbour {
            ifindex,
            interface: names.get(&ifindex).cloned(),
            address,
            protocol,
        });
    }
    entries.sort();
    Ok(entries)
}

async fn add_entry(handle: &Handle, ifindex: u32, entry: &ProxyEntry) -> Result<(), HostError> {
    let mut request = handle
        .neighbours()
        .add(ifindex, IpAddr::V6(entry.address))
        .flags(NeighbourFlags::Proxy);
    request
        .message_mut()
        .attributes
        .push(NeighbourAttribute::Protocol(RouteProtocol::from(
            DOCK6_NEIGH_PROTOCOL,
        )));
    let added = request.execute().await.map_err(netlink(format!(
        "adding proxy-NDP entry {} on {} (container {}, network {})",
        entry.address, entry.interface, entry.container, entry.network
    )));
    progress::beat();
    added
}

async fn delete_entry(handle: &Handle, entry: &ProxyNeighbour) -> Result<(), HostError> {
    // rtnetlink has no builder for this: a proxy entry is deleted by
    // (family, ifindex, NTF_PROXY, NDA_DST).
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Inet6;
    message.header.ifindex = entry.ifindex;
    message.header.flags = NeighbourFlags::Proxy;
    message
        .attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(
            entry.address,
        )));
    let deleted = handle
        .neighbours()
        .del(message)
        .execute()
        .await
        .map_err(netlink(format!(
            "deleting proxy-NDP entry {} on {}",
            entry.address,
            entry.interface_label()
        )));
    progress::beat();
    deleted
}

/// Makes the kernel's dock6-tagged proxy entries exactly `desired`: adds the
/// missing ones (tagged), deletes dock6-tagged entries that are not desired.
/// Entries without dock6's tag are never added over, re-tagged or deleted.
///
/// Fails only when the kernel cannot be dumped; per-entry failures (an
/// interface that does not exist, a refused add) are in the report's
/// `errors`, and the rest is still applied.
pub async fn sync_proxy_entries(
    handle: &Handle,
    desired: &[ProxyEntry],
) -> Result<ProxySyncReport, HostError> {
    // Point lookups of the few interfaces involved (the uplink), so a
    // pass's work does not grow with the host's links (a veth a container).
    let owned = link_indices(handle, desired.iter().map(|e| e.interface.as_str())).await?;
    let indices: HashMap<&str, u32> = owned.iter().map(|(n, i)| (n.as_str(), *i)).collect();
    let mut current = list_with_names(handle, &BTreeMap::new()).await?;
    let names = link_names_of(handle, current.iter().map(|e| e.ifindex)).await?;
    for entry in &mut current {
        entry.interface = names.get(&entry.ifindex).cloned();
    }
    let present: HashMap<(u32, Ipv6Addr), &ProxyNeighbour> = current
        .iter()
        .map(|e| ((e.ifindex, e.address), e))
        .collect();

    let mut report = ProxySyncReport::default();
    let wanted = add_missing(handle, desired, &indices, &present, &mut report).await;
    remove_unwanted(handle, &current, &wanted, &mut report).await;
    Ok(report)
}

/// Adds the desired entries that are missing (tagged as dock6's); returns
/// the (ifindex, address) pairs wanted, for [`remove_unwanted`].
async fn add_missing(
    handle: &Handle,
    desired: &[ProxyEntry],
    indices: &HashMap<&str, u32>,
    present: &HashMap<(u32, Ipv6Addr), &ProxyNeighbour>,
    report: &mut ProxySyncReport,
) -> BTreeSet<(u32, Ipv6Addr)> {
    let mut wanted = BTreeSet::new();
    for entry in desired {
        let Some(&ifindex) = indices.get(entry.interface.as_str()) else {
            warn!(interface = %entry.interface, address = %entry.address, "proxy-NDP entry not added: no such interface");
            report.errors.push(HostError::NoSuchInterface {
                interface: entry.interface.clone(),
                address: entry.address,
            });
            continue;
        };
        if !wanted.insert((ifindex, entry.address)) {
            continue; // the same address twice on one interface
        }
        match present.get(&(ifindex, entry.address)) {
            Some(existing) if existing.is_dock6() => report.unchanged += 1,
            Some(existing) => {
                // Adding would silently re-tag the operator's entry (the
                // kernel updates an existing proxy entry in place).
                debug!(entry = %existing, "proxy-NDP entry exists without dock6's tag: left alone");
                report.foreign.push((*existing).clone());
            }
            None => match add_entry(handle, ifindex, entry).await {
                Ok(()) => {
                    info!(
                        interface = %entry.interface, address = %entry.address,
                        container = %entry.container, network = %entry.network,
                        "proxy-NDP entry added"
                    );
                    report.added.push(entry.clone());
                }
                Err(err) => {
                    warn!(error = %err, "proxy-NDP entry not added");
                    report.errors.push(err);
                }
            },
        }
    }
    wanted
}

/// Deletes dock6-tagged entries no longer wanted; never another's.
async fn remove_unwanted(
    handle: &Handle,
    current: &[ProxyNeighbour],
    wanted: &BTreeSet<(u32, Ipv6Addr)>,
    report: &mut ProxySyncReport,
) {
    for entry in current
        .iter()
        .filter(|e| e.is_dock6() && !wanted.contains(&(e.ifindex, e.address)))
    {
        match delete_entry(handle, entry).await {
            Ok(()) => {
                info!(interface = %entry.interface_label(), address = %entry.address, "proxy-NDP entry removed");
                report.removed.push(entry.clone());
            }
            Err(err) => {
                warn!(error = %err, "proxy-NDP entry not removed");
                report.errors.push(err);
            }
        }
    }
}

/// Deletes every proxy-NDP entry that carries dock6's tag (cleanup), and
/// returns them. Other entries are left alone.
pub async fn remove_all_dock6_entries(handle: &Handle) -> Result<Vec<ProxyNeighbour>, HostError> {
    let mut removed = Vec::new();
    for entry in list_proxy_entries(handle)
        .await?
        .into_iter()
        .filter(ProxyNeighbour::is_dock6)
    {
        delete_entry(handle, &entry).await?;
        info!(interface = %entry.interface_label(), address = %entry.address, "proxy-NDP entry removed");
        removed.push(entry);
    }
    Ok(removed)
}
