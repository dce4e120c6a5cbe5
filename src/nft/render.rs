//! nft text for the IR: what golden files, `dock6 render` and error messages
//! show, and what `nft -f` must accept.

use std::fmt::{self, Display, Formatter};

use super::*;

impl Table {
    /// A script that replaces the table atomically when loaded with `nft -f`
    /// (creating it first makes the delete valid when it does not exist).
    pub fn replace_script(&self) -> String {
        format!(
            "table inet {0}\ndelete table inet {0}\n{1}",
            self.name, self
        )
    }
}

impl Display for Table {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "table inet {} {{", self.name)?;
        let mut first = true;
        for set in &self.sets {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{set}")?;
        }
        for chain in &self.chains {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{chain}")?;
        }
        writeln!(f, "}}")
    }
}

/// The target of a neighbour discovery message, as nft writes the raw field.
const ND_TARGET: &str = "@th,64,128";

fn join_types(types: &[KeyType]) -> String {
    types
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" . ")
}

fn join_values(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" . ")
}

impl Display for Set {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kind = if self.is_map() { "map" } else { "set" };
        writeln!(f, "\t{kind} {} {{", self.name)?;
        if self.is_map() {
            writeln!(
                f,
                "\t\ttype {} : {}",
                join_types(&self.key),
                join_types(&self.data)
            )?;
        } else if self.key == [KeyType::NdTarget] {
            // A raw payload field has no type name: nft takes it by expression.
            writeln!(f, "\t\ttypeof {ND_TARGET}")?;
        } else {
            writeln!(f, "\t\ttype {}", join_types(&self.key))?;
        }
        if !self.elements.is_empty() {
            let lines: Vec<String> = self.elements.iter().map(|e| format!("\t\t\t{e}")).collect();
            writeln!(f, "\t\telements = {{\n{}\n\t\t}}", lines.join(",\n"))?;
        }
        writeln!(f, "\t}}")
    }
}

impl Display for Element {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&join_values(&self.key))?;
        if !self.data.is_empty() {
            write!(f, " : {}", join_values(&self.data))?;
        }
        Ok(())
    }
}

impl Display for KeyType {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Ipv6Addr => "ipv6_addr",
            KeyType::InetProto => "inet_proto",
            KeyType::InetService => "inet_service",
            KeyType::IfName => "ifname",
            KeyType::Icmpv6Type => "icmpv6_type",
            KeyType::NdTarget => ND_TARGET,
        })
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Value::Addr(a) => write!(f, "{a}"),
            Value::Proto(p) => f.write_str(p.name()),
            Value::Port(p) => write!(f, "{p}"),
            Value::IfName(n) => write!(f, "\"{n}\""),
            Value::Icmpv6(t) => f.write_str(t.name()),
            Value::NdTarget(a) => write!(f, "{:#034x}", u128::from(*a)),
        }
    }
}

impl Display for Chain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tchain {} {{", self.name)?;
        if let Some(base) = &self.base {
            writeln!(f, "\t\t{base}")?;
        }
        for rule in &self.rules {
            if let Some(comment) = &rule.comment {
                writeln!(f, "\t\t# {comment}")?;
            }
            writeln!(f, "\t\t{rule}")?;
        }
        writeln!(f, "\t}}")
    }
}

impl Display for BaseChain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        };
        let hook = match self.hook {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        };
        write!(
            f,
            "type {kind} hook {hook} priority {}; policy accept;",
            self.priority
        )
    }
}

impl Display for Priority {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let base = match self.base {
            StandardPriority::Number => return write!(f, "{}", self.offset),
            StandardPriority::Raw => "raw",
            StandardPriority::Dstnat => "dstnat",
            StandardPriority::Filter => "filter",
            StandardPriority::Srcnat => "srcnat",
        };
        match self.offset {
            0 => f.write_str(base),
            o if o < 0 => write!(f, "{base} - {}", -o),
            o => write!(f, "{base} + {o}"),
        }
    }
}

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.matches.iter().map(|m| m.to_string()).collect();
        parts.extend(self.statements.iter().map(|s| s.to_string()));
        if let Some(v) = &self.verdict {
            parts.push(v.to_string());
        }
        f.write_str(&parts.join(" "))
    }
}

