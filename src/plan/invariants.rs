//! The planner's safety invariants, checked on a finished plan against the
//! snapshot it came from. The fuzz targets (`fuzz/`) and unit tests call
//! this on any input: a violation is a hole in the firewall or an address
//! dock6 would answer for without owning it, whatever the input looked like.
//!
//! The checks are written from the snapshot and the plan's own decisions
//! (the networks' modes), not from the planner's intermediate types, so a
//! bug there cannot hide itself here.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::labels::{EXPOSE_LABEL, Expose, parse_expose};
use super::{
    EGRESS_LABEL, MAP_DNAT_ADDR, MAP_DNAT_ANY, MAP_EGRESS_ADDRESSES, Mode, NetworkPlan, Plan,
    SET_OPEN_PORTS,
};
use crate::nft::{L4Proto, Value};
use crate::snapshot::{Container, Snapshot};

/// Every violation of the planner's invariants in `plan`, planned from
/// `snapshot`, as one line each; empty when the plan is sound.
///
/// - every `open_ports` element is the address of a container endpoint on a
///   non-internal `routed`/`ndp-proxy`/`nptv6` network, inside that network's
///   subnets, and a port that container publishes or exposes (and the
///   container is not sealed);
/// - every proxy-NDP entry is on the uplink, for an address inside its
///   network's subnets (or its nptv6 prefix) and an on-link prefix of the
///   uplink;
/// - every DNAT target (the data of `dnat_any` and `dnat_addr`) lies inside
///   a subnet of a non-internal network dock6 filters (nat66, ndp-proxy,
///   routed), at a port some container there publishes;
/// - every `egress_addresses` element maps the address of a container
///   labelled `dock6.egress-address` on a non-internal nat66 network to a
///   global address the uplink holds;
/// - none of these addresses is one no container can hold: unspecified,
///   loopback, multicast, link-local or IPv4-mapped.
pub fn check_invariants(snapshot: &Snapshot, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    check_open_ports(snapshot, plan, &mut out);
    check_proxy_entries(snapshot, plan, &mut out);
    check_dnat_targets(snapshot, plan, &mut out);
    check_egress_addresses(snapshot, plan, &mut out);
    check_address_kinds(plan, &mut out);
    out
}

/// Why no container can hold `addr`, if so: the kernel would DNAT to,
/// open, or answer neighbour solicitations for an address that is the
/// host's own (loopback), a group, link-scoped or IPv4's.
fn not_a_container_address(addr: Ipv6Addr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("unspecified")
    } else if addr.is_loopback() {
        Some("loopback")
    } else if addr.is_multicast() {
        Some("multicast")
    } else if addr.is_unicast_link_local() {
        Some("link-local")
    } else if addr.to_ipv4_mapped().is_some() {
        Some("IPv4-mapped")
    } else {
        None
    }
}

fn check_address_kinds(plan: &Plan, out: &mut Vec<String>) {
    let mut addresses: Vec<(&str, Ipv6Addr)> = plan
        .proxy_entries
        .iter()
        .map(|e| ("proxy entry", e.address))
        .collect();
    if let Some(set) = plan.ruleset.set(SET_OPEN_PORTS) {
        for e in &set.elements {
            if let Some(Value::Addr(a)) = e.key.first() {
                addresses.push((SET_OPEN_PORTS, *a));
            }
        }
    }
    for name in [MAP_DNAT_ANY, MAP_DNAT_ADDR] {
        if let Some(map) = plan.ruleset.set(name) {
            for e in &map.elements {
                if let Some(Value::Addr(a)) = e.data.first() {
                    addresses.push((name, *a));
                }
            }
        }
    }
    for (what, addr) in addresses {
        if let Some(kind) = not_a_container_address(addr) {
            out.push(format!(
                "{what}: {addr} is {kind}, not a container's address"
            ));
        }
    }
}

