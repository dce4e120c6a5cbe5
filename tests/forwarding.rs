//! Forwarding that dock6 turns on is for Docker only: with
//! `all.forwarding` at 0 before dock6, traffic between two non-Docker
//! interfaces of the host stays unforwarded while containers are reached;
//! with forwarding already on, such traffic is left as it was.

mod common;

use std::time::Duration;

use common::agent::Agent;
use common::fake_docker::{self, Ctr, FakeDocker};
use common::lab::{HOST_UPLINK, Lab, UPSTREAM_LINK, sock};
use common::netns::Netns;

const PROMPTLY: Duration = Duration::from_secs(20);
use serde_json::json;

const PUB: &str = "2001:db8:2::2";
/// A machine on a second, non-Docker link of the host.
const LAN_PEER: &str = "2001:db8:9::2";

/// The lab with a routed Docker-like network (`pub`, port 80 exposed) and a
/// plain LAN namespace behind the host's `lan0`, both routed from upstream.
fn lab_with_lan(tag: &str) -> (Lab, Netns) {
    let mut lab = Lab::new(tag);
    lab.bridge("br-pub", "2001:db8:2::1/64", None, Some("2001:db8:2::/64"));
    lab.container("pub", "br-pub", &format!("{PUB}/64"), "2001:db8:2::1", None);
    let lan = add_lan(&lab, tag);
    (lab, lan)
}

/// A plain LAN namespace behind the host's `lan0`, routed from upstream.
fn add_lan(lab: &Lab, tag: &str) -> Netns {
    let lan = Netns::new(&format!("{tag}lan"));
    lab.host.ip(&format!(
        "link add lan0 type veth peer name eth0 netns {}",
        lan.name
    ));
    lab.host.ip("addr add 2001:db8:9::1/64 dev lan0 nodad");
    lab.host.ip("link set lan0 up");
    lan.ip(&format!("addr add {LAN_PEER}/64 dev eth0 nodad"));
    lan.ip("link set eth0 up");
    lan.ip("-6 route add default via 2001:db8:9::1 dev eth0");
    lab.upstream
        .ip(&format!("-6 route add 2001:db8:9::/64 via {HOST_UPLINK}"));
    lan
}

fn snapshot(lab: &Lab) -> serde_json::Value {
    json!({
        "host": lab.host_facts(),
        "networks": [{"id": format!("{:0>64}", "pub"), "name": "pub", "bridge": "br-pub",
                      "enable_ipv6": true, "subnets": [{"subnet": "2001:db8:2::/64"}]}],
        "containers": [{"id": "p", "name": "pub", "labels": {"dock6.expose": "80/tcp"},
                        "networks": {"pub": {"ipv6_address": PUB}}}]
    })
}

fn not_docker_chain(lab: &Lab) -> bool {
    lab.host
        .exec(&["nft", "list", "chain", "inet", "dock6", "not_docker"])
        .status
        .success()
}

