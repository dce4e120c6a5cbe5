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
use tracing::{debug, info};

use super::flow::{CtFlow, dump_all_request};
use super::{ConntrackError, delete_each, dump_flows};
use crate::apply::nfnetlink::next_seq;

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
    let deleted = delete_each(matches);
    if deleted.count > 0 {
        info!(
            deleted = deleted.count,
            "conntrack: deleted the flows of the old mapped prefixes"
        );
    }
    deleted.result()
}

/// Every IPv6 entry with ports on both tuples.
fn dump_all() -> Result<Vec<CtFlow>, ConntrackError> {
    let seq = next_seq(1);
    dump_flows(
        "dumping the IPv6 conntrack entries",
        &dump_all_request(seq),
        seq,
    )
}
