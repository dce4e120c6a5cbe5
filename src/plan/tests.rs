//! Planner properties that golden files alone would not make obvious.

use super::*;
use std::net::Ipv6Addr;

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
        starting: Vec::new(),
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

/// What an IPv4 packet meets in `table`: each rule it can reach and match
/// that does something to it (one line per rule); empty when IPv4 leaves
/// the table as it came.
///
/// The property, for an `inet` table whose base chains all have policy
/// accept: in every base chain, a rule an IPv4 packet can reach and match
/// carries no statement and its verdict is none, `return` or `accept`
/// (what the chain's policy does anyway); never `drop`, `jump` or `goto`.
/// So no IPv4 packet enters a regular chain, and the regular chains need
/// no guard of their own.
///
/// - IPv4 cannot match a rule that has `meta nfproto ipv6`, or any match
///   or statement that implies it (see [`ipv6_only_match`]). A negated
///   `meta nfproto != ipv6` matches IPv4, and guards nothing.
/// - IPv4 cannot reach the rules after one that sends every non-IPv6
///   packet out of the chain: `meta nfproto != ipv6 return` (or accept),
///   with no other match.
fn rules_touching_ipv4(table: &Table) -> Vec<String> {
    use crate::nft::Verdict;
    let mut out = Vec::new();
    for chain in table.chains.iter().filter(|c| c.base.is_some()) {
        for rule in &chain.rules {
            if ipv6_only(rule) {
                continue;
            }
            let leaves = matches!(rule.verdict, Some(Verdict::Return | Verdict::Accept));
            let harmless = rule.statements.is_empty() && (leaves || rule.verdict.is_none());
            if !harmless {
                out.push(format!("chain {}: `{rule}`", chain.name));
            }
            let every_ipv4 = rule
                .matches
                .iter()
                .all(|m| *m == crate::nft::Match::NfprotoIpv6 { negate: true });
            if harmless && leaves && every_ipv4 {
                break;
            }
        }
    }
    out
}

/// The rule matches IPv6 packets only: one of its matches, or a statement
/// that loads an IPv6 header field (the encoder puts nft's implicit
/// `meta nfproto ipv6` in front, before the statement acts), says so.
fn ipv6_only(rule: &crate::nft::Rule) -> bool {
    use crate::nft::{DnatKey, Statement};
    let statement_needs_ipv6 = |s: &Statement| match s {
        Statement::SnatBySaddrMap { .. } => true,
        Statement::DnatMap { key, .. } => *key == DnatKey::AddrProtoPort,
        Statement::MarkOr(_)
        | Statement::Masquerade
        | Statement::Snat(_)
        | Statement::SnatPrefix(_)
        | Statement::DnatPrefix(_) => false,
        // `reject with icmpv6 …` puts nft's `meta nfproto ipv6` in front.
        Statement::Reject(with) => *with == crate::nft::RejectWith::Icmpv6PortUnreachable,
    };
    rule.matches.iter().any(ipv6_only_match) || rule.statements.iter().any(statement_needs_ipv6)
}

/// Whether no IPv4 packet can satisfy `m`. Every variant is listed, so a
/// new match kind must be placed here.
fn ipv6_only_match(m: &crate::nft::Match) -> bool {
    use crate::nft::Match;
    match m {
        Match::NfprotoIpv6 { negate } => !negate,
        // The encoder emits `meta nfproto ipv6` before loading from the
        // IPv6 header (as nft does), negated comparisons included; and
        // `icmpv6 ...` also needs it.
        Match::Ip6 { .. }
        | Match::Ip6InSet { .. }
        | Match::DaddrProtoPortInSet { .. }
        | Match::Icmpv6TypeInSet { .. }
        | Match::Icmpv6TypeIs(_) => true,
        // The kernel's `ct original ip6 daddr` ends the rule for a
        // connection that is not IPv6, whatever the comparison.
        Match::CtOriginalDaddr { .. } => true,
        Match::IfName { .. }
        | Match::IfNameInSet { .. }
        | Match::CtState(_)
        | Match::CtStatusDnat
        // The transport header's bytes: IPv4 has them too.
        | Match::NdTargetInSet { .. }
        | Match::ProtoPortInSet { .. }
        | Match::L4ProtoIs(_)
        | Match::FibDaddrLocal => false,
    }
}

