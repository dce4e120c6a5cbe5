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

use std::net::Ipv6Addr;
use std::time::Duration;

use common::agent::Agent;
use common::fake_docker::{self, Ctr, FakeDocker};
use common::icmp6::{
    bound_device, icmp6_types_passed, neighbour_solicitation_packet, raw_icmp6_sockets_of,
    send_ipv6_packet,
};
use common::lab::{HOST_UPLINK, Lab, UPSTREAM_LINK, sock};
use common::probe::{Arrivals, Place};

const SUBNET: &str = "2001:db8:1:0:1::/80";
const GATEWAY: &str = "2001:db8:1:0:1::1";
const CONTAINER: &str = "2001:db8:1:0:1::2";
/// The container's address as the 128-bit raw payload nft compares the ND
/// target (ICMPv6 bytes 8–23) with.
const CONTAINER_HEX: &str = "0x20010db8000100000001000000000002";
/// A second container, proxied as well.
const SECOND: &str = "2001:db8:1:0:1::3";
const SECOND_HEX: &str = "0x20010db8000100000001000000000003";
/// An address on the uplink's link the operator proxies with an entry of
/// their own (not dock6's, which never answers for it).
const OPERATORS: &str = "2001:db8:1::77";
const OPERATORS_HEX: &str = "0x20010db8000100000000000000000077";
/// The upstream's end of the uplink.
const UPSTREAM_DEVICE: &str = "host0";
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

/// The lab of these tests (dropped whole, at the end of a test): the host with a bridge of two containers, the
/// fake Docker listing both, dock6 running with `na_source = "target"` and
/// answering for both. The host's kernel answers a proxied solicitation at
/// once (no random proxy delay), so answers leave in the order the
/// solicitations came.
struct Answering {
    lab: Lab,
    _fake: FakeDocker,
    agent: Agent,
    arrivals: Arrivals,
}

fn answering(tag: &str) -> Answering {
    let mut lab = Lab::new(tag);
    lab.bridge(fake_docker::BRIDGE, &format!("{GATEWAY}/80"), None, None);
    for (name, address) in [("c", CONTAINER), ("d", SECOND)] {
        lab.container(
            name,
            fake_docker::BRIDGE,
            &format!("{address}/80"),
            GATEWAY,
            None,
        );
    }
    lab.host.sysctl("net.ipv6.neigh.eth0.proxy_delay", "0");
    let containers = vec![
        Ctr {
            address: CONTAINER.into(),
            ..Ctr::new(1, 8080)
        },
        Ctr {
            address: SECOND.into(),
            ..Ctr::new(2, 8081)
        },
    ];
    let fake = FakeDocker::start_on(lab.dir(), SUBNET, GATEWAY, containers);
    let arrivals = Arrivals::new(Place::Netns(lab.upstream.name.clone()));
    let agent = Agent::start_in(
        &lab.host,
        &fake.host(),
        lab.dir(),
        "na_source = \"target\"\n",
    );
    for address in [CONTAINER, SECOND] {
        wait_until("no proxy entry", &agent, || {
            lab.host
                .exec_ok(&["ip", "-6", "neigh", "show", "proxy"])
                .contains(address)
        });
    }
    wait_until("no nd_answers chain", &agent, || {
        lab.host
            .exec(&["nft", "list", "chain", "inet", "dock6", "nd_answers"])
            .status
            .success()
    });
    Answering {
        lab,
        _fake: fake,
        agent,
        arrivals,
    }
}

fn upstream_link_local(lab: &Lab) -> Ipv6Addr {
    lab.upstream.link_local(UPSTREAM_DEVICE)
}

fn upstream_mac(lab: &Lab) -> [u8; 6] {
    mac_of(lab, UPSTREAM_DEVICE)
}

fn mac_of(lab: &Lab, device: &str) -> [u8; 6] {
    let text = lab
        .upstream
        .exec_ok(&["cat", &format!("/sys/class/net/{device}/address")]);
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    bytes.try_into().expect("a MAC address")
}

