//! Router solicitations against a real kernel: a "host" namespace (where
//! dock6 runs) and a "router" namespace joined by a veth pair. A raw ICMPv6
//! socket on the router's end checks the message as it arrives, and the
//! router's own kernel (it forwards, so it handles solicitations) must accept
//! it: it records the sender's link-layer address from the option.

mod common;

use std::time::{Duration, Instant};

use common::icmp6::{icmp6_listener, receive};
use common::netns::Netns;
use dock6::apply::{HostError, send_router_solicitation};

const HOST_MAC: &str = "02:d6:00:00:00:01";

fn neighbours(ns: &Netns, device: &str) -> String {
    ns.exec_ok(&["ip", "-6", "neigh", "show", "dev", device])
}

#[test]
fn router_solicitation_reaches_the_router() {
    if !common::require_root("router_solicitation_reaches_the_router") {
        return;
    }
    let host = Netns::new("rs-host");
    let router = Netns::new("rs-rtr");
    // Only dock6 solicits: the host's kernel would otherwise send its own
    // solicitation (same source, same option) when the link comes up.
    host.sysctl("net.ipv6.conf.default.router_solicitations", "0");
    // A router: handles solicitations, and so listens on ff02::2.
    router.sysctl("net.ipv6.conf.all.forwarding", "1");
    host.ip(&format!(
        "link add up0 address {HOST_MAC} type veth peer name r0 netns {}",
        router.name
    ));
    host.ip("link add nolink0 type veth peer name nolink1");
    host.ip("link set up0 up");
    router.ip("link set r0 up");
    let source = host.link_local("up0");
    router.link_local("r0");
    assert!(
        !neighbours(&router, "r0").contains(&source.to_string()),
        "router already knows {source}"
    );

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = router.spawn(move || {
        let socket = icmp6_listener("r0");
        ready_tx.send(()).unwrap();
        receive(&socket, 133)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("listener ready");

    let errors = host.netlink(|h| async move {
        send_router_solicitation(&h, "up0").await.expect("send");
        let missing = send_router_solicitation(&h, "nosuch0")
            .await
            .expect_err("no interface");
        // Down, so without a link-local address.
        let no_link_local = send_router_solicitation(&h, "nolink0")
            .await
            .expect_err("no link-local");
        (missing, no_link_local)
    });
    let got = listener.join().expect("listener");

    assert_eq!(got.hop_limit, Some(255));
    assert_eq!(got.source, source);
    let mac: Vec<u8> = HOST_MAC
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let mut expected = vec![133, 0];
    expected.push(got.payload[2]); // checksum, from the kernel
    expected.push(got.payload[3]);
    expected.extend_from_slice(&[0, 0, 0, 0, 1, 1]);
    expected.extend_from_slice(&mac);
    assert_eq!(
        got.payload, expected,
        "type 133, code 0, reserved, source link-layer address option"
    );

    // The router's kernel took it as a valid solicitation (checksum, hop
    // limit, option): it has a neighbour entry with the advertised address.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let table = neighbours(&router, "r0");
        if table.lines().any(|l| {
            l.starts_with(&format!("{source} ")) && l.contains(&format!("lladdr {HOST_MAC}"))
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "router has no entry for {source} lladdr {HOST_MAC}:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let (missing, no_link_local) = errors;
    assert!(
        matches!(missing, HostError::SolicitationNoInterface { .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("nosuch0"), "{missing}");
    assert!(
        matches!(no_link_local, HostError::NoLinkLocal { .. }),
        "{no_link_local:?}"
    );
    assert!(
        no_link_local.to_string().contains("nolink0"),
        "{no_link_local}"
    );
}
