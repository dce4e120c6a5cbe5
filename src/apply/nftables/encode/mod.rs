//! IR → kernel expressions and data, in plain safe Rust.
//!
//! Everything here mirrors what `nft` 1.0.x emits for the rendered text of
//! the same IR (checked with `nft --debug=netlink,mnl`): implicit protocol
//! dependencies, register allocation, prefix trimming, padding of
//! concatenated keys, set key types and set userdata. The FFI layer only
//! copies these values into libnftnl objects; set elements are written
//! straight into netlink attributes (`batch.rs`), without libnftnl. Rules are in `rule.rs`, sets
//! and their elements in `set.rs`.

mod rule;
mod set;

pub(crate) use rule::rule_exprs;

use super::EncodeError;
pub(crate) use set::{SetSpec, ValueBytes, element_values, encode_values, set_spec};

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

    /// `lookup` flag: the key is not in the set.
    pub const LOOKUP_F_INV: u32 = 1;

    pub const CT_STATE: u32 = 0;
    pub const CT_STATUS: u32 = 2;
    pub const CT_DST_IP6: u32 = 22;
    /// IP_CT_DIR_ORIGINAL
    pub const CT_DIR_ORIGINAL: u8 = 0;
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

    /// `reject with icmpv6 …`: NFT_REJECT_ICMP_UNREACH and its code
    /// ICMPV6_PORT_UNREACH.
    pub const REJECT_ICMP_UNREACH: u32 = 0;
    pub const ICMPV6_PORT_UNREACH: u8 = 4;
    /// `reject with tcp reset`: NFT_REJECT_TCP_RST.
    pub const REJECT_TCP_RST: u32 = 1;
    /// `reject`: NFT_REJECT_ICMPX_UNREACH and NFT_REJECT_ICMPX_PORT_UNREACH.
    pub const REJECT_ICMPX_UNREACH: u32 = 2;
    pub const ICMPX_PORT_UNREACH: u8 = 1;
    /// NF_NAT_RANGE_NETMAP: map the address range 1:1 (prefix translation).
    pub const NAT_RANGE_NETMAP: u32 = 0x40;

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
        /// The conntrack direction for tuple keys (`ct original ...`).
        dir: Option<u8>,
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
        /// NFT_LOOKUP_F_INV: matches when the key is not in the set.
        invert: bool,
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
        /// With `flags` NF_NAT_RANGE_NETMAP: the range's last address.
        reg_addr_max: Option<u32>,
        reg_proto_min: Option<u32>,
        flags: Option<u32>,
    },
    Masq,
    /// `reject`: `kind` NFT_REJECT_*, `code` the ICMP code of that kind.
    Reject {
        kind: u32,
        code: u8,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_follow_nft() {
        assert_eq!(reg_at_word(0), 1);
        assert_eq!(reg_at_word(1), 9);
        assert_eq!(reg_at_word(4), 2);
        assert_eq!(reg_at_word(5), 13);
    }

    #[test]
    fn wildcard_ifname_compares_prefix_only() {
        assert_eq!(ifname_cmp_bytes("br-*").unwrap(), b"br-");
        assert_eq!(ifname_cmp_bytes("eth0").unwrap().len(), 16);
        assert!(ifname_cmp_bytes("a-very-long-interface").is_err());
    }
}
