//! Docker's JSON as the Docker source converts it. A JSON object is read as
//! both a container inspect and a network inspect answer; an array's
//! elements as both too, and what converts becomes one snapshot (with a
//! fixed host) for the planner, whose invariants must hold.

#![no_main]

use std::collections::BTreeSet;

use bollard::models::{ContainerInspectResponse, NetworkInspect};
use dock6::plan::{Policy, check_invariants, plan};
use dock6::snapshot::{Container, HostFacts, Interface, Network, Snapshot};
use dock6::source::docker::{container_from_docker, internal_network_ids, network_from_inspect};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match value {
        Value::Array(items) => {
            let networks: Vec<Network> = items.iter().filter_map(network).collect();
            let internal = internal_network_ids(&networks);
            let containers: Vec<Container> = items
                .iter()
                .filter_map(|v| container(v, &internal))
                .collect();
            let snapshot = Snapshot {
                host: host(),
                networks,
                containers,
            };
            let plan = plan(&Policy::default(), &snapshot);
            let violations = check_invariants(&snapshot, &plan);
            assert!(
                violations.is_empty(),
                "invariants violated:\n{}",
                violations.join("\n")
            );
            let _ = plan.to_string();
        }
        other => {
            network(&other);
            container(&other, &BTreeSet::new());
        }
    }
});

/// The network conversion, with its sanity checks.
fn network(value: &Value) -> Option<Network> {
    let inspect: NetworkInspect = serde_json::from_value(value.clone()).ok()?;
    let n = network_from_inspect(inspect)?;
    assert!(!n.id.is_empty() && !n.name.is_empty() && !n.driver.is_empty());
    assert!(n.bridge.is_none(), "bridge is the planner's to derive");
    let _ = n.bridge_name();
    let _ = n.ipv6_subnets();
    Some(n)
}

/// The container conversion, with its sanity checks; also run with every
/// endpoint's network internal, when no gateway network may be chosen.
fn container(value: &Value, internal: &BTreeSet<String>) -> Option<Container> {
    let inspect: ContainerInspectResponse = serde_json::from_value(value.clone()).ok()?;
    let all_internal: BTreeSet<String> = inspect
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .map(|eps| eps.values().filter_map(|e| e.network_id.clone()).collect())
        .unwrap_or_default();
    let every_endpoint_has_id = inspect
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .is_none_or(|eps| eps.values().all(|e| e.network_id.is_some()));
    if let Some(c) = container_from_docker(inspect.clone(), &all_internal)
        && every_endpoint_has_id
    {
        assert_eq!(
            c.gateway_network, None,
            "an internal network gives no gateway"
        );
    }
    let c = container_from_docker(inspect, internal)?;
    assert!(!c.id.is_empty() && !c.name.is_empty());
    assert!(!c.name.starts_with('/'), "name {:?}", c.name);
    if let Some(gw) = &c.gateway_network {
        assert!(
            c.networks.contains_key(gw),
            "gateway network {gw:?} not an endpoint"
        );
        assert!(gw != "host" && gw != "none");
    }
    Some(c)
}

/// A host with an uplink on 2001:db8:1::/64 (the golden scenarios' own), so
/// that every mode can be chosen.
fn host() -> HostFacts {
    let prefix = "2001:db8:1::/64".parse().expect("a valid prefix");
    HostFacts {
        default_route_interface: Some("eth0".into()),
        default_routers: vec!["fe80::1".parse().expect("a valid address")],
        forwarding: Some(0),
        forwarding_enabled_by_dock6: false,
        interfaces: vec![Interface {
            name: "eth0".into(),
            accept_ra: Some(1),
            addresses: vec!["2001:db8:1::10/64".parse().expect("a valid address")],
            onlink_prefixes: vec![prefix],
            neighbours: vec![],
            dock6_proxies: vec![],
        }],
    }
}
