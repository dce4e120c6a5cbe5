//! The table dock6 installs when there is none and Docker has not yet given
//! a snapshot: fail closed for new inbound IPv6 into Docker bridges.

use super::ruleset::{CHAIN_FORWARD, PRIORITY_FILTER};
use crate::nft::{BaseChain, Chain, ChainKind, CtState, Hook, TABLE_NAME, Table, rule};

pub fn bootstrap_table() -> Table {
    let into = |bridge: &str| {
        rule()
            .ipv6()
            .oifname(bridge)
            .iifname_not("docker0")
            .iifname_not("br-*")
            .ct_state(&[CtState::New])
            .comment(format!(
                "until the first Docker snapshot: no new inbound to {bridge}"
            ))
            .drop()
    };
    Table {
        name: TABLE_NAME.to_string(),
        sets: vec![],
        chains: vec![Chain {
            name: CHAIN_FORWARD.to_string(),
            base: Some(BaseChain {
                kind: ChainKind::Filter,
                hook: Hook::Forward,
                priority: PRIORITY_FILTER,
            }),
            rules: vec![into("docker0"), into("br-*")],
        }],
    }
}
