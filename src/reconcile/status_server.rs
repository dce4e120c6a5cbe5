//! The agent's status socket (`status_socket`, default
//! `/run/dock6/dock6.sock`, mode 0600): each connection gets the status, as
//! JSON, and is closed. The loop publishes the small part of it after every
//! pass (the board); the containers and proxy entries, thousands of them on
//! a big host, are read off the loop's planner only when someone asks (see
//! [`Details`]), so that a pass never pays for rendering them. A pass in
//! progress delays that answer by its duration, at most [`DETAILS_WAIT`].

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::status::{ContainerStatus, Problem, ProxyStatus, Status};

/// What the loop writes and the socket reads.
pub(super) type Board = Arc<RwLock<Status>>;

/// The parts of the status that are rendered on request, by the loop.
#[derive(Debug, Default)]
pub(super) struct Details {
    pub containers: Vec<ContainerStatus>,
    pub proxy_entries: Vec<ProxyStatus>,
}

/// A request for [`Details`], answered by the loop between passes.
pub(super) type DetailsRequest = oneshot::Sender<Details>;

/// How long an answer waits for the loop (a long pass: a whole-table
/// replace at 10,000 containers); after that, the status says it is partial.
pub(super) const DETAILS_WAIT: Duration = Duration::from_secs(3);

/// A client that does not read its answer within this is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StatusSocketError {
    #[error("status socket {path}: another dock6 answers there")]
    Taken { path: PathBuf },
    #[error("status socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Removes the socket file when the agent stops, so `dock6 status` says
/// plainly that no agent runs.
pub(super) struct StatusSocket {
    path: PathBuf,
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (its directory made 0700 if missing; a stale socket no one
/// answers on replaced) and serves `board` on it from a task.
pub(super) fn serve(
    path: &Path,
    board: Board,
    details: mpsc::Sender<DetailsRequest>,
) -> Result<StatusSocket, StatusSocketError> {
    let io_error = |source| StatusSocketError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(StatusSocketError::Taken {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io_error)?;
    }
    let listener = UnixListener::bind(path).map_err(io_error)?;
    // Root only: the status names every container and address.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_error)?;
    info!("status served on {}", path.display());
    tokio::spawn(accept(listener, board, details));
    Ok(StatusSocket {
        path: path.to_path_buf(),
    })
}

async fn accept(listener: UnixListener, board: Board, details: mpsc::Sender<DetailsRequest>) {
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                debug!("status socket: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = board.read().unwrap_or_else(|e| e.into_inner()).clone();
        let details = details.clone();
        tokio::spawn(async move {
            let json = serde_json::to_vec_pretty(&with_details(status, &details).await)
                .unwrap_or_default();
            let write = async {
                stream.write_all(&json).await?;
                stream.shutdown().await
            };
            if let Ok(Err(e)) = tokio::time::timeout(WRITE_TIMEOUT, write).await {
                debug!("status socket: answering: {e}");
            }
        });
    }
}

/// `status` with the loop's details, or with a problem saying why not.
async fn with_details(mut status: Status, loop_: &mpsc::Sender<DetailsRequest>) -> Status {
    let (reply, answer) = oneshot::channel();
    // The wait covers the queue too: during a long pass, requests pile up in it.
    let asked = async {
        loop_.send(reply).await.ok()?;
        answer.await.ok()
    };
    match tokio::time::timeout(DETAILS_WAIT, asked).await {
        Ok(Some(details)) => {
            status.containers = details.containers;
            status.proxy_entries = details.proxy_entries;
        }
        _ => status.problems.push(Problem {
            level: "warning".into(),
            text: format!(
                "the agent did not list its containers and proxy entries within {DETAILS_WAIT:?} \
                 (a long pass): they are left out of this answer"
            ),
        }),
    }
    status
}
