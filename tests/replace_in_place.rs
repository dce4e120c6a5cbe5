//! The whole-table replace at scale: a table replaced over netlink reads
//! back from the kernel exactly as `nft -f` of its text loads it, whichever
//! way the replace went — anew (the table created), in place by difference
//! (dock6's last commit still current), in place by flush (someone else
//! committed since) — with 20,000 elements in each large set, so that every
//! set spans several netlink messages. Needs root; every kernel change
//! happens in fresh per-thread network namespaces.

mod common;

use std::net::Ipv6Addr;

use dock6::apply::nftables::{ElementChange, Replaced, replace_table_how, update_elements};
use dock6::nft::{Element, KeyType, L4Proto, Set, TABLE_NAME, Table, Value};

use common::roundtrip::{Listing, listing, via_nft};
use common::{in_fresh_netns, nft, require_root};

/// Elements given to every set keyed by an address.
const LARGE: usize = 20_000;

#[test]
fn replaced_table_reads_back_as_planned_every_way() {
    if !require_root("replaced_table_reads_back_as_planned_every_way") {
        return;
    }
    let base = scenario_table("all-three-modes");
    // The same shape three times over: 20,000 elements per large set; the
    // same with a tenth of them gone, new ones and other map data; and a
    // plan with one rule less.
    let big = enlarged(&base, 0..LARGE, 0);
    let changed = enlarged(&base, LARGE / 10..LARGE + LARGE / 10, 7);
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
    let last = format!(
        "{}",
        Ipv6Addr::from(0x2001_0db8_ffff_u128 << 80 | LARGE as u128)
    );
    assert!(
        want_big.text.contains(&last),
        "nft -f loaded the large sets (up to {last})"
    );

    let (foreign_set, foreign) = foreign_element(&big, &changed);
    let removed = first_large_element(&changed);
    in_fresh_netns(move || {
        let replace = |t: &Table| replace_table_how(t).unwrap_or_else(|e| panic!("replace: {e}"));
        let same = |want: &Listing, what: &str| {
            let got = listing();
            pretty_assertions::assert_eq!(want.text, got.text, "{what}: nft list");
            pretty_assertions::assert_eq!(
                without_handles(&want.bytecode),
                without_handles(&got.bytecode),
                "{what}: bytecode"
            );
        };

        assert_eq!(replace(&big), Replaced::Fresh, "no table yet");
        same(&want_big, "created");
        assert_eq!(replace(&big), Replaced::InPlace, "the same table again");
        same(&want_big, "the same again");
        assert_eq!(replace(&changed), Replaced::InPlace, "other elements");
        same(&want_changed, "by difference");
        assert_eq!(replace(&fewer_rules), Replaced::InPlace, "one rule less");
        same(&want_fewer, "one rule less");

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
            replace(&changed),
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
        assert_eq!(replace(&changed), Replaced::InPlace, "after an update");
        same(&want_changed, "by difference after an update");

        // Another shape: the table is made anew.
        assert_eq!(replace(&bootstrap), Replaced::Fresh, "another shape");
        same(&want_bootstrap, "anew");
    });
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
/// address (their map data offset by `data_offset`).
fn enlarged(table: &Table, range: std::ops::Range<usize>, data_offset: usize) -> Table {
    let mut t = table.clone();
    for set in t.sets.iter_mut().filter(|s| is_large(s)) {
        let generated: Vec<Element> = range
            .clone()
            .map(|i| Element {
                key: values(&set.key, i),
                data: values(&set.data, i + data_offset),
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
/// 2001:db8:ffff::i, well away from any scenario's).
fn values(types: &[KeyType], i: usize) -> Vec<Value> {
    types
        .iter()
        .map(|t| match t {
            KeyType::Ipv6Addr => Value::Addr(Ipv6Addr::from(
                0x2001_0db8_ffff_u128 << 80 | (i as u128 + 1),
            )),
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
