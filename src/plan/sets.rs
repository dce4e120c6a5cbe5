//! The sets and maps of `table inet dock6`: all container data lives here,
//! so one more container adds elements, never rules.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv6Addr;

use super::guard::{Guard, SET_ONLINK_ENDPOINTS, SET_UNFILTERED, SET_UNMANAGED};
use super::ports::{ContainerPlan, Listen};
use super::{NetworkPlan, Note};
use crate::nft::{Element, Icmpv6Type, KeyType, L4Proto, Set, Table, Value};
use crate::text::quoted;

pub const SET_BRIDGES: &str = "bridges";
pub const SET_SEALED: &str = "sealed";
pub const SET_OPEN_PORTS: &str = "open_ports";
pub const SET_ICMPV6_INBOUND: &str = "icmpv6_inbound";
/// `proto . host port : container address . container port`, bindings on `::`.
pub const MAP_DNAT_ANY: &str = "dnat_any";
/// The same keyed by a specific host address first.
pub const MAP_DNAT_ADDR: &str = "dnat_addr";
/// `container address : egress address` (label `dock6.egress-address`).
pub const MAP_EGRESS_ADDRESSES: &str = "egress_addresses";

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

pub(super) fn guard_sets(guard: &Guard) -> Vec<Set> {
    let names =
        |bridges: &[String]| sorted(bridges.iter().map(|b| key(vec![Value::IfName(b.clone())])));
    vec![
        set(
            SET_UNMANAGED,
            &[KeyType::IfName],
            &[],
            names(&guard.unmanaged),
        ),
        set(
            SET_UNFILTERED,
            &[KeyType::IfName],
            &[],
            names(&guard.unfiltered),
        ),
        set(
            SET_ONLINK_ENDPOINTS,
            &[KeyType::Ipv6Addr],
            &[],
            guard
                .onlink_endpoints
                .iter()
                .map(|a| key(vec![Value::Addr(*a)]))
                .collect(),
        ),
    ]
}

pub(super) fn sets(
    managed: &[&NetworkPlan],
    containers: &[ContainerPlan],
    notes: &mut Vec<Note>,
) -> Vec<Set> {
    let bridges = managed.iter().map(|n| Element {
        key: vec![Value::IfName(n.bridge.clone())],
        data: vec![],
    });
    let sealed: BTreeSet<Ipv6Addr> = containers
        .iter()
        .filter(|c| c.sealed)
        .flat_map(|c| c.endpoints.iter().map(|e| e.address))
        .collect();
    let open: BTreeSet<_> = containers
        .iter()
        .flat_map(|c| c.open.iter().copied())
        .collect();
    let (dnat_any, dnat_addr) = dnat_elements(containers, notes);
    vec![
        set(SET_BRIDGES, &[KeyType::IfName], &[], sorted(bridges)),
        set(
            SET_SEALED,
            &[KeyType::Ipv6Addr],
            &[],
            sealed
                .into_iter()
                .map(|a| key(vec![Value::Addr(a)]))
                .collect(),
        ),
        set(
            SET_OPEN_PORTS,
            &[KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService],
            &[],
            open.into_iter()
                .map(|(a, p, port)| key(vec![Value::Addr(a), Value::Proto(p), Value::Port(port)]))
                .collect(),
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
            MAP_DNAT_ANY,
            &[KeyType::InetProto, KeyType::InetService],
            &[KeyType::Ipv6Addr, KeyType::InetService],
            dnat_any,
        ),
        set(
            MAP_DNAT_ADDR,
            &[KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService],
            &[KeyType::Ipv6Addr, KeyType::InetService],
            dnat_addr,
        ),
    ]
}

/// The map of per-container egress addresses.
pub(super) fn egress_map(egress: &BTreeMap<Ipv6Addr, Ipv6Addr>) -> Set {
    set(
        MAP_EGRESS_ADDRESSES,
        &[KeyType::Ipv6Addr],
        &[KeyType::Ipv6Addr],
        egress
            .iter()
            .map(|(c, e)| Element {
                key: vec![Value::Addr(*c)],
                data: vec![Value::Addr(*e)],
            })
            .collect(),
    )
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

/// The two DNAT maps. A host port claimed twice (Docker would refuse it, so
/// it means stale data) goes to the first container by name, with a warning:
/// the kernel refuses duplicate keys.
fn dnat_elements(
    containers: &[ContainerPlan],
    notes: &mut Vec<Note>,
) -> (Vec<Element>, Vec<Element>) {
    let mut any: BTreeMap<Vec<Value>, (Vec<Value>, &str)> = BTreeMap::new();
    let mut addr: BTreeMap<Vec<Value>, (Vec<Value>, &str)> = BTreeMap::new();
    for c in containers {
        for p in &c.published {
            let (map, key) = match p.listen {
                Listen::Any => (
                    &mut any,
                    vec![Value::Proto(p.proto), Value::Port(p.host_port)],
                ),
                Listen::Addr(a) => (
                    &mut addr,
                    vec![
                        Value::Addr(a),
                        Value::Proto(p.proto),
                        Value::Port(p.host_port),
                    ],
                ),
            };
            let data = vec![Value::Addr(p.target), Value::Port(p.container_port)];
            match map.get(&key) {
                Some((existing, owner)) if *existing != data => notes.push(Note::warn(format!(
                    "container {}: host port {}/{} is already published by {}; skipped",
                    quoted(&c.name),
                    p.host_port,
                    p.proto.name(),
                    quoted(owner)
                ))),
                Some(_) => {}
                None => {
                    map.insert(key, (data, &c.name));
                }
            }
        }
    }
    let into_elements = |m: BTreeMap<Vec<Value>, (Vec<Value>, &str)>| {
        m.into_iter()
            .map(|(key, (data, _))| Element { key, data })
            .collect()
    };
    (into_elements(any), into_elements(addr))
}
