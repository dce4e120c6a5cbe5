//! The agent itself (`reconcile::run_fed`: the whole loop, with Docker's
//! view handed to it as the bench does) in a lab host namespace: it reaches a
//! converged pass whose table carries the published port through to the
//! container, and puts its table back after `nft flush ruleset`. These run on
//! every kernel of `cargo xtask kernels` too. Needs root.

mod common;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::lab::{HOST_UPLINK, Lab, UPSTREAM_LINK, sock};
use dock6::reconcile::{DockerUpdate, RunOptions, run_fed};
use dock6::status::Status;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

const WEB: &str = "fd00:1::2";
/// An emulated kernel loads its netfilter modules at the first table: slow,
/// so the deadlines are generous (a pass takes milliseconds on a real one).
const DEADLINE: Duration = Duration::from_secs(120);

/// A NAT66 network with one container publishing 80/tcp on the host's 8080.
fn lab(tag: &str) -> Lab {
    let mut lab = Lab::new(tag);
    lab.bridge("br-ula", "fd00:1::1/64", None, None);
    lab.container("web", "br-ula", &format!("{WEB}/64"), "fd00:1::1", None);
    lab
}

fn docker_view(lab: &Lab) -> DockerUpdate {
    let snapshot = json!({
        "host": lab.host_facts(),
        "networks": [{"id": format!("{:0>64}", "ula"), "name": "ula", "bridge": "br-ula",
                      "enable_ipv6": true, "subnets": [{"subnet": "fd00:1::/64"}]}],
        "containers": [{"id": "w", "name": "web", "networks": {"ula": {"ipv6_address": WEB}},
                        "ports": {"80/tcp": [{"HostIp": "::", "HostPort": "8080"}]}}]
    });
    let snapshot = dock6::source::parse_snapshot(&snapshot.to_string(), Path::new("fed"))
        .unwrap_or_else(|e| panic!("{e}"));
    DockerUpdate::Full {
        networks: snapshot.networks,
        containers: snapshot.containers,
    }
}

/// `run_fed` on a runtime of its own, on a thread inside the lab's host
/// namespace; stopped (its future dropped) by `stop`.
struct FedAgent {
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl FedAgent {
    fn start(lab: &Lab) -> FedAgent {
        let dir = lab.dir().to_path_buf();
        // Never this machine's /etc/docker/daemon.json: the lab's (absent) one.
        let config = lab.write(
            "dock6.toml",
            &format!(
                "docker_daemon_json = \"{}\"\n",
                dir.join("daemon.json").display()
            ),
        );
        let socket = dir.join("status.sock");
        let options = RunOptions {
            config_path: Some(config),
            status_socket: Some(socket.clone()),
            ..Default::default()
        };
        let view = docker_view(lab);
        let (stop, stopped) = oneshot::channel();
        let thread = lab.host.spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let (updates, rx) = mpsc::channel(16);
                let (resync_tx, mut resync_rx) = mpsc::channel(1);
                // The view handed over is the whole truth: a resync gets it again.
                tokio::spawn(async move {
                    let _ = updates.send(view.clone()).await;
                    while resync_rx.recv().await.is_some() {
                        let _ = updates.send(view.clone()).await;
                    }
                });
                tokio::select! {
                    ended = run_fed(options, rx, resync_tx) => match ended {
                        Ok(()) => Err("the agent stopped by itself".to_string()),
                        Err(e) => Err(format!("the agent failed: {e}")),
                    },
                    _ = stopped => Ok(()),
                }
            })
        });
        FedAgent {
            socket,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The agent's status once a pass has converged with the container's
    /// mapping in the table; panics with the last status seen after `DEADLINE`.
    fn converged(&mut self, lab: &Lab) -> Status {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.assert_running();
            let status = dock6::status::query(&self.socket).map(|(_, s)| s);
            if let Ok(status) = &status
                && status
                    .last_pass
                    .as_ref()
                    .is_some_and(|p| p.result == "converged")
                && table(lab).contains(&format!("tcp . 8080 : {WEB} . 80"))
            {
                return status.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no converged pass with the mapping within {DEADLINE:?}; last status: {status:#?}\ntable:\n{}",
                table(lab)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Panics with the agent's own error if its thread has ended.
    fn assert_running(&mut self) {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            let ended = self.thread.take().map(|t| t.join());
            panic!("the agent ended: {ended:?}");
        }
    }
}

impl Drop for FedAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `nft list table inet dock6` in the lab host ("" when there is none).
fn table(lab: &Lab) -> String {
    let out = lab.host.exec(&["nft", "list", "table", "inet", "dock6"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_fed_agent_reaches_a_converged_pass_that_publishes_the_port() {
    if !common::require_root("a_fed_agent_reaches_a_converged_pass_that_publishes_the_port") {
        return;
    }
    let lab = lab("fed");
    let _web = lab.c("web").tcp_echo_peer(80);
    assert!(
        lab.upstream.tcp(sock(HOST_UPLINK, 8080)).is_err(),
        "control: the port is not published before the agent"
    );
    let mut agent = FedAgent::start(&lab);
    let status = agent.converged(&lab);
    assert_eq!(status.counters.failed_passes, 0, "{status:#?}");
    assert_eq!(
        lab.upstream
            .tcp(sock(HOST_UPLINK, 8080))
            .expect("the published port reaches the container"),
        UPSTREAM_LINK,
        "DNAT'ed with the client's address kept"
    );
}

#[test]
fn a_fed_agent_puts_its_table_back_after_nft_flush_ruleset() {
    if !common::require_root("a_fed_agent_puts_its_table_back_after_nft_flush_ruleset") {
        return;
    }
    let lab = lab("fedflush");
    let _web = lab.c("web").tcp_echo_peer(80);
    let mut agent = FedAgent::start(&lab);
    let before = agent.converged(&lab);
    let applied = table(&lab);
    lab.host.exec_ok(&["nft", "flush", "ruleset"]);
    // The agent may put the table back before it can be listed: its restore
    // counter tells that the flush did remove it.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let after = agent.converged(&lab);
        if after.counters.tamper_restores > before.counters.tamper_restores {
            assert_eq!(table(&lab), applied, "the same table is back");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no restore within {DEADLINE:?}: {:?} → {:?}\n{}",
            before.counters,
            after.counters,
            table(&lab)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        lab.upstream
            .tcp(sock(HOST_UPLINK, 8080))
            .expect("the published port works again"),
        UPSTREAM_LINK
    );
}
