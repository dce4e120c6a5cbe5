//! Conntrack entries on the wire (ctnetlink, `linux/netfilter/nfnetlink_conntrack.h`):
//! the few attributes of a dumped entry that matching needs, and the dump
//! and delete requests.

use std::fmt;
use std::net::Ipv6Addr;

use super::MatchKey;
use crate::apply::nfnetlink::codec::{
    Message, MsgWriter, NFNL_SUBSYS_CTNETLINK, NFPROTO_IPV6, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
    attr, be16, be32,
};

pub const IPCTNL_MSG_CT_NEW: u8 = 0;
const IPCTNL_MSG_CT_GET: u8 = 1;
const IPCTNL_MSG_CT_DELETE: u8 = 2;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
/// `CTA_ID`: the entry's 32-bit id (big-endian). Sent back with a delete, it
/// makes the kernel delete only that very entry, not a newer one that reuses
/// the tuple (the kernel answers ENOENT instead).
const CTA_ID: u16 = 12;
/// `CTA_ZONE`: the entry's zone (big-endian u16), present in a dump only when
/// it is not the default zone; a delete must name it to find the entry.
const CTA_ZONE: u16 = 18;
/// `CTA_STATUS_MASK`: with `CTA_STATUS` in a dump request, only the entries
/// whose status bits under the mask equal it (Linux ≥ 6.1; older kernels
/// ignore both, and send every entry the other filters let through).
const CTA_STATUS_MASK: u16 = 26;
/// `CTA_FILTER`: which fields of the tuples given with a dump request the
/// kernel compares (nested `CTA_FILTER_ORIG_FLAGS` / `CTA_FILTER_REPLY_FLAGS`).
const CTA_FILTER: u16 = 25;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
/// `CTA_FILTER_FLAG(CTA_PROTO_NUM)` and the ports: compare those fields of
/// the tuple given with the request.
const CTA_FILTER_F_CTA_PROTO_NUM: u32 = 1 << 3;
const CTA_FILTER_F_CTA_PROTO_SRC_PORT: u32 = 1 << 4;
const CTA_FILTER_F_CTA_PROTO_DST_PORT: u32 = 1 << 5;

const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// `IPS_DST_NAT`: the entry was destination-NAT'ed.
const IPS_DST_NAT: u32 = 1 << 5;

const fn ctnetlink(msg: u8) -> u16 {
    (NFNL_SUBSYS_CTNETLINK as u16) << 8 | msg as u16
}

/// One direction of an IPv6 TCP/UDP conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtTuple {
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
pub struct CtFlow {
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
    pub fn match_key(&self) -> Option<MatchKey> {
        self.dst_nat.then_some(MatchKey {
            proto: self.orig.proto,
            host_port: self.orig.dst_port,
            target: self.reply.src,
            target_port: self.reply.src_port,
        })
    }

    /// Whether the flow went through a translation into `prefix`: sent to
    /// an address inside it, or answered to one.
    pub fn translated_through(&self, prefix: &ipnet::Ipv6Net) -> bool {
        prefix.contains(&self.orig.dst) || prefix.contains(&self.reply.dst)
    }

    /// Reads an entry from a dump message (`IPCTNL_MSG_CT_NEW`). `None` for
    /// anything that is not an IPv6 entry with ports on both tuples.
    pub fn from_message(msg: &Message<'_>) -> Option<CtFlow> {
        let (mut orig, mut reply, mut dst_nat, mut id, mut zone) = (None, None, false, None, None);
        for a in msg.attrs() {
            match a.kind {
                CTA_TUPLE_ORIG => orig = tuple_from(a.payload),
                CTA_TUPLE_REPLY => reply = tuple_from(a.payload),
                CTA_STATUS => dst_nat = be32(a.payload).is_some_and(|s| s & IPS_DST_NAT != 0),
                CTA_ID => id = be32(a.payload),
                CTA_ZONE => zone = be16(a.payload),
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
}

/// `CTA_TUPLE_IP` and `CTA_TUPLE_PROTO` of one tuple nest.
fn tuple_from(tuple: &[u8]) -> Option<CtTuple> {
    let ip = attr(tuple, CTA_TUPLE_IP)?;
    let proto = attr(tuple, CTA_TUPLE_PROTO)?;
    let v6 = |kind| -> Option<Ipv6Addr> {
        let octets: [u8; 16] = attr(ip, kind)?.try_into().ok()?;
        Some(Ipv6Addr::from(octets))
    };
    Some(CtTuple {
        src: v6(CTA_IP_V6_SRC)?,
        dst: v6(CTA_IP_V6_DST)?,
        proto: *attr(proto, CTA_PROTO_NUM)?.first()?,
        src_port: be16(attr(proto, CTA_PROTO_SRC_PORT)?)?,
        dst_port: be16(attr(proto, CTA_PROTO_DST_PORT)?)?,
    })
}

/// What a dump asks the kernel to compare, besides the IPv6 family and the
/// DNAT status: the fields every mapping of the batch shares (the ports
/// only with the protocol, which the kernel needs to read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpFilter {
    pub proto: Option<u8>,
    /// The original tuple's destination port.
    pub host_port: Option<u16>,
    /// The reply tuple's source port.
    pub target_port: Option<u16>,
}

impl fmt::Display for DumpFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any = |v: Option<String>| v.unwrap_or_else(|| "any".into());
        write!(
            f,
            "proto {}, port {} to port {}",
            any(self.proto.map(|p| p.to_string())),
            any(self.host_port.map(|p| p.to_string())),
            any(self.target_port.map(|p| p.to_string()))
        )
    }
}

