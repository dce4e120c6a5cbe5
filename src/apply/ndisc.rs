//! Neighbour-discovery messages dock6 sends itself (RFC 4861), on a raw
//! ICMPv6 socket out of one interface with hop limit 255 (receivers drop NDP
//! messages with any other hop limit). The kernel fills in the ICMPv6
//! checksum (it always does for IPPROTO_ICMPV6 raw sockets). socket2 keeps
//! this free of `unsafe`. Sockets are created in the calling thread's network
//! namespace.
//!
//! - Unsolicited neighbour advertisements (§7.2.6), sent when a container
//!   address starts being proxied, so a router that still has a stale entry
//!   for it (the address used to live elsewhere) updates it at once instead
//!   of after its reachable time. To ff02::1; the kernel picks the source.
//! - A router solicitation (§6.3.7), sent after the uplink's `accept_ra` goes
//!   to 2 and forwarding is turned on (forwarding drops the RA-learnt default
//!   route), so the route returns at once rather than at the next periodic
//!   advertisement. To ff02::2, from the uplink's link-local address, with
//!   the source link-layer address option.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::link::LinkAttribute;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tracing::debug;

use super::HostError;

const ND_ROUTER_SOLICIT: u8 = 133;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
const NA_FLAG_ROUTER: u32 = 0x8000_0000;
const NA_FLAG_SOLICITED: u32 = 0x4000_0000;
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Builds the ICMPv6 neighbour advertisement (checksum left 0 for the
/// kernel): not solicited; `router` sets R (dock6's host forwards, so it is
/// one); O is set so a stale cache entry for `target` is replaced; the target
/// link-layer address option carries `lladdr` when there is one.
pub fn neighbour_advertisement(target: Ipv6Addr, lladdr: Option<&[u8]>, router: bool) -> Vec<u8> {
    let mut flags = NA_FLAG_OVERRIDE;
    if router {
        flags |= NA_FLAG_ROUTER;
    }
    advertisement(flags, target, lladdr)
}

/// Builds the answer to a neighbour solicitation for a proxied `target`
/// (checksum left 0 for the kernel): S set when it answers a solicitation
/// from a node (not duplicate address detection); O clear, as RFC 4861
/// §7.2.4 asks of proxies; R clear (the target is a container, not a
/// router); the target link-layer address option carries `lladdr`.
pub fn solicited_advertisement(
    target: Ipv6Addr,
    lladdr: Option<&[u8]>,
    solicited: bool,
) -> Vec<u8> {
    let flags = if solicited { NA_FLAG_SOLICITED } else { 0 };
    advertisement(flags, target, lladdr)
}

fn advertisement(flags: u32, target: Ipv6Addr, lladdr: Option<&[u8]>) -> Vec<u8> {
    let mut packet = Vec::with_capacity(32);
    packet.extend_from_slice(&[ND_NEIGHBOR_ADVERT, 0, 0, 0]);
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&target.octets());
    push_lladdr_option(&mut packet, ND_OPT_TARGET_LINKADDR, lladdr);
    packet
}

/// Builds the ICMPv6 router solicitation (checksum left 0 for the kernel):
/// type 133, code 0, reserved word, then the source link-layer address
/// option carrying `lladdr` when there is one. RFC 4861 forbids the option
/// only when the source address is unspecified, which dock6 never uses.
pub fn router_solicitation(lladdr: Option<&[u8]>) -> Vec<u8> {
    let mut packet = Vec::with_capacity(16);
    packet.extend_from_slice(&[ND_ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0]);
    push_lladdr_option(&mut packet, ND_OPT_SOURCE_LINKADDR, lladdr);
    packet
}

/// Appends a source/target link-layer address option (nothing without an
/// address, e.g. on a point-to-point link).
fn push_lladdr_option(packet: &mut Vec<u8>, kind: u8, lladdr: Option<&[u8]>) {
    let Some(lladdr) = lladdr.filter(|a| !a.is_empty()) else {
        return;
    };
    // Option length is in units of 8 octets, type and length included.
    let units = (2 + lladdr.len()).div_ceil(8);
    let start = packet.len();
    packet.push(kind);
    packet.push(units.min(255) as u8);
    packet.extend_from_slice(lladdr);
    packet.resize(start + units * 8, 0);
}

/// Sends one unsolicited neighbour advertisement for `target` out of
/// `interface` (its index and link-layer address looked up over `handle`),
/// from `source` when given (the target itself, with `na_source =
/// "target"`), else from the address the kernel picks.
pub async fn send_unsolicited_na(
    handle: &Handle,
    interface: &str,
    target: Ipv6Addr,
    router: bool,
    source: Option<Ipv6Addr>,
) -> Result<(), HostError> {
    let what =
        || format!("unsolicited neighbour advertisement for {target}: looking up {interface}");
    let Some(link) = find_link(handle, interface)
        .await
        .map_err(|source| HostError::Netlink {
            what: what(),
            source,
        })?
    else {
        return Err(HostError::NoSuchInterface {
            interface: interface.to_string(),
            address: target,
        });
    };
    let packet = neighbour_advertisement(target, link.lladdr.as_deref(), router);
    send(link.index, source, ALL_NODES, &packet).map_err(|source| HostError::Advertisement {
        interface: interface.to_string(),
        address: target,
        source,
    })?;
    debug!(interface, address = %target, "unsolicited neighbour advertisement sent");
    Ok(())
}