/// `ff02::1:ffXX:XXXX`, where a node solicits `address`.
fn solicited_node(address: &str) -> Ipv6Addr {
    let o = address.parse::<Ipv6Addr>().expect("address").octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

fn addr(text: &str) -> Ipv6Addr {
    text.parse().expect("address")
}

/// Sends from the upstream: a neighbour solicitation for `target`, from
/// `source` to `destination`.
fn solicit(
    lab: &Lab,
    source: Ipv6Addr,
    destination: Ipv6Addr,
    target: &str,
    lladdr: Option<[u8; 6]>,
) {
    let packet = neighbour_solicitation_packet(source, destination, addr(target), lladdr);
    lab.upstream
        .run(|| send_ipv6_packet(UPSTREAM_DEVICE, destination, &packet));
}

/// Duplicate address detection (RFC 4862 §5.4.2) solicits the tentative
/// address at its solicited-node group, from `::`; RFC 4861 §7.1.1 calls
/// a solicitation from `::` to any other address invalid. Answered, such a
/// solicitation makes every node on the link hear "in use" for a proxied
/// address from anyone who asks, at any address of the host.
#[test]
fn duplicate_address_detection_is_answered_only_at_the_solicited_node_address() {
    const TEST: &str = "duplicate_address_detection_is_answered_only_at_the_solicited_node_address";
    if !common::require_root(TEST) {
        return;
    }
    let setup = answering("nasdad");
    let (lab, agent, arrivals) = (&setup.lab, &setup.agent, &setup.arrivals);
    // dock6's answer to detection: from the target, to all nodes, no flag
    // (its unsolicited announcements carry O, its other answers S).
    arrivals.count(
        "dad_answers",
        &format!(
            "icmpv6 type nd-neighbor-advert ip6 saddr {CONTAINER} ip6 daddr ff02::1 @th,32,32 0 @th,64,128 {CONTAINER_HEX}"
        ),
    );
    // The marker: the answer to an ordinary solicitation for the second
    // container, sent after the invalid ones.
    arrivals.count(
        "marker",
        &format!("icmpv6 type nd-neighbor-advert ip6 saddr {SECOND} @th,64,128 {SECOND_HEX}"),
    );
    let unspecified = Ipv6Addr::UNSPECIFIED;
    for destination in [addr(HOST_UPLINK), addr("ff02::1")] {
        solicit(lab, unspecified, destination, CONTAINER, None);
    }
    let link_local = upstream_link_local(lab);
    solicit(
        lab,
        link_local,
        solicited_node(SECOND),
        SECOND,
        Some(upstream_mac(lab)),
    );
    assert!(
        arrivals.wait_for("marker", WAIT) >= 1,
        "the solicitation after the invalid ones was answered; dock6's log:\n{}",
        agent.log()
    );
    assert_eq!(
        arrivals.packets("dad_answers"),
        0,
        "no answer to detection solicitations sent to a unicast address or to all nodes"
    );

    // The control: sent where detection sends it, it is answered.
    solicit(lab, unspecified, solicited_node(CONTAINER), CONTAINER, None);
    assert!(
        arrivals.wait_for("dad_answers", WAIT) >= 1,
        "control: a detection solicitation at the solicited-node address is answered; dock6's log:\n{}",
        agent.log()
    );
}

/// The kernel's link-local answers dock6 drops are those for the addresses
/// dock6 answers for itself: an operator's own proxy entry on the uplink
/// keeps being answered by the kernel, from its link-local address.
#[test]
fn only_the_kernels_answers_for_dock6s_own_targets_are_dropped() {
    const TEST: &str = "only_the_kernels_answers_for_dock6s_own_targets_are_dropped";
    if !common::require_root(TEST) {
        return;
    }
    let setup = answering("nasown");
    let (lab, agent, arrivals) = (&setup.lab, &setup.agent, &setup.arrivals);
    lab.host
        .ip(&format!("-6 neigh add proxy {OPERATORS} dev eth0"));
    let from_link_local =
        |hex: &str| format!("icmpv6 type nd-neighbor-advert ip6 saddr fe80::/10 @th,64,128 {hex}");
    arrivals.count("operators", &from_link_local(OPERATORS_HEX));
    arrivals.count("container_link_local", &from_link_local(CONTAINER_HEX));
    arrivals.count(
        "container_target",
        // S set: an answer, not the announcement when dock6 starts.
        &format!(
            "icmpv6 type nd-neighbor-advert ip6 saddr {CONTAINER} @th,33,1 1 @th,64,128 {CONTAINER_HEX}"
        ),
    );
    let (link_local, mac) = (upstream_link_local(lab), upstream_mac(lab));
    // The container first: without proxy delay, the kernel's answer to it
    // would leave before its answer for the operator's address.
    solicit(
        lab,
        link_local,
        solicited_node(CONTAINER),
        CONTAINER,
        Some(mac),
    );
    solicit(
        lab,
        link_local,
        solicited_node(OPERATORS),
        OPERATORS,
        Some(mac),
    );
    assert!(
        arrivals.wait_for("operators", WAIT) >= 1,
        "the kernel's answer for the operator's own proxy entry leaves the uplink; table:\n{}",
        lab.host.exec_ok(&["nft", "list", "table", "inet", "dock6"])
    );
    assert!(
        arrivals.wait_for("container_target", WAIT) >= 1,
        "dock6 answered for the container, from its address; dock6's log:\n{}",
        agent.log()
    );
    assert_eq!(
        arrivals.packets("container_link_local"),
        0,
        "control: the kernel's link-local answer for dock6's own target is dropped"
    );
}

/// What the kernel has of the agent's receiving raw ICMPv6 sockets (those
/// that ask for each message's hop limit; the sockets dock6 sends its
/// answers on come and go): the types its filter passes, its device.
fn listening_sockets(agent: &Agent) -> Vec<(Vec<u8>, Option<String>)> {
    raw_icmp6_sockets_of(agent.pid())
        .into_iter()
        .filter(|s| {
            nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::Ipv6RecvHopLimit)
                .expect("IPV6_RECVHOPLIMIT")
        })
        .map(|s| (icmp6_types_passed(&s), bound_device(&s)))
        .collect()
}

