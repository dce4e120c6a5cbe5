//! Conntrack deletes for removed port mappings, in namespaces: a UDP flow
//! DNAT'ed to a container sticks to it after the mapping moves, until
//! `delete_dnat_flows` removes its entry; unrelated entries stay.

mod common;

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::lab::{HOST_UPLINK, Lab, sock};
use common::netns::Netns;
use dock6::apply::{DnatTarget, delete_dnat_flows};
use dock6::nft::L4Proto;
use serde_json::json;

const WEB: &str = "fd00:1::2";
const WEB2: &str = "fd00:1::3";
/// The client's fixed source port, so a second request belongs to the same flow.
const CLIENT_PORT: u16 = 40000;

fn lab(tag: &str) -> Lab {
    let mut lab = Lab::new(tag);
    lab.bridge("br-ula", "fd00:1::1/64", None, None);
    lab.container("web", "br-ula", &format!("{WEB}/64"), "fd00:1::1", None);
    lab.container("web2", "br-ula", &format!("{WEB2}/64"), "fd00:1::1", None);
    lab
}

/// 5353/udp goes to `udp_to` port 53; 8080/tcp always goes to web:80.
fn snapshot(lab: &Lab, udp_to: &str) -> serde_json::Value {
    let udp = json!({"53/udp": [{"HostIp": "::", "HostPort": "5353"}]});
    let mut web_ports = json!({"80/tcp": [{"HostIp": "::", "HostPort": "8080"}]});
    let mut web2_ports = json!({});
    let target = if udp_to == "web" {
        &mut web_ports
    } else {
        &mut web2_ports
    };
    target
        .as_object_mut()
        .expect("object")
        .extend(udp.as_object().expect("object").clone());
    json!({
        "host": lab.host_facts(),
        "networks": [{"id": format!("{:0>64}", "ula"), "name": "ula", "bridge": "br-ula", "enable_ipv6": true,
                      "subnets": [{"subnet": "fd00:1::/64"}]}],
        "containers": [
            {"id": "w", "name": "web", "networks": {"ula": {"ipv6_address": WEB}}, "ports": web_ports},
            {"id": "w2", "name": "web2", "networks": {"ula": {"ipv6_address": WEB2}}, "ports": web2_ports},
        ]
    })
}

/// A UDP request from `[::]:CLIENT_PORT` inside `ns`; the reply, if any.
fn udp_from_fixed_port(ns: &Netns, to: SocketAddr) -> std::io::Result<String> {
    ns.run(move || {
        let s = UdpSocket::bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), CLIENT_PORT))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send_to(b"who", to)?;
        let mut buf = [0u8; 256];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    })
}

