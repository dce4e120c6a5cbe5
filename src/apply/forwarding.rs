//! Whether dock6 itself turned `net.ipv6.conf.all.forwarding` on.
//!
//! When forwarding was 0 and dock6 sets it, dock6 forwards Docker traffic
//! only (the table then has its `not_docker` chain). The record of that
//! decision lives in the kernel, in dock6's own table, next to the rules it
//! explains: it survives a restart of dock6, dies with the network
//! namespace, and needs no state file (which in /run would be shared by
//! every namespace on the host).

use super::ApplyError;
use crate::nft::TABLE_NAME;
use crate::plan::CHAIN_NOT_DOCKER;

/// Whether the live table says dock6 turned forwarding on. No table: no.
pub fn forwarding_enabled_by_dock6() -> Result<bool, ApplyError> {
    Ok(super::nftables::inet_chain_exists(
        TABLE_NAME,
        CHAIN_NOT_DOCKER,
    )?)
}
