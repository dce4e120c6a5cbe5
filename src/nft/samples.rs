//! Sample tables for benchmarks and tests.

use std::net::Ipv6Addr;

use super::{Element, KeyType, L4Proto, Set, TABLE_NAME, Table, Value};

/// A table with one `open_ports` set of `n` distinct elements.
pub fn open_ports_table(n: usize) -> Table {
    let elements = (0..n)
        .map(|i| Element {
            key: vec![
                Value::Addr(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    0,
                    0,
                    0,
                    (i / 60000) as u16,
                    (i % 60000) as u16 + 1,
                )),
                Value::Proto(if i % 2 == 0 {
                    L4Proto::Tcp
                } else {
                    L4Proto::Udp
                }),
                Value::Port((i % 65000) as u16 + 1),
            ],
            data: vec![],
        })
        .collect();
    Table {
        name: TABLE_NAME.into(),
        sets: vec![Set {
            name: "open_ports".into(),
            key: vec![KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService],
            data: vec![],
            elements,
        }],
        chains: vec![],
    }
}
