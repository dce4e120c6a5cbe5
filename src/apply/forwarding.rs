//! Whether dock6 itself turned `net.ipv6.conf.all.forwarding` on.
//!
//! When forwarding was 0 and dock6 sets it, dock6 forwards Docker traffic
//! only (the table then has its `not_docker` chain). That fact must outlive
//! the table: after an `nft flush ruleset` while dock6 is stopped, a dock6
//! that found forwarding at 1 and nothing saying who set it would take it
//! for the operator's and forward everything.
//!
//! So dock6 writes a record before it turns forwarding on: the file
//! `/run/dock6/forwarding-netns-<inode>`, one per network namespace, named
//! by the namespace's nsfs inode as the agent lock is. It holds the
//! namespace's cookie, because the inode number of a namespace that is gone
//! can be given to a new one, and a cookie never is: a record left by a
//! namespace that no longer exists says nothing about another. /run is a
//! tmpfs, so the record goes at reboot, exactly when the forwarding it
//! explains does (the kernel starts with forwarding at 0). `dock6 cleanup`
//! removes it with the table.
//!
//! The `not_docker` chain of a table in the kernel still counts as the
//! record too: a table kept from a dock6 that wrote no file says so, and the
//! next pass writes the file.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::nfnetlink::with_conn;
use super::{ApplyError, HostError};
use crate::nft::TABLE_NAME;
use crate::plan::CHAIN_NOT_DOCKER;

/// Where the records are kept (the agent lock's directory).
const RECORD_DIR: &str = "/run/dock6";

/// Whether dock6 turned forwarding on in this network namespace: its record
/// says so, or the live table has the `not_docker` chain.
pub fn forwarding_enabled_by_dock6() -> Result<bool, ApplyError> {
    if Record::here()?.is_kept()? {
        return Ok(true);
    }
    Ok(super::nftables::inet_chain_exists(
        TABLE_NAME,
        CHAIN_NOT_DOCKER,
    )?)
}

/// Writes the record that dock6 turns (or turned) forwarding on in this
/// network namespace, unless it is there already.
pub fn remember_forwarding_by_dock6() -> Result<(), HostError> {
    let record = Record::here()?;
    match record.is_kept()? {
        true => Ok(()),
        false => record.write(),
    }
}

/// Removes this namespace's record; true if there was one.
pub fn forget_forwarding_by_dock6() -> Result<bool, HostError> {
    let record = Record::here()?;
    match fs::remove_file(&record.path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(record.error("remove", e)),
    }
}

/// The record file of the calling thread's network namespace.
struct Record {
    path: PathBuf,
    /// What the file holds for this namespace: its cookie, or `None` on a
    /// kernel that has none (before Linux 5.14), where the inode alone names
    /// the namespace.
    cookie: Option<u64>,
}

impl Record {
    fn here() -> Result<Record, HostError> {
        let ns = "/proc/thread-self/ns/net";
        let inode = fs::metadata(ns)
            .map_err(|source| HostError::ForwardingRecord {
                path: ns.into(),
                op: "read",
                source,
            })?
            .ino();
        // The thread's own socket: closing a netfilter socket right after a
        // commit that deleted set elements waits for an RCU grace period
        // (nf_tables flushes its destroy work when a socket is released),
        // milliseconds in every pass after a container went away.
        let cookie = with_conn(|c| c.netns_cookie()).ok();
        Ok(Record {
            path: Path::new(RECORD_DIR).join(format!("forwarding-netns-{inode}")),
            cookie,
        })
    }

    /// The file is there and is this namespace's.
    fn is_kept(&self) -> Result<bool, HostError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.error("read", e)),
        };
        Ok(match self.cookie {
            Some(cookie) => text.trim() == cookie.to_string(),
            None => true,
        })
    }

    /// Written whole or not at all (a temporary file renamed over it).
    fn write(&self) -> Result<(), HostError> {
        fs::create_dir_all(RECORD_DIR).map_err(|e| self.error("create its directory", e))?;
        let text = match self.cookie {
            Some(cookie) => format!("{cookie}\n"),
            None => "no netns cookie\n".to_string(),
        };
        let temporary = self.path.with_extension("new");
        fs::File::create(&temporary)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&temporary, &self.path))
            .map_err(|e| self.error("write", e))
    }

    fn error(&self, op: &'static str, source: io::Error) -> HostError {
        HostError::ForwardingRecord {
            path: self.path.display().to_string(),
            op,
            source,
        }
    }
}
