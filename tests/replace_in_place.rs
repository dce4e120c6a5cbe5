//! The whole-table replace at scale: a table replaced over netlink reads
//! back from the kernel exactly as `nft -f` of its text loads it, whichever
//! way the replace went — anew (the table created), in place by difference
//! (dock6's last commit still current, the element changes since given), in
//! place by flush (someone else committed since, or nothing known) — with
//! 20,000 elements in each large set, so that every set spans several
//! netlink messages; and traffic through a lab host takes
//! exactly the paths the table opens after each way. Needs root; every
//! kernel change happens in fresh network namespaces.

mod common;

use std::net::Ipv6Addr;
use std::sync::{Mutex, MutexGuard};

use dock6::apply::nftables::{ElementChange, Replaced, replace_table_how, update_elements};
use dock6::nft::{Element, KeyType, L4Proto, Set, TABLE_NAME, Table, Value};

use common::lab::{HOST_UPLINK, INTERNET, Lab, UPSTREAM_LINK, sock};
use common::roundtrip::{Listing, listing, via_nft};
use common::{in_fresh_netns, nft, require_root};
use serde_json::json;

/// Elements given to every set keyed by an address: 20,000, or the number
/// [`LARGE_ENV`] gives (the kernel matrix's emulated kernels take fewer).
fn large() -> usize {
    std::env::var(LARGE_ENV)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{LARGE_ENV}={v:?}: a number"))
        })
        .unwrap_or(20_000)
}

const LARGE_ENV: &str = "DOCK6_LARGE_SETS";

/// The first 48 bits of the generated addresses (2001:db8:ffff::/48).
const GENERATED: u128 = 0x2001_0db8_ffff;