/// Sends one router solicitation out of `interface` to all routers
/// (ff02::2), from the interface's link-local address, carrying its
/// link-layer address. Fails, naming the interface, when the interface does
/// not exist or has no usable (non-tentative) link-local address yet.
pub async fn send_router_solicitation(handle: &Handle, interface: &str) -> Result<(), HostError> {
    let what = |step: &str| format!("router solicitation on {interface}: {step}");
    let Some(link) = find_link(handle, interface)
        .await
        .map_err(|source| HostError::Netlink {
            what: what("looking it up"),
            source,
        })?
    else {
        return Err(HostError::SolicitationNoInterface {
            interface: interface.to_string(),
        });
    };
    let source = link_local(handle, link.index)
        .await
        .map_err(|source| HostError::Netlink {
            what: what("listing its addresses"),
            source,
        })?
        .ok_or_else(|| HostError::NoLinkLocal {
            interface: interface.to_string(),
        })?;
    let packet = router_solicitation(link.lladdr.as_deref());
    send(link.index, Some(source), ALL_ROUTERS, &packet).map_err(|e| HostError::Solicitation {
        interface: interface.to_string(),
        source: e,
    })?;
    debug!(interface, source = %source, "router solicitation sent");
    Ok(())
}

/// The interface facts a message needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    /// Link-layer address; none on e.g. point-to-point links.
    pub lladdr: Option<Vec<u8>>,
}

/// Looks `interface` up by name; `None` when it does not exist.
pub async fn find_link(handle: &Handle, interface: &str) -> Result<Option<Link>, rtnetlink::Error> {
    let mut links = handle
        .link()
        .get()
        .match_name(interface.to_string())
        .execute();
    let link = match links.try_next().await {
        Ok(link) => link,
        // A lookup by name answers a missing interface with ENODEV.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => None,
        Err(e) => return Err(e),
    };
    Ok(link.map(|link| Link {
        index: link.header.index,
        lladdr: link.attributes.into_iter().find_map(|attr| match attr {
            LinkAttribute::Address(a) => Some(a),
            _ => None,
        }),
    }))
}

/// A link-local address of interface `index` that can be a source now: not
/// tentative (optimistic is fine) and not failed duplicate address detection.
async fn link_local(handle: &Handle, index: u32) -> Result<Option<Ipv6Addr>, rtnetlink::Error> {
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(msg) = addresses.try_next().await? {
        if let Some(address) = usable_link_local(&msg) {
            return Ok(Some(address));
        }
    }
    Ok(None)
}

fn usable_link_local(msg: &AddressMessage) -> Option<Ipv6Addr> {
    let header_unusable = msg
        .header
        .flags
        .intersects(AddressHeaderFlags::Tentative | AddressHeaderFlags::Dadfailed);
    let attr_unusable = msg.attributes.iter().any(|attr| {
        matches!(attr, AddressAttribute::Flags(f) if f.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed))
    });
    if header_unusable || attr_unusable {
        return None;
    }
    msg.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Address(IpAddr::V6(a)) if a.is_unicast_link_local() => Some(*a),
        _ => None,
    })
}

/// Sends `packet` to `destination` (link-scope multicast, or a neighbour's
/// address) out of interface `ifindex` with hop limit 255, from `source`
/// when given (bound with the interface as its scope; `IP_FREEBIND` lets it
/// be an address the host does not hold, a proxied container's), else from
/// whatever the kernel picks.
pub(super) fn send(
    ifindex: u32,
    source: Option<Ipv6Addr>,
    destination: Ipv6Addr,
    packet: &[u8],
) -> io::Result<()> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    if let Some(source) = source {
        socket.set_freebind_v6(true)?;
        socket.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, ifindex)))?;
    }
    socket.bind_device_by_index_v6(std::num::NonZeroU32::new(ifindex))?;
    socket.set_multicast_if_v6(ifindex)?;
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    socket.set_multicast_loop_v6(false)?;
    let destination = SocketAddrV6::new(destination, 0, 0, ifindex);
    socket.send_to(packet, &SockAddr::from(destination))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_layout() {
        let target: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let mac = [0x02, 0, 0, 0, 0, 0x01];
        let p = neighbour_advertisement(target, Some(&mac), true);
        assert_eq!(p.len(), 32);
        assert_eq!(&p[..4], &[136, 0, 0, 0]);
        assert_eq!(&p[4..8], &[0xa0, 0, 0, 0]); // R and O, not S
        assert_eq!(&p[8..24], &target.octets());
        assert_eq!(&p[24..26], &[2, 1]);
        assert_eq!(&p[26..32], &mac);

        let p = neighbour_advertisement(target, None, false);
        assert_eq!(p.len(), 24);
        assert_eq!(&p[4..8], &[0x20, 0, 0, 0]);

        let p = solicited_advertisement(target, Some(&mac), true);
        assert_eq!(&p[4..8], &[0x40, 0, 0, 0]); // S only: a proxy's answer
        assert_eq!(&p[8..24], &target.octets());
        assert_eq!(&p[24..26], &[2, 1]);
        let p = solicited_advertisement(target, Some(&mac), false);
        assert_eq!(&p[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn solicitation_layout() {
        let mac = [0x02, 0xd6, 0, 0, 0, 0x02];
        let p = router_solicitation(Some(&mac));
        assert_eq!(
            p,
            [133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x02, 0xd6, 0, 0, 0, 0x02]
        );

        assert_eq!(router_solicitation(None), [133, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(router_solicitation(Some(&[])).len(), 8);

        // A 20-byte (InfiniBand) address: 22 octets of option, padded to 24.
        let p = router_solicitation(Some(&[7; 20]));
        assert_eq!(p.len(), 8 + 24);
        assert_eq!(&p[8..10], &[1, 3]);
        assert_eq!(&p[30..], &[0, 0]);
    }
}