fn check_open_ports(snapshot: &Snapshot, plan: &Plan, out: &mut Vec<String>) {
    let Some(set) = plan.ruleset.set(SET_OPEN_PORTS) else {
        return;
    };
    for element in &set.elements {
        let [Value::Addr(addr), Value::Proto(proto), Value::Port(port)] = element.key.as_slice()
        else {
            out.push(format!(
                "{SET_OPEN_PORTS}: element {:?} is not address . proto . port",
                element.key
            ));
            continue;
        };
        let justified = snapshot.containers.iter().any(|c| {
            reachable_endpoint(plan, c, *addr)
                && !sealed(c)
                && (published_ports(c).contains(&(*proto, *port))
                    || exposed_ports(c).contains(&(*proto, *port)))
        });
        if !justified {
            out.push(format!(
                "{SET_OPEN_PORTS}: [{addr}]:{port}/{} is open, but no container with that address on a routed/ndp-proxy network (inside its subnets) publishes or exposes that port",
                proto.name()
            ));
        }
    }
}

/// Whether `c` has `addr` on a non-internal network whose planned mode makes
/// container addresses reachable, inside one of that network's subnets.
fn reachable_endpoint(plan: &Plan, c: &Container, addr: Ipv6Addr) -> bool {
    c.networks.iter().any(|(name, ep)| {
        ep.ipv6_address == Some(addr)
            && planned(plan, name)
                .any(|n| n.mode.addresses_reachable() && !n.internal && inside(&n.subnets, addr))
    })
}

/// The planned networks of that name (the snapshot may hold stale data with
/// two networks of one name; any of them may justify an element).
fn planned<'a>(plan: &'a Plan, name: &'a str) -> impl Iterator<Item = &'a NetworkPlan> + 'a {
    plan.networks.iter().filter(move |n| n.name == name)
}

fn inside(subnets: &[Ipv6Net], addr: Ipv6Addr) -> bool {
    subnets.iter().any(|s| s.contains(&addr))
}

/// A `dock6.expose` label that says `false` or does not parse seals the
/// container: nothing inbound.
fn sealed(c: &Container) -> bool {
    c.labels
        .get(EXPOSE_LABEL)
        .is_some_and(|v| !matches!(parse_expose(v), Ok(Expose::Default | Expose::Ports(_))))
}

/// Container ports with at least one binding, read from Docker's keys
/// (`80/tcp`). A superset of what the planner opens (it also drops IPv4-only
/// bindings), which is what an upper bound needs.
fn published_ports(c: &Container) -> BTreeSet<(L4Proto, u16)> {
    c.ports
        .iter()
        .filter(|(_, bindings)| bindings.as_ref().is_some_and(|b| !b.is_empty()))
        .filter_map(|(key, _)| {
            let (port, proto) = key.split_once('/')?;
            let proto = match proto {
                "tcp" => L4Proto::Tcp,
                "udp" => L4Proto::Udp,
                _ => return None,
            };
            Some((proto, port.parse().ok()?))
        })
        .collect()
}

fn exposed_ports(c: &Container) -> BTreeSet<(L4Proto, u16)> {
    match c.labels.get(EXPOSE_LABEL).map(|v| parse_expose(v)) {
        Some(Ok(Expose::Ports(ports))) => ports.into_iter().collect(),
        _ => BTreeSet::new(),
    }
}

fn check_proxy_entries(snapshot: &Snapshot, plan: &Plan, out: &mut Vec<String>) {
    let onlink: &[Ipv6Net] = plan
        .uplink
        .as_deref()
        .and_then(|u| snapshot.host.interface(u))
        .map(|i| i.onlink_prefixes.as_slice())
        .unwrap_or(&[]);
    for entry in &plan.proxy_entries {
        if plan.uplink.as_deref() != Some(entry.interface.as_str()) {
            out.push(format!(
                "proxy entry {} is on {:?}, not on the uplink {:?}",
                entry.address, entry.interface, plan.uplink
            ));
        }
        if !planned(plan, &entry.network)
            .any(|n| inside(&n.subnets, entry.address) || inside(n.nptv6.as_slice(), entry.address))
        {
            out.push(format!(
                "proxy entry {} (container {:?}) is outside the subnets (and nptv6 prefix) of its network {:?}",
                entry.address, entry.container, entry.network
            ));
        }
        if !inside(onlink, entry.address) {
            out.push(format!(
                "proxy entry {} (container {:?}) is outside the uplink's on-link prefixes",
                entry.address, entry.container
            ));
        }
    }
}

