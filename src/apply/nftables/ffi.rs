//! The only place that calls libnftnl: turns a [`Msg`] (plain Rust values)
//! into one netlink message appended to a batch buffer.
//!
//! Every libnftnl object is allocated, filled, serialized and freed inside a
//! single call of [`build`], so no raw pointer outlives the data it was
//! given. libnftnl serializes without bounds checks (libmnl's
//! `mnl_attr_put`), so [`build`] first computes an upper bound of the
//! message size and refuses anything that would not fit the scratch buffer.

use std::ffi::{CString, c_char, c_void};
use std::ptr::NonNull;

use nftnl_sys as sys;

use super::EncodeError;
use super::encode::{DATA_MAX, Expr, SetSpec};

/// NFPROTO_INET.
pub(crate) const FAMILY_INET: u16 = 1;

/// Largest message [`build`] produces: attribute nests carry a u16 length.
pub(crate) const MSG_MAX: usize = 60 * 1024;
const SCRATCH: usize = 96 * 1024;

/// Per-element size bound beyond key and data bytes (nests, headers, padding).
pub(crate) const ELEM_OVERHEAD: usize = 48;

/// A chain's hook (base chains only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainHook<'a> {
    pub kind: &'a str,
    pub hooknum: u32,
    pub prio: i32,
    pub policy: u32,
}

/// An element's key and, for maps, data (already in kernel byte layout).
pub(crate) type ElemBytes = (Vec<u8>, Option<Vec<u8>>);

/// The payload of one netlink message.
#[derive(Debug)]
pub(crate) enum Msg<'a> {
    Table {
        name: &'a str,
        flags: Option<u32>,
    },
    Chain {
        table: &'a str,
        name: &'a str,
        hook: Option<ChainHook<'a>>,
    },
    Set {
        table: &'a str,
        spec: &'a SetSpec,
    },
    Elems {
        table: &'a str,
        set: &'a str,
        set_id: Option<u32>,
        elems: &'a [ElemBytes],
    },
    Rule {
        table: &'a str,
        chain: &'a str,
        exprs: &'a [Expr],
    },
}

fn str_bound(s: &str) -> usize {
    8 + s.len().next_multiple_of(4)
}

impl Msg<'_> {
    /// An upper bound of the serialized size (header included).
    fn size_bound(&self) -> usize {
        const HDR: usize = 20 + 64;
        match self {
            Msg::Table { name, .. } => HDR + str_bound(name) + 16,
            Msg::Chain { table, name, hook } => {
                HDR + str_bound(table)
                    + str_bound(name)
                    + hook.map_or(0, |h| str_bound(h.kind) + 48)
            }
            Msg::Set { table, spec } => {
                HDR + str_bound(table) + str_bound(&spec.name) + 12 * 8 + 8 + spec.userdata.len()
            }
            Msg::Elems {
                table, set, elems, ..
            } => {
                HDR + str_bound(table)
                    + str_bound(set)
                    + 16
                    + elems
                        .iter()
                        .map(|(k, d)| ELEM_OVERHEAD + k.len() + d.as_ref().map_or(0, Vec::len))
                        .sum::<usize>()
            }
            Msg::Rule {
                table,
                chain,
                exprs,
            } => {
                HDR + str_bound(table)
                    + str_bound(chain)
                    + 8
                    + exprs.iter().map(|e| 256 + e.data_len()).sum::<usize>()
            }
        }
    }
}

/// Reusable, suitably aligned buffer one message is serialized into.
#[repr(C, align(8))]
struct Aligned([u8; SCRATCH]);

pub(crate) struct Scratch(Box<Aligned>);

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch(Box::new(Aligned([0; SCRATCH])))
    }
}

fn cstr(s: &str) -> Result<CString, EncodeError> {
    CString::new(s).map_err(|_| EncodeError::new(format!("name {s:?} contains a NUL byte")))
}

