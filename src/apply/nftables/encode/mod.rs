//! IR → kernel expressions and data, in plain safe Rust.
//!
//! Everything here mirrors what `nft` 1.0.x emits for the rendered text of
//! the same IR (checked with `nft --debug=netlink,mnl`): implicit protocol
//! dependencies, register allocation, prefix trimming, padding of
//! concatenated keys, set key types and set userdata. The FFI layer only
//! copies these values into libnftnl objects.

use ipnet::Ipv6Net;

use crate::nft::{
    AddrField, CtState, Direction, DnatKey, Element, KeyType, Match, Rule, Set, Statement, Value,
    Verdict,
};

use super::EncodeError;

/// Longest value a register or a set key may hold (NFT_DATA_VALUE_MAXLEN).
pub(crate) const DATA_MAX: usize = 64;
pub(crate) const IFNAMSIZ: usize = 16;

// uapi constants (linux/netfilter/nf_tables.h and friends).
pub(crate) mod k {
    pub const NFPROTO_IPV6: u8 = 10;
    pub const IPPROTO_ICMPV6: u8 = 58;

    pub const META_MARK: u32 = 3;
    pub const META_IIFNAME: u32 = 6;
    pub const META_OIFNAME: u32 = 7;
    pub const META_NFPROTO: u32 = 15;
    pub const META_L4PROTO: u32 = 16;

    pub const CT_STATE: u32 = 0;
    pub const CT_STATUS: u32 = 2;
    /// IPS_DST_NAT
    pub const CT_STATUS_DNAT: u32 = 1 << 5;

    pub const PAYLOAD_NETWORK: u32 = 1;
    pub const PAYLOAD_TRANSPORT: u32 = 2;

    pub const CMP_EQ: u32 = 0;
    pub const CMP_NEQ: u32 = 1;

    pub const FIB_F_DADDR: u32 = 1 << 1;
    pub const FIB_RESULT_ADDRTYPE: u32 = 3;
    pub const RTN_LOCAL: u32 = 2;

    pub const NAT_SNAT: u32 = 0;
    pub const NAT_DNAT: u32 = 1;

    pub const NF_DROP: i32 = 0;
    pub const NF_ACCEPT: i32 = 1;
    pub const NFT_JUMP: i32 = -3;
    pub const NFT_GOTO: i32 = -4;
    pub const NFT_RETURN: i32 = -5;

    pub const NFT_SET_MAP: u32 = 0x8;

    pub const REG_VERDICT: u32 = 0;
    pub const REG_1: u32 = 1;
}

/// One kernel expression, as nft would build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    Meta {
        key: u32,
        dreg: u32,
    },
    MetaSet {
        key: u32,
        sreg: u32,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Lookup {
        sreg: u32,
        dreg: Option<u32>,
        set: String,
        set_id: Option<u32>,
    },
    Fib {
        flags: u32,
        result: u32,
        dreg: u32,
    },
    Nat {
        kind: u32,
        family: u32,
        reg_addr_min: u32,
        reg_proto_min: Option<u32>,
    },
    Masq,
    Immediate {
        dreg: u32,
        data: Vec<u8>,
    },
    Verdict {
        code: i32,
        chain: Option<String>,
    },
}

impl Expr {
    /// Bytes of value data this expression carries (for message-size bounds).
    pub(crate) fn data_len(&self) -> usize {
        match self {
            Expr::Cmp { data, .. } | Expr::Immediate { data, .. } => data.len(),
            Expr::Bitwise { mask, xor, .. } => mask.len() + xor.len(),
            Expr::Lookup { set, .. } => set.len(),
            Expr::Verdict { chain, .. } => chain.as_ref().map_or(0, String::len),
            _ => 0,
        }
    }
}

