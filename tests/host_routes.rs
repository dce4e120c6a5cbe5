//! dock6's `/128` host routes against a real kernel, in a namespace of the
//! test's own: added tagged (`proto 214`), winning over the uplink's
//! connected route for the same prefix, stale ones removed, an operator's
//! route never touched, and all of dock6's removed by cleanup.

mod common;

use common::netns::Netns;
use dock6::apply::{remove_all_dock6_routes, route_dump_connection, sync_host_routes};
use dock6::plan::HostRoute;

fn route(address: &str) -> HostRoute {
    HostRoute {
        address: address.parse().expect("address"),
        interface: "br0".into(),
        container: "c1".into(),
    }
}

/// `eth0` and `br0` both with the connected route 2001:db8:1::/64, the
/// uplink's first: the shape of an ndp-proxy network over the whole /64.
fn namespace() -> Netns {
    let ns = Netns::new("hrt");
    ns.ip("link add eth0 type veth peer name eth1");
    ns.ip("link add br0 type bridge");
    ns.ip("addr add 2001:db8:1::10/64 dev eth0 nodad");
    ns.ip("link set eth1 up");
    ns.ip("link set eth0 up");
    ns.ip("addr add 2001:db8:1::ff:1/64 dev br0 nodad");
    ns.ip("link set br0 up");
    ns
}

fn route_dev(ns: &Netns, address: &str) -> String {
    let out = ns.exec_ok(&["ip", "-6", "route", "get", address]);
    out.split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Runs `f` in the namespace with a netlink connection: the agent's, whose
/// route dumps the kernel filters (`strict`), or a plain one.
fn with_netlink<T: Send, Fut: std::future::Future<Output = T>>(
    ns: &Netns,
    strict: bool,
    f: impl FnOnce(rtnetlink::Handle) -> Fut + Send,
) -> T {
    match strict {
        true => ns.netlink_over(|| route_dump_connection().expect("strict checking"), f),
        false => ns.netlink(f),
    }
}

#[test]
fn host_routes_are_tagged_synced_and_cleaned_up() {
    if !common::require_root("host_routes_are_tagged_synced_and_cleaned_up") {
        return;
    }
    for strict in [true, false] {
        synced_and_cleaned_up(strict);
    }
}

fn synced_and_cleaned_up(strict: bool) {
    let ns = namespace();
    assert_eq!(
        route_dev(&ns, "2001:db8:1::abcd"),
        "eth0",
        "control: without a host route the uplink wins"
    );
    ns.ip("-6 route add 2001:db8:1::77/128 dev br0");
    let report = with_netlink(&ns, strict, |h| async move {
        sync_host_routes(&h, &[route("2001:db8:1::abcd"), route("2001:db8:1::5")])
            .await
            .expect("sync")
    });
    assert_eq!(report.added.len(), 2, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(route_dev(&ns, "2001:db8:1::abcd"), "br0");
    let shown = ns.exec_ok(&["ip", "-6", "route", "show", "proto", "214"]);
    assert!(shown.contains("2001:db8:1::abcd dev br0"), "{shown}");

    let report = with_netlink(&ns, strict, |h| async move {
        sync_host_routes(&h, &[route("2001:db8:1::abcd")])
            .await
            .expect("second sync")
    });
    assert!(report.added.is_empty(), "already there: {report:?}");
    assert_eq!(report.removed.len(), 1, "the stale one: {report:?}");
    assert_eq!(route_dev(&ns, "2001:db8:1::5"), "eth0");

    let removed = with_netlink(&ns, strict, |h| async move {
        remove_all_dock6_routes(&h).await.expect("cleanup")
    });
    assert_eq!(removed.len(), 1);
    assert_eq!(route_dev(&ns, "2001:db8:1::abcd"), "eth0");
    assert_eq!(
        route_dev(&ns, "2001:db8:1::77"),
        "br0",
        "the operator's own route is left alone"
    );
}
