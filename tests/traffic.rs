//! Traffic through a host programmed by `dock6 apply --once`, in namespaces:
//! packets must flow, or be refused, with a control showing the service is up.

mod common;

use common::lab::{HOST_UPLINK, INTERNET, Lab, UPSTREAM_LINK, UPSTREAM_V4, sock};
use serde_json::json;

const WEB: &str = "fd00:1::2";
const WEB2: &str = "fd00:1::3";
const PUB: &str = "2001:db8:2::2";
const NDP: &str = "2001:db8:1:0:1::2";

/// The standard lab: a NAT66 network (`ula`, with IPv4 too), a routed one
/// (`pub`) and an ndp-proxy one (`ndp`), one or two containers on each.
fn standard_lab(tag: &str) -> Lab {
    let mut lab = Lab::new(tag);
    lab.bridge("br-ula", "fd00:1::1/64", Some("192.0.2.1/24"), None);
    lab.bridge("br-pub", "2001:db8:2::1/64", None, Some("2001:db8:2::/64"));
    lab.bridge("br-ndp", "2001:db8:1:0:1::1/80", None, None);
    lab.container(
        "web",
        "br-ula",
        &format!("{WEB}/64"),
        "fd00:1::1",
        Some(("192.0.2.2/24", "192.0.2.1")),
    );
    lab.container("web2", "br-ula", &format!("{WEB2}/64"), "fd00:1::1", None);
    lab.container("pub", "br-pub", &format!("{PUB}/64"), "2001:db8:2::1", None);
    lab.container(
        "ndp",
        "br-ndp",
        &format!("{NDP}/80"),
        "2001:db8:1:0:1::1",
        None,
    );
    lab
}

fn network(name: &str, bridge: &str, subnet: &str) -> serde_json::Value {
    json!({"id": format!("{name:0>64}"), "name": name, "bridge": bridge, "enable_ipv6": true,
           "subnets": [{"subnet": subnet}]})
}

fn standard_snapshot(lab: &Lab) -> serde_json::Value {
    json!({
        "host": lab.host_facts(),
        "networks": [
            network("ula", "br-ula", "fd00:1::/64"),
            network("pub", "br-pub", "2001:db8:2::/64"),
            network("ndp", "br-ndp", "2001:db8:1:0:1::/80"),
        ],
        "containers": [
            {"id": "w", "name": "web", "networks": {"ula": {"ipv6_address": WEB}},
             "ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
                       "53/udp": [{"HostIp": "::", "HostPort": "5353"}],
                       "9000/tcp": null}},
            {"id": "w2", "name": "web2", "networks": {"ula": {"ipv6_address": WEB2}}},
            {"id": "p", "name": "pub", "labels": {"dock6.expose": "80/tcp"},
             "networks": {"pub": {"ipv6_address": PUB}}},
            {"id": "n", "name": "ndp", "labels": {"dock6.expose": "80/tcp"},
             "networks": {"ndp": {"ipv6_address": NDP}}},
        ]
    })
}

fn applied_lab(tag: &str) -> Lab {
    let lab = standard_lab(tag);
    lab.apply(&standard_snapshot(&lab), "");
    lab
}

#[test]
fn ula_container_reaches_upstream_as_the_host() {
    if !common::require_root("ula_container_reaches_upstream_as_the_host") {
        return;
    }
    let lab = standard_lab("egr");
    let _server = lab.upstream.tcp_echo_peer(7000);
    assert!(
        lab.c("web").tcp(sock(INTERNET, 7000)).is_err(),
        "control: no egress before dock6"
    );
    lab.apply(&standard_snapshot(&lab), "");
    let seen = lab
        .c("web")
        .tcp(sock(INTERNET, 7000))
        .expect("ULA container reaches the internet");
    assert_eq!(
        seen, HOST_UPLINK,
        "the upstream sees the host's address (NAT66)"
    );
    let seen = lab
        .c("ndp")
        .tcp(sock(INTERNET, 7000))
        .expect("ndp-proxy container reaches the internet");
    assert_eq!(seen, NDP, "no NAT for ndp-proxy");
}

