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
        }],
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
    let config = Config::default();
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
    let p = plan(&Config::default(), &snapshot(vec![with_gw.clone()]));
    let data = &p.ruleset.set(SET_DNAT_ANY).unwrap().elements[0].data;
    assert_eq!(
        data[0],
        crate::nft::Value::Addr("fd00:1::2".parse().unwrap()),
        "first by name is app"
    );
    with_gw.gateway_network = Some("pub".into());
    let p = plan(&Config::default(), &snapshot(vec![with_gw]));
    let data = &p.ruleset.set(SET_DNAT_ANY).unwrap().elements[0].data;
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
    let p = plan(&Config::default(), &snap);
    let pub_net = p.networks.iter().find(|n| n.name == "pub").unwrap();
    assert_eq!(
        (pub_net.mode, pub_net.mode_source),
        (Mode::Nat66, ModeSource::Label)
    );
    let mut config = Config::default();
    config.network_modes.insert("pub".into(), Mode::Routed);
    let p = plan(&config, &snap);
    let pub_net = p.networks.iter().find(|n| n.name == "pub").unwrap();
    assert_eq!(
        (pub_net.mode, pub_net.mode_source),
        (Mode::Routed, ModeSource::Config)
    );
}

#[test]
fn off_networks_are_left_alone() {
    let mut config = Config::default();
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
    assert_eq!(
        p.ruleset.element_count(),
        5,
        "only the constant ICMPv6 types remain"
    );
    assert!(p.sysctls.is_empty());
}

#[test]
fn accept_ra_is_raised_before_forwarding_and_never_from_zero() {
    let p = plan(&Config::default(), &snapshot(vec![]));
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
    let p = plan(&Config::default(), &snap);
    assert!(p.sysctls.iter().all(|s| s.name != "accept_ra"));
}

#[test]
fn every_rule_is_ipv6_only() {
    // Base chains either return for non-IPv6 first or start every rule with an
    // IPv6 match (or an interface match followed by an ip6 one); the other
    // chains are reached only from those.
    use crate::nft::Match;
    let p = plan(&Config::default(), &snapshot(vec![]));
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
                    && rule.matches.iter().any(|m| matches!(m, Match::Ip6 { .. }));
            assert!(
                ipv6_guard,
                "chain {}: rule `{rule}` is not IPv6-only",
                chain.name
            );
        }
    }
}