fn op(negate: bool) -> &'static str {
    if negate { "!= " } else { "" }
}

fn ifname_key(dir: Direction) -> &'static str {
    match dir {
        Direction::In => "iifname",
        Direction::Out => "oifname",
    }
}

fn addr_key(field: AddrField) -> &'static str {
    match field {
        AddrField::Saddr => "ip6 saddr",
        AddrField::Daddr => "ip6 daddr",
    }
}

/// `fd00::/64`, or the bare address for a /128.
pub fn render_net(net: &Ipv6Net) -> String {
    if net.prefix_len() == 128 {
        net.addr().to_string()
    } else {
        net.trunc().to_string()
    }
}

impl Display for Match {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Match::NfprotoIpv6 { negate } => write!(f, "meta nfproto {}ipv6", op(*negate)),
            Match::IfName { dir, negate, name } => {
                write!(f, "{} {}\"{name}\"", ifname_key(*dir), op(*negate))
            }
            Match::IfNameInSet { dir, negate, set } => {
                write!(f, "{} {}@{set}", ifname_key(*dir), op(*negate))
            }
            Match::CtState(states) => {
                let names: Vec<&str> = states.iter().map(|s| s.name()).collect();
                write!(f, "ct state {}", names.join(","))
            }
            Match::CtStatusDnat => f.write_str("ct status dnat"),
            Match::Ip6 { field, negate, net } => {
                write!(f, "{} {}{}", addr_key(*field), op(*negate), render_net(net))
            }
            Match::Ip6InSet { field, set } => write!(f, "{} @{set}", addr_key(*field)),
            Match::DaddrProtoPortInSet { set } => {
                write!(f, "ip6 daddr . meta l4proto . th dport @{set}")
            }
            Match::ProtoPortInSet { set } => write!(f, "meta l4proto . th dport @{set}"),
            Match::L4ProtoIs(proto) => write!(f, "meta l4proto {}", proto.name()),
            Match::Icmpv6TypeInSet { set } => write!(f, "icmpv6 type @{set}"),
            Match::Icmpv6TypeIs(t) => write!(f, "icmpv6 type {}", t.name()),
            Match::NdTargetInSet { set } => write!(f, "{ND_TARGET} @{set}"),
            Match::FibDaddrLocal => f.write_str("fib daddr type local"),
            Match::CtOriginalDaddr { negate, net } => {
                write!(
                    f,
                    "ct original ip6 daddr {}{}",
                    op(*negate),
                    render_net(net)
                )
            }
        }
    }
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::MarkOr(bits) => write!(f, "meta mark set meta mark | {bits:#010x}"),
            Statement::DnatMap { key, map } => {
                let key = match key {
                    DnatKey::ProtoPort => "meta l4proto . th dport",
                    DnatKey::AddrProtoPort => "ip6 daddr . meta l4proto . th dport",
                };
                write!(f, "dnat ip6 to {key} map @{map}")
            }
            Statement::Masquerade => f.write_str("masquerade"),
            Statement::Snat(addr) => write!(f, "snat ip6 to {addr}"),
            Statement::SnatBySaddrMap { map } => write!(f, "snat ip6 to ip6 saddr map @{map}"),
            Statement::SnatPrefix(net) => write!(f, "snat ip6 prefix to {}", net.trunc()),
            Statement::DnatPrefix(net) => write!(f, "dnat ip6 prefix to {}", net.trunc()),
            Statement::Reject(RejectWith::TcpReset) => f.write_str("reject with tcp reset"),
            Statement::Reject(RejectWith::IcmpxPortUnreachable) => f.write_str("reject"),
            Statement::Reject(RejectWith::Icmpv6PortUnreachable) => {
                f.write_str("reject with icmpv6 port-unreachable")
            }
        }
    }
}

impl Display for Verdict {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
        }
    }
}
