//! Whether Docker's own IPv6 firewall is in the kernel, by its signature
//! rather than by a name anyone can create:
//!
//! * iptables-nft (`"ip6tables": true`): the `DOCKER` chain *and* a rule of
//!   a chain Docker hooks that jumps to it — `PREROUTING` (and `OUTPUT`) of
//!   `ip6 nat` (Docker's `-m addrtype --dst-type LOCAL -j DOCKER`), or
//!   `FORWARD` / `DOCKER-FORWARD` / `DOCKER-BRIDGE` of `ip6 filter`
//!   (`-o docker0 -j DOCKER`; the last two since Docker 28). iptables-nft
//!   writes `-j DOCKER` as an immediate verdict (jump or goto) naming the chain.
//! * Docker 29's nftables backend: `table ip6 docker-bridges`.
//!
//! A lone `DOCKER` chain (left over, or a user's own) is not Docker's
//! firewall: taking it for one would make dock6 delete its own table while
//! nothing filters the bridges.

use super::query::{ip6_chain_exists, ip6_table_exists};
use super::{NFT_MSG_GETRULE, NftError};
use crate::apply::nfnetlink::codec::{
    self, ENOENT, NFNL_SUBSYS_NFTABLES, NFPROTO_IPV6, NLM_F_DUMP, NLM_F_REQUEST, attr, attrs, be32,
    cstr,
};
use crate::apply::nfnetlink::{next_seq, with_conn};

// Attribute numbers of the rule messages (linux/netfilter/nf_tables.h);
// the forward-chain reader decodes rules with them too.
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(super) const NFTA_LIST_ELEM: u16 = 1;
pub(super) const NFTA_EXPR_NAME: u16 = 1;
pub(super) const NFTA_EXPR_DATA: u16 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
pub(super) const NFTA_IMMEDIATE_DATA: u16 = 2;
pub(super) const NFTA_DATA_VERDICT: u16 = 2;
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;

/// The chains, per `ip6` table, from which Docker jumps to its `DOCKER` chain.
const HOOKED: [(&str, &[&str]); 2] = [
    ("nat", &["PREROUTING", "OUTPUT"]),
    ("filter", &["FORWARD", "DOCKER-FORWARD", "DOCKER-BRIDGE"]),
];

/// Docker 29's nftables firewall backend.
pub const DOCKER_BRIDGES_TABLE: &str = "docker-bridges";

/// What dock6 sees of Docker's IPv6 firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerFirewall {
    Off,
    /// A chain named `DOCKER` (e.g. `ip6 nat DOCKER`) that nothing Docker
    /// hooks jumps to: not Docker's firewall.
    LoneChain(String),
    /// Docker's firewall, and the signature seen.
    On(String),
}

impl DockerFirewall {
    pub fn is_on(&self) -> bool {
        matches!(self, DockerFirewall::On(_))
    }
}

/// Looks for Docker's signature in the calling thread's network namespace.
pub fn docker_ip6_firewall() -> Result<DockerFirewall, NftError> {
    if ip6_table_exists(DOCKER_BRIDGES_TABLE)? {
        return Ok(DockerFirewall::On(format!(
            "table ip6 {DOCKER_BRIDGES_TABLE}"
        )));
    }
    let mut lone = None;
    for (table, chains) in HOOKED {
        if !ip6_chain_exists(table, "DOCKER")? {
            continue;
        }
        for chain in chains {
            if chain_jumps_to(table, chain, "DOCKER")? {
                return Ok(DockerFirewall::On(format!(
                    "ip6 {table} {chain} jumps to chain DOCKER"
                )));
            }
        }
        lone.get_or_insert(format!("ip6 {table} DOCKER"));
    }
    Ok(lone.map_or(DockerFirewall::Off, DockerFirewall::LoneChain))
}

