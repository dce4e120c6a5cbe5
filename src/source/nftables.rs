//! nftables change notifications: a `NETLINK_NETFILTER` socket in the
//! multicast group `NFNLGRP_NFTABLES`, read from tokio.
//!
//! Every committed nftables transaction, whoever made it (`nft`, `iptables-nft`,
//! firewalld, dock6 itself), is announced to the group as one notification per
//! object it added or removed (tables, chains, rules, sets, set elements,
//! stateful objects, flowtables), followed by one `NEWGEN` message that closes
//! the transaction and names the task that committed it. The kernel sends a
//! transaction's messages while holding its commit mutex, so they arrive
//! contiguously, each transaction's objects before its `NEWGEN`.
//!
//! [`NftMonitor::next`] yields one [`NftChange`] per message, decoded just
//! enough to answer "was `table inet dock6` touched, and by whom?":
//!
//! ```no_run
//! # async fn restore() {}
//! # async fn full_check() {}
//! # async fn run() -> Result<(), dock6::source::nftables::NftMonitorError> {
//! use dock6::source::nftables::{subscribe, NftChange};
//! let mut monitor = subscribe()?; // before the first apply: nothing falls between
//! let mut ours_touched = false;
//! loop {
//!     match monitor.next().await? {
//!         NftChange::OurTableTouched { .. } => ours_touched = true,
//!         NftChange::OtherTable { .. } => {}
//!         NftChange::Generation(commit) => {
//!             // End of a transaction: ignore dock6's own commits.
//!             if std::mem::take(&mut ours_touched) && !commit.is_from_this_process() {
//!                 restore().await;
//!             }
//!         }
//!         // Notifications were lost (or one could not be read): compare
//!         // the live table with the plan.
//!         NftChange::Overrun | NftChange::Unrecognized { .. } => {
//!             ours_touched = false;
//!             full_check().await;
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! **Who committed.** Every message of a transaction carries, in its netlink
//! header, the port id of the socket that sent the batch
//! ([`Generation::portid`], and `portid` in the object variants); port ids
//! are unique within a network namespace while the socket is open. dock6
//! registers the port id of each socket it commits through
//! ([`crate::apply::nftables::is_own_socket`]), and the monitor marks the
//! commits made through them ([`Generation::by_dock6`]). This holds in any
//! pid namespace: `NFTA_GEN_PROC_PID` is the committing *thread's* id in the
//! initial pid namespace, which a dock6 inside another pid namespace (a
//! container, `unshare --pid`, systemd `PrivatePIDs=`) cannot compare with
//! its own view of pids.
//!
//! **Overrun.** If the receive buffer fills (a big `nft -f`, or a reader that
//! fell behind), or the kernel could not allocate a notification, the socket
//! reports `ENOBUFS` once; the subscription itself stays, so the monitor
//! yields [`NftChange::Overrun`] and keeps going. The caller then cannot know
//! what changed and must compare the live table with its plan.

use std::collections::VecDeque;
use std::fmt;
use std::io;

use netlink_sys::{
    AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_NETFILTER,
};

/// `NFNLGRP_NFTABLES`: the multicast group of nf_tables notifications.
pub const NFNLGRP_NFTABLES: u32 = 7;
/// `NFPROTO_INET`, the family of `table inet dock6`.
pub const NFPROTO_INET: u8 = 1;

