//! Mode `nptv6` with traffic, through a host programmed by
//! `dock6 apply --once`: a ULA network mapped 1:1 onto a prefix inside the
//! uplink's on-link /64. The upstream finds the container at its mapped
//! address (a proxy-NDP entry answers for it), reaches its published
//! container port there but not an unpublished one, and sees its egress
//! come from that address; the container's own ULA address, routed by the
//! upstream via the host, gets nothing. A second network, mapped by its
//! `dock6.nptv6-prefix` label onto a prefix the upstream routes to the host,
//! is reached and seen at its mapped address too (no proxy entry needed).

mod common;

use common::lab::{INTERNET, Lab, UPSTREAM_LINK, sock};
use serde_json::json;

const SUBNET: &str = "fd00:6::/80";
const CONTAINER: &str = "fd00:6::2";
const PREFIX: &str = "2001:db8:1:0:6::/80";
const MAPPED: &str = "2001:db8:1:0:6::2";
const ROUTED_SUBNET: &str = "fd00:5::/64";
const ROUTED_CONTAINER: &str = "fd00:5::2";
const ROUTED_PREFIX: &str = "2001:db8:5::/64";
const ROUTED_MAPPED: &str = "2001:db8:5::2";

#[test]
fn nptv6_container_is_seen_and_reached_at_its_mapped_address() {
    if !common::require_root("nptv6_container_is_seen_and_reached_at_its_mapped_address") {
        return;
    }
    let mut lab = Lab::new("npt");
    // The upstream also routes the ULA subnet via the host, as an attacker
    // on the link may: that path must stay closed.
    lab.bridge("br-npt", "fd00:6::1/80", None, Some(SUBNET));
    lab.container("m", "br-npt", &format!("{CONTAINER}/80"), "fd00:6::1", None);
    lab.bridge("br-npr", "fd00:5::1/64", None, Some(ROUTED_PREFIX));
    lab.container(
        "r",
        "br-npr",
        &format!("{ROUTED_CONTAINER}/64"),
        "fd00:5::1",
        None,
    );
    let snapshot = json!({
        "host": lab.host_facts(),
        "networks": [{"id": format!("{:0>64}", "6"), "name": "mapped", "bridge": "br-npt",
                      "enable_ipv6": true, "subnets": [{"subnet": SUBNET}]},
                     {"id": format!("{:0>64}", "5"), "name": "routedmap", "bridge": "br-npr",
                      "enable_ipv6": true, "subnets": [{"subnet": ROUTED_SUBNET}],
                      "labels": {"dock6.nptv6-prefix": ROUTED_PREFIX}}],
        "containers": [{"id": "m", "name": "m", "networks": {"mapped": {"ipv6_address": CONTAINER}},
                        "ports": {"80/tcp": [{"HostIp": "::", "HostPort": "8080"}],
                                  "9000/tcp": null}},
                       {"id": "r", "name": "r", "labels": {"dock6.expose": "80/tcp"},
                        "networks": {"routedmap": {"ipv6_address": ROUTED_CONTAINER}}}]
    });
    let config = format!("[networks.mapped]\nmode = \"nptv6\"\nprefix = \"{PREFIX}\"\n");
    let _servers = (
        lab.c("m").tcp_echo_peer(80),
        lab.c("m").tcp_echo_peer(9000),
        lab.c("r").tcp_echo_peer(80),
        lab.upstream.tcp_echo_peer(7000),
    );
    assert!(
        lab.upstream.tcp(sock(MAPPED, 80)).is_err(),
        "control: nothing answers at the mapped address before dock6"
    );
    lab.apply(&snapshot, &config);

    assert_eq!(
        lab.upstream
            .tcp(sock(MAPPED, 80))
            .expect("the published container port at the mapped address"),
        UPSTREAM_LINK,
        "the container sees the upstream's real address"
    );
    assert!(
        lab.upstream.tcp(sock(MAPPED, 9000)).is_err(),
        "an unpublished port is closed at the mapped address"
    );
    assert_eq!(
        lab.host
            .tcp(sock(CONTAINER, 9000))
            .expect("control: the unpublished port listens"),
        "fd00:6::1"
    );
    assert!(
        lab.upstream.tcp(sock(CONTAINER, 80)).is_err(),
        "the container's own ULA address, routed via the host, gets nothing"
    );
    assert_eq!(
        lab.c("m")
            .tcp(sock(INTERNET, 7000))
            .expect("egress through the prefix translation"),
        MAPPED,
        "the upstream sees the container at its mapped address"
    );
    let proxies = lab.host.exec_ok(&["ip", "-6", "neigh", "show", "proxy"]);
    assert!(
        proxies.contains(MAPPED) && !proxies.contains(CONTAINER),
        "the proxy entry is for the mapped address: {proxies}"
    );

    // The routed prefix, chosen by the network's label.
    assert_eq!(
        lab.upstream
            .tcp(sock(ROUTED_MAPPED, 80))
            .expect("the exposed port at the routed mapped address"),
        UPSTREAM_LINK
    );
    assert_eq!(
        lab.c("r")
            .tcp(sock(INTERNET, 7000))
            .expect("egress through the routed prefix translation"),
        ROUTED_MAPPED
    );
    assert!(
        !proxies.contains(ROUTED_MAPPED),
        "a routed mapped prefix needs no proxy entry: {proxies}"
    );
}