/// dock6's socket for solicitations is woken by solicitations only, from
/// the uplink only: the kernel filters ICMPv6 types and interfaces before
/// dock6 sees anything (everything else the host receives — pings,
/// advertisements, all of the containers' bridges — never reaches it). Its
/// options are read from the running agent's socket, as the kernel has them.
#[test]
fn the_responders_socket_hears_only_solicitations_on_the_uplink() {
    const TEST: &str = "the_responders_socket_hears_only_solicitations_on_the_uplink";
    if !common::require_root(TEST) {
        return;
    }
    let setup = answering("nassock");
    let agent = &setup.agent;
    let listening = listening_sockets(agent);
    assert!(
        !listening.is_empty(),
        "dock6 holds a receiving raw ICMPv6 socket while it answers; log:\n{}",
        agent.log()
    );
    for (passed, device) in &listening {
        assert_eq!(
            passed,
            &[135],
            "only neighbour solicitations pass the filter"
        );
        assert_eq!(device.as_deref(), Some("eth0"), "bound to the uplink");
    }
}

/// When the uplink changes, the socket listens on the new one, and answers
/// solicitations that come in there.
#[test]
fn the_responder_follows_the_uplink() {
    const TEST: &str = "the_responder_follows_the_uplink";
    if !common::require_root(TEST) {
        return;
    }
    let setup = answering("nasmove");
    let (lab, agent, arrivals) = (&setup.lab, &setup.agent, &setup.arrivals);
    let on = |device: &str| {
        let sockets = listening_sockets(agent);
        !sockets.is_empty() && sockets.iter().all(|(_, d)| d.as_deref() == Some(device))
    };
    wait_until("not listening on eth0", agent, || on("eth0"));
    // The link moves to a new pair of interfaces: eth1 in the host, host1
    // in the upstream, with the same addresses and the default route.
    lab.host.ip(&format!(
        "link add eth1 type veth peer name host1 netns {}",
        lab.upstream.name
    ));
    lab.upstream.ip(&format!(
        "-6 addr del {UPSTREAM_LINK}/64 dev {UPSTREAM_DEVICE}"
    ));
    lab.upstream
        .ip(&format!("-6 addr add {UPSTREAM_LINK}/64 dev host1 nodad"));
    lab.upstream.ip("link set host1 up");
    lab.host
        .ip(&format!("-6 addr del {HOST_UPLINK}/64 dev eth0"));
    lab.host
        .ip(&format!("-6 addr add {HOST_UPLINK}/64 dev eth1 nodad"));
    lab.host.ip("link set eth1 up");
    lab.host.sysctl("net.ipv6.neigh.eth1.proxy_delay", "0");
    lab.host.ip(&format!(
        "-6 route replace default via {UPSTREAM_LINK} dev eth1"
    ));
    wait_until("no proxy entry on eth1", agent, || {
        lab.host
            .exec_ok(&["ip", "-6", "neigh", "show", "proxy", "dev", "eth1"])
            .contains(CONTAINER)
    });
    wait_until("not listening on eth1", agent, || on("eth1"));
    arrivals.count(
        "answered_on_host1",
        &format!(
            "iifname host1 icmpv6 type nd-neighbor-advert ip6 saddr {CONTAINER} @th,33,1 1 @th,64,128 {CONTAINER_HEX}"
        ),
    );
    let link_local = lab.upstream.link_local("host1");
    let packet = neighbour_solicitation_packet(
        link_local,
        solicited_node(CONTAINER),
        addr(CONTAINER),
        Some(mac_of(lab, "host1")),
    );
    lab.upstream
        .run(|| send_ipv6_packet("host1", solicited_node(CONTAINER), &packet));
    assert!(
        arrivals.wait_for("answered_on_host1", WAIT) >= 1,
        "a solicitation on the new uplink is answered, from the container's address; log:\n{}",
        agent.log()
    );
}
