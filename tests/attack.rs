//! An attacker on the uplink's link, against `dock6 run` and a real dockerd
//! (the xtask lab): the upstream namespace routes container subnets to the
//! host (2001:db8:1::10) and sends packets of its choosing; a container with
//! NET_ADMIN forges its source. Every refusal has a control in the same
//! test showing the same path open where it should be, so a broken route
//! cannot pass for a refusal. UDP and spoofed traffic is counted where it
//! arrives (nft counters in the receiving namespace); TCP by connecting.

mod common;

use std::time::Duration;

use common::agent::Agent;
use common::docker_lab::{DockerLab, lab};
use common::lab::sock;
use common::netns::Netns;
use common::probe::{Arrivals, Place, ping, send_udp};
use common::web::{
    HOST, INTERNET, PROMPTLY, UPSTREAM, address_of, answers, ipv6_network, ipv6_network_with,
    one_at_a_time, pid_of, reached_by_dnat, refused, run_server, run_server_with,
};

/// How long a control datagram may take to be counted.
const SETTLE: Duration = Duration::from_secs(5);

fn route_via_host(lab: &DockerLab, prefix: &str) {
    lab.upstream_ns()
        .ip(&format!("-6 route add {prefix} via {HOST}"));
}

fn upstream(lab: &DockerLab) -> Place {
    Place::Netns(lab.lab.upstream_ns.clone())
}

fn container(lab: &DockerLab, name: &str) -> Place {
    Place::Pid(pid_of(lab, name))
}

/// Control for every "refused through the host": the host forwards IPv6.
fn assert_forwarding(lab: &DockerLab) {
    assert_eq!(
        lab.host_ns().read_sysctl("net.ipv6.conf.all.forwarding"),
        "1",
        "control: the host forwards IPv6"
    );
}

#[test]
fn nat66_network_is_closed_to_the_link_but_its_published_ports() {
    let Some(_serial) =
        one_at_a_time("nat66_network_is_closed_to_the_link_but_its_published_ports")
    else {
        return;
    };
    let lab = DockerLab::up("atknat", lab::Options::default());
    ipv6_network(&lab, "n1", "fd00:1::/64");
    let agent = Agent::start(&lab, "");
    run_server(&lab, "web", "n1", &["8080:80", "5354:54/udp"]);
    let web = address_of(&lab, "web", "n1");
    let (up, host) = (lab.upstream_ns(), lab.host_ns());
    route_via_host(&lab, "fd00:1::/64");

    // Controls: the published port answers through the host's address (DNAT),
    // the unpublished listener answers from the host.
    reached_by_dnat(&up, sock(HOST, 8080), &agent);
    host.http_get_within(sock(&web, 9000), "/cgi-bin/ip", PROMPTLY)
        .expect("control: port 9000 answers from the host");
    assert_forwarding(&lab);

    assert!(
        refused(&up, sock(&web, 80)),
        "the published container port is refused at the container's own address"
    );
    assert!(
        refused(&up, sock(&web, 9000)),
        "an unpublished listener is refused at the container's own address"
    );

    // UDP, counted in the container: straight to its address (port 53) and,
    // the control, through the published port (host 5354 to port 54).
    let arrivals = Arrivals::new(container(&lab, "web"));
    arrivals.count("direct", "meta nfproto ipv6 udp dport 53");
    arrivals.count("published", "meta nfproto ipv6 udp dport 54");
    send_udp(&upstream(&lab), None, &web, 53, 3);
    send_udp(&upstream(&lab), None, HOST, 5354, 3);
    let published = arrivals.wait_for("published", SETTLE);
    let direct = arrivals.packets("direct");
    eprintln!("figure: UDP arrivals in the container: published {published}, direct {direct}");
    assert!(
        published > 0,
        "control: UDP through the published port arrives"
    );
    assert_eq!(direct, 0, "UDP straight to the container's address arrives");

    // ICMPv6 echo: the host reaches the container (control), the link does not.
    assert!(
        ping(&Place::Netns(lab.lab.host_ns.clone()), HOST, &web),
        "control: the host pings the container"
    );
    assert!(
        !ping(&upstream(&lab), UPSTREAM, &web),
        "the upstream pings the NAT66 container"
    );
}

