//! Docker's `com.docker.network.bridge.gateway_mode_ipv6`, honoured as
//! Docker documents it, with traffic through a host programmed by
//! `dock6 apply --once`: the upstream routes both ULA subnets via the host;
//! `nat-unprotected` answers on every port at the container's own address,
//! `nat` on none, and `isolated` has no way out.

mod common;

use common::lab::{HOST_UPLINK, INTERNET, Lab, UPSTREAM_LINK, sock};
use serde_json::json;

const NATTED: &str = "fd00:7::2";
const OPEN: &str = "fd00:8::2";
const ISOLATED: &str = "fd00:9::2";

fn network(name: &str, bridge: &str, subnet: &str, gateway_mode: &str) -> serde_json::Value {
    json!({"id": format!("{name:0>64}"), "name": name, "bridge": bridge, "enable_ipv6": true,
           "subnets": [{"subnet": subnet}],
           "options": {"com.docker.network.bridge.gateway_mode_ipv6": gateway_mode}})
}

fn container(id: &str, network: &str, address: &str) -> serde_json::Value {
    json!({"id": id, "name": id, "networks": {network: {"ipv6_address": address}}})
}

#[test]
fn gateway_modes_open_and_close_what_docker_says() {
    if !common::require_root("gateway_modes_open_and_close_what_docker_says") {
        return;
    }
    let mut lab = Lab::new("gwm");
    for (bridge, gw, prefix) in [
        ("br-nat", "fd00:7::1/64", "fd00:7::/64"),
        ("br-open", "fd00:8::1/64", "fd00:8::/64"),
        ("br-iso", "fd00:9::1/64", "fd00:9::/64"),
    ] {
        lab.bridge(bridge, gw, None, Some(prefix));
    }
    lab.container("nat", "br-nat", &format!("{NATTED}/64"), "fd00:7::1", None);
    lab.container("open", "br-open", &format!("{OPEN}/64"), "fd00:8::1", None);
    lab.container(
        "iso",
        "br-iso",
        &format!("{ISOLATED}/64"),
        "fd00:9::1",
        None,
    );
    let snapshot = json!({
        "host": lab.host_facts(),
        "networks": [
            network("natted", "br-nat", "fd00:7::/64", "nat"),
            network("open", "br-open", "fd00:8::/64", "nat-unprotected"),
            network("iso", "br-iso", "fd00:9::/64", "isolated"),
        ],
        "containers": [
            container("nat", "natted", NATTED),
            container("open", "open", OPEN),
            container("iso", "iso", ISOLATED),
        ]
    });
    lab.apply(&snapshot, "");
    let _servers = (
        lab.c("nat").tcp_echo_peer(9000),
        lab.c("open").tcp_echo_peer(9000),
        lab.upstream.tcp_echo_peer(7000),
    );
    assert_eq!(
        lab.upstream
            .tcp(sock(OPEN, 9000))
            .expect("nat-unprotected: any port at the container's own address"),
        UPSTREAM_LINK
    );
    assert!(
        lab.upstream.tcp(sock(NATTED, 9000)).is_err(),
        "nat: no direct access"
    );
    assert_eq!(
        lab.host
            .tcp(sock(NATTED, 9000))
            .expect("control: the nat container listens"),
        "fd00:7::1"
    );
    assert_eq!(
        lab.c("nat")
            .tcp(sock(INTERNET, 7000))
            .expect("nat: egress, masqueraded"),
        HOST_UPLINK
    );
    assert!(
        lab.c("iso").tcp(sock(INTERNET, 7000)).is_err(),
        "isolated: no egress"
    );
}
