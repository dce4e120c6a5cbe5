//! The only place that calls libnftnl: turns a [`Msg`] (plain Rust values)
//! into one netlink message appended to a batch buffer. The objects
//! (table, chain, set, rule) are filled in `objects.rs`, the expressions of
//! a rule in `expr.rs`. Set elements, the bulk of a large table, do not go
//! through libnftnl (one heap object per element): `batch.rs` writes them
//! as netlink attributes directly.
//!
//! Every libnftnl object is allocated, filled, serialized and freed inside a
//! single call of [`build`], so no raw pointer outlives the data it was
//! given. libnftnl serializes without bounds checks (libmnl's
//! `mnl_attr_put`), so [`build`] first computes an upper bound of the
//! message size and refuses anything that would not fit the scratch buffer.

use std::ffi::{CString, c_char};
use std::ptr::NonNull;

use nftnl_sys as sys;

mod expr;
mod objects;

use super::EncodeError;
use super::encode::{DATA_MAX, Expr, SetSpec};

/// NFPROTO_INET.
pub(crate) const FAMILY_INET: u16 = 1;

/// Largest message [`build`] produces: attribute nests carry a u16 length.
pub(crate) const MSG_MAX: usize = 60 * 1024;
const SCRATCH: usize = 96 * 1024;

/// A chain's hook (base chains only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainHook<'a> {
    pub kind: &'a str,
    pub hooknum: u32,
    pub prio: i32,
    pub policy: u32,
}

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
unsafe extern "C" fn free_rule(p: *mut sys::nftnl_rule) {
    // SAFETY: forwarded from `Owned::drop`, see there.
    unsafe { sys::nftnl_rule_free(p) }
}
unsafe extern "C" fn free_expr(p: *mut sys::nftnl_expr) {
    // SAFETY: forwarded from `Owned::drop`, see there.
    unsafe { sys::nftnl_expr_free(p) }
}

/// A message header at the start of the scratch buffer, with room behind
/// it for the message's [`Msg::size_bound`]: what every
/// `nftnl_*_nlmsg_build_payload` call relies on, since libnftnl writes
/// attributes without bounds checks. Only [`build`] makes one, after
/// checking the bound.
struct Header(*mut libc::nlmsghdr);

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
    let buf = scratch.0.0.as_mut_ptr().cast::<c_char>();
    // SAFETY: `buf` points to SCRATCH (> MSG_MAX) writable, 8-aligned bytes;
    // the header (nlmsghdr + nfgenmsg) is 20 bytes.
    let nlh = Header(unsafe { sys::nftnl_nlmsg_build_hdr(buf, msg_type, FAMILY_INET, flags, seq) });
    match msg {
        Msg::Table { name, flags } => objects::table(&nlh, name, *flags)?,
        Msg::Chain { table, name, hook } => objects::chain(&nlh, table, name, hook.as_ref())?,
        Msg::Set { table, spec } => objects::set(&nlh, table, spec)?,
        Msg::Rule {
            table,
            chain,
            exprs,
        } => objects::rule(&nlh, table, chain, exprs)?,
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
