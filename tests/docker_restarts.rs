//! dockerd stopped and started again and again while dock6 runs: each time,
//! a container started just after dockerd is back answers on its published
//! port through dock6's DNAT within 5 s of `docker run`, and `dock6 status`
//! answers within 1 s whenever it is asked (Docker away, Docker starting,
//! dock6 busy with the passes that follow). Some rounds keep dockerd away
//! for a while first: dock6 must be back with Docker at once, not after a
//! retry delay grown meanwhile. Both figures are requirements with room to
//! spare, not benchmarks; the slowest of each is printed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::agent::{Agent, status_socket};
use common::docker_lab::{DockerLab, lab};
use common::lab::sock;
use common::web::{HOST, PROMPTLY, UPSTREAM, ipv6_network, one_at_a_time, run_server_with};

const RESTARTS: u16 = 20;
/// How long dockerd stays away in round `round`: mostly not at all; every
/// fifth round long enough for a backoff to have grown to several seconds.
fn away_in(round: u16) -> Duration {
    match round % 5 {
        0 => Duration::from_secs(12),
        _ => Duration::ZERO,
    }
}
/// From `docker run` to the published port answering through dock6.
const ANSWERS_WITHIN: Duration = Duration::from_secs(5);
/// From asking `dock6 status` to its whole answer.
const STATUS_WITHIN: Duration = Duration::from_secs(1);

/// `dock6 status --json` against the agent's socket: how long it took, and
/// the Docker state it reported. Panics when it fails.
fn timed_status(socket: &Path, agent: &Agent) -> (Duration, String) {
    let asked = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_dock6"))
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .expect("run dock6 status");
    let took = asked.elapsed();
    assert!(
        out.status.success(),
        "dock6 status failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log()
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    (took, status["docker"]["state"].to_string())
}

/// The slowest of what was measured, and where.
#[derive(Default)]
struct Slowest {
    took: Duration,
    when: String,
}

impl Slowest {
    fn saw(&mut self, took: Duration, when: impl FnOnce() -> String) {
        if took > self.took {
            self.took = took;
            self.when = when();
        }
    }
}

#[test]
fn dock6_keeps_up_with_dockerd_restarting_twenty_times() {
    let Some(_serial) = one_at_a_time("dock6_keeps_up_with_dockerd_restarting_twenty_times") else {
        return;
    };
    let mut lab = DockerLab::up("restarts", lab::Options::default());
    ipv6_network(&lab, "v6", "fd00:77::/64");
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    let socket = status_socket(&lab.lab.dir);
    let upstream = lab.upstream_ns();
    let options = lab.options.clone();
    let (mut status, mut answer) = (Slowest::default(), Slowest::default());
    let mut status_answers = 0;
    let mut status_of = |round: u16, moment: &str| {
        let (took, docker) = timed_status(&socket, &agent);
        status_answers += 1;
        status.saw(took, || {
            format!("round {round}, {moment} (Docker {docker})")
        });
    };

    for round in 1..=RESTARTS {
        lab.lab.stop_docker().expect("stop dockerd");
        status_of(round, "dockerd stopped");
        let away = Instant::now() + away_in(round);
        while Instant::now() < away {
            status_of(round, "dockerd away");
            std::thread::sleep(Duration::from_millis(500));
        }
        lab.lab.start_docker(&options).expect("start dockerd");
        status_of(round, "dockerd started");
        let port = 8100 + round;
        let name = format!("web{round}");
        let started = Instant::now();
        // A short stop timeout: httpd as pid 1 ignores SIGTERM, and dockerd
        // stops it at the next restart.
        run_server_with(
            &lab,
            &name,
            "v6",
            &["--stop-timeout", "1"],
            &[&format!("{port}:80")],
        );
        // The container sees the upstream's own address: dock6's DNAT, not
        // Docker's userland proxy (which answers from the bridge's address).
        loop {
            let took = started.elapsed();
            match upstream.http_get(sock(HOST, port), "/cgi-bin/ip") {
                Ok(body) if body.contains(UPSTREAM) => {
                    answer.saw(took, || format!("round {round}"));
                    break;
                }
                _ => assert!(
                    took < PROMPTLY,
                    "round {round}: {name} never answered on port {port} through dock6:\n{}",
                    agent.log()
                ),
            }
            status_of(round, "container started");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!(
        "figure: slowest published port answering after docker run was issued: {:?} ({}); slowest of \
         {status_answers} dock6 status answers: {:?} ({})",
        answer.took, answer.when, status.took, status.when
    );
    assert!(
        answer.took <= ANSWERS_WITHIN,
        "a container started after dockerd came back answered on its port after {:?} ({}), \
         not within {ANSWERS_WITHIN:?}:\n{}",
        answer.took,
        answer.when,
        agent.log()
    );
    assert!(
        status.took <= STATUS_WITHIN,
        "dock6 status answered after {:?} ({}), not within {STATUS_WITHIN:?}:\n{}",
        status.took,
        status.when,
        agent.log()
    );
}
