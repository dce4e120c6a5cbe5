//! The nftables change monitor: a `NETLINK_NETFILTER` socket in the
//! multicast group `NFNLGRP_NFTABLES`, read from tokio.
//!
//! It lives beside the encoder rather than among the snapshot sources: it
//! produces no snapshot, only "someone else committed to nftables", and
//! it tells dock6's own commits from others' by the port ids of the sockets
//! the encoder commits through ([`crate::apply::nfnetlink::is_own_socket`]).
//! It reads the same nfnetlink messages through the same codec and socket
//! type as the encoder and conntrack.
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
//! # async fn run() -> Result<(), dock6::apply::nftables::changes::NftMonitorError> {
//! use dock6::apply::nftables::changes::{subscribe, NftChange};
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

mod decode;

use std::collections::VecDeque;
use std::fmt;
use std::io;

use tokio::io::unix::AsyncFd;

use crate::apply::nfnetlink::{Conn, is_own_socket, thread_netns};

pub use decode::decode;

/// `NFNLGRP_NFTABLES`: the multicast group of nf_tables notifications.
pub const NFNLGRP_NFTABLES: u32 = 7;
/// `NFPROTO_INET`, the family of `table inet dock6`.
pub const NFPROTO_INET: u8 = crate::apply::nfnetlink::codec::NFPROTO_INET;

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
    socket: AsyncFd<Conn>,
    buf: Vec<u8>,
    pending: VecDeque<NftChange>,
    /// The network namespace the subscription is in (0 when unknown).
    netns: u64,
}

/// Opens the socket in the calling thread's network namespace and joins
/// `NFNLGRP_NFTABLES`. Must be called inside a tokio runtime with IO enabled.
pub fn subscribe() -> Result<NftMonitor, NftMonitorError> {
    tokio::runtime::Handle::try_current().map_err(|_| NftMonitorError::NoRuntime)?;
    let conn = Conn::open().map_err(NftMonitorError::Open)?;
    conn.join(NFNLGRP_NFTABLES).map_err(NftMonitorError::Join)?;
    // Best effort: a smaller buffer only makes overruns likelier, and those
    // are reported.
    let _ = conn.set_receive_buffer(DEFAULT_RCVBUF);
    Ok(NftMonitor {
        socket: conn.into_async().map_err(NftMonitorError::Open)?,
        buf: Vec::new(),
        pending: VecDeque::new(),
        netns: thread_netns().unwrap_or(0),
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
            let mut ready = self
                .socket
                .readable()
                .await
                .map_err(NftMonitorError::Read)?;
            let buf = &mut self.buf;
            match ready.try_io(|conn| conn.get_ref().recv(buf)) {
                // Not readable after all: wait again.
                Err(_would_block) => continue,
                Ok(Ok(())) => {
                    let netns = self.netns;
                    let changes = decode(&self.buf).into_iter().map(|c| mark_own(c, netns));
                    self.pending.extend(changes);
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(NftChange::Overrun);
                }
                Ok(Err(e)) => return Err(NftMonitorError::Read(e)),
            }
        }
    }

    /// Stops the notifications (leaves the group) until [`NftMonitor::unmute`].
    /// The kernel builds one notification per object of a transaction for
    /// each listener, which for a whole-table replace of 100,000 elements
    /// costs most of the commit and overruns the buffer. Whoever mutes the
    /// monitor must find out by other means what was committed meanwhile
    /// ([`super::generation`] before and after).
    pub fn mute(&self) -> Result<(), NftMonitorError> {
        self.socket
            .get_ref()
            .leave(NFNLGRP_NFTABLES)
            .map_err(NftMonitorError::Join)
    }

    /// Joins the group again after [`NftMonitor::mute`].
    pub fn unmute(&self) -> Result<(), NftMonitorError> {
        self.socket
            .get_ref()
            .join(NFNLGRP_NFTABLES)
            .map_err(NftMonitorError::Join)
    }

    /// Sets the socket receive buffer (`SO_RCVBUF`, capped by
    /// `net.core.rmem_max`) and returns the size the kernel granted
    /// (which it doubles for bookkeeping).
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<usize, NftMonitorError> {
        self.socket
            .get_ref()
            .set_receive_buffer(bytes)
            .map_err(NftMonitorError::Open)
    }
}

/// Marks a generation committed through one of dock6's own sockets.
fn mark_own(change: NftChange, netns: u64) -> NftChange {
    match change {
        NftChange::Generation(g) => NftChange::Generation(Generation {
            by_dock6: is_own_socket(netns, g.portid),
            ..g
        }),
        other => other,
    }
}
