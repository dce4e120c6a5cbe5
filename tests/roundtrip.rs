//! The IR applied over netlink (`dock6::apply::nftables`) and the same IR's text
//! loaded with `nft -f` give the identical `nft list table inet dock6`, for
//! every scenario under `rules/` and for the bootstrap table. Needs root;
//! every kernel change happens in fresh per-thread network namespaces.

mod common;

use std::net::Ipv6Addr;

use dock6::apply::nftables::{ElementChange, delete_table, replace_table, update_elements};
use dock6::nft::{Element, KeyType, L4Proto, Set, TABLE_NAME, Table, Value, rule};

use common::roundtrip::{assert_roundtrip, count_elements, listing, port_element, via_nft};
use common::{in_fresh_netns, nft, require_root};

#[test]
fn every_scenario_roundtrips() {
    if !require_root("every_scenario_roundtrips") {
        return;
    }
    for scenario in common::scenarios() {
        assert_roundtrip(&scenario.name, &scenario.plan().ruleset);
    }
}

#[test]
fn bootstrap_table_roundtrips() {
    if !require_root("bootstrap_table_roundtrips") {
        return;
    }
    assert_roundtrip("bootstrap", &common::bootstrap_table());
}

/// IR shapes the scenarios may not have: prefixes that are not byte-aligned,
/// negations, SNAT, single-type maps, prefix NAT (nptv6), SNAT by map,
/// `ct original ip6 daddr`.
#[test]
fn extra_shapes_roundtrip() {
    if !require_root("extra_shapes_roundtrip") {
        return;
    }
    assert_roundtrip("extra-shapes", &extra_shapes_table());
}

/// The table of `extra_shapes_roundtrip`.
fn extra_shapes_table() -> Table {
    use dock6::nft::{
        BaseChain, Chain, ChainKind, CtState, Hook, Priority, StandardPriority, Statement,
    };
    let net = |s: &str| s.parse().expect("net");
    let table = Table {
        name: TABLE_NAME.into(),
        sets: vec![
            Set {
                name: "protos".into(),
                key: vec![KeyType::InetProto],
                data: vec![],
                elements: vec![Element {
                    key: vec![Value::Proto(L4Proto::Udp)],
                    data: vec![],
                }],
            },
            Set {
                name: "ports".into(),
                key: vec![KeyType::InetService],
                data: vec![],
                elements: vec![Element {
                    key: vec![Value::Port(53)],
                    data: vec![],
                }],
            },
            Set {
                name: "addrmap".into(),
                key: vec![KeyType::Ipv6Addr],
                data: vec![KeyType::Ipv6Addr],
                elements: vec![Element {
                    key: vec![Value::Addr(Ipv6Addr::LOCALHOST)],
                    data: vec![Value::Addr("2001:db8::1".parse().expect("addr"))],
                }],
            },
            Set {
                name: "names".into(),
                key: vec![KeyType::IfName],
                data: vec![],
                elements: vec![Element {
                    key: vec![Value::IfName("docker0".into())],
                    data: vec![],
                }],
            },
        ],
        chains: vec![
            Chain {
                name: "post".into(),
                base: Some(BaseChain {
                    kind: ChainKind::Nat,
                    hook: Hook::Postrouting,
                    priority: Priority {
                        base: StandardPriority::Srcnat,
                        offset: 3,
                    },
                }),
                rules: vec![
                    rule()
                        .oifname("eth0")
                        .saddr(net("fd00:1::/64"))
                        .statement(Statement::Snat("2001:db8::1".parse().expect("addr")))
                        .done(),
                    rule()
                        .saddr(net("fd00::/7"))
                        .iifname_not("br-*")
                        .masquerade_rule(),
                    rule()
                        .oifname("eth0")
                        .saddr(net("fd00:9::/60"))
                        .statement(Statement::SnatPrefix(net("2001:db8:90::/60")))
                        .done(),
                    rule()
                        .oifname("eth0")
                        .statement(Statement::SnatBySaddrMap {
                            map: "addrmap".into(),
                        })
                        .done(),
                ],
            },
            Chain {
                name: "pre".into(),
                base: Some(BaseChain {
                    kind: ChainKind::Nat,
                    hook: Hook::Prerouting,
                    priority: Priority {
                        base: StandardPriority::Dstnat,
                        offset: 0,
                    },
                }),
                rules: vec![
                    rule()
                        .daddr(net("2001:db8:90::/60"))
                        .statement(Statement::DnatPrefix(net("fd00:9::/60")))
                        .done(),
                ],
            },
            Chain {
                name: "fw".into(),
                base: Some(BaseChain {
                    kind: ChainKind::Filter,
                    hook: Hook::Forward,
                    priority: Priority {
                        base: StandardPriority::Number,
                        offset: 7,
                    },
                }),
                rules: vec![
                    rule()
                        .ct_status_dnat()
                        .ct_original_daddr_not(net("2001:db8:90::/60"))
                        .ct_original_daddr_not(net("2001:db8:1:0:6::/80"))
                        .accept(),
                    rule()
                        .matching(dock6::nft::Match::Ip6 {
                            field: dock6::nft::AddrField::Daddr,
                            negate: true,
                            net: net("fe80::/10"),
                        })
                        .accept(),
                    rule()
                        .daddr(net("2001:db8::/33"))
                        .ct_state(&[CtState::New, CtState::Invalid])
                        .ret(),
                    rule()
                        .daddr(net("::/0"))
                        .saddr(net("2001:db8::5/128"))
                        .icmpv6_type_in("nosuch")
                        .drop(),
                    rule().not_ipv6().accept(),
                ],
            },
        ],
    };
    // The icmpv6 lookup targets a set that does not exist: drop that rule
    // here (the error case is tested separately).
    let mut table = table;
    table.chains[2].rules.remove(3);
    table.chains[2].rules.push(
        rule()
            .daddr(net("::/0"))
            .saddr(net("2001:db8::5/128"))
            .accept(),
    );
    table
}

