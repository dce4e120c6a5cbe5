//! The whole-table replace done in place, when the kernel's table already
//! has the planned shape: the same chains (names, order, hooks, types,
//! policies) and the same sets (names, order, types, userdata), and nothing
//! else. One batch then brings the table's rules and each set's elements to
//! the planned ones: when the kernel still holds what dock6 last committed
//! (`committed.rs`) and the caller names the element changes since, by
//! rewriting the rules only if they differ and sending only those changes;
//! else by flushing the rules and every set and adding all of them. No
//! table, chain or set is deleted or created.
//!
//! Why: a set created empty in a batch starts as a 4-bucket hash table in
//! the kernel and grows by doubling while its elements are inserted; each
//! insert meanwhile walks every table not yet rehashed (the rehash worker
//! cannot run while the batch holds the CPU). At 10,000 containers (some
//! 100,000 elements) that growth was most of the commit. Flushing and
//! re-adding every element of a kept set costs nearly as much (each old
//! element is unhashed at commit), hence the differences.
//!
//! The result reads back as the fresh replace would (`nft list table`
//! prints the same; only rule handles differ, as they do after every
//! replace). The batch carries the ruleset generation the table was read
//! at: if anyone committed since, the kernel refuses it whole (ERESTART)
//! and the caller falls back to the fresh replace.

use tracing::debug;

use super::batch::{Batch, ElemTarget, push_elements};
use super::committed::Rules;
use super::elements::push_changes;
use super::encode::{SetSpec, set_spec};
use super::ffi::ChainHook;
use super::query::generation;
use super::table::{chain_hook, push_rules, rules_of, set_elements, set_kind};
use super::{
    NFT_MSG_DELRULE, NFT_MSG_DELSETELEM, NFT_MSG_GETCHAIN, NFT_MSG_GETSET, NFT_MSG_GETTABLE,
    NFT_MSG_NEWSETELEM, NftError, What,
};
use crate::apply::nfnetlink::codec::{
    self, Message, NFNL_SUBSYS_NFTABLES, NFPROTO_INET, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST, be32,
};
use crate::apply::nfnetlink::{next_seq, with_conn};
use crate::nft::{Chain, ElementChange, Set, Table};

// Attributes (linux/netfilter/nf_tables.h).
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USE: u16 = 3;
const NFTA_TABLE_HANDLE: u16 = 4;
const NFTA_TABLE_PAD: u16 = 5;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HANDLE: u16 = 2;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_USE: u16 = 6;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_PAD: u16 = 9;
const NFTA_CHAIN_FLAGS: u16 = 10;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
/// NFT_CHAIN_BASE, the only chain flag dock6's chains carry.
const NFT_CHAIN_BASE: u32 = 1;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_PAD: u16 = 14;
const NFTA_SET_HANDLE: u16 = 16;
/// Newer kernels also report the set's backend and element count; neither
/// is something dock6 sets.
const NFTA_SET_TYPE: u16 = 19;
const NFTA_SET_COUNT: u16 = 20;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;

/// The ruleset generation at which `table inet <table.name>` was read to
/// have exactly the shape of `table`, or `None` when it has not (or does
/// not exist).
pub(super) fn generation_if_same_shape(table: &Table) -> Result<Option<u32>, NftError> {
    let at = generation()?;
    let Some(kernel_table) = get_table(&table.name)? else {
        return Ok(None);
    };
    let chains = dump(NFT_MSG_GETCHAIN, &[])?;
    let chains: Vec<&Vec<Attr>> = chains
        .iter()
        .filter(|c| string(c, NFTA_CHAIN_TABLE).as_deref() == Some(table.name.as_str()))
        .collect();
    let sets = dump(NFT_MSG_GETSET, &[(NFTA_SET_TABLE, &table.name)])?;
    let expected_use = (table.chains.len() + table.sets.len()) as u32;
    let differs = if !table_is_plain(&kernel_table, expected_use) {
        Some("the table's flags or objects")
    } else if chains.len() != table.chains.len()
        || !chains
            .iter()
            .zip(&table.chains)
            .all(|(k, c)| same_chain(k, c))
    {
        Some("the chains")
    } else if sets.len() != table.sets.len()
        || !sets.iter().zip(&table.sets).enumerate().all(|(i, (k, s))| {
            // The id only names a set created in a batch; it is not kept.
            set_spec(s, i as u32 + 1).is_ok_and(|spec| same_set(k, &spec))
        })
    {
        Some("the sets")
    } else {
        None
    };
    match differs {
        Some(what) => {
            debug!("table inet {}: {what} differ from the plan", table.name);
            Ok(None)
        }
        None => Ok(Some(at)),
    }
}

