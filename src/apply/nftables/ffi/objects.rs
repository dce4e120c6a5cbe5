//! The libnftnl objects of one message each: `table`, `chain`, `set`,
//! `rule`.
//!
//! Every setter copies what it is given (strings, byte slices), so the
//! Rust values only need to live across the call; every object is freed
//! when its [`Owned`] drops, after the payload is serialized.

use std::ffi::c_void;

use nftnl_sys as sys;

use super::expr::expr;
use super::{
    ChainHook, EncodeError, FAMILY_INET, Header, Owned, cstr, free_chain, free_rule, free_set,
    free_table,
};
use crate::apply::nftables::encode::{Expr, SetSpec};

/// `table inet NAME` (with `flags`, when adding it).
pub(super) fn table(nlh: &Header, name: &str, flags: Option<u32>) -> Result<(), EncodeError> {
    let name = cstr(name)?;
    // SAFETY: alloc has no preconditions; null is handled by Owned::new.
    let t = Owned::new(unsafe { sys::nftnl_table_alloc() }, free_table)?;
    let p = t.as_ptr();
    // SAFETY: `p` is a live table; the C string outlives the calls and is
    // copied; `nlh` has room for the payload (see `Header`).
    unsafe {
        sys::nftnl_table_set_str(p, sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
        sys::nftnl_table_set_u32(p, sys::NFTNL_TABLE_FAMILY as u16, u32::from(FAMILY_INET));
        if let Some(f) = flags {
            sys::nftnl_table_set_u32(p, sys::NFTNL_TABLE_FLAGS as u16, f);
        }
        sys::nftnl_table_nlmsg_build_payload(nlh.0, p);
    }
    Ok(())
}

/// `chain NAME`, and for a base chain `type KIND hook HOOK priority PRIO;
/// policy POLICY;`.
pub(super) fn chain(
    nlh: &Header,
    table: &str,
    name: &str,
    hook: Option<&ChainHook<'_>>,
) -> Result<(), EncodeError> {
    let table = cstr(table)?;
    let name = cstr(name)?;
    let kind = hook.map(|h| cstr(h.kind)).transpose()?;
    // SAFETY: as for the table.
    let c = Owned::new(unsafe { sys::nftnl_chain_alloc() }, free_chain)?;
    let p = c.as_ptr();
    // SAFETY: `p` is a live chain; C strings outlive the calls and are
    // copied; `nlh` has room for the payload (see `Header`).
    unsafe {
        sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_TABLE as u16, table.as_ptr());
        sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_NAME as u16, name.as_ptr());
        sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_FAMILY as u16, u32::from(FAMILY_INET));
        if let (Some(h), Some(kind)) = (hook, &kind) {
            sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_HOOKNUM as u16, h.hooknum);
            sys::nftnl_chain_set_s32(p, sys::NFTNL_CHAIN_PRIO as u16, h.prio);
            sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_TYPE as u16, kind.as_ptr());
            sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_POLICY as u16, h.policy);
        }
        sys::nftnl_chain_nlmsg_build_payload(nlh.0, p);
    }
    Ok(())
}

/// `set NAME { type KEY [: DATA]; }` with nft's userdata.
pub(super) fn set(nlh: &Header, table: &str, spec: &SetSpec) -> Result<(), EncodeError> {
    let table = cstr(table)?;
    let name = cstr(&spec.name)?;
    // SAFETY: as for the table.
    let s = Owned::new(unsafe { sys::nftnl_set_alloc() }, free_set)?;
    let p = s.as_ptr();
    // SAFETY: `p` is a live set; strings and the userdata slice outlive the
    // calls and are copied; `nlh` has room for the payload (see `Header`).
    unsafe {
        sys::nftnl_set_set_str(p, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
        sys::nftnl_set_set_str(p, sys::NFTNL_SET_NAME as u16, name.as_ptr());
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FAMILY as u16, u32::from(FAMILY_INET));
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FLAGS as u16, spec.flags);
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_TYPE as u16, spec.key_type);
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_LEN as u16, spec.key_len);
        if let Some((ty, len)) = spec.data {
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_TYPE as u16, ty);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_LEN as u16, len);
        }
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, spec.id);
        if !spec.userdata.is_empty() {
            sys::nftnl_set_set_data(
                p,
                sys::NFTNL_SET_USERDATA as u16,
                spec.userdata.as_ptr().cast::<c_void>(),
                spec.userdata.len() as u32,
            );
        }
        sys::nftnl_set_nlmsg_build_payload(nlh.0, p);
    }
    Ok(())
}

/// `rule inet TABLE CHAIN EXPRS…`, appended.
pub(super) fn rule(
    nlh: &Header,
    table: &str,
    chain: &str,
    exprs: &[Expr],
) -> Result<(), EncodeError> {
    let table = cstr(table)?;
    let chain = cstr(chain)?;
    // SAFETY: as for the table.
    let r = Owned::new(unsafe { sys::nftnl_rule_alloc() }, free_rule)?;
    let p = r.as_ptr();
    // SAFETY: `p` is live; strings are copied.
    unsafe {
        sys::nftnl_rule_set_str(p, sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
        sys::nftnl_rule_set_str(p, sys::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
        sys::nftnl_rule_set_u32(p, sys::NFTNL_RULE_FAMILY as u16, u32::from(FAMILY_INET));
    }
    for e in exprs {
        let e = expr(e)?;
        // SAFETY: both are live; the rule takes ownership of the expression
        // (freed with the rule), hence `give`.
        unsafe { sys::nftnl_rule_add_expr(p, e.give()) };
    }
    // SAFETY: `p` is live; `nlh` has room for the payload (see `Header`).
    unsafe { sys::nftnl_rule_nlmsg_build_payload(nlh.0, p) };
    Ok(())
}
