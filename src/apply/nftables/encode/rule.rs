//! One rule's expressions, as nft linearizes its text: one helper per match
//! and statement kind, each named and documented by the nft text it makes.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::{Expr, ifname_cmp_bytes, k, reg_at_word};
use crate::apply::nftables::EncodeError;
use crate::nft::{
    AddrField, CtState, Direction, DnatKey, Match, RejectWith, Rule, Statement, Verdict,
};

/// The expressions of one rule. `set_id` gives the batch-local id of a set
/// created in the same batch (nft sends it next to the name).
pub(crate) fn rule_exprs(
    rule: &Rule,
    set_id: &dyn Fn(&str) -> Option<u32>,
) -> Result<Vec<Expr>, EncodeError> {
    let mut r = RuleExprs {
        out: Vec::new(),
        ipv6: false,
        icmpv6: false,
        set_id,
    };
    for m in &rule.matches {
        r.matching(m)?;
    }
    for s in &rule.statements {
        r.statement(s);
    }
    if let Some(v) = &rule.verdict {
        r.out.push(verdict(v));
    }
    Ok(r.out)
}

/// The expressions so far, and the protocol context nft keeps while
/// linearizing one rule: an `ip6 ...` match needs `meta nfproto ipv6` first
/// (in an inet table) unless something earlier in the rule already
/// established it; `icmpv6 ...` also needs `meta l4proto ipv6-icmp`.
struct RuleExprs<'a> {
    out: Vec<Expr>,
    ipv6: bool,
    icmpv6: bool,
    set_id: &'a dyn Fn(&str) -> Option<u32>,
}

