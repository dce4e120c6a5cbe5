//! The ports something in dock6's network namespace already holds: TCP
//! sockets listening, UDP sockets bound (`/proc/net/{tcp,tcp6,udp,udp6}`).
//!
//! A container Docker is about to start has its host ports refused until
//! they are DNAT'ed (Docker holds them meanwhile with a socket that never
//! accepts). A port that something already holds before Docker's start is
//! someone else's (the start will fail on it, or it is bound to another
//! address): that one is never refused.

use std::collections::HashSet;
use std::io;

use crate::nft::L4Proto;
use crate::snapshot::Container;

/// `st` of a listening TCP socket in `/proc/net/tcp*`.
const TCP_LISTEN: &str = "0A";

/// The `(protocol, port)` pairs held now, IPv4 and IPv6 sockets alike.
pub fn held_ports() -> io::Result<HashSet<(L4Proto, u16)>> {
    let mut held = HashSet::new();
    for (file, proto) in [
        ("/proc/net/tcp", L4Proto::Tcp),
        ("/proc/net/tcp6", L4Proto::Tcp),
        ("/proc/net/udp", L4Proto::Udp),
        ("/proc/net/udp6", L4Proto::Udp),
    ] {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            // A kernel without IPv4 or IPv6 has no such file: nothing held there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("reading {file}: {e}"))),
        };
        held.extend(ports_in(&text, proto).map(|port| (proto, port)));
    }
    Ok(held)
}

/// The local ports of the table's held sockets: every UDP socket, TCP
/// sockets in LISTEN.
fn ports_in(table: &str, proto: L4Proto) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(move |line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        if proto == L4Proto::Tcp && state != TCP_LISTEN {
            return None;
        }
        let (_, port) = local.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    })
}

/// Drops the bindings of `container` whose host port is `held`.
pub fn without_held_ports(container: &mut Container, held: &HashSet<(L4Proto, u16)>) {
    for (key, bindings) in container.ports.iter_mut() {
        let proto = match key.rsplit_once('/').map(|(_, p)| p) {
            Some("udp") => L4Proto::Udp,
            Some("tcp") => L4Proto::Tcp,
            _ => continue,
        };
        if let Some(bindings) = bindings {
            bindings.retain(|b| {
                let port = b.host_port.trim().parse::<u16>().ok();
                !port.is_some_and(|p| held.contains(&(proto, p)))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::PortBinding;

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:C350 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000000000000000 0
";

    #[test]
    fn listening_tcp_and_bound_udp_sockets_hold_their_ports() {
        let tcp: Vec<u16> = ports_in(TCP6, L4Proto::Tcp).collect();
        assert_eq!(tcp, [8080], "the established connection's port is not held");
        let udp: Vec<u16> = ports_in(UDP, L4Proto::Udp).collect();
        assert_eq!(udp, [5353]);
    }

    #[test]
    fn a_held_port_is_dropped_from_the_bindings_of_its_protocol_only() {
        let binding = |port: &str| PortBinding {
            host_ip: "".into(),
            host_port: port.into(),
        };
        let mut c = Container::default();
        c.ports.insert(
            "80/tcp".into(),
            Some(vec![binding("8080"), binding("8081")]),
        );
        c.ports.insert("53/udp".into(), Some(vec![binding("8080")]));
        let held = HashSet::from([(L4Proto::Tcp, 8080)]);
        without_held_ports(&mut c, &held);
        assert_eq!(c.ports["80/tcp"], Some(vec![binding("8081")]));
        assert_eq!(c.ports["53/udp"], Some(vec![binding("8080")]));
    }

    #[test]
    fn this_namespace_can_be_read() {
        held_ports().expect("/proc/net is readable");
    }
}