/// nft's register numbering: a value starting at 32-bit word `w` of the
/// register file is named by its 128-bit register when it is aligned to one
/// (NFT_REG_1..4), else by its 32-bit register (NFT_REG32_00 + w).
pub(crate) fn reg_at_word(w: u32) -> u32 {
    if w.is_multiple_of(4) {
        k::REG_1 + w / 4
    } else {
        8 + w
    }
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

/// Loads `fields` into consecutive 32-bit-aligned registers starting at
/// NFT_REG_1, as nft does for a concatenation.
fn load_concat(fields: &[Field], out: &mut Vec<Expr>) {
    let mut word = 0;
    for f in fields {
        out.push(f.load(reg_at_word(word)));
        word += f.len().div_ceil(4);
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

/// Protocol context nft keeps while linearizing one rule: an `ip6 ...`
/// match needs `meta nfproto ipv6` first (in an inet table) unless something
/// earlier in the rule already established it; `icmpv6 ...` also needs
/// `meta l4proto ipv6-icmp`.
#[derive(Default)]
struct Ctx {
    ipv6: bool,
    icmpv6: bool,
}

impl Ctx {
    fn need_ipv6(&mut self, out: &mut Vec<Expr>) {
        if !self.ipv6 {
            out.push(Expr::Meta {
                key: k::META_NFPROTO,
                dreg: k::REG_1,
            });
            out.push(Expr::Cmp {
                sreg: k::REG_1,
                op: k::CMP_EQ,
                data: vec![k::NFPROTO_IPV6],
            });
            self.ipv6 = true;
        }
    }

    fn need_icmpv6(&mut self, out: &mut Vec<Expr>) {
        self.need_ipv6(out);
        if !self.icmpv6 {
            out.push(Expr::Meta {
                key: k::META_L4PROTO,
                dreg: k::REG_1,
            });
            out.push(Expr::Cmp {
                sreg: k::REG_1,
                op: k::CMP_EQ,
                data: vec![k::IPPROTO_ICMPV6],
            });
            self.icmpv6 = true;
        }
    }
}

/// Bytes of an interface name compared by `iifname`/`oifname`: the full
/// IFNAMSIZ buffer (NUL padded) for an exact name, only the prefix for a
/// `name*` wildcard.
pub(crate) fn ifname_cmp_bytes(name: &str) -> Result<Vec<u8>, EncodeError> {
    if let Some(prefix) = name.strip_suffix('*') {
        if prefix.is_empty() || prefix.len() >= IFNAMSIZ {
            return Err(EncodeError::new(format!(
                "interface name pattern {name:?} is not usable"
            )));
        }
        return Ok(prefix.as_bytes().to_vec());
    }
    ifname_bytes(name)
}

pub(crate) fn ifname_bytes(name: &str) -> Result<Vec<u8>, EncodeError> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
        return Err(EncodeError::new(format!(
            "interface name {name:?} is not valid"
        )));
    }
    let mut v = name.as_bytes().to_vec();
    v.resize(IFNAMSIZ, 0);
    Ok(v)
}

fn prefix_mask(len: u8) -> [u8; 16] {
    let bits: u128 = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    bits.to_be_bytes()
}

fn ip6_match(field: AddrField, negate: bool, net: &Ipv6Net, out: &mut Vec<Expr>) {
    let plen = net.prefix_len();
    let addr = net.trunc().addr().octets();
    if plen == 128 {
        out.push(payload_ip6(field, 16, k::REG_1));
        out.push(Expr::Cmp {
            sreg: k::REG_1,
            op: cmp_op(negate),
            data: net.addr().octets().to_vec(),
        });
    } else if plen > 0 && plen.is_multiple_of(8) {
        // nft trims a byte-aligned prefix to a shorter load.
        let n = usize::from(plen / 8);
        out.push(payload_ip6(field, u32::from(plen / 8), k::REG_1));
        out.push(Expr::Cmp {
            sreg: k::REG_1,
            op: cmp_op(negate),
            data: addr[..n].to_vec(),
        });
    } else {
        out.push(payload_ip6(field, 16, k::REG_1));
        out.push(Expr::Bitwise {
            sreg: k::REG_1,
            dreg: k::REG_1,
            mask: prefix_mask(plen).to_vec(),
            xor: vec![0; 16],
        });
        out.push(Expr::Cmp {
            sreg: k::REG_1,
            op: cmp_op(negate),
            data: addr.to_vec(),
        });
    }
}

/// `ct <key>` tested against a bitmask: load, `& mask`, `!= 0`.
fn ct_bits(key: u32, mask: u32, out: &mut Vec<Expr>) {
    out.push(Expr::Ct {
        key,
        dreg: k::REG_1,
    });
    out.push(Expr::Bitwise {
        sreg: k::REG_1,
        dreg: k::REG_1,
        mask: mask.to_ne_bytes().to_vec(),
        xor: vec![0; 4],
    });
    out.push(Expr::Cmp {
        sreg: k::REG_1,
        op: k::CMP_NEQ,
        data: vec![0; 4],
    });
}

/// The expressions of one rule. `set_id` gives the batch-local id of a set
/// created in the same batch (nft sends it next to the name).
pub(crate) fn rule_exprs(
    rule: &Rule,
    set_id: &dyn Fn(&str) -> Option<u32>,
) -> Result<Vec<Expr>, EncodeError> {
    let mut out = Vec::new();
    let mut ctx = Ctx::default();
    let lookup = |set: &str, dreg: Option<u32>| Expr::Lookup {
        sreg: k::REG_1,
        dreg,
        set: set.to_string(),
        set_id: set_id(set),
    };

    for m in &rule.matches {
        match m {
            Match::NfprotoIpv6 { negate } => {
                out.push(Expr::Meta {
                    key: k::META_NFPROTO,
                    dreg: k::REG_1,
                });
                out.push(Expr::Cmp {
                    sreg: k::REG_1,
                    op: cmp_op(*negate),
                    data: vec![k::NFPROTO_IPV6],
                });
                if !negate {
                    ctx.ipv6 = true;
                }
            }
            Match::IfName { dir, negate, name } => {
                out.push(Expr::Meta {
                    key: ifname_key(*dir),
                    dreg: k::REG_1,
                });
                out.push(Expr::Cmp {
                    sreg: k::REG_1,
                    op: cmp_op(*negate),
                    data: ifname_cmp_bytes(name)?,
                });
            }
            Match::IfNameInSet { dir, set } => {
                out.push(Expr::Meta {
                    key: ifname_key(*dir),
                    dreg: k::REG_1,
                });
                out.push(lookup(set, None));
            }
            Match::CtState(states) => {
                let mask = states.iter().fold(0, |m, s: &CtState| m | s.bit());
                ct_bits(k::CT_STATE, mask, &mut out);
            }
            Match::CtStatusDnat => ct_bits(k::CT_STATUS, k::CT_STATUS_DNAT, &mut out),
            Match::Ip6 { field, negate, net } => {
                ctx.need_ipv6(&mut out);
                ip6_match(*field, *negate, net, &mut out);
            }
            Match::Ip6InSet { field, set } => {
                ctx.need_ipv6(&mut out);
                out.push(payload_ip6(*field, 16, k::REG_1));
                out.push(lookup(set, None));
            }
            Match::DaddrProtoPortInSet { set } => {
                ctx.need_ipv6(&mut out);
                load_concat(&[Field::Daddr, Field::L4proto, Field::Dport], &mut out);
                out.push(lookup(set, None));
            }
            Match::Icmpv6TypeInSet { set } => {
                ctx.need_icmpv6(&mut out);
                out.push(Expr::Payload {
                    base: k::PAYLOAD_TRANSPORT,
                    offset: 0,
                    len: 1,
                    dreg: k::REG_1,
                });
                out.push(lookup(set, None));
            }
            Match::FibDaddrLocal => {
                out.push(Expr::Fib {
                    flags: k::FIB_F_DADDR,
                    result: k::FIB_RESULT_ADDRTYPE,
                    dreg: k::REG_1,
                });
                out.push(Expr::Cmp {
                    sreg: k::REG_1,
                    op: k::CMP_EQ,
                    data: k::RTN_LOCAL.to_ne_bytes().to_vec(),
                });
            }
        }
    }

    for s in &rule.statements {
        match s {
            Statement::MarkOr(bits) => {
                out.push(Expr::Meta {
                    key: k::META_MARK,
                    dreg: k::REG_1,
                });
                out.push(Expr::Bitwise {
                    sreg: k::REG_1,
                    dreg: k::REG_1,
                    mask: (!bits).to_ne_bytes().to_vec(),
                    xor: bits.to_ne_bytes().to_vec(),
                });
                out.push(Expr::MetaSet {
                    key: k::META_MARK,
                    sreg: k::REG_1,
                });
            }
            Statement::DnatMap { key, map } => {
                match key {
                    DnatKey::ProtoPort => load_concat(&[Field::L4proto, Field::Dport], &mut out),
                    DnatKey::AddrProtoPort => {
                        ctx.need_ipv6(&mut out);
                        load_concat(&[Field::Daddr, Field::L4proto, Field::Dport], &mut out);
                    }
                }
                out.push(lookup(map, Some(k::REG_1)));
                // The map yields `ipv6_addr . inet_service`: the port sits
                // in the register after the 16-byte address.
                out.push(Expr::Nat {
                    kind: k::NAT_DNAT,
                    family: u32::from(k::NFPROTO_IPV6),
                    reg_addr_min: k::REG_1,
                    reg_proto_min: Some(reg_at_word(4)),
                });
            }
            Statement::Masquerade => out.push(Expr::Masq),
            Statement::Snat(addr) => {
                out.push(Expr::Immediate {
                    dreg: k::REG_1,
                    data: addr.octets().to_vec(),
                });
                out.push(Expr::Nat {
                    kind: k::NAT_SNAT,
                    family: u32::from(k::NFPROTO_IPV6),
                    reg_addr_min: k::REG_1,
                    reg_proto_min: None,
                });
            }
        }
    }

    if let Some(v) = &rule.verdict {
        let (code, chain) = match v {
            Verdict::Accept => (k::NF_ACCEPT, None),
            Verdict::Drop => (k::NF_DROP, None),
            Verdict::Return => (k::NFT_RETURN, None),
            Verdict::Jump(c) => (k::NFT_JUMP, Some(c.clone())),
            Verdict::Goto(c) => (k::NFT_GOTO, Some(c.clone())),
        };
        out.push(Expr::Verdict { code, chain });
    }
    Ok(out)
}

fn ifname_key(dir: Direction) -> u32 {
    match dir {
        Direction::In => k::META_IIFNAME,
        Direction::Out => k::META_OIFNAME,
    }
}

// ---- sets ------------------------------------------------------------------

/// nft's datatype ids (`enum datatypes` in nft's datatype.h).
fn type_id(t: KeyType) -> u32 {
    match t {
        KeyType::Ipv6Addr => 8,
        KeyType::InetProto => 12,
        KeyType::InetService => 13,
        KeyType::Icmpv6Type => 29,
        KeyType::IfName => 41,
    }
}

/// Natural length in bytes of one value of the type.
fn type_len(t: KeyType) -> usize {
    match t {
        KeyType::Ipv6Addr => 16,
        KeyType::InetProto => 1,
        KeyType::InetService => 2,
        KeyType::Icmpv6Type => 1,
        KeyType::IfName => IFNAMSIZ,
    }
}

/// nft's `enum byteorder` for the type: INVALID 0, HOST 1, BIG 2.
fn type_byteorder(t: KeyType) -> u32 {
    match t {
        KeyType::Ipv6Addr | KeyType::InetService | KeyType::Icmpv6Type => 2,
        KeyType::IfName => 1,
        KeyType::InetProto => 0,
    }
}

/// Concatenated type id: `(t1 << 6 | t2) << 6 | t3 ...`.
pub(crate) fn concat_type(types: &[KeyType]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << 6) | type_id(*t))
}

