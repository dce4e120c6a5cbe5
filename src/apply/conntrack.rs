//! Conntrack deletes for published-port mappings that went away, over
//! ctnetlink (`NETLINK_NETFILTER`, subsystem `NFNL_SUBSYS_CTNETLINK`).
//!
//! A UDP flow that was DNAT'ed to a container keeps its conntrack entry (and
//! so its NAT binding) for as long as packets keep coming: without a delete,
//! a client that sends every few seconds stays stuck to a container that is
//! gone. [`delete_dnat_flows`] dumps the IPv6 conntrack table once, picks the
//! entries that were DNAT'ed to a removed mapping's target, and deletes each
//! by its original tuple.
//!
//! Synchronous, on a plain netlink socket: it runs in the calling thread's
//! network namespace (call it from a blocking thread, never an async task).
//! Messages are built and parsed with `netlink-packet-netfilter` (no shelling
//! out to `conntrack`).

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{
    DefaultNla, NLA_TYPE_MASK, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, Nla,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Status, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};
use tracing::{debug, info, warn};

/// `CTA_ID`: the entry's 32-bit id (big-endian). Sent back with a delete, it
/// makes the kernel delete only that very entry, not a newer one that reuses
/// the tuple (the kernel answers ENOENT instead).
const CTA_ID: u16 = 12;
/// `CTA_ZONE`: the entry's zone (big-endian u16), present in a dump only when
/// it is not the default zone; a delete must name it to find the entry.
const CTA_ZONE: u16 = 18;

/// Large enough for any dump datagram: the kernel fills dump skbs of at most
/// 32 KiB (and sizes them to the reader's buffer up to that).
const RECV_BUFFER: usize = 64 * 1024;

pub use crate::plan::DnatTarget;

impl fmt::Display for DnatTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} → [{}]:{}",
            self.host_port,
            self.proto.name(),
            self.target,
            self.target_port
        )
    }
}

/// Something went wrong while talking to ctnetlink. Each variant says what
/// was being done (`what`), so a log line alone tells what failed.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error("conntrack: cannot open a NETLINK_NETFILTER socket: {0}")]
    Socket(#[source] io::Error),

    #[error("conntrack: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("conntrack: {what}: the kernel answered: {source}")]
    Kernel {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("conntrack: {what}: malformed message from the kernel: {detail}")]
    Malformed { what: String, detail: String },
}

/// Deletes every IPv6 conntrack entry that was DNAT'ed for one of `targets`:
/// its original tuple has `proto` and destination port `host_port`, its reply
/// tuple comes from `[target]:target_port`, and the kernel marked it
/// destination-NAT'ed (so a flow sent straight to the container's address is
/// left alone). Entries already gone (ENOENT) are not an error.
///
/// Returns how many entries were deleted. A failed delete does not stop the
/// others: every match is tried, then the first error is returned.
pub fn delete_dnat_flows(targets: &[DnatTarget]) -> Result<usize, ConntrackError> {
    if targets.is_empty() {
        return Ok(0);
    }
    let wanted: HashSet<MatchKey> = targets.iter().map(MatchKey::from).collect();
    let mut ct = Ctnetlink::open()?;
    let flows = ct.dump_ipv6()?;
    let matches: Vec<&CtFlow> = flows
        .iter()
        .filter(|f| f.match_key().is_some_and(|k| wanted.contains(&k)))
        .collect();
    debug!(
        dumped = flows.len(),
        matched = matches.len(),
        "conntrack: IPv6 table dumped"
    );

    let mut deleted = 0;
    let mut first_error = None;
    for flow in matches {
        match ct.delete(flow) {
            Ok(true) => {
                debug!(%flow, "conntrack: deleted");
                deleted += 1;
            }
            Ok(false) => debug!(%flow, "conntrack: already gone"),
            Err(e) => {
                warn!(%flow, error = %e, "conntrack: delete failed");
                first_error.get_or_insert(e);
            }
        }
    }
    if deleted > 0 {
        info!(
            deleted,
            mappings = targets.len(),
            "conntrack: deleted the flows of removed port mappings"
        );
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}

/// What a flow and a [`DnatTarget`] have to agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MatchKey {
    proto: u8,
    host_port: u16,
    target: Ipv6Addr,
    target_port: u16,
}

impl From<&DnatTarget> for MatchKey {
    fn from(t: &DnatTarget) -> Self {
        MatchKey {
            proto: t.proto.number(),
            host_port: t.host_port,
            target: t.target,
            target_port: t.target_port,
        }
    }
}