trait MasqueradeRule {
    fn masquerade_rule(self) -> dock6::nft::Rule;
}
impl MasqueradeRule for dock6::nft::RuleBuilder {
    fn masquerade_rule(self) -> dock6::nft::Rule {
        self.statement(dock6::nft::Statement::Masquerade).done()
    }
}

#[test]
fn ten_thousand_elements_commit() {
    if !require_root("ten_thousand_elements_commit") {
        return;
    }
    let table = dock6::nft::samples::open_ports_table(10_000);
    let listing = in_fresh_netns(move || {
        replace_table(&table).unwrap_or_else(|e| panic!("replace_table: {e}"));
        replace_table(&table).unwrap_or_else(|e| panic!("replace_table again: {e}"));
        nft(&["list", "set", "inet", TABLE_NAME, "open_ports"], None)
    });
    assert_eq!(count_elements(&listing), 10_000);
}

#[test]
fn update_elements_adds_and_removes() {
    if !require_root("update_elements_adds_and_removes") {
        return;
    }
    in_fresh_netns(|| {
        let mut table = dock6::nft::samples::open_ports_table(2);
        table.sets.push(Set {
            name: "dnat_any".into(),
            key: vec![KeyType::InetProto, KeyType::InetService],
            data: vec![KeyType::Ipv6Addr, KeyType::InetService],
            elements: vec![],
        });
        replace_table(&table).expect("replace_table");
        let a = port_element("2001:db8::aa", L4Proto::Tcp, 8080);
        let b = port_element("2001:db8::bb", L4Proto::Udp, 53);
        let m = Element {
            key: vec![Value::Proto(L4Proto::Tcp), Value::Port(8080)],
            data: vec![
                Value::Addr("fd00::2".parse().expect("addr")),
                Value::Port(80),
            ],
        };
        let add = |set: &str, e: &Element| ElementChange::Add {
            set: set.into(),
            element: e.clone(),
        };
        let remove = |set: &str, e: &Element| ElementChange::Remove {
            set: set.into(),
            element: e.clone(),
        };
        update_elements(
            TABLE_NAME,
            &[
                add("open_ports", &a),
                add("open_ports", &b),
                add("dnat_any", &m),
            ],
        )
        .expect("add");
        let listing = nft(&["list", "set", "inet", TABLE_NAME, "open_ports"], None);
        assert!(listing.contains("2001:db8::aa . tcp . 8080"), "{listing}");
        assert!(listing.contains("2001:db8::bb . udp . 53"), "{listing}");
        assert_eq!(count_elements(&listing), 4);
        let map = nft(&["list", "map", "inet", TABLE_NAME, "dnat_any"], None);
        assert!(map.contains("tcp . 8080 : fd00::2 . 80"), "{map}");

        // Adding an element that is there already aborts the batch (EEXIST)
        // and names it; the batch's other changes do not happen.
        let c = port_element("2001:db8::cc", L4Proto::Tcp, 1);
        let err = update_elements(TABLE_NAME, &[add("open_ports", &c), add("open_ports", &a)])
            .expect_err("EEXIST");
        assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
        assert!(
            err.to_string().contains("2001:db8::aa . tcp . 8080"),
            "{err}"
        );
        assert!(
            !nft(&["list", "set", "inet", TABLE_NAME, "open_ports"], None).contains("2001:db8::cc")
        );

        update_elements(
            TABLE_NAME,
            &[remove("open_ports", &a), remove("dnat_any", &m)],
        )
        .expect("remove");
        let listing = nft(&["list", "set", "inet", TABLE_NAME, "open_ports"], None);
        assert!(!listing.contains("2001:db8::aa"), "{listing}");
        assert!(listing.contains("2001:db8::bb . udp . 53"), "{listing}");
        assert!(!nft(&["list", "map", "inet", TABLE_NAME, "dnat_any"], None).contains("8080"));

        // Removing an absent element: ENOENT, named.
        let err = update_elements(TABLE_NAME, &[remove("open_ports", &a)]).expect_err("ENOENT");
        eprintln!("error: {err}");
        assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
        assert!(
            err.to_string()
                .contains("2001:db8::aa . tcp . 8080 of set open_ports"),
            "{err}"
        );
    });
}

