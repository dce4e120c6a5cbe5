#![allow(dead_code)]
//! Shared by the integration tests.

use std::path::{Path, PathBuf};

/// Whether a test that needs root can run. Elsewhere it is skipped with a
/// printed reason; under CI (`CI=true`) not being able to run is a failure.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run: needs root, and CI=true makes kernel tests mandatory");
    }
    eprintln!("SKIPPED {test}: needs root (run as root, or with CI=true to make this a failure)");
    false
}

/// A golden scenario: `rules/NAME/snapshot.json` with an optional
/// `rules/NAME/dock6.toml`; its expected plan is `rules/NAME/plan.nft`.
pub struct Scenario {
    pub name: String,
    pub dir: PathBuf,
}

impl Scenario {
    pub fn snapshot(&self) -> PathBuf {
        self.dir.join("snapshot.json")
    }

    pub fn config(&self) -> Option<PathBuf> {
        let path = self.dir.join("dock6.toml");
        path.exists().then_some(path)
    }

    pub fn golden(&self) -> PathBuf {
        self.dir.join("plan.nft")
    }

    pub fn plan(&self) -> dock6::plan::Plan {
        let config = dock6::config::Config::load(Some(&self.config().unwrap_or_else(empty_config)))
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let snapshot = dock6::source::load_snapshot(&self.snapshot()).unwrap_or_else(|e| panic!("{e}"));
        dock6::plan::plan(&config, &snapshot)
    }
}

fn empty_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/empty.toml")
}

pub fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

pub fn scenarios() -> Vec<Scenario> {
    let mut out: Vec<Scenario> = std::fs::read_dir(rules_dir())
        .expect("rules/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("snapshot.json").exists())
        .map(|dir| Scenario { name: dir.file_name().unwrap().to_string_lossy().into_owned(), dir })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!out.is_empty(), "no scenarios under rules/");
    out
}

/// The golden file for the fail-closed bootstrap table.
pub fn bootstrap_golden() -> PathBuf {
    rules_dir().join("bootstrap.nft")
}