/// dock6's table leaves IPv4 alone, in every golden scenario (each under
/// its own dock6.toml) and in the fail-closed bootstrap table.
#[test]
fn every_rule_is_ipv6_only() {
    let mut bootstrap_host = host();
    for name in ["docker0", "br-0123456789ab", "br-lan"] {
        bootstrap_host.interfaces.push(Interface {
            name: name.into(),
            ..Default::default()
        });
    }
    let mut tables = vec![("bootstrap".to_string(), bootstrap_table(&bootstrap_host))];
    for s in super::planner::tests::scenarios() {
        tables.push((s.name, plan(&s.policy, &s.snapshot).ruleset));
    }
    for (name, table) in &tables {
        assert!(
            table.chains.iter().any(|c| c.base.is_some()),
            "{name}: base chains"
        );
        let touching = rules_touching_ipv4(table);
        assert!(
            touching.is_empty(),
            "{name}: rules that act on IPv4:\n{}",
            touching.join("\n")
        );
    }
}

/// The check above finds what it must: a negated nfproto match with a
/// drop, a rule placed before the chain's IPv4 guard, a jump that takes
/// IPv4 into a regular chain, a guard that does not cover all of IPv4, a
/// chain without its guard; and lets IPv6-only rules be, guard or not.
#[test]
fn rules_that_act_on_ipv4_are_found() {
    use crate::nft::{
        AddrField, BaseChain, Chain, ChainKind, Hook, Match, Priority, Rule, StandardPriority, rule,
    };
    let table = |rules: &[Rule]| Table {
        name: "t".into(),
        sets: Vec::new(),
        chains: vec![
            Chain {
                name: "forward".into(),
                base: Some(BaseChain {
                    kind: ChainKind::Filter,
                    hook: Hook::Forward,
                    priority: Priority {
                        base: StandardPriority::Filter,
                        offset: 0,
                    },
                }),
                rules: rules.to_vec(),
            },
            Chain {
                name: "to_docker".into(),
                base: None,
                rules: vec![rule().drop()],
            },
        ],
    };
    let guard = rule().not_ipv6().ret();
    let jump = rule().oifname("br-x").jump("to_docker");
    let ipv6_drop = rule().ipv6().oifname("br-y").drop();
    let loopback = "::1/128".parse().unwrap();
    let ip6_drop = rule()
        .iifname("br-y")
        .matching(Match::Ip6 {
            field: AddrField::Saddr,
            negate: true,
            net: loopback,
        })
        .drop();
    for (what, rules) in [
        (
            "guarded",
            vec![guard.clone(), jump.clone(), ipv6_drop.clone()],
        ),
        ("IPv6-only rules", vec![ipv6_drop.clone(), ip6_drop.clone()]),
    ] {
        assert_eq!(
            rules_touching_ipv4(&table(&rules)),
            Vec::<String>::new(),
            "control: {what}"
        );
    }
    let negated_drop = rule().not_ipv6().drop();
    let early_drop = rule().iifname("eth0").drop();
    let partial_guard = rule().not_ipv6().iifname("eth0").ret();
    for (what, rules, first) in [
        (
            "meta nfproto != ipv6 drop",
            vec![negated_drop.clone(), ipv6_drop.clone()],
            &negated_drop,
        ),
        (
            "a drop before the guard",
            vec![early_drop.clone(), guard.clone()],
            &early_drop,
        ),
        (
            "a jump before the guard",
            vec![jump.clone(), guard.clone()],
            &jump,
        ),
        (
            "a guard for one interface",
            vec![partial_guard, jump.clone()],
            &jump,
        ),
        ("no guard", vec![ipv6_drop.clone(), jump.clone()], &jump),
    ] {
        let found = rules_touching_ipv4(&table(&rules));
        assert_eq!(found, [format!("chain forward: `{first}`")], "{what}");
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

/// A host whose uplink took an address in the provider's prefix `provider`
/// (announced by the router) beside its static 2001:db8:1::/64.
fn renumbered_host(provider: Option<&str>, delegated: Option<&str>) -> HostFacts {
    let mut host = host();
    let eth0 = &mut host.interfaces[0];
    if let Some(p) = provider {
        let p: Ipv6Net = p.parse().unwrap();
        eth0.onlink_prefixes.push(p);
        eth0.dynamic_prefixes.push(p);
        eth0.addresses
            .push(Ipv6Net::new(map_host_bits(&p, 0x10), 64).unwrap());
    }
    host.delegated_prefixes = delegated.iter().map(|d| d.parse().unwrap()).collect();
    host
}

fn map_host_bits(p: &Ipv6Net, host: u128) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(p.network()) | host)
}

