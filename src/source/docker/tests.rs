//! Conversions against JSON captured from Docker 20.10.24 (Debian's
//! docker.io) in a test namespace: `tests/data/docker20.10/`, the raw API
//! answers of `GET /networks`, `/networks/NAME`, `/containers/NAME/json` and
//! `/events`. The setup: `v6net` (`--ipv6 --subnet fd00:1::/64`), `v4only`,
//! `internalnet` (`--internal --ipv6 --subnet fd00:2::/64`), `mv` (macvlan);
//! container `web` on v6net (run with `-p 8080:80 -p [::]:8443:443
//! -p 127.0.0.1:9000:9000 --expose 9999 --label dock6.expose=80/tcp`), then
//! connected to v4only and internalnet; container `plain` on the default bridge.
//! Bad-data cases edit those documents.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use bollard::models::{ContainerInspectResponse, EndpointSettings, EventMessage, NetworkInspect};
use serde_json::{Value, json};

use crate::snapshot::{PortBinding, Subnet};

use super::*;

const NETWORKS: &str = include_str!("../../../tests/data/docker20.10/networks.json");
const NET_V6: &str = include_str!("../../../tests/data/docker20.10/net-v6net.json");
const WEB: &str = include_str!("../../../tests/data/docker20.10/ctr-web.json");
const PLAIN: &str = include_str!("../../../tests/data/docker20.10/ctr-plain.json");
const EVENTS: &str = include_str!("../../../tests/data/docker20.10/events.jsonl");

const WEB_ID: &str = "72596382df44066c88d376cc6781680ddf51d8e5b10fb4e2477df15c81c8f652";
const INTERNALNET_ID: &str = "c35e4f8b31f3424b6c7a01c4095ff2e71f3f3b4b9b114959168d196d81fe410d";

fn networks() -> Vec<Network> {
    let listed: Vec<bollard::models::Network> =
        serde_json::from_str(NETWORKS).expect("network list parses");
    listed.into_iter().filter_map(network_from_list).collect()
}

fn network(name: &str) -> Network {
    networks()
        .into_iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("network {name}"))
}

fn internal() -> BTreeSet<String> {
    internal_network_ids(&networks())
}

fn container(text: &str) -> Option<Container> {
    let response: ContainerInspectResponse = serde_json::from_str(text).expect("inspect parses");
    container_from_docker(response, &internal())
}

/// The container's IPv6 address per network, in network-name order.
fn ipv6_addresses(c: &Container) -> Vec<(&str, Option<Ipv6Addr>)> {
    c.networks
        .iter()
        .map(|(n, e)| (n.as_str(), e.ipv6_address))
        .collect()
}

/// A fixture with one edit: `path` is a JSON pointer, `value` its new value
/// (`Value::Null` removes the field).
fn edited(text: &str, path: &str, value: Value) -> String {
    let mut doc: Value = serde_json::from_str(text).expect("fixture parses");
    let (parent, key) = path.rsplit_once('/').expect("pointer");
    let key = key.replace("~1", "/").replace("~0", "~");
    let object = doc
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent exists");
    if value.is_null() {
        object.remove(&key);
    } else {
        object.insert(key, value);
    }
    doc.to_string()
}

fn net(text: &str) -> Option<Network> {
    network_from_inspect(serde_json::from_str::<NetworkInspect>(text).expect("inspect parses"))
}

#[test]
fn ipv6_network_with_v4_and_v6_ipam() {
    let n = network("v6net");
    assert_eq!(
        n.id,
        "dcb34dc023d356f2eb3d83aee2c1f0f592f989c634c85b36910d0b35d4862c3e"
    );
    assert_eq!(n.driver, "bridge");
    assert!(n.enable_ipv6 && !n.internal);
    assert_eq!(n.bridge, None);
    assert_eq!(n.bridge_name(), "br-dcb34dc023d3");
    assert_eq!(
        n.subnets,
        vec![
            Subnet {
                subnet: "203.0.113.64/28".parse().unwrap(),
                gateway: Some("203.0.113.65".parse().unwrap())
            },
            // Docker 20.10 reports no gateway for a user network's IPv6 subnet.
            Subnet {
                subnet: "fd00:1::/64".parse().unwrap(),
                gateway: None
            },
        ]
    );
    assert_eq!(n.ipv6_subnets(), vec!["fd00:1::/64".parse().unwrap()]);
    // The inspect answer converts to the same network as the list entry.
    assert_eq!(net(NET_V6), Some(n));
}