/// Set `nd_targets` (`typeof @th,64,128`) takes element updates, listed as
/// nft lists the raw field.
#[test]
fn nd_targets_take_element_updates() {
    if !require_root("nd_targets_take_element_updates") {
        return;
    }
    in_fresh_netns(|| {
        let mut table = dock6::nft::samples::open_ports_table(0);
        table.sets.push(Set {
            name: "nd_targets".into(),
            key: vec![KeyType::NdTarget],
            data: vec![],
            elements: vec![],
        });
        replace_table(&table).expect("replace_table");
        let target = |a: &str| Element {
            key: vec![Value::NdTarget(a.parse().expect("addr"))],
            data: vec![],
        };
        let (a, b) = (target("2001:db8:1::2"), target("2001:db8:1::3"));
        let change = |add: bool, e: &Element| match add {
            true => ElementChange::Add {
                set: "nd_targets".into(),
                element: e.clone(),
            },
            false => ElementChange::Remove {
                set: "nd_targets".into(),
                element: e.clone(),
            },
        };
        update_elements(TABLE_NAME, &[change(true, &a), change(true, &b)]).expect("add");
        let listing = nft(&["list", "set", "inet", TABLE_NAME, "nd_targets"], None);
        assert!(listing.contains("typeof @th,64,128"), "{listing}");
        assert!(
            listing.contains("0x20010db8000100000000000000000002"),
            "{listing}"
        );
        assert_eq!(listing.matches("0x20010db8").count(), 2, "{listing}");
        update_elements(TABLE_NAME, &[change(false, &a)]).expect("remove");
        let listing = nft(&["list", "set", "inet", TABLE_NAME, "nd_targets"], None);
        assert!(
            !listing.contains("0x20010db8000100000000000000000002"),
            "{listing}"
        );
        assert!(
            listing.contains("0x20010db8000100000000000000000003"),
            "{listing}"
        );
    });
}

#[test]
fn delete_table_reports_existence() {
    if !require_root("delete_table_reports_existence") {
        return;
    }
    in_fresh_netns(|| {
        assert!(!delete_table(TABLE_NAME).expect("delete absent"));
        replace_table(&common::bootstrap_table()).expect("replace_table");
        assert!(delete_table(TABLE_NAME).expect("delete"));
        assert!(!delete_table(TABLE_NAME).expect("delete again"));
        assert_eq!(nft(&["list", "ruleset"], None), "");
    });
}

