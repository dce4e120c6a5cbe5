//! Unsolicited neighbour advertisements (RFC 4861 §7.2.6), sent when a
//! container address starts being proxied, so a router that still has a stale
//! entry for it (the address used to live elsewhere) updates it at once
//! instead of after its reachable time.
//!
//! Sent on a raw ICMPv6 socket to ff02::1 out of the uplink, hop limit 255
//! (receivers drop NDP messages with any other hop limit). The kernel fills in
//! the ICMPv6 checksum (it always does for IPPROTO_ICMPV6 raw sockets) and
//! picks the uplink's link-local address as the source. socket2 keeps this
//! free of `unsafe`. The socket is created in the calling thread's network
//! namespace.

use std::net::{Ipv6Addr, SocketAddrV6};

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::LinkAttribute;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tracing::debug;

use super::HostError;

const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
const NA_FLAG_ROUTER: u32 = 0x8000_0000;
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;

/// Builds the ICMPv6 neighbour advertisement (checksum left 0 for the
/// kernel): not solicited; `router` sets R (dock6's host forwards, so it is
/// one); O is set so a stale cache entry for `target` is replaced; the target
/// link-layer address option carries `lladdr` when there is one.
pub fn neighbour_advertisement(target: Ipv6Addr, lladdr: Option<&[u8]>, router: bool) -> Vec<u8> {
    let mut flags = NA_FLAG_OVERRIDE;
    if router {
        flags |= NA_FLAG_ROUTER;
    }
    let mut packet = Vec::with_capacity(32);
    packet.extend_from_slice(&[ND_NEIGHBOR_ADVERT, 0, 0, 0]);
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&target.octets());
    if let Some(lladdr) = lladdr.filter(|a| !a.is_empty()) {
        // Option length is in units of 8 octets, type and length included.
        let units = (2 + lladdr.len()).div_ceil(8);
        let start = packet.len();
        packet.push(ND_OPT_TARGET_LINKADDR);
        packet.push(units.min(255) as u8);
        packet.extend_from_slice(lladdr);
        packet.resize(start + units * 8, 0);
    }
    packet
}

/// Sends one unsolicited neighbour advertisement for `target` out of
/// `interface` (its index and link-layer address looked up over `handle`).
pub async fn send_unsolicited_na(
    handle: &Handle,
    interface: &str,
    target: Ipv6Addr,
    router: bool,
) -> Result<(), HostError> {
    let mut links = handle.link().get().match_name(interface.to_string()).execute();
    let link = links.try_next().await.map_err(|source| HostError::Netlink {
        what: format!("unsolicited neighbour advertisement for {target}: looking up {interface}"),
        source,
    })?;
    let Some(link) = link else {
        return Err(HostError::NoSuchInterface { interface: interface.to_string(), address: target });
    };
    let lladdr = link.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Address(a) => Some(a.clone()),
        _ => None,
    });
    let packet = neighbour_advertisement(target, lladdr.as_deref(), router);
    send(link.header.index, &packet).map_err(|source| HostError::Advertisement {
        interface: interface.to_string(),
        address: target,
        source,
    })?;
    debug!(interface, address = %target, "unsolicited neighbour advertisement sent");
    Ok(())
}

fn send(ifindex: u32, packet: &[u8]) -> std::io::Result<()> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.set_multicast_if_v6(ifindex)?;
    socket.set_multicast_hops_v6(255)?;
    socket.set_multicast_loop_v6(false)?;
    let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, ifindex);
    socket.send_to(packet, &SockAddr::from(all_nodes))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_layout() {
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
    }
}