#[test]
fn published_ports_dnat_to_the_container_keeping_the_client_address() {
    if !common::require_root("published_ports_dnat_to_the_container_keeping_the_client_address") {
        return;
    }
    let lab = applied_lab("pub");
    let web = lab.c("web");
    let (_t80, _u53, _t9000) = (
        web.tcp_echo_peer(80),
        web.udp_echo_peer(53),
        web.tcp_echo_peer(9000),
    );
    assert_eq!(
        lab.upstream
            .tcp(sock(HOST_UPLINK, 8080))
            .expect("tcp published"),
        UPSTREAM_LINK
    );
    assert_eq!(
        lab.upstream
            .udp(sock(HOST_UPLINK, 5353))
            .expect("udp published"),
        UPSTREAM_LINK
    );
    assert!(
        lab.upstream.tcp(sock(HOST_UPLINK, 9000)).is_err(),
        "unpublished port refused from upstream"
    );
    assert_eq!(
        lab.host
            .tcp(sock(WEB, 9000))
            .expect("control: it answers from the host"),
        "fd00:1::1"
    );
    // Hairpin: the host itself, a container of another network, a container of the same one.
    assert!(
        lab.host.tcp(sock(HOST_UPLINK, 8080)).is_ok(),
        "host reaches its own published port"
    );
    assert_eq!(
        lab.c("pub")
            .tcp(sock(HOST_UPLINK, 8080))
            .expect("from another network"),
        PUB
    );
    assert!(
        lab.c("web2").tcp(sock(HOST_UPLINK, 8080)).is_ok(),
        "hairpin within the network"
    );
    // A container reaching its own published port: with br_netfilter the
    // DNAT'ed frame is bridged back out of the port it came in on, which needs
    // hairpin mode on that port (Docker sets it when userland-proxy=false).
    lab.host.ip("link set vweb type bridge_slave hairpin on");
    assert!(
        lab.c("web").tcp(sock(HOST_UPLINK, 8080)).is_ok(),
        "a container reaches its own published port"
    );
}

#[test]
fn routed_container_is_reachable_on_exposed_ports_only() {
    if !common::require_root("routed_container_is_reachable_on_exposed_ports_only") {
        return;
    }
    let lab = applied_lab("rtd");
    let (_a, _b) = (
        lab.c("pub").tcp_echo_peer(80),
        lab.c("pub").tcp_echo_peer(9000),
    );
    assert_eq!(
        lab.upstream.tcp(sock(PUB, 80)).expect("exposed port"),
        UPSTREAM_LINK
    );
    assert!(
        lab.upstream.tcp(sock(PUB, 9000)).is_err(),
        "not exposed: refused"
    );
    assert_eq!(
        lab.host
            .tcp(sock(PUB, 9000))
            .expect("control: answers from the host"),
        "2001:db8:2::1"
    );
}

#[test]
fn ndp_proxy_container_is_found_by_the_upstream_router() {
    if !common::require_root("ndp_proxy_container_is_found_by_the_upstream_router") {
        return;
    }
    let lab = applied_lab("ndp");
    let proxies = lab.host.exec_ok(&["ip", "-6", "neigh", "show", "proxy"]);
    assert!(
        proxies.contains(NDP),
        "proxy entry for the container: {proxies}"
    );
    assert_eq!(lab.host.read_sysctl("net.ipv6.conf.eth0.proxy_ndp"), "1");
    let _s = lab.c("ndp").tcp_echo_peer(80);
    assert_eq!(
        lab.upstream
            .tcp(sock(NDP, 80))
            .expect("reachable on the link"),
        UPSTREAM_LINK
    );
}