/// `IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`, filtered in the kernel: only the
/// IPv6 entries marked DNAT'ed (`CTA_STATUS`), and of those only the ones
/// with the protocol and ports of `filter` (`CTA_FILTER`, Linux ≥ 5.8):
/// original tuple `proto` to `host_port`, reply from `target_port`. The
/// kernel walks its whole hash table once, but sends nothing of the
/// unrelated entries: reading, copying and parsing them in user space (most
/// of a whole-table dump's time) does not grow with them.
///
/// The filter compares ports, not addresses: Linux 6.18 still matches an
/// IPv6 address filter inverted (it returns the entries whose address
/// differs), so the target's address is checked here, on the few entries
/// the kernel sends.
pub fn dump_request(seq: u32, filter: &DumpFilter) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96);
    let ty = ctnetlink(IPCTNL_MSG_CT_GET);
    let mut w = MsgWriter::begin(
        &mut buf,
        ty,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        NFPROTO_IPV6,
        0,
    );
    w.put(CTA_STATUS, &IPS_DST_NAT.to_be_bytes())
        .put(CTA_STATUS_MASK, &IPS_DST_NAT.to_be_bytes());
    if let Some(proto) = filter.proto {
        let (orig, reply) = tuple_filters(filter);
        w.nest(CTA_TUPLE_ORIG, |w| {
            w.nest(CTA_TUPLE_PROTO, |w| {
                w.put(CTA_PROTO_NUM, &[proto]);
                if let Some(port) = filter.host_port {
                    w.put(CTA_PROTO_DST_PORT, &port.to_be_bytes());
                }
            });
        })
        .nest(CTA_TUPLE_REPLY, |w| {
            w.nest(CTA_TUPLE_PROTO, |w| {
                w.put(CTA_PROTO_NUM, &[proto]);
                if let Some(port) = filter.target_port {
                    w.put(CTA_PROTO_SRC_PORT, &port.to_be_bytes());
                }
            });
        })
        .nest(CTA_FILTER, |w| {
            // NLA_U32 in host order, as the kernel reads the filter's flags.
            w.put(CTA_FILTER_ORIG_FLAGS, &orig.to_ne_bytes())
                .put(CTA_FILTER_REPLY_FLAGS, &reply.to_ne_bytes());
        });
    }
    w.finish();
    buf
}

/// `IPCTNL_MSG_CT_GET` with `NLM_F_DUMP` for every IPv6 entry.
pub fn dump_all_request(seq: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    let ty = ctnetlink(IPCTNL_MSG_CT_GET);
    let w = MsgWriter::begin(
        &mut buf,
        ty,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        NFPROTO_IPV6,
        0,
    );
    w.finish();
    buf
}

/// The `CTA_FILTER` flags of the original and reply tuples: the protocol,
/// and each port `filter` names.
fn tuple_filters(filter: &DumpFilter) -> (u32, u32) {
    let mut orig = CTA_FILTER_F_CTA_PROTO_NUM;
    let mut reply = CTA_FILTER_F_CTA_PROTO_NUM;
    if filter.host_port.is_some() {
        orig |= CTA_FILTER_F_CTA_PROTO_DST_PORT;
    }
    if filter.target_port.is_some() {
        reply |= CTA_FILTER_F_CTA_PROTO_SRC_PORT;
    }
    (orig, reply)
}

