//! The host-apply layer (sysctls, proxy-NDP entries) against a real kernel,
//! each test in a network namespace of its own, deleted when the test ends.
//!
//! How code runs inside a namespace: a fresh std thread opens
//! `/run/netns/NAME` and calls `setns(fd, CLONE_NEWNET)`, which switches only
//! that thread. Everything the thread creates afterwards lives there: the
//! rtnetlink socket (built on a current-thread tokio runtime in that thread)
//! and `/proc/sys/net/...` lookups, which the kernel resolves against the
//! calling thread's namespace. `sysctl_reads_follow_the_thread` checks the
//! latter: the dotted interface exists only in the namespace, and the same
//! read fails from a thread that did not switch.

mod common;

use std::net::Ipv6Addr;
use std::sync::Arc;

use common::icmp6::{icmp6_listener, receive};
use common::netns::Netns;
use dock6::apply::progress::{self, Heartbeat};
use dock6::apply::{
    DOCK6_NEIGH_PROTOCOL, HostError, SysctlAction, apply_sysctl, list_proxy_entries, read_sysctl,
    remove_all_dock6_entries, send_unsolicited_na, sync_proxy_entries,
};
use dock6::plan::{ProxyEntry, SysctlSetting};

/// `ip -6 neigh show proxy` lines, trimmed and sorted.
fn proxy_lines(ns: &Netns) -> Vec<String> {
    let mut lines: Vec<String> = ns
        .exec_ok(&["ip", "-6", "neigh", "show", "proxy"])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

/// A dotted interface name that exists in no other namespace.
fn dotted_name() -> String {
    format!("v{}.100", std::process::id() % 100_000)
}

/// A namespace with veth pairs `up0`/`up1` and `<dotted>`/`p100`.
fn namespace(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip("link add up0 type veth peer name up1");
    ns.ip(&format!(
        "link add {} type veth peer name p100",
        dotted_name()
    ));
    ns
}

fn setting(scope: &str, name: &str, value: u8, keep_if: Option<u8>) -> SysctlSetting {
    SysctlSetting {
        scope: scope.to_string(),
        name: name.to_string(),
        value,
        current: None,
        keep_if,
        reason: "test".to_string(),
    }
}

fn entry(interface: &str, address: &str) -> ProxyEntry {
    ProxyEntry {
        interface: interface.to_string(),
        address: address.parse().expect("address"),
        container: "c1".to_string(),
        network: "n1".to_string(),
    }
}

fn addr(text: &str) -> Ipv6Addr {
    text.parse().expect("address")
}

#[test]
fn sysctl_reads_follow_the_thread() {
    if !common::require_root("sysctl_reads_follow_the_thread") {
        return;
    }
    let ns = namespace("thr");
    let dotted = dotted_name();
    let key = format!("net.ipv6.conf.{}.proxy_ndp", dotted.replace('.', "/"));
    ns.sysctl(&key, "1");
    let inside = ns.run(|| read_sysctl(&dotted, "proxy_ndp"));
    assert_eq!(inside.expect("read inside the namespace"), 1);
    // The same read from this (unswitched) thread does not see the interface.
    let outside = read_sysctl(&dotted, "proxy_ndp");
    assert!(
        matches!(outside, Err(HostError::SysctlMissing { .. })),
        "{outside:?}"
    );
    // One thread, here and then there, reading a sysctl both have (set
    // apart there): the sysctl directory it kept open from here is not the
    // one it reads there.
    let here = read_sysctl("default", "proxy_ndp").expect("read here");
    let apart = u8::from(here == 0);
    ns.sysctl("net.ipv6.conf.default.proxy_ndp", &apart.to_string());
    let (first, then) = std::thread::scope(|s| {
        s.spawn(|| {
            let first = read_sysctl("default", "proxy_ndp");
            ns.enter_here();
            (first, read_sysctl("default", "proxy_ndp"))
        })
        .join()
        .expect("the reading thread")
    });
    assert_eq!(first.expect("read here"), here);
    assert_eq!(then.expect("read after moving in"), apart);
}

#[test]
fn sysctl_on_dotted_interface() {
    if !common::require_root("sysctl_on_dotted_interface") {
        return;
    }
    let ns = namespace("sysctl");
    let dotted = dotted_name();
    let slashed = dotted.replace('.', "/");
    let proxy_key = format!("net.ipv6.conf.{slashed}.proxy_ndp");
    let ra_key = format!("net.ipv6.conf.{slashed}.accept_ra");

    // read agrees with sysctl(8)
    let read = ns.run(|| read_sysctl(&dotted, "proxy_ndp")).expect("read");
    assert_eq!(read.to_string(), ns.read_sysctl(&proxy_key));
    assert_eq!(read, 0);

    // write when different, report old → new
    let out = ns
        .run(|| apply_sysctl(&setting(&dotted, "proxy_ndp", 1, None)))
        .expect("apply");
    assert_eq!(
        (out.old, out.new, out.action),
        (0, 1, SysctlAction::Changed)
    );
    assert_eq!(out.key, proxy_key);
    assert_eq!(out.to_string(), format!("{proxy_key}: 0 → 1"));
    assert_eq!(ns.read_sysctl(&proxy_key), "1");

    // no write when already set
    let out = ns
        .run(|| apply_sysctl(&setting(&dotted, "proxy_ndp", 1, None)))
        .expect("apply");
    assert_eq!(
        (out.old, out.new, out.action),
        (1, 1, SysctlAction::AlreadySet)
    );

    // keep_if: accept_ra 0 stays 0
    ns.sysctl(&ra_key, "0");
    let out = ns
        .run(|| apply_sysctl(&setting(&dotted, "accept_ra", 2, Some(0))))
        .expect("apply");
    assert_eq!((out.old, out.new, out.action), (0, 0, SysctlAction::Kept));
    assert_eq!(ns.read_sysctl(&ra_key), "0");

    // … but 1 becomes 2
    ns.sysctl(&ra_key, "1");
    let out = ns
        .run(|| apply_sysctl(&setting(&dotted, "accept_ra", 2, Some(0))))
        .expect("apply");
    assert_eq!(
        (out.old, out.new, out.action),
        (1, 2, SysctlAction::Changed)
    );
    assert_eq!(ns.read_sysctl(&ra_key), "2");

    // a missing interface names the key
    let err = ns
        .run(|| apply_sysctl(&setting("gone.7", "accept_ra", 2, Some(0))))
        .expect_err("missing interface");
    assert!(matches!(err, HostError::SysctlMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("net.ipv6.conf.gone/7.accept_ra"),
        "{err}"
    );
}

#[test]
fn proxy_entries_are_tagged_and_listed() {
    if !common::require_root("proxy_entries_are_tagged_and_listed") {
        return;
    }
    let ns = namespace("ndp-add");
    let dotted = dotted_name();
    let desired = vec![
        entry("up0", "2001:db8::5"),
        entry("up0", "2001:db8::6"),
        entry(&dotted, "2001:db8::7"),
    ];
    let (report, listed) = ns.netlink(|h| async move {
        let report = sync_proxy_entries(&h, &desired).await.expect("sync");
        let listed = list_proxy_entries(&h).await.expect("list");
        (report, listed)
    });
    assert!(report.is_complete(), "{:?}", report.errors);
    assert_eq!(report.added.len(), 3);
    assert!(report.removed.is_empty() && report.foreign.is_empty());

    let lines = proxy_lines(&ns);
    let proto = format!("proto {DOCK6_NEIGH_PROTOCOL}");
    for want in [
        format!("2001:db8::5 dev up0 proxy {proto}"),
        format!("2001:db8::6 dev up0 proxy {proto}"),
        format!("2001:db8::7 dev {dotted} proxy {proto}"),
    ] {
        assert!(lines.contains(&want), "{want:?} not in {lines:?}");
    }

    let mut seen: Vec<(Option<String>, Ipv6Addr, u8)> = listed
        .iter()
        .map(|e| (e.interface.clone(), e.address, e.protocol))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (Some("up0".to_string()), addr("2001:db8::5"), 0xd6),
            (Some("up0".to_string()), addr("2001:db8::6"), 0xd6),
            (Some(dotted.clone()), addr("2001:db8::7"), 0xd6),
        ]
    );
    assert!(listed.iter().all(|e| e.is_dock6()));

    // a second sync changes nothing
    let desired = vec![
        entry("up0", "2001:db8::5"),
        entry("up0", "2001:db8::6"),
        entry(&dotted, "2001:db8::7"),
    ];
    let report =
        ns.netlink(|h| async move { sync_proxy_entries(&h, &desired).await.expect("sync") });
    assert!(!report.changed());
    assert_eq!(report.unchanged, 3);
}