fn following(source: PrefixSource, subnet: &str, host: HostFacts) -> Plan {
    let mut config = Policy::default();
    config.network_modes.insert("web".into(), Mode::Nptv6);
    config.network_prefixes.insert("web".into(), source);
    let snap = Snapshot {
        host,
        networks: vec![network("w", "web", subnet)],
        containers: vec![container(
            "c",
            &[(
                "web",
                &subnet
                    .split("::/")
                    .next()
                    .map(|p| format!("{p}::2"))
                    .unwrap(),
            )],
            Some(("80/tcp", "8080")),
        )],
        starting: Vec::new(),
    };
    plan(&config, &snap)
}

fn web(p: &Plan) -> &NetworkPlan {
    p.networks.iter().find(|n| n.name == "web").unwrap()
}

#[test]
fn nptv6_follows_the_uplinks_provider_prefix() {
    let a = following(
        PrefixSource::Uplink,
        "fd00:b6:7:0:d6::/80",
        renumbered_host(Some("2001:db8:a::/64"), None),
    );
    assert_eq!(web(&a).mode, Mode::Nptv6);
    assert_eq!(web(&a).nptv6, Some("2001:db8:a:0:d6::/80".parse().unwrap()));
    assert_eq!(web(&a).nptv6_source, Some(PrefixSource::Uplink));
    let proxied: Vec<String> = a
        .proxy_entries
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(
        proxied,
        ["2001:db8:a:0:d6::2"],
        "the mapped address is on-link: proxied"
    );

    let b = following(
        PrefixSource::Uplink,
        "fd00:b6:7:0:d6::/80",
        renumbered_host(Some("2001:db8:b::/64"), None),
    );
    assert_eq!(web(&b).nptv6, Some("2001:db8:b:0:d6::/80".parse().unwrap()));
    let proxied: Vec<String> = b
        .proxy_entries
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(
        proxied,
        ["2001:db8:b:0:d6::2"],
        "none left for the old prefix"
    );
    assert!(
        !b.ruleset.to_string().contains("2001:db8:a:"),
        "nothing of the old mapping stays in the rules"
    );
}

#[test]
fn nptv6_follows_the_delegated_prefix_and_needs_no_proxy_entry() {
    let p = following(
        PrefixSource::Delegated,
        "fd00:b6:7:5::/64",
        renumbered_host(None, Some("2001:db8:100::/56")),
    );
    assert_eq!(web(&p).nptv6, Some("2001:db8:100:5::/64".parse().unwrap()));
    assert!(p.proxy_entries.is_empty(), "{:?}", p.proxy_entries);
    assert!(
        p.ruleset.to_string().contains("2001:db8:100:5::/64"),
        "the mapped prefix is in the rules"
    );
}

