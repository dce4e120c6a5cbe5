//! Errors from the code that touches the host (sysctls, neighbours, NDP messages).

use std::io;
use std::net::Ipv6Addr;

/// Something went wrong while reading or changing the host's state. Every
/// variant names what it was working on (the sysctl key, or the interface and
/// address), so a log line alone says what failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The sysctl's file is missing: the interface does not exist (or IPv6
    /// is disabled on it).
    #[error("sysctl {key}: {path} does not exist (no such interface, or IPv6 disabled on it)")]
    SysctlMissing { key: String, path: String },

    #[error("sysctl {key}: cannot {op} {path}: {source}")]
    SysctlIo {
        key: String,
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("sysctl {key}: unexpected value {value:?} in {path}")]
    SysctlValue {
        key: String,
        path: String,
        value: String,
    },

    #[error("sysctl {key}: wrote {wanted} but the kernel reports {actual}")]
    SysctlNotApplied { key: String, wanted: u8, actual: u8 },

    #[error("sysctl {key}: invalid {what} {value:?}")]
    SysctlName {
        key: String,
        what: &'static str,
        value: String,
    },

    #[error("proxy-NDP entry {address} on {interface}: no such interface")]
    NoSuchInterface {
        interface: String,
        address: Ipv6Addr,
    },

    #[error("unsolicited neighbour advertisement for {address} on {interface}: {source}")]
    Advertisement {
        interface: String,
        address: Ipv6Addr,
        #[source]
        source: io::Error,
    },

    #[error("router solicitation on {interface}: no such interface")]
    SolicitationNoInterface { interface: String },

    #[error(
        "router solicitation on {interface}: no usable link-local address (none, or still tentative)"
    )]
    NoLinkLocal { interface: String },

    #[error("cannot answer neighbour solicitations (na_source = \"target\"): {0}")]
    Responder(#[source] io::Error),

    #[error("router solicitation on {interface}: {source}")]
    Solicitation {
        interface: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot open a netlink socket: {0}")]
    NetlinkSocket(#[source] io::Error),

    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },

    /// The file that says dock6 turned forwarding on (see `forwarding.rs`).
    #[error("the record that dock6 turned forwarding on ({path}): cannot {op}: {source}")]
    ForwardingRecord {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}
