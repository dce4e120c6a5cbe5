//! `table inet dock6` in nft's own listing form, for `dock6 render --diff`:
//! the table in the kernel, and a planned table as the kernel would list it.
//! Reading only: the planned table is loaded into a throwaway network
//! namespace (`unshare --net`) that dies with the command, never into this
//! one, so both sides go through the same kernel and the same `nft list`,
//! and a difference is a real one rather than a difference of spelling.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::nft::{TABLE_NAME, Table};

#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("cannot run {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {stderr}")]
    Failed { what: &'static str, stderr: String },
}

/// `nft list table inet dock6` of this namespace; empty when there is none.
pub fn kernel_listing() -> Result<String, ListingError> {
    if !crate::apply::nftables::table_exists(TABLE_NAME).unwrap_or(false) {
        return Ok(String::new());
    }
    let what = "nft list table inet dock6";
    let out = Command::new("nft")
        .args(["list", "table", "inet", TABLE_NAME])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ListingError::Spawn { what, source })?;
    finished(what, out)
}

/// How the kernel lists `table` once loaded: into a fresh network namespace
/// of a child process.
pub fn planned_listing(table: &Table) -> Result<String, ListingError> {
    let what = "nft in a throwaway network namespace";
    let script = format!("nft -f - && nft list table inet {TABLE_NAME}",);
    let mut child = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ListingError::Spawn { what, source })?;
    let text = table.replace_script();
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| ListingError::Spawn { what, source })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| ListingError::Spawn { what, source })?;
    finished(what, out)
}

fn finished(what: &'static str, out: std::process::Output) -> Result<String, ListingError> {
    if !out.status.success() {
        return Err(ListingError::Failed {
            what,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