/// What dock6 knows of the kernel's table at the generation it was read at,
/// its own last commit being still current: the rules that commit left
/// there, and the element changes that lead from what it left to the plan
/// (when the caller knows them).
pub(super) struct Known<'a> {
    pub rules: Rules,
    pub changes: Option<&'a [ElementChange]>,
}

/// The batch that turns a table of the same shape into `table`, applied
/// only at ruleset `generation`, and the rules the table then holds. With
/// `known`, the rules are rewritten only if they differ; with its element
/// changes, only they are sent (nothing at all for a table as planned: the
/// batch is empty). Otherwise every rule is flushed and the planned ones
/// appended (naming the kept sets), and every set flushed and filled.
/// Rules go before elements: binding a rule to a map makes the kernel walk
/// the map, which then holds only what it held.
pub(super) fn refill_batch(
    table: &Table,
    generation: u32,
    known: Option<Known<'_>>,
) -> Result<(Batch, Rules), NftError> {
    let name = &table.name;
    let rules = rules_of(table)?;
    let (old_rules, changes) = match known {
        Some(k) => (Some(k.rules), k.changes),
        None => (None, None),
    };
    let elements = match changes {
        Some(c) => c.len(),
        None => 2 * table.sets.len(),
    };
    let mut b = Batch::at_generation(1 + elements + rules.len(), Some(generation));
    if old_rules.as_ref() != Some(&rules) {
        b.push_attrs(
            NFT_MSG_DELRULE,
            0,
            What::Text(format!("flush the rules of table inet {name}")),
            |w| {
                w.put_str(NFTA_RULE_TABLE, name);
            },
        );
        for chain in &table.chains {
            push_rules(&mut b, name, chain, &Default::default())?;
        }
    }
    match changes {
        Some(changes) => push_changes(&mut b, name, changes)?,
        None => {
            for set in &table.sets {
                let target = ElemTarget {
                    table: name,
                    set: &set.name,
                    set_id: None,
                };
                push_flush(&mut b, &target, set);
                let add = (NFT_MSG_NEWSETELEM, NLM_F_CREATE);
                push_elements(&mut b, add, &target, set_elements(set))?;
            }
        }
    }
    Ok((b, rules))
}

/// Deletes every element of the set (a DELSETELEM without elements).
fn push_flush(b: &mut Batch, target: &ElemTarget<'_>, set: &Set) {
    let what = What::Text(format!("flush {} {}", set_kind(set), set.name));
    b.push_attrs(NFT_MSG_DELSETELEM, 0, what, |w| {
        w.put_str(NFTA_SET_ELEM_LIST_TABLE, target.table)
            .put_str(NFTA_SET_ELEM_LIST_SET, target.set);
    });
}

/// One attribute of a dumped object: its type and payload.
type Attr = (u16, Vec<u8>);

fn attrs_of(msg: &Message<'_>) -> Vec<Attr> {
    msg.attrs().map(|a| (a.kind, a.payload.to_vec())).collect()
}

fn find(attrs: &[Attr], kind: u16) -> Option<&[u8]> {
    attrs
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| p.as_slice())
}

fn string(attrs: &[Attr], kind: u16) -> Option<String> {
    find(attrs, kind).map(codec::cstr)
}

fn u32_attr(attrs: &[Attr], kind: u16) -> Option<u32> {
    find(attrs, kind).and_then(be32)
}

/// Whether every attribute is one of `known` (anything else — userdata,
/// counters, expressions, timeouts, an owner — is something dock6 did not
/// put there, and only the fresh replace removes it).
fn only(attrs: &[Attr], known: &[u16]) -> bool {
    attrs.iter().all(|(k, _)| known.contains(k))
}

/// Flags 0 and nothing in it but the planned chains and sets.
fn table_is_plain(t: &[Attr], expected_use: u32) -> bool {
    let known = [
        NFTA_TABLE_NAME,
        NFTA_TABLE_FLAGS,
        NFTA_TABLE_USE,
        NFTA_TABLE_HANDLE,
        NFTA_TABLE_PAD,
    ];
    only(t, &known)
        && u32_attr(t, NFTA_TABLE_FLAGS).unwrap_or(0) == 0
        && u32_attr(t, NFTA_TABLE_USE) == Some(expected_use)
}

