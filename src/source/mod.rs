//! Where snapshots come from: a JSON file (`--snapshot FILE`), the host over
//! rtnetlink (`host`), and Docker (`docker`).

pub mod daemon_json;
pub mod docker;
pub mod host;
pub mod listeners;
pub mod live;

use std::path::{Path, PathBuf};

use crate::snapshot::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

pub fn load_snapshot(path: &Path) -> Result<Snapshot, SnapshotFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| SnapshotFileError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse_snapshot(&text, path)
}

pub fn parse_snapshot(text: &str, path: &Path) -> Result<Snapshot, SnapshotFileError> {
    serde_json::from_str(text).map_err(|e| SnapshotFileError::Invalid {
        file: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// serde_json appends " at line L column C", which the error already says.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_snapshot_names_file_line_and_field() {
        let text = "{\n  \"host\": {},\n  \"networks\": [{\"id\": \"x\", \"name\": \"n\", \"colour\": 1}]\n}";
        let e = parse_snapshot(text, Path::new("s.json"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.json:3:"), "{e}");
        assert!(e.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn bad_address_is_refused() {
        let text = r#"{"host": {}, "containers": [{"id": "c", "name": "c", "networks": {"n": {"ipv6_address": "fd00::zz"}}}]}"#;
        let e = parse_snapshot(text, Path::new("s.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.json:1:"), "{e}");
    }
}