/// Length of a (possibly concatenated) key: a single value has its natural
/// length, each part of a concatenation is padded to 4 bytes.
pub(crate) fn key_len(types: &[KeyType]) -> usize {
    match types {
        [one] => type_len(*one),
        _ => types.iter().map(|t| type_len(*t).next_multiple_of(4)).sum(),
    }
}

/// Kernel-side shape of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetSpec {
    pub name: String,
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    pub data: Option<(u32, u32)>,
    pub id: u32,
    pub userdata: Vec<u8>,
}

pub(crate) fn set_spec(set: &Set, id: u32) -> Result<SetSpec, EncodeError> {
    if set.key.is_empty() {
        return Err(EncodeError::new(format!(
            "set {} has no key type",
            set.name
        )));
    }
    let klen = key_len(&set.key);
    let dlen = if set.is_map() { key_len(&set.data) } else { 0 };
    if klen > DATA_MAX || dlen > DATA_MAX {
        return Err(EncodeError::new(format!(
            "set {}: key or data longer than {DATA_MAX} bytes",
            set.name
        )));
    }
    let data = set.is_map().then(|| (concat_type(&set.data), dlen as u32));
    Ok(SetSpec {
        name: set.name.clone(),
        flags: if set.is_map() { k::NFT_SET_MAP } else { 0 },
        key_type: concat_type(&set.key),
        key_len: klen as u32,
        data,
        id,
        userdata: set_userdata(set),
    })
}

