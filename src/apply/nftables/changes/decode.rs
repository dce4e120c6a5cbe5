//! Decoding notifications: just enough of each nf_tables message to answer
//! "was `table inet dock6` touched, and by whom?".

use super::{Generation, NFPROTO_INET, NftChange, NftEvent, NftObject, NftOp};
use crate::apply::nfnetlink::codec::{
    Message, NFNL_SUBSYS_NFTABLES, NLMSG_MIN_TYPE, attr, be32, cstr, messages,
};

/// The table-name attribute of every object message: `NFTA_TABLE_NAME`,
/// `NFTA_CHAIN_TABLE`, `NFTA_RULE_TABLE`, `NFTA_SET_TABLE`,
/// `NFTA_SET_ELEM_LIST_TABLE`, `NFTA_OBJ_TABLE`, `NFTA_FLOWTABLE_TABLE` are all 1.
const NFTA_X_TABLE: u16 = 1;
const NFTA_GEN_ID: u16 = 1;
const NFTA_GEN_PROC_PID: u16 = 2;
const NFTA_GEN_PROC_NAME: u16 = 3;

const NFT_MSG_NEWGEN: u8 = 15;

/// Decodes one datagram: zero or more netlink messages. Control and
/// non-nf_tables messages are skipped; a malformed header ends the datagram
/// with an `Unrecognized`.
pub fn decode(datagram: &[u8]) -> Vec<NftChange> {
    let mut out = Vec::new();
    for msg in messages(datagram) {
        match msg {
            Ok(m) if m.msg_type() >= NLMSG_MIN_TYPE && m.subsystem() == NFNL_SUBSYS_NFTABLES => {
                out.push(decode_message(&m))
            }
            Ok(_) => {}
            Err(e) => {
                // Trailing bytes too short for a header carry nothing.
                if let Some(msg_type) = e.msg_type {
                    out.push(NftChange::Unrecognized {
                        msg_type,
                        reason: e.reason,
                    });
                }
            }
        }
    }
    out
}

/// One nf_tables message: `nfgenmsg`, attributes.
fn decode_message(m: &Message<'_>) -> NftChange {
    let unrecognized = |reason: &str| NftChange::Unrecognized {
        msg_type: m.msg_type(),
        reason: reason.to_string(),
    };
    let Some(family) = m.family() else {
        return unrecognized("no nfgenmsg");
    };
    let attrs = m.bytes().get(20..).unwrap_or(&[]);
    let portid = m.portid();
    if m.subsystem_msg() == NFT_MSG_NEWGEN {
        return match decode_generation(attrs, portid) {
            Some(g) => NftChange::Generation(g),
            None => unrecognized("NEWGEN without generation id and pid"),
        };
    }
    let Some(what) = event_of(m.subsystem_msg()) else {
        return unrecognized("unknown nf_tables message type");
    };
    let Some(table) = attr(attrs, NFTA_X_TABLE).map(cstr) else {
        return unrecognized("no table name");
    };
    if family == NFPROTO_INET && table == crate::nft::TABLE_NAME {
        NftChange::OurTableTouched { what, portid }
    } else {
        NftChange::OtherTable {
            family,
            table,
            what,
            portid,
        }
    }
}

fn event_of(msg: u8) -> Option<NftEvent> {
    use NftObject::*;
    use NftOp::*;
    let (object, op) = match msg {
        0 => (Table, New),       // NFT_MSG_NEWTABLE
        2 => (Table, Deleted),   // NFT_MSG_DELTABLE
        3 => (Chain, New),       // NFT_MSG_NEWCHAIN
        5 => (Chain, Deleted),   // NFT_MSG_DELCHAIN
        6 => (Rule, New),        // NFT_MSG_NEWRULE
        8 => (Rule, Deleted),    // NFT_MSG_DELRULE
        9 => (Set, New),         // NFT_MSG_NEWSET
        11 => (Set, Deleted),    // NFT_MSG_DELSET
        12 => (SetElement, New), // NFT_MSG_NEWSETELEM
        14 => (SetElement, Deleted),
        18 => (Object, New), // NFT_MSG_NEWOBJ
        20 => (Object, Deleted),
        22 => (Flowtable, New), // NFT_MSG_NEWFLOWTABLE
        24 => (Flowtable, Deleted),
        26 => (Table, Deleted), // NFT_MSG_DESTROYTABLE …
        27 => (Chain, Deleted),
        28 => (Rule, Deleted),
        29 => (Set, Deleted),
        30 => (SetElement, Deleted),
        31 => (Object, Deleted),
        32 => (Flowtable, Deleted), // … NFT_MSG_DESTROYFLOWTABLE
        _ => return None,
    };
    Some(NftEvent { object, op })
}

