//! `dock6 check` against real setups: the lab's dockerd and host namespace,
//! each setup made wrong for one finding (the finding is there), then made
//! right again (it is gone). One lab for all of them; a second one with
//! Docker's ip6tables on; a fake Docker for the data a real Docker 20.10
//! refuses to create (overlapping subnets, an IPv6 network without a
//! subnet). Kernel support cannot be taken away in a namespace: that the
//! finding is absent here is shown, its presence is unit-tested
//! (src/check/findings.rs). Needs root.

mod common;

use serde_json::Value;

use common::docker_lab::{DockerLab, lab};
use common::fake_docker::{FakeDocker, network_json};

/// The findings with `id`, as (severity, finding).
fn found<'r>(report: &'r Value, id: &str) -> Vec<&'r Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

/// Asserts `id` is there with `severity`; returns the finding.
fn present(report: &Value, id: &str, severity: &str) -> Value {
    let all = found(report, id);
    let f = all
        .iter()
        .find(|f| f["severity"] == severity)
        .unwrap_or_else(|| panic!("no {severity} {id} in {report:#}"));
    assert!(f["why"].as_str().is_some_and(|w| !w.is_empty()));
    (*f).clone()
}

fn absent(report: &Value, id: &str) {
    let bad: Vec<&Value> = found(report, id)
        .into_iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(bad.is_empty(), "{id} should be gone: {report:#}");
}

/// The findings this test makes and unmakes.
const TESTED: &[&str] = &[
    "docker-unreachable",
    "docker-ip6tables",
    "ipv6-without-fixed-cidr-v6",
    "daemon-json-unreadable",
    "sixtofour-subnet",
    "onlink-subnet-not-ndp-proxy",
    "forward-policy-drop",
    "firewalld",
    "ufw",
    "forwarding-with-accept-ra-1",
    "uplink-not-found",
    "no-default-route",
    "kernel-nftables",
    "kernel-proxy-ndp",
    "overlapping-subnets",
    "network-without-ipv6-subnet",
    "interface-named-like-docker",
];

struct Checker<'l> {
    lab: &'l DockerLab,
    config: String,
    daemon_json: String,
}

impl Checker<'_> {
    fn run(&self, docker_host: &str, daemon_json: &str) -> (i32, Value) {
        let command = self.lab.in_host(env!("CARGO_BIN_EXE_dock6"));
        let args = [
            "--docker-host",
            docker_host,
            "--daemon-json",
            daemon_json,
            "--config",
            &self.config,
        ];
        common::check_with(command, &args)
    }

    /// Against the lab's Docker and its own daemon.json.
    fn now(&self) -> Value {
        self.run(&self.lab.host(), &self.daemon_json).1
    }

    fn with_config(&self, text: &str) -> Value {
        std::fs::write(&self.config, text).unwrap();
        let report = self.now();
        std::fs::write(&self.config, "").unwrap();
        report
    }

    fn host(&self, command: &str) {
        let argv: Vec<&str> = command.split_whitespace().collect();
        self.lab.host_ns().exec_ok(&argv);
    }
}