#[test]
fn nptv6_without_a_host_prefix_waits_closed_with_one_warning() {
    for (source, what) in [
        (PrefixSource::Uplink, "the uplink has no global prefix now"),
        (
            PrefixSource::Delegated,
            "no prefix is delegated to the host now",
        ),
    ] {
        // The uplink keeps its address but no on-link prefix, and nothing
        // is delegated: there is no provider prefix to follow.
        let mut host = host();
        host.interfaces[0].onlink_prefixes.clear();
        let p = following(source, "fd00:b6:7:5::/64", host);
        assert_eq!(web(&p).mode, Mode::Off, "{source}");
        assert_eq!(web(&p).nptv6, None);
        let warnings: Vec<&Note> = p
            .notes
            .iter()
            .filter(|n| n.level == Level::Warn && n.text.contains("network \"web\""))
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].text.contains(what), "{}", warnings[0].text);
        assert!(p.proxy_entries.is_empty());
        assert!(
            !p.ruleset.to_string().contains("fd00:b6:7:5::2"),
            "no port of a closed network is published"
        );
    }
}

#[test]
fn nptv6_following_the_host_keeps_todays_refusals() {
    // The whole /64 would be the mapped prefix: it holds the host's address.
    let p = following(
        PrefixSource::Uplink,
        "fd00:b6:7::/64",
        renumbered_host(Some("2001:db8:a::/64"), None),
    );
    assert!(p.networks.iter().all(|n| n.name != "web"), "refused");
    assert!(
        p.notes
            .iter()
            .any(|n| n.text.contains("holds 2001:db8:a::10")),
        "{:?}",
        p.notes
    );
    // A subnet shorter than the provider's prefix.
    let p = following(
        PrefixSource::Delegated,
        "fd00:b6::/48",
        renumbered_host(None, Some("2001:db8:100::/56")),
    );
    assert!(p.networks.iter().all(|n| n.name != "web"), "refused");
    assert!(
        p.notes
            .iter()
            .any(|n| n.text.contains("is shorter than the delegated prefix")),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_network_on_a_prefix_the_host_lost_is_closed_with_advice() {
    // ndp-proxy on the provider's 2001:db8:a::/64; the provider renumbers to b.
    let subnet = "2001:db8:a:0:d6::/80";
    let snap = |host: HostFacts| Snapshot {
        host,
        networks: vec![network("p", "proxied", subnet)],
        containers: vec![container("c", &[("proxied", "2001:db8:a:0:d6::2")], None)],
        starting: Vec::new(),
    };
    let before = plan(
        &Policy::default(),
        &snap(renumbered_host(Some("2001:db8:a::/64"), None)),
    );
    let net = before
        .networks
        .iter()
        .find(|n| n.name == "proxied")
        .unwrap();
    assert_eq!(
        net.mode,
        Mode::NdpProxy,
        "control: proxied while the prefix is there"
    );
    assert_eq!(before.proxy_entries.len(), 1);

    let mut after = renumbered_host(Some("2001:db8:b::/64"), None);
    after.former_prefixes = vec!["2001:db8:a::/64".parse().unwrap()];
    let p = plan(&Policy::default(), &snap(after.clone()));
    let net = p.networks.iter().find(|n| n.name == "proxied").unwrap();
    assert_eq!(net.mode, Mode::Off);
    assert!(p.proxy_entries.is_empty());
    let warning = p
        .notes
        .iter()
        .find(|n| n.text.contains("no longer has"))
        .unwrap();
    assert!(
        warning.text.contains("network \"proxied\"")
            && warning.text.contains("prefix = \"uplink\""),
        "{}",
        warning.text
    );
    // Without the memory of the old prefix, it would be taken for routed.
    after.former_prefixes.clear();
    let p = plan(&Policy::default(), &snap(after));
    let net = p.networks.iter().find(|n| n.name == "proxied").unwrap();
    assert_eq!(net.mode, Mode::Routed);
}
