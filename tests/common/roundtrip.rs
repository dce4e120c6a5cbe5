//! Loading a table both ways, over netlink (`dock6::apply::nftables`) and with
//! `nft -f` of its text, each in a fresh namespace, and comparing the
//! kernel's listings: the helpers of `tests/roundtrip.rs`.

use dock6::apply::nftables::replace_table;
use dock6::nft::{Element, L4Proto, TABLE_NAME, Table, Value};

use super::{in_fresh_netns, netns_id, nft};

/// The listing preceded by the kernel's bytecode as nft decodes it: the
/// bytecode catches differences the text form does not show.
const LIST_BYTECODE: &[&str] = &["--debug=netlink", "list", "table", "inet", TABLE_NAME];

/// The kernel dumps hash-set elements in an order that depends on a random
/// per-set seed; `nft list` sorts them, the bytecode dump does not: sort
/// each run of element lines.
fn normalize(listing: String) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for line in listing.lines() {
        if line.starts_with("\telement ") {
            run.push(line);
            continue;
        }
        run.sort_unstable();
        out.extend(run.drain(..).map(String::from));
        out.push(line.to_string());
    }
    run.sort_unstable();
    out.extend(run.drain(..).map(String::from));
    out.join("\n")
}

/// `nft list table inet dock6`, and the kernel's bytecode for it.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    pub text: String,
    pub bytecode: String,
}

/// One nft run (each costs seconds on an emulated kernel): the text form is
/// the tail of the bytecode listing, from its `table` line on.
pub fn listing() -> Listing {
    let bytecode = nft(LIST_BYTECODE, None);
    let start = format!("table inet {TABLE_NAME} {{");
    let text = match bytecode.find(&format!("\n{start}")) {
        Some(at) => bytecode[at + 1..].to_string(),
        None if bytecode.starts_with(&start) => bytecode.clone(),
        None => panic!("no `{start}` in nft's listing:\n{bytecode}"),
    };
    Listing {
        text,
        bytecode: normalize(bytecode),
    }
}

/// Applies `table` with the encoder (twice: idempotence) in a fresh
/// namespace; returns the listing after the first and second apply.
pub fn via_netlink(table: &Table) -> (Listing, Listing) {
    let table = table.clone();
    in_fresh_netns(move || {
        // A child spawned from this thread must share its namespace.
        let ns = std::fs::read_link("/proc/thread-self/ns/net").expect("ns link");
        let seen = std::process::Command::new("readlink")
            .arg("/proc/self/ns/net")
            .output()
            .expect("readlink");
        assert_eq!(
            String::from_utf8_lossy(&seen.stdout).trim(),
            ns.to_string_lossy(),
            "child in the thread's netns ({})",
            netns_id()
        );
        assert_eq!(
            nft(&["list", "ruleset"], None),
            "",
            "fresh namespace is empty"
        );

        replace_table(&table).unwrap_or_else(|e| panic!("replace_table: {e}"));
        let first = listing();
        replace_table(&table).unwrap_or_else(|e| panic!("replace_table again: {e}"));
        (first, listing())
    })
}

pub fn via_nft(table: &Table) -> Listing {
    let script = table.replace_script();
    in_fresh_netns(move || {
        nft(&["-f", "-"], Some(&script));
        listing()
    })
}

pub fn assert_roundtrip(name: &str, table: &Table) {
    let expected = via_nft(table);
    assert!(
        expected
            .text
            .starts_with(&format!("table inet {TABLE_NAME} {{")),
        "{name}: nft -f loaded nothing"
    );
    let (first, second) = via_netlink(table);
    pretty_assertions::assert_eq!(
        expected.text,
        first.text,
        "{name}: nft list, netlink vs nft -f"
    );
    pretty_assertions::assert_eq!(
        expected.bytecode,
        first.bytecode,
        "{name}: bytecode, netlink vs nft -f"
    );
    pretty_assertions::assert_eq!(first, second, "{name}: second replace_table");
    eprintln!(
        "{name}: identical ({} lines listed)",
        first.text.lines().count()
    );
}

/// The open-port elements (`ADDR . tcp|udp . PORT`) in a set listing.
pub fn count_elements(listing: &str) -> usize {
    listing
        .lines()
        .filter(|l| l.contains(" . tcp . ") || l.contains(" . udp . "))
        .count()
}

/// An `open_ports` element: address, protocol, port.
pub fn port_element(addr: &str, proto: L4Proto, port: u16) -> Element {
    Element {
        key: vec![
            Value::Addr(addr.parse().expect("addr")),
            Value::Proto(proto),
            Value::Port(port),
        ],
        data: vec![],
    }
}
