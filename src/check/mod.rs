//! `dock6 check`: a preflight of the host as it is, run before or beside
//! the agent. It gathers facts (`facts`: Docker, daemon.json, the host,
//! nftables, the kernel, the node's swarm: `swarm`), turns them into findings (`findings`: pure, one
//! function per finding) and prints them (`render`). Each finding says what
//! was seen, why it matters and the fix. Exit 1 when any is an error.
//!
//! It plans nothing of its own: where a finding depends on the mode of a
//! network, it asks the planner.

pub mod facts;
pub mod findings;
mod render;
pub mod swarm;

use serde::{Deserialize, Serialize};

pub use facts::{CheckOptions, Facts, gather};
pub use findings::findings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One finding. `id` is stable (scripts match on it; listed in docs/operations.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    pub seen: String,
    pub why: String,
    /// A command or a config line; `None` where there is nothing to do.
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(
        id: &str,
        severity: Severity,
        seen: impl Into<String>,
        why: impl Into<String>,
    ) -> Finding {
        Finding {
            id: id.into(),
            severity,
            seen: seen.into(),
            why: why.into(),
            fix: None,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// What `dock6 check --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Errors first, then warnings, then infos (each kept in check order).
    pub fn new(mut findings: Vec<Finding>) -> Report {
        findings.sort_by_key(|f| f.severity);
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        Report {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            findings,
        }
    }
}
