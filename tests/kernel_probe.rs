//! `dock6 run` tries its table on the kernel before it changes anything:
//! in a throwaway network namespace when it may make one, else (without
//! CAP_SYS_ADMIN, as under the shipped unit) by a transaction the kernel
//! checks and aborts. Either way nothing of the probe stays. Needs root.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::Netns;

/// `dock6 run` in `ns` through `wrapper`, against a Docker that is not there
/// (the probe comes first; the agent then waits for Docker).
fn start(ns: &Netns, dir: &std::path::Path, wrapper: &[&str]) -> Child {
    let log = std::fs::File::create(dir.join("dock6.log")).expect("log file");
    let config = dir.join("dock6.toml");
    std::fs::write(
        &config,
        format!(
            "docker_daemon_json = \"{}\"\n",
            dir.join("daemon.json").display()
        ),
    )
    .expect("config");
    Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(wrapper)
        .arg(env!("CARGO_BIN_EXE_dock6"))
        .args(["run", "--docker-host", "unix:///nonexistent/docker.sock"])
        .arg("--config")
        .arg(&config)
        .arg("--status-socket")
        .arg(dir.join("status.sock"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .spawn()
        .expect("start dock6 run")
}

/// The agent's log once it holds `line`; panics with the log after a deadline.
fn wait_for(dir: &std::path::Path, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(dir.join("dock6.log")).unwrap_or_default();
        if log.contains(line) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {line:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn probe_once(tag: &str, wrapper: &[&str], expected: &str) {
    let ns = Netns::new(tag);
    let dir = std::env::temp_dir().join(format!("dock6-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut agent = start(&ns, &dir, wrapper);
    let log = wait_for(&dir, "takes dock6's table");
    // The fail-closed table comes after the probe: its presence shows the
    // agent went on, and the probe's own table is nowhere.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ns.has_dock6_table() {
        assert!(Instant::now() < deadline, "no fail-closed table:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let tables = ns.exec_ok(&["nft", "list", "tables"]);
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(log.contains(expected), "{expected:?} expected:\n{log}");
    assert_eq!(tables.trim(), "table inet dock6", "only dock6's own table");
}

#[test]
fn run_loads_its_table_in_a_throwaway_namespace_when_it_may() {
    if !common::require_root("run_loads_its_table_in_a_throwaway_namespace_when_it_may") {
        return;
    }
    probe_once(
        "kprobe-ns",
        &[],
        "takes dock6's table (loaded in a throwaway network namespace)",
    );
}

#[test]
fn run_without_cap_sys_admin_has_the_kernel_check_its_table_in_place() {
    if !common::require_root("run_without_cap_sys_admin_has_the_kernel_check_its_table_in_place")
        || !common::require_tools(
            "run_without_cap_sys_admin_has_the_kernel_check_its_table_in_place",
            &["setpriv"],
        )
    {
        return;
    }
    // As under the shipped unit: no CAP_SYS_ADMIN, so no namespace of its own.
    probe_once(
        "kprobe-here",
        &["setpriv", "--bounding-set=-sys_admin", "--"],
        "takes dock6's table (checked by the kernel in this namespace, then aborted)",
    );
}
