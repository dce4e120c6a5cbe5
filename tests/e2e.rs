//! `dock6 run` against a real dockerd (the xtask lab): containers get IPv6
//! egress, published ports, isolation; dock6 survives Docker restarts and
//! a Docker that is not up yet. Traffic must flow, or be refused.

mod common;

use std::time::{Duration, Instant};

use common::agent::Agent;
use common::docker_lab::{DockerLab, lab};
use common::lab::sock;
use common::web::{
    HOST, PROMPTLY, address_of, dock6_holds_tcp_port, ipv6_network, one_at_a_time, reached_by_dnat,
    refused, run_server, run_server_with, try_internet_sees_from,
};

/// Whether dock6's `dnat_any` map holds TCP port `port`.
fn dnat_any_maps(lab: &DockerLab, port: u16) -> bool {
    dock6_holds_tcp_port(lab, "map", "dnat_any", port)
}

#[test]
fn nat66_egress_published_ports_and_their_removal() {
    let Some(_serial) = one_at_a_time("nat66_egress_published_ports_and_their_removal") else {
        return;
    };
    let lab = DockerLab::up("e2enat", lab::Options::default());
    ipv6_network(&lab, "n1", "fd00:1::/64");
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    let (upstream, host) = (lab.upstream_ns(), lab.host_ns());

    // Egress: the upstream sees the host's address. Docker (≥ 26) turned
    // forwarding on when it made n1, which purged the host's default route
    // learnt from router advertisements (accept_ra was 1); dock6 set
    // accept_ra to 2 and solicited a fresh advertisement, and plans NAT66
    // once the route is back: a moment after its first pass.
    let mut seen = String::new();
    let started = std::time::Instant::now();
    while seen != HOST && started.elapsed() < PROMPTLY {
        seen = try_internet_sees_from(&lab, "n1").unwrap_or_else(|e| e);
    }
    assert_eq!(
        seen,
        HOST,
        "a ULA container reaches the upstream as the host (NAT66)\n{}",
        agent.log()
    );

    // Published: the container sees the upstream's real address — so Docker's
    // userland proxy (on in this lab) is not what answers.
    run_server(&lab, "web", "n1", &["8080:80"]);
    let web = address_of(&lab, "web", "n1");
    reached_by_dnat(&upstream, sock(HOST, 8080), &agent);
    // Unpublished: port 9000 listens in the container (the control: it answers
    // from the host) and is refused from the upstream, on the host's address and
    // on the container's own, routed to the host by the upstream.
    upstream.ip("-6 route add fd00:1::/64 via 2001:db8:1::10");
    assert!(
        host.http_get(sock(&web, 9000), "/cgi-bin/ip").is_ok(),
        "control: port 9000 is up"
    );
    assert!(
        refused(&upstream, sock(HOST, 9000)),
        "unpublished port refused on the host's address"
    );
    assert!(
        refused(&upstream, sock(&web, 9000)),
        "unpublished port refused at the container's address"
    );
    // Hairpin from the host itself.
    assert!(
        host.http_get(sock(HOST, 8080), "/cgi-bin/ip").is_ok(),
        "the host reaches its own published port"
    );

    // docker rm -f closes the port; a new docker run -p opens one promptly.
    let runs: usize = std::env::var("DOCK6_E2E_LATENCY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut latencies = Vec::new();
    for i in 0..runs {
        lab.docker(&["rm", "-f", "web"]);
        let closed = Instant::now() + PROMPTLY;
        while upstream.http_get(sock(HOST, 8080), "/cgi-bin/ip").is_ok()
            || dnat_any_maps(&lab, 8080)
        {
            assert!(
                Instant::now() < closed,
                "port 8080 still open (or still in dnat_any) after docker rm -f\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if i == 0 {
            // A stale mapping would forward 8080 to whatever listens at the old
            // address next: an unpublished container there must stay unreachable.
            run_server_with(&lab, "ghost", "n1", &["--ip6", &web], &[]);
            host.http_get_within(sock(&web, 80), "/cgi-bin/ip", PROMPTLY)
                .expect("control: the unpublished container answers at the old address");
            assert!(
                refused(&upstream, sock(HOST, 8080)),
                "the old host port does not lead to the new container"
            );
            lab.docker(&["rm", "-f", "ghost"]);
        }
        let port = format!("{}:80", 8081 + i);
        run_server(&lab, "web", "n1", &[&port, "8080:80"]);
        latencies.push(reached_by_dnat(&upstream, sock(HOST, 8080), &agent));
    }
    latencies.sort();
    eprintln!(
        "figure: docker run -p returning → port answering over IPv6: median {:?} of {runs} (min {:?}, max {:?})",
        latencies[runs / 2],
        latencies[0],
        latencies[runs - 1]
    );
}

#[test]
fn networks_are_isolated_and_containers_of_one_network_talk() {
    let Some(_serial) = one_at_a_time("networks_are_isolated_and_containers_of_one_network_talk")
    else {
        return;
    };
    let lab = DockerLab::up("e2eiso", lab::Options::default());
    ipv6_network(&lab, "n1", "fd00:1::/64");
    ipv6_network(&lab, "n2", "fd00:2::/64");
    let agent = Agent::start(&lab, "");
    for (name, net) in [("a1", "n1"), ("a2", "n1"), ("b1", "n2")] {
        run_server(&lab, name, net, &[]);
    }
    agent.wait_for_log("reconciled", PROMPTLY);
    let (a2, b1) = (address_of(&lab, "a2", "n1"), address_of(&lab, "b1", "n2"));
    let fetch = |from: &str, to: &str| {
        lab.docker(&[
            "exec",
            from,
            "sh",
            "-c",
            &format!("nc -w 2 {to} 80 </dev/null >/dev/null 2>&1 && echo open || echo closed"),
        ])
    };
    let host = lab.host_ns();
    assert!(
        host.http_get(sock(&b1, 80), "/").is_ok()
            || host.http_get(sock(&b1, 80), "/cgi-bin/ip").is_ok(),
        "control: b1 is up"
    );
    assert_eq!(fetch("a1", &a2), "open", "containers of one network talk");
    assert_eq!(fetch("a1", &b1), "closed", "n1 → n2 is refused");
    assert_eq!(fetch("b1", &a2), "closed", "n2 → n1 is refused");
}

#[test]
fn dock6_follows_docker_through_a_restart() {
    let Some(_serial) = one_at_a_time("dock6_follows_docker_through_a_restart") else {
        return;
    };
    let mut lab = DockerLab::up("e2erst", lab::Options::default());
    ipv6_network(&lab, "n1", "fd00:1::/64");
    let mut agent = Agent::start(&lab, "");
    run_server(&lab, "before", "n1", &["8080:80"]);
    let upstream = lab.upstream_ns();
    reached_by_dnat(&upstream, sock(HOST, 8080), &agent);

    // Only log lines written after each step count: the first snapshot's lines are there already.
    let stopped = agent.mark();
    lab.lab.stop_docker().expect("stop dockerd");
    agent.wait_for_log_since(stopped, "reconnecting to Docker", PROMPTLY);
    assert!(
        agent.is_running(),
        "dock6 keeps running while Docker is down"
    );
    let options = lab.options.clone();
    let restarted = agent.mark();
    lab.lab.start_docker(&options).expect("start dockerd again");
    agent.wait_for_log_since(restarted, "Docker snapshot taken", PROMPTLY);
    run_server(&lab, "after", "n1", &["8081:80"]);
    reached_by_dnat(&upstream, sock(HOST, 8081), &agent);
    assert!(agent.stop(), "dock6 stops cleanly on SIGTERM");
}

#[test]
fn fifty_containers_started_at_once_are_all_reachable() {
    let Some(_serial) = one_at_a_time("fifty_containers_started_at_once_are_all_reachable") else {
        return;
    };
    const N: u16 = 50;
    let lab = DockerLab::up(
        "e2e50",
        lab::Options {
            userland_proxy: false,
            ..Default::default()
        },
    );
    // The lab's default IPv4 pools are /28s: too small for 50 containers.
    lab.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:1::/64",
        "--subnet",
        "203.0.113.128/25",
        "n1",
    ]);
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    let before = agent.transactions();
    std::thread::scope(|s| {
        for i in 0..N {
            let lab = &lab;
            s.spawn(move || {
                let port = format!("{}:80", 10000 + i);
                lab.docker(&[
                    "run",
                    "-d",
                    "--name",
                    &format!("c{i}"),
                    "--network",
                    "n1",
                    "-p",
                    &port,
                    lab::IMAGE,
                    "httpd",
                    "-f",
                    "-p",
                    "80",
                    "-h",
                    "/",
                ]);
            });
        }
    });
    let upstream = lab.upstream_ns();
    for i in 0..N {
        let to = sock(HOST, 10000 + i);
        let deadline = Instant::now() + PROMPTLY;
        while upstream.http_get(to, "/etc/passwd").is_err() {
            assert!(
                Instant::now() < deadline,
                "container c{i} not reachable on {to}\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let transactions = agent.transactions() - before;
    eprintln!("figure: {N} containers started at once: {transactions} kernel transactions");
    eprintln!(
        "figure: dock6 RSS with {N} containers: {} KiB",
        agent.rss_kib().unwrap_or(0)
    );
    // Each container changes the table twice: its ports refused at its
    // `create`, DNAT'ed at its start. A burst is coalesced when it costs
    // fewer transactions than those changes.
    assert!(
        transactions < 2 * u64::from(N),
        "bursts are coalesced: {transactions} transactions for {N} containers"
    );
}

#[test]
fn docker_down_at_start_keeps_the_table_then_programs_when_docker_comes() {
    let Some(_serial) =
        one_at_a_time("docker_down_at_start_keeps_the_table_then_programs_when_docker_comes")
    else {
        return;
    };
    let mut lab = DockerLab::network_only("e2edown", lab::Options::default());
    let host = lab.host_ns();
    // No table: dock6 installs the fail-closed one and waits for Docker.
    let mut agent = Agent::start(&lab, "");
    agent.wait_for_log("installed the fail-closed table", PROMPTLY);
    let table = host.exec_ok(&["nft", "list", "table", "inet", "dock6"]);
    assert!(table.contains("ct state new drop"), "{table}");
    assert!(agent.is_running(), "dock6 waits for Docker");
    agent.stop();

    // A table already there (from an earlier run) stays as it is while Docker is down.
    host.exec_ok(&[
        "nft",
        "add",
        "set",
        "inet",
        "dock6",
        "earlier_run",
        "{ type ipv6_addr; }",
    ]);
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("keeping the table already in the kernel", PROMPTLY);
    assert!(
        host.exec_ok(&["nft", "list", "table", "inet", "dock6"])
            .contains("earlier_run")
    );

    // Docker comes: dock6 programs at once.
    let options = lab.options.clone();
    lab.lab.start_docker(&options).expect("start dockerd");
    ipv6_network(&lab, "n1", "fd00:1::/64");
    run_server(&lab, "web", "n1", &["8080:80"]);
    reached_by_dnat(&lab.upstream_ns(), sock(HOST, 8080), &agent);
    assert!(
        !host
            .exec_ok(&["nft", "list", "table", "inet", "dock6"])
            .contains("earlier_run"),
        "replaced by the plan"
    );
}

#[test]
fn nft_flush_ruleset_is_undone_at_once() {
    let Some(_serial) = one_at_a_time("nft_flush_ruleset_is_undone_at_once") else {
        return;
    };
    let lab = DockerLab::up(
        "e2eflush",
        lab::Options {
            userland_proxy: false,
            ..Default::default()
        },
    );
    ipv6_network(&lab, "n1", "fd00:1::/64");
    let agent = Agent::start(&lab, "");
    run_server(&lab, "web", "n1", &["8080:80"]);
    let upstream = lab.upstream_ns();
    reached_by_dnat(&upstream, sock(HOST, 8080), &agent);

    let host = lab.host_ns();
    host.exec_ok(&["nft", "flush", "ruleset"]);
    let flushed = Instant::now();
    while !host.has_dock6_table() {
        assert!(
            flushed.elapsed() < PROMPTLY,
            "table not restored after nft flush ruleset\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let restored = flushed.elapsed();
    reached_by_dnat(&upstream, sock(HOST, 8080), &agent);
    eprintln!("figure: table inet dock6 back {restored:?} after nft flush ruleset");
    assert!(
        agent.log().contains("was changed by nft"),
        "{}",
        agent.log()
    );
}

#[test]
fn with_dockers_ip6tables_on_dock6_is_its_companion() {
    let Some(_serial) = one_at_a_time("with_dockers_ip6tables_on_dock6_is_its_companion") else {
        return;
    };
    let lab = DockerLab::up(
        "e2ecomp",
        lab::Options {
            ip6tables: true,
            ..Default::default()
        },
    );
    ipv6_network(&lab, "n1", "fd00:1::/64");
    let host = lab.host_ns();
    assert!(
        host.exec(&["nft", "list", "chain", "ip6", "nat", "DOCKER"])
            .status
            .success(),
        "control: Docker's ip6tables rules are in"
    );
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("runs as its companion", PROMPTLY);
    agent.wait_for_log("reconciled (companion", PROMPTLY);
    assert!(
        !host.has_dock6_table(),
        "dock6 does not fight Docker's rules"
    );
    assert_eq!(
        host.read_sysctl("net.ipv6.conf.eth0.accept_ra"),
        "2",
        "sysctls are still dock6's job"
    );
    // Docker's own NAT66 and DNAT serve the container.
    run_server(&lab, "web", "n1", &["8080:80"]);
    let upstream = lab.upstream_ns();
    let body = upstream
        .http_get_within(sock(HOST, 8080), "/cgi-bin/ip", PROMPTLY)
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    assert!(!body.is_empty(), "Docker publishes the port itself");
}