/// A network of `options` on 2001:db8:2::/64 (a routed prefix, routed to the
/// host by the upstream) that dock6 does not manage: its listening container
/// is refused from the upstream. Controls: it answers from the host, and a
/// `routed` network's published container port answers the upstream through
/// the same kind of route.
fn unmanaged_network_is_closed(tag: &str, options: &[&str], bridge: Option<&str>) {
    let lab = DockerLab::up(tag, lab::Options::default());
    ipv6_network_with(&lab, "unmanaged", "2001:db8:2::/64", options);
    ipv6_network(&lab, "rt", "2001:db8:3::/64");
    let agent = Agent::start(&lab, "");
    run_server(&lab, "quiet", "unmanaged", &[]);
    run_server(&lab, "open", "rt", &["8080:80"]);
    let (quiet, open) = (
        address_of(&lab, "quiet", "unmanaged"),
        address_of(&lab, "open", "rt"),
    );
    route_via_host(&lab, "2001:db8:2::/64");
    route_via_host(&lab, "2001:db8:3::/64");
    let (up, host) = (lab.upstream_ns(), lab.host_ns());
    if let Some(bridge) = bridge {
        host.exec_ok(&["ip", "link", "show", bridge]);
    }

    answers(&up, sock(&open, 80), UPSTREAM, &agent);
    host.http_get_within(sock(&quiet, 80), "/cgi-bin/ip", PROMPTLY)
        .expect("control: the unmanaged network's container answers from the host");
    assert_forwarding(&lab);
    assert!(
        refused(&up, sock(&open, 9000)),
        "control: an unpublished port of the routed network is refused"
    );
    for port in [80, 9000] {
        assert!(
            refused(&up, sock(&quiet, port)),
            "port {port} of a container on an unmanaged network answers the upstream\n{}",
            agent.log()
        );
    }
}

#[test]
fn off_network_on_a_routed_prefix_is_closed() {
    let Some(_serial) = one_at_a_time("off_network_on_a_routed_prefix_is_closed") else {
        return;
    };
    unmanaged_network_is_closed("atkoff", &["--label", "dock6.mode=off"], None);
}

#[test]
fn custom_named_off_bridge_is_closed() {
    let Some(_serial) = one_at_a_time("custom_named_off_bridge_is_closed") else {
        return;
    };
    unmanaged_network_is_closed(
        "atkcust",
        &[
            "--label",
            "dock6.mode=off",
            "-o",
            "com.docker.network.bridge.name=custom6",
        ],
        Some("custom6"),
    );
}

#[test]
fn network_created_while_dock6_is_down_is_closed() {
    let Some(_serial) = one_at_a_time("network_created_while_dock6_is_down_is_closed") else {
        return;
    };
    let lab = DockerLab::up("atkdown", lab::Options::default());
    ipv6_network(&lab, "rt", "2001:db8:3::/64");
    run_server(&lab, "before", "rt", &["8080:80"]);
    let mut agent = Agent::start(&lab, "");
    // Docker forwards to the container on its own, so the first answer
    // below would come before dock6 programmed anything: wait for its pass.
    agent.wait_for_log("reconciled", PROMPTLY);
    route_via_host(&lab, "2001:db8:3::/64");
    let (up, host) = (lab.upstream_ns(), lab.host_ns());
    let before = address_of(&lab, "before", "rt");
    answers(&up, sock(&before, 80), UPSTREAM, &agent);
    assert!(agent.stop(), "dock6 stops on SIGTERM");
    host.exec_ok(&["nft", "list", "table", "inet", "dock6"]);

    // dock6 is down: its table stays; a new network and container appear.
    ipv6_network(&lab, "late", "2001:db8:4::/64");
    run_server(&lab, "late", "late", &["8081:80"]);
    let late = address_of(&lab, "late", "late");
    route_via_host(&lab, "2001:db8:4::/64");
    for port in [80, 9000] {
        host.http_get_within(sock(&late, port), "/cgi-bin/ip", PROMPTLY)
            .expect("control: the new container answers from the host");
    }
    assert_forwarding(&lab);
    answers(&up, sock(&before, 80), UPSTREAM, &agent);
    for port in [80, 9000] {
        assert!(
            refused(&up, sock(&late, port)),
            "port {port} of a network created while dock6 is down answers the upstream"
        );
    }

    // dock6 again: the published container port opens, the rest stays closed.
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    answers(&up, sock(&late, 80), UPSTREAM, &agent);
    assert!(
        refused(&up, sock(&late, 9000)),
        "the unpublished port is refused once dock6 runs again"
    );
}