// libnftnl's udata TLVs (`enum udata_set_type` / `enum udata_set_typeof`).
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const UDATA_SET_DATABYTEORDER: u8 = 1;
const UDATA_SET_KEY_TYPEOF: u8 = 3;
const UDATA_SET_DATA_TYPEOF: u8 = 4;
const UDATA_SET_DATA_INTERVAL: u8 = 6;
const UDATA_TYPEOF_EXPR: u8 = 0;
const UDATA_TYPEOF_DATA: u8 = 1;
/// nft's `EXPR_CONCAT`.
const EXPR_CONCAT: u32 = 13;

fn udata_u32(buf: &mut Vec<u8>, ty: u8, v: u32) {
    buf.extend_from_slice(&[ty, 4]);
    buf.extend_from_slice(&v.to_ne_bytes());
}

/// nft records a concatenation as a "typeof" nest with the expression type
/// and an empty data nest.
fn udata_concat_typeof(buf: &mut Vec<u8>, ty: u8) {
    buf.extend_from_slice(&[ty, 8]);
    udata_u32(buf, UDATA_TYPEOF_EXPR, EXPR_CONCAT);
    buf.extend_from_slice(&[UDATA_TYPEOF_DATA, 0]);
}

fn byteorder(types: &[KeyType]) -> u32 {
    match types {
        [one] => type_byteorder(*one),
        _ => 0,
    }
}

