//! The agent's status socket (`status_socket`, default
//! `/run/dock6/dock6.sock`, mode 0600): each connection gets the status, as
//! JSON, and is closed. The loop publishes the small part of it after every
//! pass (the board); the containers and proxy entries, thousands of them on
//! a big host, are read off the loop's planner only when someone asks (see
//! [`Details`]), so that a pass never pays for rendering them. A loop busy
//! with a pass does not hold the answer up for longer than [`DETAILS_WAIT`]:
//! the details it rendered last stand in, said to be as of then.

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
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
    /// The number of the last pass when they were rendered.
    pub after_pass: u64,
}

/// A request for [`Details`], answered by the loop between passes.
pub(super) type DetailsRequest = oneshot::Sender<Arc<Details>>;

/// The details the loop rendered last, kept by the socket for the answers
/// the loop is too busy to give.
type LastDetails = Arc<Mutex<Option<Arc<Details>>>>;

/// How long an answer waits for the loop (a long pass: a whole-table
/// replace at 10,000 containers, or the kernel busy with Docker's own
/// rules); after that it comes with the details rendered last, or without
/// any, saying so: `dock6 status` answers well within a second, whatever
/// the loop is doing.
pub(super) const DETAILS_WAIT: Duration = Duration::from_millis(500);

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
    let last = LastDetails::default();
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
        let (details, last) = (details.clone(), last.clone());
        tokio::spawn(async move {
            let json = serde_json::to_vec_pretty(&with_details(status, &details, &last).await)
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

/// `status` with the loop's details; when the loop does not answer within
/// [`DETAILS_WAIT`], with the last ones it rendered (or none), and a problem
/// saying so.
async fn with_details(
    mut status: Status,
    loop_: &mpsc::Sender<DetailsRequest>,
    last: &LastDetails,
) -> Status {
    let (reply, answer) = oneshot::channel();
    // The wait covers the queue too: during a long pass, requests pile up in it.
    let asked = async {
        loop_.send(reply).await.ok()?;
        answer.await.ok()
    };
    let fresh = tokio::time::timeout(DETAILS_WAIT, asked)
        .await
        .ok()
        .flatten();
    let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(details) = &fresh {
        *last = Some(Arc::clone(details));
    }
    let text = match (&fresh, last.as_ref()) {
        (Some(_), _) => None,
        (None, Some(details)) => Some(format!(
            "the agent is busy (it did not answer within {DETAILS_WAIT:?}): its containers and \
             proxy entries are shown as they were after pass {}",
            details.after_pass
        )),
        (None, None) => Some(format!(
            "the agent is busy (it did not answer within {DETAILS_WAIT:?}): its containers and \
             proxy entries are left out of this answer"
        )),
    };
    if let Some(details) = fresh.as_ref().or(last.as_ref()) {
        status.containers = details.containers.clone();
        status.proxy_entries = details.proxy_entries.clone();
    }
    status.problems.extend(text.map(|text| Problem {
        level: "warning".into(),
        text,
    }));
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_proxy_entry(after_pass: u64) -> Arc<Details> {
        Arc::new(Details {
            containers: Vec::new(),
            proxy_entries: vec![ProxyStatus {
                address: "2001:db8::10".parse().expect("address"),
                interface: "eth0".into(),
                container: "web".into(),
                network: "v6".into(),
            }],
            after_pass,
        })
    }

    #[tokio::test]
    async fn a_busy_loop_does_not_hold_the_answer_up() {
        let (loop_, mut requests) = mpsc::channel::<DetailsRequest>(16);
        let last = LastDetails::default();
        // Before the loop ever answered, and while it is busy: no details, said so.
        let asked = tokio::time::Instant::now();
        let busy = with_details(Status::default(), &loop_, &last).await;
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        assert!(busy.proxy_entries.is_empty());
        assert!(
            busy.problems.iter().any(|p| p.text.contains("left out")),
            "{:?}",
            busy.problems
        );
        while requests.try_recv().is_ok() {}

        // The loop answers: its details, no problem.
        let answering = tokio::spawn(async move {
            let reply = requests.recv().await.expect("a request");
            let _ = reply.send(one_proxy_entry(7));
            requests
        });
        let fresh = with_details(Status::default(), &loop_, &last).await;
        assert_eq!(fresh.proxy_entries.len(), 1);
        assert!(fresh.problems.is_empty(), "{:?}", fresh.problems);
        let _requests = answering.await.expect("the loop stand-in");

        // Busy again: within a second, with the last details, saying of when.
        let asked = tokio::time::Instant::now();
        let busy = with_details(Status::default(), &loop_, &last).await;
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        assert_eq!(busy.proxy_entries, fresh.proxy_entries);
        assert!(
            busy.problems
                .iter()
                .any(|p| p.text.contains("after pass 7")),
            "{:?}",
            busy.problems
        );
    }
}
