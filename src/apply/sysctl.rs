//! `net.ipv6.conf.<scope>.<name>` sysctls, read before written.
//!
//! Plain files under `/proc/sys/net/ipv6/conf/`, where interface names keep
//! their dots (`eth0.100`): the `sysctl` crate maps dots to path separators
//! and cannot address those.
//!
//! `/proc/sys/net` is resolved against the network namespace of the *calling
//! thread* (the kernel looks the table set up through `current->nsproxy`), so
//! a thread that has `setns(CLONE_NEWNET)`'d sees its own namespace's
//! sysctls. (`/proc/net`, by contrast, follows `/proc/self`, the thread-group
//! leader.) The namespace tests rely on this and check it with
//! `ip netns exec NS sysctl -n`. Each thread keeps the directory open (see
//! [`CONF`]), tagged with the namespace it was opened in, so a thread that
//! moved opens it again in its new one.

use std::cell::RefCell;
use std::fs;
use std::io::{self, Read as _, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt as _;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use tracing::{debug, info};

use super::HostError;
use crate::plan::SysctlSetting;

const CONF_DIR: &str = "/proc/sys/net/ipv6/conf";

thread_local! {
    /// This thread's [`CONF_DIR`], open, and the network namespace it was
    /// opened in (the inode of `/proc/thread-self/ns/net`). Looking a path
    /// up through `/proc/sys/net/ipv6` passes the kernel's cached entry of
    /// every network namespace that read an IPv6 sysctl, every container's
    /// (0.27 ms beside a thousand); a file in the open directory costs a few
    /// microseconds, and a pass reads several.
    static CONF: RefCell<Option<(u64, OwnedFd)>> = const { RefCell::new(None) };
}

/// Opens `SCOPE/NAME` in this thread's namespace's [`CONF_DIR`].
fn open_conf(relative: &str, write: bool) -> io::Result<fs::File> {
    let netns = fs::metadata("/proc/thread-self/ns/net")?.ino();
    let flags = OFlag::O_CLOEXEC
        | match write {
            true => OFlag::O_WRONLY,
            false => OFlag::O_RDONLY,
        };
    CONF.with_borrow_mut(|conf| {
        let kept = conf.take().filter(|(ns, _)| *ns == netns);
        // Kept from before: a namespace gone and its inode number given to
        // a new one would find nothing in it, so a miss is looked up again.
        let fresh = kept.is_none();
        let dir = match kept {
            Some((_, dir)) => dir,
            None => OwnedFd::from(fs::File::open(CONF_DIR)?),
        };
        let opened = match nix::fcntl::openat(&dir, relative, flags, Mode::empty()) {
            Err(nix::errno::Errno::ENOENT) if !fresh => {
                return fs::OpenOptions::new()
                    .read(!write)
                    .write(write)
                    .open(format!("{CONF_DIR}/{relative}"));
            }
            opened => opened,
        };
        *conf = Some((netns, dir));
        Ok(fs::File::from(opened?))
    })
}

/// What [`apply_sysctl`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlAction {
    /// The value was different and has been written.
    Changed,
    /// The value already was the wanted one: nothing written.
    AlreadySet,
    /// The current value is the setting's `keep_if`: left alone on purpose.
    Kept,
}

/// The result of applying one sysctl: old and new value, for "old → new" logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlOutcome {
    /// As sysctl(8) writes it (`net.ipv6.conf.eth0/100.accept_ra`).
    pub key: String,
    pub old: u8,
    pub new: u8,
    pub action: SysctlAction,
}

impl SysctlOutcome {
    pub fn changed(&self) -> bool {
        self.action == SysctlAction::Changed
    }
}

impl std::fmt::Display for SysctlOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.action {
            SysctlAction::Changed => write!(f, "{}: {} → {}", self.key, self.old, self.new),
            SysctlAction::AlreadySet => write!(f, "{}: {} (unchanged)", self.key, self.old),
            SysctlAction::Kept => write!(f, "{}: {} (kept as it is)", self.key, self.old),
        }
    }
}

use crate::plan::sysctl_key as key;

/// Validates one path component and builds the path under [`CONF_DIR`].
/// Interface names never contain `/` or NUL and are never `.` or `..`;
/// refusing them keeps a bad name from escaping it.
fn path(scope: &str, name: &str) -> Result<String, HostError> {
    for (what, value) in [("scope", scope), ("name", name)] {
        if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\0']) {
            return Err(HostError::SysctlName {
                key: key(scope, name),
                what,
                value: value.to_string(),
            });
        }
    }
    Ok(format!("{scope}/{name}"))
}

fn io_error(key: &str, relative: &str, op: &'static str, source: io::Error) -> HostError {
    let path = format!("{CONF_DIR}/{relative}");
    if source.kind() == io::ErrorKind::NotFound {
        HostError::SysctlMissing {
            key: key.to_string(),
            path,
        }
    } else {
        HostError::SysctlIo {
            key: key.to_string(),
            path,
            op,
            source,
        }
    }
}