fn decode_generation(attrs: &[u8], portid: u32) -> Option<Generation> {
    Some(Generation {
        id: be32(attr(attrs, NFTA_GEN_ID)?)?,
        pid: be32(attr(attrs, NFTA_GEN_PROC_PID)?)?,
        comm: attr(attrs, NFTA_GEN_PROC_NAME)
            .map(cstr)
            .unwrap_or_default(),
        portid,
        by_dock6: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn ours(object: NftObject, op: NftOp) -> NftChange {
        NftChange::OurTableTouched {
            what: NftEvent { object, op },
            portid: 0x57d6,
        }
    }

    /// Captured in a fresh namespace (kernel 6.18, nft 1.0.6): `nft 'add
    /// table inet dock6; add chain inet dock6 c; add table ip other'`, then
    /// `nft flush ruleset`, both by nft pid 0x57d6 / 0x57d7. The kernel
    /// coalesces a transaction's object messages into one datagram, then
    /// sends NEWGEN in its own.
    #[test]
    fn decodes_captured_notifications() {
        let add = hex(concat!(
            "3c000000000a000001000000d6570000010000020a000100646f636b3600000008000300000000010c000400000000000000000108000200000000",
            "003c000000030a000402000000d6570000010000020a000100646f636b3600000006000300630000000c0002000000000000000001080006000000",
            "00003c000000000a000003000000d6570000020000020a0001006f7468657200000008000300000000000c0004000000000000000002080002000000",
            "0000",
        ));
        assert_eq!(
            decode(&add),
            vec![
                ours(NftObject::Table, NftOp::New),
                ours(NftObject::Chain, NftOp::New),
                NftChange::OtherTable {
                    family: 2,
                    table: "other".into(),
                    what: NftEvent {
                        object: NftObject::Table,
                        op: NftOp::New
                    },
                    portid: 0x57d6,
                },
            ]
        );
        let add_gen = hex(
            "2c0000000f0a000001000000d657000000000002080001000000000208000200000057d6080003006e667400",
        );
        assert_eq!(
            decode(&add_gen),
            vec![NftChange::Generation(Generation {
                id: 2,
                pid: 0x57d6,
                comm: "nft".into(),
                portid: 0x57d6,
                by_dock6: false,
            })]
        );

        let flush = hex(concat!(
            "34000000050a000001000000d7570000010000030a000100646f636b3600000006000300630000000c00020000000000000000013400",
            "0000020a000001000000d7570000010000030a000100646f636b3600000008000300000000000c00040000000000000000013400000002",
            "0a000001000000d7570000020000030a0001006f7468657200000008000300000000000c0004000000000000000002",
        ));
        let deleted = |object| NftChange::OurTableTouched {
            what: NftEvent {
                object,
                op: NftOp::Deleted,
            },
            portid: 0x57d7,
        };
        assert_eq!(
            decode(&flush),
            vec![
                deleted(NftObject::Chain),
                deleted(NftObject::Table),
                NftChange::OtherTable {
                    family: 2,
                    table: "other".into(),
                    what: NftEvent {
                        object: NftObject::Table,
                        op: NftOp::Deleted
                    },
                    portid: 0x57d7,
                },
            ]
        );
        let flush_gen = hex(
            "2c0000000f0a000001000000d757000000000003080001000000000308000200000057d7080003006e667400",
        );
        let [NftChange::Generation(g)] = &decode(&flush_gen)[..] else {
            panic!("one generation")
        };
        assert_eq!((g.id, g.pid, g.comm.as_str()), (3, 0x57d7, "nft"));
    }

    #[test]
    fn event_names() {
        let e = NftEvent {
            object: NftObject::Rule,
            op: NftOp::Deleted,
        };
        assert_eq!(e.to_string(), "rule deleted");
        let e = NftEvent {
            object: NftObject::SetElement,
            op: NftOp::New,
        };
        assert_eq!(e.to_string(), "set element added");
    }

    #[test]
    fn garbage_is_not_a_panic() {
        assert_eq!(decode(&[]), vec![]);
        assert_eq!(decode(&[1, 2, 3]), vec![]);
        // Length larger than the datagram.
        let mut m = vec![0u8; 16];
        m[..4].copy_from_slice(&100u32.to_ne_bytes());
        m[4..6].copy_from_slice(&0x0a00u16.to_ne_bytes());
        assert!(matches!(decode(&m)[..], [NftChange::Unrecognized { .. }]));
        // An nf_tables message with no nfgenmsg, then one whose attribute overruns.
        m[..4].copy_from_slice(&16u32.to_ne_bytes());
        assert!(matches!(decode(&m)[..], [NftChange::Unrecognized { .. }]));
        let mut m = vec![0u8; 24];
        m[..4].copy_from_slice(&24u32.to_ne_bytes());
        m[4..6].copy_from_slice(&0x0a06u16.to_ne_bytes());
        m[20..22].copy_from_slice(&200u16.to_ne_bytes());
        m[22..24].copy_from_slice(&1u16.to_ne_bytes());
        assert!(
            matches!(&decode(&m)[..], [NftChange::Unrecognized { reason, .. }] if reason == "no table name")
        );
    }
}