#[test]
fn forwarding_dock6_turns_on_forwards_docker_traffic_only() {
    if !common::require_root("forwarding_dock6_turns_on_forwards_docker_traffic_only") {
        return;
    }
    let (lab, lan) = lab_with_lan("fwd0");
    assert_eq!(lab.host.read_sysctl("net.ipv6.conf.all.forwarding"), "0");
    let (_c, _l) = (lab.c("pub").tcp_echo_peer(80), lan.tcp_echo_peer(80));
    assert_eq!(
        lab.host
            .tcp(sock(LAN_PEER, 80))
            .expect("control: LAN peer up"),
        "2001:db8:9::1"
    );
    lab.apply(&snapshot(&lab), "");
    assert_eq!(lab.host.read_sysctl("net.ipv6.conf.all.forwarding"), "1");
    assert!(not_docker_chain(&lab), "the record that dock6 turned it on");
    assert_eq!(
        lab.upstream
            .tcp(sock(PUB, 80))
            .expect("a container is forwarded to"),
        UPSTREAM_LINK
    );
    assert!(
        lab.upstream.tcp(sock(LAN_PEER, 80)).is_err(),
        "non-Docker traffic is not forwarded"
    );
    // A second run sees forwarding at 1, but the table remembers.
    lab.apply(&snapshot(&lab), "");
    assert!(not_docker_chain(&lab), "still Docker-only after a re-run");
    assert!(lab.upstream.tcp(sock(LAN_PEER, 80)).is_err());
    let out = lab.dock6(&["cleanup"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("dock6 turned it on (it was 0)"),
        "cleanup says who turned forwarding on: {said}"
    );
}

/// The fact that dock6 turned forwarding on outlives its table: with dock6
/// stopped, `nft flush ruleset` removes the table, and the next start still
/// forwards Docker traffic only (it does not take forwarding for the
/// operator's). Control: the container is still reached.
#[test]
fn forwarding_dock6_turned_on_is_remembered_across_a_flush() {
    if !common::require_root("forwarding_dock6_turned_on_is_remembered_across_a_flush") {
        return;
    }
    let (lab, lan) = lab_with_lan("fwd2");
    assert_eq!(lab.host.read_sysctl("net.ipv6.conf.all.forwarding"), "0");
    let (_c, _l) = (lab.c("pub").tcp_echo_peer(80), lan.tcp_echo_peer(80));
    lab.apply(&snapshot(&lab), "");
    assert_eq!(lab.host.read_sysctl("net.ipv6.conf.all.forwarding"), "1");
    assert!(lab.upstream.tcp(sock(LAN_PEER, 80)).is_err());

    // dock6 stopped; someone flushes the ruleset; dock6 starts again.
    lab.host.exec_ok(&["nft", "flush", "ruleset"]);
    assert!(!lab.host.has_dock6_table());
    lab.apply(&snapshot(&lab), "");
    assert_eq!(
        lab.upstream
            .tcp(sock(PUB, 80))
            .expect("control: the container is forwarded to"),
        UPSTREAM_LINK
    );
    assert!(
        lab.upstream.tcp(sock(LAN_PEER, 80)).is_err(),
        "non-Docker traffic is forwarded after a flush while dock6 was stopped"
    );
    assert!(not_docker_chain(&lab), "still Docker-only after the flush");
    let out = lab.dock6(&["cleanup"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("dock6 turned it on (it was 0)"),
        "cleanup still knows who turned forwarding on: {said}"
    );
}

/// The same with the agent: `dock6 run` turns forwarding on and is
/// stopped, the ruleset is flushed, and the next `dock6 run` still forwards
/// Docker traffic only. Control: a container's traffic out (NAT66) flows.
#[test]
fn the_agent_remembers_it_turned_forwarding_on_across_a_flush_while_stopped() {
    if !common::require_root(
        "the_agent_remembers_it_turned_forwarding_on_across_a_flush_while_stopped",
    ) {
        return;
    }
    let mut lab = Lab::new("fwd3");
    let lan = add_lan(&lab, "fwd3");
    lab.bridge(
        fake_docker::BRIDGE,
        &format!("{}/64", fake_docker::GATEWAY),
        None,
        None,
    );
    let web = Ctr::new(1, 8080);
    let address = format!("{}/64", web.address);
    lab.container(
        "web1",
        fake_docker::BRIDGE,
        &address,
        fake_docker::GATEWAY,
        None,
    );
    let fake = FakeDocker::start(lab.dir(), vec![web]);
    let (_u, _l) = (lab.upstream.tcp_echo_peer(80), lan.tcp_echo_peer(80));
    assert_eq!(lab.host.read_sysctl("net.ipv6.conf.all.forwarding"), "0");

    let run_until_reconciled = || {
        let agent = Agent::start_in(&lab.host, &fake.host(), lab.dir(), "");
        agent.wait_for_log("reconciled", PROMPTLY);
        agent
    };
    let mut agent = run_until_reconciled();
    assert_eq!(lab.host.read_sysctl("net.ipv6.conf.all.forwarding"), "1");
    assert_eq!(
        lab.c("web1")
            .tcp(sock(UPSTREAM_LINK, 80))
            .expect("control: a container's traffic goes out"),
        HOST_UPLINK
    );
    assert!(lab.upstream.tcp(sock(LAN_PEER, 80)).is_err());
    assert!(agent.stop(), "dock6 stops cleanly");

    lab.host.exec_ok(&["nft", "flush", "ruleset"]);
    let mut agent = run_until_reconciled();
    assert_eq!(
        lab.c("web1")
            .tcp(sock(UPSTREAM_LINK, 80))
            .expect("control: a container's traffic still goes out"),
        HOST_UPLINK
    );
    assert!(
        lab.upstream.tcp(sock(LAN_PEER, 80)).is_err(),
        "non-Docker traffic is forwarded after a flush while the agent was stopped\n{}",
        agent.log()
    );
    assert!(not_docker_chain(&lab), "still Docker-only after the flush");
    assert!(agent.stop());
    lab.dock6(&["cleanup"]);
}

#[test]
fn forwarding_already_on_is_left_as_it_was() {
    if !common::require_root("forwarding_already_on_is_left_as_it_was") {
        return;
    }
    let (lab, lan) = lab_with_lan("fwd1");
    lab.host.sysctl("net.ipv6.conf.all.forwarding", "1");
    // A record left by a namespace that is gone and had the same inode
    // number says nothing about this one.
    let record = leftover_record_of_another_namespace(&lab.host);
    let (_c, _l) = (lab.c("pub").tcp_echo_peer(80), lan.tcp_echo_peer(80));
    lab.apply(&snapshot(&lab), "");
    assert!(!not_docker_chain(&lab));
    assert_eq!(
        lab.upstream
            .tcp(sock(LAN_PEER, 80))
            .expect("other traffic still forwarded"),
        UPSTREAM_LINK
    );
    assert_eq!(
        lab.upstream
            .tcp(sock(PUB, 80))
            .expect("and the container reached"),
        UPSTREAM_LINK
    );
    // A flush and a new start do not make it dock6's either.
    lab.host.exec_ok(&["nft", "flush", "ruleset"]);
    lab.apply(&snapshot(&lab), "");
    assert!(!not_docker_chain(&lab));
    assert_eq!(
        lab.upstream
            .tcp(sock(LAN_PEER, 80))
            .expect("other traffic still forwarded after a flush and a new start"),
        UPSTREAM_LINK
    );
    let out = lab.dock6(&["cleanup"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("it was already on before dock6"),
        "cleanup says forwarding was on before: {said}"
    );
    assert!(!record.exists(), "cleanup removed the leftover record");
}

/// Writes the file in which dock6 records having turned forwarding on in
/// `ns`, as a namespace that had the same inode number would have left it
/// (with that namespace's cookie, not this one's).
fn leftover_record_of_another_namespace(ns: &Netns) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt as _;
    let inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .expect("the namespace's inode")
        .ino();
    std::fs::create_dir_all("/run/dock6").expect("/run/dock6");
    let path = std::path::PathBuf::from(format!("/run/dock6/forwarding-netns-{inode}"));
    std::fs::write(&path, format!("{}\n", u64::MAX)).expect("write the leftover record");
    path
}
