//! GET requests: whether a table or chain exists, the ruleset generation.

use super::{NFT_MSG_GETCHAIN, NFT_MSG_GETTABLE, NftError};
use crate::apply::nfnetlink::codec::{
    self, ENOENT, NFNL_SUBSYS_NFTABLES, NFPROTO_INET, NFPROTO_IPV6, NFPROTO_UNSPEC, NLM_F_ACK,
    NLM_F_REQUEST, be32,
};
use crate::apply::nfnetlink::{next_seq, with_conn};

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFT_MSG_NEWGEN: u8 = 15;
const NFT_MSG_GETGEN: u8 = 16;
const NFTA_GEN_ID: u16 = 1;

/// The ruleset generation of this network namespace (`NFT_MSG_GETGEN`):
/// every committed nftables transaction, whoever made it, adds one.
pub fn generation() -> Result<u32, NftError> {
    let seq = next_seq(1);
    let ty = u16::from(NFNL_SUBSYS_NFTABLES) << 8 | u16::from(NFT_MSG_GETGEN);
    let request = codec::request(ty, NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_UNSPEC, &[]);
    let mut id = None;
    let answered = with_conn(|conn| {
        conn.dump(&request, seq, |msg| {
            if msg.subsystem_msg() == NFT_MSG_NEWGEN {
                id = msg
                    .attrs()
                    .find(|a| a.kind == NFTA_GEN_ID)
                    .and_then(|a| be32(a.payload));
            }
        })
    })?;
    match (answered, id) {
        (Ok(()), Some(id)) => Ok(id),
        (Ok(()), None) => Err(NftError::Protocol("no generation id in the answer".into())),
        (Err(errno), _) => Err(NftError::Kernel {
            object: "the ruleset generation".into(),
            errno,
            message: None,
            later_errors: 0,
        }),
    }
}

/// Whether `table inet NAME` exists (one NFT_MSG_GETTABLE request).
pub fn table_exists(name: &str) -> Result<bool, NftError> {
    object_exists(
        NFT_MSG_GETTABLE,
        NFPROTO_INET,
        &[(NFTA_TABLE_NAME, name)],
        &format!("table inet {name}"),
    )
}

/// Whether `table ip6 NAME` exists.
pub(super) fn ip6_table_exists(name: &str) -> Result<bool, NftError> {
    object_exists(
        NFT_MSG_GETTABLE,
        NFPROTO_IPV6,
        &[(NFTA_TABLE_NAME, name)],
        &format!("table ip6 {name}"),
    )
}

/// Whether `chain inet TABLE CHAIN` exists.
pub fn inet_chain_exists(table: &str, chain: &str) -> Result<bool, NftError> {
    let attrs = [(NFTA_CHAIN_TABLE, table), (NFTA_CHAIN_NAME, chain)];
    object_exists(
        NFT_MSG_GETCHAIN,
        NFPROTO_INET,
        &attrs,
        &format!("chain inet {table} {chain}"),
    )
}

/// Whether `chain ip6 TABLE CHAIN` exists: how Docker's own IPv6 firewall
/// (iptables-nft) is recognised.
pub fn ip6_chain_exists(table: &str, chain: &str) -> Result<bool, NftError> {
    let attrs = [(NFTA_CHAIN_TABLE, table), (NFTA_CHAIN_NAME, chain)];
    object_exists(
        NFT_MSG_GETCHAIN,
        NFPROTO_IPV6,
        &attrs,
        &format!("chain ip6 {table} {chain}"),
    )
}

/// One non-dump GET request with string attributes: the kernel answers with
/// the object and an ack, or with ENOENT.
fn object_exists(
    msg_type: u8,
    family: u8,
    attrs: &[(u16, &str)],
    object: &str,
) -> Result<bool, NftError> {
    let seq = next_seq(1);
    let ty = u16::from(NFNL_SUBSYS_NFTABLES) << 8 | u16::from(msg_type);
    let request = codec::request(ty, NLM_F_REQUEST | NLM_F_ACK, seq, family, attrs);
    let ack = with_conn(|conn| conn.request(&request, seq))?;
    match ack.map(|a| a.errno) {
        Some(0) => Ok(true),
        Some(ENOENT) => Ok(false),
        Some(errno) => Err(NftError::Kernel {
            object: object.to_string(),
            errno,
            message: None,
            later_errors: 0,
        }),
        None => Err(NftError::Protocol(format!("no answer about {object}"))),
    }
}
