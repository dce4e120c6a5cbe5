//! One agent per network namespace: `dock6 run` holds a lock that
//! `dock6 cleanup` (and a second `dock6 run`) respects.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

const LOCK_DIR: &str = "/run/dock6";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a dock6 agent (pid {pid}) is already running in this network namespace (lock {path})")]
    Held { pid: String, path: PathBuf },
    #[error("agent lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for as long as the agent runs (the kernel drops it when the process
/// ends); a clean stop also removes the file.
#[derive(Debug)]
pub struct AgentLock {
    _file: File,
    path: PathBuf,
}

impl Drop for AgentLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lock file of the calling thread's network namespace.
fn lock_path() -> Result<PathBuf, LockError> {
    let ns = "/proc/thread-self/ns/net";
    let inode = std::fs::metadata(ns)
        .map_err(|source| LockError::Io {
            path: ns.into(),
            source,
        })?
        .ino();
    Ok(PathBuf::from(format!(
        "{LOCK_DIR}/agent-netns-{inode}.lock"
    )))
}

fn open(create: bool) -> Result<Option<(File, PathBuf)>, LockError> {
    let path = lock_path()?;
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if create {
        std::fs::create_dir_all(LOCK_DIR).map_err(io)?;
    }
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(&path)
    {
        Ok(file) => Ok(Some((file, path))),
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e)),
    }
}

fn holder(file: &mut File) -> String {
    let mut pid = String::new();
    let _ = file.read_to_string(&mut pid);
    match pid.trim() {
        "" => "unknown".into(),
        p => p.to_string(),
    }
}

/// Takes the lock for this process, or says who has it.
pub fn acquire() -> Result<AgentLock, LockError> {
    let Some((mut file, path)) = open(true)? else {
        return Err(LockError::Io {
            path: lock_path()?,
            source: std::io::ErrorKind::NotFound.into(),
        });
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LockError::Held {
                pid: holder(&mut file),
                path,
            });
        }
        Err(TryLockError::Error(source)) => return Err(LockError::Io { path, source }),
    }
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(AgentLock { _file: file, path })
}

/// Fails with [`LockError::Held`] while an agent runs in this network namespace.
pub fn ensure_no_agent() -> Result<(), LockError> {
    let Some((mut file, path)) = open(false)? else {
        return Ok(());
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(LockError::Held {
            pid: holder(&mut file),
            path,
        }),
        Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}