/// One direction of an IPv6 TCP/UDP conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CtTuple {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
}

impl fmt::Display for CtTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proto {} [{}]:{} → [{}]:{}",
            self.proto, self.src, self.src_port, self.dst, self.dst_port
        )
    }
}

/// As much of a dumped entry as matching and deleting need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CtFlow {
    orig: CtTuple,
    reply: CtTuple,
    dst_nat: bool,
    id: Option<u32>,
    zone: Option<u16>,
}

impl fmt::Display for CtFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (reply from [{}]:{})",
            self.orig, self.reply.src, self.reply.src_port
        )
    }
}

impl CtFlow {
    /// The key this flow is deleted under, if it was DNAT'ed at all.
    fn match_key(&self) -> Option<MatchKey> {
        self.dst_nat.then_some(MatchKey {
            proto: self.orig.proto,
            host_port: self.orig.dst_port,
            target: self.reply.src,
            target_port: self.reply.src_port,
        })
    }

    /// Reads an entry from a dump message's attributes. `None` for anything
    /// that is not an IPv6 entry with ports on both tuples (ICMPv6, GRE, …).
    fn from_attributes(attributes: &[ConntrackAttribute]) -> Option<CtFlow> {
        let mut orig = None;
        let mut reply = None;
        let mut dst_nat = false;
        let mut id = None;
        let mut zone = None;
        for attribute in attributes {
            match attribute {
                ConntrackAttribute::CtaTupleOrig(t) => orig = tuple_from(t),
                ConntrackAttribute::CtaTupleReply(t) => reply = tuple_from(t),
                ConntrackAttribute::CtaStatus(status) => dst_nat = status.contains(Status::DstNat),
                ConntrackAttribute::Other(nla) => match nla.kind() & NLA_TYPE_MASK {
                    CTA_ID => id = nla_value(nla).try_into().ok().map(u32::from_be_bytes),
                    CTA_ZONE => zone = nla_value(nla).try_into().ok().map(u16::from_be_bytes),
                    _ => {}
                },
                _ => {}
            }
        }
        Some(CtFlow {
            orig: orig?,
            reply: reply?,
            dst_nat,
            id,
            zone,
        })
    }

    /// `IPCTNL_MSG_CT_DELETE` for this entry: its original tuple, plus its
    /// zone and id when the dump gave them.
    fn delete_message(&self) -> ConntrackMessage {
        let o = &self.orig;
        let mut attributes = vec![ConntrackAttribute::CtaTupleOrig(vec![
            Tuple::Ip(vec![
                IPTuple::SourceAddress(IpAddr::V6(o.src)),
                IPTuple::DestinationAddress(IpAddr::V6(o.dst)),
            ]),
            Tuple::Proto(vec![
                ProtoTuple::Protocol(o.proto.into()),
                ProtoTuple::SourcePort(o.src_port),
                ProtoTuple::DestinationPort(o.dst_port),
            ]),
        ])];
        if let Some(zone) = self.zone {
            attributes.push(ConntrackAttribute::Other(DefaultNla::new(
                CTA_ZONE,
                zone.to_be_bytes().to_vec(),
            )));
        }
        if let Some(id) = self.id {
            attributes.push(ConntrackAttribute::Other(DefaultNla::new(
                CTA_ID,
                id.to_be_bytes().to_vec(),
            )));
        }
        ConntrackMessage::Delete(attributes)
    }
}

