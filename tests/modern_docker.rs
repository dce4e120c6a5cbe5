//! What only Docker ≥ 27 has, against Debian sid's Docker 28.5 in the lab (unpacked, never
//! installed): its `gateway_mode_ipv6=routed` beside its own ip6tables, IPv6 on by
//! `default-network-opts` with subnets Docker allocates itself, and docker compose. These run
//! once, always on Docker 28; the rest of the Docker tests run on 20.10 and 28 (`cargo xtask
//! test`'s matrix).

mod common;

use common::agent::Agent;
use common::docker_lab::{DockerLab, lab};
use common::lab::sock;
use common::web::{
    HOST, INTERNET, PROMPTLY, UPSTREAM, WHO_AM_I_SERVER, address_of, answers, internet_sees_from,
    ipv6_network_with, one_at_a_time, reached_by_dnat, refused, run_server,
};

/// A Docker 28 lab; `ip6tables` as Docker 28 would have it by default (on) or off (dock6 owns
/// IPv6), and more daemon.json members.
fn docker28(tag: &str, ip6tables: bool, daemon_extra: &[&str]) -> DockerLab {
    DockerLab::up(
        tag,
        lab::Options {
            ip6tables,
            docker: lab::Docker::V28,
            daemon_extra: daemon_extra.iter().map(|m| m.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// dock6's proxy-NDP entries in the lab's host namespace, as `ip -6 neigh show proxy` prints them.
fn proxy_entries(lab: &DockerLab) -> String {
    lab.host_ns()
        .exec_ok(&["ip", "-6", "neigh", "show", "proxy"])
}

/// Polls `done` every 50 ms until it holds; panics with `what` and dock6's log after PROMPTLY.
fn wait_until(what: &str, agent: &Agent, done: impl FnMut() -> bool) {
    agent.wait_until(what, PROMPTLY, done);
}

#[test]
fn beside_dockers_ip6tables_a_routed_network_in_the_link_prefix_is_reachable_through_dock6s_proxy()
{
    let Some(_serial) = one_at_a_time("routed_network_in_the_link_prefix_beside_docker28") else {
        return;
    };
    let lab = docker28("m28comp", true, &[]);
    // Inside the uplink's on-link 2001:db8:1::/64: the upstream asks for these addresses by
    // neighbour solicitation, which nothing of Docker's answers.
    ipv6_network_with(
        &lab,
        "direct",
        "2001:db8:1:0:d0c::/80",
        &["-o", "com.docker.network.bridge.gateway_mode_ipv6=routed"],
    );
    run_server(&lab, "web", "direct", &["8080:80"]);
    let web = address_of(&lab, "web", "direct");
    let (upstream, host) = (lab.upstream_ns(), lab.host_ns());
    assert!(
        host.http_get(sock(&web, 80), "/cgi-bin/ip").is_ok(),
        "control: the container answers on the host"
    );
    assert!(
        refused(&upstream, sock(&web, 80)),
        "Docker alone: the upstream cannot reach a routed container inside its own link prefix"
    );

    let agent = Agent::start(&lab, "");
    agent.wait_for_log("runs as its companion", PROMPTLY);
    agent.wait_for_log("connected to Docker 28.", PROMPTLY);
    agent.wait_for_log("firewall backend iptables", PROMPTLY);
    // Reached at its own address, with the upstream's own source: routed, not NATed.
    answers(&upstream, sock(&web, 80), UPSTREAM, &agent);
    assert!(
        proxy_entries(&lab).contains(&web),
        "dock6's proxy entry for {web}:\n{}",
        proxy_entries(&lab)
    );
    assert!(
        refused(&upstream, sock(&web, 9000)),
        "Docker's routed mode opens only the published port (9000 listens, see WHO_AM_I_SERVER)"
    );
    assert!(
        host.http_get(sock(&web, 9000), "/cgi-bin/ip").is_ok(),
        "control: port 9000 answers on the host"
    );
    assert!(
        !host.has_dock6_table(),
        "as the companion, dock6 has no table of its own"
    );
    assert_eq!(host.read_sysctl("net.ipv6.conf.eth0.accept_ra"), "2");
}

#[test]
fn ipv6_from_default_network_opts_on_a_subnet_docker_allocates_gets_nat66_and_published_ports() {
    let Some(_serial) = one_at_a_time("default_network_opts_enable_ipv6") else {
        return;
    };
    let lab = docker28(
        "m28opts",
        false,
        &[r#""default-network-opts": {"bridge": {"com.docker.network.enable_ipv6": "true"}}"#],
    );
    // Neither --ipv6 nor a subnet: Docker 28 turns IPv6 on from default-network-opts and
    // allocates a ULA /64 itself.
    lab.docker(&["network", "create", "plain"]);
    let subnets = lab.docker(&[
        "network",
        "inspect",
        "plain",
        "-f",
        "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ]);
    assert!(
        subnets.starts_with("true ") && subnets.contains("fd"),
        "control: Docker enabled IPv6 and allocated a ULA subnet: {subnets}"
    );
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    let upstream = lab.upstream_ns();
    assert_eq!(
        internet_sees_from(&lab, "plain"),
        HOST,
        "egress from the allocated ULA subnet is NAT66"
    );
    run_server(&lab, "web", "plain", &["8080:80"]);
    reached_by_dnat(&upstream, sock(HOST, 8080), &agent);
    assert!(
        refused(&upstream, sock(HOST, 9000)),
        "the unpublished port stays closed"
    );
}

#[test]
fn a_compose_project_gets_egress_and_its_port_and_down_removes_what_dock6_made() {
    let Some(_serial) = one_at_a_time("compose_project") else {
        return;
    };
    let lab = docker28("m28comp2", false, &[]);
    let project = lab.lab.dir.join("compose.yaml");
    std::fs::write(&project, compose_file()).expect("write compose.yaml");
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-f", project.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        lab.docker(&all)
    };
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    compose(&["up", "-d", "--wait"]);
    let web = address_of(&lab, "shop-web-1", "shop_front");
    let bridge = format!(
        "br-{}",
        &lab.docker(&["network", "inspect", "shop_front", "-f", "{{.Id}}"])[..12]
    );
    let (upstream, host) = (lab.upstream_ns(), lab.host_ns());

    let _peer = upstream.tcp_echo_peer(7000);
    let seen = lab.docker(&["exec", "shop-web-1", "nc", INTERNET, "7000"]);
    assert_eq!(
        seen, web,
        "inside the link prefix the container egresses at its own address (ndp-proxy)"
    );
    reached_by_dnat(&upstream, sock(HOST, 8080), &agent);
    answers(&upstream, sock(&web, 80), UPSTREAM, &agent);
    assert!(
        proxy_entries(&lab).contains(&web),
        "a proxy entry for {web}"
    );
    let table = || host.exec_ok(&["nft", "list", "table", "inet", "dock6"]);
    assert!(
        table().contains(&bridge),
        "control: {bridge} is in dock6's table"
    );

    compose(&["down"]);
    wait_until("the proxy entry removed", &agent, || {
        !proxy_entries(&lab).contains(&web)
    });
    wait_until("every element of the project removed", &agent, || {
        let table = table();
        !table.contains(&bridge) && !table.contains(&web) && !table.contains("8080")
    });
    assert!(
        refused(&upstream, sock(HOST, 8080)),
        "the published port is closed again"
    );
}

/// A project `shop`: one web server on an IPv6 network inside the uplink's link prefix, its
/// port 80 published as 8080.
fn compose_file() -> String {
    let command = WHO_AM_I_SERVER.replace('$', "$$");
    format!(
        r#"name: shop
services:
  web:
    image: {image}
    command: ["sh", "-c", {command:?}]
    ports: ["8080:80"]
    networks: [front]
networks:
  front:
    enable_ipv6: true
    ipam:
      config:
        - subnet: 2001:db8:1:0:c0::/80
"#,
        image = lab::IMAGE,
    )
}