#[test]
fn spoofed_container_source_from_the_link_does_not_arrive() {
    let Some(_serial) = one_at_a_time("spoofed_container_source_from_the_link_does_not_arrive")
    else {
        return;
    };
    let lab = DockerLab::up("atkspoof", lab::Options::default());
    ipv6_network(&lab, "n1", "fd00:1::/64");
    let agent = Agent::start(&lab, "");
    // Two published UDP ports on the same path, so the arrivals tell them
    // apart whatever source address (masquerade) the container sees.
    run_server(
        &lab,
        "web",
        "n1",
        &["8080:80", "5353:53/udp", "5354:54/udp"],
    );
    reached_by_dnat(&lab.upstream_ns(), sock(HOST, 8080), &agent);

    // The upstream claims an address of the container's subnet for itself.
    const SPOOFED: &str = "fd00:1::99";
    lab.upstream_ns()
        .ip(&format!("addr add {SPOOFED}/128 dev lo nodad"));
    let arrivals = Arrivals::new(container(&lab, "web"));
    arrivals.count("spoofed", "meta nfproto ipv6 udp dport 53");
    arrivals.count("real", "meta nfproto ipv6 udp dport 54");
    send_udp(&upstream(&lab), Some(SPOOFED), HOST, 5353, 3);
    send_udp(&upstream(&lab), Some(UPSTREAM), HOST, 5354, 3);
    let real = arrivals.wait_for("real", SETTLE);
    let spoofed = arrivals.packets("spoofed");
    eprintln!("figure: UDP arrivals through the published port: real {real}, spoofed {spoofed}");
    assert!(real > 0, "control: from a real upstream source it arrives");
    assert_eq!(
        spoofed, 0,
        "a datagram from the link with a container-subnet source arrives"
    );
}

#[test]
fn container_cannot_send_from_a_foreign_address() {
    let Some(_serial) = one_at_a_time("container_cannot_send_from_a_foreign_address") else {
        return;
    };
    let lab = DockerLab::up("atkforge", lab::Options::default());
    ipv6_network(&lab, "n1", "fd00:1::/64");
    let agent = Agent::start(&lab, "");
    run_server_with(&lab, "rogue", "n1", &["--cap-add", "NET_ADMIN"], &[]);
    agent.wait_for_log("reconciled", PROMPTLY);
    let rogue = address_of(&lab, "rogue", "n1");

    // The container itself (NET_ADMIN) takes an address that is not its own.
    const FOREIGN: &str = "2001:db8:bad::5";
    lab.docker(&[
        "exec",
        "rogue",
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{FOREIGN}/128"),
        "dev",
        "eth0",
    ]);
    let arrivals = Arrivals::new(upstream(&lab));
    arrivals.count("forged", "udp dport 7101");
    arrivals.count("real", &format!("ip6 saddr {HOST} udp dport 7102"));
    let rogue_ns = container(&lab, "rogue");
    send_udp(&rogue_ns, Some(FOREIGN), INTERNET, 7101, 3);
    send_udp(&rogue_ns, Some(&rogue), INTERNET, 7102, 3);
    let real = arrivals.wait_for("real", SETTLE);
    let forged = arrivals.packets("forged");
    eprintln!("figure: UDP arrivals upstream: real (NAT66) {real}, forged {forged}");
    assert!(
        real > 0,
        "control: from its own address it arrives, NAT66'd"
    );
    assert_eq!(
        forged, 0,
        "a container's datagram from a foreign address arrives upstream"
    );
}

