//! Who filters IPv6 for Docker's bridges, against a real dockerd (the xtask lab): Docker's
//! rules in the kernel alone do not make dock6 step aside; Docker itself must say its
//! ip6tables is on. Runs on Docker 20.10 and 28 (`"ip6tables": false` in the lab's
//! daemon.json). Needs root.

mod common;

use common::agent::Agent;
use common::docker_lab::{DockerLab, lab};
use common::lab::sock;
use common::nft;
use common::web::{
    HOST, PROMPTLY, UPSTREAM, address_of, answers, ipv6_network, one_at_a_time, refused, run_server,
};

/// What Docker's ip6tables leaves in the host namespace when it is turned off afterwards: its
/// `DOCKER` chains and the jumps to them from the chains Docker hooks (the shape iptables-nft
/// writes, as `docker_ip6_firewall` recognises it). They cover only `docker0`: nothing in
/// them filters a bridge Docker makes now.
const LEFT_BEHIND: &str = "table ip6 nat {\n\tchain DOCKER {\n\t}\n\
    \tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
    \t\tfib daddr type local counter jump DOCKER\n\t}\n}\n\
    table ip6 filter {\n\tchain DOCKER {\n\t}\n\
    \tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy accept;\n\
    \t\toifname \"docker0\" counter jump DOCKER\n\t}\n}\n";

#[test]
fn docker_rules_left_behind_with_ip6tables_off_leave_dock6_filtering() {
    let Some(_serial) = one_at_a_time("docker_rules_left_behind_with_ip6tables_off") else {
        return;
    };
    let lab = DockerLab::up("stale6", lab::Options::default());
    let host = lab.host_ns();
    host.run(|| nft(&["-f", "-"], Some(LEFT_BEHIND)));
    assert!(
        host.exec_ok(&["nft", "list", "chain", "ip6", "nat", "PREROUTING"])
            .contains("jump DOCKER"),
        "control: Docker-shaped rules are in the host namespace"
    );
    // A routed network (a global prefix the upstream routes to the host), made after
    // Docker's ip6tables was turned off: nothing of Docker's filters its bridge.
    ipv6_network(&lab, "rt", "2001:db8:3::/64");
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    run_server(&lab, "web", "rt", &["8080:80"]);
    let web = address_of(&lab, "web", "rt");
    let upstream = lab.upstream_ns();
    upstream.ip(&format!("-6 route add 2001:db8:3::/64 via {HOST}"));

    // Controls: the published port answers the upstream at the container's own address
    // (routed), and port 9000 listens (it answers from the host).
    answers(&upstream, sock(&web, 80), UPSTREAM, &agent);
    host.http_get_within(sock(&web, 9000), "/cgi-bin/ip", PROMPTLY)
        .expect("control: port 9000 answers from the host");
    assert_eq!(
        host.read_sysctl("net.ipv6.conf.all.forwarding"),
        "1",
        "control: the host forwards IPv6"
    );
    assert!(
        refused(&upstream, sock(&web, 9000)),
        "the unpublished port 9000 answers the upstream: nothing filters the new bridge\n{}",
        agent.log()
    );
    assert!(
        host.has_dock6_table(),
        "dock6 keeps its table beside rules Docker left behind\n{}",
        agent.log()
    );
    agent.wait_for_log("left behind", PROMPTLY);
    let log = agent.log();
    assert!(
        !log.contains("runs as its companion"),
        "dock6 took leftovers for Docker's firewall:\n{log}"
    );
    assert!(
        log.contains("ip6tables -t nat -F"),
        "the warning says how to remove them:\n{log}"
    );

    // `dock6 check` says the same.
    let daemon_json = lab.lab.dir.join("daemon.json");
    let (_, report) = common::check_with(
        lab.in_host(env!("CARGO_BIN_EXE_dock6")),
        &[
            "--docker-host",
            &lab.host(),
            "--daemon-json",
            daemon_json.to_str().expect("utf-8 path"),
        ],
    );
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"docker-ip6tables-left-behind"),
        "check names the rules left behind: {report:#}"
    );
    assert!(
        !ids.contains(&"docker-ip6tables"),
        "check does not call them Docker's firewall: {report:#}"
    );
}