/// The NFTNL_SET_USERDATA nft writes (and reads back to print values).
pub(crate) fn set_userdata(set: &Set) -> Vec<u8> {
    let mut buf = Vec::new();
    udata_u32(&mut buf, UDATA_SET_KEYBYTEORDER, byteorder(&set.key));
    if set.is_map() {
        udata_u32(&mut buf, UDATA_SET_DATABYTEORDER, byteorder(&set.data));
    }
    if set.key.len() > 1 {
        udata_concat_typeof(&mut buf, UDATA_SET_KEY_TYPEOF);
    }
    if set.is_map() {
        if set.data.len() > 1 {
            udata_concat_typeof(&mut buf, UDATA_SET_DATA_TYPEOF);
        }
        udata_u32(&mut buf, UDATA_SET_DATA_INTERVAL, 0);
    }
    buf
}

pub(crate) fn value_type(v: &Value) -> KeyType {
    match v {
        Value::Addr(_) => KeyType::Ipv6Addr,
        Value::Proto(_) => KeyType::InetProto,
        Value::Port(_) => KeyType::InetService,
        Value::IfName(_) => KeyType::IfName,
        Value::Icmpv6(_) => KeyType::Icmpv6Type,
    }
}

fn value_bytes(v: &Value) -> Result<Vec<u8>, EncodeError> {
    Ok(match v {
        Value::Addr(a) => a.octets().to_vec(),
        Value::Proto(p) => vec![p.number()],
        Value::Port(p) => p.to_be_bytes().to_vec(),
        Value::IfName(n) => ifname_bytes(n)?,
        Value::Icmpv6(t) => vec![t.number()],
    })
}

