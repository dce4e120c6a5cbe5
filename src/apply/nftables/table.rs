//! Whole-table operations: the atomic replace and the delete.

use std::collections::HashMap;
use std::time::Instant;

use tracing::debug;

use super::batch::{Batch, ElemTarget, ElemValues, IndexedElem, push_elements};
use super::elements::change_element;
use super::encode::{element_values, rule_exprs, set_spec};
use super::ffi::{ChainHook, Msg};
use super::in_place::Known;
use super::query::generation;
use super::{
    NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM,
    NFT_MSG_NEWTABLE, NftError, What,
};
use super::{committed, in_place};
use crate::apply::nfnetlink::codec::{ENOENT, ERESTART, NLM_F_APPEND, NLM_F_CREATE};
use crate::nft::{BaseChain, Chain, ChainKind, Element, ElementChange, Hook, Set, Table};

/// How [`replace_table_how`] replaced the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The kernel's table still held what dock6 last committed, and the
    /// element changes since were given: only they were sent (and the
    /// rules, if they differ), in one batch (the fastest way).
    Differences,
    /// The kernel's table had the planned chains and sets: their rules and
    /// elements were flushed and refilled, in one batch.
    InPlace,
    /// The table was deleted and created anew, in one batch.
    Fresh,
}

/// Replaces `table inet <table.name>` atomically with `table`, in one batch.
/// Idempotent; works whether or not the table exists.
pub fn replace_table(table: &Table) -> Result<(), NftError> {
    replace_table_how(table, None).map(|_| ())
}

/// [`replace_table`], saying which way it went: in place when the kernel's
/// table already has the planned shape (see `in_place.rs`), else fresh.
/// Either is one atomic batch, and the table reads back the same.
///
/// `since`: the element changes that lead from what dock6 last committed
/// to this table (from this thread, in its network namespace) to `table`,
/// when the caller knows them (the agent's planner does). While nobody has
/// committed anything since, only they are sent, adds refused for elements
/// already there and deletes for elements absent (the batch then fails
/// whole, and the table is made anew). Without them, every set is flushed
/// and filled (the rules are still rewritten only if they differ); when
/// someone committed since, the rules too.
pub fn replace_table_how(
    table: &Table,
    since: Option<&[ElementChange]>,
) -> Result<Replaced, NftError> {
    let element = |set: &str, i: usize| {
        table
            .set(set)
            .and_then(|s| s.elements.get(i))
            .map(|e| e.to_string())
    };
    let known = committed::take(&table.name);
    let started = Instant::now();
    match in_place::generation_if_same_shape(table) {
        Ok(Some(at)) => {
            let known = known.filter(|k| k.generation == at).map(|k| Known {
                rules: k.rules,
                changes: since,
            });
            let by_difference = known.as_ref().is_some_and(|k| k.changes.is_some());
            let (batch, rules) = in_place::refill_batch(table, at, known)?;
            let encoded = started.elapsed();
            let changed = |_: &str, i: usize| {
                since
                    .and_then(|c| c.get(i))
                    .map(|c| change_element(c).to_string())
            };
            // Nothing to change: nothing is sent (an empty commit would
            // not move the generation either).
            let result = match (batch.is_empty(), by_difference) {
                (true, _) => Ok(at),
                (false, true) => batch.commit(&changed).map(|()| committed::after(at)),
                (false, false) => batch.commit(&element).map(|()| committed::after(at)),
            };
            match result {
                Ok(now) => {
                    committed::store(&table.name, now, rules);
                    debug!(
                        by_difference,
                        "table inet {} replaced in place: read and encoded {encoded:?}, committed {:?}",
                        table.name,
                        started.elapsed() - encoded
                    );
                    return Ok(match by_difference {
                        true => Replaced::Differences,
                        false => Replaced::InPlace,
                    });
                }
                // ERESTART when anyone committed since the shape was read;
                // EEXIST or ENOENT when the table was not what `since`
                // starts from.
                Err(e) => debug!("replacing table inet {} in place: {e}; anew", table.name),
            }
        }
        Ok(None) => {}
        Err(e) => debug!("reading table inet {}: {e}; replacing it anew", table.name),
    }
    let started = Instant::now();
    let at = generation().ok();
    let batch = replace_batch(table, at)?;
    let encoded = started.elapsed();
    match (batch.commit(&element), at) {
        (Ok(()), Some(at)) => committed::store(&table.name, committed::after(at), rules_of(table)?),
        (Ok(()), None) => {}
        // Someone committed between the generation read and the batch.
        (Err(e), Some(_)) if e.errno() == Some(ERESTART) => {
            replace_batch(table, None)?.commit(&element)?
        }
        (Err(e), _) => return Err(e),
    }
    debug!(
        "table inet {} replaced anew: encoded {encoded:?}, committed {:?}",
        table.name,
        started.elapsed() - encoded
    );
    Ok(Replaced::Fresh)
}