/// `conntrack -L -f ipv6` in the host, one entry a line.
fn entries(lab: &Lab) -> Vec<String> {
    lab.host
        .exec_ok(&["conntrack", "-L", "-f", "ipv6"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn has(entries: &[String], parts: &[&str]) -> bool {
    entries
        .iter()
        .any(|e| parts.iter().all(|p| e.split_whitespace().any(|w| w == *p)))
}

#[test]
fn a_moved_udp_mapping_stops_sticking_once_its_flows_are_deleted() {
    if !common::require_root("a_moved_udp_mapping_stops_sticking_once_its_flows_are_deleted") {
        return;
    }
    let lab = lab("ct");
    lab.apply(&snapshot(&lab, "web"), "");
    let web_server = lab.c("web").udp_echo_peer(53);
    let _web2_server = lab.c("web2").udp_echo_peer(53);
    let _web_tcp = lab.c("web").tcp_echo_peer(80);
    let _web_direct = lab.c("web").udp_echo_peer(54);

    let published = sock(HOST_UPLINK, 5353);
    assert!(
        udp_from_fixed_port(&lab.upstream, published).is_ok(),
        "5353/udp reaches web"
    );
    // Unrelated entries: another DNAT'ed flow (8080/tcp → web:80), and a flow
    // sent straight to web's address, not DNAT'ed, whose reply tuple looks
    // like a mapping's ([web]:54 → host port 54) and must still stay.
    assert!(
        lab.upstream.tcp(sock(HOST_UPLINK, 8080)).is_ok(),
        "8080/tcp reaches web"
    );
    assert!(
        lab.host.udp(sock(WEB, 54)).is_ok(),
        "the host reaches web directly"
    );
    let before = entries(&lab);
    let flow = [
        format!("dport={CLIENT_PORT}"),
        "dport=5353".into(),
        format!("src={WEB}"),
        "sport=53".into(),
    ];
    let flow: Vec<&str> = flow.iter().map(String::as_str).collect();
    assert!(
        has(&before, &flow),
        "the DNAT'ed UDP entry exists: {before:#?}"
    );
    assert!(
        has(&before, &["dport=8080", &format!("src={WEB}"), "sport=80"]),
        "tcp entry: {before:#?}"
    );
    assert!(
        has(&before, &[&format!("dst={WEB}"), "dport=54"]),
        "direct entry: {before:#?}"
    );

    // The mapping moves to web2 and web's server stops. The flow still goes
    // to web: that is the bug this code is for.
    lab.apply(&snapshot(&lab, "web2"), "");
    drop(web_server);
    assert!(
        udp_from_fixed_port(&lab.upstream, published).is_err(),
        "control: the flow sticks to web"
    );

    let removed = vec![
        DnatTarget {
            proto: L4Proto::Udp,
            host_port: 5353,
            target: WEB.parse().unwrap(),
            target_port: 53,
        },
        // Matches the direct flow's tuples but it was not DNAT'ed: kept.
        DnatTarget {
            proto: L4Proto::Udp,
            host_port: 54,
            target: WEB.parse().unwrap(),
            target_port: 54,
        },
        // Right ports, wrong protocol for the 8080 flow: kept.
        DnatTarget {
            proto: L4Proto::Udp,
            host_port: 8080,
            target: WEB.parse().unwrap(),
            target_port: 80,
        },
    ];
    let targets = removed.clone();
    let deleted = lab
        .host
        .run(move || delete_dnat_flows(&targets))
        .expect("delete_dnat_flows");
    assert_eq!(deleted, 1, "exactly the one UDP flow");

    let after = entries(&lab);
    assert!(
        !has(&after, &flow),
        "the DNAT'ed UDP entry is gone: {after:#?}"
    );
    assert!(
        has(&after, &["dport=8080", &format!("src={WEB}"), "sport=80"]),
        "tcp entry stays: {after:#?}"
    );
    assert!(
        has(&after, &[&format!("dst={WEB}"), "dport=54"]),
        "direct entry stays: {after:#?}"
    );

    // The same client port now gets a fresh DNAT to web2.
    assert!(
        udp_from_fixed_port(&lab.upstream, published).is_ok(),
        "the flow now reaches web2"
    );
    let now = entries(&lab);
    assert!(
        has(
            &now,
            &[
                &format!("dport={CLIENT_PORT}"),
                "dport=5353",
                &format!("src={WEB2}")
            ]
        ),
        "{now:#?}"
    );

    // Nothing left to delete (and an entry already gone is no error).
    let targets = removed;
    assert_eq!(
        lab.host
            .run(move || delete_dnat_flows(&targets))
            .expect("second call"),
        0
    );
}

#[test]
fn an_empty_table_and_no_targets_delete_nothing() {
    if !common::require_root("an_empty_table_and_no_targets_delete_nothing") {
        return;
    }
    let ns = Netns::new("ct0");
    let target = DnatTarget {
        proto: L4Proto::Tcp,
        host_port: 80,
        target: "2001:db8::1".parse().unwrap(),
        target_port: 80,
    };
    assert_eq!(
        ns.run(move || delete_dnat_flows(&[target]))
            .expect("empty table"),
        0
    );
    assert_eq!(ns.run(|| delete_dnat_flows(&[])).expect("no targets"), 0);
}
