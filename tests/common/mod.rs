#![allow(dead_code)]
//! Shared by the integration tests.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Whether every program is on PATH. Elsewhere a missing one skips the
/// test with a printed reason; under CI (`CI=true`) it is a failure.
pub fn require_tools(test: &str, programs: &[&str]) -> bool {
    for program in programs {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            continue;
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: cannot run: {program} is missing (cargo xtask test installs it)");
        }
        eprintln!("SKIPPED {test}: {program} is missing (cargo xtask test installs it)");
        return false;
    }
    true
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
        let config = match self.config() {
            Some(path) => dock6::config::Config::load(Some(&path))
                .unwrap_or_else(|e| panic!("{}: {e}", self.name)),
            None => dock6::config::Config::default(),
        };
        let snapshot =
            dock6::source::load_snapshot(&self.snapshot()).unwrap_or_else(|e| panic!("{e}"));
        dock6::plan::plan(&config.policy, &snapshot)
    }
}

pub fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// Limits [`scenarios`] to a comma-separated list of names (the kernel matrix runs one scenario
/// per process, so that each reports on its own).
pub const SCENARIOS_ENV: &str = "DOCK6_SCENARIOS";

/// Every scenario under `rules/`, or those [`SCENARIOS_ENV`] names (each must exist).
pub fn scenarios() -> Vec<Scenario> {
    let all = all_scenarios();
    let Ok(wanted) = std::env::var(SCENARIOS_ENV) else {
        return all;
    };
    let names: Vec<&str> = wanted.split(',').map(str::trim).collect();
    for name in &names {
        assert!(
            all.iter().any(|s| s.name == *name),
            "{SCENARIOS_ENV}: no scenario {name:?} under rules/"
        );
    }
    all.into_iter()
        .filter(|s| names.contains(&s.name.as_str()))
        .collect()
}

fn all_scenarios() -> Vec<Scenario> {
    let mut out: Vec<Scenario> = std::fs::read_dir(rules_dir())
        .expect("rules/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("snapshot.json").exists())
        .map(|dir| Scenario {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!out.is_empty(), "no scenarios under rules/");
    out
}

/// The golden file for the fail-closed bootstrap table.
pub fn bootstrap_golden() -> PathBuf {
    rules_dir().join("bootstrap.nft")
}

/// The fail-closed table of a host with an uplink, Docker's default bridge,
/// a Docker-named user bridge and the operator's own `br-lan`.
pub fn bootstrap_table() -> dock6::nft::Table {
    let interface = |name: &str| dock6::snapshot::Interface {
        name: name.to_string(),
        ..Default::default()
    };
    let host = dock6::snapshot::HostFacts {
        interfaces: ["eth0", "docker0", "br-0123456789ab", "br-lan"]
            .map(interface)
            .to_vec(),
        ..Default::default()
    };
    dock6::plan::bootstrap_table(&host)
}

/// Runs `f` on a new thread that first moves into a fresh, empty network
/// namespace of its own (`unshare(CLONE_NEWNET)` affects only the calling
/// thread). Netlink sockets opened and processes spawned from that thread
/// live in that namespace; it disappears when the thread ends, so there is
/// nothing to clean up and the host's namespace is never touched.
pub fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare with CLONE_NEWNET only changes this thread's
        // network namespace; no memory is involved.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Runs `nft ARGS` (in the calling thread's network namespace), with
/// optional stdin; panics with its stderr on failure.
pub fn nft(args: &[&str], stdin: Option<&str>) -> String {
    nft_with_pid(args, stdin).1
}

/// The same, also returning nft's pid (who committed, in notifications).
pub fn nft_with_pid(args: &[&str], stdin: Option<&str>) -> (u32, String) {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nft");
    let pid = child.id();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write to nft");
    }
    let out = child.wait_with_output().expect("wait for nft");
    assert!(
        out.status.success(),
        "nft {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        pid,
        String::from_utf8(out.stdout).expect("nft output is UTF-8"),
    )
}

/// Inode of the calling thread's network namespace (to check isolation).
pub fn netns_id() -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("netns")
        .ino()
}
pub mod agent;
pub mod docker_lab;
pub mod fake_docker;
pub mod icmp6;
pub mod lab;
pub mod netns;
pub mod probe;
pub mod roundtrip;
pub mod swarm;
pub mod web;

/// `dock6 check --json ARGS` run by `command` (in a namespace): exit code and report.
pub fn check_with(mut command: Command, args: &[&str]) -> (i32, serde_json::Value) {
    let out = command
        .arg("check")
        .arg("--json")
        .args(args)
        .output()
        .expect("dock6 check");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check --json: {e}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}