/// The tests of this file one at a time: one of them counts the heap the
/// process holds, which another test's allocations would blur.
static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time(test: &str) -> Option<MutexGuard<'static, ()>> {
    require_root(test).then(|| SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// What dock6 keeps between two replaces: the record of its last commit
/// (the rules and the ruleset generation), never a copy of the sets'
/// elements, which the caller's planner holds already. With 20,000
/// elements in each large set (fewer under `DOCK6_LARGE_SETS`), a copy
/// would be megabytes; what stays on
/// the heap after two replaces (anew, then in place) is counted.
#[test]
fn a_replace_keeps_no_copy_of_the_elements() {
    let Some(_serial) = one_at_a_time("a_replace_keeps_no_copy_of_the_elements") else {
        return;
    };
    let large = large();
    let big = enlarged(&scenario_table("all-three-modes"), 0..large, 0, GENERATED);
    let elements = big.element_count();
    assert!(elements > 3 * large, "{elements} elements in the table");
    in_fresh_netns(move || {
        let before = dock6::apply::heap_in_use().expect("glibc's heap counters");
        let replaced = replace_table_how(&big, None).unwrap_or_else(|e| panic!("replace: {e}"));
        assert_eq!(replaced, Replaced::Fresh, "no table yet");
        let replaced =
            replace_table_how(&big, None).unwrap_or_else(|e| panic!("replace again: {e}"));
        assert_eq!(replaced, Replaced::InPlace, "the same table again");
        let after = dock6::apply::heap_in_use().expect("glibc's heap counters");
        let kept = after.saturating_sub(before);
        assert!(
            kept < 512 * 1024,
            "{kept} bytes kept after replacing a table of {elements} elements \
             ({} bytes an element)",
            kept / elements
        );
    });
}

#[test]
fn replaced_table_reads_back_as_planned_every_way() {
    let Some(_serial) = one_at_a_time("replaced_table_reads_back_as_planned_every_way") else {
        return;
    };
    let base = scenario_table("all-three-modes");
    let large = large();
    // The same shape three times over: 20,000 elements per large set; the
    // same with a tenth of them gone, new ones and other map data; and a
    // plan with one rule less.
    let big = enlarged(&base, 0..large, 0, GENERATED);
    let changed = enlarged(&base, large / 10..large + large / 10, 7, GENERATED);
    let mut fewer_rules = changed.clone();
    let chain = fewer_rules
        .chains
        .iter_mut()
        .find(|c| c.rules.len() > 1)
        .expect("a chain with rules");
    chain.rules.pop();
    let bootstrap = common::bootstrap_table();
    let expected = |t: &Table| via_nft(t);
    let (want_big, want_changed, want_fewer, want_bootstrap) = (
        expected(&big),
        expected(&changed),
        expected(&fewer_rules),
        expected(&bootstrap),
    );
    let last = format!("{}", Ipv6Addr::from(GENERATED << 80 | large as u128));
    assert!(
        want_big.text.contains(&last),
        "nft -f loaded the large sets (up to {last})"
    );

    let (foreign_set, foreign) = foreign_element(&big, &changed);
    let removed = first_large_element(&changed);
    let big_to_changed = element_changes(&big, &changed);
    assert!(big_to_changed.len() > large / 10, "elements go and come");
    in_fresh_netns(move || {
        let replace = |t: &Table, since: Option<&[ElementChange]>| {
            replace_table_how(t, since).unwrap_or_else(|e| panic!("replace: {e}"))
        };
        let same = |want: &Listing, what: &str| {
            let got = listing();
            pretty_assertions::assert_eq!(want.text, got.text, "{what}: nft list");
            pretty_assertions::assert_eq!(
                without_handles(&want.bytecode),
                without_handles(&got.bytecode),
                "{what}: bytecode"
            );
        };

        assert_eq!(replace(&big, None), Replaced::Fresh, "no table yet");
        same(&want_big, "created");
        assert_eq!(
            replace(&big, Some(&[])),
            Replaced::Differences,
            "the same table again, nothing changed since"
        );
        same(&want_big, "the same again");
        assert_eq!(
            replace(&changed, Some(&big_to_changed)),
            Replaced::Differences,
            "other elements"
        );
        same(&want_changed, "by difference");
        assert_eq!(
            replace(&fewer_rules, Some(&[])),
            Replaced::Differences,
            "one rule less"
        );
        same(&want_fewer, "one rule less");
        // Without the changes since, the sets are flushed and filled.
        assert_eq!(replace(&fewer_rules, None), Replaced::InPlace, "unknown");
        same(&want_fewer, "by flush, nothing known");
        // Changes that do not start from the kernel's table (the elements
        // they add are there already): refused whole, the table made anew.
        assert_eq!(
            replace(&changed, Some(&big_to_changed)),
            Replaced::Fresh,
            "changes from another table"
        );
        same(&want_changed, "anew after changes from another table");
        assert_eq!(
            replace(&fewer_rules, Some(&[])),
            Replaced::Differences,
            "one rule less, again"
        );
        same(&want_fewer, "one rule less, again");

        // Someone else adds an element and deletes one: dock6's record is
        // no longer current, the sets are flushed and filled.
        let add = format!("add element inet {TABLE_NAME} {foreign_set} {{ {foreign} }}");
        nft(&["-f", "-"], Some(&add));
        let (set, element) = &removed;
        let delete = format!("delete element inet {TABLE_NAME} {set} {{ {element} }}");
        nft(&["-f", "-"], Some(&delete));
        assert_ne!(
            listing().text,
            want_fewer.text,
            "the foreign changes are in"
        );
        assert_eq!(
            replace(&changed, Some(&[])),
            Replaced::InPlace,
            "after foreign changes"
        );
        same(&want_changed, "by flush");

        // dock6's own element update keeps its record current: the next
        // replace puts the element back by difference.
        let change = ElementChange::Remove {
            set: set.clone(),
            element: element.clone(),
        };
        update_elements(TABLE_NAME, &[change]).unwrap_or_else(|e| panic!("update: {e}"));
        assert_ne!(listing().text, want_changed.text, "the element is gone");
        let back = ElementChange::Add {
            set: set.clone(),
            element: element.clone(),
        };
        assert_eq!(
            replace(&changed, Some(&[back])),
            Replaced::Differences,
            "after an update"
        );
        same(&want_changed, "by difference after an update");

        // Another shape: the table is made anew.
        assert_eq!(replace(&bootstrap, None), Replaced::Fresh, "another shape");
        same(&want_bootstrap, "anew");
    });
}

/// The web container's address (network `ula`, NAT66).
const WEB: &str = "fd00:1::2";
/// The generated elements' addresses here: 2001:db8:eeee::/48, clear of the
/// lab's (its "internet" is in 2001:db8:ffff::/48).
const GENERATED_IN_LAB: u128 = 0x2001_0db8_eeee;

/// Traffic after each way of replacing: the published port answers from
/// the upstream (DNAT'ed, the client's address kept), the container
/// reaches the upstream (NAT66), and what the table does not open stays
/// closed: a port the plan no longer publishes, one someone else opened
/// between two replaces, and the container's unpublished port addressed
/// directly (with a control from the host, where it answers). The sets hold
/// thousands of other elements, so each replace spans several messages.
#[test]
fn traffic_takes_the_planned_paths_after_each_way_of_replacing() {
    let Some(_serial) =
        one_at_a_time("traffic_takes_the_planned_paths_after_each_way_of_replacing")
    else {
        return;
    };
    let mut lab = Lab::new("rip");
    lab.bridge("br-ula", "fd00:1::1/64", None, None);
    lab.container("web", "br-ula", &format!("{WEB}/64"), "fd00:1::1", None);
    // The upstream routes the container's subnet to the host, so that the
    // container's unpublished port can be tried directly.
    lab.upstream
        .ip(&format!("-6 route add fd00:1::/64 via {HOST_UPLINK}"));
    // What `dock6 apply` would switch on after the table.
    lab.host.sysctl("net.ipv6.conf.all.forwarding", "1");
    let planned = |host_port: u16| {
        let snapshot = json!({
            "host": lab.host_facts(),
            "networks": [{"id": format!("{:0>64}", "ula"), "name": "ula", "bridge": "br-ula",
                          "enable_ipv6": true, "subnets": [{"subnet": "fd00:1::/64"}]}],
            "containers": [{"id": "w", "name": "web", "networks": {"ula": {"ipv6_address": WEB}},
                            "ports": {"80/tcp": [{"HostIp": "::", "HostPort": host_port.to_string()}],
                                      "9000/tcp": null}}]
        });
        let snapshot = dock6::source::parse_snapshot(&snapshot.to_string(), "lab".as_ref())
            .unwrap_or_else(|e| panic!("{e}"));
        let table = dock6::plan::plan(&Default::default(), &snapshot).ruleset;
        enlarged(&table, 0..large() / 4, 0, GENERATED_IN_LAB)
    };
    // Port 80 published on 8080, then moved to 8081: element changes only.
    let (on_8080, on_8081) = (planned(8080), planned(8081));
    assert!(
        matches!(
            dock6::nft::diff(&on_8080, &on_8081),
            dock6::nft::TableDiff::Elements(_)
        ),
        "the two plans differ in elements only"
    );
    let web = lab.c("web");
    let (_web80, _web9000) = (web.tcp_echo_peer(80), web.tcp_echo_peer(9000));
    let _internet = lab.upstream.tcp_echo_peer(7000);
    let (upstream, host) = (&lab.upstream, &lab.host);
    let answers_upstream = |port: u16| upstream.tcp(sock(HOST_UPLINK, port));
    let paths = |open: u16, closed: &[u16], what: &str| {
        assert_eq!(
            answers_upstream(open).unwrap_or_else(|e| panic!("{what}: published port {open}: {e}")),
            UPSTREAM_LINK,
            "{what}: published port {open} DNAT'ed, the client's address kept"
        );
        for port in closed {
            assert!(
                answers_upstream(*port).is_err(),
                "{what}: port {port} is not published, yet answers"
            );
        }
        assert!(
            upstream.tcp(sock(WEB, 9000)).is_err(),
            "{what}: the container's unpublished port answers the upstream"
        );
        assert_eq!(
            host.tcp(sock(WEB, 9000))
                .unwrap_or_else(|e| panic!("{what}: control: port 9000 from the host: {e}")),
            "fd00:1::1",
            "{what}: control"
        );
        assert_eq!(
            web.tcp(sock(INTERNET, 7000))
                .unwrap_or_else(|e| panic!("{what}: egress: {e}")),
            HOST_UPLINK,
            "{what}: the container reaches the upstream as the host (NAT66)"
        );
    };
    // All replaces from one thread: dock6's record of its last commit is
    // kept per thread, as the agent's kernel thread keeps it.
    assert_eq!(
        upstream
            .tcp(sock(WEB, 9000))
            .expect("control: without a table, the upstream reaches port 9000 directly"),
        UPSTREAM_LINK
    );
    let moved = element_changes(&on_8080, &on_8081);
    host.run(|| {
        let replace = |t: &Table, since: Option<&[ElementChange]>| {
            replace_table_how(t, since).unwrap_or_else(|e| panic!("replace: {e}"))
        };
        assert_eq!(replace(&on_8080, None), Replaced::Fresh, "no table yet");
        paths(8080, &[8081], "created");
        assert_eq!(
            replace(&on_8081, Some(&moved)),
            Replaced::Differences,
            "by difference"
        );
        paths(8081, &[8080], "in place, by difference");

        // Someone else opens port 9000 and closes 8081.
        let foreign = format!(
            "add element inet {TABLE_NAME} dnat_any {{ tcp . 9000 : {WEB} . 9000 }}\n\
             delete element inet {TABLE_NAME} dnat_any {{ tcp . 8081 : {WEB} . 80 }}\n"
        );
        nft(&["-f", "-"], Some(&foreign));
        assert_eq!(
            answers_upstream(9000).expect("the foreign mapping is in"),
            UPSTREAM_LINK
        );
        assert!(answers_upstream(8081).is_err(), "the foreign delete is in");
        assert_eq!(
            replace(&on_8081, Some(&[])),
            Replaced::InPlace,
            "after foreign changes"
        );
        paths(8081, &[8080, 9000], "in place, by flush");
    });
}

/// The element changes from `from`'s sets to `to`'s (the chains aside), as
/// the agent's planner reports them.
fn element_changes(from: &Table, to: &Table) -> Vec<ElementChange> {
    let sets_only = |t: &Table| Table {
        chains: Vec::new(),
        ..t.clone()
    };
    match dock6::nft::diff(&sets_only(from), &sets_only(to)) {
        dock6::nft::TableDiff::Elements(changes) => changes,
        dock6::nft::TableDiff::Same => Vec::new(),
        dock6::nft::TableDiff::Structure => panic!("the same sets expected"),
    }
}

/// The bytecode listing without rule handles: the kernel numbers rules per
/// table, so a table made anew restarts from 1 and one kept counts on; the
/// rules themselves are what must match. A rule's header line is
/// `inet dock6 CHAIN HANDLE [POSITION]`.
fn without_handles(bytecode: &str) -> String {
    let prefix = format!("inet {TABLE_NAME} ");
    bytecode
        .lines()
        .map(|line| match line.strip_prefix(&prefix) {
            Some(rest) => {
                let chain = rest.split(' ').next().unwrap_or(rest);
                format!("{prefix}{chain}")
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn scenario_table(name: &str) -> Table {
    common::scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("scenario {name}"))
        .plan()
        .ruleset
}

/// `table` with the elements `range` added to every set keyed by an
/// address (their map data offset by `data_offset`), the addresses in
/// `prefix::/48`.
fn enlarged(
    table: &Table,
    range: std::ops::Range<usize>,
    data_offset: usize,
    prefix: u128,
) -> Table {
    let mut t = table.clone();
    for set in t.sets.iter_mut().filter(|s| is_large(s)) {
        let generated: Vec<Element> = range
            .clone()
            .map(|i| Element {
                key: values(&set.key, i, prefix),
                data: values(&set.data, i + data_offset, prefix),
            })
            .collect();
        set.elements.extend(generated);
    }
    t
}

fn is_large(set: &Set) -> bool {
    set.key.first() == Some(&KeyType::Ipv6Addr)
}

/// Values of the types `types`, distinct for each `i` (the address is
/// PREFIX::i, well away from any scenario's).
fn values(types: &[KeyType], i: usize, prefix: u128) -> Vec<Value> {
    types
        .iter()
        .map(|t| match t {
            KeyType::Ipv6Addr => Value::Addr(Ipv6Addr::from(prefix << 80 | (i as u128 + 1))),
            KeyType::InetProto => Value::Proto(if i.is_multiple_of(2) {
                L4Proto::Tcp
            } else {
                L4Proto::Udp
            }),
            KeyType::InetService => Value::Port(1024 + (i % 60_000) as u16),
            other => panic!("no generated values of type {other}"),
        })
        .collect()
}

/// An element of `big` that `changed` does not plan, and its set.
fn foreign_element(big: &Table, changed: &Table) -> (String, Element) {
    let set = big.sets.iter().find(|s| is_large(s)).expect("a large set");
    let planned = changed.set(&set.name).expect("the same set");
    let e = set
        .elements
        .iter()
        .find(|e| !planned.elements.contains(e))
        .expect("an element only big has");
    (set.name.clone(), e.clone())
}

/// The last element of the first large set of `table`.
fn first_large_element(table: &Table) -> (String, Element) {
    let set = table
        .sets
        .iter()
        .find(|s| is_large(s))
        .expect("a large set");
    let e = set.elements.last().expect("elements");
    (set.name.clone(), e.clone())
}
