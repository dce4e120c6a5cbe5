//! Whole-table operations: the atomic replace and the delete.

use std::collections::HashMap;

use super::batch::{Batch, ElemTarget, push_elements};
use super::encode::{element_values, rule_exprs, set_spec};
use super::ffi::{ChainHook, Msg};
use super::{
    NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM,
    NFT_MSG_NEWTABLE, NftError, What,
};
use crate::apply::nfnetlink::codec::{ENOENT, NLM_F_APPEND, NLM_F_CREATE};
use crate::nft::{BaseChain, Chain, ChainKind, Hook, Set, Table};

/// Replaces `table inet <table.name>` atomically with `table`, in one batch.
/// Idempotent; works whether or not the table exists.
pub fn replace_table(table: &Table) -> Result<(), NftError> {
    replace_batch(table)?.commit(&|set, i| {
        table
            .set(set)
            .and_then(|s| s.elements.get(i))
            .map(|e| e.to_string())
    })
}

/// Encodes the batch [`replace_table`] would send, without sending it;
/// returns its size in bytes (what `cargo xtask bench` times, no kernel).
pub fn encode_replace_table(table: &Table) -> Result<usize, NftError> {
    Ok(replace_batch(table)?.len())
}

fn replace_batch(table: &Table) -> Result<Batch, NftError> {
    let rules: usize = table.chains.iter().map(|c| c.rules.len()).sum();
    let mut b = Batch::new(3 + table.chains.len() + 2 * table.sets.len() + rules);
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
    for chain in &table.chains {
        push_rules(&mut b, &table.name, chain, &ids)?;
    }
    Ok(b)
}

/// Deletes `table inet <name>`: `Ok(true)` if it existed, `Ok(false)` if
/// there was none.
pub fn delete_table(name: &str) -> Result<bool, NftError> {
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

fn chain_hook(base: BaseChain) -> ChainHook<'static> {
    ChainHook {
        kind: match base.kind {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        },
        hooknum: match base.hook {
            Hook::Prerouting => 0,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        },
        prio: base.priority.value(),
        policy: 1, // NF_ACCEPT
    }
}

/// `set NAME { type …; elements = { … } }` (or a map), with batch-local `id`.
fn push_set(b: &mut Batch, table: &str, set: &Set, id: u32) -> Result<(), NftError> {
    let kind = if set.is_map() { "map" } else { "set" };
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
    )?;
    if set.elements.is_empty() {
        return Ok(());
    }
    let elems = set.elements.iter().map(|e| {
        element_values(&set.key, &set.data, e).map_err(|err| NftError::Encode {
            object: format!("element {e} of {kind} {}", set.name),
            reason: err.to_string(),
        })
    });
    let target = ElemTarget {
        table,
        set: &set.name,
        set_id: Some(id),
    };
    push_elements(b, (NFT_MSG_NEWSETELEM, NLM_F_CREATE), &target, elems, 0)
}

/// The rules of one chain, appended in order; `ids` are the batch-local ids
/// of the sets created in the same batch.
fn push_rules(
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