#[test]
fn each_finding_is_there_in_a_wrong_setup_and_gone_in_the_right_one() {
    if !common::require_root("each_finding_is_there_in_a_wrong_setup_and_gone_in_the_right_one") {
        return;
    }
    let docker = DockerLab::up("check", lab::Options::default());
    let dir = docker.lab.dir.clone();
    let c = Checker {
        lab: &docker,
        config: dir.join("check.toml").display().to_string(),
        daemon_json: dir.join("daemon.json").display().to_string(),
    };
    std::fs::write(&c.config, "").unwrap();
    // Docker 20.10 turned forwarding on and left accept_ra at 1: right is 2,
    // as `dock6 run` sets it (see forwarding-with-accept-ra-1 below).
    docker.host_ns().sysctl("net.ipv6.conf.eth0.accept_ra", "2");

    // The right setup: no error, none of the tested findings (but infos);
    // the rollout's gate (docs/fleet.md) lets it through.
    let (code, report) = c.run(&docker.host(), &c.daemon_json);
    assert_eq!(code, 0, "{report:#}");
    assert!(fleet_gate(&report.to_string()), "{report:#}");
    assert_eq!(report["errors"], 0);
    for id in TESTED {
        absent(&report, id);
    }
    present(&report, "docker", "info");
    present(&report, "uplink", "info");
    let human = docker
        .in_host(env!("CARGO_BIN_EXE_dock6"))
        .args([
            "check",
            "--docker-host",
            &docker.host(),
            "--daemon-json",
            &c.daemon_json,
        ])
        .output()
        .unwrap();
    eprintln!(
        "dock6 check (the lab, right):\n{}",
        String::from_utf8_lossy(&human.stdout)
    );

    // Docker unreachable.
    let nothing = format!("unix://{}", dir.join("nothing.sock").display());
    let (code, report) = c.run(&nothing, &c.daemon_json);
    assert_eq!(code, 1);
    present(&report, "docker-unreachable", "error");
    assert!(
        !fleet_gate(&report.to_string()),
        "no rollout where Docker does not answer"
    );

    // daemon.json: "ipv6": true without fixed-cidr-v6 is an error before Docker 27 only;
    // without "ip6tables": false, Docker 27+ turns its IPv6 firewall on; a broken file.
    let docker28 = lab::Options::default().docker.ipv6_by_default();
    let bad = dir.join("bad-daemon.json");
    std::fs::write(&bad, r#"{"ipv6": true, "ip6tables": false}"#).unwrap();
    let (code, report) = c.run(&docker.host(), bad.to_str().unwrap());
    match docker28 {
        false => {
            assert_eq!(code, 1);
            let f = present(&report, "ipv6-without-fixed-cidr-v6", "error");
            assert!(f["fix"].as_str().unwrap().contains("fixed-cidr-v6"));
        }
        true => absent(&report, "ipv6-without-fixed-cidr-v6"),
    }
    std::fs::write(&bad, r#"{"ipv6": true}"#).unwrap();
    let (_, report) = c.run(&docker.host(), bad.to_str().unwrap());
    match docker28 {
        true => {
            let f = present(&report, "docker-ip6tables", "warning");
            assert!(f["seen"].as_str().unwrap().contains("by default"), "{f:#}");
            // /info's FirewallBackend (API 1.49+).
            let f = present(&report, "docker-firewall-backend", "info");
            assert!(f["seen"].as_str().unwrap().contains("iptables"), "{f:#}");
        }
        false => absent(&report, "docker-ip6tables"),
    }
    std::fs::write(&bad, r#"{"ipv6": true,"#).unwrap();
    let (_, report) = c.run(&docker.host(), bad.to_str().unwrap());
    present(&report, "daemon-json-unreadable", "warning");
    let report = c.now();
    absent(&report, "ipv6-without-fixed-cidr-v6");
    absent(&report, "docker-ip6tables");

    // A 6to4 subnet.
    docker.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "2002:c000:204::/64",
        "sixtofour",
    ]);
    present(&c.now(), "sixtofour-subnet", "warning");
    docker.docker(&["network", "rm", "sixtofour"]);
    absent(&c.now(), "sixtofour-subnet");

    // A subnet inside the uplink's on-link /64, labelled routed; then automatic (ndp-proxy).
    let onlink = [
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "2001:db8:1:0:1::/80",
    ];
    docker.docker(&[&onlink[..], &["--label", "dock6.mode=routed", "onlink"]].concat());
    let f = present(&c.now(), "onlink-subnet-not-ndp-proxy", "warning");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("[networks.onlink] mode = \"ndp-proxy\"")
    );
    docker.docker(&["network", "rm", "onlink"]);
    docker.docker(&[&onlink[..], &["onlink"]].concat());
    absent(&c.now(), "onlink-subnet-not-ndp-proxy");
    docker.docker(&["network", "rm", "onlink"]);

    // An interface named as Docker names bridges that Docker does not list:
    // taken for Docker's. The operator's br-lan is not, and check says so.
    c.host("ip link add br-0123456789ab type bridge");
    c.host("ip link add br-lan type bridge");
    let report = c.now();
    let f = present(&report, "interface-named-like-docker", "warning");
    assert!(
        f["seen"].as_str().unwrap().contains("br-0123456789ab"),
        "{f:#}"
    );
    let f = present(&report, "operator-bridges", "info");
    assert!(f["seen"].as_str().unwrap().contains("br-lan"), "{f:#}");
    c.host("ip link delete br-0123456789ab");
    absent(&c.now(), "interface-named-like-docker");
    c.host("ip link delete br-lan");

    // A forward chain with policy drop: the mark line is the fix; with it, no warning.
    c.host("nft add table inet mine");
    c.host(
        "nft add chain inet mine myforward { type filter hook forward priority 0 ; policy drop ; }",
    );
    let report = c.now();
    assert!(
        !fleet_gate(&report.to_string()),
        "no rollout past a warning"
    );
    let f = present(&report, "forward-policy-drop", "warning");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("meta mark & 0x04000000 == 0x04000000 accept"),
        "{f:#}"
    );
    c.host("nft insert rule inet mine myforward meta mark and 0x04000000 == 0x04000000 accept");
    let report = c.now();
    absent(&report, "forward-policy-drop");
    present(&report, "forward-policy-drop", "info");
    c.host("nft delete table inet mine");
    // iptables-nft's FORWARD with policy drop (as Docker 28 sets it): an ip6tables fix.
    c.host("nft add table ip6 filter");
    c.host(
        "nft add chain ip6 filter FORWARD { type filter hook forward priority 0 ; policy drop ; }",
    );
    let f = present(&c.now(), "forward-policy-drop", "warning");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .starts_with("ip6tables -I FORWARD -m mark --mark 0x4000000/0x4000000 -j ACCEPT"),
        "{f:#}"
    );
    c.host("nft delete table ip6 filter");
    absent(&c.now(), "forward-policy-drop");

    // firewalld and ufw, by what they leave in nftables.
    c.host("nft add table inet firewalld");
    present(&c.now(), "firewalld", "warning");
    c.host("nft delete table inet firewalld");
    absent(&c.now(), "firewalld");
    c.host("nft add table ip6 filter");
    c.host("nft add chain ip6 filter ufw6-before-forward");
    present(&c.now(), "ufw", "warning");
    c.host("nft delete table ip6 filter");
    absent(&c.now(), "ufw");

    // Forwarding on with accept_ra=1 on the uplink.
    let host = docker.host_ns();
    let (forwarding, accept_ra) = (
        host.read_sysctl("net.ipv6.conf.all.forwarding"),
        host.read_sysctl("net.ipv6.conf.eth0.accept_ra"),
    );
    host.sysctl("net.ipv6.conf.all.forwarding", "1");
    host.sysctl("net.ipv6.conf.eth0.accept_ra", "1");
    let report = c.now();
    assert!(
        fleet_gate(&report.to_string()),
        "the allowed warning: {report:#}"
    );
    let f = present(&report, "forwarding-with-accept-ra-1", "warning");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("net.ipv6.conf.eth0.accept_ra=2")
    );
    host.sysctl("net.ipv6.conf.eth0.accept_ra", "2");
    absent(&c.now(), "forwarding-with-accept-ra-1");
    host.sysctl("net.ipv6.conf.eth0.accept_ra", &accept_ra);
    host.sysctl("net.ipv6.conf.all.forwarding", &forwarding);

    // The uplink: a configured one that does not exist; no default route.
    present(
        &c.with_config("uplink = \"nope0\"\n"),
        "uplink-not-found",
        "error",
    );
    absent(&c.with_config("uplink = \"eth0\"\n"), "uplink-not-found");
    let default = host.exec_ok(&["ip", "-6", "route", "show", "default"]);
    let default = default
        .lines()
        .next()
        .expect("the lab has a default route")
        .to_string();
    c.host("ip -6 route del default");
    let (code, report) = c.run(&docker.host(), &c.daemon_json);
    assert_eq!(code, 1);
    present(&report, "no-default-route", "error");
    let mut add = vec!["ip", "-6", "route", "add"];
    add.extend(default.split_whitespace());
    host.exec_ok(&add);
    absent(&c.now(), "no-default-route");

    // What a real Docker 20.10 refuses to make: a fake Docker serves it.
    let fake = FakeDocker::start(&dir, vec![]);
    let id = |n: u8| format!("{n:02x}").repeat(32);
    fake.set_networks(vec![
        network_json(&id(0xa1), "wide", &["fd00:70::/48"]),
        network_json(&id(0xa2), "narrow", &["fd00:70:0:1::/64"]),
        network_json(&id(0xa3), "nosubnet", &[]),
    ]);
    let (_, report) = c.run(&fake.host(), &c.daemon_json);
    let f = present(&report, "overlapping-subnets", "error");
    assert!(f["seen"].as_str().unwrap().contains("narrow"), "{f:#}");
    present(&report, "network-without-ipv6-subnet", "warning");
    fake.set_networks(vec![
        network_json(&id(0xa1), "wide", &["fd00:70::/48"]),
        network_json(&id(0xa2), "narrow", &["fd00:71::/64"]),
    ]);
    let (_, report) = c.run(&fake.host(), &c.daemon_json);
    absent(&report, "overlapping-subnets");
    absent(&report, "network-without-ipv6-subnet");
    drop(fake);
    drop(docker);

    // Docker's own IPv6 firewall on: companion mode (the first lab had it off).
    let options = lab::Options {
        ip6tables: true,
        ..lab::Options::default()
    };
    let companion = DockerLab::up("checkfw", options);
    let daemon_json = companion.lab.dir.join("daemon.json");
    let (_, report) = common::check_with(
        companion.in_host(env!("CARGO_BIN_EXE_dock6")),
        &[
            "--docker-host",
            &companion.host(),
            "--daemon-json",
            daemon_json.to_str().unwrap(),
        ],
    );
    let f = present(&report, "docker-ip6tables", "warning");
    assert!(
        f["seen"]
            .as_str()
            .unwrap()
            .contains("jumps to chain DOCKER"),
        "{f:#}"
    );
    assert!(f["fix"].as_str().unwrap().contains("\"ip6tables\": false"));
}