fn tuple_from(parts: &[Tuple]) -> Option<CtTuple> {
    let (mut src, mut dst, mut proto, mut src_port, mut dst_port) = (None, None, None, None, None);
    for part in parts {
        match part {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(IpAddr::V6(a)) => src = Some(*a),
                        IPTuple::DestinationAddress(IpAddr::V6(a)) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(fields) => {
                for field in fields {
                    match field {
                        ProtoTuple::Protocol(p) => proto = Some(u8::from(*p)),
                        ProtoTuple::SourcePort(p) => src_port = Some(*p),
                        ProtoTuple::DestinationPort(p) => dst_port = Some(*p),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(CtTuple {
        src: src?,
        dst: dst?,
        proto: proto?,
        src_port: src_port?,
        dst_port: dst_port?,
    })
}

/// The value bytes of an attribute the crate does not model.
fn nla_value(nla: &DefaultNla) -> Vec<u8> {
    let mut value = vec![0; nla.value_len()];
    nla.emit_value(&mut value);
    value
}

/// One netfilter message with its netlink header, serialised.
fn request(message: ConntrackMessage, flags: u16, sequence_number: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence_number;
    let payload = NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::IPv6, 0, 0),
        message,
    );
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(payload));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

fn dump_request(sequence_number: u32) -> Vec<u8> {
    request(
        ConntrackMessage::Get(Vec::new()),
        NLM_F_REQUEST | NLM_F_DUMP,
        sequence_number,
    )
}

fn delete_request(flow: &CtFlow, sequence_number: u32) -> Vec<u8> {
    request(
        flow.delete_message(),
        NLM_F_REQUEST | NLM_F_ACK,
        sequence_number,
    )
}

/// What one netlink message of a reply said.
enum Reply {
    Flow(Option<CtFlow>),
    Ack,
    Done,
    /// Not ours (another sequence number), or a message type we ignore.
    Ignored,
}

/// Splits a datagram into its netlink messages and parses each one that
/// carries `sequence_number`. A conntrack message the crate cannot decode is
/// skipped with a warning (one odd entry must not block the others); a
/// malformed netlink framing, a NACK or a failed dump is an error.
fn parse_datagram(
    datagram: &[u8],
    sequence_number: u32,
    what: &str,
) -> Result<Vec<Reply>, ConntrackError> {
    let malformed = |detail: String| ConntrackError::Malformed {
        what: what.to_string(),
        detail,
    };
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < datagram.len() {
        let rest = &datagram[offset..];
        let frame = NetlinkBuffer::new_checked(rest).map_err(|e| malformed(e.to_string()))?;
        let length = frame.length() as usize;
        let (message_type, sequence) = (frame.message_type(), frame.sequence_number());
        let bytes = rest
            .get(..length)
            .ok_or_else(|| malformed(format!("message of {length} bytes in {}", rest.len())))?;
        offset += length.next_multiple_of(4);
        if sequence != sequence_number {
            out.push(Reply::Ignored);
            continue;
        }
        let message = match NetlinkMessage::<NetfilterMessage>::deserialize(bytes) {
            Ok(m) => m,
            Err(e)
                if message_type >> 8
                    == u16::from(u8::from(
                        netlink_packet_netfilter::NetfilterSubsystem::Conntrack,
                    )) =>
            {
                warn!(error = %e, "conntrack: skipping an entry that cannot be decoded");
                out.push(Reply::Flow(None));
                continue;
            }
            Err(e) => return Err(malformed(e.to_string())),
        };
        out.push(match message.payload {
            NetlinkPayload::Done(done) if done.code != 0 => {
                return Err(ConntrackError::Kernel {
                    what: what.to_string(),
                    source: io::Error::from_raw_os_error(done.code.saturating_abs()),
                });
            }
            NetlinkPayload::Done(_) => Reply::Done,
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(ConntrackError::Kernel {
                    what: what.to_string(),
                    source: e.to_io(),
                });
            }
            NetlinkPayload::Error(_) => Reply::Ack,
            NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attributes)),
                ..
            }) => Reply::Flow(CtFlow::from_attributes(&attributes)),
            _ => Reply::Ignored,
        });
    }
    Ok(out)
}

/// A ctnetlink socket in the calling thread's network namespace.
struct Ctnetlink {
    socket: Socket,
    sequence_number: u32,
    buf: Vec<u8>,
}