fn check_data(d: &[u8]) -> Result<(), EncodeError> {
    if d.is_empty() || d.len() > DATA_MAX {
        return Err(EncodeError::new(format!(
            "value of {} bytes (1..={DATA_MAX} allowed)",
            d.len()
        )));
    }
    Ok(())
}

/// Owner of one libnftnl object; frees it on drop unless ownership was
/// handed to another object with [`Owned::give`].
struct Owned<T> {
    ptr: NonNull<T>,
    free: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    fn new(ptr: *mut T, free: unsafe extern "C" fn(*mut T)) -> Result<Self, EncodeError> {
        NonNull::new(ptr)
            .map(|ptr| Owned { ptr, free })
            .ok_or_else(|| EncodeError::new("libnftnl: out of memory".to_string()))
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Releases ownership (the receiver frees the object).
    fn give(self) -> *mut T {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from the matching nftnl_*_alloc, has not been
        // handed to another object (`give` forgets `self`), and is freed once.
        unsafe { (self.free)(self.ptr.as_ptr()) }
    }
}

// libnftnl's free functions take `*const T` for some objects; adapt them to
// one signature.
unsafe extern "C" fn free_table(p: *mut sys::nftnl_table) {
    // SAFETY: forwarded from `Owned::drop`, see there.
    unsafe { sys::nftnl_table_free(p) }
}
unsafe extern "C" fn free_chain(p: *mut sys::nftnl_chain) {
    // SAFETY: forwarded from `Owned::drop`, see there.
    unsafe { sys::nftnl_chain_free(p) }
}
unsafe extern "C" fn free_set(p: *mut sys::nftnl_set) {
    // SAFETY: forwarded from `Owned::drop`, see there.
    unsafe { sys::nftnl_set_free(p) }
}
unsafe extern "C" fn free_elem(p: *mut sys::nftnl_set_elem) {
    // SAFETY: forwarded from `Owned::drop`, see there.
    unsafe { sys::nftnl_set_elem_free(p) }
}
unsafe extern "C" fn free_rule(p: *mut sys::nftnl_rule) {
    // SAFETY: forwarded from `Owned::drop`, see there.
    unsafe { sys::nftnl_rule_free(p) }
}
unsafe extern "C" fn free_expr(p: *mut sys::nftnl_expr) {
    // SAFETY: forwarded from `Owned::drop`, see there.
    unsafe { sys::nftnl_expr_free(p) }
}

/// Serializes `msg` as one netlink message (`NLM_F_REQUEST | flags`,
/// nftables subsystem, family inet) and appends it to `out`.
pub(crate) fn build(
    scratch: &mut Scratch,
    msg_type: u16,
    flags: u16,
    seq: u32,
    msg: &Msg<'_>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let bound = msg.size_bound();
    if bound > MSG_MAX {
        return Err(EncodeError::new(format!(
            "netlink message too large ({bound} bytes)"
        )));
    }
    // Everything the C side reads is kept alive in these locals until the
    // payload is serialized at the end of this function.
    let buf = scratch.0.0.as_mut_ptr().cast::<c_char>();
    // SAFETY: `buf` points to SCRATCH writable, 8-aligned bytes; the header
    // (nlmsghdr + nfgenmsg) is 20 bytes.
    let nlh = unsafe { sys::nftnl_nlmsg_build_hdr(buf, msg_type, FAMILY_INET, flags, seq) };

    match msg {
        Msg::Table { name, flags } => {
            let name = cstr(name)?;
            // SAFETY: alloc has no preconditions; null is handled by Owned::new.
            let t = Owned::new(unsafe { sys::nftnl_table_alloc() }, free_table)?;
            // SAFETY: `t` is a live table; the C string outlives the call
            // (libnftnl copies it).
            unsafe {
                sys::nftnl_table_set_str(t.as_ptr(), sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
                sys::nftnl_table_set_u32(
                    t.as_ptr(),
                    sys::NFTNL_TABLE_FAMILY as u16,
                    u32::from(FAMILY_INET),
                );
                if let Some(f) = flags {
                    sys::nftnl_table_set_u32(t.as_ptr(), sys::NFTNL_TABLE_FLAGS as u16, *f);
                }
                // The size bound checked above keeps the write inside `buf`.
                sys::nftnl_table_nlmsg_build_payload(nlh, t.as_ptr());
            }
        }
        Msg::Chain { table, name, hook } => {
            let table = cstr(table)?;
            let name = cstr(name)?;
            let kind = hook.map(|h| cstr(h.kind)).transpose()?;
            // SAFETY: as for the table.
            let c = Owned::new(unsafe { sys::nftnl_chain_alloc() }, free_chain)?;
            // SAFETY: `c` is a live chain; C strings outlive the calls and
            // are copied; the size bound keeps the write inside `buf`.
            unsafe {
                sys::nftnl_chain_set_str(c.as_ptr(), sys::NFTNL_CHAIN_TABLE as u16, table.as_ptr());
                sys::nftnl_chain_set_str(c.as_ptr(), sys::NFTNL_CHAIN_NAME as u16, name.as_ptr());
                sys::nftnl_chain_set_u32(
                    c.as_ptr(),
                    sys::NFTNL_CHAIN_FAMILY as u16,
                    u32::from(FAMILY_INET),
                );
                if let (Some(h), Some(kind)) = (hook, &kind) {
                    sys::nftnl_chain_set_u32(
                        c.as_ptr(),
                        sys::NFTNL_CHAIN_HOOKNUM as u16,
                        h.hooknum,
                    );
                    sys::nftnl_chain_set_s32(c.as_ptr(), sys::NFTNL_CHAIN_PRIO as u16, h.prio);
                    sys::nftnl_chain_set_str(
                        c.as_ptr(),
                        sys::NFTNL_CHAIN_TYPE as u16,
                        kind.as_ptr(),
                    );
                    sys::nftnl_chain_set_u32(c.as_ptr(), sys::NFTNL_CHAIN_POLICY as u16, h.policy);
                }
                sys::nftnl_chain_nlmsg_build_payload(nlh, c.as_ptr());
            }
        }
        Msg::Set { table, spec } => {
            let table = cstr(table)?;
            let name = cstr(&spec.name)?;
            // SAFETY: as for the table.
            let s = Owned::new(unsafe { sys::nftnl_set_alloc() }, free_set)?;
            // SAFETY: `s` is a live set; strings and the userdata slice
            // outlive the calls (libnftnl copies them); the size bound keeps
            // the write inside `buf`.
            unsafe {
                let p = s.as_ptr();
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
                sys::nftnl_set_nlmsg_build_payload(nlh, p);
            }
        }
        Msg::Elems {
            table,
            set,
            set_id,
            elems,
        } => {
            let table = cstr(table)?;
            let name = cstr(set)?;
            for (k, d) in elems.iter() {
                check_data(k)?;
                if let Some(d) = d {
                    check_data(d)?;
                }
            }
            // SAFETY: as for the table.
            let s = Owned::new(unsafe { sys::nftnl_set_alloc() }, free_set)?;
            // SAFETY: `s` is a live set; strings outlive the calls.
            unsafe {
                let p = s.as_ptr();
                sys::nftnl_set_set_str(p, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
                sys::nftnl_set_set_str(p, sys::NFTNL_SET_NAME as u16, name.as_ptr());
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FAMILY as u16, u32::from(FAMILY_INET));
                if let Some(id) = set_id {
                    sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, *id);
                }
            }
            for (key, data) in elems.iter() {
                // SAFETY: as for the table.
                let e = Owned::new(unsafe { sys::nftnl_set_elem_alloc() }, free_elem)?;
                // SAFETY: `e` is live; key/data are 1..=64 bytes (checked
                // above), which fits libnftnl's fixed 64-byte value buffers,
                // and are copied. `nftnl_set_elem_add` takes ownership of the
                // element (freed with the set), hence `give`.
                unsafe {
                    sys::nftnl_set_elem_set(
                        e.as_ptr(),
                        sys::NFTNL_SET_ELEM_KEY as u16,
                        key.as_ptr().cast::<c_void>(),
                        key.len() as u32,
                    );
                    if let Some(d) = data {
                        sys::nftnl_set_elem_set(
                            e.as_ptr(),
                            sys::NFTNL_SET_ELEM_DATA as u16,
                            d.as_ptr().cast::<c_void>(),
                            d.len() as u32,
                        );
                    }
                    sys::nftnl_set_elem_add(s.as_ptr(), e.give());
                }
            }
            // SAFETY: `s` is live with its elements; the size bound keeps the
            // write inside `buf`.
            unsafe { sys::nftnl_set_elems_nlmsg_build_payload(nlh, s.as_ptr()) };
        }
        Msg::Rule {
            table,
            chain,
            exprs,
        } => {
            let table = cstr(table)?;
            let chain = cstr(chain)?;
            // SAFETY: as for the table.
            let r = Owned::new(unsafe { sys::nftnl_rule_alloc() }, free_rule)?;
            // SAFETY: `r` is live; strings are copied.
            unsafe {
                sys::nftnl_rule_set_str(r.as_ptr(), sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
                sys::nftnl_rule_set_str(r.as_ptr(), sys::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
                sys::nftnl_rule_set_u32(
                    r.as_ptr(),
                    sys::NFTNL_RULE_FAMILY as u16,
                    u32::from(FAMILY_INET),
                );
            }
            for e in exprs.iter() {
                let e = expr(e)?;
                // SAFETY: both are live; the rule takes ownership of the
                // expression (freed with the rule), hence `give`.
                unsafe { sys::nftnl_rule_add_expr(r.as_ptr(), e.give()) };
            }
            // SAFETY: `r` is live; the size bound keeps the write in `buf`.
            unsafe { sys::nftnl_rule_nlmsg_build_payload(nlh, r.as_ptr()) };
        }
    }

    let bytes = &scratch.0.0;
    let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if !(20..=MSG_MAX).contains(&len) {
        // Cannot happen given the bound; refuse rather than send garbage.
        return Err(EncodeError::new(format!(
            "netlink message of {len} bytes exceeds its bound"
        )));
    }
    out.extend_from_slice(&bytes[..len]);
    Ok(())
}

/// Builds one libnftnl expression.
fn expr(e: &Expr) -> Result<Owned<sys::nftnl_expr>, EncodeError> {
    let name: &[u8] = match e {
        Expr::Meta { .. } | Expr::MetaSet { .. } => b"meta\0",
        Expr::Ct { .. } => b"ct\0",
        Expr::Payload { .. } => b"payload\0",
        Expr::Cmp { .. } => b"cmp\0",
        Expr::Bitwise { .. } => b"bitwise\0",
        Expr::Lookup { .. } => b"lookup\0",
        Expr::Fib { .. } => b"fib\0",
        Expr::Nat { .. } => b"nat\0",
        Expr::Masq => b"masq\0",
        Expr::Immediate { .. } | Expr::Verdict { .. } => b"immediate\0",
    };
    // SAFETY: `name` is a NUL-terminated static string; null is handled.
    let x = Owned::new(
        unsafe { sys::nftnl_expr_alloc(name.as_ptr().cast()) },
        free_expr,
    )?;
    let p = x.as_ptr();
    let u32_ = |attr: u32, v: u32| {
        // SAFETY: `p` is a live expression of the kind the attribute
        // belongs to (matched below).
        unsafe { sys::nftnl_expr_set_u32(p, attr as u16, v) }
    };
    let data = |attr: u32, d: &[u8]| -> Result<(), EncodeError> {
        check_data(d)?;
        // SAFETY: `p` is live; `d` is 1..=64 bytes, within libnftnl's
        // 64-byte value buffers, and is copied.
        unsafe { sys::nftnl_expr_set(p, attr as u16, d.as_ptr().cast::<c_void>(), d.len() as u32) };
        Ok(())
    };
    let string = |attr: u32, s: &str| -> Result<(), EncodeError> {
        let c = cstr(s)?;
        // SAFETY: `p` is live; the string is copied.
        unsafe { sys::nftnl_expr_set_str(p, attr as u16, c.as_ptr()) };
        Ok(())
    };
    match e {
        Expr::Meta { key, dreg } => {
            u32_(sys::NFTNL_EXPR_META_KEY, *key);
            u32_(sys::NFTNL_EXPR_META_DREG, *dreg);
        }
        Expr::MetaSet { key, sreg } => {
            u32_(sys::NFTNL_EXPR_META_KEY, *key);
            u32_(sys::NFTNL_EXPR_META_SREG, *sreg);
        }
        Expr::Ct { key, dreg } => {
            u32_(sys::NFTNL_EXPR_CT_KEY, *key);
            u32_(sys::NFTNL_EXPR_CT_DREG, *dreg);
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            u32_(sys::NFTNL_EXPR_PAYLOAD_DREG, *dreg);
            u32_(sys::NFTNL_EXPR_PAYLOAD_BASE, *base);
            u32_(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
            u32_(sys::NFTNL_EXPR_PAYLOAD_LEN, *len);
        }
        Expr::Cmp { sreg, op, data: d } => {
            u32_(sys::NFTNL_EXPR_CMP_SREG, *sreg);
            u32_(sys::NFTNL_EXPR_CMP_OP, *op);
            data(sys::NFTNL_EXPR_CMP_DATA, d)?;
        }
        Expr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => {
            if mask.len() != xor.len() {
                return Err(EncodeError::new(
                    "bitwise mask and xor differ in length".to_string(),
                ));
            }
            u32_(sys::NFTNL_EXPR_BITWISE_SREG, *sreg);
            u32_(sys::NFTNL_EXPR_BITWISE_DREG, *dreg);
            u32_(sys::NFTNL_EXPR_BITWISE_OP, 0); // NFT_BITWISE_BOOL
            u32_(sys::NFTNL_EXPR_BITWISE_LEN, mask.len() as u32);
            data(sys::NFTNL_EXPR_BITWISE_MASK, mask)?;
            data(sys::NFTNL_EXPR_BITWISE_XOR, xor)?;
        }
        Expr::Lookup {
            sreg,
            dreg,
            set,
            set_id,
        } => {
            u32_(sys::NFTNL_EXPR_LOOKUP_SREG, *sreg);
            if let Some(d) = dreg {
                u32_(sys::NFTNL_EXPR_LOOKUP_DREG, *d);
            }
            string(sys::NFTNL_EXPR_LOOKUP_SET, set)?;
            if let Some(id) = set_id {
                u32_(sys::NFTNL_EXPR_LOOKUP_SET_ID, *id);
            }
        }
        Expr::Fib {
            flags,
            result,
            dreg,
        } => {
            u32_(sys::NFTNL_EXPR_FIB_FLAGS, *flags);
            u32_(sys::NFTNL_EXPR_FIB_RESULT, *result);
            u32_(sys::NFTNL_EXPR_FIB_DREG, *dreg);
        }
        Expr::Nat {
            kind,
            family,
            reg_addr_min,
            reg_proto_min,
        } => {
            u32_(sys::NFTNL_EXPR_NAT_TYPE, *kind);
            u32_(sys::NFTNL_EXPR_NAT_FAMILY, *family);
            u32_(sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, *reg_addr_min);
            if let Some(r) = reg_proto_min {
                u32_(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, *r);
            }
        }
        Expr::Masq => {}
        Expr::Immediate { dreg, data: d } => {
            u32_(sys::NFTNL_EXPR_IMM_DREG, *dreg);
            data(sys::NFTNL_EXPR_IMM_DATA, d)?;
        }
        Expr::Verdict { code, chain } => {
            u32_(sys::NFTNL_EXPR_IMM_DREG, super::encode::k::REG_VERDICT);
            u32_(sys::NFTNL_EXPR_IMM_VERDICT, *code as u32);
            if let Some(c) = chain {
                string(sys::NFTNL_EXPR_IMM_CHAIN, c)?;
            }
        }
    }
    Ok(x)
}
