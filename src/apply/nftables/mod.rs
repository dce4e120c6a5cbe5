//! dock6's nftables encoder: the IR ([`crate::nft`]) as netlink batches,
//! whose object payloads libnftnl (`nftnl-sys`) serialises, sent through
//! dock6's nfnetlink layer ([`crate::apply::nfnetlink`]).
//!
//! The encoding reproduces what `nft -f` sends for the IR's rendered text, so
//! `nft list table inet dock6` prints the same whichever way the table was
//! loaded (`tests/roundtrip.rs` proves it).
//!
//! * [`replace_table`]: one atomic batch — add table, delete table, add table
//!   (valid whether or not the table exists), chains, sets with their
//!   elements, rules; or, when the kernel's table already has the planned
//!   chains and sets, flush its rules and elements and add the planned ones
//!   (`in_place.rs`: much faster for large sets, the same result).
//! * [`update_elements`]: set/map element adds and removes in one batch.
//! * [`delete_table`]: removes the table; `false` if there was none.
//! * [`table_exists`], [`inet_chain_exists`], [`ip6_chain_exists`],
//!   [`docker_ip6_firewall`] and [`generation`]: GET requests.
//!
//! Every message asks for an ack; the kernel reports every failing message,
//! and the error names the first failing object (rule text, set, element)
//! through a map from sequence number to description.
//!
//! libnftnl objects are not `Send`; this API is synchronous and builds and
//! frees them within each call. Callers on an async runtime should use
//! `spawn_blocking`.

mod batch;
pub mod changes;
mod committed;
mod docker_signature;
mod elements;
mod encode;
mod ffi;
mod forward_chains;
mod in_place;
mod query;
mod table;

use std::fmt;
use std::io;

pub use crate::nft::ElementChange;
pub use docker_signature::{
    DOCKER_BRIDGES_TABLE, DockerFirewall, chain_jumps_to, docker_ip6_firewall,
};
pub use elements::update_elements;
pub use forward_chains::{ForwardChain, forward_chains};
pub use query::{generation, inet_chain_exists, ip6_chain_exists, table_exists};
pub use table::{
    Replaced, delete_table, encode_replace_table, replace_table, replace_table_how, validate_table,
};

/// Why an nftables operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The kernel refused a message; `object` names what it described
    /// (e.g. `rule 3 of chain to_docker: ip6 daddr @sealed drop`). The
    /// whole batch was aborted: nothing changed.
    #[error("{object}: {}{}{}", strerror(*.errno), .message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default(), later(*.later_errors))]
    Kernel {
        object: String,
        errno: i32,
        message: Option<String>,
        later_errors: usize,
    },
    /// The IR cannot be expressed (names, lengths, types); nothing was sent.
    #[error("cannot encode {object}: {reason}")]
    Encode { object: String, reason: String },
    /// The batch went through but its outcome is unknown.
    #[error("nftables: {0}")]
    Protocol(String),
    #[error("nftables netlink socket: {0}")]
    Io(#[from] io::Error),
}

impl NftError {
    /// The kernel's errno, for [`NftError::Kernel`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn later(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(" [{n} later message(s) of the batch failed too]"),
    }
}

/// Why something could not be encoded (without the object, added by the caller).
#[derive(Debug)]
pub(crate) struct EncodeError(String);

impl EncodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        EncodeError(reason.into())
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// nf_tables message types (linux/netfilter/nf_tables.h).
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u8 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u8 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u8 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u8 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

/// What a message in the batch stands for, to name it in errors.
enum What {
    Text(String),
    /// Elements of `set`: each one's attribute offset in the message (the
    /// kernel reports the failing one's offset) and the index the caller
    /// names it by (none for an element only the kernel had).
    Elems {
        set: String,
        elements: Vec<(u32, Option<usize>)>,
    },
}
