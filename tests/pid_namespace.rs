//! `dock6 run` in a pid namespace of its own (as in a container, or under
//! systemd's `PrivatePIDs=`) does not take its own nftables commits for
//! someone else's: no restore loop; while a real `nft flush ruleset` is
//! still undone. Against the xtask lab's dockerd; needs root.

mod common;

use std::time::{Duration, Instant};

use common::agent::Agent;
use common::docker_lab::{DockerLab, lab};

const PROMPTLY: Duration = Duration::from_secs(20);
/// How long the agent is watched for a restore loop.
const QUIET: Duration = Duration::from_secs(3);

fn restorations(agent: &Agent) -> usize {
    agent.log().matches("restoring it").count()
}

/// The namespaced pids of `pid` (`NSpid:` in /proc: one per pid namespace).
fn ns_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn in_its_own_pid_namespace_dock6_does_not_fight_itself() {
    if !common::require_root("in_its_own_pid_namespace_dock6_does_not_fight_itself") {
        return;
    }
    let lab = DockerLab::up("e2epidns", lab::Options::default());
    lab.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:1::/64",
        "n1",
    ]);
    // --mount-proc: a /proc of the new pid namespace, as a container has.
    let unshare = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child=SIGKILL",
    ];
    let mut agent = Agent::start_wrapped(&lab, "", &unshare);
    assert_eq!(
        ns_pids(agent.pid()).get(1),
        Some(&1),
        "control: dock6 is pid 1 of a pid namespace of its own"
    );
    agent.wait_for_log("reconciled", PROMPTLY);
    let host = lab.host_ns();
    host.exec_ok(&["nft", "list", "table", "inet", "dock6"]);

    let before = agent.transactions();
    std::thread::sleep(QUIET);
    assert_eq!(restorations(&agent), 0, "{}", agent.log());
    let quiet = agent.transactions() - before;
    assert!(
        quiet <= 1,
        "{quiet} transactions in {QUIET:?}:\n{}",
        agent.log()
    );

    // The control: someone else's commit is still undone, once.
    host.exec_ok(&["nft", "flush", "ruleset"]);
    let flushed = Instant::now();
    while !host
        .exec(&["nft", "list", "table", "inet", "dock6"])
        .status
        .success()
    {
        assert!(
            flushed.elapsed() < PROMPTLY,
            "table not restored after nft flush ruleset\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "figure: table back {:?} after nft flush ruleset",
        flushed.elapsed()
    );
    let after_flush = agent.transactions();
    std::thread::sleep(QUIET);
    assert_eq!(restorations(&agent), 1, "{}", agent.log());
    assert!(
        agent.transactions() - after_flush <= 1,
        "a restore loop after the flush:\n{}",
        agent.log()
    );
    assert!(agent.is_running(), "{}", agent.log());
    assert!(
        agent.stop(),
        "dock6 stops cleanly on SIGTERM\n{}",
        agent.log()
    );
}
