//! dock6's own small nftables IR.
//!
//! It is deliberately narrow: only the expressions dock6 needs, each with one
//! text form (`Display`, in `render.rs`) and one netlink encoding (in
//! `apply/`). Keeping the vocabulary closed is what lets the round-trip test
//! prove that both say the same thing.

mod builder;
mod diff;
mod listing_diff;
mod render;
#[doc(hidden)]
pub mod samples;

pub use builder::{RuleBuilder, rule};
pub use diff::{ElementChange, TableDiff, diff, same_shape};
pub use listing_diff::listing_diff;

pub use render::render_net;

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

/// The one table dock6 owns, `table inet dock6`.
pub const TABLE_NAME: &str = "dock6";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub sets: Vec<Set>,
    pub chains: Vec<Chain>,
}

impl Table {
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// Number of set and map elements in the table.
    pub fn element_count(&self) -> usize {
        self.sets.iter().map(|s| s.elements.len()).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyType {
    Ipv6Addr,
    InetProto,
    InetService,
    IfName,
    Icmpv6Type,
    /// The target address of a neighbour solicitation or advertisement
    /// (ICMPv6 bytes 8–23) as raw payload: a set of it is `typeof
    /// @th,64,128` (nft 1.0.6 has no name for the field).
    NdTarget,
}

/// A named set (empty `data`) or map (non-empty `data`) with a possibly
/// concatenated key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub key: Vec<KeyType>,
    pub data: Vec<KeyType>,
    pub elements: Vec<Element>,
}

impl Set {
    pub fn is_map(&self) -> bool {
        !self.data.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    pub key: Vec<Value>,
    pub data: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Proto {
    Tcp,
    Udp,
}

impl L4Proto {
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => libc_ipproto::TCP,
            L4Proto::Udp => libc_ipproto::UDP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

mod libc_ipproto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// The ICMPv6 types a container may receive from outside: the errors that
/// path MTU discovery and diagnostics need (types 1–4) and echo requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Icmpv6Type {
    DestinationUnreachable,
    PacketTooBig,
    TimeExceeded,
    ParameterProblem,
    EchoRequest,
    NeighborAdvert,
}

impl Icmpv6Type {
    pub const INBOUND: [Icmpv6Type; 5] = [
        Icmpv6Type::DestinationUnreachable,
        Icmpv6Type::PacketTooBig,
        Icmpv6Type::TimeExceeded,
        Icmpv6Type::ParameterProblem,
        Icmpv6Type::EchoRequest,
    ];

    pub fn number(self) -> u8 {
        match self {
            Icmpv6Type::DestinationUnreachable => 1,
            Icmpv6Type::PacketTooBig => 2,
            Icmpv6Type::TimeExceeded => 3,
            Icmpv6Type::ParameterProblem => 4,
            Icmpv6Type::EchoRequest => 128,
            Icmpv6Type::NeighborAdvert => 136,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Icmpv6Type::DestinationUnreachable => "destination-unreachable",
            Icmpv6Type::PacketTooBig => "packet-too-big",
            Icmpv6Type::TimeExceeded => "time-exceeded",
            Icmpv6Type::ParameterProblem => "parameter-problem",
            Icmpv6Type::EchoRequest => "echo-request",
            Icmpv6Type::NeighborAdvert => "nd-neighbor-advert",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Addr(Ipv6Addr),
    Proto(L4Proto),
    Port(u16),
    IfName(String),
    Icmpv6(Icmpv6Type),
    /// An address as the target of a neighbour discovery message
    /// ([`KeyType::NdTarget`]).
    NdTarget(Ipv6Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    pub kind: ChainKind,
    pub hook: Hook,
    pub priority: Priority,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    Filter,
    Nat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

/// A priority written, as nft does, relative to a standard one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub base: StandardPriority,
    pub offset: i32,
}

impl Priority {
    pub fn value(self) -> i32 {
        self.base.value() + self.offset
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardPriority {
    /// A plain number (nft accepts `dstnat` only in prerouting).
    Number,
    Raw,
    Dstnat,
    Filter,
    Srcnat,
}

impl StandardPriority {
    pub fn value(self) -> i32 {
        match self {
            StandardPriority::Number => 0,
            StandardPriority::Raw => -300,
            StandardPriority::Dstnat => -100,
            StandardPriority::Filter => 0,
            StandardPriority::Srcnat => 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub statements: Vec<Statement>,
    pub verdict: Option<Verdict>,
    /// Shown in rendered text only (as a `#` line); not sent to the kernel.
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrField {
    Saddr,
    Daddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    Invalid,
    Established,
    Related,
    New,
}

impl CtState {
    /// Bit in the kernel's ct state bitmask (NF_CT_STATE_*).
    pub fn bit(self) -> u32 {
        match self {
            CtState::Invalid => 1,
            CtState::Established => 1 << 1,
            CtState::Related => 1 << 2,
            CtState::New => 1 << 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CtState::Invalid => "invalid",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::New => "new",
        }
    }
}

/// One condition of a rule. Every variant has exactly one text form and one
/// kernel encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `meta nfproto ipv6` / `meta nfproto != ipv6`
    NfprotoIpv6 { negate: bool },
    /// `iifname "br-x"`, `oifname != "br-*"` (a trailing `*` is a prefix match)
    IfName {
        dir: Direction,
        negate: bool,
        name: String,
    },
    /// `oifname @bridges`, `iifname != @operator_bridges`
    IfNameInSet {
        dir: Direction,
        negate: bool,
        set: String,
    },
    /// `ct state established,related` (any of)
    CtState(Vec<CtState>),
    /// `ct status dnat`
    CtStatusDnat,
    /// `ip6 saddr fd00::/64`, `ip6 daddr != ::1`
    Ip6 {
        field: AddrField,
        negate: bool,
        net: Ipv6Net,
    },
    /// `ip6 daddr @sealed`
    Ip6InSet { field: AddrField, set: String },
    /// `ip6 daddr . meta l4proto . th dport @open_ports`
    DaddrProtoPortInSet { set: String },
    /// `meta l4proto . th dport @starting_any`
    ProtoPortInSet { set: String },
    /// `meta l4proto tcp`
    L4ProtoIs(L4Proto),
    /// `icmpv6 type @icmpv6_inbound`
    Icmpv6TypeInSet { set: String },
    /// `icmpv6 type nd-neighbor-advert`
    Icmpv6TypeIs(Icmpv6Type),
    /// `@th,64,128 @nd_targets`: the target of a neighbour solicitation or
    /// advertisement (ICMPv6 bytes 8–23) is in the set (nft 1.0.6 has no
    /// name for the field).
    NdTargetInSet { set: String },
    /// `fib daddr type local`
    FibDaddrLocal,
    /// `ct original ip6 daddr [!=] NET`: where the connection was first
    /// addressed, before any DNAT.
    CtOriginalDaddr { negate: bool, net: Ipv6Net },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnatKey {
    /// `meta l4proto . th dport`
    ProtoPort,
    /// `ip6 daddr . meta l4proto . th dport`
    AddrProtoPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `meta mark set meta mark | 0x...`
    MarkOr(u32),
    /// `dnat ip6 to <key> map @<map>`
    DnatMap {
        key: DnatKey,
        map: String,
    },
    Masquerade,
    /// `snat ip6 to <addr>`
    Snat(Ipv6Addr),
    /// `snat ip6 to ip6 saddr map @<map>`: the new source by the old one.
    SnatBySaddrMap {
        map: String,
    },
    /// `snat ip6 prefix to <net>`: stateless 1:1 prefix translation of the
    /// source (the kernel's netmap range).
    SnatPrefix(Ipv6Net),
    /// `dnat ip6 prefix to <net>`: the same for the destination.
    DnatPrefix(Ipv6Net),
    /// `reject`: ends the rule's packet with a port-unreachable error (a
    /// TCP connect sees it as refused).
    Reject(RejectWith),
}

/// What a `reject` answers with. A TCP reset for TCP: the kernel limits
/// the ICMPv6 errors it sends to a destination (one a second by default),
/// so a client trying again at once would see the next ones dropped in
/// silence. For anything else ICMPv6 port unreachable, spelt as nft lists
/// it (and encodes it) with or without an IPv6 match earlier in the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectWith {
    /// `reject with tcp reset`, in a rule that matched TCP.
    TcpReset,
    /// `reject`: icmpx port-unreachable (ICMPv6 for an IPv6 packet).
    IcmpxPortUnreachable,
    /// `reject with icmpv6 port-unreachable`, in a rule that matched IPv6.
    Icmpv6PortUnreachable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}