/// Whether a rule of `chain ip6 TABLE CHAIN` jumps (or goes) to `target`;
/// false when the chain does not exist.
pub fn chain_jumps_to(table: &str, chain: &str, target: &str) -> Result<bool, NftError> {
    let seq = next_seq(1);
    let ty = u16::from(NFNL_SUBSYS_NFTABLES) << 8 | u16::from(NFT_MSG_GETRULE);
    let names = [(NFTA_RULE_TABLE, table), (NFTA_RULE_CHAIN, chain)];
    let request = codec::request(ty, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_IPV6, &names);
    let mut jumps = false;
    let dumped = with_conn(|conn| {
        conn.dump(&request, seq, |rule| {
            jumps |= verdict_chains(rule.bytes()).iter().any(|c| c == target);
        })
    })?;
    match dumped {
        Ok(()) => Ok(jumps),
        Err(ENOENT) => Ok(false),
        Err(errno) => Err(NftError::Kernel {
            object: format!("rules of chain ip6 {table} {chain}"),
            errno,
            message: None,
            later_errors: 0,
        }),
    }
}

/// The chains that one rule message (netlink header included) jumps or
/// goes to through immediate verdicts.
pub fn verdict_chains(rule: &[u8]) -> Vec<String> {
    let rule_attrs = rule.get(20..).unwrap_or(&[]);
    let Some(exprs) = attr(rule_attrs, NFTA_RULE_EXPRESSIONS) else {
        return Vec::new();
    };
    attrs(exprs)
        .filter(|a| a.kind == NFTA_LIST_ELEM)
        .filter_map(|a| immediate_verdict_chain(a.payload))
        .collect()
}

fn immediate_verdict_chain(expr: &[u8]) -> Option<String> {
    if attr(expr, NFTA_EXPR_NAME).map(cstr)? != "immediate" {
        return None;
    }
    let data = attr(expr, NFTA_EXPR_DATA)?;
    if be32(attr(data, NFTA_IMMEDIATE_DREG)?)? != NFT_REG_VERDICT {
        return None;
    }
    let verdict = attr(attr(data, NFTA_IMMEDIATE_DATA)?, NFTA_DATA_VERDICT)?;
    let code = be32(attr(verdict, NFTA_VERDICT_CODE)?)? as i32;
    if code != NFT_JUMP && code != NFT_GOTO {
        return None;
    }
    attr(verdict, NFTA_VERDICT_CHAIN).map(cstr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    fn immediate(code: i32, chain: &str) -> Vec<u8> {
        let verdict = [
            nla(NFTA_VERDICT_CODE, &code.to_be_bytes()),
            nla(NFTA_VERDICT_CHAIN, format!("{chain}\0").as_bytes()),
        ]
        .concat();
        let data = [
            nla(NFTA_IMMEDIATE_DREG, &0u32.to_be_bytes()),
            nla(NFTA_IMMEDIATE_DATA, &nla(NFTA_DATA_VERDICT, &verdict)),
        ]
        .concat();
        let expr = [
            nla(NFTA_EXPR_NAME, b"immediate\0"),
            nla(NFTA_EXPR_DATA, &data),
        ]
        .concat();
        nla(NFTA_LIST_ELEM, &expr)
    }

    fn rule(exprs: &[Vec<u8>]) -> Vec<u8> {
        let mut msg = vec![0u8; 20];
        msg.extend(nla(NFTA_RULE_TABLE, b"nat\0"));
        msg.extend(nla(NFTA_RULE_EXPRESSIONS, &exprs.concat()));
        msg
    }

    #[test]
    fn jumps_and_gotos_are_found_other_verdicts_not() {
        let counter = nla(NFTA_LIST_ELEM, &nla(NFTA_EXPR_NAME, b"counter\0"));
        let r = rule(&[counter, immediate(NFT_JUMP, "DOCKER")]);
        assert_eq!(verdict_chains(&r), ["DOCKER"]);
        assert_eq!(verdict_chains(&rule(&[immediate(NFT_GOTO, "X")])), ["X"]);
        // accept (1) names no chain.
        assert!(verdict_chains(&rule(&[immediate(1, "DOCKER")])).is_empty());
        assert!(verdict_chains(&[0u8; 3]).is_empty());
        let mut truncated = r.clone();
        truncated.truncate(r.len() - 7);
        assert!(verdict_chains(&truncated).len() <= 1);
    }
}
