//! The sets and maps of `table inet dock6`: all container data lives here,
//! so one more container adds elements, never rules.

use std::collections::HashSet;
use std::net::Ipv6Addr;

use super::NetworkPlan;
use super::guard::{
    Guard, SET_ONLINK_ENDPOINTS, SET_OPERATOR_BRIDGES, SET_UNFILTERED, SET_UNMANAGED,
};
use super::ports::Listen;
use crate::nft::{Element, Icmpv6Type, KeyType, L4Proto, Set, Table, Value};

pub const SET_BRIDGES: &str = "bridges";
pub const SET_SEALED: &str = "sealed";
pub const SET_OPEN_PORTS: &str = "open_ports";
pub const SET_ICMPV6_INBOUND: &str = "icmpv6_inbound";
/// `proto . host port : container address . container port`, bindings on `::`.
pub const MAP_DNAT_ANY: &str = "dnat_any";
/// The same keyed by a specific host address first.
pub const MAP_DNAT_ADDR: &str = "dnat_addr";
/// `proto . host port` of containers Docker is starting, bindings on `::`:
/// refused until the container runs and the port is DNAT'ed.
pub const SET_STARTING_ANY: &str = "starting_any";
/// The same keyed by a specific host address first.
pub const SET_STARTING_ADDR: &str = "starting_addr";
/// `container address : egress address` (label `dock6.egress-address`).
pub const MAP_EGRESS_ADDRESSES: &str = "egress_addresses";
/// With `na_source = "target"`: the proxied addresses dock6 answers
/// neighbour solicitations for itself (as the target field of a neighbour
/// advertisement).
pub const SET_ND_TARGETS: &str = "nd_targets";

/// One published-port mapping, as the DNAT maps hold it: packets of `proto`
/// to the host's `host_port` go to `[target]:target_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnatTarget {
    pub proto: L4Proto,
    pub host_port: u16,
    pub target: Ipv6Addr,
    pub target_port: u16,
}

/// The published-port mappings of `old` that `new` no longer has (or maps
/// elsewhere): their flows must not stick to a container that is gone.
/// Here, where the maps are made, so that nothing else decodes their names.
/// (Hashed, not ordered: this runs at every pass over every mapping.)
pub fn removed_dnat_targets(old: &Table, new: &Table) -> Vec<DnatTarget> {
    let kept = dnat_targets(new);
    let mut removed: Vec<DnatTarget> = dnat_targets(old)
        .into_iter()
        .filter(|t| !kept.contains(t))
        .collect();
    removed.sort_unstable();
    removed
}

fn dnat_targets(table: &Table) -> HashSet<DnatTarget> {
    [MAP_DNAT_ANY, MAP_DNAT_ADDR]
        .iter()
        .filter_map(|name| table.set(name))
        .flat_map(|set| set.elements.iter())
        .filter_map(dnat_target)
        .collect()
}

/// `[addr .] proto . port : target . target_port` → a DnatTarget.
fn dnat_target(element: &Element) -> Option<DnatTarget> {
    let (proto, host_port) = match element.key.as_slice() {
        [Value::Proto(p), Value::Port(port)]
        | [Value::Addr(_), Value::Proto(p), Value::Port(port)] => (*p, *port),
        _ => return None,
    };
    match element.data.as_slice() {
        [Value::Addr(target), Value::Port(target_port)] => Some(DnatTarget {
            proto,
            host_port,
            target: *target,
            target_port: *target_port,
        }),
        _ => None,
    }
}

/// The sets whose elements come from the networks, the guards and the
/// containers being started, not from running containers (few, rebuilt at
/// every pass).
pub(super) fn network_sets(
    managed: &[&NetworkPlan],
    guard: &Guard,
    starting: &[(Listen, L4Proto, u16)],
) -> Vec<Set> {
    let names = |bridges: &mut dyn Iterator<Item = &String>| {
        sorted(bridges.map(|b| key(vec![Value::IfName(b.clone())])))
    };
    vec![
        set(
            SET_BRIDGES,
            &[KeyType::IfName],
            &[],
            names(&mut managed.iter().map(|n| &n.bridge)),
        ),
        set(
            SET_ICMPV6_INBOUND,
            &[KeyType::Icmpv6Type],
            &[],
            Icmpv6Type::INBOUND
                .iter()
                .map(|t| key(vec![Value::Icmpv6(*t)]))
                .collect(),
        ),
        set(
            SET_UNMANAGED,
            &[KeyType::IfName],
            &[],
            names(&mut guard.unmanaged.iter()),
        ),
        set(
            SET_UNFILTERED,
            &[KeyType::IfName],
            &[],
            names(&mut guard.unfiltered.iter()),
        ),
        operator_bridges_set(&guard.operator_bridges),
        set(
            SET_STARTING_ANY,
            &[KeyType::InetProto, KeyType::InetService],
            &[],
            sorted(
                starting
                    .iter()
                    .filter(|(listen, _, _)| *listen == Listen::Any)
                    .map(|(_, proto, port)| key(vec![Value::Proto(*proto), Value::Port(*port)])),
            ),
        ),
        set(
            SET_STARTING_ADDR,
            &[KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService],
            &[],
            sorted(
                starting
                    .iter()
                    .filter_map(|(listen, proto, port)| match listen {
                        Listen::Addr(on) => Some(open_port_element(&(*on, *proto, *port))),
                        Listen::Any => None,
                    }),
            ),
        ),
    ]
}

