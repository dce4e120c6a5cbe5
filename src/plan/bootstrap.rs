//! The table dock6 installs when there is none and Docker has not yet given
//! a snapshot: fail closed for new inbound IPv6 into Docker bridges, known
//! by the names Docker gives them; the host's own interfaces with names like
//! those (`br-lan`) are excluded by name, as in the steady table.

use super::guard::{SET_OPERATOR_BRIDGES, host_operator_bridges};
use super::ruleset::{CHAIN_FORWARD, PRIORITY_FILTER};
use super::sets::operator_bridges_set;
use crate::nft::{
    BaseChain, Chain, ChainKind, CtState, Hook, RuleBuilder, TABLE_NAME, Table, rule,
};
use crate::snapshot::HostFacts;

/// Traffic between Docker bridges (Docker's own business) passes; from
/// anywhere else, an operator's `br-…` interface included, nothing new.
pub fn bootstrap_table(host: &HostFacts) -> Table {
    let docker_bridges = [
        rule().ipv6().oifname("docker0"),
        rule()
            .ipv6()
            .oifname("br-*")
            .oif_not_in(SET_OPERATOR_BRIDGES),
    ];
    let new_inbound = |r: RuleBuilder| r.ct_state(&[CtState::New]).drop();
    let mut rules = Vec::new();
    for into in docker_bridges {
        rules.push(new_inbound(
            into.clone()
                .iifname_not("docker0")
                .iifname_not("br-*")
                .comment("until the first Docker snapshot: no new inbound to Docker's bridges"),
        ));
        rules.push(new_inbound(into.iif_in(SET_OPERATOR_BRIDGES)));
    }
    Table {
        name: TABLE_NAME.to_string(),
        sets: vec![operator_bridges_set(&host_operator_bridges(host))],
        chains: vec![Chain {
            name: CHAIN_FORWARD.to_string(),
            base: Some(BaseChain {
                kind: ChainKind::Filter,
                hook: Hook::Forward,
                priority: PRIORITY_FILTER,
            }),
            rules,
        }],
    }
}
