//! Host facts read from a real kernel (in namespaces of the test's own) feed
//! the safe NDP proxy: the default router, the host's own addresses, and an
//! address another node on the link answers for get no proxy entry, while
//! an ordinary container address and one dock6 already proxies do.

mod common;

use std::net::Ipv6Addr;

use common::netns::Netns;
use dock6::plan::{Policy, ProxyEntry, plan};
use dock6::snapshot::{Container, Endpoint, Network, Snapshot, Subnet};

const ROUTER: &str = "2001:db8:1::1";
const HOST: &str = "2001:db8:1::10";
const OTHER_NODE: &str = "2001:db8:1::20";
const ALREADY_OURS: &str = "2001:db8:1::30";
const ORDINARY: &str = "2001:db8:1::abcd";

fn addr(text: &str) -> Ipv6Addr {
    text.parse().expect("address")
}

/// A host with `eth0` on 2001:db8:1::/64 and a default route via the
/// router, which also holds the other node's address.
fn link() -> (Netns, Netns) {
    let (host, router) = (Netns::new("hfh"), Netns::new("hfr"));
    host.ip(&format!(
        "link add eth0 type veth peer name eth0 netns {}",
        router.name
    ));
    host.ip(&format!("addr add {HOST}/64 dev eth0 nodad"));
    host.ip("link set eth0 up");
    host.ip(&format!("-6 route add default via {ROUTER} dev eth0"));
    router.ip(&format!("addr add {ROUTER}/64 dev eth0 nodad"));
    router.ip(&format!("addr add {OTHER_NODE}/64 dev eth0 nodad"));
    router.ip("link set eth0 up");
    (host, router)
}

fn snapshot(host: dock6::snapshot::HostFacts) -> Snapshot {
    let lan = Network {
        id: "2".repeat(64),
        name: "lan".into(),
        driver: "bridge".into(),
        enable_ipv6: true,
        subnets: vec![Subnet {
            subnet: "2001:db8:1::/64".parse().expect("subnet"),
            gateway: None,
        }],
        labels: [("dock6.mode".to_string(), "ndp-proxy".to_string())].into(),
        ..Default::default()
    };
    let containers = [ROUTER, HOST, OTHER_NODE, ALREADY_OURS, ORDINARY]
        .iter()
        .enumerate()
        .map(|(i, a)| Container {
            id: format!("c{i}"),
            name: format!("c-{a}"),
            networks: [(
                "lan".to_string(),
                Endpoint {
                    ipv6_address: Some(addr(a)),
                },
            )]
            .into(),
            ..Default::default()
        })
        .collect();
    Snapshot {
        host,
        networks: vec![lan],
        containers,
        starting: Vec::new(),
    }
}

