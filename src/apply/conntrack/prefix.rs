//! Conntrack deletes for an `nptv6` mapping that moved to another prefix
//! (the provider renumbered the host). A prefix translation is stateless in
//! the rules, but each flow keeps the translation it started with in its
//! conntrack entry: without a delete, a flow through the old mapped prefix
//! goes on answering from an address the host no longer has.
//!
//! A renumbering is rare, so one unfiltered dump of the IPv6 entries is
//! enough (the kernel cannot filter by prefix); the entries translated to or
//! from an old prefix are deleted by their original tuple.

use ipnet::Ipv6Net;
use tracing::{debug, info, warn};

use super::flow::{CtFlow, IPCTNL_MSG_CT_NEW, dump_all_request};
use super::{ConntrackError, delete, io_error, kernel_error};
use crate::apply::nfnetlink::codec::NFNL_SUBSYS_CTNETLINK;
use crate::apply::nfnetlink::{next_seq, with_conn};

/// Deletes every IPv6 conntrack entry that was translated to or from one of
/// `prefixes`: sent to an address inside one (original destination), or
/// answered to one (reply destination: a container's flow out, its source
/// rewritten into the prefix). Returns how many were deleted; a failed
/// delete does not stop the others.
pub fn delete_prefix_flows(prefixes: &[Ipv6Net]) -> Result<usize, ConntrackError> {
    if prefixes.is_empty() {
        return Ok(0);
    }
    let flows = dump_all()?;
    let matches: Vec<&CtFlow> = flows
        .iter()
        .filter(|f| prefixes.iter().any(|p| f.translated_through(p)))
        .collect();
    debug!(
        dumped = flows.len(),
        matched = matches.len(),
        "conntrack: entries of the old mapped prefixes dumped"
    );
    let mut deleted = 0;
    let mut first_error = None;
    for flow in matches {
        match delete(flow) {
            Ok(true) => deleted += 1,
            Ok(false) => {}
            Err(e) => {
                warn!(%flow, error = %e, "conntrack: delete failed");
                first_error.get_or_insert(e);
            }
        }
    }
    if deleted > 0 {
        info!(
            deleted,
            "conntrack: deleted the flows of the old mapped prefixes"
        );
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}

/// Every IPv6 entry with ports on both tuples.
fn dump_all() -> Result<Vec<CtFlow>, ConntrackError> {
    let what = "dumping the IPv6 conntrack entries";
    let seq = next_seq(1);
    let request = dump_all_request(seq);
    let mut flows = Vec::new();
    let dumped = with_conn(|conn| {
        conn.dump(&request, seq, |msg| {
            let entry = msg.subsystem() == NFNL_SUBSYS_CTNETLINK
                && msg.subsystem_msg() == IPCTNL_MSG_CT_NEW;
            if let Some(flow) = entry.then(|| CtFlow::from_message(msg)).flatten() {
                flows.push(flow);
            }
        })
    })
    .map_err(|e| io_error(what, e))?;
    match dumped {
        Ok(()) => Ok(flows),
        Err(errno) => Err(kernel_error(what, errno)),
    }
}
