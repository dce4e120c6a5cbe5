//! The one nfnetlink layer (`NETLINK_NETFILTER`) dock6 speaks through, split
//! as rust-netlink's crates split rtnetlink:
//!
//! * [`codec`]: the wire format — `nlmsghdr`, `nfgenmsg`, attributes, acks;
//! * [`conn`]: one socket type — send, receive, replies routed by sequence
//!   number, send buffer raised to fit a batch;
//! * [`own_sockets`]: the per-thread socket and the registry of dock6's
//!   own port ids.
//!
//! Its users build the requests: the nftables encoder
//! ([`crate::apply::nftables`]: batches whose object payloads libnftnl
//! serialises, and GET requests), its change monitor
//! ([`crate::apply::nftables::changes`]) and conntrack
//! ([`crate::apply::conntrack`]).

pub mod codec;
pub mod conn;
pub mod own_sockets;
mod sys;

pub use conn::{Conn, next_seq};
pub use own_sockets::{is_own_socket, thread_netns, with_conn};
#[cfg(test)]
pub(crate) use sys::enter_fresh_netns;