impl RuleExprs<'_> {
    fn matching(&mut self, m: &Match) -> Result<(), EncodeError> {
        match m {
            Match::NfprotoIpv6 { negate } => self.nfproto_ipv6(*negate),
            Match::IfName { dir, negate, name } => self.ifname(*dir, *negate, name)?,
            Match::IfNameInSet { dir, negate, set } => self.ifname_in(*dir, *negate, set),
            Match::CtState(states) => self.ct_state(states),
            Match::CtStatusDnat => self.ct_bits(k::CT_STATUS, k::CT_STATUS_DNAT),
            Match::Ip6 { field, negate, net } => self.ip6_addr(*field, *negate, net),
            Match::Ip6InSet { field, set } => self.ip6_addr_in(*field, set),
            Match::DaddrProtoPortInSet { set } => self.daddr_proto_port_in(set),
            Match::ProtoPortInSet { set } => self.proto_port_in(set),
            Match::L4ProtoIs(proto) => {
                self.meta(k::META_L4PROTO);
                self.cmp(k::CMP_EQ, vec![proto.number()]);
            }
            Match::Icmpv6TypeInSet { set } => self.icmpv6_type_in(set),
            Match::Icmpv6TypeIs(t) => self.icmpv6_type_is(t.number()),
            Match::NdTargetInSet { set } => self.nd_target_in(set),
            Match::FibDaddrLocal => self.fib_daddr_local(),
            Match::CtOriginalDaddr { negate, net } => self.ct_original_daddr(*negate, net),
        }
        Ok(())
    }

    fn statement(&mut self, s: &Statement) {
        match s {
            Statement::MarkOr(bits) => self.mark_or(*bits),
            Statement::DnatMap { key, map } => self.dnat_map(*key, map),
            Statement::Masquerade => self.out.push(Expr::Masq),
            Statement::Snat(addr) => self.snat(addr),
            Statement::SnatBySaddrMap { map } => self.snat_by_saddr_map(map),
            Statement::SnatPrefix(net) => self.nat_prefix(k::NAT_SNAT, net),
            Statement::DnatPrefix(net) => self.nat_prefix(k::NAT_DNAT, net),
            Statement::Reject(with) => self.reject(*with),
        }
    }

    // ---- matches -----------------------------------------------------------

    /// `meta nfproto [!=] ipv6`
    fn nfproto_ipv6(&mut self, negate: bool) {
        self.meta(k::META_NFPROTO);
        self.cmp(cmp_op(negate), vec![k::NFPROTO_IPV6]);
        if !negate {
            self.ipv6 = true;
        }
    }

    /// `iifname|oifname [!=] NAME` (`NAME*` compares the prefix only)
    fn ifname(&mut self, dir: Direction, negate: bool, name: &str) -> Result<(), EncodeError> {
        self.meta(ifname_key(dir));
        self.cmp(cmp_op(negate), ifname_cmp_bytes(name)?);
        Ok(())
    }

    /// `iifname|oifname [!=] @SET`
    fn ifname_in(&mut self, dir: Direction, negate: bool, set: &str) {
        self.meta(ifname_key(dir));
        self.lookup_with(set, None, negate);
    }

    /// `ct state STATE,…`
    fn ct_state(&mut self, states: &[CtState]) {
        let mask = states.iter().fold(0, |m, s| m | s.bit());
        self.ct_bits(k::CT_STATE, mask);
    }

    /// `ct KEY & MASK != 0` (`ct state …`, `ct status dnat`)
    fn ct_bits(&mut self, key: u32, mask: u32) {
        self.out.push(Expr::Ct {
            key,
            dreg: k::REG_1,
            dir: None,
        });
        self.out.push(Expr::Bitwise {
            sreg: k::REG_1,
            dreg: k::REG_1,
            mask: mask.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        });
        self.cmp(k::CMP_NEQ, vec![0; 4]);
    }

    /// `ct original ip6 daddr [!=] NET`: the ct expression names its family,
    /// so nft adds no `meta nfproto` dependency; it loads the whole address
    /// and compares only the prefix's bytes (masking a prefix that is not
    /// byte-aligned).
    fn ct_original_daddr(&mut self, negate: bool, net: &Ipv6Net) {
        self.out.push(Expr::Ct {
            key: k::CT_DST_IP6,
            dreg: k::REG_1,
            dir: Some(k::CT_DIR_ORIGINAL),
        });
        let plen = net.prefix_len();
        if plen > 0 && plen.is_multiple_of(8) {
            let addr = net.trunc().addr().octets();
            self.cmp(cmp_op(negate), addr[..usize::from(plen / 8)].to_vec());
        } else {
            self.masked_cmp(negate, net);
        }
    }

    /// `ip6 saddr|daddr [!=] NET`: nft trims a byte-aligned prefix to a
    /// shorter load and masks any other.
    fn ip6_addr(&mut self, field: AddrField, negate: bool, net: &Ipv6Net) {
        self.need_ipv6();
        let plen = net.prefix_len();
        let addr = net.trunc().addr().octets();
        if plen == 128 {
            self.out.push(payload_ip6(field, 16, k::REG_1));
            self.cmp(cmp_op(negate), net.addr().octets().to_vec());
        } else if plen > 0 && plen.is_multiple_of(8) {
            let n = usize::from(plen / 8);
            self.out
                .push(payload_ip6(field, u32::from(plen / 8), k::REG_1));
            self.cmp(cmp_op(negate), addr[..n].to_vec());
        } else {
            self.out.push(payload_ip6(field, 16, k::REG_1));
            self.masked_cmp(negate, net);
        }
    }

    /// The whole address in NFT_REG_1 masked to `net`'s length and compared
    /// with its network address (a prefix that is not byte-aligned).
    fn masked_cmp(&mut self, negate: bool, net: &Ipv6Net) {
        self.out.push(Expr::Bitwise {
            sreg: k::REG_1,
            dreg: k::REG_1,
            mask: prefix_mask(net.prefix_len()).to_vec(),
            xor: vec![0; 16],
        });
        self.cmp(cmp_op(negate), net.trunc().addr().octets().to_vec());
    }

    /// `ip6 saddr|daddr @SET`
    fn ip6_addr_in(&mut self, field: AddrField, set: &str) {
        self.need_ipv6();
        self.out.push(payload_ip6(field, 16, k::REG_1));
        self.lookup(set, None);
    }

    /// `ip6 daddr . meta l4proto . th dport @SET`
    fn daddr_proto_port_in(&mut self, set: &str) {
        self.need_ipv6();
        self.load_concat(&[Field::Daddr, Field::L4proto, Field::Dport]);
        self.lookup(set, None);
    }

    /// `meta l4proto . th dport @SET`
    fn proto_port_in(&mut self, set: &str) {
        self.load_concat(&[Field::L4proto, Field::Dport]);
        self.lookup(set, None);
    }

    /// `icmpv6 type @SET`
    fn icmpv6_type_in(&mut self, set: &str) {
        self.need_icmpv6();
        self.transport(0, 1);
        self.lookup(set, None);
    }

    /// `icmpv6 type TYPE`
    fn icmpv6_type_is(&mut self, number: u8) {
        self.need_icmpv6();
        self.transport(0, 1);
        self.cmp(k::CMP_EQ, vec![number]);
    }

    /// `@th,64,128 @SET`: the ND target (ICMPv6 bytes 8–23) in a set.
    fn nd_target_in(&mut self, set: &str) {
        self.transport(8, 16);
        self.lookup(set, None);
    }

    /// `len` bytes at `offset` of the transport header into NFT_REG_1.
    fn transport(&mut self, offset: u32, len: u32) {
        self.out.push(Expr::Payload {
            base: k::PAYLOAD_TRANSPORT,
            offset,
            len,
            dreg: k::REG_1,
        });
    }

    /// `fib daddr type local`
    fn fib_daddr_local(&mut self) {
        self.out.push(Expr::Fib {
            flags: k::FIB_F_DADDR,
            result: k::FIB_RESULT_ADDRTYPE,
            dreg: k::REG_1,
        });
        self.cmp(k::CMP_EQ, k::RTN_LOCAL.to_ne_bytes().to_vec());
    }

    // ---- statements --------------------------------------------------------

    /// `meta mark set meta mark | BITS`
    fn mark_or(&mut self, bits: u32) {
        self.meta(k::META_MARK);
        self.out.push(Expr::Bitwise {
            sreg: k::REG_1,
            dreg: k::REG_1,
            mask: (!bits).to_ne_bytes().to_vec(),
            xor: bits.to_ne_bytes().to_vec(),
        });
        self.out.push(Expr::MetaSet {
            key: k::META_MARK,
            sreg: k::REG_1,
        });
    }

    /// `dnat ip6 to [ip6 daddr .] meta l4proto . th dport map @MAP`
    fn dnat_map(&mut self, key: DnatKey, map: &str) {
        match key {
            DnatKey::ProtoPort => self.load_concat(&[Field::L4proto, Field::Dport]),
            DnatKey::AddrProtoPort => {
                self.need_ipv6();
                self.load_concat(&[Field::Daddr, Field::L4proto, Field::Dport]);
            }
        }
        self.lookup(map, Some(k::REG_1));
        // The map yields `ipv6_addr . inet_service`: the port sits in the
        // register after the 16-byte address.
        self.out.push(Expr::Nat {
            kind: k::NAT_DNAT,
            family: u32::from(k::NFPROTO_IPV6),
            reg_addr_min: k::REG_1,
            reg_addr_max: None,
            reg_proto_min: Some(reg_at_word(4)),
            flags: None,
        });
    }

    /// `reject`, as nft encodes it: icmpx in a rule with no IPv6 context
    /// yet, icmpv6 (with nft's `meta nfproto ipv6` in front) in one that
    /// has it.
    fn reject(&mut self, with: RejectWith) {
        let (kind, code) = match with {
            RejectWith::TcpReset => (k::REJECT_TCP_RST, 0),
            RejectWith::IcmpxPortUnreachable => (k::REJECT_ICMPX_UNREACH, k::ICMPX_PORT_UNREACH),
            RejectWith::Icmpv6PortUnreachable => {
                self.need_ipv6();
                (k::REJECT_ICMP_UNREACH, k::ICMPV6_PORT_UNREACH)
            }
        };
        self.out.push(Expr::Reject { kind, code });
    }

    /// `snat ip6 to ADDR`
    fn snat(&mut self, addr: &Ipv6Addr) {
        self.out.push(Expr::Immediate {
            dreg: k::REG_1,
            data: addr.octets().to_vec(),
        });
        self.snat_to_reg_1();
    }

    /// `snat` to the address in NFT_REG_1.
    fn snat_to_reg_1(&mut self) {
        self.out.push(Expr::Nat {
            kind: k::NAT_SNAT,
            family: u32::from(k::NFPROTO_IPV6),
            reg_addr_min: k::REG_1,
            reg_addr_max: None,
            reg_proto_min: None,
            flags: None,
        });
    }

    /// `snat ip6 to ip6 saddr map @MAP`
    fn snat_by_saddr_map(&mut self, map: &str) {
        self.need_ipv6();
        self.out.push(payload_ip6(AddrField::Saddr, 16, k::REG_1));
        self.lookup(map, Some(k::REG_1));
        self.snat_to_reg_1();
    }

    /// `snat|dnat ip6 prefix to NET`: the range from the prefix's first to
    /// its last address, in NFT_REG_1 and NFT_REG_2, translated 1:1
    /// (NF_NAT_RANGE_NETMAP): the host bits are kept.
    fn nat_prefix(&mut self, kind: u32, net: &Ipv6Net) {
        self.out.push(Expr::Immediate {
            dreg: k::REG_1,
            data: net.network().octets().to_vec(),
        });
        self.out.push(Expr::Immediate {
            dreg: k::REG_1 + 1,
            data: net.broadcast().octets().to_vec(),
        });
        self.out.push(Expr::Nat {
            kind,
            family: u32::from(k::NFPROTO_IPV6),
            reg_addr_min: k::REG_1,
            reg_addr_max: Some(k::REG_1 + 1),
            reg_proto_min: None,
            flags: Some(k::NAT_RANGE_NETMAP),
        });
    }

    // ---- building blocks ---------------------------------------------------

    /// The implicit `meta nfproto ipv6`, once per rule.
    fn need_ipv6(&mut self) {
        if !self.ipv6 {
            self.meta(k::META_NFPROTO);
            self.cmp(k::CMP_EQ, vec![k::NFPROTO_IPV6]);
            self.ipv6 = true;
        }
    }

    /// The implicit `meta l4proto ipv6-icmp` (after `meta nfproto ipv6`),
    /// once per rule.
    fn need_icmpv6(&mut self) {
        self.need_ipv6();
        if !self.icmpv6 {
            self.meta(k::META_L4PROTO);
            self.cmp(k::CMP_EQ, vec![k::IPPROTO_ICMPV6]);
            self.icmpv6 = true;
        }
    }

    /// `meta KEY` into NFT_REG_1.
    fn meta(&mut self, key: u32) {
        self.out.push(Expr::Meta {
            key,
            dreg: k::REG_1,
        });
    }

    /// NFT_REG_1 compared with `data`.
    fn cmp(&mut self, op: u32, data: Vec<u8>) {
        self.out.push(Expr::Cmp {
            sreg: k::REG_1,
            op,
            data,
        });
    }

    /// `@SET` (or `map @SET` into `dreg`) on the key in NFT_REG_1.
    fn lookup(&mut self, set: &str, dreg: Option<u32>) {
        self.lookup_with(set, dreg, false);
    }

    /// The same; `invert` matches when the key is not in the set.
    fn lookup_with(&mut self, set: &str, dreg: Option<u32>, invert: bool) {
        self.out.push(Expr::Lookup {
            sreg: k::REG_1,
            dreg,
            set: set.to_string(),
            set_id: (self.set_id)(set),
            invert,
        });
    }

    /// Loads `fields` into consecutive 32-bit-aligned registers starting at
    /// NFT_REG_1, as nft does for a concatenation.
    fn load_concat(&mut self, fields: &[Field]) {
        let mut word = 0;
        for f in fields {
            self.out.push(f.load(reg_at_word(word)));
            word += f.len().div_ceil(4);
        }
    }
}

