//! Conntrack deletes for published-port mappings that went away, over
//! ctnetlink (`NETLINK_NETFILTER`, subsystem `NFNL_SUBSYS_CTNETLINK`).
//!
//! A UDP flow that was DNAT'ed to a container keeps its conntrack entry (and
//! so its NAT binding) for as long as packets keep coming: without a delete,
//! a client that sends every few seconds stays stuck to a container that is
//! gone. [`delete_dnat_flows`] asks the kernel, once per removed mapping,
//! for the entries of that mapping's ports (a dump filtered in the kernel, so
//! unrelated flows are never sent), picks those DNAT'ed to the mapping's
//! target, and deletes each by its original tuple.
//!
//! Synchronous, through this thread's nfnetlink socket
//! ([`crate::apply::nfnetlink`]): it runs in the calling thread's network
//! namespace (call it from a blocking thread, never an async task). No
//! shelling out to `conntrack`.

mod flow;
mod prefix;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::Ipv6Addr;

use tracing::{debug, info, warn};

use crate::apply::nfnetlink::codec::{ENOENT, NFNL_SUBSYS_CTNETLINK};
use crate::apply::nfnetlink::{next_seq, with_conn};
use flow::{CtFlow, IPCTNL_MSG_CT_NEW, delete_request, dump_request};
pub use prefix::delete_prefix_flows;

pub use crate::plan::DnatTarget;

impl fmt::Display for DnatTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} → [{}]:{}",
            self.host_port,
            self.proto.name(),
            self.target,
            self.target_port
        )
    }
}

/// Something went wrong while talking to ctnetlink. Each variant says what
/// was being done (`what`), so a log line alone tells what failed.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error("conntrack: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("conntrack: {what}: the kernel answered: {source}")]
    Kernel {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("conntrack: {what}: malformed message from the kernel: {detail}")]
    Malformed { what: String, detail: String },
}

/// Deletes every IPv6 conntrack entry that was DNAT'ed for one of `targets`:
/// its original tuple has `proto` and destination port `host_port`, its reply
/// tuple comes from `[target]:target_port`, and the kernel marked it
/// destination-NAT'ed (so a flow sent straight to the container's address is
/// left alone). Entries already gone (ENOENT) are not an error.
///
/// Returns how many entries were deleted. A failed delete does not stop the
/// others: every match is tried, then the first error is returned.
pub fn delete_dnat_flows(targets: &[DnatTarget]) -> Result<usize, ConntrackError> {
    if targets.is_empty() {
        return Ok(0);
    }
    let wanted: HashSet<MatchKey> = targets.iter().map(MatchKey::from).collect();
    let mut flows = Vec::new();
    for key in &wanted {
        flows.extend(dump_mapping(key)?);
    }
    let matches: Vec<&CtFlow> = flows
        .iter()
        .filter(|f| f.match_key().is_some_and(|k| wanted.contains(&k)))
        .collect();
    debug!(
        dumped = flows.len(),
        matched = matches.len(),
        "conntrack: entries of the removed mappings dumped"
    );

    let mut deleted = 0;
    let mut first_error = None;
    for flow in matches {
        match delete(flow) {
            Ok(true) => {
                debug!(%flow, "conntrack: deleted");
                deleted += 1;
            }
            Ok(false) => debug!(%flow, "conntrack: already gone"),
            Err(e) => {
                warn!(%flow, error = %e, "conntrack: delete failed");
                first_error.get_or_insert(e);
            }
        }
    }
    if deleted > 0 {
        info!(
            deleted,
            mappings = targets.len(),
            "conntrack: deleted the flows of removed port mappings"
        );
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}

/// What a flow and a [`DnatTarget`] have to agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MatchKey {
    proto: u8,
    host_port: u16,
    target: Ipv6Addr,
    target_port: u16,
}

impl From<&DnatTarget> for MatchKey {
    fn from(t: &DnatTarget) -> Self {
        MatchKey {
            proto: t.proto.number(),
            host_port: t.host_port,
            target: t.target,
            target_port: t.target_port,
        }
    }
}

/// The IPv6 entries with the ports of `key` (any address).
fn dump_mapping(key: &MatchKey) -> Result<Vec<CtFlow>, ConntrackError> {
    let what = format!(
        "dumping the conntrack entries of port {} (proto {}, to port {})",
        key.host_port, key.proto, key.target_port
    );
    let seq = next_seq(1);
    let request = dump_request(seq, key);
    let mut flows = Vec::new();
    let dumped = with_conn(|conn| {
        conn.dump(&request, seq, |msg| {
            let entry = msg.subsystem() == NFNL_SUBSYS_CTNETLINK
                && msg.subsystem_msg() == IPCTNL_MSG_CT_NEW;
            // Anything but an IPv6 entry with ports on both tuples (ICMPv6,
            // GRE, …) has no flow, and is no match.
            if let Some(flow) = entry.then(|| CtFlow::from_message(msg)).flatten() {
                flows.push(flow);
            }
        })
    })
    .map_err(|e| io_error(&what, e))?;
    match dumped {
        Ok(()) => Ok(flows),
        Err(errno) => Err(kernel_error(&what, errno)),
    }
}

/// Deletes one entry; `Ok(false)` when the kernel no longer has it.
fn delete(flow: &CtFlow) -> Result<bool, ConntrackError> {
    let what = format!("deleting the conntrack entry {flow}");
    let seq = next_seq(1);
    let request = delete_request(flow, seq);
    let ack = with_conn(|conn| conn.request(&request, seq)).map_err(|e| io_error(&what, e))?;
    match ack.map(|a| a.errno) {
        Some(0) => Ok(true),
        Some(ENOENT) => Ok(false),
        Some(errno) => Err(kernel_error(&what, errno)),
        None => Err(ConntrackError::Malformed {
            what,
            detail: "no acknowledgement".to_string(),
        }),
    }
}

/// A reply the socket layer could not frame is malformed; anything else is
/// an I/O error.
fn io_error(what: &str, source: io::Error) -> ConntrackError {
    if source.kind() == io::ErrorKind::InvalidData {
        ConntrackError::Malformed {
            what: what.to_string(),
            detail: source.to_string(),
        }
    } else {
        ConntrackError::Io {
            what: what.to_string(),
            source,
        }
    }
}

fn kernel_error(what: &str, errno: i32) -> ConntrackError {
    ConntrackError::Kernel {
        what: what.to_string(),
        source: io::Error::from_raw_os_error(errno),
    }
}