/// Whether the kernel takes `table`: the batch that would create it anew,
/// checked message by message and then aborted by the kernel (nothing is
/// committed, no notification is sent). Needs only CAP_NET_ADMIN in the
/// calling thread's network namespace; give the table a name of its own so
/// that not even the transaction touches a live table of the same name.
pub fn validate_table(table: &Table) -> Result<(), NftError> {
    let element = |set: &str, i: usize| {
        table
            .set(set)
            .and_then(|s| s.elements.get(i))
            .map(|e| e.to_string())
    };
    replace_batch(table, None)?.validate(&element)
}

/// Encodes the batch [`replace_table`] would send to create the table anew,
/// without sending it; returns its size in bytes (what `cargo xtask bench`
/// times, no kernel).
pub fn encode_replace_table(table: &Table) -> Result<usize, NftError> {
    Ok(replace_batch(table, None)?.len())
}

/// The fresh replace, applied only at ruleset `generation` if one is given.
fn replace_batch(table: &Table, generation: Option<u32>) -> Result<Batch, NftError> {
    let rules: usize = table.chains.iter().map(|c| c.rules.len()).sum();
    let expected = 3 + table.chains.len() + 2 * table.sets.len() + rules;
    let mut b = Batch::at_generation(expected, generation);
    push_fresh_table(&mut b, &table.name)?;
    for chain in &table.chains {
        push_chain(&mut b, &table.name, chain)?;
    }
    let mut ids: HashMap<&str, u32> = HashMap::new();
    for (i, set) in table.sets.iter().enumerate() {
        let id = i as u32 + 1;
        push_set(&mut b, &table.name, set, id)?;
        ids.insert(set.name.as_str(), id);
    }
    // Rules before elements: binding a rule to a map makes the kernel walk
    // the map's elements, which are none yet.
    for chain in &table.chains {
        push_rules(&mut b, &table.name, chain, &ids)?;
    }
    for set in &table.sets {
        let target = ElemTarget {
            table: &table.name,
            set: &set.name,
            set_id: ids.get(set.name.as_str()).copied(),
        };
        push_elements(
            &mut b,
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE),
            &target,
            set_elements(set),
        )?;
    }
    Ok(b)
}