#[test]
fn no_proxy_entry_for_the_router_the_host_or_another_node() {
    if !common::require_root("no_proxy_entry_for_the_router_the_host_or_another_node") {
        return;
    }
    let (host, _router) = link();
    // The host talks to the other node: the neighbour table now says that
    // node answers for its address.
    // (A refused TCP connection is enough: it resolves the address first;
    // repeated while the veth link comes up.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !host
        .exec_ok(&["ip", "-6", "neigh", "show", "dev", "eth0"])
        .contains("lladdr")
    {
        assert!(std::time::Instant::now() < deadline, "no neighbour entry");
        let _refused = host.tcp(std::net::SocketAddr::new(addr(OTHER_NODE).into(), 9));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let facts = host.netlink(|handle| async move {
        let ours = ProxyEntry {
            interface: "eth0".into(),
            address: addr(ALREADY_OURS),
            container: "earlier".into(),
            network: "lan".into(),
        };
        dock6::apply::sync_proxy_entries(&handle, &[ours])
            .await
            .expect("an entry of dock6's own");
        dock6::source::host::host_facts(&handle)
            .await
            .expect("host facts")
    });
    let eth0 = facts.interface("eth0").expect("eth0 in the facts");
    assert!(eth0.neighbours.contains(&addr(OTHER_NODE)), "{eth0:?}");
    assert!(eth0.dock6_proxies.contains(&addr(ALREADY_OURS)), "{eth0:?}");
    assert_eq!(facts.default_routers, [addr(ROUTER)]);
    assert_eq!(facts.forwarding, Some(0), "a fresh namespace");

    let p = plan(&Policy::default(), &snapshot(facts));
    let mut proxied: Vec<Ipv6Addr> = p.proxy_entries.iter().map(|e| e.address).collect();
    proxied.sort();
    assert_eq!(
        proxied,
        [addr(ALREADY_OURS), addr(ORDINARY)],
        "notes: {:?}",
        p.notes
    );
    let spoof_checked: Vec<&dock6::nft::Value> = p
        .ruleset
        .set("onlink_endpoints")
        .expect("set onlink_endpoints")
        .elements
        .iter()
        .flat_map(|e| e.key.iter())
        .collect();
    let checked = |a: &str| spoof_checked.contains(&&dock6::nft::Value::Addr(addr(a)));
    assert!(
        checked(ORDINARY) && !checked(ROUTER) && !checked(OTHER_NODE),
        "the ordinary container's address is source-checked, the real router's and node's are not: {spoof_checked:?}"
    );
    for refused in [ROUTER, HOST, OTHER_NODE] {
        assert!(
            p.notes
                .iter()
                .any(|n| n.text.contains(&format!("c-{refused}"))),
            "the container claiming {refused} is named: {:?}",
            p.notes
        );
    }
}

const PORTS: usize = 200;

/// `docker0` with `PORTS` container veths as its ports (their other ends in
/// a second namespace, as a container's are), each container's address a
/// neighbour of the bridge; and an operator's `br-lan` with a port of its
/// own. Made with one `ip -batch` per namespace.
fn many_veths(host: &Netns, containers: &Netns) {
    let mut batch = String::from(
        "link add docker0 type bridge\n\
         link set docker0 up\n\
         addr add fd00:d0c::1/64 dev docker0 nodad\n\
         link add br-lan type bridge\n\
         link set br-lan up\n\
         addr add 2001:db8:5::1/64 dev br-lan nodad\n\
         link set lanport master br-lan up\n",
    );
    batch.insert_str(
        0,
        &format!(
            "link add lanport type veth peer name lanpeer netns {}\n",
            containers.name
        ),
    );
    for i in 0..PORTS {
        batch.push_str(&format!(
            "link add veth{i} type veth peer name c{i} netns {ns}\n\
             link set veth{i} master docker0 up\n\
             neigh add fd00:d0c::{n:x} lladdr 02:00:00:00:{hi:02x}:{lo:02x} dev docker0 nud permanent\n",
            ns = containers.name,
            n = i + 2,
            hi = i / 256,
            lo = i % 256,
        ));
    }
    let path = std::env::temp_dir().join(format!("{}.batch", host.name));
    std::fs::write(&path, batch).expect("batch file");
    host.exec_ok(&[
        "ip",
        "-batch",
        path.to_str().expect("a UTF-8 temporary path"),
    ]);
    let _ = std::fs::remove_file(&path);
}

/// A host whose Docker bridge has hundreds of containers: its host facts are
/// those of the interfaces that carry addresses (the uplink, the bridges,
/// an operator's `br-lan`), never one per container veth; only the uplink's
/// neighbours are read, not a bridge's hundreds.
#[test]
fn host_facts_do_not_grow_with_container_veths() {
    if !common::require_root("host_facts_do_not_grow_with_container_veths") {
        return;
    }
    let (host, _router) = link();
    let containers = Netns::new("hfc");
    many_veths(&host, &containers);
    assert!(
        host.exec_ok(&["ip", "-o", "link", "show", "master", "docker0"])
            .lines()
            .count()
            == PORTS,
        "the bridge has its ports"
    );
    // The uplink's neighbour, as in the test above: still read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !host
        .exec_ok(&["ip", "-6", "neigh", "show", "dev", "eth0"])
        .contains("lladdr")
    {
        assert!(std::time::Instant::now() < deadline, "no neighbour entry");
        let _refused = host.tcp(std::net::SocketAddr::new(addr(OTHER_NODE).into(), 9));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (facts, links) = host.netlink(|handle| async move {
        let facts = dock6::source::host::host_facts(&handle)
            .await
            .expect("host facts");
        // What each pass's proxy-entry and host-route sync names links by.
        let links = dock6::apply::link_names(&handle).await.expect("links");
        (facts, links)
    });
    let mut linked: Vec<&str> = links.values().map(String::as_str).collect();
    linked.sort();
    assert_eq!(
        linked,
        ["br-lan", "docker0", "eth0", "lo"],
        "the links a pass names, without the bridges' ports"
    );
    let mut names: Vec<&str> = facts.interfaces.iter().map(|i| i.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["br-lan", "docker0", "eth0"],
        "one interface per bridge and uplink, none per port"
    );
    let neighbours: usize = facts.interfaces.iter().map(|i| i.neighbours.len()).sum();
    assert_eq!(
        neighbours, 1,
        "the uplink's one neighbour, not the bridge's {PORTS}: {facts:?}"
    );
    let eth0 = facts.interface("eth0").expect("eth0");
    assert!(eth0.neighbours.contains(&addr(OTHER_NODE)), "{eth0:?}");
    assert_eq!(facts.default_routers, [addr(ROUTER)]);
    let br_lan = facts.interface("br-lan").expect("the operator's bridge");
    assert_eq!(
        br_lan.onlink_prefixes,
        ["2001:db8:5::/64".parse::<ipnet::Ipv6Net>().unwrap()]
    );
    let docker0 = facts.interface("docker0").expect("docker0");
    assert_eq!(
        docker0.addresses,
        ["fd00:d0c::1/64".parse::<ipnet::Ipv6Net>().unwrap()]
    );
}