#[test]
fn default_bridge_keeps_its_options() {
    let n = network("bridge");
    assert_eq!(n.bridge_name(), "docker0");
    assert_eq!(
        n.options
            .get("com.docker.network.bridge.enable_icc")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(n.ipv6_subnets(), vec!["fd00:d0c::/64".parse().unwrap()]);
}

#[test]
fn ipv4_only_internal_macvlan_host_and_null_networks() {
    let v4 = network("v4only");
    assert!(!v4.enable_ipv6 && !v4.internal);
    assert!(v4.ipv6_subnets().is_empty());
    assert_eq!(v4.subnets.len(), 1);

    let internal = network("internalnet");
    assert!(internal.internal && internal.enable_ipv6);
    assert_eq!(
        internal.ipv6_subnets(),
        vec!["fd00:2::/64".parse().unwrap()]
    );

    // Other drivers are kept: the planner skips them with a log line.
    let mv = network("mv");
    assert_eq!(mv.driver, "macvlan");
    assert_eq!(mv.options.get("parent").map(String::as_str), Some("v0"));
    assert_eq!(network("host").driver, "host");
    assert_eq!(network("none").driver, "null");
    assert!(network("none").subnets.is_empty());
    assert_eq!(networks().len(), 7);
}

#[test]
fn bad_network_data_is_skipped_not_fatal() {
    // An unparsable subnet drops that IPAM entry only.
    let n = net(&edited(
        NET_V6,
        "/IPAM/Config/1/Subnet",
        json!("fd00:1::/129"),
    ))
    .unwrap();
    assert_eq!(n.subnets.len(), 1);
    assert!(n.ipv6_subnets().is_empty());
    // An unparsable gateway keeps the subnet without it.
    let n = net(&edited(
        NET_V6,
        "/IPAM/Config/0/Gateway",
        json!("not-an-ip"),
    ))
    .unwrap();
    assert_eq!(n.subnets[0].gateway, None);
    assert_eq!(n.subnets.len(), 2);
    // A missing subnet drops the entry.
    let n = net(&edited(NET_V6, "/IPAM/Config/1/Subnet", Value::Null)).unwrap();
    assert_eq!(n.subnets.len(), 1);
    // No IPAM at all: a network without subnets.
    assert!(
        net(&edited(NET_V6, "/IPAM", Value::Null))
            .unwrap()
            .subnets
            .is_empty()
    );
    // Without an id, a name or a driver the network cannot be used.
    assert_eq!(net(&edited(NET_V6, "/Id", Value::Null)), None);
    assert_eq!(net(&edited(NET_V6, "/Name", json!(""))), None);
    assert_eq!(net(&edited(NET_V6, "/Driver", Value::Null)), None);
    // A missing Internal fails closed.
    assert!(
        net(&edited(NET_V6, "/Internal", Value::Null))
            .unwrap()
            .internal
    );
    assert!(
        !net(&edited(NET_V6, "/EnableIPv6", Value::Null))
            .unwrap()
            .enable_ipv6
    );
}

#[test]
fn container_on_three_networks() {
    let c = container(WEB).expect("running");
    assert_eq!(c.id, WEB_ID);
    assert_eq!(c.name, "web");
    assert_eq!(
        c.labels.get("dock6.expose").map(String::as_str),
        Some("80/tcp")
    );
    let addresses = ipv6_addresses(&c);
    assert_eq!(
        addresses,
        vec![
            ("internalnet", Some("fd00:2::2".parse().unwrap())),
            // "GlobalIPv6Address": "" on an IPv4-only network.
            ("v4only", None),
            ("v6net", Some("fd00:1::2".parse().unwrap())),
        ]
    );
    // The container's default routes go through v6net (checked with
    // `ip route` in its namespace); internalnet comes first by name but is
    // internal, v4only has no IPv6 gateway.
    assert_eq!(c.gateway_network.as_deref(), Some("v6net"));
}

/// Docker's shape, less the IPv4 bindings (Docker's own business, and half
/// of what a container published on both families would cost in memory).
#[test]
fn port_bindings_keep_dockers_shape_for_ipv6() {
    let c = container(WEB).unwrap();
    let b = |ip: &str, port: &str| PortBinding {
        host_ip: ip.into(),
        host_port: port.into(),
    };
    let expected: crate::snapshot::SortedMap<compact_str::CompactString, Option<Vec<PortBinding>>> =
        [
            // -p 8080:80: both families (0.0.0.0:8080 left out).
            ("80/tcp", Some(vec![b("::", "8080")])),
            // -p [::]:8443:443
            ("443/tcp", Some(vec![b("::", "8443")])),
            // -p 127.0.0.1:9000:9000: IPv4 only.
            ("9000/tcp", Some(vec![])),
            // --expose 9999, not published.
            ("9999/tcp", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v))
        .collect();
    assert_eq!(c.ports, expected);
}

#[test]
fn default_bridge_container() {
    let c = container(PLAIN).unwrap();
    assert_eq!(c.name, "plain");
    assert_eq!(c.gateway_network.as_deref(), Some("bridge"));
    assert_eq!(
        c.networks["bridge"].ipv6_address,
        Some("fd00:d0c::242:cb00:7102".parse().unwrap())
    );
    assert!(c.ports.is_empty());
    assert!(c.labels.is_empty());
}

#[test]
fn bad_container_data_is_skipped_not_fatal() {
    let garbage = edited(
        WEB,
        "/NetworkSettings/Networks/v6net/GlobalIPv6Address",
        json!("fd00:1::zz"),
    );
    let c = container(&garbage).unwrap();
    assert_eq!(c.networks["v6net"].ipv6_address, None);
    assert!(c.networks.contains_key("v6net"));
    let v4 = edited(
        WEB,
        "/NetworkSettings/Networks/v6net/GlobalIPv6Address",
        json!("203.0.113.66"),
    );
    assert_eq!(container(&v4).unwrap().networks["v6net"].ipv6_address, None);

    // A binding without HostIp must not become "all addresses".
    let no_ip = edited(
        WEB,
        "/NetworkSettings/Ports/443~1tcp",
        json!([{"HostPort": "8443"}]),
    );
    assert_eq!(container(&no_ip).unwrap().ports["443/tcp"], Some(vec![]));
    // Garbage in a binding is passed on: the planner notes it per binding.
    let odd = edited(
        WEB,
        "/NetworkSettings/Ports/443~1tcp",
        json!([{"HostIp": "nonsense", "HostPort": "x"}]),
    );
    assert_eq!(
        container(&odd).unwrap().ports["443/tcp"],
        Some(vec![PortBinding {
            host_ip: "nonsense".into(),
            host_port: "x".into()
        }])
    );

    // No networks, no ports: still a container.
    let bare = edited(WEB, "/NetworkSettings", Value::Null);
    let c = container(&bare).unwrap();
    assert!(c.networks.is_empty() && c.ports.is_empty() && c.gateway_network.is_none());
    // Without a name it is named by its short id.
    assert_eq!(
        container(&edited(WEB, "/Name", Value::Null)).unwrap().name,
        "72596382df44"
    );
    // Without an id, or not running, it is left out.
    assert_eq!(container(&edited(WEB, "/Id", Value::Null)), None);
    assert_eq!(
        container(&edited(WEB, "/State/Running", json!(false))),
        None
    );
    assert_eq!(container(&edited(WEB, "/State", Value::Null)), None);
}

#[test]
fn gateway_network_follows_libnetwork_order() {
    let web: ContainerInspectResponse = serde_json::from_str(WEB).unwrap();
    let endpoints: BTreeMap<String, EndpointSettings> = web
        .network_settings
        .unwrap()
        .networks
        .unwrap()
        .into_iter()
        .collect();
    // Internal networks are never the gateway, whatever Docker reports for them.
    assert_eq!(
        gateway_network(&endpoints, &internal()).as_deref(),
        Some("v6net")
    );
    // Were internalnet not internal, it would win by name (both dual-stack).
    assert_eq!(
        gateway_network(&endpoints, &BTreeSet::new()).as_deref(),
        Some("internalnet")
    );

    let ep = |gw: &str, gw6: &str, prio: Option<i64>| EndpointSettings {
        gateway: Some(gw.into()),
        ipv6_gateway: Some(gw6.into()),
        gw_priority: prio,
        network_id: Some(INTERNALNET_ID.into()),
        ..Default::default()
    };
    let map = |list: Vec<(&str, EndpointSettings)>| -> BTreeMap<String, EndpointSettings> {
        list.into_iter().map(|(n, e)| (n.to_string(), e)).collect()
    };
    let none = BTreeSet::new();
    // Dual-stack before IPv4-only, even when later by name.
    let m = map(vec![
        ("a", ep("203.0.113.1", "", None)),
        ("b", ep("203.0.113.65", "fd00:1::1", None)),
    ]);
    assert_eq!(gateway_network(&m, &none).as_deref(), Some("b"));
    // Then priority (where Docker reports it), then name.
    let m = map(vec![
        ("a", ep("203.0.113.1", "fd00::1", None)),
        ("b", ep("203.0.113.65", "fd00:1::1", Some(10))),
    ]);
    assert_eq!(gateway_network(&m, &none).as_deref(), Some("b"));
    let m = map(vec![
        ("b", ep("203.0.113.1", "fd00::1", None)),
        ("a", ep("203.0.113.65", "fd00:1::1", None)),
    ]);
    assert_eq!(gateway_network(&m, &none).as_deref(), Some("a"));
    // docker_gwbridge last; no gateway, host and none never.
    let m = map(vec![
        ("docker_gwbridge", ep("203.0.113.1", "fd00::1", None)),
        ("z", ep("203.0.113.65", "", None)),
    ]);
    assert_eq!(gateway_network(&m, &none).as_deref(), Some("z"));
    let m = map(vec![
        ("host", ep("203.0.113.1", "", None)),
        ("none", ep("", "", None)),
        ("x", ep("", "fd00::1", None)),
    ]);
    assert_eq!(gateway_network(&m, &none), None);
}

#[test]
fn events_map_to_hints() {
    let hints: Vec<DockerEvent> = EVENTS
        .lines()
        .map(|line| serde_json::from_str::<EventMessage>(line).expect("event parses"))
        .filter_map(|e| event_from_docker(&e))
        .collect();
    let web = || WEB_ID.to_string();
    let plain = || "7d4a858e08ed2a362061c167ba90d1e1e2b3ac33e898f2f8cd7216fb42eab2cc".to_string();
    let net = |id: &str| DockerEvent::NetworkChanged { id: id.to_string() };
    assert_eq!(
        hints,
        vec![
            net("dcb34dc023d356f2eb3d83aee2c1f0f592f989c634c85b36910d0b35d4862c3e"),
            net("668ce29b5e2ba4089839c491c33a6a5abce39d7f3edfd5aebfa6e0f3ce930b84"),
            net(INTERNALNET_ID),
            // Its ports are read at create; network connect names the container.
            DockerEvent::ContainerCreated { id: web() },
            DockerEvent::ContainerChanged { id: web() },
            DockerEvent::ContainerChanged { id: web() },
            DockerEvent::ContainerChanged { id: web() },
            DockerEvent::ContainerCreated { id: plain() },
            DockerEvent::ContainerChanged { id: plain() },
            DockerEvent::ContainerChanged { id: plain() },
            net("18732a7c6491c14549717ae46ac1d989eedb2f67cbc37ed51b5ac807a7187bd4"),
            DockerEvent::ContainerChanged { id: web() },
        ]
    );
}

#[test]
fn gone_events_and_malformed_ones() {
    let event = |typ: &str, action: &str, actor: Value| -> Option<DockerEvent> {
        let text = json!({"Type": typ, "Action": action, "Actor": actor, "scope": "local", "time": 1, "timeNano": 1});
        event_from_docker(&serde_json::from_value::<EventMessage>(text).unwrap())
    };
    let actor = json!({"ID": "abc", "Attributes": {"name": "web", "exitCode": "137"}});
    assert_eq!(
        event("container", "die", actor.clone()),
        Some(DockerEvent::ContainerGone { id: "abc".into() })
    );
    assert_eq!(
        event("container", "destroy", actor.clone()),
        Some(DockerEvent::ContainerGone { id: "abc".into() })
    );
    assert_eq!(
        event("container", "rename", actor.clone()),
        Some(DockerEvent::ContainerChanged { id: "abc".into() })
    );
    assert_eq!(
        event("container", "create", actor.clone()),
        Some(DockerEvent::ContainerCreated { id: "abc".into() })
    );
    assert_eq!(event("container", "exec_start: sh", actor.clone()), None);
    assert_eq!(
        event("network", "destroy", actor.clone()),
        Some(DockerEvent::NetworkGone { id: "abc".into() })
    );
    let disconnect =
        json!({"ID": "net1", "Attributes": {"container": "c1", "name": "v6net", "type": "bridge"}});
    assert_eq!(
        event("network", "disconnect", disconnect),
        Some(DockerEvent::ContainerChanged { id: "c1".into() })
    );
    // Malformed: no actor id, no container attribute.
    assert_eq!(event("container", "start", json!({"Attributes": {}})), None);
    assert_eq!(
        event(
            "network",
            "connect",
            json!({"ID": "net1", "Attributes": {}})
        ),
        None
    );
    assert_eq!(event("image", "delete", actor), None);
}

/// A container Docker 28.5 created and has not started (captured from the lab): its ports are
/// only in `HostConfig.PortBindings`, its network has no address yet.
const CREATED28: &str = include_str!("../../../tests/data/docker28/ctr-created.json");

#[test]
fn a_created_container_brings_the_ports_it_is_to_publish() {
    let response: ContainerInspectResponse = serde_json::from_str(CREATED28).expect("parses");
    let c = created_container_from_docker(response).expect("created");
    assert_eq!(c.name, "captured");
    assert_eq!(ipv6_addresses(&c), [("bench", None)]);
    let bindings: Vec<(&str, Vec<(&str, &str)>)> = c
        .ports
        .iter()
        .map(|(key, b)| {
            let b = b.as_deref().unwrap_or_default();
            let pairs = b.iter().map(|b| (b.host_ip.as_str(), b.host_port.as_str()));
            (key.as_str(), pairs.collect())
        })
        .collect();
    assert_eq!(
        bindings,
        [
            ("443/tcp", vec![("2001:db8:1::10", "8443")]),
            ("53/udp", vec![("", "5300")]),
            ("80/tcp", vec![("", "8080")]),
        ]
    );
    assert_eq!(
        c.labels.keys().collect::<Vec<_>>(),
        ["dock6.expose"],
        "dock6's own labels only"
    );
    // Running (an inspect that waited for the start to end): not a created one.
    let running = edited(CREATED28, "/State/Status", json!("running"));
    let response: ContainerInspectResponse = serde_json::from_str(&running).expect("parses");
    assert_eq!(created_container_from_docker(response), None);
}

/// Docker 28.5's answers (captured from the lab's `--docker 28`): a network whose IPv6 comes from
/// the `com.docker.network.enable_ipv6` option on a ULA /64 Docker allocated itself, and a
/// `gateway_mode_ipv6=routed` network whose IPv6 IPAM entry has no gateway.
const NET28_PLAIN6: &str = include_str!("../../../tests/data/docker28/net-plain6.json");
const NET28_DIRECT: &str = include_str!("../../../tests/data/docker28/net-direct.json");
const WEB28: &str = include_str!("../../../tests/data/docker28/ctr-web.json");

#[test]
fn docker28_networks_allocated_subnets_and_gatewayless_routed_ones() {
    let plain6 = net(NET28_PLAIN6).expect("usable");
    assert!(plain6.enable_ipv6);
    assert_eq!(
        plain6.ipv6_subnets(),
        vec!["fd95:8b76:5b12::/64".parse().unwrap()]
    );
    let direct = net(NET28_DIRECT).expect("usable");
    assert_eq!(
        direct.ipv6_subnets(),
        vec!["2001:db8:1:0:d0c::/80".parse().unwrap()]
    );
    assert_eq!(
        direct
            .options
            .get("com.docker.network.bridge.gateway_mode_ipv6")
            .map(String::as_str),
        Some("routed")
    );
    // An answer without EnableIPv6 (older API shapes): the option decides.
    let no_field = edited(NET28_PLAIN6, "/EnableIPv6", Value::Null);
    assert!(net(&no_field).unwrap().enable_ipv6);
    let option_false = edited(
        &no_field,
        "/Options/com.docker.network.enable_ipv6",
        json!("false"),
    );
    assert!(!net(&option_false).unwrap().enable_ipv6);
    // The field, when present, is Docker's effective choice and wins over the option.
    let field_false = edited(NET28_PLAIN6, "/EnableIPv6", json!(false));
    assert!(!net(&field_false).unwrap().enable_ipv6);
}

#[test]
fn docker28_container_on_two_networks() {
    let c = container(WEB28).expect("running");
    let addresses = ipv6_addresses(&c);
    assert_eq!(
        addresses,
        vec![
            ("direct", Some("2001:db8:1:0:d0c::2".parse().unwrap())),
            ("plain6", Some("fd95:8b76:5b12::2".parse().unwrap())),
        ]
    );
    // `ip -6 route` in the container: default via 2001:db8:1:0:d0c::1 (equal GwPriority,
    // the first network by name).
    assert_eq!(c.gateway_network.as_deref(), Some("direct"));
    let b = |ip: &str, port: &str| PortBinding {
        host_ip: ip.into(),
        host_port: port.into(),
    };
    // -p 8080:80 with the IPv6 gateway on a routed network: Docker 28 maps IPv4 and, for
    // IPv6, reports no host port (the container port is open at its own address).
    assert_eq!(c.ports.get("80/tcp"), Some(&Some(vec![b("::", "")])));
}

/// Only dock6's own labels are kept: images and compose give containers
/// many more, which the planner never reads.
#[test]
fn only_dock6_labels_are_kept() {
    let labelled = edited(
        WEB,
        "/Config/Labels",
        serde_json::json!({
            "dock6.expose": "80/tcp",
            "dock6.egress-address": "2001:db8::10",
            "com.docker.compose.project": "shop",
            "org.opencontainers.image.description": "a web server",
            "dock6": "not a dock6.* label"
        }),
    );
    let c = container(&labelled).expect("running");
    let keys: Vec<&str> = c.labels.keys().map(String::as_str).collect();
    assert_eq!(keys, ["dock6.egress-address", "dock6.expose"]);
}

#[tokio::test]
async fn a_docker_that_does_not_listen_is_told_from_one_that_answers_badly() {
    let dir = std::env::temp_dir().join(format!("dock6-listen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let missing = dir.join("none.sock");
    let e = connect(Some(&format!("unix://{}", missing.display())))
        .await
        .expect_err("no socket");
    assert!(e.nothing_listens(), "no socket file: {e}");

    // A socket file nobody listens on any more: the connection is refused.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let e = connect(Some(&format!("unix://{}", stale.display())))
        .await
        .expect_err("refused");
    assert!(e.nothing_listens(), "refused: {e}");

    // Control: something listens and answers, but not as Docker does.
    let answering = dir.join("answering.sock");
    let listener = std::os::unix::net::UnixListener::bind(&answering).expect("bind");
    let server = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            use std::io::{Read as _, Write as _};
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    let e = connect(Some(&format!("unix://{}", answering.display())))
        .await
        .expect_err("a 500");
    assert!(!e.nothing_listens(), "Docker answered: {e}");
    let _ = server.join();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A swarm task on an overlay with a port published in host mode, and its node's
/// `docker_gwbridge` (made with `--ipv6` before `swarm init`), captured on a two-node swarm in
/// the lab: Docker 20.10 on an `--ipv6` overlay, Docker 28.5 on an IPv4 overlay. Neither
/// container inspect lists `docker_gwbridge`, where the task's default routes and its
/// host-mode port are; the network's inspect does.
const TASK20: &str = include_str!("../../../tests/data/docker20.10/ctr-swarm-task.json");
const GWBRIDGE20: &str = include_str!("../../../tests/data/docker20.10/net-docker_gwbridge.json");
const TASK28: &str = include_str!("../../../tests/data/docker28/ctr-swarm-task.json");
const GWBRIDGE28: &str = include_str!("../../../tests/data/docker28/net-docker_gwbridge.json");

fn gwbridge(text: &str) -> BTreeMap<String, Endpoint> {
    gateway_bridge_endpoints(serde_json::from_str::<NetworkInspect>(text).expect("parses"))
}

#[test]
fn a_swarm_task_gets_its_endpoint_on_docker_gwbridge_as_its_gateway() {
    for (task, bridge, overlay, overlay_v6, gwbridge_v6) in [
        (
            TASK20,
            GWBRIDGE20,
            "swarmnet",
            Some("fd00:e1a::3"),
            "fd00:9a7e:2::3",
        ),
        (TASK28, GWBRIDGE28, "ov4", None, "fd00:6a7e:2::4"),
    ] {
        let mut c = container(task).expect("running");
        let v6 = |a: Option<&str>| a.map(|a| a.parse::<Ipv6Addr>().unwrap());
        assert_eq!(ipv6_addresses(&c), vec![(overlay, v6(overlay_v6))]);
        assert_eq!(
            c.gateway_network, None,
            "an overlay endpoint has no gateway"
        );
        assert!(may_have_hidden_gateway_bridge(&c));
        with_gateway_bridge(&mut c, &gwbridge(bridge));
        let mut expected = vec![
            (overlay, v6(overlay_v6)),
            (GATEWAY_BRIDGE, v6(Some(gwbridge_v6))),
        ];
        expected.sort();
        assert_eq!(ipv6_addresses(&c), expected);
        assert_eq!(c.gateway_network.as_deref(), Some(GATEWAY_BRIDGE));
        assert!(!may_have_hidden_gateway_bridge(&c), "added once");
    }
}

#[test]
fn docker_gwbridge_is_used_only_where_docker_attached_the_container() {
    let endpoints = gwbridge(GWBRIDGE20);
    // A container with a gateway network of its own: Docker gives it no gwbridge endpoint,
    // and an entry under its id (stale data) changes nothing.
    let web = container(WEB).expect("running");
    assert!(!may_have_hidden_gateway_bridge(&web));
    let mut listed = endpoints.clone();
    listed.insert(web.id.clone(), Endpoint::default());
    let mut unchanged = web.clone();
    with_gateway_bridge(&mut unchanged, &listed);
    assert_eq!(unchanged, web);
    // A task that the bridge does not list (yet): unchanged, its ports stay closed.
    let task = container(TASK20).expect("running");
    let mut alone = task.clone();
    with_gateway_bridge(&mut alone, &BTreeMap::new());
    assert_eq!(alone, task);
    // `host` and `none` never have one.
    let mut host = task.clone();
    host.networks = [("host".to_string(), Endpoint::default())].into();
    assert!(!may_have_hidden_gateway_bridge(&host));
    // `ingress-sbox` is kept under its own key, which is no container's id.
    assert!(endpoints.contains_key("ingress-sbox"));
}

#[test]
fn docker_gwbridge_addresses_that_do_not_parse_are_ignored() {
    let id = "/Containers/1e7ac130938b58f1319b9a66569092ad64665c85e1f5edd6359366c414de4ca5";
    let task = "1e7ac130938b58f1319b9a66569092ad64665c85e1f5edd6359366c414de4ca5";
    for (value, expected) in [
        (json!("fd00:9a7e:2::3"), Some("fd00:9a7e:2::3")),
        (json!(""), None),
        (json!("not-an-address/64"), None),
        (Value::Null, None),
    ] {
        let text = edited(GWBRIDGE20, &format!("{id}/IPv6Address"), value);
        let address = gwbridge(&text)[task].ipv6_address;
        assert_eq!(address, expected.map(|a| a.parse().unwrap()));
    }
}