#[test]
fn table_and_docker_chain_existence_are_seen() {
    if !require_root("table_and_docker_chain_existence_are_seen") {
        return;
    }
    in_fresh_netns(|| {
        assert!(!dock6::apply::nftables::table_exists(TABLE_NAME).expect("query absent table"));
        assert!(
            !dock6::apply::nftables::ip6_chain_exists("nat", "DOCKER").expect("query absent chain")
        );
        replace_table(&common::bootstrap_table()).expect("replace_table");
        nft(
            &["-f", "-"],
            Some("table ip6 nat {\n\tchain DOCKER {\n\t}\n}\n"),
        );
        assert!(dock6::apply::nftables::table_exists(TABLE_NAME).expect("query table"));
        assert!(dock6::apply::nftables::ip6_chain_exists("nat", "DOCKER").expect("query chain"));
        assert!(
            !dock6::apply::nftables::ip6_chain_exists("nat", "OTHER").expect("query other chain")
        );
    });
}

#[test]
fn errors_name_the_object() {
    if !require_root("errors_name_the_object") {
        return;
    }
    in_fresh_netns(|| {
        let mut table = dock6::nft::samples::open_ports_table(1);
        table.chains.push(dock6::nft::Chain {
            name: "to_docker".into(),
            base: None,
            rules: vec![
                rule().drop(),
                rule().daddr_proto_port_in("open_ports").goto("mark_accept"),
            ],
        });
        let err = replace_table(&table).expect_err("jump to a missing chain");
        let text = err.to_string();
        eprintln!("error: {text}");
        assert_eq!(err.errno(), Some(libc::ENOENT), "{text}");
        assert!(
            text.starts_with("rule 2 of chain to_docker: ip6 daddr . meta l4proto . th dport @open_ports goto mark_accept: No such file or directory"),
            "{text}"
        );
        // Nothing was committed.
        assert_eq!(nft(&["list", "ruleset"], None), "");

        let err = update_elements(
            TABLE_NAME,
            &[ElementChange::Add {
                set: "missing".into(),
                element: port_element("2001:db8::1", L4Proto::Tcp, 1),
            }],
        )
        .expect_err("no table/set");
        eprintln!("error: {err}");
        assert!(err.to_string().contains("of set missing"), "{err}");
    });
}

/// Replacing a different table that is already there leaves exactly the new
/// one (what the agent does on every re-plan).
#[test]
fn replace_swaps_content() {
    if !require_root("replace_swaps_content") {
        return;
    }
    let full = common::scenarios()[0].plan().ruleset;
    let bootstrap = common::bootstrap_table();
    let expected = via_nft(&bootstrap);
    let got = in_fresh_netns(move || {
        replace_table(&full).unwrap_or_else(|e| panic!("replace_table: {e}"));
        replace_table(&bootstrap).unwrap_or_else(|e| panic!("replace_table: {e}"));
        listing()
    });
    pretty_assertions::assert_eq!(expected, got);
}

/// A table checked with `validate_table` is the kernel's verdict on it
/// without a commit: a refused one is named like a refused replace, a good
/// one leaves the ruleset as it was (empty; or a live table of the same
/// name untouched).
#[test]
fn validate_table_commits_nothing_and_names_a_refusal() {
    if !require_root("validate_table_commits_nothing_and_names_a_refusal") {
        return;
    }
    in_fresh_netns(|| {
        let good = common::scenarios()[0].plan().ruleset;
        dock6::apply::nftables::validate_table(&good).expect("the kernel takes a planned table");
        assert_eq!(nft(&["list", "ruleset"], None), "", "nothing was committed");

        let mut bad = dock6::nft::samples::open_ports_table(1);
        bad.chains.push(dock6::nft::Chain {
            name: "to_docker".into(),
            base: None,
            rules: vec![rule().daddr_proto_port_in("open_ports").goto("missing")],
        });
        let err = dock6::apply::nftables::validate_table(&bad).expect_err("a missing chain");
        assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
        assert!(
            err.to_string().starts_with("rule 1 of chain to_docker: "),
            "{err}"
        );

        // With dock6's table in place, checking another of the same name
        // changes nothing of it.
        replace_table(&common::bootstrap_table()).expect("replace_table");
        let before = listing();
        dock6::apply::nftables::validate_table(&good).expect("validate beside a live table");
        pretty_assertions::assert_eq!(before, listing(), "the live table is untouched");
    });
}