/// `operator_bridges`: the host's interfaces that `br-*` would take for a
/// Docker bridge (also in the fail-closed table before the first snapshot).
pub fn operator_bridges_set(names: &[String]) -> Set {
    set(
        SET_OPERATOR_BRIDGES,
        &[KeyType::IfName],
        &[],
        sorted(names.iter().map(|b| key(vec![Value::IfName(b.clone())]))),
    )
}

/// The order of the sets in the table (and in its text form).
pub(super) const SET_ORDER: [&str; 14] = [
    SET_BRIDGES,
    SET_SEALED,
    SET_OPEN_PORTS,
    SET_ICMPV6_INBOUND,
    MAP_DNAT_ANY,
    MAP_DNAT_ADDR,
    SET_STARTING_ANY,
    SET_STARTING_ADDR,
    SET_UNMANAGED,
    SET_UNFILTERED,
    SET_OPERATOR_BRIDGES,
    SET_ONLINK_ENDPOINTS,
    MAP_EGRESS_ADDRESSES,
    SET_ND_TARGETS,
];

/// The sets and maps whose elements containers contribute, empty: their
/// names and types (the elements are the planner's, see `planner/`).
pub(super) fn container_sets(egress_map: bool, nd_targets: bool) -> Vec<Set> {
    let mut sets = vec![
        set(SET_SEALED, &[KeyType::Ipv6Addr], &[], vec![]),
        set(
            SET_OPEN_PORTS,
            &[KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService],
            &[],
            vec![],
        ),
        set(
            MAP_DNAT_ANY,
            &[KeyType::InetProto, KeyType::InetService],
            &[KeyType::Ipv6Addr, KeyType::InetService],
            vec![],
        ),
        set(
            MAP_DNAT_ADDR,
            &[KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService],
            &[KeyType::Ipv6Addr, KeyType::InetService],
            vec![],
        ),
        set(SET_ONLINK_ENDPOINTS, &[KeyType::Ipv6Addr], &[], vec![]),
    ];
    // Present whenever nat66 egress is NATed, so that a labelled container
    // adds map elements, never a rule or a table replace.
    if egress_map {
        sets.push(set(
            MAP_EGRESS_ADDRESSES,
            &[KeyType::Ipv6Addr],
            &[KeyType::Ipv6Addr],
            vec![],
        ));
    }
    // Present whenever dock6 answers for proxied addresses itself, so that
    // a proxied container adds an element, never a rule or a table replace.
    if nd_targets {
        sets.push(set(SET_ND_TARGETS, &[KeyType::NdTarget], &[], vec![]));
    }
    sets
}

/// `address`, as the sets `sealed` and `onlink_endpoints` hold it.
pub(super) fn address_element(address: &Ipv6Addr) -> Element {
    key(vec![Value::Addr(*address)])
}

/// `address`, as `nd_targets` holds it.
pub(super) fn nd_target_element(address: &Ipv6Addr) -> Element {
    key(vec![Value::NdTarget(*address)])
}

/// `address . proto . port`, as `open_ports` and `starting_addr` hold it.
pub(super) fn open_port_element((address, proto, port): &(Ipv6Addr, L4Proto, u16)) -> Element {
    key(vec![
        Value::Addr(*address),
        Value::Proto(*proto),
        Value::Port(*port),
    ])
}

/// `proto . host port : target . port`, as `dnat_any` holds it.
pub(super) fn dnat_any_element(
    (proto, host_port): &(L4Proto, u16),
    (target, port): &(Ipv6Addr, u16),
) -> Element {
    Element {
        key: vec![Value::Proto(*proto), Value::Port(*host_port)],
        data: vec![Value::Addr(*target), Value::Port(*port)],
    }
}

/// `host address . proto . host port : target . port`, as `dnat_addr` holds it.
pub(super) fn dnat_addr_element(
    (on, proto, host_port): &(Ipv6Addr, L4Proto, u16),
    (target, port): &(Ipv6Addr, u16),
) -> Element {
    Element {
        key: vec![
            Value::Addr(*on),
            Value::Proto(*proto),
            Value::Port(*host_port),
        ],
        data: vec![Value::Addr(*target), Value::Port(*port)],
    }
}

/// `container address : egress address`, as `egress_addresses` holds it.
pub(super) fn egress_element(container: &Ipv6Addr, egress: &Ipv6Addr) -> Element {
    Element {
        key: vec![Value::Addr(*container)],
        data: vec![Value::Addr(*egress)],
    }
}

fn set(name: &str, key: &[KeyType], data: &[KeyType], elements: Vec<Element>) -> Set {
    Set {
        name: name.to_string(),
        key: key.to_vec(),
        data: data.to_vec(),
        elements,
    }
}

fn key(values: Vec<Value>) -> Element {
    Element {
        key: values,
        data: vec![],
    }
}

fn sorted(elements: impl Iterator<Item = Element>) -> Vec<Element> {
    let mut v: Vec<Element> = elements.collect();
    // Equal elements are identical: the unstable sort is as good, and faster.
    v.sort_unstable();
    v.dedup();
    v
}