/// Adding and removing proxy entries marks progress once per entry, so
/// that the agent's watchdog times each entry, not a whole pass of them.
#[test]
fn each_proxy_entry_marks_progress() {
    if !common::require_root("each_proxy_entry_marks_progress") {
        return;
    }
    let ns = namespace("ndp-progress");
    let many: Vec<ProxyEntry> = (1..=200)
        .map(|i| entry("up0", &format!("2001:db8:5::{i:x}")))
        .collect();
    let heartbeat = Heartbeat::new();
    let marked = Arc::clone(&heartbeat);
    let (added, removed) = ns.netlink(|h| async move {
        progress::install(marked);
        let added = sync_proxy_entries(&h, &many).await.expect("sync");
        let removed = sync_proxy_entries(&h, &[]).await.expect("sync");
        (added, removed)
    });
    assert_eq!((added.added.len(), removed.removed.len()), (200, 200));
    assert!(
        heartbeat.beats() >= 400,
        "{} beats for 200 entries added and 200 removed",
        heartbeat.beats()
    );
}

#[test]
fn sync_removes_stale_and_leaves_foreign() {
    if !common::require_root("sync_removes_stale_and_leaves_foreign") {
        return;
    }
    let ns = namespace("ndp-sync");
    ns.ip("-6 neigh add proxy 2001:db8::99 dev up0");

    let first = vec![entry("up0", "2001:db8::5"), entry("up0", "2001:db8::6")];
    let report = ns.netlink(|h| async move { sync_proxy_entries(&h, &first).await.expect("sync") });
    assert_eq!(report.added.len(), 2);
    assert!(
        report.removed.is_empty(),
        "the foreign entry must not be removed: {:?}",
        report.removed
    );

    // ::5 goes, ::6 stays, ::99 is wanted but foreign, one interface is missing
    let second = vec![
        entry("up0", "2001:db8::6"),
        entry("up0", "2001:db8::99"),
        entry("nosuch0", "2001:db8::8"),
    ];
    let report =
        ns.netlink(|h| async move { sync_proxy_entries(&h, &second).await.expect("sync") });
    assert_eq!(
        report.removed.iter().map(|e| e.address).collect::<Vec<_>>(),
        vec![addr("2001:db8::5")]
    );
    assert!(report.added.is_empty());
    assert_eq!(report.unchanged, 1);
    assert_eq!(
        report.foreign.iter().map(|e| e.address).collect::<Vec<_>>(),
        vec![addr("2001:db8::99")]
    );
    assert_eq!(report.errors.len(), 1);
    let message = report.errors[0].to_string();
    assert!(
        message.contains("nosuch0") && message.contains("2001:db8::8"),
        "{message}"
    );

    // the foreign entry is still there, and still not tagged as dock6's
    assert_eq!(
        proxy_lines(&ns),
        vec![
            "2001:db8::6 dev up0 proxy proto 214".to_string(),
            "2001:db8::99 dev up0 proxy".to_string()
        ]
    );

    // an empty plan removes dock6's entries only
    let report = ns.netlink(|h| async move { sync_proxy_entries(&h, &[]).await.expect("sync") });
    assert_eq!(report.removed.len(), 1);
    assert_eq!(
        proxy_lines(&ns),
        vec!["2001:db8::99 dev up0 proxy".to_string()]
    );
}

