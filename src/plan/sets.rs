//! The sets and maps of `table inet dock6`: all container data lives here,
//! so one more container adds elements, never rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use super::guard::{Guard, SET_ONLINK_ENDPOINTS, SET_UNFILTERED, SET_UNMANAGED};
use super::ports::{ContainerPlan, Listen};
use super::ruleset::{
    SET_BRIDGES, SET_DNAT_ADDR, SET_DNAT_ANY, SET_ICMPV6_INBOUND, SET_OPEN_PORTS, SET_SEALED,
};
use super::{NetworkPlan, Note};
use crate::nft::{Element, Icmpv6Type, KeyType, Set, Value};

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
            SET_DNAT_ANY,
            &[KeyType::InetProto, KeyType::InetService],
            &[KeyType::Ipv6Addr, KeyType::InetService],
            dnat_any,
        ),
        set(
            SET_DNAT_ADDR,
            &[KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService],
            &[KeyType::Ipv6Addr, KeyType::InetService],
            dnat_addr,
        ),
    ]
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
    v.sort();
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
                    "container {:?}: host port {}/{} is already published by {owner:?}; skipped",
                    c.name,
                    p.host_port,
                    p.proto.name()
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