/// Deletes `table inet <name>`: `Ok(true)` if it existed, `Ok(false)` if
/// there was none.
pub fn delete_table(name: &str) -> Result<bool, NftError> {
    committed::forget(name);
    let mut b = Batch::new(1);
    push_delete_table(&mut b, name)?;
    match b.commit(&|_, _| None) {
        Ok(()) => Ok(true),
        Err(NftError::Kernel { errno: ENOENT, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `add table inet NAME; delete table inet NAME; add table inet NAME`: an
/// empty table whether or not one existed (adding first makes the delete
/// valid).
fn push_fresh_table(b: &mut Batch, name: &str) -> Result<(), NftError> {
    push_add_table(b, name)?;
    push_delete_table(b, name)?;
    push_add_table(b, name)
}

fn push_add_table(b: &mut Batch, name: &str) -> Result<(), NftError> {
    let msg = Msg::Table {
        name,
        flags: Some(0),
    };
    let what = What::Text(format!("table inet {name}"));
    b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &msg, what)
}

fn push_delete_table(b: &mut Batch, name: &str) -> Result<(), NftError> {
    let msg = Msg::Table { name, flags: None };
    let what = What::Text(format!("delete table inet {name}"));
    b.push(NFT_MSG_DELTABLE, 0, &msg, what)
}

/// `chain NAME { [type KIND hook HOOK priority PRIO; policy accept;] }`
fn push_chain(b: &mut Batch, table: &str, chain: &Chain) -> Result<(), NftError> {
    let msg = Msg::Chain {
        table,
        name: &chain.name,
        hook: chain.base.map(chain_hook),
    };
    let what = What::Text(format!("chain {}", chain.name));
    b.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, &msg, what)
}

pub(super) fn chain_hook(base: BaseChain) -> ChainHook<'static> {
    ChainHook {
        kind: match base.kind {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        },
        hooknum: match base.hook {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        },
        prio: base.priority.value(),
        policy: 1, // NF_ACCEPT
    }
}

/// `set NAME { type …; }` (or a map), with batch-local `id`; its elements
/// follow in later messages.
fn push_set(b: &mut Batch, table: &str, set: &Set, id: u32) -> Result<(), NftError> {
    let kind = set_kind(set);
    let spec = set_spec(set, id).map_err(|e| NftError::Encode {
        object: format!("{kind} {}", set.name),
        reason: e.to_string(),
    })?;
    let msg = Msg::Set { table, spec: &spec };
    b.push(
        NFT_MSG_NEWSET,
        NLM_F_CREATE,
        &msg,
        What::Text(format!("{kind} {}", set.name)),
    )
}

/// The key and data of each element of `set`, checked against its types,
/// with its index in the set.
pub(super) fn set_elements(set: &Set) -> impl Iterator<Item = Result<IndexedElem, NftError>> {
    set.elements
        .iter()
        .enumerate()
        .map(move |(i, e)| element_of(set, e).map(|values| (Some(i), values)))
}

/// The key and data of `e`, an element of `set`.
pub(super) fn element_of(set: &Set, e: &Element) -> Result<ElemValues, NftError> {
    element_values(&set.key, &set.data, e).map_err(|err| NftError::Encode {
        object: format!("element {e} of {} {}", set_kind(set), set.name),
        reason: err.to_string(),
    })
}

pub(super) fn set_kind(set: &Set) -> &'static str {
    if set.is_map() { "map" } else { "set" }
}

/// Each chain's rules as the expressions the in-place replace sends (sets
/// named, none by id): what `committed.rs` compares.
pub(super) fn rules_of(table: &Table) -> Result<committed::Rules, NftError> {
    let mut rules = Vec::new();
    for chain in &table.chains {
        for (i, rule) in chain.rules.iter().enumerate() {
            let exprs = rule_exprs(rule, &|_| None).map_err(|e| NftError::Encode {
                object: format!("rule {} of chain {}: {rule}", i + 1, chain.name),
                reason: e.to_string(),
            })?;
            rules.push((chain.name.clone(), exprs));
        }
    }
    Ok(rules)
}

/// The rules of one chain, appended in order; `ids` are the batch-local ids
/// of the sets created in the same batch.
pub(super) fn push_rules(
    b: &mut Batch,
    table: &str,
    chain: &Chain,
    ids: &HashMap<&str, u32>,
) -> Result<(), NftError> {
    for (i, rule) in chain.rules.iter().enumerate() {
        let object = format!("rule {} of chain {}: {rule}", i + 1, chain.name);
        let exprs = rule_exprs(rule, &|s| ids.get(s).copied()).map_err(|e| NftError::Encode {
            object: object.clone(),
            reason: e.to_string(),
        })?;
        let msg = Msg::Rule {
            table,
            chain: &chain.name,
            exprs: &exprs,
        };
        b.push(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            &msg,
            What::Text(object),
        )?;
    }
    Ok(())
}