#[test]
fn remove_all_removes_only_dock6_entries() {
    if !common::require_root("remove_all_removes_only_dock6_entries") {
        return;
    }
    let ns = namespace("ndp-clean");
    let dotted = dotted_name();
    ns.ip("-6 neigh add proxy 2001:db8::99 dev up0");
    ns.ip(&format!(
        "-6 neigh add proxy fd00::99 dev {} protocol static",
        dotted
    ));
    let desired = vec![entry("up0", "2001:db8::5"), entry(&dotted, "fd00::5")];
    let removed = ns.netlink(|h| async move {
        let report = sync_proxy_entries(&h, &desired).await.expect("sync");
        assert_eq!(report.added.len(), 2);
        remove_all_dock6_entries(&h).await.expect("remove all")
    });
    let mut gone: Vec<Ipv6Addr> = removed.iter().map(|e| e.address).collect();
    gone.sort();
    assert_eq!(gone, vec![addr("2001:db8::5"), addr("fd00::5")]);
    assert_eq!(
        proxy_lines(&ns),
        vec![
            "2001:db8::99 dev up0 proxy".to_string(),
            format!("fd00::99 dev {dotted} proxy proto static"),
        ]
    );
    // nothing left to remove
    let removed =
        ns.netlink(|h| async move { remove_all_dock6_entries(&h).await.expect("remove all") });
    assert!(removed.is_empty());
}

#[test]
fn unsolicited_neighbour_advertisement_reaches_the_link() {
    if !common::require_root("unsolicited_neighbour_advertisement_reaches_the_link") {
        return;
    }
    let ns = namespace("na");
    ns.sysctl("net.ipv6.conf.up0.accept_dad", "0");
    ns.ip("link set up0 address 02:d6:00:00:00:01");
    ns.ip("link set up1 up");
    ns.ip("link set up0 up");
    let target = addr("2001:db8::5");
    let got = ns.netlink(|h| async move {
        let listener = icmp6_listener("up1");
        send_unsolicited_na(&h, "up0", target, true, None)
            .await
            .expect("send");
        let got = receive(&listener, 136);
        let missing = send_unsolicited_na(&h, "nosuch0", target, true, None)
            .await
            .expect_err("no interface");
        assert!(
            missing.to_string().contains("nosuch0") && missing.to_string().contains("2001:db8::5")
        );
        got
    });
    assert_eq!(got.hop_limit, Some(255));
    assert!(got.source.is_unicast_link_local(), "source {}", got.source);
    let p = &got.payload;
    assert_eq!(p.len(), 32);
    assert_eq!(p[4] & 0xe0, 0xa0, "flags R and O, not S");
    assert_eq!(&p[8..24], &target.octets());
    assert_eq!(&p[24..32], &[2, 1, 0x02, 0xd6, 0, 0, 0, 1]);
}
