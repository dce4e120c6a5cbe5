//! dock6's own sockets: each thread keeps one [`Conn`] per network
//! namespace, and every such socket's port id is registered while it is
//! open, so that the nftables change monitor can tell dock6's commits from
//! anyone else's.
//!
//! The kernel stamps each commit's notifications with the committing
//! socket's port id; port ids are unique within a network namespace while
//! the socket is open. Pids would not do: they are not comparable across
//! pid namespaces, and dock6 may run in one of its own.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;
use std::sync::Mutex;

use super::conn::Conn;

thread_local! {
    /// This thread's socket, with the network namespace it was opened in.
    /// Reused because closing a netfilter netlink socket costs the caller an
    /// RCU grace period (7–20 ms measured here) — more than a whole commit.
    static CONN: RefCell<Option<Registered>> = const { RefCell::new(None) };
}

/// The (network namespace, netlink port id) of every open socket dock6
/// sends requests through.
static OWN_SOCKETS: Mutex<BTreeSet<(u64, u32)>> = Mutex::new(BTreeSet::new());

/// A socket whose port id is in [`OWN_SOCKETS`] for as long as it is open.
struct Registered {
    netns: u64,
    conn: Conn,
}

impl Registered {
    fn new(netns: u64, conn: Conn) -> Registered {
        if let Ok(mut own) = OWN_SOCKETS.lock() {
            own.insert((netns, conn.portid()));
        }
        Registered { netns, conn }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut own) = OWN_SOCKETS.lock() {
            own.remove(&(self.netns, self.conn.portid()));
        }
    }
}

/// Whether `portid` is one of dock6's open nfnetlink sockets in the network
/// namespace `netns` (an nsfs inode, as `/proc/thread-self/ns/net` has it).
pub fn is_own_socket(netns: u64, portid: u32) -> bool {
    OWN_SOCKETS
        .lock()
        .map(|own| own.contains(&(netns, portid)))
        .unwrap_or(false)
}

/// The network namespace of the calling thread (its nsfs inode).
pub fn thread_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

/// Runs `f` with this thread's cached socket, opening one if there is none
/// or if the thread has moved to another network namespace since (a socket
/// stays in the namespace it was created in). A socket that saw an I/O
/// error, or a failed batch ([`Conn::is_spent`]), is not kept. The socket
/// is registered (see [`is_own_socket`]) before anything is sent through it.
pub fn with_conn<R>(f: impl FnOnce(&Conn) -> io::Result<R>) -> io::Result<R> {
    // Without /proc the namespace is unknown: 0 stands for it, on both sides.
    let ns = thread_netns().unwrap_or(0);
    let cached = CONN.with(|c| c.borrow_mut().take());
    let conn = match cached {
        Some(registered) if registered.netns == ns => registered,
        _ => Registered::new(ns, Conn::open()?),
    };
    let result = f(&conn.conn);
    crate::apply::progress::beat();
    if result.is_ok() && !conn.conn.is_spent() {
        CONN.with(|c| *c.borrow_mut() = Some(conn));
    }
    result
}