fn check_egress_addresses(snapshot: &Snapshot, plan: &Plan, out: &mut Vec<String>) {
    let Some(map) = plan.ruleset.set(MAP_EGRESS_ADDRESSES) else {
        return;
    };
    let uplink = plan
        .uplink
        .as_deref()
        .and_then(|u| snapshot.host.interface(u));
    for element in &map.elements {
        let ([Value::Addr(from)], [Value::Addr(to)]) =
            (element.key.as_slice(), element.data.as_slice())
        else {
            out.push(format!(
                "{MAP_EGRESS_ADDRESSES}: element {element} is not address : address"
            ));
            continue;
        };
        let labelled_nat66 = snapshot.containers.iter().any(|c| {
            c.labels.contains_key(EGRESS_LABEL)
                && c.networks.iter().any(|(name, ep)| {
                    ep.ipv6_address == Some(*from)
                        && planned(plan, name).any(|n| {
                            n.mode == Mode::Nat66 && !n.internal && inside(&n.subnets, *from)
                        })
                })
        });
        if !labelled_nat66 {
            out.push(format!(
                "{MAP_EGRESS_ADDRESSES}: {from} is not a labelled container's address on a nat66 network"
            ));
        }
        let on_uplink = uplink.is_some_and(|u| u.addresses.iter().any(|a| a.addr() == *to));
        if !on_uplink || to.is_unicast_link_local() {
            out.push(format!(
                "{MAP_EGRESS_ADDRESSES}: {from} is mapped to {to}, which is not a global address of the uplink"
            ));
        }
    }
}