const NFNL_SUBSYS_NFTABLES: u8 = 10;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Control messages (`NLMSG_NOOP`, `NLMSG_ERROR`, `NLMSG_DONE`,
/// `NLMSG_OVERRUN`) have types below this.
const NLMSG_MIN_TYPE: u16 = 0x10;

/// The table-name attribute of every object message: `NFTA_TABLE_NAME`,
/// `NFTA_CHAIN_TABLE`, `NFTA_RULE_TABLE`, `NFTA_SET_TABLE`,
/// `NFTA_SET_ELEM_LIST_TABLE`, `NFTA_OBJ_TABLE`, `NFTA_FLOWTABLE_TABLE` are all 1.
const NFTA_X_TABLE: u16 = 1;
const NFTA_GEN_ID: u16 = 1;
const NFTA_GEN_PROC_PID: u16 = 2;
const NFTA_GEN_PROC_NAME: u16 = 3;

const NFT_MSG_NEWGEN: u8 = 15;

/// Socket receive buffer asked for at subscribe (the kernel caps it at
/// `net.core.rmem_max`): room for a burst such as a whole ruleset reload.
const DEFAULT_RCVBUF: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NftMonitorError {
    #[error("nftables monitor needs a tokio runtime with IO enabled")]
    NoRuntime,
    #[error("cannot open the nftables notification socket: {0}")]
    Open(#[source] io::Error),
    #[error("cannot join the nftables notification group (needs CAP_NET_ADMIN): {0}")]
    Join(#[source] io::Error),
    #[error("cannot read nftables notifications: {0}")]
    Read(#[source] io::Error),
}

/// The kind of object a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftObject {
    Table,
    Chain,
    Rule,
    Set,
    SetElement,
    /// A stateful object (counter, quota, limit, ct helper…).
    Object,
    Flowtable,
}

/// What happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftOp {
    /// `NFT_MSG_NEW*`: created, or updated in place (a chain's policy, a
    /// table's flags).
    New,
    /// `NFT_MSG_DEL*` / `NFT_MSG_DESTROY*`.
    Deleted,
}

/// One object notification, e.g. "rule deleted".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NftEvent {
    pub object: NftObject,
    pub op: NftOp,
}

impl fmt::Display for NftEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let object = match self.object {
            NftObject::Table => "table",
            NftObject::Chain => "chain",
            NftObject::Rule => "rule",
            NftObject::Set => "set",
            NftObject::SetElement => "set element",
            NftObject::Object => "object",
            NftObject::Flowtable => "flowtable",
        };
        let op = match self.op {
            NftOp::New => "added",
            NftOp::Deleted => "deleted",
        };
        write!(f, "{object} {op}")
    }
}

/// The `NEWGEN` message that closes a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// `NFTA_GEN_ID`: the ruleset generation after this commit.
    pub id: u32,
    /// `NFTA_GEN_PROC_PID`: thread id of the committing thread (initial pid
    /// namespace); for a single-threaded program such as `nft`, its pid.
    pub pid: u32,
    /// `NFTA_GEN_PROC_NAME`: that thread's name (`comm`), e.g. `nft`.
    pub comm: String,
    /// Netlink port id of the socket that sent the batch (the NEWGEN
    /// message's `nlmsg_pid`).
    pub portid: u32,
    /// Sent through one of dock6's own nftables sockets in the monitor's
    /// network namespace (set by [`NftMonitor::next`]; false from [`decode`]).
    pub by_dock6: bool,
}

impl Generation {
    /// Whether dock6 (this process) made the commit, by the committing
    /// socket's port id (see the module documentation).
    pub fn is_from_this_process(&self) -> bool {
        self.by_dock6
    }
}

/// One decoded notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftChange {
    /// `table inet dock6` or something in it was added, changed or deleted.
    OurTableTouched { what: NftEvent, portid: u32 },
    /// Something in another table (any other name or family).
    OtherTable {
        family: u8,
        table: String,
        what: NftEvent,
        portid: u32,
    },
    /// End of a transaction, with who committed it.
    Generation(Generation),
    /// Notifications were lost (`ENOBUFS`): the
    /// subscription continues, but the caller must re-check the live table.
    Overrun,
    /// An nf_tables message this module cannot classify (an unknown message
    /// type from a newer kernel, or a malformed one). Treat like `Overrun`.
    Unrecognized { msg_type: u16, reason: String },
}

/// A subscription to nftables notifications in the network namespace of the
/// thread that called [`subscribe`].
pub struct NftMonitor {
    socket: TokioSocket,
    pending: VecDeque<NftChange>,
    /// The network namespace the subscription is in (0 when unknown).
    netns: u64,
}