/// `accept`, `drop`, `return`, `jump CHAIN`, `goto CHAIN`
fn verdict(v: &Verdict) -> Expr {
    let (code, chain) = match v {
        Verdict::Accept => (k::NF_ACCEPT, None),
        Verdict::Drop => (k::NF_DROP, None),
        Verdict::Return => (k::NFT_RETURN, None),
        Verdict::Jump(c) => (k::NFT_JUMP, Some(c.clone())),
        Verdict::Goto(c) => (k::NFT_GOTO, Some(c.clone())),
    };
    Expr::Verdict { code, chain }
}

/// A field loaded as part of a (possibly concatenated) key.
#[derive(Debug, Clone, Copy)]
enum Field {
    Daddr,
    L4proto,
    Dport,
}

impl Field {
    fn len(self) -> u32 {
        match self {
            Field::Daddr => 16,
            Field::L4proto => 1,
            Field::Dport => 2,
        }
    }

    fn load(self, dreg: u32) -> Expr {
        match self {
            Field::Daddr => payload_ip6(AddrField::Daddr, 16, dreg),
            Field::L4proto => Expr::Meta {
                key: k::META_L4PROTO,
                dreg,
            },
            Field::Dport => Expr::Payload {
                base: k::PAYLOAD_TRANSPORT,
                offset: 2,
                len: 2,
                dreg,
            },
        }
    }
}