/// Reads `net.ipv6.conf.<scope>.<name>` (scope: `all`, `default` or an
/// interface name, dots and all).
pub fn read_sysctl(scope: &str, name: &str) -> Result<u8, HostError> {
    let path = path(scope, name)?;
    read_path(&key(scope, name), &path)
}

/// `relative`: `SCOPE/NAME` under [`CONF_DIR`].
fn read_path(key: &str, relative: &str) -> Result<u8, HostError> {
    let mut text = String::new();
    open_conf(relative, false)
        .and_then(|mut file| file.read_to_string(&mut text))
        .map_err(|e| io_error(key, relative, "read", e))?;
    let value = text.trim();
    value.parse::<u8>().map_err(|_| HostError::SysctlValue {
        key: key.to_string(),
        path: format!("{CONF_DIR}/{relative}"),
        value: value.to_string(),
    })
}

fn write_path(key: &str, relative: &str, value: u8) -> Result<(), HostError> {
    // No truncate/create: a /proc/sys file takes the whole value in one write.
    let mut file = open_conf(relative, true).map_err(|e| io_error(key, relative, "open", e))?;
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(|e| io_error(key, relative, "write", e))
}

/// Applies one setting: reads the current value, leaves it when it equals
/// `keep_if` or already is the wanted value, writes otherwise and reads it
/// back. Returns old and new values.
pub fn apply_sysctl(s: &SysctlSetting) -> Result<SysctlOutcome, HostError> {
    let key = key(&s.scope, &s.name);
    let path = path(&s.scope, &s.name)?;
    let old = read_path(&key, &path)?;
    if s.keep_if == Some(old) && old != s.value {
        info!(sysctl = %key, value = old, reason = %s.reason, "sysctl left at {old} on purpose (keep_if)");
        return Ok(SysctlOutcome {
            key,
            old,
            new: old,
            action: SysctlAction::Kept,
        });
    }
    if old == s.value {
        debug!(sysctl = %key, value = old, "sysctl already set");
        return Ok(SysctlOutcome {
            key,
            old,
            new: old,
            action: SysctlAction::AlreadySet,
        });
    }
    write_path(&key, &path, s.value)?;
    let new = read_path(&key, &path)?;
    if new != s.value {
        return Err(HostError::SysctlNotApplied {
            key,
            wanted: s.value,
            actual: new,
        });
    }
    info!(sysctl = %key, old, new, reason = %s.reason, "sysctl {key}: {old} → {new}");
    Ok(SysctlOutcome {
        key,
        old,
        new,
        action: SysctlAction::Changed,
    })
}

/// The IPv6 sysctls dock6 may have set, as they are now (what cleanup
/// leaves and says): `all.forwarding`, and every interface with `accept_ra`
/// 2 or `proxy_ndp` 1.
pub fn sysctls_left_by_dock6() -> Vec<String> {
    let mut lines = Vec::new();
    if let Ok(v) = read_sysctl("all", "forwarding") {
        lines.push(format!("{} = {v}", key("all", "forwarding")));
    }
    let mut interfaces: Vec<String> = fs::read_dir(CONF_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    interfaces.sort();
    for name in interfaces.iter().filter(|n| *n != "all" && *n != "default") {
        for (conf, value) in [("accept_ra", 2), ("proxy_ndp", 1)] {
            if read_sysctl(name, conf).ok() == Some(value) {
                lines.push(format!("{} = {value}", key(name, conf)));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths_keep_dots_where_each_wants_them() {
        assert_eq!(
            key("eth0.100", "accept_ra"),
            "net.ipv6.conf.eth0/100.accept_ra"
        );
        assert_eq!(path("eth0.100", "accept_ra").unwrap(), "eth0.100/accept_ra");
    }

    #[test]
    fn bad_components_are_refused() {
        for (scope, name) in [
            ("..", "x"),
            ("a/b", "x"),
            ("", "x"),
            ("eth0", "../../x"),
            ("eth0", ""),
        ] {
            assert!(
                matches!(path(scope, name), Err(HostError::SysctlName { .. })),
                "{scope} {name}"
            );
        }
    }

    #[test]
    fn missing_interface_names_the_key() {
        let s = SysctlSetting {
            scope: "nosuch.4242".into(),
            name: "accept_ra".into(),
            value: 2,
            current: None,
            keep_if: Some(0),
            reason: "test".into(),
        };
        // Twice: the first opens the directory, the second finds it open.
        let _ = read_sysctl("default", "accept_ra");
        let err = apply_sysctl(&s).unwrap_err();
        assert!(matches!(err, HostError::SysctlMissing { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("/proc/sys/net/ipv6/conf/nosuch.4242/accept_ra"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("net.ipv6.conf.nosuch/4242.accept_ra"),
            "{err}"
        );
    }
}
