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

/// Among a thousand unrelated entries (`conntrack -R`, a file of
/// `conntrack -I` lines) the kernel-filtered dumps find exactly the removed
/// mapping's DNAT'ed flows: not those of the same host port DNAT'ed to
/// another container, not those from the same container's other ports, not
/// a flow with the same ports that was never DNAT'ed. The control: the same
/// call for the other container's mapping deletes its flow.
#[test]
fn among_many_unrelated_entries_only_the_mappings_flows_go() {
    if !common::require_root("among_many_unrelated_entries_only_the_mappings_flows_go") {
        return;
    }
    let ns = Netns::new("ctmany");
    let mut lines = String::new();
    for i in 0..1000 {
        lines.push_str(&format!(
            "-I -s 2001:db8:3::{:x} -d 2001:db8:4::1 -p tcp --sport {} --dport 443 --state ESTABLISHED -t 600\n",
            i + 1,
            10_000 + i
        ));
    }
    let file = std::env::temp_dir().join(format!("dock6-ctmany-{}.txt", std::process::id()));
    std::fs::write(&file, lines).expect("write conntrack -R file");
    ns.exec_ok(&["conntrack", "-R", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    let insert = |sport: &str, dport: &str, dnat: Option<&str>| {
        let mut argv = vec![
            "conntrack",
            "-I",
            "-s",
            "2001:db8:2::1",
            "-d",
            "2001:db8:1::10",
            "-p",
            "udp",
            "--sport",
            sport,
            "--dport",
            dport,
            "-t",
            "600",
        ];
        if let Some(to) = dnat {
            argv.extend(["--dst-nat", to]);
        }
        ns.exec_ok(&argv);
    };
    insert("40000", "5353", Some("[fd00:1::2]:53")); // the mapping's flows
    insert("40001", "5353", Some("[fd00:1::2]:53"));
    insert("40002", "5353", Some("[fd00:1::3]:53")); // same host port, other container
    insert("40003", "5354", Some("[fd00:1::2]:54")); // same container, other port
    insert("40004", "53", None); // never DNAT'ed
    let count = || {
        ns.exec_ok(&["conntrack", "-C"])
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(count(), 1005);

    let mapping = |target: &str| DnatTarget {
        proto: L4Proto::Udp,
        host_port: 5353,
        target: target.parse().unwrap(),
        target_port: 53,
    };
    let gone = mapping("fd00:1::2");
    let deleted = ns
        .run(move || delete_dnat_flows(&[gone]))
        .expect("delete_dnat_flows");
    assert_eq!(deleted, 2, "the two flows of the removed mapping");
    assert_eq!(count(), 1003, "everything else stays");
    let left = ns.exec_ok(&["conntrack", "-L", "-f", "ipv6"]);
    for kept in ["sport=40002", "sport=40003", "sport=40004"] {
        assert!(left.contains(kept), "{kept} stays: {left}");
    }

    let other = mapping("fd00:1::3");
    let deleted = ns
        .run(move || delete_dnat_flows(&[other]))
        .expect("delete_dnat_flows");
    assert_eq!(
        deleted, 1,
        "control: the other container's mapping has its flow"
    );
    assert_eq!(count(), 1002);
}

/// A removed container's mappings of both protocols, deleted in one call
/// (one dump, filtered by the DNAT status alone): each of its flows goes;
/// another container's flows on the same ports and a flow never DNAT'ed
/// stay, and go when that container's mappings are deleted (the control).
#[test]
fn a_removed_containers_tcp_and_udp_mappings_go_in_one_call() {
    if !common::require_root("a_removed_containers_tcp_and_udp_mappings_go_in_one_call") {
        return;
    }
    let ns = Netns::new("ctbatch");
    let insert = |proto: &str, sport: &str, dport: &str, dnat: Option<&str>| {
        let mut argv = vec![
            "conntrack",
            "-I",
            "-s",
            "2001:db8:2::1",
            "-d",
            "2001:db8:1::10",
            "-p",
            proto,
            "--sport",
            sport,
            "--dport",
            dport,
            "-t",
            "600",
        ];
        if proto == "tcp" {
            argv.extend(["--state", "ESTABLISHED"]);
        }
        if let Some(to) = dnat {
            argv.extend(["--dst-nat", to]);
        }
        ns.exec_ok(&argv);
    };
    // The removed container's flows, one per mapping.
    insert("tcp", "40000", "8080", Some("[fd00:1::2]:80"));
    insert("tcp", "40001", "8443", Some("[fd00:1::2]:443"));
    insert("udp", "40002", "5353", Some("[fd00:1::2]:53"));
    // Another container on the same host and container ports (other host
    // addresses, say), and a flow never DNAT'ed.
    insert("tcp", "40003", "8080", Some("[fd00:1::3]:80"));
    insert("udp", "40004", "5353", Some("[fd00:1::3]:53"));
    insert("udp", "40005", "53", None);
    let count = || {
        ns.exec_ok(&["conntrack", "-C"])
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(count(), 6);
    let mappings = |target: &str| -> Vec<DnatTarget> {
        let target: Ipv6Addr = target.parse().unwrap();
        [
            (L4Proto::Tcp, 8080, 80),
            (L4Proto::Tcp, 8443, 443),
            (L4Proto::Udp, 5353, 53),
        ]
        .into_iter()
        .map(|(proto, host_port, target_port)| DnatTarget {
            proto,
            host_port,
            target,
            target_port,
        })
        .collect()
    };
    let gone = mappings("fd00:1::2");
    let deleted = ns
        .run(move || delete_dnat_flows(&gone))
        .expect("delete_dnat_flows");
    assert_eq!(deleted, 3, "the removed container's three flows");
    let left = ns.exec_ok(&["conntrack", "-L", "-f", "ipv6"]);
    for kept in ["sport=40003", "sport=40004", "sport=40005"] {
        assert!(left.contains(kept), "{kept} stays: {left}");
    }
    assert_eq!(count(), 3, "everything else stays");

    let other = mappings("fd00:1::3");
    let deleted = ns
        .run(move || delete_dnat_flows(&other))
        .expect("delete_dnat_flows");
    assert_eq!(deleted, 2, "control: the other container's two flows");
    assert_eq!(count(), 1, "the flow never DNAT'ed stays");
}