impl Ctnetlink {
    fn open() -> Result<Ctnetlink, ConntrackError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(ConntrackError::Socket)?;
        socket.bind_auto().map_err(ConntrackError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(ConntrackError::Socket)?;
        Ok(Ctnetlink {
            socket,
            sequence_number: 0,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    fn next_sequence_number(&mut self) -> u32 {
        self.sequence_number = self.sequence_number.wrapping_add(1);
        self.sequence_number
    }

    fn send(&self, message: &[u8], what: &str) -> Result<(), ConntrackError> {
        let io_error = |source| ConntrackError::Io {
            what: what.to_string(),
            source,
        };
        let sent = self.socket.send(message, 0).map_err(io_error)?;
        if sent != message.len() {
            return Err(io_error(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", message.len()),
            )));
        }
        Ok(())
    }

    /// Receives one datagram into `self.buf`.
    fn recv(&mut self, what: &str) -> Result<(), ConntrackError> {
        loop {
            self.buf.clear();
            // MSG_TRUNC: the return value is the datagram's real length, so
            // a datagram larger than the buffer is detected, not cut silently.
            match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    return Err(ConntrackError::Malformed {
                        what: what.to_string(),
                        detail: format!(
                            "datagram of {n} bytes does not fit the {RECV_BUFFER}-byte buffer"
                        ),
                    });
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ConntrackError::Io {
                        what: what.to_string(),
                        source,
                    });
                }
            }
        }
    }

    /// Every IPv6 TCP/UDP entry of the table.
    fn dump_ipv6(&mut self) -> Result<Vec<CtFlow>, ConntrackError> {
        let what = "dumping the IPv6 conntrack table";
        let seq = self.next_sequence_number();
        self.send(&dump_request(seq), what)?;
        let mut flows = Vec::new();
        loop {
            self.recv(what)?;
            for reply in parse_datagram(&self.buf, seq, what)? {
                match reply {
                    Reply::Flow(Some(flow)) => flows.push(flow),
                    Reply::Done => return Ok(flows),
                    Reply::Flow(None) | Reply::Ack | Reply::Ignored => {}
                }
            }
        }
    }

    /// Deletes one entry; `Ok(false)` when the kernel no longer has it.
    fn delete(&mut self, flow: &CtFlow) -> Result<bool, ConntrackError> {
        let what = format!("deleting the conntrack entry {flow}");
        let seq = self.next_sequence_number();
        self.send(&delete_request(flow, seq), &what)?;
        loop {
            self.recv(&what)?;
            match parse_datagram(&self.buf, seq, &what) {
                Err(ConntrackError::Kernel { source, .. })
                    if source.raw_os_error() == Some(libc::ENOENT) =>
                {
                    return Ok(false);
                }
                Err(e) => return Err(e),
                Ok(replies) => {
                    if replies.iter().any(|r| matches!(r, Reply::Ack)) {
                        return Ok(true);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::L4Proto;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().expect("address")
    }

    fn flow() -> CtFlow {
        CtFlow {
            orig: CtTuple {
                src: v6("2001:db8:1::1"),
                dst: v6("2001:db8:1::10"),
                proto: 17,
                src_port: 40000,
                dst_port: 5353,
            },
            reply: CtTuple {
                src: v6("fd00:1::2"),
                dst: v6("2001:db8:1::1"),
                proto: 17,
                src_port: 53,
                dst_port: 40000,
            },
            dst_nat: true,
            id: Some(0xdead_beef),
            zone: None,
        }
    }

    /// The bytes `conntrack -D -f ipv6 -p udp -s 2001:db8:1::1
    /// -d 2001:db8:1::10 --sport 40000 --dport 5353` would send for the
    /// tuple, written out by hand from the kernel's uapi headers.
    #[test]
    fn delete_request_has_the_kernel_layout() {
        let buf = delete_request(&flow(), 7);
        let mut expected: Vec<u8> = Vec::new();
        let total: u32 = 16 + 4 + (4 + (4 + 20 + 20) + (4 + 8 + 8 + 8)) + 8;
        expected.extend(total.to_ne_bytes());
        expected.extend(((1u16 << 8) | 2).to_ne_bytes()); // CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE
        expected.extend((NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        expected.extend(7u32.to_ne_bytes()); // sequence number
        expected.extend(0u32.to_ne_bytes()); // port id
        expected.extend([10, 0, 0, 0]); // nfgenmsg: AF_INET6, version 0, res_id 0
        let nla = |kind: u16, value: &[u8]| {
            let mut v = Vec::new();
            v.extend(((4 + value.len()) as u16).to_ne_bytes());
            v.extend(kind.to_ne_bytes());
            v.extend(value);
            while v.len() % 4 != 0 {
                v.push(0);
            }
            v
        };
        const NESTED: u16 = 0x8000;
        let ip = [
            nla(3, &v6("2001:db8:1::1").octets()),
            nla(4, &v6("2001:db8:1::10").octets()),
        ]
        .concat();
        let proto = [
            nla(1, &[17]),
            nla(2, &40000u16.to_be_bytes()),
            nla(3, &5353u16.to_be_bytes()),
        ]
        .concat();
        let tuple = [nla(1 | NESTED, &ip), nla(2 | NESTED, &proto)].concat();
        expected.extend(nla(1 | NESTED, &tuple)); // CTA_TUPLE_ORIG
        expected.extend(nla(CTA_ID, &0xdead_beefu32.to_be_bytes()));
        assert_eq!(buf, expected);
    }

    #[test]
    fn dump_request_is_a_get_with_the_dump_flags() {
        let buf = dump_request(3);
        assert_eq!(buf.len(), 20);
        assert_eq!(&buf[0..4], &20u32.to_ne_bytes());
        assert_eq!(&buf[4..6], &(1u16 << 8 | 1).to_ne_bytes()); // IPCTNL_MSG_CT_GET
        assert_eq!(&buf[6..8], &(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        assert_eq!(buf[16], 10, "AF_INET6");
    }

    /// A dump entry as the kernel sends it (IPCTNL_MSG_CT_NEW, with status,
    /// zone and id) parses back into the flow, and a Done ends the dump.
    #[test]
    fn dump_entries_parse_into_flows() {
        let f = CtFlow {
            zone: Some(5),
            ..flow()
        };
        let tuple = |t: &CtTuple| {
            vec![
                Tuple::Ip(vec![
                    IPTuple::SourceAddress(IpAddr::V6(t.src)),
                    IPTuple::DestinationAddress(IpAddr::V6(t.dst)),
                ]),
                Tuple::Proto(vec![
                    ProtoTuple::Protocol(t.proto.into()),
                    ProtoTuple::SourcePort(t.src_port),
                    ProtoTuple::DestinationPort(t.dst_port),
                ]),
            ]
        };
        let entry = ConntrackMessage::New(vec![
            ConntrackAttribute::CtaTupleOrig(tuple(&f.orig)),
            ConntrackAttribute::CtaTupleReply(tuple(&f.reply)),
            ConntrackAttribute::CtaStatus(Status::DstNat | Status::Confirmed | Status::SeenReply),
            ConntrackAttribute::Other(DefaultNla::new(CTA_ZONE, 5u16.to_be_bytes().to_vec())),
            ConntrackAttribute::Other(DefaultNla::new(
                CTA_ID,
                0xdead_beefu32.to_be_bytes().to_vec(),
            )),
            ConntrackAttribute::CtaTimeout(30),
        ]);
        let mut datagram = request(entry, 2 /* NLM_F_MULTIPART */, 9);
        let other_seq = request(ConntrackMessage::New(Vec::new()), 2, 8);
        datagram.extend(other_seq);
        let mut done = NetlinkMessage::<NetfilterMessage>::new(
            NetlinkHeader::default(),
            NetlinkPayload::Done(netlink_packet_core::DoneMessage::default()),
        );
        done.header.sequence_number = 9;
        done.finalize();
        let mut done_bytes = vec![0; done.buffer_len()];
        done.serialize(&mut done_bytes);
        datagram.extend(done_bytes);

        let replies = parse_datagram(&datagram, 9, "test").expect("parses");
        assert_eq!(replies.len(), 3);
        match &replies[0] {
            Reply::Flow(Some(parsed)) => {
                assert_eq!(parsed, &f);
                assert_eq!(
                    parsed.match_key(),
                    Some(MatchKey {
                        proto: 17,
                        host_port: 5353,
                        target: v6("fd00:1::2"),
                        target_port: 53
                    })
                );
            }
            _ => panic!("first message is the flow"),
        }
        assert!(
            matches!(replies[1], Reply::Ignored),
            "another sequence number is ignored"
        );
        assert!(matches!(replies[2], Reply::Done));
    }

    #[test]
    fn only_dnat_flows_have_a_match_key() {
        let direct = CtFlow {
            dst_nat: false,
            ..flow()
        };
        assert_eq!(direct.match_key(), None);
        let target = DnatTarget {
            proto: L4Proto::Udp,
            host_port: 5353,
            target: v6("fd00:1::2"),
            target_port: 53,
        };
        assert_eq!(flow().match_key(), Some(MatchKey::from(&target)));
        let tcp = DnatTarget {
            proto: L4Proto::Tcp,
            ..target
        };
        assert_ne!(flow().match_key(), Some(MatchKey::from(&tcp)));
    }

    #[test]
    fn a_nack_is_a_kernel_error_and_truncated_framing_is_malformed() {
        let mut nack = NetlinkMessage::<NetfilterMessage>::new(NetlinkHeader::default(), {
            let mut e = netlink_packet_core::ErrorMessage::default();
            e.code = std::num::NonZeroI32::new(-libc::ENOENT);
            NetlinkPayload::Error(e)
        });
        nack.header.sequence_number = 4;
        nack.finalize();
        let mut bytes = vec![0; nack.buffer_len()];
        nack.serialize(&mut bytes);
        match parse_datagram(&bytes, 4, "deleting") {
            Err(ConntrackError::Kernel { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT))
            }
            other => panic!("expected a kernel error, got {:?}", other.map(|r| r.len())),
        }
        let truncated = &dump_request(1)[..12];
        assert!(matches!(
            parse_datagram(truncated, 1, "x"),
            Err(ConntrackError::Malformed { .. })
        ));
    }
}
