//! dock6 as an operator uses it on a real Docker host (the lab's dockerd):
//! `snapshot`, `render --diff`, `apply` without `--once`; `dock6 run` with
//! `status` and metrics; the container image run by Docker. One lab for
//! the whole binary: each step builds on the one before, as an operator's
//! would.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Output;
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::docker_lab::{DockerLab, lab};
use common::web::{HOST, INTERNET, PROMPTLY, address_of, ipv6_network, one_at_a_time, run_server};

/// `dock6 ARGS` in the lab's host namespace.
fn dock6(lab: &DockerLab, args: &[&str]) -> Output {
    lab.in_host(env!("CARGO_BIN_EXE_dock6"))
        .args(args)
        .output()
        .expect("run dock6")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `render --diff` against the lab's Docker: (exit code, stdout).
fn render_diff(lab: &DockerLab) -> (i32, String) {
    let out = dock6(lab, &["render", "--diff", "--docker-host", &lab.host()]);
    let (stdout, stderr) = text(&out);
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "render --diff failed: {stderr}");
    (code, stdout)
}

#[test]
fn an_operator_on_a_live_docker_host() {
    let Some(_serial) = one_at_a_time("an_operator_on_a_live_docker_host") else {
        return;
    };
    let lab = DockerLab::up("ops", lab::Options::default());
    ipv6_network(&lab, "web", "fd00:61::/64");
    run_server(&lab, "web1", "web", &["8080:80"]);
    let web1 = address_of(&lab, "web1", "web");

    // `snapshot`: the live view as the JSON `render --snapshot` reads.
    let out = dock6(&lab, &["snapshot", "--docker-host", &lab.host()]);
    let (json, stderr) = text(&out);
    assert!(out.status.success(), "dock6 snapshot: {stderr}");
    let snapshot: serde_json::Value = serde_json::from_str(&json).expect("snapshot is JSON");
    assert_eq!(snapshot["host"]["default_route_interface"], "eth0");
    assert!(
        snapshot["networks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "web"),
        "{json}"
    );
    assert_eq!(
        snapshot["containers"][0]["networks"]["web"]["ipv6_address"], web1,
        "{json}"
    );
    let file = lab.lab.dir.join("live.json");
    std::fs::write(&file, &json).unwrap();
    let rendered = dock6(&lab, &["render", "--snapshot", file.to_str().unwrap()]);
    assert!(rendered.status.success(), "{}", text(&rendered).1);
    assert!(
        text(&rendered)
            .0
            .contains(&format!("tcp . 8080 : {web1} . 80"))
    );

    // `render --diff` with no table in the kernel: everything is to be added.
    let (code, diff) = render_diff(&lab);
    assert_eq!(code, 1, "{diff}");
    assert!(diff.contains("+table inet dock6 {"), "{diff}");
    assert!(!diff.lines().any(|l| l.starts_with("-t")), "{diff}");

    // `apply` without `--once`, then nothing is left to change.
    let applied = dock6(&lab, &["apply", "--snapshot", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied).1);
    let (code, diff) = render_diff(&lab);
    assert_eq!(code, 0, "{diff}");
    assert!(diff.contains("nothing to change"), "{diff}");

    // A new container: the diff names exactly its elements.
    run_server(&lab, "web2", "web", &["8081:80"]);
    let web2 = address_of(&lab, "web2", "web");
    let (code, diff) = render_diff(&lab);
    assert_eq!(code, 1, "{diff}");
    let added: Vec<&str> = diff.lines().filter(|l| l.starts_with("+\t")).collect();
    assert!(
        !added.is_empty() && added.iter().all(|l| l.contains(&web2)),
        "{diff}"
    );
    assert!(!diff.lines().any(|l| l.starts_with("-\t")), "{diff}");
    let cleaned = dock6(&lab, &["cleanup"]);
    assert!(cleaned.status.success(), "{}", text(&cleaned).1);

    status_of_a_running_agent(&lab, &web1);
    the_image_runs_against_the_labs_docker(&lab);
}

/// `dock6 status` while `dock6 run` runs, and after it stopped.
fn status_of_a_running_agent(lab: &DockerLab, web1: &str) {
    let socket = common::agent::status_socket(&lab.lab.dir);
    let config = "metrics_address = \"127.0.0.1:9586\"\n";
    let mut agent = Agent::start(lab, config);
    agent.wait_for_log("reconciled", PROMPTLY);
    let status = |args: &[&str]| {
        let mut all = vec!["status", "--socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        dock6(lab, &all)
    };

    let out = status(&[]);
    let (human, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    eprintln!("dock6 status:\n{human}");
    for line in [
        "docker:    connected since ",
        "mode:      owner (Docker's ip6tables is off)",
        "uplink:    eth0",
        ", converged (table: ",
        "nat66 (automatic), icc on",
        &format!("web {web1}"),
        "published: tcp *:8080 -> 80",
    ] {
        assert!(human.contains(line), "{line:?} not in:\n{human}");
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the status socket is root's only");

    // A foreign commit is undone and counted.
    lab.host_ns().exec_ok(&["nft", "flush", "ruleset"]);
    agent.wait_for_log("restoring it", PROMPTLY);
    let deadline = Instant::now() + PROMPTLY;
    let json = loop {
        let out = status(&["--json"]);
        assert!(out.status.success(), "{}", text(&out).1);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
        if json["counters"]["tamper_restores"] == 1 || Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(json["format"], 1);
    assert_eq!(json["counters"]["tamper_restores"], 1, "{json:#}");
    assert_eq!(json["docker"]["state"], "connected");
    assert_eq!(json["mode"], "owner");
    let web = json["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "web");
    assert_eq!(web.expect("network web")["mode"], "nat66", "{json:#}");
    let c = json["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web1");
    assert_eq!(
        c.expect("container web1")["addresses"]["web"],
        web1,
        "{json:#}"
    );
    assert!(
        json["counters"]["transactions"].as_u64().unwrap() >= 2,
        "{json:#}"
    );

    // The same counters as Prometheus metrics.
    let metrics = lab
        .host_ns()
        .http_get(common::lab::sock("127.0.0.1", 9586), "/metrics")
        .expect("GET /metrics");
    eprintln!("GET /metrics:\n{metrics}");
    for line in [
        "dock6_tamper_restores_total 1\n",
        "dock6_containers 2\n",
        "dock6_published_ports 2\n",
        "dock6_proxy_entries 0\n",
        "dock6_docker_up 1\n",
        "dock6_build_info{version=\"",
        "dock6_pass_duration_seconds_count ",
    ] {
        assert!(metrics.contains(line), "{line:?} not in:\n{metrics}");
    }
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{metrics}"))
    };
    assert!(value("dock6_passes_total{result=\"converged\"}") >= 2);
    assert_eq!(
        value("dock6_kernel_transactions_total"),
        json["counters"]["transactions"].as_u64().unwrap()
    );

    assert!(agent.stop());
    let out = status(&[]);
    assert_eq!(out.status.code(), Some(3), "no agent: exit 3");
    assert!(
        text(&out).1.contains("no agent is running"),
        "{}",
        text(&out).1
    );
}

/// `docker logs NAME` (stdout and stderr).
fn docker_logs(lab: &DockerLab, name: &str) -> String {
    let out = lab
        .lab
        .docker()
        .args(["logs", name])
        .output()
        .expect("docker logs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A container `nc`s the upstream's echo peer: what it saw as the source.
fn egress(lab: &DockerLab) -> Result<String, String> {
    let out = lab
        .lab
        .docker()
        .args(["run", "--rm", "--network", "web", lab::IMAGE])
        .args(["nc", "-w", "3", INTERNET, "7000"])
        .output()
        .expect("docker run");
    let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.success() && !seen.is_empty() {
        true => Ok(seen),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// The container image (`cargo xtask image` makes the same) run by the
/// lab's dockerd as the README says, gives a container IPv6 egress.
fn the_image_runs_against_the_labs_docker(lab: &DockerLab) {
    let cleaned = dock6(lab, &["cleanup"]);
    assert!(cleaned.status.success(), "{}", text(&cleaned).1);
    let _peer = lab.upstream_ns().tcp_echo_peer(7000);
    // The control: without dock6, the ULA container has no way out.
    assert!(egress(lab).is_err(), "no egress without dock6");

    let tarball = lab.lab.dir.join("dock6-image.tar");
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_dock6"));
    dock6_pack::image::image_tarball(binary, &lab.lab.dir, &tarball)
        .unwrap_or_else(|e| panic!("{e:#}"));
    dock6_pack::image::import(lab.lab.docker(), &tarball, "dock6:test")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let socket = format!("{}:/var/run/docker.sock", lab.lab.socket().display());
    lab.docker(&[
        "run",
        "-d",
        "--name",
        "dock6",
        "--network",
        "host",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "NET_RAW",
        "--security-opt",
        "systempaths=unconfined",
        "-v",
        &socket,
        "dock6:test",
    ]);
    let deadline = Instant::now() + PROMPTLY;
    while !docker_logs(lab, "dock6").contains("reconciled") {
        assert!(
            Instant::now() < deadline,
            "dock6 in its container did not reconcile:\n{}",
            docker_logs(lab, "dock6")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        egress(lab).unwrap_or_else(|e| panic!("{e}\n{}", docker_logs(lab, "dock6"))),
        HOST,
        "a ULA container reaches the upstream as the host, NAT66 by dock6 in its container"
    );
    let status = lab.docker(&["exec", "dock6", "/usr/sbin/dock6", "status"]);
    assert!(status.contains("docker:    connected"), "{status}");
    assert!(status.contains("mode:      owner"), "{status}");
    lab.docker(&["rm", "-f", "dock6"]);
}
