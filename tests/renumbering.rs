//! Prefixes that change, against a real dockerd and the real kernel: an
//! `nptv6` network that follows the host's provider prefix keeps its Docker
//! addresses while its outside addresses move with the provider's prefix.
//!
//! - `uplink`: the upstream announces prefixes by router advertisement
//!   (sent from the upstream namespace, as a provider's router would); the
//!   host takes an address in each. Renumbering: the next prefix announced,
//!   the old one withdrawn (valid lifetime 0) and the host's address in it
//!   removed.
//! - `delegated`: the host holds the delegated prefix as a DHCPv6-PD client
//!   does (an `unreachable` route), the upstream routes it to the host.
//!
//! Each round: the container answers at its new mapped address with the
//! upstream's own address seen (dock6's prefix DNAT, not a proxy), its
//! egress is seen from it; the old mapped address no longer answers even
//! with a route to the host (the control: the new one answers in the same
//! round); the old mapping's conntrack entries are gone; the container's
//! Docker address and start time never change; the log says old → new once.
//! A network built on the provider's prefix itself (ndp-proxy) is closed
//! when that prefix goes, with a warning that names it.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::agent::{Agent, status_json, status_socket};
use common::docker_lab::{DockerLab, lab};
use common::netns::Netns;
use common::web::{PROMPTLY, address_of, ipv6_network_with, one_at_a_time, run_server};
use ipnet::Ipv6Net;

/// Renumbering rounds per test (the closing figure is their median);
/// `DOCK6_RENUMBER_ROUNDS` to run more.
fn rounds() -> usize {
    std::env::var("DOCK6_RENUMBER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Within this long of the host's change the new mapping must answer.
const RENUMBERED_WITHIN: Duration = Duration::from_secs(10);

fn net(s: &str) -> Ipv6Net {
    s.parse().expect("prefix")
}

/// `address`'s host bits under `prefix` (as long as `from`).
fn mapped(address: Ipv6Addr, from: &Ipv6Net, prefix: &Ipv6Net) -> Ipv6Addr {
    dock6::plan::map_address(address, from, prefix)
}

/// One HTTP GET with short timeouts (a probe, polled): the body, the
/// address the container saw.
fn probe(from: &Netns, to: SocketAddr) -> std::io::Result<String> {
    from.run(move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(300))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /cgi-bin/ip HTTP/1.0\r\n\r\n")?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        let body = reply.replace("\r\n", "\n");
        match body.split_once("\n\n") {
            // busybox httpd's REMOTE_ADDR is bracketed.
            Some((head, body)) if head.contains(" 200 ") => {
                Ok(body.trim().trim_matches(['[', ']']).to_string())
            }
            _ => Err(std::io::Error::other(format!(
                "unexpected answer {reply:?}"
            ))),
        }
    })
}

