//! `na_source = "target"`, with `dock6 run` (against the fake Docker API of
//! `tests/common/fake_docker.rs`) in the host of the standard lab: an
//! ndp-proxy network inside the uplink's on-link /64, one container. The
//! upstream counts, in its own input hook, the neighbour advertisements for
//! the container's address by their IPv6 source. With the default
//! (`link-local`, the control) the kernel's proxy answers from the host's
//! link-local address; with `target`, the upstream's neighbour entry for the
//! address is learned from advertisements whose source is that address, and
//! none from a link-local source arrives.

mod common;

use std::time::Duration;

use common::agent::Agent;
use common::fake_docker::{self, Ctr, FakeDocker};
use common::lab::{Lab, UPSTREAM_LINK, sock};

const SUBNET: &str = "2001:db8:1:0:1::/80";
const GATEWAY: &str = "2001:db8:1:0:1::1";
const CONTAINER: &str = "2001:db8:1:0:1::2";
/// The container's address as the 128-bit raw payload nft compares the ND
/// target (ICMPv6 bytes 8–23) with.
const CONTAINER_HEX: &str = "0x20010db8000100000001000000000002";
const WAIT: Duration = Duration::from_secs(30);

/// A table in the upstream counting advertisements for the container's
/// address: from the address itself, and from any link-local source.
fn capture(lab: &Lab) {
    lab.upstream
        .exec(&["nft", "delete", "table", "inet", "capture"]);
    let script = format!(
        "table inet capture {{
            chain input {{
                type filter hook input priority 0; policy accept;
                icmpv6 type nd-neighbor-advert ip6 saddr {CONTAINER} @th,64,128 {CONTAINER_HEX} counter comment \"from-target\"
                icmpv6 type nd-neighbor-advert ip6 saddr fe80::/10 @th,64,128 {CONTAINER_HEX} counter comment \"from-link-local\"
            }}
        }}"
    );
    let file = lab.write("capture.nft", &script);
    lab.upstream
        .exec_ok(&["nft", "-f", file.to_str().expect("path")]);
}

/// Packets counted by the capture rule with `comment`.
fn counted(lab: &Lab, comment: &str) -> u64 {
    let listing = lab
        .upstream
        .exec_ok(&["nft", "list", "chain", "inet", "capture", "input"]);
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\"")))
        .unwrap_or_else(|| panic!("no capture rule {comment}:\n{listing}"));
    line.split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {line}"))
}

fn wait_until(what: &str, agent: &Agent, done: impl FnMut() -> bool) {
    agent.wait_until(what, WAIT, done);
}

/// The upstream resolves and reaches the container (a TCP answer from it).
fn upstream_reaches_container(lab: &Lab) -> String {
    lab.upstream.ip("-6 neigh flush dev host0");
    lab.upstream
        .tcp(sock(CONTAINER, 80))
        .expect("the upstream reaches the proxied container")
}

fn upstream_neighbour(lab: &Lab) -> String {
    lab.upstream
        .exec_ok(&["ip", "-6", "neigh", "show", CONTAINER, "dev", "host0"])
        .trim()
        .to_string()
}

#[test]
fn na_source_target_answers_solicitations_from_the_proxied_address() {
    const TEST: &str = "na_source_target_answers_solicitations_from_the_proxied_address";
    if !common::require_root(TEST) {
        return;
    }
    let mut lab = Lab::new("nas");
    lab.bridge(fake_docker::BRIDGE, &format!("{GATEWAY}/80"), None, None);
    lab.container(
        "c",
        fake_docker::BRIDGE,
        &format!("{CONTAINER}/80"),
        GATEWAY,
        None,
    );
    let _web = lab.c("c").tcp_echo_peer(80);
    let ctr = Ctr {
        address: CONTAINER.into(),
        ..Ctr::new(1, 8080)
    };
    let fake = FakeDocker::start_on(lab.dir(), SUBNET, GATEWAY, vec![ctr]);
    let host_mac = lab
        .host
        .exec_ok(&["cat", "/sys/class/net/eth0/address"])
        .trim()
        .to_string();

    // The control: the kernel's proxy answers, from the link-local address.
    capture(&lab);
    let mut agent = Agent::start_in(&lab.host, &fake.host(), lab.dir(), "");
    wait_until("no proxy entry", &agent, || {
        lab.host
            .exec_ok(&["ip", "-6", "neigh", "show", "proxy"])
            .contains(CONTAINER)
    });
    assert_eq!(upstream_reaches_container(&lab), UPSTREAM_LINK);
    assert!(
        upstream_neighbour(&lab).contains(&host_mac),
        "the upstream's entry points at the host: {}",
        upstream_neighbour(&lab)
    );
    assert!(
        counted(&lab, "from-link-local") >= 1,
        "control: link-local advertisements for the container arrive by default"
    );
    assert_eq!(counted(&lab, "from-target"), 0);
    assert!(agent.stop(), "dock6 stops on SIGTERM");

    // na_source = target.
    capture(&lab);
    lab.upstream.ip("-6 neigh flush dev host0");
    let agent = Agent::start_in(
        &lab.host,
        &fake.host(),
        lab.dir(),
        "na_source = \"target\"\n",
    );
    wait_until("no nd_answers chain", &agent, || {
        lab.host
            .exec(&["nft", "list", "chain", "inet", "dock6", "nd_answers"])
            .status
            .success()
    });
    // The unsolicited advertisement dock6 sends when it starts answering.
    wait_until("no advertisement from the target", &agent, || {
        counted(&lab, "from-target") >= 1
    });
    let announced = counted(&lab, "from-target");
    assert_eq!(upstream_reaches_container(&lab), UPSTREAM_LINK);
    let entry = upstream_neighbour(&lab);
    assert!(
        entry.contains(&host_mac),
        "the upstream learned the host's link-layer address for the container: {entry}"
    );
    eprintln!(
        "na_source = target: advertisements for {CONTAINER} from the target: {} ({announced} unsolicited), from link-local: {}; upstream entry: {entry}",
        counted(&lab, "from-target"),
        counted(&lab, "from-link-local")
    );
    assert!(
        counted(&lab, "from-target") > announced,
        "the solicitation was answered from the container's address"
    );
    assert_eq!(
        counted(&lab, "from-link-local"),
        0,
        "no advertisement from a link-local source: the kernel's own answer was dropped; dock6's log:\n{}",
        agent.log()
    );
    assert!(
        agent.log().contains("na_source = target"),
        "the plan says who answers"
    );
}