/// A key or data value of an element, checked against the set's types.
pub(crate) fn encode_values(
    values: &[Value],
    types: &[KeyType],
    what: &str,
) -> Result<Vec<u8>, EncodeError> {
    if values.len() != types.len() || values.iter().zip(types).any(|(v, t)| value_type(v) != *t) {
        return Err(EncodeError::new(format!(
            "{what} does not match the set's type"
        )));
    }
    if let [one] = values {
        return value_bytes(one);
    }
    let mut out = Vec::with_capacity(key_len(types));
    for v in values {
        let mut b = value_bytes(v)?;
        b.resize(b.len().next_multiple_of(4), 0);
        out.extend_from_slice(&b);
    }
    Ok(out)
}

/// Key and (for maps) data bytes of an element of `set`.
pub(crate) fn element_bytes(
    set_key: &[KeyType],
    set_data: &[KeyType],
    e: &Element,
) -> Result<(Vec<u8>, Option<Vec<u8>>), EncodeError> {
    let key = encode_values(&e.key, set_key, "element key")?;
    let data = if set_data.is_empty() {
        if !e.data.is_empty() {
            return Err(EncodeError::new(
                "element has data but the set is not a map".to_string(),
            ));
        }
        None
    } else {
        Some(encode_values(&e.data, set_data, "element data")?)
    };
    Ok((key, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{L4Proto, rule};

    #[test]
    fn registers_follow_nft() {
        assert_eq!(reg_at_word(0), 1);
        assert_eq!(reg_at_word(1), 9);
        assert_eq!(reg_at_word(4), 2);
        assert_eq!(reg_at_word(5), 13);
    }

    #[test]
    fn concat_types_and_lengths() {
        let k = [KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService];
        assert_eq!(concat_type(&k), 0x830d);
        assert_eq!(key_len(&k), 24);
        assert_eq!(
            concat_type(&[KeyType::InetProto, KeyType::InetService]),
            0x30d
        );
        assert_eq!(key_len(&[KeyType::Ipv6Addr, KeyType::InetService]), 20);
        assert_eq!(key_len(&[KeyType::IfName]), 16);
        assert_eq!(key_len(&[KeyType::Icmpv6Type]), 1);
    }

    #[test]
    fn userdata_matches_nft() {
        let set = |key: Vec<KeyType>, data: Vec<KeyType>| Set {
            name: "s".into(),
            key,
            data,
            elements: vec![],
        };
        assert_eq!(
            set_userdata(&set(vec![KeyType::IfName], vec![])),
            [0, 4, 1, 0, 0, 0]
        );
        assert_eq!(
            set_userdata(&set(
                vec![KeyType::InetProto, KeyType::InetService],
                vec![KeyType::Ipv6Addr, KeyType::InetService]
            )),
            [
                0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 4, 8, 0, 4, 13,
                0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0
            ]
        );
        assert_eq!(
            set_userdata(&set(vec![KeyType::Ipv6Addr], vec![KeyType::Ipv6Addr])),
            [0, 4, 2, 0, 0, 0, 1, 4, 2, 0, 0, 0, 6, 4, 0, 0, 0, 0]
        );
    }

    #[test]
    fn concat_element_is_padded() {
        let e = Element {
            key: vec![
                Value::Addr("2001:db8::2".parse().unwrap()),
                Value::Proto(L4Proto::Tcp),
                Value::Port(443),
            ],
            data: vec![],
        };
        let k = [KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService];
        let (key, data) = element_bytes(&k, &[], &e).unwrap();
        assert_eq!(key.len(), 24);
        assert_eq!(&key[16..], &[6, 0, 0, 0, 1, 187, 0, 0]);
        assert!(data.is_none());
    }

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

    #[test]
    fn wildcard_ifname_compares_prefix_only() {
        assert_eq!(ifname_cmp_bytes("br-*").unwrap(), b"br-");
        assert_eq!(ifname_cmp_bytes("eth0").unwrap().len(), 16);
        assert!(ifname_cmp_bytes("a-very-long-interface").is_err());
    }
}