/// Polls until `to` answers `from` as `seen`; how long that took.
fn answered_within(
    from: &Netns,
    to: SocketAddr,
    seen: Ipv6Addr,
    agent: &Agent,
    since: Instant,
) -> Duration {
    let mut last = String::new();
    while since.elapsed() < RENUMBERED_WITHIN {
        match probe(from, to) {
            Ok(body) if body == seen.to_string() => return since.elapsed(),
            Ok(body) => last = format!("answered as {body}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{to} did not answer as {seen} within {RENUMBERED_WITHIN:?} (last: {last})\n{}",
        agent.log()
    );
}

/// A router advertisement from the upstream's `host0` to all nodes: no
/// default route (lifetime 0), one prefix information option per
/// `(prefix, valid, preferred)`, on-link and autonomous.
fn advertise(upstream: &Netns, prefixes: &[(Ipv6Net, u32, u32)]) {
    let options: Vec<String> = prefixes
        .iter()
        .map(|(p, valid, preferred)| {
            format!(
                "('{}', {}, {valid}, {preferred})",
                p.network(),
                p.prefix_len()
            )
        })
        .collect();
    let script = format!(
        r#"
import socket, struct
ifindex = socket.if_nametoindex('{link}')
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
ra = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 0, 0, 0)
for prefix, length, valid, preferred in [{options}]:
    ra += struct.pack('!BBBBIII', 3, 4, length, 0xc0, valid, preferred, 0)
    ra += socket.inet_pton(socket.AF_INET6, prefix)
s.sendto(ra, ('ff02::1', 0, 0, ifindex))
"#,
        link = lab::UPSTREAM_LINK,
        options = options.join(", ")
    );
    upstream.exec_ok(&["python3", "-c", &script]);
}

/// The host's address in `prefix` on its uplink, once it has one.
fn host_address_in(host: &Netns, prefix: &Ipv6Net) -> Ipv6Addr {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        let out = host.exec_ok(&["ip", "-6", "-o", "addr", "show", "dev", lab::HOST_UPLINK]);
        let found = out
            .split_whitespace()
            .filter_map(|w| w.split_once('/'))
            .filter_map(|(a, _)| a.parse::<Ipv6Addr>().ok())
            .find(|a| prefix.contains(a));
        if let Some(a) = found {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "the host took no address in {prefix}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Conntrack entries in the host whose original destination is `address`.
fn flows_to(host: &Netns, address: Ipv6Addr) -> usize {
    let out = host.exec(&[
        "conntrack",
        "-L",
        "-f",
        "ipv6",
        "--orig-dst",
        &address.to_string(),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// What the test checks of one container across the rounds.
struct Web {
    name: &'static str,
    network: &'static str,
    subnet: Ipv6Net,
    address: Ipv6Addr,
    started: String,
}

impl Web {
    fn start(lab: &DockerLab, name: &'static str, network: &'static str, subnet: &str) -> Web {
        run_server(lab, name, network, &["80:80"]);
        let address: Ipv6Addr = address_of(lab, name, network)
            .parse()
            .expect("the container's IPv6 address");
        Web {
            name,
            network,
            subnet: net(subnet),
            address,
            started: lab.docker(&["inspect", "-f", "{{.State.StartedAt}}", name]),
        }
    }

    /// Its outside address under `prefix` (the provider's, longer or as long).
    fn mapped_under(&self, provider: &Ipv6Net) -> (Ipv6Net, Ipv6Addr) {
        let prefix = dock6::plan::embed(&self.subnet, provider);
        (prefix, mapped(self.address, &self.subnet, &prefix))
    }

    /// The source the internet sees when the container connects out.
    fn seen_outside(&self, lab: &DockerLab) -> String {
        let _peer = lab.upstream_ns().tcp_echo_peer(7000);
        lab.docker(&["exec", self.name, "nc", lab::UPSTREAM_INTERNET_V6, "7000"])
    }

    /// Docker's address and start time are what they were.
    fn unchanged(&self, lab: &DockerLab) {
        assert_eq!(
            address_of(lab, self.name, self.network),
            self.address.to_string(),
            "the container's Docker address never changes"
        );
        assert_eq!(
            lab.docker(&["inspect", "-f", "{{.State.StartedAt}}", self.name]),
            self.started,
            "the container was not restarted"
        );
    }
}

/// One round's checks after the host moved from `old` to `new` (provider
/// prefixes) at `changed`; the time to the new address answering.
#[allow(clippy::too_many_arguments)]
fn check_round(
    lab: &DockerLab,
    agent: &Agent,
    web: &Web,
    old: &Ipv6Net,
    new: &Ipv6Net,
    upstream_in_new: Ipv6Addr,
    changed: Instant,
) -> Duration {
    let (upstream, host) = (lab.upstream_ns(), lab.host_ns());
    let (old_prefix, old_address) = web.mapped_under(old);
    let (new_prefix, new_address) = web.mapped_under(new);
    let took = answered_within(
        &upstream,
        SocketAddr::new(new_address.into(), 80),
        upstream_in_new,
        agent,
        changed,
    );
    assert_eq!(
        web.seen_outside(lab),
        new_address.to_string(),
        "the container's egress comes from its new mapped address"
    );
    // The old mapping's flows are deleted once the new table is in.
    let deadline = Instant::now() + PROMPTLY;
    while flows_to(&host, old_address) > 0 {
        assert!(
            Instant::now() < deadline,
            "conntrack entries to the old mapped address {old_address} stay\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The old mapped address, routed to the host as a stale or hostile
    // route would: nothing of the old mapping is left to answer it. (The
    // control is the new address answering above, through the same host.)
    let host_ll = host.link_local(lab::HOST_UPLINK);
    upstream.ip(&format!(
        "-6 route replace {old_prefix} via {host_ll} dev {}",
        lab::UPSTREAM_LINK
    ));
    assert!(
        probe(&upstream, SocketAddr::new(old_address.into(), 80)).is_err(),
        "the old mapped address {old_address} still answers"
    );
    let proxies = host.exec_ok(&["ip", "-6", "neigh", "show", "proxy"]);
    assert!(
        !proxies.contains(&old_address.to_string()),
        "a proxy entry is left for the old mapped address: {proxies}"
    );
    web.unchanged(lab);
    let line = format!("nptv6 mapping {old_prefix} → {new_prefix}");
    agent.wait_until("the move is logged", PROMPTLY, || {
        agent.log().contains(&line)
    });
    assert_eq!(
        agent.log().matches(&line).count(),
        1,
        "the move is logged once: {line}"
    );
    took
}

fn report(what: &str, mut took: Vec<Duration>) {
    took.sort();
    eprintln!(
        "figure: {what}: the host's prefix changes → the container answers at its new address: \
         median {:?} of {} (min {:?}, max {:?})",
        took[took.len() / 2],
        took.len(),
        took[0],
        took[took.len() - 1]
    );
}

/// `dock6 status --json`'s nptv6 entry for `network`.
fn status_mapping(lab: &DockerLab, network: &str) -> serde_json::Value {
    let status = status_json(lab, &status_socket(&lab.lab.dir));
    status["networks"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == network))
        .map(|n| n["nptv6"].clone())
        .unwrap_or_else(|| panic!("no network {network} in {status:#}"))
}

#[test]
fn an_uplink_renumbering_moves_the_mapping_at_once() {
    let Some(_serial) = one_at_a_time("an_uplink_renumbering_moves_the_mapping_at_once") else {
        return;
    };
    let lab = DockerLab::up(
        "renum",
        lab::Options {
            userland_proxy: false,
            ..lab::Options::default()
        },
    );
    let (upstream, host) = (lab.upstream_ns(), lab.host_ns());
    ipv6_network_with(
        &lab,
        "web",
        "fd00:b6:7:0:d6::/80",
        &["--label", "dock6.nptv6-prefix=uplink"],
    );
    let web = Web::start(&lab, "shop", "web", "fd00:b6:7:0:d6::/80");
    // A network built on the provider's first prefix itself (ndp-proxy once
    // the prefix is on-link): it cannot follow a renumbering.
    ipv6_network_with(&lab, "onprefix", "2001:db8:a0:0:e6::/80", &[]);
    run_server(&lab, "stuck", "onprefix", &[]);
    let stuck = address_of(&lab, "stuck", "onprefix");
    // The router takes no address from its own advertisements.
    upstream.sysctl(
        &format!("net.ipv6.conf.{}.accept_ra", lab::UPSTREAM_LINK),
        "0",
    );
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    // dock6 turned forwarding on and accept_ra to 2 first: the host still
    // takes the provider's advertisements.
    assert_eq!(host.read_sysctl("net.ipv6.conf.all.forwarding"), "1");
    assert_eq!(
        host.read_sysctl(&format!("net.ipv6.conf.{}.accept_ra", lab::HOST_UPLINK)),
        "2"
    );

    let provider = |i: usize| net(&format!("2001:db8:{:x}::/64", 0xa0 + i));
    let router_in = |p: &Ipv6Net| -> Ipv6Addr { mapped("::1".parse().unwrap(), &net("::/64"), p) };
    // The provider's first prefix: the mapping leaves the host's static
    // 2001:db8:1::/64 for it.
    let first = provider(0);
    upstream.ip(&format!(
        "-6 addr add {}/64 dev {} nodad",
        router_in(&first),
        lab::UPSTREAM_LINK
    ));
    let before = Instant::now();
    advertise(&upstream, &[(first, 3600, 1800)]);
    let _ = answered_within(
        &upstream,
        SocketAddr::new(web.mapped_under(&first).1.into(), 80),
        router_in(&first),
        &agent,
        before,
    );
    assert_eq!(
        web.seen_outside(&lab),
        web.mapped_under(&first).1.to_string(),
        "egress from the first provider prefix"
    );
    let host_address = host_address_in(&host, &first);
    agent.wait_until(
        "control: the network on the prefix is proxied",
        PROMPTLY,
        || {
            host.exec_ok(&["ip", "-6", "neigh", "show", "proxy"])
                .contains(&stuck)
        },
    );
    assert!(
        flows_to(&host, web.mapped_under(&first).1) > 0,
        "control: the connection to the mapped address left a conntrack entry"
    );
    let shown = status_mapping(&lab, "web");
    assert_eq!(shown["follows"], "uplink", "{shown:#}");
    assert_eq!(
        shown["prefix"],
        web.mapped_under(&first).0.to_string(),
        "{shown:#}"
    );

    let mut took = Vec::new();
    let mut host_address = host_address;
    for i in 0..rounds() {
        let (old, new) = (provider(i), provider(i + 1));
        upstream.ip(&format!(
            "-6 addr add {}/64 dev {} nodad",
            router_in(&new),
            lab::UPSTREAM_LINK
        ));
        let changed = Instant::now();
        advertise(&upstream, &[(new, 3600, 1800), (old, 0, 0)]);
        host.ip(&format!(
            "-6 addr del {host_address}/64 dev {}",
            lab::HOST_UPLINK
        ));
        took.push(check_round(
            &lab,
            &agent,
            &web,
            &old,
            &new,
            router_in(&new),
            changed,
        ));
        host_address = host_address_in(&host, &new);
        if i == 0 {
            // The network on the lost prefix: closed, no proxy entry, and
            // the operator told what to do instead.
            agent.wait_for_log("a prefix the host no longer has", PROMPTLY);
            let log = agent.log();
            let warning = log
                .lines()
                .find(|l| l.contains("a prefix the host no longer has"))
                .expect("the warning");
            assert!(
                warning.contains("network \"onprefix\"") && warning.contains("prefix = \"uplink\""),
                "{warning}"
            );
            let proxies = host.exec_ok(&["ip", "-6", "neigh", "show", "proxy"]);
            assert!(
                !proxies.contains(&stuck),
                "still proxied on a prefix the host lost: {proxies}"
            );
        }
        let shown = status_mapping(&lab, "web");
        assert_eq!(
            shown["prefix"],
            web.mapped_under(&new).0.to_string(),
            "{shown:#}"
        );
        assert_eq!(shown["changes"], i as u64 + 2, "{shown:#}");
    }
    report("uplink", took);
}

#[test]
fn a_delegated_prefix_that_changes_moves_the_mapping_at_once() {
    let Some(_serial) = one_at_a_time("a_delegated_prefix_that_changes_moves_the_mapping_at_once")
    else {
        return;
    };
    let lab = DockerLab::up(
        "renpd",
        lab::Options {
            userland_proxy: false,
            ..lab::Options::default()
        },
    );
    let (upstream, host) = (lab.upstream_ns(), lab.host_ns());
    let delegated = |i: usize| net(&format!("2001:db8:{:x}00::/56", 0x1 + i));
    // As a DHCPv6-PD client holds the delegation, and the provider routes it.
    let delegate = |p: &Ipv6Net| {
        host.ip(&format!("-6 route add unreachable {p} proto dhcp"));
        upstream.ip(&format!(
            "-6 route replace {p} via {} dev {}",
            lab::HOST_V6,
            lab::UPSTREAM_LINK
        ));
    };
    delegate(&delegated(0));
    ipv6_network_with(
        &lab,
        "lan",
        "fd00:b6:7:5::/64",
        &["--label", "dock6.nptv6-prefix=delegated"],
    );
    let web = Web::start(&lab, "printer", "lan", "fd00:b6:7:5::/64");
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    let upstream_address: Ipv6Addr = lab::UPSTREAM_V6.parse().expect("address");
    let (_, first) = web.mapped_under(&delegated(0));
    assert!(
        first.to_string().starts_with("2001:db8:100:5:"),
        "{first}: the subnet's own bits choose the /64 inside the /56"
    );
    let _ = answered_within(
        &upstream,
        SocketAddr::new(first.into(), 80),
        upstream_address,
        &agent,
        Instant::now(),
    );
    assert!(
        flows_to(&host, first) > 0,
        "control: the connection to the mapped address left a conntrack entry"
    );

    let mut took = Vec::new();
    for i in 0..rounds() {
        let (old, new) = (delegated(i), delegated(i + 1));
        let changed = Instant::now();
        // The client takes the new delegation and drops the old one; the
        // provider routes the new one (and, in this test, keeps routing the
        // old one to the host).
        delegate(&new);
        host.ip(&format!("-6 route del unreachable {old}"));
        took.push(check_round(
            &lab,
            &agent,
            &web,
            &old,
            &new,
            upstream_address,
            changed,
        ));
        let shown = status_mapping(&lab, "lan");
        assert_eq!(shown["follows"], "delegated", "{shown:#}");
        assert_eq!(shown["changes"], i as u64 + 1, "{shown:#}");
    }

    // No delegation at all: the network waits closed, with one warning.
    let last = delegated(rounds());
    host.ip(&format!("-6 route del unreachable {last}"));
    let (_, address) = web.mapped_under(&last);
    agent.wait_until("the network is closed", PROMPTLY, || {
        probe(&upstream, SocketAddr::new(address.into(), 80)).is_err()
    });
    agent.wait_for_log("no prefix is delegated to the host now", PROMPTLY);
    assert_eq!(
        status_mapping(&lab, "lan")["prefix"],
        serde_json::Value::Null
    );
    // And it comes back with the next delegation.
    let back = delegated(rounds() + 1);
    let changed = Instant::now();
    delegate(&back);
    let _ = answered_within(
        &upstream,
        SocketAddr::new(web.mapped_under(&back).1.into(), 80),
        upstream_address,
        &agent,
        changed,
    );
    report("delegated", took);
}
