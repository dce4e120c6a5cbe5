//! The rule builder: rules written in the order nft reads them,
//! `rule().oifname("br-x").drop()`.

use ipnet::Ipv6Net;

use super::{AddrField, CtState, Direction, Match, Rule, Statement, Verdict};

/// Rule builder that reads like the rule: `rule().oifname("br-x").drop()`.
#[derive(Debug, Clone, Default)]
pub struct RuleBuilder {
    matches: Vec<Match>,
    statements: Vec<Statement>,
    comment: Option<String>,
}

pub fn rule() -> RuleBuilder {
    RuleBuilder::default()
}

impl RuleBuilder {
    pub fn matching(mut self, m: Match) -> Self {
        self.matches.push(m);
        self
    }

    pub fn ipv6(self) -> Self {
        self.matching(Match::NfprotoIpv6 { negate: false })
    }

    pub fn not_ipv6(self) -> Self {
        self.matching(Match::NfprotoIpv6 { negate: true })
    }

    pub fn iifname(self, name: &str) -> Self {
        self.ifname(Direction::In, false, name)
    }

    pub fn oifname(self, name: &str) -> Self {
        self.ifname(Direction::Out, false, name)
    }

    pub fn iifname_not(self, name: &str) -> Self {
        self.ifname(Direction::In, true, name)
    }

    fn ifname(self, dir: Direction, negate: bool, name: &str) -> Self {
        self.matching(Match::IfName {
            dir,
            negate,
            name: name.to_string(),
        })
    }

    pub fn iif_in(self, set: &str) -> Self {
        self.ifname_in(Direction::In, false, set)
    }

    pub fn oif_in(self, set: &str) -> Self {
        self.ifname_in(Direction::Out, false, set)
    }

    pub fn iif_not_in(self, set: &str) -> Self {
        self.ifname_in(Direction::In, true, set)
    }

    pub fn oif_not_in(self, set: &str) -> Self {
        self.ifname_in(Direction::Out, true, set)
    }

    fn ifname_in(self, dir: Direction, negate: bool, set: &str) -> Self {
        self.matching(Match::IfNameInSet {
            dir,
            negate,
            set: set.to_string(),
        })
    }

    pub fn ct_state(self, states: &[CtState]) -> Self {
        self.matching(Match::CtState(states.to_vec()))
    }

    pub fn ct_status_dnat(self) -> Self {
        self.matching(Match::CtStatusDnat)
    }

    pub fn saddr(self, net: Ipv6Net) -> Self {
        self.matching(Match::Ip6 {
            field: AddrField::Saddr,
            negate: false,
            net,
        })
    }

    pub fn daddr(self, net: Ipv6Net) -> Self {
        self.matching(Match::Ip6 {
            field: AddrField::Daddr,
            negate: false,
            net,
        })
    }

    pub fn saddr_in(self, set: &str) -> Self {
        self.matching(Match::Ip6InSet {
            field: AddrField::Saddr,
            set: set.to_string(),
        })
    }

    pub fn daddr_in(self, set: &str) -> Self {
        self.matching(Match::Ip6InSet {
            field: AddrField::Daddr,
            set: set.to_string(),
        })
    }

    pub fn daddr_proto_port_in(self, set: &str) -> Self {
        self.matching(Match::DaddrProtoPortInSet {
            set: set.to_string(),
        })
    }

    pub fn l4proto(self, proto: super::L4Proto) -> Self {
        self.matching(Match::L4ProtoIs(proto))
    }

    pub fn proto_port_in(self, set: &str) -> Self {
        self.matching(Match::ProtoPortInSet {
            set: set.to_string(),
        })
    }

    pub fn icmpv6_type_in(self, set: &str) -> Self {
        self.matching(Match::Icmpv6TypeInSet {
            set: set.to_string(),
        })
    }

    pub fn icmpv6_type(self, t: super::Icmpv6Type) -> Self {
        self.matching(Match::Icmpv6TypeIs(t))
    }

    pub fn nd_target_in(self, set: &str) -> Self {
        self.matching(Match::NdTargetInSet {
            set: set.to_string(),
        })
    }

    pub fn fib_daddr_local(self) -> Self {
        self.matching(Match::FibDaddrLocal)
    }

    pub fn ct_original_daddr_not(self, net: Ipv6Net) -> Self {
        self.matching(Match::CtOriginalDaddr { negate: true, net })
    }

    pub fn statement(mut self, s: Statement) -> Self {
        self.statements.push(s);
        self
    }

    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comment = Some(text.into());
        self
    }

    pub fn then(self, verdict: Verdict) -> Rule {
        self.finish(Some(verdict))
    }

    pub fn accept(self) -> Rule {
        self.then(Verdict::Accept)
    }

    pub fn drop(self) -> Rule {
        self.then(Verdict::Drop)
    }

    pub fn ret(self) -> Rule {
        self.then(Verdict::Return)
    }

    pub fn jump(self, chain: &str) -> Rule {
        self.then(Verdict::Jump(chain.to_string()))
    }

    pub fn goto(self, chain: &str) -> Rule {
        self.then(Verdict::Goto(chain.to_string()))
    }

    /// A rule that ends in its statements (NAT), without an explicit verdict.
    pub fn done(self) -> Rule {
        self.finish(None)
    }

    fn finish(self, verdict: Option<Verdict>) -> Rule {
        Rule {
            matches: self.matches,
            statements: self.statements,
            verdict,
            comment: self.comment,
        }
    }
}