fn check_dnat_targets(snapshot: &Snapshot, plan: &Plan, out: &mut Vec<String>) {
    for name in [MAP_DNAT_ANY, MAP_DNAT_ADDR] {
        let Some(map) = plan.ruleset.set(name) else {
            continue;
        };
        for element in &map.elements {
            let [Value::Addr(target), Value::Port(port)] = element.data.as_slice() else {
                out.push(format!(
                    "{name}: data {:?} is not address . port",
                    element.data
                ));
                continue;
            };
            let filtered = plan
                .networks
                .iter()
                .any(|n| n.mode.filtered() && !n.internal && inside(&n.subnets, *target));
            if !filtered {
                out.push(format!(
                    "{name}: DNAT target [{target}]:{port} is outside every subnet of a non-internal network dock6 filters"
                ));
            }
            let proto = match element.key.as_slice() {
                [Value::Proto(p), ..] | [Value::Addr(_), Value::Proto(p), ..] => Some(*p),
                _ => None,
            };
            let published = snapshot.containers.iter().any(|c| {
                !sealed(c)
                    && c.networks
                        .values()
                        .any(|ep| ep.ipv6_address == Some(*target))
                    && proto.is_some_and(|p| published_ports(c).contains(&(p, *port)))
            });
            if !published {
                out.push(format!(
                    "{name}: DNAT target [{target}]:{port} is not a port published by a container at that address"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::Element;
    use crate::plan::{Policy, ProxyEntry, plan};

    fn snapshot(json: &str) -> Snapshot {
        serde_json::from_str(json).expect("test snapshot parses")
    }

    /// A routed network, an ndp-proxy network inside the uplink's on-link
    /// prefix, a ULA network, each with a container that publishes 80/tcp.
    const THREE_MODES: &str = r#"{
      "host": {
        "default_route_interface": "eth0",
        "interfaces": [{"name": "eth0", "addresses": ["2001:db8:1::10/64"],
                        "onlink_prefixes": ["2001:db8:1::/64"]}]
      },
      "networks": [
        {"id": "1", "name": "ula", "enable_ipv6": true, "subnets": [{"subnet": "fd00:1::/64"}]},
        {"id": "2", "name": "proxied", "enable_ipv6": true, "subnets": [{"subnet": "2001:db8:1:0:1::/80"}]},
        {"id": "3", "name": "routed", "enable_ipv6": true, "subnets": [{"subnet": "2001:db8:2::/64"}]}
      ],
      "containers": [
        {"id": "a", "name": "a", "networks": {"ula": {"ipv6_address": "fd00:1::2"}},
         "ports": {"80/tcp": [{"HostIp": "::", "HostPort": "8080"}]}},
        {"id": "b", "name": "b", "networks": {"proxied": {"ipv6_address": "2001:db8:1:0:1::2"}},
         "labels": {"dock6.expose": "53/udp"},
         "ports": {"80/tcp": [{"HostIp": "::", "HostPort": "8081"}]}},
        {"id": "c", "name": "c", "networks": {"routed": {"ipv6_address": "2001:db8:2::2"}},
         "ports": {"80/tcp": [{"HostIp": "2001:db8:1::10", "HostPort": "8082"}]}}
      ]
    }"#;

    #[test]
    fn golden_like_plan_is_sound() {
        let s = snapshot(THREE_MODES);
        let p = plan(&Policy::default(), &s);
        assert!(
            !p.proxy_entries.is_empty(),
            "the scenario has proxy entries"
        );
        assert_eq!(check_invariants(&s, &p), Vec::<String>::new());
    }

    /// Every golden scenario, with its config file where it has one.
    #[test]
    fn golden_scenarios_are_sound() {
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut checked = 0;
        for dir in std::fs::read_dir(&rules).expect("rules/ is readable") {
            let dir = dir.expect("rules/ entry").path();
            let Ok(text) = std::fs::read_to_string(dir.join("snapshot.json")) else {
                continue;
            };
            let s = snapshot(&text);
            let toml = dir.join("dock6.toml");
            let policy = match std::fs::read_to_string(&toml) {
                Ok(t) => {
                    crate::config::Config::parse(&t, &toml)
                        .expect("golden config parses")
                        .policy
                }
                Err(_) => Policy::default(),
            };
            let p = plan(&policy, &s);
            assert_eq!(check_invariants(&s, &p), Vec::<String>::new(), "{dir:?}");
            checked += 1;
        }
        assert!(checked > 10, "only {checked} golden scenarios found");
    }

    /// Found while reviewing the fuzz targets: a network whose subnet is
    /// `::1/128` or `::ffff:0:0/96` was planned as `routed`, and its
    /// containers' `::1` and `::ffff:192.0.2.5` became open ports and DNAT
    /// targets. The planner now refuses such subnets and addresses.
    #[test]
    fn loopback_and_ipv4_mapped_networks_get_nothing() {
        let s = snapshot(
            r#"{
              "host": {"default_route_interface": "eth0",
                       "interfaces": [{"name": "eth0", "onlink_prefixes": ["2001:db8:1::/64"]}]},
              "networks": [
                {"id": "1", "name": "lo", "enable_ipv6": true, "subnets": [{"subnet": "::1/128"}]},
                {"id": "2", "name": "mapped", "enable_ipv6": true, "subnets": [{"subnet": "::ffff:0.0.0.0/96"}]}
              ],
              "containers": [
                {"id": "a", "name": "a", "networks": {"lo": {"ipv6_address": "::1"}},
                 "ports": {"80/tcp": [{"HostIp": "::", "HostPort": "8080"}]}},
                {"id": "b", "name": "b", "networks": {"mapped": {"ipv6_address": "::ffff:192.0.2.5"}},
                 "ports": {"80/tcp": [{"HostIp": "::", "HostPort": "8081"}]}}
              ]
            }"#,
        );
        let p = plan(&Policy::default(), &s);
        assert_eq!(check_invariants(&s, &p), Vec::<String>::new());
    }

    #[test]
    fn addresses_no_container_can_hold_are_reported() {
        let s = snapshot(THREE_MODES);
        let mut p = plan(&Policy::default(), &s);
        p.proxy_entries.push(ProxyEntry {
            interface: "eth0".into(),
            address: "::ffff:192.0.2.1".parse().unwrap(),
            container: "b".into(),
            network: "proxied".into(),
        });
        let v = check_invariants(&s, &p);
        assert!(
            v.iter()
                .any(|l| l.contains("::ffff:192.0.2.1 is IPv4-mapped")),
            "{v:?}"
        );
    }

    #[test]
    fn egress_to_an_address_the_uplink_lacks_is_reported() {
        let snap = snapshot(THREE_MODES);
        let mut p = plan(&Policy::default(), &snap);
        let map = p
            .ruleset
            .sets
            .iter_mut()
            .find(|s| s.name == MAP_EGRESS_ADDRESSES)
            .expect("the scenario NATs nat66 egress");
        map.elements.push(Element {
            key: vec![Value::Addr("fd00:1::2".parse().unwrap())],
            data: vec![Value::Addr("2001:db8:99::1".parse().unwrap())],
        });
        let v = check_invariants(&snap, &p);
        assert!(
            v.iter()
                .any(|l| l.contains("not a global address of the uplink")),
            "{v:?}"
        );
        assert!(
            v.iter()
                .any(|l| l.contains("not a labelled container's address")),
            "{v:?}"
        );
    }

    /// An `open_ports` element: `ADDR . tcp . PORT`.
    fn open_tcp_port(addr: &str, port: u16) -> Element {
        let addr: Ipv6Addr = addr.parse().unwrap();
        Element {
            key: vec![
                Value::Addr(addr),
                Value::Proto(L4Proto::Tcp),
                Value::Port(port),
            ],
            data: vec![],
        }
    }

    fn open_ports_mut(p: &mut Plan) -> &mut Vec<Element> {
        &mut p
            .ruleset
            .sets
            .iter_mut()
            .find(|s| s.name == SET_OPEN_PORTS)
            .expect("plan has open_ports")
            .elements
    }

    #[test]
    fn open_port_nobody_publishes_is_reported() {
        let s = snapshot(THREE_MODES);
        let mut p = plan(&Policy::default(), &s);
        open_ports_mut(&mut p).push(open_tcp_port("2001:db8:2::2", 22));
        let v = check_invariants(&s, &p);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("[2001:db8:2::2]:22/tcp is open"), "{v:?}");
    }

    #[test]
    fn open_port_on_a_nat66_address_is_reported() {
        let s = snapshot(THREE_MODES);
        let mut p = plan(&Policy::default(), &s);
        open_ports_mut(&mut p).push(open_tcp_port("fd00:1::2", 80));
        let v = check_invariants(&s, &p);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn proxy_entry_off_link_is_reported() {
        let s = snapshot(THREE_MODES);
        let mut p = plan(&Policy::default(), &s);
        p.proxy_entries.push(ProxyEntry {
            interface: "eth0".into(),
            address: "2001:db8:2::2".parse().unwrap(),
            container: "c".into(),
            network: "proxied".into(),
        });
        let v = check_invariants(&s, &p);
        assert_eq!(v.len(), 2, "outside the subnet and off-link: {v:?}");
    }

    #[test]
    fn dnat_target_outside_managed_subnets_is_reported() {
        let s = snapshot(THREE_MODES);
        let mut p = plan(&Policy::default(), &s);
        let map = p
            .ruleset
            .sets
            .iter_mut()
            .find(|s| s.name == MAP_DNAT_ANY)
            .expect("plan has dnat_any");
        map.elements.push(Element {
            key: vec![Value::Proto(L4Proto::Tcp), Value::Port(9999)],
            data: vec![
                Value::Addr("2001:db8:99::1".parse().unwrap()),
                Value::Port(80),
            ],
        });
        let v = check_invariants(&s, &p);
        assert_eq!(v.len(), 2, "outside and not published: {v:?}");
        assert!(v[0].contains("outside every subnet"), "{v:?}");
    }
}