/// `IPCTNL_MSG_CT_DELETE` for one entry: its original tuple, plus its zone
/// and id when the dump gave them.
pub fn delete_request(flow: &CtFlow, seq: u32) -> Vec<u8> {
    let o = &flow.orig;
    let mut buf = Vec::with_capacity(128);
    let ty = ctnetlink(IPCTNL_MSG_CT_DELETE);
    let mut w = MsgWriter::begin(
        &mut buf,
        ty,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_IPV6,
        0,
    );
    w.nest(CTA_TUPLE_ORIG, |w| {
        w.nest(CTA_TUPLE_IP, |w| {
            w.put(CTA_IP_V6_SRC, &o.src.octets())
                .put(CTA_IP_V6_DST, &o.dst.octets());
        })
        .nest(CTA_TUPLE_PROTO, |w| {
            w.put(CTA_PROTO_NUM, &[o.proto])
                .put(CTA_PROTO_SRC_PORT, &o.src_port.to_be_bytes())
                .put(CTA_PROTO_DST_PORT, &o.dst_port.to_be_bytes());
        });
    });
    if let Some(zone) = flow.zone {
        w.put(CTA_ZONE, &zone.to_be_bytes());
    }
    if let Some(id) = flow.id {
        w.put(CTA_ID, &id.to_be_bytes());
    }
    w.finish();
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::conntrack::DnatTarget;
    use crate::apply::nfnetlink::codec::messages;
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

    /// An attribute written out by hand, independently of the codec.
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(((4 + value.len()) as u16).to_ne_bytes());
        v.extend(kind.to_ne_bytes());
        v.extend(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    const NESTED: u16 = 0x8000;

    fn tuple(t: &CtTuple) -> Vec<u8> {
        let ip = [nla(3, &t.src.octets()), nla(4, &t.dst.octets())].concat();
        let proto = [
            nla(1, &[t.proto]),
            nla(2, &t.src_port.to_be_bytes()),
            nla(3, &t.dst_port.to_be_bytes()),
        ]
        .concat();
        [nla(1 | NESTED, &ip), nla(2 | NESTED, &proto)].concat()
    }

    /// nlmsghdr + nfgenmsg (AF_INET6) + `attrs`, by hand.
    fn message(ty: u16, flags: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(((20 + attrs.len()) as u32).to_ne_bytes());
        m.extend(ty.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes()); // port id
        m.extend([10, 0, 0, 0]); // nfgenmsg: AF_INET6, version 0, res_id 0
        m.extend(attrs);
        m
    }

    /// The bytes `conntrack -D -f ipv6 -p udp -s 2001:db8:1::1
    /// -d 2001:db8:1::10 --sport 40000 --dport 5353` would send for the
    /// tuple, written out by hand from the kernel's uapi headers.
    #[test]
    fn delete_request_has_the_kernel_layout() {
        let f = flow();
        let attrs = [
            nla(1 | NESTED, &tuple(&f.orig)), // CTA_TUPLE_ORIG
            nla(CTA_ID, &0xdead_beefu32.to_be_bytes()),
        ]
        .concat();
        // CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE, sequence number 7
        let expected = message((1u16 << 8) | 2, NLM_F_REQUEST | NLM_F_ACK, 7, &attrs);
        assert_eq!(
            expected.len(),
            16 + 4 + (4 + (4 + 20 + 20) + (4 + 8 + 8 + 8)) + 8
        );
        assert_eq!(delete_request(&f, 7), expected);
    }

    /// The filtered dump requests, written out by hand from the uapi
    /// headers (`linux/netfilter/nfnetlink_conntrack.h`, `nf_internals.h`):
    /// one mapping's, and one for mappings of both protocols.
    #[test]
    fn dump_request_is_a_get_filtered_by_dnat_and_the_mappings_ports() {
        let filter = DumpFilter {
            proto: Some(17),
            host_port: Some(5353),
            target_port: Some(53),
        };
        let proto = |port_attr: u16, port: u16| {
            // CTA_TUPLE_PROTO { CTA_PROTO_NUM, CTA_PROTO_{SRC,DST}_PORT }
            nla(
                2 | NESTED,
                &[nla(1, &[17]), nla(port_attr, &port.to_be_bytes())].concat(),
            )
        };
        // CTA_STATUS and CTA_STATUS_MASK: IPS_DST_NAT (bit 5), big-endian.
        let dnat = [nla(3, &[0, 0, 0, 32]), nla(26, &[0, 0, 0, 32])].concat();
        let attrs = [
            dnat.clone(),
            nla(1 | NESTED, &proto(3, 5353)), // CTA_TUPLE_ORIG, dst port
            nla(2 | NESTED, &proto(2, 53)),   // CTA_TUPLE_REPLY, src port
            // CTA_FILTER { ORIG_FLAGS: PROTO_NUM | DST_PORT, REPLY_FLAGS: PROTO_NUM | SRC_PORT }
            nla(
                25 | NESTED,
                &[
                    nla(1, &(1u32 << 3 | 1 << 5).to_ne_bytes()),
                    nla(2, &(1u32 << 3 | 1 << 4).to_ne_bytes()),
                ]
                .concat(),
            ),
        ]
        .concat();
        // CTNETLINK << 8 | IPCTNL_MSG_CT_GET, sequence number 3
        let expected = message(1 << 8 | 1, NLM_F_REQUEST | NLM_F_DUMP, 3, &attrs);
        assert_eq!(dump_request(3, &filter), expected);

        let any = DumpFilter {
            proto: None,
            host_port: None,
            target_port: None,
        };
        let expected = message(1 << 8 | 1, NLM_F_REQUEST | NLM_F_DUMP, 4, &dnat);
        assert_eq!(dump_request(4, &any), expected, "the DNAT status alone");
    }

    #[test]
    fn the_unfiltered_dump_is_a_bare_get() {
        // CTNETLINK << 8 | IPCTNL_MSG_CT_GET, sequence number 4, no attributes
        let expected = message(1 << 8 | 1, NLM_F_REQUEST | NLM_F_DUMP, 4, &[]);
        assert_eq!(dump_all_request(4), expected);
    }

    #[test]
    fn a_flow_is_translated_through_the_prefix_it_was_sent_to_or_answered_to() {
        let inbound = flow();
        assert!(inbound.translated_through(&"2001:db8:1::/64".parse().unwrap()));
        assert!(!inbound.translated_through(&"2001:db8:2::/64".parse().unwrap()));
        // A container's flow out: its source rewritten into 2001:db8:b::/80,
        // so the reply comes back to an address there.
        let outbound = CtFlow {
            orig: CtTuple {
                src: v6("fd00:1::2"),
                dst: v6("2001:db8:ffff::1"),
                proto: 6,
                src_port: 40000,
                dst_port: 443,
            },
            reply: CtTuple {
                src: v6("2001:db8:ffff::1"),
                dst: v6("2001:db8:b::2"),
                proto: 6,
                src_port: 443,
                dst_port: 40000,
            },
            dst_nat: false,
            id: None,
            zone: None,
        };
        assert!(outbound.translated_through(&"2001:db8:b::/80".parse().unwrap()));
        assert!(!outbound.translated_through(&"2001:db8:a::/80".parse().unwrap()));
    }

    /// A dump entry as the kernel sends it (IPCTNL_MSG_CT_NEW, with status,
    /// zone, id and a timeout) parses back into the flow.
    #[test]
    fn dump_entries_parse_into_flows() {
        let f = CtFlow {
            zone: Some(5),
            ..flow()
        };
        let status: u32 = IPS_DST_NAT | 1 << 3 | 1 << 1; // DST_NAT | CONFIRMED | SEEN_REPLY
        let attrs = [
            nla(1 | NESTED, &tuple(&f.orig)),
            nla(2 | NESTED, &tuple(&f.reply)),
            nla(CTA_STATUS, &status.to_be_bytes()),
            nla(CTA_ZONE, &5u16.to_be_bytes()),
            nla(CTA_ID, &0xdead_beefu32.to_be_bytes()),
            nla(7, &30u32.to_be_bytes()), // CTA_TIMEOUT
        ]
        .concat();
        let entry = message(1 << 8, 2 /* NLM_F_MULTI */, 9, &attrs);
        let msg = messages(&entry)
            .next()
            .and_then(Result::ok)
            .expect("one message");
        let parsed = CtFlow::from_message(&msg).expect("a flow");
        assert_eq!(parsed, f);
        assert_eq!(
            parsed.match_key(),
            Some(MatchKey {
                proto: 17,
                host_port: 5353,
                target: v6("fd00:1::2"),
                target_port: 53
            })
        );
        // No reply tuple: not a flow.
        let half = message(1 << 8, 2, 9, &nla(1 | NESTED, &tuple(&f.orig)));
        let msg = messages(&half)
            .next()
            .and_then(Result::ok)
            .expect("one message");
        assert_eq!(CtFlow::from_message(&msg), None);
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
}
