//! Docker's daemon.json, read as it is: what dockerd was started with (a change takes effect
//! only when Docker restarts, so it is read again when Docker answers anew).

use std::path::{Path, PathBuf};

/// Where Docker's daemon.json is unless configured otherwise.
pub const DEFAULT_DAEMON_JSON: &str = "/etc/docker/daemon.json";

#[derive(Debug, Clone, PartialEq)]
pub enum DaemonJson {
    Missing(PathBuf),
    Unreadable(PathBuf, String),
    Parsed(PathBuf, serde_json::Value),
}

impl DaemonJson {
    pub fn path(&self) -> &Path {
        match self {
            DaemonJson::Missing(p) | DaemonJson::Unreadable(p, _) | DaemonJson::Parsed(p, _) => p,
        }
    }

    /// The boolean `key` sets: `Ok(None)` when the file or the key is absent (Docker's default
    /// holds), an error when the file cannot be read or `key` is not a boolean.
    pub fn bool_setting(&self, key: &str) -> Result<Option<bool>, String> {
        match self {
            DaemonJson::Missing(_) => Ok(None),
            DaemonJson::Unreadable(path, e) => Err(format!("{}: {e}", path.display())),
            DaemonJson::Parsed(path, value) => match value.get(key) {
                None => Ok(None),
                Some(serde_json::Value::Bool(set)) => Ok(Some(*set)),
                Some(other) => Err(format!(
                    "{}: \"{key}\" is {other}, not true or false",
                    path.display()
                )),
            },
        }
    }
}

pub fn read_daemon_json(path: &Path) -> DaemonJson {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DaemonJson::Missing(path.into()),
        Err(e) => DaemonJson::Unreadable(path.into(), e.to_string()),
        Ok(text) => match serde_json::from_str(&text) {
            Ok(value) => DaemonJson::Parsed(path.into(), value),
            Err(e) => DaemonJson::Unreadable(path.into(), e.to_string()),
        },
    }
}