fn same_chain(k: &[Attr], chain: &Chain) -> bool {
    let known = [
        NFTA_CHAIN_TABLE,
        NFTA_CHAIN_HANDLE,
        NFTA_CHAIN_NAME,
        NFTA_CHAIN_HOOK,
        NFTA_CHAIN_POLICY,
        NFTA_CHAIN_USE,
        NFTA_CHAIN_TYPE,
        NFTA_CHAIN_PAD,
        NFTA_CHAIN_FLAGS,
    ];
    if !only(k, &known) || string(k, NFTA_CHAIN_NAME).as_deref() != Some(chain.name.as_str()) {
        return false;
    }
    let flags = u32_attr(k, NFTA_CHAIN_FLAGS).unwrap_or(0);
    match chain.base.map(chain_hook) {
        None => flags == 0 && find(k, NFTA_CHAIN_HOOK).is_none(),
        Some(hook) => flags == NFT_CHAIN_BASE && same_hook(k, &hook),
    }
}

fn same_hook(k: &[Attr], hook: &ChainHook<'_>) -> bool {
    let Some(nest) = find(k, NFTA_CHAIN_HOOK) else {
        return false;
    };
    let nested: Vec<Attr> = codec::attrs(nest)
        .map(|a| (a.kind, a.payload.to_vec()))
        .collect();
    only(&nested, &[NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY])
        && u32_attr(&nested, NFTA_HOOK_HOOKNUM) == Some(hook.hooknum)
        && u32_attr(&nested, NFTA_HOOK_PRIORITY) == Some(hook.prio as u32)
        && string(k, NFTA_CHAIN_TYPE).as_deref() == Some(hook.kind)
        && u32_attr(k, NFTA_CHAIN_POLICY) == Some(hook.policy)
}

fn same_set(k: &[Attr], spec: &SetSpec) -> bool {
    let known = [
        NFTA_SET_TABLE,
        NFTA_SET_NAME,
        NFTA_SET_FLAGS,
        NFTA_SET_KEY_TYPE,
        NFTA_SET_KEY_LEN,
        NFTA_SET_DATA_TYPE,
        NFTA_SET_DATA_LEN,
        NFTA_SET_DESC,
        NFTA_SET_USERDATA,
        NFTA_SET_PAD,
        NFTA_SET_HANDLE,
        NFTA_SET_TYPE,
        NFTA_SET_COUNT,
    ];
    let data = match (
        u32_attr(k, NFTA_SET_DATA_TYPE),
        u32_attr(k, NFTA_SET_DATA_LEN),
    ) {
        (Some(ty), Some(len)) => Some((ty, len)),
        _ => None,
    };
    only(k, &known)
        && string(k, NFTA_SET_NAME).as_deref() == Some(spec.name.as_str())
        && u32_attr(k, NFTA_SET_FLAGS).unwrap_or(0) == spec.flags
        && u32_attr(k, NFTA_SET_KEY_TYPE) == Some(spec.key_type)
        && u32_attr(k, NFTA_SET_KEY_LEN) == Some(spec.key_len)
        && data == spec.data
        && find(k, NFTA_SET_USERDATA).unwrap_or(&[]) == spec.userdata.as_slice()
        // No size and no field lengths: an empty description.
        && find(k, NFTA_SET_DESC).is_none_or(|d| codec::attrs(d).next().is_none())
}

/// `table inet NAME`'s attributes, `None` if there is none.
fn get_table(name: &str) -> Result<Option<Vec<Attr>>, NftError> {
    let seq = next_seq(1);
    let request = codec::request(
        nft_type(NFT_MSG_GETTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        &[(NFTA_TABLE_NAME, name)],
    );
    let mut table = None;
    let answered = with_conn(|conn| conn.dump(&request, seq, |msg| table = Some(attrs_of(msg))))?;
    match answered {
        Ok(()) => Ok(table),
        Err(codec::ENOENT) => Ok(None),
        Err(errno) => Err(kernel_error(format!("table inet {name}"), errno)),
    }
}

/// Every inet object a GET dump of `msg_type` answers (filtered by `attrs`
/// where the kernel supports it), each as its attributes.
fn dump(msg_type: u8, attrs: &[(u16, &str)]) -> Result<Vec<Vec<Attr>>, NftError> {
    let seq = next_seq(1);
    let flags = NLM_F_REQUEST | NLM_F_DUMP;
    let request = codec::request(nft_type(msg_type), flags, seq, NFPROTO_INET, attrs);
    let mut objects = Vec::new();
    let answered = with_conn(|conn| conn.dump(&request, seq, |msg| objects.push(attrs_of(msg))))?;
    match answered {
        Ok(()) => Ok(objects),
        Err(errno) => Err(kernel_error(format!("nftables dump {msg_type}"), errno)),
    }
}

fn nft_type(msg_type: u8) -> u16 {
    u16::from(NFNL_SUBSYS_NFTABLES) << 8 | u16::from(msg_type)
}

fn kernel_error(object: String, errno: i32) -> NftError {
    NftError::Kernel {
        object,
        errno,
        message: None,
        later_errors: 0,
    }
}