#[test]
fn ndp_proxy_refuses_the_routers_and_the_hosts_addresses() {
    let Some(_serial) = one_at_a_time("ndp_proxy_refuses_the_routers_and_the_hosts_addresses")
    else {
        return;
    };
    let lab = DockerLab::up("atkndp", lab::Options::default());
    // A network over the uplink's whole on-link /64.
    ipv6_network_with(
        &lab,
        "lan",
        lab::LINK_V6_PREFIX,
        &[
            "--gateway",
            "2001:db8:1::ff:1",
            "--label",
            "dock6.mode=ndp-proxy",
        ],
    );
    let agent = Agent::start(&lab, "");
    // The twins first: once the ordinary container's entry is in, dock6 has seen them.
    run_server_with(&lab, "router-twin", "lan", &["--ip6", UPSTREAM], &[]);
    run_server_with(&lab, "host-twin", "lan", &["--ip6", HOST], &[]);
    const ORDINARY: &str = "2001:db8:1::2:5";
    run_server_with(&lab, "ordinary", "lan", &["--ip6", ORDINARY], &[]);
    let host = lab.host_ns();
    let proxied = |address: &str| {
        host.exec_ok(&["ip", "-6", "neigh", "show", "proxy"])
            .lines()
            .any(|l| l.split_whitespace().next() == Some(address))
    };
    let deadline = std::time::Instant::now() + PROMPTLY;
    while !proxied(ORDINARY) {
        assert!(
            std::time::Instant::now() < deadline,
            "control: no proxy entry for {ORDINARY}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let entries = host.exec_ok(&["ip", "-6", "neigh", "show", "proxy"]);
    eprintln!("proxy entries:\n{entries}");
    let log = agent.log();
    for (name, address) in [("router-twin", UPSTREAM), ("host-twin", HOST)] {
        assert!(
            !proxied(address),
            "proxy entry for {address} (container {name}):\n{entries}"
        );
        assert!(
            log.lines()
                .any(|l| l.contains(name) && !l.contains("proxy-NDP entry added")),
            "dock6's log does not name the refused container {name}:\n{log}"
        );
    }
    // The twins take nothing from the nodes they copy: the router's own
    // address still reaches the host (no source check covers it).
    assert!(
        ping(&upstream(&lab), UPSTREAM, HOST),
        "the upstream router's own address no longer reaches the host"
    );
    // Last, as it also needs the host to route the container's address to the
    // bridge rather than back out of the uplink (both have the connected /64).
    // From the upstream's internet address: the link's own addresses are
    // on-link inside the container's network, so its replies to them stay on the bridge.
    let route = host.exec_ok(&[
        "ip", "-6", "route", "get", ORDINARY, "from", INTERNET, "iif", "eth0",
    ]);
    assert!(
        ping(&upstream(&lab), INTERNET, ORDINARY),
        "control: the upstream pings the ordinary container\n{entries}the host's route: {route}"
    );
}

/// The Linux bridge Docker made for `network`.
fn bridge_of(lab: &DockerLab, network: &str) -> String {
    let id = lab.docker(&["network", "inspect", "-f", "{{.Id}}", network]);
    format!("br-{}", &id.trim()[..12])
}

/// Gives a container on an IPv4-only network an IPv6 source and a way out
/// through its bridge, from outside (as root): a container with NET_RAW,
/// one of Docker's default capabilities, needs neither to send such a frame.
fn forge_ipv6_path(lab: &DockerLab, name: &str, network: &str, source: &str) {
    let bridge = bridge_of(lab, network);
    let mac = lab
        .host_ns()
        .exec_ok(&["cat", &format!("/sys/class/net/{bridge}/address")]);
    let inside = container(lab, name);
    inside.run_ok("sysctl", &["-qw", "net.ipv6.conf.eth0.disable_ipv6=0"]);
    let address = format!("{source}/128");
    inside.run_ok(
        "ip",
        &["-6", "addr", "add", &address, "dev", "eth0", "nodad"],
    );
    inside.run_ok("ip", &["-6", "route", "replace", "default", "dev", "eth0"]);
    inside.run_ok(
        "ip",
        &[
            "-6",
            "neigh",
            "replace",
            INTERNET,
            "lladdr",
            mac.trim(),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
}

/// Container `name` sends IPv6 from `source` to the internet behind the
/// upstream. Control before dock6 runs: it arrives (the path exists and the
/// host forwards). With dock6: nothing arrives, while a container of a
/// managed NAT66 network, on the same path and after it, still does.
fn sends_nothing_out_once_dock6_runs(lab: &DockerLab, name: &str, source: &str) -> Agent {
    ipv6_network(lab, "managed", "fd00:1::/64");
    run_server(lab, "control", "managed", &[]);
    let control = address_of(lab, "control", "managed");
    // The operator's host forwards IPv6 already (so dock6 does not restrict
    // forwarding to Docker's traffic: only the seal can stop these).
    lab.host_ns().sysctl("net.ipv6.conf.all.forwarding", "1");
    let arrivals = Arrivals::new(upstream(lab));
    arrivals.count("before", "udp dport 7101");
    arrivals.count("sealed", "udp dport 7102");
    arrivals.count("managed", "udp dport 7103");
    let inside = container(lab, name);
    send_udp(&inside, Some(source), INTERNET, 7101, 3);
    let before = arrivals.wait_for("before", SETTLE);
    assert!(
        before > 0,
        "control: before dock6 runs, {name}'s datagram from {source} arrives upstream"
    );

    let agent = Agent::start(lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    send_udp(&inside, Some(source), INTERNET, 7102, 3);
    send_udp(
        &container(lab, "control"),
        Some(&control),
        INTERNET,
        7103,
        3,
    );
    let managed = arrivals.wait_for("managed", SETTLE);
    let sealed = arrivals.packets("sealed");
    eprintln!(
        "figure: UDP arrivals upstream: before dock6 {before}, managed {managed}, sealed {sealed}"
    );
    assert!(
        managed > 0,
        "control: the managed network's container reaches the upstream"
    );
    assert_eq!(
        sealed,
        0,
        "{name}'s datagram from {source} arrives upstream with dock6 running\n{}",
        agent.log()
    );
    agent
}

#[test]
fn ipv4_only_network_sends_no_ipv6() {
    let Some(_serial) = one_at_a_time("ipv4_only_network_sends_no_ipv6") else {
        return;
    };
    let lab = DockerLab::up("atkv4", lab::Options::default());
    lab.docker(&["network", "create", "--subnet", "172.28.2.0/24", "v4only"]);
    run_server(&lab, "inside", "v4only", &[]);
    const FORGED: &str = "2001:db8:77::5";
    forge_ipv6_path(&lab, "inside", "v4only", FORGED);
    sends_nothing_out_once_dock6_runs(&lab, "inside", FORGED);
}

#[test]
fn off_network_sends_nothing_beyond_its_bridge() {
    let Some(_serial) = one_at_a_time("off_network_sends_nothing_beyond_its_bridge") else {
        return;
    };
    let lab = DockerLab::up("atkoffout", lab::Options::default());
    ipv6_network_with(
        &lab,
        "quiet",
        "2001:db8:2::/64",
        &["--label", "dock6.mode=off"],
    );
    run_server(&lab, "inside", "quiet", &[]);
    run_server(&lab, "peer", "quiet", &[]);
    let (inside, peer) = (
        address_of(&lab, "inside", "quiet"),
        address_of(&lab, "peer", "quiet"),
    );
    sends_nothing_out_once_dock6_runs(&lab, "inside", &inside);
    assert!(
        ping(&container(&lab, "inside"), &inside, &peer),
        "control: containers of the off network still reach each other on their bridge"
    );
}

#[test]
fn refused_network_sends_nothing_out() {
    let Some(_serial) = one_at_a_time("refused_network_sends_nothing_out") else {
        return;
    };
    let lab = DockerLab::up("atkrefused", lab::Options::default());
    // Shorter than /48: dock6 refuses to plan for it.
    ipv6_network(&lab, "wide", "fd00:ab00::/40");
    run_server(&lab, "inside", "wide", &[]);
    let inside = address_of(&lab, "inside", "wide");
    let agent = sends_nothing_out_once_dock6_runs(&lab, "inside", &inside);
    assert!(
        agent.log().contains("refused"),
        "control: dock6 refused the network\n{}",
        agent.log()
    );
}

/// An operator's routed LAN behind the host: bridge `bridge` with
/// `2001:db8:N::1/64`, a LAN host at `2001:db8:N::2` answering TCP on 7000,
/// and the upstream's route to the prefix via the host.
struct OperatorLan {
    ns: Netns,
    host_address: String,
    _server: common::netns::Server,
}

impl OperatorLan {
    fn new(lab: &DockerLab, bridge: &str, n: u16) -> OperatorLan {
        let (host, ns) = (lab.host_ns(), Netns::new("lan"));
        let prefix = format!("2001:db8:{n:x}::");
        host.ip(&format!("link add {bridge} type bridge"));
        host.ip(&format!("link set {bridge} up"));
        host.ip(&format!("-6 addr add {prefix}1/64 dev {bridge} nodad"));
        let port = format!("{bridge}p");
        host.ip(&format!(
            "link add {port} type veth peer name eth0 netns {}",
            ns.name
        ));
        host.ip(&format!("link set {port} master {bridge} up"));
        ns.ip("link set eth0 up");
        ns.ip(&format!("-6 addr add {prefix}2/64 dev eth0 nodad"));
        ns.ip(&format!("-6 route add default via {prefix}1"));
        route_via_host(lab, &format!("{prefix}/64"));
        let _server = ns.tcp_echo_peer(7000);
        OperatorLan {
            ns,
            host_address: format!("{prefix}2"),
            _server,
        }
    }

    /// Whether its host and the upstream reach each other (inbound, outbound).
    fn routes(&self, lab: &DockerLab) -> (bool, bool) {
        let inbound = ping(&upstream(lab), UPSTREAM, &self.host_address)
            && lab
                .upstream_ns()
                .tcp(sock(&self.host_address, 7000))
                .is_ok();
        let outbound = ping(
            &Place::Netns(self.ns.name.clone()),
            &self.host_address,
            INTERNET,
        );
        (inbound, outbound)
    }
}

/// A router's own LANs on `br-lan` (there before dock6) and `br-dmz` (made
/// while it runs), beside Docker: dock6 takes them neither for Docker
/// bridges nor for ones it has not seen yet, in the steady table or in the
/// fail-closed one. Controls: the LAN routes before dock6 runs, and dock6's
/// guards are in force for Docker's bridges at the same time.
#[test]
fn the_operators_br_lan_is_left_alone() {
    let Some(_serial) = one_at_a_time("the_operators_br_lan_is_left_alone") else {
        return;
    };
    let lab = DockerLab::up("atklan", lab::Options::default());
    let host = lab.host_ns();
    let lan = OperatorLan::new(&lab, "br-lan", 0x50);
    route_via_host(&lab, "2001:db8:3::/64");
    host.sysctl("net.ipv6.conf.all.forwarding", "1");
    assert_eq!(
        lan.routes(&lab),
        (true, true),
        "control: before dock6, the upstream and the LAN reach each other"
    );

    ipv6_network(&lab, "rt", "2001:db8:3::/64");
    run_server(&lab, "web", "rt", &["8080:80"]);
    let web = address_of(&lab, "web", "rt");
    let mut agent = Agent::start(&lab, "");
    let up = lab.upstream_ns();
    agent.wait_for_log("reconciled", PROMPTLY);
    answers(&up, sock(&web, 80), UPSTREAM, &agent);
    assert!(
        refused(&up, sock(&web, 9000)),
        "control: dock6 guards Docker's bridge (an unpublished port is refused)"
    );
    assert_eq!(
        lan.routes(&lab),
        (true, true),
        "with dock6 running, the upstream and the operator's LAN on br-lan (inbound, outbound)\n{}",
        agent.log()
    );
    let dmz = OperatorLan::new(&lab, "br-dmz", 0x51);
    agent.wait_until("the LAN on br-dmz routes both ways", PROMPTLY, || {
        dmz.routes(&lab) == (true, true)
    });

    // The fail-closed table: no table, and a Docker that does not answer.
    assert!(agent.stop(), "dock6 stops on SIGTERM");
    host.exec_ok(&["nft", "delete", "table", "inet", "dock6"]);
    let dir = lab.lab.dir.join("bootstrap");
    std::fs::create_dir_all(&dir).expect("create the agent's directory");
    let agent = Agent::start_in(&host, "unix:///run/dock6-no-such-docker.sock", &dir, "");
    agent.wait_for_log("installed the fail-closed table", PROMPTLY);
    assert!(
        refused(&up, sock(&web, 80)),
        "control: the fail-closed table closes Docker's bridge to new inbound"
    );
    for (bridge, lan) in [("br-lan", &lan), ("br-dmz", &dmz)] {
        assert_eq!(
            lan.routes(&lab),
            (true, true),
            "with the fail-closed table, the upstream and the operator's LAN on {bridge} (inbound, outbound)\n{}",
            agent.log()
        );
    }
}
