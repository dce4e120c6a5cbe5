//! `dock6 status`: one connection to the agent's socket, which answers with
//! its status as JSON and closes.

use std::io::Read as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Status;

/// How long the agent may take to answer (it answers from memory).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// More than any status: the answer is refused past this.
const MAX_ANSWER: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StatusQueryError {
    /// Nothing listens there: no agent runs (or it serves another socket).
    #[error("no dock6 agent answers at {path}: {source}")]
    NoAgent {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The socket is root's (mode 0600).
    #[error(
        "{path}: permission denied: dock6 status needs root, as the agent's socket is root's only"
    )]
    Denied { path: PathBuf },
    #[error("reading the agent's answer at {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent at {path} answered something that is not its status: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The raw JSON the agent at `path` serves, and it parsed.
pub fn query(path: &Path) -> Result<(String, Status), StatusQueryError> {
    let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::PermissionDenied => StatusQueryError::Denied {
            path: path.to_path_buf(),
        },
        _ => StatusQueryError::NoAgent {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let read_error = |source| StatusQueryError::Read {
        path: path.to_path_buf(),
        source,
    };
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(read_error)?;
    let mut text = String::new();
    stream
        .take(MAX_ANSWER)
        .read_to_string(&mut text)
        .map_err(|e| StatusQueryError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
    let status = serde_json::from_str(&text).map_err(|source| StatusQueryError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((text, status))
}