fn payload_ip6(field: AddrField, len: u32, dreg: u32) -> Expr {
    let offset = match field {
        AddrField::Saddr => 8,
        AddrField::Daddr => 24,
    };
    Expr::Payload {
        base: k::PAYLOAD_NETWORK,
        offset,
        len,
        dreg,
    }
}

fn cmp_op(negate: bool) -> u32 {
    if negate { k::CMP_NEQ } else { k::CMP_EQ }
}

fn prefix_mask(len: u8) -> [u8; 16] {
    let bits: u128 = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    bits.to_be_bytes()
}

fn ifname_key(dir: Direction) -> u32 {
    match dir {
        Direction::In => k::META_IIFNAME,
        Direction::Out => k::META_OIFNAME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::nftables::encode::k;
    use crate::nft::rule;

    #[test]
    fn ip6_daddr_gets_nfproto_dependency_once() {
        let r = rule().ipv6().daddr("::1/128".parse().unwrap()).accept();
        let exprs = rule_exprs(&r, &|_| None).unwrap();
        let metas = exprs
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Expr::Meta {
                        key: k::META_NFPROTO,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(metas, 1);
        let r = rule().daddr("fd00::/64".parse().unwrap()).accept();
        let exprs = rule_exprs(&r, &|_| None).unwrap();
        assert_eq!(
            exprs[2],
            Expr::Payload {
                base: 1,
                offset: 24,
                len: 8,
                dreg: 1
            }
        );
    }
}