#[test]
fn networks_are_isolated_but_containers_of_one_network_talk() {
    if !common::require_root("networks_are_isolated_but_containers_of_one_network_talk") {
        return;
    }
    let lab = applied_lab("iso");
    let (_p, _w) = (
        lab.c("pub").tcp_echo_peer(80),
        lab.c("web2").tcp_echo_peer(80),
    );
    assert!(
        lab.c("web").tcp(sock(PUB, 80)).is_err(),
        "ula → pub refused"
    );
    assert!(
        lab.c("pub").tcp(sock(WEB2, 80)).is_err(),
        "pub → ula refused"
    );
    assert_eq!(lab.c("web").tcp(sock(WEB2, 80)).expect("same network"), WEB);
    assert!(
        lab.host.tcp(sock(PUB, 80)).is_ok() && lab.host.tcp(sock(WEB2, 80)).is_ok(),
        "control: both are up"
    );
}

#[test]
fn ipv4_through_the_same_host_is_unaffected() {
    if !common::require_root("ipv4_through_the_same_host_is_unaffected") {
        return;
    }
    let lab = applied_lab("v4");
    let _s = lab.c("web").tcp_echo_peer(9000);
    // dock6 refuses this port on IPv6 (see above); on IPv4 it is none of its business.
    assert_eq!(
        lab.upstream
            .tcp(sock("192.0.2.2", 9000))
            .expect("IPv4 untouched"),
        UPSTREAM_V4
    );
    assert!(
        lab.upstream.tcp(sock(HOST_UPLINK, 9000)).is_err(),
        "control: the IPv6 side is filtered"
    );
}

#[test]
fn cleanup_leaves_no_table_and_no_dock6_proxy_entry() {
    if !common::require_root("cleanup_leaves_no_table_and_no_dock6_proxy_entry") {
        return;
    }
    let lab = applied_lab("cln");
    lab.host.exec_ok(&[
        "ip",
        "-6",
        "neigh",
        "add",
        "proxy",
        "2001:db8:1::99",
        "dev",
        "eth0",
    ]);
    assert!(lab.host.has_dock6_table(), "control: table present");
    let out = lab.dock6(&["cleanup"]);
    assert!(
        out.status.success(),
        "cleanup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lab.host.has_dock6_table(), "table gone");
    let proxies = lab.host.exec_ok(&["ip", "-6", "neigh", "show", "proxy"]);
    assert!(
        !proxies.contains(NDP),
        "dock6's proxy entry gone: {proxies}"
    );
    assert!(
        proxies.contains("2001:db8:1::99"),
        "a foreign proxy entry stays: {proxies}"
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("forwarding"),
        "cleanup reports the sysctls it leaves: {report}"
    );
}

#[test]
fn a_users_policy_drop_forward_chain_needs_only_the_mark_line() {
    if !common::require_root("a_users_policy_drop_forward_chain_needs_only_the_mark_line") {
        return;
    }
    let lab = applied_lab("usr");
    let _s = lab.c("web").tcp_echo_peer(80);
    let user_table = |mark_line: &str| {
        format!(
            "table inet filter\ndelete table inet filter\ntable inet filter {{\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy drop;\n\t\t{mark_line}\n\t}}\n}}\n"
        )
    };
    let load = |text: String| {
        let file = lab.write("user.nft", &text);
        lab.host.exec_ok(&["nft", "-f", file.to_str().unwrap()]);
    };
    load(user_table(""));
    assert!(
        lab.upstream.tcp(sock(HOST_UPLINK, 8080)).is_err(),
        "the user's policy drop wins over dock6's accept"
    );
    load(user_table("meta mark & 0x04000000 == 0x04000000 accept"));
    assert_eq!(
        lab.upstream
            .tcp(sock(HOST_UPLINK, 8080))
            .expect("the mark line lets it through"),
        UPSTREAM_LINK
    );
    let _peer = lab.upstream.tcp_echo_peer(7000);
    assert_eq!(
        lab.c("web")
            .tcp(sock(INTERNET, 7000))
            .expect("egress is marked too"),
        HOST_UPLINK
    );
}
