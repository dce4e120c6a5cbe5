//! Conntrack deletes for published-port mappings that went away, over
//! ctnetlink (`NETLINK_NETFILTER`, subsystem `NFNL_SUBSYS_CTNETLINK`).
//!
//! A UDP flow that was DNAT'ed to a container keeps its conntrack entry (and
//! so its NAT binding) for as long as packets keep coming: without a delete,
//! a client that sends every few seconds stays stuck to a container that is
//! gone. [`delete_dnat_flows`] asks the kernel once for a whole batch of
//! removed mappings (a dump filtered in the kernel to the DNAT'ed entries
//! and to what the batch's mappings share: protocol, ports), picks the
//! entries DNAT'ed to one of the mappings' targets, and deletes each by its
//! original tuple. Each dump walks the kernel's whole conntrack hash table
//! whatever its filter, so a removed container (its ten ports, say) costs
//! one walk, not ten.
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
use flow::{CtFlow, DumpFilter, IPCTNL_MSG_CT_NEW, delete_request, dump_request};
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
    for filter in dump_filters(&wanted) {
        flows.extend(dump_dnat_entries(&filter)?);
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

    let deleted = delete_each(matches);
    if deleted.count > 0 {
        info!(
            deleted = deleted.count,
            mappings = targets.len(),
            "conntrack: deleted the flows of removed port mappings"
        );
    }
    deleted.result()
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

/// The dumps that find the entries of the `wanted` mappings: one for the
/// whole batch, filtered by what all of them share.
fn dump_filters(wanted: &HashSet<MatchKey>) -> Vec<DumpFilter> {
    let mut keys = wanted.iter();
    let Some(first) = keys.next() else {
        return Vec::new();
    };
    let mut filter = DumpFilter {
        proto: Some(first.proto),
        host_port: Some(first.host_port),
        target_port: Some(first.target_port),
    };
    for key in keys {
        keep_if_same(&mut filter.proto, key.proto);
        keep_if_same(&mut filter.host_port, key.host_port);
        keep_if_same(&mut filter.target_port, key.target_port);
    }
    vec![filter]
}

/// Forgets `field` (matches any) unless it is `value`.
fn keep_if_same<T: PartialEq>(field: &mut Option<T>, value: T) {
    if field.as_ref() != Some(&value) {
        *field = None;
    }
}

/// The DNAT'ed IPv6 entries that `filter` lets through (any address).
fn dump_dnat_entries(filter: &DumpFilter) -> Result<Vec<CtFlow>, ConntrackError> {
    let what = format!("dumping the conntrack entries of removed mappings ({filter})");
    let seq = next_seq(1);
    dump_flows(&what, &dump_request(seq, filter), seq)
}

/// The IPv6 entries with ports on both tuples that the dump `request`
/// (sent with `seq`) returns. Anything else (ICMPv6, GRE, …) has no flow,
/// and is no match for any delete here.
fn dump_flows(what: &str, request: &[u8], seq: u32) -> Result<Vec<CtFlow>, ConntrackError> {
    let mut flows = Vec::new();
    let dumped = with_conn(|conn| {
        conn.dump(request, seq, |msg| {
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

/// What [`delete_each`] did: how many entries it deleted, and the first
/// error it met (the others are logged).
struct Deleted {
    count: usize,
    first_error: Option<ConntrackError>,
}

impl Deleted {
    fn result(self) -> Result<usize, ConntrackError> {
        match self.first_error {
            Some(e) => Err(e),
            None => Ok(self.count),
        }
    }
}

/// Deletes every one of `flows`. A failed delete does not stop the others:
/// a flow left behind is one the next removal's walk can still find, while
/// stopping would leave them all.
fn delete_each<'a>(flows: impl IntoIterator<Item = &'a CtFlow>) -> Deleted {
    let mut deleted = Deleted {
        count: 0,
        first_error: None,
    };
    for flow in flows {
        match delete(flow) {
            Ok(true) => {
                debug!(%flow, "conntrack: deleted");
                deleted.count += 1;
            }
            Ok(false) => debug!(%flow, "conntrack: already gone"),
            Err(e) => {
                warn!(%flow, error = %e, "conntrack: delete failed");
                deleted.first_error.get_or_insert(e);
            }
        }
    }
    deleted
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::L4Proto;

    /// A container's published ports: 5 tcp and 5 udp, each to its own
    /// container port.
    fn container_mappings(target: &str) -> HashSet<MatchKey> {
        (0..10u16)
            .map(|i| {
                let proto = if i < 5 { L4Proto::Tcp } else { L4Proto::Udp };
                let t = DnatTarget {
                    proto,
                    host_port: 8000 + i,
                    target: target.parse().expect("address"),
                    target_port: 80 + i,
                };
                MatchKey::from(&t)
            })
            .collect()
    }

    /// Each dump walks the kernel's whole conntrack hash table, whatever
    /// its filter: a removed container's mappings, and any batch of them,
    /// are found in one walk.
    #[test]
    fn a_batch_of_removed_mappings_is_one_dump() {
        let one = container_mappings("fd00:1::2");
        assert_eq!(dump_filters(&one).len(), 1, "one container's ten mappings");
        let mut two = one;
        two.extend(container_mappings("fd00:1::3"));
        assert_eq!(dump_filters(&two).len(), 1, "two containers' mappings");
        assert!(dump_filters(&HashSet::new()).is_empty(), "nothing removed");
    }

    /// The kernel filters by what every mapping of the batch shares: all
    /// of one mapping's fields; the protocol of tcp-only mappings; nothing
    /// but the DNAT status for tcp and udp together.
    #[test]
    fn a_dump_filters_by_what_the_mappings_share() {
        let all = container_mappings("fd00:1::2");
        let filter = |keys: Vec<&MatchKey>| {
            let keys: HashSet<MatchKey> = keys.into_iter().copied().collect();
            dump_filters(&keys)
        };
        let one = all.iter().find(|k| k.host_port == 8001).expect("8001");
        assert_eq!(
            filter(vec![one]),
            [DumpFilter {
                proto: Some(6),
                host_port: Some(8001),
                target_port: Some(81)
            }]
        );
        let tcp: Vec<&MatchKey> = all.iter().filter(|k| k.proto == 6).collect();
        assert_eq!(
            filter(tcp),
            [DumpFilter {
                proto: Some(6),
                host_port: None,
                target_port: None
            }]
        );
        assert_eq!(
            filter(all.iter().collect()),
            [DumpFilter {
                proto: None,
                host_port: None,
                target_port: None
            }]
        );
    }
}
