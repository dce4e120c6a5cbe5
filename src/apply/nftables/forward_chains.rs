//! The base chains on the forward hook of other tables that can drop IPv6
//! (`inet` and `ip6` families), with their policy, and whether one already
//! lets dock6's accept mark through: what `dock6 check` warns about, since
//! an nftables accept is final only within its own base chain.

use super::docker_signature::{
    NFTA_DATA_VERDICT, NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_IMMEDIATE_DATA, NFTA_LIST_ELEM,
    NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_TABLE, NFTA_VERDICT_CODE,
};
use super::{NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NftError};
use crate::apply::nfnetlink::codec::{
    self, NFNL_SUBSYS_NFTABLES, NFPROTO_INET, NFPROTO_IPV6, NFPROTO_UNSPEC, NLM_F_DUMP,
    NLM_F_REQUEST, attr, attrs, be32, cstr,
};
use crate::apply::nfnetlink::{next_seq, with_conn};
use crate::nft::TABLE_NAME;

// linux/netfilter/nf_tables.h
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NF_INET_FORWARD: u32 = 2;
const NF_DROP: u32 = 0;
const NFTA_META_KEY: u16 = 2;
const NFT_META_MARK: u32 = 3;
const NF_ACCEPT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardChain {
    /// `inet` or `ip6`.
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub priority: i32,
    pub policy_drop: bool,
    /// A rule matches the packet mark and accepts: presumably dock6's line.
    pub accepts_a_mark: bool,
}

impl ForwardChain {
    /// iptables-nft's chains are upper case (`FORWARD`): there the fix is an
    /// ip6tables command, elsewhere an nft line.
    pub fn is_iptables(&self) -> bool {
        self.chain
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '-')
    }
}

/// Every forward-hook base chain of an `inet` or `ip6` table but dock6's own.
pub fn forward_chains() -> Result<Vec<ForwardChain>, NftError> {
    let seq = next_seq(1);
    let ty = u16::from(NFNL_SUBSYS_NFTABLES) << 8 | u16::from(NFT_MSG_GETCHAIN);
    let request = codec::request(ty, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_UNSPEC, &[]);
    let mut chains = Vec::new();
    let dumped = with_conn(|conn| {
        conn.dump(&request, seq, |msg| {
            if let Some(chain) = forward_chain(msg.bytes()) {
                chains.push(chain);
            }
        })
    })?;
    if let Err(errno) = dumped {
        return Err(kernel_error("chains", errno));
    }
    for chain in &mut chains {
        chain.accepts_a_mark = accepts_a_mark(chain)?;
    }
    Ok(chains)
}

/// One chain message (netlink header included), if it is a forward-hook
/// base chain of an inet or ip6 table other than dock6's.
fn forward_chain(msg: &[u8]) -> Option<ForwardChain> {
    let family = match *msg.get(16)? {
        NFPROTO_INET => "inet",
        NFPROTO_IPV6 => "ip6",
        _ => return None,
    };
    let a = msg.get(20..)?;
    let table = cstr(attr(a, NFTA_CHAIN_TABLE)?);
    if family == "inet" && table == TABLE_NAME {
        return None;
    }
    let hook = attr(a, NFTA_CHAIN_HOOK)?;
    if be32(attr(hook, NFTA_HOOK_HOOKNUM)?)? != NF_INET_FORWARD {
        return None;
    }
    Some(ForwardChain {
        family,
        table,
        chain: cstr(attr(a, NFTA_CHAIN_NAME)?),
        priority: be32(attr(hook, NFTA_HOOK_PRIORITY)?)? as i32,
        policy_drop: attr(a, NFTA_CHAIN_POLICY).and_then(be32) == Some(NF_DROP),
        accepts_a_mark: false,
    })
}

fn accepts_a_mark(chain: &ForwardChain) -> Result<bool, NftError> {
    let seq = next_seq(1);
    let ty = u16::from(NFNL_SUBSYS_NFTABLES) << 8 | u16::from(NFT_MSG_GETRULE);
    let family = match chain.family {
        "inet" => NFPROTO_INET,
        _ => NFPROTO_IPV6,
    };
    let names = [
        (NFTA_RULE_TABLE, chain.table.as_str()),
        (NFTA_RULE_CHAIN, chain.chain.as_str()),
    ];
    let request = codec::request(ty, NLM_F_REQUEST | NLM_F_DUMP, seq, family, &names);
    let mut found = false;
    let dumped = with_conn(|conn| {
        conn.dump(&request, seq, |rule| {
            found |= marks_and_accepts(rule.bytes())
        })
    })?;
    match dumped {
        Ok(()) => Ok(found),
        Err(errno) => Err(kernel_error(
            &format!(
                "rules of chain {} {} {}",
                chain.family, chain.table, chain.chain
            ),
            errno,
        )),
    }
}

/// A rule (netlink header included) with a `meta mark` load and an accept
/// verdict: `meta mark & M == M accept`, or iptables' `-m mark … -j ACCEPT`
/// (an xt match, not recognised: such a chain keeps its warning).
fn marks_and_accepts(rule: &[u8]) -> bool {
    let Some(exprs) = rule.get(20..).and_then(|a| attr(a, NFTA_RULE_EXPRESSIONS)) else {
        return false;
    };
    let (mut mark, mut accept) = (false, false);
    for e in attrs(exprs).filter(|a| a.kind == NFTA_LIST_ELEM) {
        let name = attr(e.payload, NFTA_EXPR_NAME)
            .map(cstr)
            .unwrap_or_default();
        let data = attr(e.payload, NFTA_EXPR_DATA).unwrap_or(&[]);
        match name.as_str() {
            "meta" => mark |= attr(data, NFTA_META_KEY).and_then(be32) == Some(NFT_META_MARK),
            "immediate" => {
                accept |= attr(data, NFTA_IMMEDIATE_DATA)
                    .and_then(|d| attr(d, NFTA_DATA_VERDICT))
                    .and_then(|v| attr(v, NFTA_VERDICT_CODE))
                    .and_then(be32)
                    == Some(NF_ACCEPT)
            }
            _ => {}
        }
    }
    mark && accept
}

fn kernel_error(object: &str, errno: i32) -> NftError {
    NftError::Kernel {
        object: object.to_string(),
        errno,
        message: None,
        later_errors: 0,
    }
}
