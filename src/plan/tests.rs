//! Planner properties that golden files alone would not make obvious.

use super::*;
use crate::snapshot::{Container, Endpoint, HostFacts, Interface, Network, PortBinding, Subnet};

fn host() -> HostFacts {
    HostFacts {
        default_route_interface: Some("eth0".into()),
        interfaces: vec![Interface {
            name: "eth0".into(),
            accept_ra: Some(1),
            addresses: vec!["2001:db8:1::10/64".parse().unwrap()],
            onlink_prefixes: vec!["2001:db8:1::/64".parse().unwrap()],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn network(id: &str, name: &str, subnet: &str) -> Network {
    Network {
        id: id.repeat(64 / id.len()),
        name: name.into(),
        driver: "bridge".into(),
        enable_ipv6: true,
        subnets: vec![Subnet {
            subnet: subnet.parse().unwrap(),
            gateway: None,
        }],
        ..Default::default()
    }
}

fn container(name: &str, nets: &[(&str, &str)], port: Option<(&str, &str)>) -> Container {
    let mut c = Container {
        id: name.into(),
        name: name.into(),
        ..Default::default()
    };
    for (net, addr) in nets {
        c.networks.insert(
            net.to_string(),
            Endpoint {
                ipv6_address: Some(addr.parse().unwrap()),
            },
        );
    }
    if let Some((cport, hport)) = port {
        let b = PortBinding {
            host_ip: "::".into(),
            host_port: hport.into(),
        };
        c.ports.insert(cport.into(), Some(vec![b]));
    }
    c
}

fn snapshot(containers: Vec<Container>) -> Snapshot {
    Snapshot {
        host: host(),
        networks: vec![
            network("a", "app", "fd00:1::/64"),
            network("b", "pub", "2001:db8:2::/64"),
        ],
        containers,
    }
}

#[test]
fn one_more_container_adds_elements_never_rules() {
    let config = Policy::default();
    let before = plan(
        &config,
        &snapshot(vec![container(
            "c1",
            &[("pub", "2001:db8:2::2")],
            Some(("80/tcp", "80")),
        )]),
    );
    let after = plan(
        &config,
        &snapshot(vec![
            container("c1", &[("pub", "2001:db8:2::2")], Some(("80/tcp", "80"))),
            container("c2", &[("pub", "2001:db8:2::3")], Some(("80/tcp", "81"))),
        ]),
    );
    assert_eq!(before.ruleset.chains, after.ruleset.chains);
    assert_eq!(
        after.ruleset.element_count(),
        before.ruleset.element_count() + 2
    );
}

#[test]
fn dnat_targets_the_gateway_network_else_the_first_by_name() {
    let mut with_gw = container(
        "c",
        &[("app", "fd00:1::2"), ("pub", "2001:db8:2::2")],
        Some(("80/tcp", "8080")),
    );
    let p = plan(&Policy::default(), &snapshot(vec![with_gw.clone()]));
    let data = &p.ruleset.set(MAP_DNAT_ANY).unwrap().elements[0].data;
    assert_eq!(
        data[0],
        crate::nft::Value::Addr("fd00:1::2".parse().unwrap()),
        "first by name is app"
    );
    with_gw.gateway_network = Some("pub".into());
    let p = plan(&Policy::default(), &snapshot(vec![with_gw]));
    let data = &p.ruleset.set(MAP_DNAT_ANY).unwrap().elements[0].data;
    assert_eq!(
        data[0],
        crate::nft::Value::Addr("2001:db8:2::2".parse().unwrap())
    );
}

#[test]
fn mode_precedence_is_config_then_label_then_automatic() {
    let mut snap = snapshot(vec![]);
    snap.networks[1]
        .labels
        .insert("dock6.mode".into(), "nat66".into());
    let p = plan(&Policy::default(), &snap);
    let pub_net = p.networks.iter().find(|n| n.name == "pub").unwrap();
    assert_eq!(
        (pub_net.mode, pub_net.mode_source),
        (Mode::Nat66, ModeSource::Label)
    );
    let mut config = Policy::default();
    config.network_modes.insert("pub".into(), Mode::Routed);
    let p = plan(&config, &snap);
    let pub_net = p.networks.iter().find(|n| n.name == "pub").unwrap();
    assert_eq!(
        (pub_net.mode, pub_net.mode_source),
        (Mode::Routed, ModeSource::Config)
    );
}

#[test]
fn off_networks_get_nothing_and_stay_closed() {
    let mut config = Policy::default();
    config.network_modes.insert("app".into(), Mode::Off);
    config.network_modes.insert("pub".into(), Mode::Off);
    let p = plan(
        &config,
        &snapshot(vec![container(
            "c",
            &[("app", "fd00:1::2")],
            Some(("80/tcp", "80")),
        )]),
    );
    assert!(p.ruleset.set(SET_BRIDGES).unwrap().elements.is_empty());
    let unmanaged = &p.ruleset.set("unmanaged").unwrap().elements;
    assert_eq!(
        unmanaged.len(),
        2,
        "both bridges are guarded: {unmanaged:?}"
    );
    assert_eq!(
        p.ruleset.element_count(),
        5 + 2,
        "only the constant ICMPv6 types and the guarded bridges remain"
    );
    assert!(p.sysctls.is_empty());
    assert!(p.proxy_entries.is_empty());
}

#[test]
fn accept_ra_is_raised_before_forwarding_and_never_from_zero() {
    let p = plan(&Policy::default(), &snapshot(vec![]));
    let keys: Vec<String> = p.sysctls.iter().map(|s| s.key()).collect();
    assert_eq!(
        keys,
        [
            "net.ipv6.conf.eth0.accept_ra",
            "net.ipv6.conf.all.forwarding"
        ]
    );
    let mut snap = snapshot(vec![]);
    snap.host.interfaces[0].accept_ra = Some(0);
    let p = plan(&Policy::default(), &snap);
    assert!(p.sysctls.iter().all(|s| s.name != "accept_ra"));
}

#[test]
fn every_rule_is_ipv6_only() {
    // Base chains either return for non-IPv6 first or start every rule with an
    // IPv6 match (or an interface match followed by an ip6 one); the other
    // chains are reached only from those. A statement that loads `ip6 saddr`
    // (`snat ip6 to ip6 saddr map @m`) carries nft's implicit `meta nfproto
    // ipv6` too (the encoder emits it).
    use crate::nft::{Match, Statement};
    let p = plan(&Policy::default(), &snapshot(vec![]));
    for chain in p.ruleset.chains.iter().filter(|c| c.base.is_some()) {
        if chain
            .rules
            .first()
            .is_some_and(|r| r.matches == [Match::NfprotoIpv6 { negate: true }])
        {
            continue;
        }
        for rule in &chain.rules {
            let first = rule.matches.first();
            let ipv6_guard = matches!(first, Some(Match::NfprotoIpv6 { .. }))
                || matches!(first, Some(Match::IfName { .. }))
                    && (rule.matches.iter().any(|m| matches!(m, Match::Ip6 { .. }))
                        || rule
                            .statements
                            .iter()
                            .any(|s| matches!(s, Statement::SnatBySaddrMap { .. })));
            assert!(
                ipv6_guard,
                "chain {}: rule `{rule}` is not IPv6-only",
                chain.name
            );
        }
    }
}

#[test]
fn unfiltered_networks_are_forwarded_but_neither_filtered_nor_natted() {
    let mut config = Policy::default();
    config.network_modes.insert("pub".into(), Mode::Unfiltered);
    let p = plan(
        &config,
        &snapshot(vec![container(
            "c",
            &[("pub", "2001:db8:2::2")],
            Some(("80/tcp", "8080")),
        )]),
    );
    let elements = |set: &str| p.ruleset.set(set).unwrap().elements.len();
    assert_eq!(elements("unfiltered"), 1);
    assert_eq!(elements(SET_BRIDGES), 1, "only app is filtered by dock6");
    assert_eq!(elements(MAP_DNAT_ANY), 0, "no NAT of any kind");
    assert_eq!(elements(SET_OPEN_PORTS), 0);
    assert!(p.sysctls.iter().any(|s| s.name == "forwarding"));
    assert!(
        p.notes
            .iter()
            .any(|n| n.level == Level::Warn && n.text.contains("unfiltered")),
        "said as a warning: {:?}",
        p.notes
    );
}

#[test]
fn forwarding_dock6_turns_on_is_for_docker_only() {
    let has_guard = |snap: &Snapshot| {
        let p = plan(&Policy::default(), snap);
        p.ruleset.chains.iter().any(|c| c.name == CHAIN_NOT_DOCKER)
    };
    let mut snap = snapshot(vec![]);
    assert!(!has_guard(&snap), "unknown: other traffic is left alone");
    snap.host.forwarding = Some(1);
    assert!(!has_guard(&snap), "already on: other traffic is left alone");
    snap.host.forwarding_enabled_by_dock6 = true;
    assert!(has_guard(&snap), "on because dock6 turned it on");
    snap.host.forwarding = Some(0);
    snap.host.forwarding_enabled_by_dock6 = false;
    assert!(has_guard(&snap), "dock6 is about to turn it on");
    snap.networks.clear();
    assert!(
        !has_guard(&snap),
        "nothing to forward: dock6 leaves it at 0"
    );
}

#[test]
fn sources_of_a_subnet_covering_the_link_are_checked_per_container() {
    let mut snap = snapshot(vec![container("c", &[("lan", "2001:db8:1::abcd")], None)]);
    let mut lan = network("c", "lan", "2001:db8:1::/64");
    lan.labels.insert("dock6.mode".into(), "ndp-proxy".into());
    snap.networks.push(lan);
    let ruleset = plan(&Policy::default(), &snap).ruleset;
    let text = ruleset.to_string();
    assert!(
        !text.contains("ip6 saddr 2001:db8:1::/64 drop"),
        "the router's and the host's own sources are in that subnet:\n{text}"
    );
    assert!(text.contains("ip6 saddr fd00:1::/64 drop"), "{text}");
    assert_eq!(ruleset.set("onlink_endpoints").unwrap().elements.len(), 1);
}

#[test]
fn no_proxy_entry_for_an_address_dock6_cannot_own() {
    let mut snap = snapshot(vec![
        container("ok", &[("lan", "2001:db8:1::abcd")], None),
        container("router", &[("lan", "2001:db8:1::1")], None),
        container("host", &[("lan", "2001:db8:1::10")], None),
    ]);
    snap.host.default_routers = vec!["2001:db8:1::1".parse().unwrap()];
    let mut lan = network("c", "lan", "2001:db8:1::/64");
    lan.labels.insert("dock6.mode".into(), "ndp-proxy".into());
    snap.networks.push(lan);
    let p = plan(&Policy::default(), &snap);
    let proxied: Vec<String> = p
        .proxy_entries
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(proxied, ["2001:db8:1::abcd"]);
    for name in ["\"router\"", "\"host\""] {
        assert!(
            p.notes.iter().any(|n| n.text.contains(name)),
            "{name} named in a note: {:?}",
            p.notes
        );
    }
}

#[test]
fn removed_and_moved_mappings_are_found() {
    let p = plan(
        &Policy::default(),
        &snapshot(vec![
            container("a", &[("app", "fd00:1::2")], Some(("80/tcp", "8080"))),
            container("b", &[("app", "fd00:1::3")], Some(("53/udp", "5353"))),
        ]),
    );
    let mut moved = p.ruleset.clone();
    let dnat = moved
        .sets
        .iter_mut()
        .find(|s| s.name == MAP_DNAT_ANY)
        .unwrap();
    dnat.elements
        .retain(|e| e.key[1] != crate::nft::Value::Port(5353));
    dnat.elements[0].data[0] = crate::nft::Value::Addr("fd00:1::99".parse().unwrap());
    let removed = removed_dnat_targets(&p.ruleset, &moved);
    let mut ports: Vec<u16> = removed.iter().map(|t| t.host_port).collect();
    ports.sort();
    assert_eq!(ports, [5353, 8080], "{removed:?}");
    assert!(removed_dnat_targets(&p.ruleset, &p.ruleset).is_empty());
}

#[test]
fn odd_docker_data_adds_no_element_target_or_proxy_entry() {
    let mut snap = snapshot(vec![
        container(
            "everywhere",
            &[("all", "2001:db8:9::2")],
            Some(("80/tcp", "8080")),
        ),
        container("stray", &[("app", "fd00:9::2")], Some(("80/tcp", "8081"))),
        container("ll", &[("pub", "fe80::2")], Some(("80/tcp", "8082"))),
    ]);
    let mut all = network("c", "all", "::/0");
    all.labels.insert("dock6.mode".into(), "ndp-proxy".into());
    snap.networks.push(all);
    let p = plan(&Policy::default(), &snap);
    assert_eq!(p.ruleset.set(MAP_DNAT_ANY).unwrap().elements.len(), 0);
    assert_eq!(p.ruleset.set(SET_OPEN_PORTS).unwrap().elements.len(), 0);
    assert!(p.proxy_entries.is_empty());
    assert!(
        !p.ruleset.to_string().contains("::/0"),
        "a refused subnet reaches no rule"
    );
    assert!(
        p.networks.iter().all(|n| n.name != "all"),
        "the ::/0 network is refused"
    );
    let warned = |who: &str| {
        p.notes
            .iter()
            .any(|n| n.level == Level::Warn && n.text.contains(who))
    };
    assert!(
        warned("\"all\"") && warned("\"stray\"") && warned("\"ll\""),
        "{:?}",
        p.notes
    );
}

#[test]
fn loopback_and_ipv4_mapped_networks_and_addresses_get_nothing() {
    let mut snap = snapshot(vec![
        container("lo", &[("lo", "::1")], Some(("80/tcp", "8080"))),
        container(
            "mapped",
            &[("pub", "::ffff:192.0.2.5")],
            Some(("80/tcp", "8081")),
        ),
    ]);
    snap.networks.push(network("c", "lo", "::1/128"));
    let p = plan(&Policy::default(), &snap);
    assert_eq!(p.ruleset.set(MAP_DNAT_ANY).unwrap().elements.len(), 0);
    assert_eq!(p.ruleset.set(SET_OPEN_PORTS).unwrap().elements.len(), 0);
    assert!(p.networks.iter().all(|n| n.name != "lo"), "::1/128 refused");
    assert!(
        p.notes.iter().any(|n| n.text.contains("IPv4-mapped")),
        "{:?}",
        p.notes
    );
}

#[test]
fn docker_bridges_are_known_by_the_names_docker_gives() {
    for name in ["docker0", "br-0123456789ab", "br-ffffffffffff"] {
        assert!(docker_made_bridge_name(name), "{name}");
    }
    for name in [
        "br-lan",
        "br-ex",
        "br-0123456789a",
        "br-0123456789abc",
        "br-0123456789AB",
        "br-0123456789ag",
        "docker1",
        "eth0",
    ] {
        assert!(!docker_made_bridge_name(name), "{name}");
    }
}

/// An operator's `br-lan` (a router's LAN, OpenStack's `br-ex`) is excluded
/// by name from every `br-*` match; Docker's own bridges never are, whether
/// Docker lists them (custom names included) or not yet.
#[test]
fn the_operators_br_interfaces_are_excluded_from_dockers() {
    let mut snap = snapshot(vec![]);
    let mut custom = network("c", "custom", "fd00:c::/64");
    custom
        .options
        .insert("com.docker.network.bridge.name".into(), "br-mine".into());
    snap.networks.push(custom);
    for name in ["br-lan", "br-ex", "br-mine", "br-0123456789ab", "docker0"] {
        snap.host.interfaces.push(Interface {
            name: name.into(),
            ..Default::default()
        });
    }
    let p = plan(&Policy::default(), &snap);
    let names: Vec<String> = p
        .ruleset
        .set("operator_bridges")
        .unwrap()
        .elements
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(names, ["\"br-ex\"", "\"br-lan\""]);
    let text = p.ruleset.to_string();
    for line in text.lines().filter(|l| l.contains("\"br-*\"")) {
        assert!(
            line.contains("!= @operator_bridges"),
            "a br-* match that does not exclude the operator's interfaces: {line}"
        );
    }
}