/// Opens the socket in the calling thread's network namespace and joins
/// `NFNLGRP_NFTABLES`. Must be called inside a tokio runtime with IO enabled.
pub fn subscribe() -> Result<NftMonitor, NftMonitorError> {
    tokio::runtime::Handle::try_current().map_err(|_| NftMonitorError::NoRuntime)?;
    // Non-blocking, registered with the runtime's reactor.
    let mut socket = TokioSocket::new(NETLINK_NETFILTER).map_err(NftMonitorError::Open)?;
    let raw = socket.socket_mut();
    raw.bind(&SocketAddr::new(0, 0))
        .map_err(NftMonitorError::Open)?;
    raw.add_membership(NFNLGRP_NFTABLES)
        .map_err(NftMonitorError::Join)?;
    // Best effort: a smaller buffer only makes overruns likelier, and those
    // are reported.
    let _ = raw.set_rx_buf_sz(DEFAULT_RCVBUF as libc::c_int);
    Ok(NftMonitor {
        socket,
        pending: VecDeque::new(),
        netns: crate::apply::nftables::thread_netns().unwrap_or(0),
    })
}

impl NftMonitor {
    /// Waits for the next notification. Errors are those of the socket
    /// itself; an overrun is not an error but [`NftChange::Overrun`].
    ///
    /// Cancel-safe (usable in `select!`): a datagram is read whole in one
    /// step, and messages decoded from it but not yet returned are kept.
    pub async fn next(&mut self) -> Result<NftChange, NftMonitorError> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Ok(change);
            }
            // One datagram, whatever its size (peeked first), so nothing
            // is truncated.
            match self.socket.recv_from_full().await {
                Ok((datagram, _from)) => {
                    let netns = self.netns;
                    self.pending
                        .extend(decode(&datagram).into_iter().map(|c| match c {
                            NftChange::Generation(g) => NftChange::Generation(Generation {
                                by_dock6: crate::apply::nftables::is_own_socket(netns, g.portid),
                                ..g
                            }),
                            other => other,
                        }))
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(NftChange::Overrun),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NftMonitorError::Read(e)),
            }
        }
    }

    /// Sets the socket receive buffer (`SO_RCVBUF`, capped by
    /// `net.core.rmem_max`) and returns the size the kernel granted
    /// (which it doubles for bookkeeping).
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<usize, NftMonitorError> {
        let socket = self.socket.socket_ref();
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        socket.set_rx_buf_sz(bytes).map_err(NftMonitorError::Open)?;
        socket.get_rx_buf_sz().map_err(NftMonitorError::Open)
    }
}

fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u32_be(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Decodes one datagram: zero or more netlink messages. Control and
/// non-nf_tables messages are skipped; a malformed header ends the datagram
/// with an `Unrecognized`.
pub fn decode(mut b: &[u8]) -> Vec<NftChange> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDRLEN {
        let (Some(len), Some(ty), Some(portid)) = (u32_ne(b, 0), u16_ne(b, 4), u32_ne(b, 12))
        else {
            break;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            out.push(NftChange::Unrecognized {
                msg_type: ty,
                reason: format!("bad message length {len}"),
            });
            break;
        }
        if ty >= NLMSG_MIN_TYPE && (ty >> 8) as u8 == NFNL_SUBSYS_NFTABLES {
            out.push(decode_message(ty, portid, &b[NLMSG_HDRLEN..len]));
        }
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

/// One nf_tables message, after the netlink header: `nfgenmsg`, attributes.
fn decode_message(ty: u16, portid: u32, payload: &[u8]) -> NftChange {
    let unrecognized = |reason: &str| NftChange::Unrecognized {
        msg_type: ty,
        reason: reason.to_string(),
    };
    let Some(&family) = payload.first() else {
        return unrecognized("no nfgenmsg");
    };
    let attrs = payload.get(NFGENMSG_LEN..).unwrap_or(&[]);
    let msg = (ty & 0xff) as u8;
    if msg == NFT_MSG_NEWGEN {
        return match decode_generation(attrs, portid) {
            Some(g) => NftChange::Generation(g),
            None => unrecognized("NEWGEN without generation id and pid"),
        };
    }
    let Some(what) = event_of(msg) else {
        return unrecognized("unknown nf_tables message type");
    };
    let Some(table) = attr(attrs, NFTA_X_TABLE).map(nla_string) else {
        return unrecognized("no table name");
    };
    if family == NFPROTO_INET && table == crate::nft::TABLE_NAME {
        NftChange::OurTableTouched { what, portid }
    } else {
        NftChange::OtherTable {
            family,
            table,
            what,
            portid,
        }
    }
}

fn event_of(msg: u8) -> Option<NftEvent> {
    use NftObject::*;
    use NftOp::*;
    let (object, op) = match msg {
        0 => (Table, New),       // NFT_MSG_NEWTABLE
        2 => (Table, Deleted),   // NFT_MSG_DELTABLE
        3 => (Chain, New),       // NFT_MSG_NEWCHAIN
        5 => (Chain, Deleted),   // NFT_MSG_DELCHAIN
        6 => (Rule, New),        // NFT_MSG_NEWRULE
        8 => (Rule, Deleted),    // NFT_MSG_DELRULE
        9 => (Set, New),         // NFT_MSG_NEWSET
        11 => (Set, Deleted),    // NFT_MSG_DELSET
        12 => (SetElement, New), // NFT_MSG_NEWSETELEM
        14 => (SetElement, Deleted),
        18 => (Object, New), // NFT_MSG_NEWOBJ
        20 => (Object, Deleted),
        22 => (Flowtable, New), // NFT_MSG_NEWFLOWTABLE
        24 => (Flowtable, Deleted),
        26 => (Table, Deleted), // NFT_MSG_DESTROYTABLE …
        27 => (Chain, Deleted),
        28 => (Rule, Deleted),
        29 => (Set, Deleted),
        30 => (SetElement, Deleted),
        31 => (Object, Deleted),
        32 => (Flowtable, Deleted), // … NFT_MSG_DESTROYFLOWTABLE
        _ => return None,
    };
    Some(NftEvent { object, op })
}

fn decode_generation(attrs: &[u8], portid: u32) -> Option<Generation> {
    Some(Generation {
        id: u32_be(attr(attrs, NFTA_GEN_ID)?)?,
        pid: u32_be(attr(attrs, NFTA_GEN_PROC_PID)?)?,
        comm: attr(attrs, NFTA_GEN_PROC_NAME)
            .map(nla_string)
            .unwrap_or_default(),
        portid,
        by_dock6: false,
    })
}

/// The payload of the first top-level attribute of type `want`.
fn attr(mut b: &[u8], want: u16) -> Option<&[u8]> {
    while b.len() >= NLA_HDRLEN {
        let len = u16_ne(b, 0)? as usize;
        let ty = u16_ne(b, 2)? & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > b.len() {
            return None;
        }
        if ty == want {
            return b.get(NLA_HDRLEN..len);
        }
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    None
}

/// A NUL-terminated netlink string.
fn nla_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn ours(object: NftObject, op: NftOp) -> NftChange {
        NftChange::OurTableTouched {
            what: NftEvent { object, op },
            portid: 0x57d6,
        }
    }

    /// Captured in a fresh namespace (kernel 6.18, nft 1.0.6): `nft 'add
    /// table inet dock6; add chain inet dock6 c; add table ip other'`, then
    /// `nft flush ruleset`, both by nft pid 0x57d6 / 0x57d7. The kernel
    /// coalesces a transaction's object messages into one datagram, then
    /// sends NEWGEN in its own.
    #[test]
    fn decodes_captured_notifications() {
        let add = hex(concat!(
            "3c000000000a000001000000d6570000010000020a000100646f636b3600000008000300000000010c000400000000000000000108000200000000",
            "003c000000030a000402000000d6570000010000020a000100646f636b3600000006000300630000000c0002000000000000000001080006000000",
            "00003c000000000a000003000000d6570000020000020a0001006f7468657200000008000300000000000c0004000000000000000002080002000000",
            "0000",
        ));
        assert_eq!(
            decode(&add),
            vec![
                ours(NftObject::Table, NftOp::New),
                ours(NftObject::Chain, NftOp::New),
                NftChange::OtherTable {
                    family: 2,
                    table: "other".into(),
                    what: NftEvent {
                        object: NftObject::Table,
                        op: NftOp::New
                    },
                    portid: 0x57d6,
                },
            ]
        );
        let add_gen = hex(
            "2c0000000f0a000001000000d657000000000002080001000000000208000200000057d6080003006e667400",
        );
        assert_eq!(
            decode(&add_gen),
            vec![NftChange::Generation(Generation {
                id: 2,
                pid: 0x57d6,
                comm: "nft".into(),
                portid: 0x57d6,
                by_dock6: false,
            })]
        );

        let flush = hex(concat!(
            "34000000050a000001000000d7570000010000030a000100646f636b3600000006000300630000000c00020000000000000000013400",
            "0000020a000001000000d7570000010000030a000100646f636b3600000008000300000000000c00040000000000000000013400000002",
            "0a000001000000d7570000020000030a0001006f7468657200000008000300000000000c0004000000000000000002",
        ));
        let deleted = |object| NftChange::OurTableTouched {
            what: NftEvent {
                object,
                op: NftOp::Deleted,
            },
            portid: 0x57d7,
        };
        assert_eq!(
            decode(&flush),
            vec![
                deleted(NftObject::Chain),
                deleted(NftObject::Table),
                NftChange::OtherTable {
                    family: 2,
                    table: "other".into(),
                    what: NftEvent {
                        object: NftObject::Table,
                        op: NftOp::Deleted
                    },
                    portid: 0x57d7,
                },
            ]
        );
        let flush_gen = hex(
            "2c0000000f0a000001000000d757000000000003080001000000000308000200000057d7080003006e667400",
        );
        let [NftChange::Generation(g)] = &decode(&flush_gen)[..] else {
            panic!("one generation")
        };
        assert_eq!((g.id, g.pid, g.comm.as_str()), (3, 0x57d7, "nft"));
    }

    #[test]
    fn event_names() {
        let e = NftEvent {
            object: NftObject::Rule,
            op: NftOp::Deleted,
        };
        assert_eq!(e.to_string(), "rule deleted");
        let e = NftEvent {
            object: NftObject::SetElement,
            op: NftOp::New,
        };
        assert_eq!(e.to_string(), "set element added");
    }

    #[test]
    fn garbage_is_not_a_panic() {
        assert_eq!(decode(&[]), vec![]);
        assert_eq!(decode(&[1, 2, 3]), vec![]);
        // Length larger than the datagram.
        let mut m = vec![0u8; 16];
        m[..4].copy_from_slice(&100u32.to_ne_bytes());
        m[4..6].copy_from_slice(&0x0a00u16.to_ne_bytes());
        assert!(matches!(decode(&m)[..], [NftChange::Unrecognized { .. }]));
        // An nf_tables message with no nfgenmsg, then one whose attribute overruns.
        m[..4].copy_from_slice(&16u32.to_ne_bytes());
        assert!(matches!(decode(&m)[..], [NftChange::Unrecognized { .. }]));
        let mut m = vec![0u8; 24];
        m[..4].copy_from_slice(&24u32.to_ne_bytes());
        m[4..6].copy_from_slice(&0x0a06u16.to_ne_bytes());
        m[20..22].copy_from_slice(&200u16.to_ne_bytes());
        m[22..24].copy_from_slice(&1u16.to_ne_bytes());
        assert!(
            matches!(&decode(&m)[..], [NftChange::Unrecognized { reason, .. }] if reason == "no table name")
        );
    }
}