/// Docker 26's recorded answers of a single-node swarm's manager: `/info`,
/// `/networks`, `/services`.
fn recorded(name: &str) -> Value {
    let path = format!("{}/tests/data/swarm/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The recorded networks with `docker_gwbridge` as Docker makes it: IPv4 only.
fn networks_with_an_ipv4_gwbridge() -> Vec<Value> {
    let mut networks: Vec<Value> = serde_json::from_value(recorded("networks-26.json")).unwrap();
    let gwbridge = networks
        .iter_mut()
        .find(|n| n["Name"] == "docker_gwbridge")
        .expect("the recording has docker_gwbridge");
    gwbridge["EnableIPv6"] = Value::Bool(false);
    gwbridge["IPAM"]["Config"] =
        serde_json::json!([{"Subnet": "203.0.113.80/28", "Gateway": "203.0.113.81"}]);
    networks
}

#[test]
fn a_swarm_node_from_recorded_answers_manager_and_worker() {
    let dir = std::env::temp_dir().join(format!("dock6-check-swarm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = FakeDocker::start(&dir, vec![]);
    let check = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dock6"));
        command.env_remove("DOCKER_HOST");
        let config = dir.join("empty.toml");
        std::fs::write(&config, "").unwrap();
        let daemon_json = dir.join("daemon.json");
        common::check_with(
            command,
            &[
                "--docker-host",
                &fake.host(),
                "--config",
                config.to_str().unwrap(),
                "--daemon-json",
                daemon_json.to_str().unwrap(),
            ],
        )
        .1
    };

    // Control: outside a swarm (a bare /info), no swarm findings.
    fake.set_networks(networks_with_an_ipv4_gwbridge());
    let report = check();
    assert!(
        found(&report, "swarm-gwbridge-without-ipv6").is_empty(),
        "{report:#}"
    );
    assert!(
        found(&report, "swarm-ingress-ports").is_empty(),
        "{report:#}"
    );

    // The manager, its gwbridge IPv4-only, services on the routing mesh.
    fake.set_info(recorded("info-manager-26.json"));
    fake.set_services(200, recorded("services-26.json"));
    let report = check();
    let f = present(&report, "swarm-gwbridge-without-ipv6", "warning");
    let fix = f["fix"].as_str().unwrap();
    assert!(fix.starts_with("docker swarm leave --force"), "{fix}");
    assert!(
        fix.contains("\ndocker network rm docker_gwbridge\n"),
        "{fix}"
    );
    let f = present(&report, "swarm-ingress-ports", "info");
    let seen = f["seen"].as_str().unwrap();
    assert!(
        seen.contains("mesh (8090:80/tcp, 8443:443/tcp, 5300:53/udp)"),
        "{seen}"
    );
    assert!(seen.contains("udp (9090:90/tcp)"), "{seen}");
    assert!(
        !seen.contains("web"),
        "web publishes in host mode only: {seen}"
    );

    // The same with the recorded gwbridge, made with IPv6: no warning.
    fake.set_networks(serde_json::from_value(recorded("networks-26.json")).unwrap());
    absent(&check(), "swarm-gwbridge-without-ipv6");

    // A worker: /services answers 503, as Docker's workers do; no task of a
    // mesh service here, so no mesh finding; the steps leave and join.
    fake.set_networks(networks_with_an_ipv4_gwbridge());
    let mut info = recorded("info-manager-26.json");
    info["Swarm"]["ControlAvailable"] = Value::Bool(false);
    fake.set_info(info);
    fake.set_services(
        503,
        serde_json::json!({"message": "This node is not a swarm manager."}),
    );
    let report = check();
    let f = present(&report, "swarm-gwbridge-without-ipv6", "warning");
    assert!(f["seen"].as_str().unwrap().contains("worker"), "{f:#}");
    let fix = f["fix"].as_str().unwrap();
    assert!(fix.contains("\ndocker swarm leave\n"), "{fix}");
    assert!(fix.contains("docker swarm join --token"), "{fix}");
    assert!(
        found(&report, "swarm-ingress-ports").is_empty(),
        "{report:#}"
    );
    drop(fake);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One finding's fix, run line by line in the lab as an operator would
/// (comments after `#` dropped); `extra` is added to the lines that start
/// with its key (the lab's swarm needs its advertise address).
fn run_fix(docker: &DockerLab, fix: &str, extra: &[(&str, &[&str])]) {
    for line in fix.lines() {
        let command = line.split('#').next().unwrap().trim();
        let mut argv: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(argv.first(), Some(&"docker"), "{line}");
        for (start, more) in extra {
            if command.starts_with(start) {
                argv.extend_from_slice(more);
            }
        }
        docker.docker(&argv[1..]);
    }
}

/// Docker makes docker_gwbridge while it prepares a node's first task.
fn wait_for_gwbridge(docker: &DockerLab) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !docker
        .lab
        .docker()
        .args(["network", "inspect", "docker_gwbridge"])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "Docker made no docker_gwbridge within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_swarm_node_is_told_how_to_give_its_tasks_ipv6() {
    if !common::require_root("a_swarm_node_is_told_how_to_give_its_tasks_ipv6") {
        return;
    }
    let docker = DockerLab::up("chkswarm", lab::Options::default());
    let dir = docker.lab.dir.clone();
    let config = dir.join("check.toml");
    std::fs::write(&config, "").unwrap();
    let daemon_json = dir.join("daemon.json");
    let check = || {
        common::check_with(
            docker.in_host(env!("CARGO_BIN_EXE_dock6")),
            &[
                "--docker-host",
                &docker.host(),
                "--daemon-json",
                daemon_json.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ],
        )
        .1
    };
    let advertise: &[&str] = &["--advertise-addr", lab::HOST_V4];
    // Control: the lab's Docker is in no swarm.
    let report = check();
    assert!(
        found(&report, "swarm-gwbridge-without-ipv6").is_empty(),
        "{report:#}"
    );

    // A single-node swarm: no docker_gwbridge until the first task needs it.
    docker.docker(&[&["swarm", "init"][..], advertise].concat());
    let f = present(&check(), "swarm-gwbridge-without-ipv6", "warning");
    assert!(
        f["seen"]
            .as_str()
            .unwrap()
            .contains("no docker_gwbridge yet"),
        "{f:#}"
    );
    // A service on the routing mesh: Docker makes docker_gwbridge, IPv4-only.
    docker.docker(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "mesh",
        "-p",
        "8080:80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_for_gwbridge(&docker);
    let report = check();
    let gwbridge = present(&report, "swarm-gwbridge-without-ipv6", "warning");
    assert!(
        gwbridge["seen"].as_str().unwrap().contains("has no IPv6"),
        "{gwbridge:#}"
    );
    let f = present(&report, "swarm-ingress-ports", "info");
    assert!(
        f["seen"].as_str().unwrap().contains("mesh (8080:80/tcp)"),
        "{f:#}"
    );

    // Its steps, as given: the swarm (single node) ends, the bridge is remade
    // with IPv6, the swarm starts again.
    run_fix(
        &docker,
        gwbridge["fix"].as_str().unwrap(),
        &[("docker swarm init", advertise)],
    );
    let inspect = docker.docker(&[
        "network",
        "inspect",
        "docker_gwbridge",
        "--format",
        "{{.EnableIPv6}}",
    ]);
    assert_eq!(inspect, "true");
    let report = check();
    absent(&report, "swarm-gwbridge-without-ipv6");
    assert!(
        found(&report, "swarm-ingress-ports").is_empty(),
        "the old swarm's services are gone: {report:#}"
    );

    // The same service again, then moved to host mode by the info's own command.
    docker.docker(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        "mesh",
        "-p",
        "8080:80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let f = present(&check(), "swarm-ingress-ports", "info");
    run_fix(&docker, f["fix"].as_str().unwrap(), &[]);
    let modes = docker.docker(&[
        "service",
        "inspect",
        "mesh",
        "--format",
        "{{range .Endpoint.Ports}}{{.PublishMode}} {{end}}",
    ]);
    assert_eq!(modes, "host");
    let report = check();
    assert!(
        found(&report, "swarm-ingress-ports").is_empty(),
        "{report:#}"
    );
    absent(&report, "swarm-gwbridge-without-ipv6");
    docker.docker(&["swarm", "leave", "--force"]);
}

/// The rollout script of docs/fleet.md, as an operator copies it.
fn rollout_script() -> String {
    let doc = include_str!("../docs/fleet.md");
    let start = doc
        .find("```sh\n#!/bin/sh\n# dock6-rollout.sh")
        .expect("docs/fleet.md has the rollout script")
        + "```sh\n".len();
    let end = start + doc[start..].find("```").expect("the script's block ends");
    doc[start..end].to_string()
}

/// The rollout's gate, as the script defines it, on `report` (the text of
/// `dock6 check --json`): whether the script would go on to enable dock6.
fn fleet_gate(report: &str) -> bool {
    use std::io::Write as _;
    let script = rollout_script();
    let head = &script[..script
        .find("# 1. The package")
        .expect("the script's steps follow its definitions")];
    let mut sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{head}\ngate"))
        .args(["dock6-rollout.sh", "dock6.deb", "dock6.toml"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run sh");
    sh.stdin
        .take()
        .unwrap()
        .write_all(report.as_bytes())
        .unwrap();
    sh.wait().unwrap().success()
}

#[test]
fn the_rollout_gate_lets_ready_hosts_through_and_stops_the_others() {
    if !common::require_tools(
        "the_rollout_gate_lets_ready_hosts_through_and_stops_the_others",
        &["jq"],
    ) {
        return;
    }
    let parsed = std::process::Command::new("sh")
        .args(["-n", "-c", &rollout_script()])
        .output()
        .unwrap();
    assert!(parsed.status.success(), "sh -n: {parsed:?}");
    let report = |errors: usize, findings: &[(&str, &str)]| {
        let findings: Vec<Value> = findings
            .iter()
            .map(|(id, severity)| serde_json::json!({"id": id, "severity": severity, "seen": "", "why": "", "fix": null}))
            .collect();
        let warnings = findings
            .iter()
            .filter(|f| f["severity"] == "warning")
            .count();
        serde_json::json!({"errors": errors, "warnings": warnings, "findings": findings})
            .to_string()
    };
    assert!(fleet_gate(&report(
        0,
        &[("docker", "info"), ("swarm-ingress-ports", "info")]
    )));
    assert!(
        fleet_gate(&report(0, &[("forwarding-with-accept-ra-1", "warning")])),
        "allowed"
    );
    assert!(!fleet_gate(&report(1, &[("docker-unreachable", "error")])));
    assert!(!fleet_gate(&report(
        0,
        &[("forward-policy-drop", "warning")]
    )));
    assert!(
        !fleet_gate(&report(
            0,
            &[
                ("forwarding-with-accept-ra-1", "warning"),
                ("docker-ip6tables", "warning")
            ]
        )),
        "an allowed warning does not let another through"
    );
    assert!(
        !fleet_gate(""),
        "no report (a config dock6 refuses): no rollout"
    );
}
