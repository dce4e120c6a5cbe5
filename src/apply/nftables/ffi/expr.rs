//! One libnftnl expression per [`Expr`], each filled by a helper named for
//! the nft expression it is (`meta`, `payload`, `cmp`, `lookup`, …).

use std::ffi::c_void;

use nftnl_sys as sys;

use super::{EncodeError, Owned, check_data, cstr, free_expr};
use crate::apply::nftables::encode::{Expr, k};

/// Builds one libnftnl expression.
pub(super) fn expr(e: &Expr) -> Result<Owned<sys::nftnl_expr>, EncodeError> {
    let x = NewExpr::alloc(name(e))?;
    match e {
        Expr::Meta { key, dreg } => x
            .u32(sys::NFTNL_EXPR_META_KEY, *key)
            .u32(sys::NFTNL_EXPR_META_DREG, *dreg),
        Expr::MetaSet { key, sreg } => x
            .u32(sys::NFTNL_EXPR_META_KEY, *key)
            .u32(sys::NFTNL_EXPR_META_SREG, *sreg),
        Expr::Ct { key, dreg, dir } => {
            x.u32(sys::NFTNL_EXPR_CT_KEY, *key)
                .u32(sys::NFTNL_EXPR_CT_DREG, *dreg);
            if let Some(dir) = dir {
                x.u8(sys::NFTNL_EXPR_CT_DIR, *dir);
            }
            &x
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => x
            .u32(sys::NFTNL_EXPR_PAYLOAD_DREG, *dreg)
            .u32(sys::NFTNL_EXPR_PAYLOAD_BASE, *base)
            .u32(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset)
            .u32(sys::NFTNL_EXPR_PAYLOAD_LEN, *len),
        Expr::Cmp { sreg, op, data } => x
            .u32(sys::NFTNL_EXPR_CMP_SREG, *sreg)
            .u32(sys::NFTNL_EXPR_CMP_OP, *op)
            .data(sys::NFTNL_EXPR_CMP_DATA, data)?,
        Expr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => bitwise(&x, *sreg, *dreg, mask, xor)?,
        Expr::Lookup {
            sreg,
            dreg,
            set,
            set_id,
            invert,
        } => lookup(&x, *sreg, *dreg, set, *set_id, *invert)?,
        Expr::Fib {
            flags,
            result,
            dreg,
        } => x
            .u32(sys::NFTNL_EXPR_FIB_FLAGS, *flags)
            .u32(sys::NFTNL_EXPR_FIB_RESULT, *result)
            .u32(sys::NFTNL_EXPR_FIB_DREG, *dreg),
        Expr::Nat {
            kind,
            family,
            reg_addr_min,
            reg_addr_max,
            reg_proto_min,
            flags,
        } => nat(
            &x,
            *kind,
            *family,
            (*reg_addr_min, *reg_addr_max),
            *reg_proto_min,
            *flags,
        ),
        Expr::Masq => &x,
        Expr::Reject { kind, code } => x
            .u32(sys::NFTNL_EXPR_REJECT_TYPE, *kind)
            .u8(sys::NFTNL_EXPR_REJECT_CODE, *code),
        Expr::Immediate { dreg, data } => x
            .u32(sys::NFTNL_EXPR_IMM_DREG, *dreg)
            .data(sys::NFTNL_EXPR_IMM_DATA, data)?,
        Expr::Verdict { code, chain } => verdict(&x, *code, chain.as_deref())?,
    };
    Ok(x.0)
}

/// libnftnl's name of the expression kind.
fn name(e: &Expr) -> &'static [u8] {
    match e {
        Expr::Meta { .. } | Expr::MetaSet { .. } => b"meta\0",
        Expr::Ct { .. } => b"ct\0",
        Expr::Payload { .. } => b"payload\0",
        Expr::Cmp { .. } => b"cmp\0",
        Expr::Bitwise { .. } => b"bitwise\0",
        Expr::Lookup { .. } => b"lookup\0",
        Expr::Fib { .. } => b"fib\0",
        Expr::Nat { .. } => b"nat\0",
        Expr::Masq => b"masq\0",
        Expr::Reject { .. } => b"reject\0",
        Expr::Immediate { .. } | Expr::Verdict { .. } => b"immediate\0",
    }
}

/// `bitwise`: `reg = (reg & mask) ^ xor`.
fn bitwise<'x>(
    x: &'x NewExpr,
    sreg: u32,
    dreg: u32,
    mask: &[u8],
    xor: &[u8],
) -> Result<&'x NewExpr, EncodeError> {
    if mask.len() != xor.len() {
        return Err(EncodeError::new(
            "bitwise mask and xor differ in length".to_string(),
        ));
    }
    x.u32(sys::NFTNL_EXPR_BITWISE_SREG, sreg)
        .u32(sys::NFTNL_EXPR_BITWISE_DREG, dreg)
        .u32(sys::NFTNL_EXPR_BITWISE_OP, 0) // NFT_BITWISE_BOOL
        .u32(sys::NFTNL_EXPR_BITWISE_LEN, mask.len() as u32)
        .data(sys::NFTNL_EXPR_BITWISE_MASK, mask)?
        .data(sys::NFTNL_EXPR_BITWISE_XOR, xor)
}

/// `lookup @set` (a map lookup when `dreg` is given).
fn lookup<'x>(
    x: &'x NewExpr,
    sreg: u32,
    dreg: Option<u32>,
    set: &str,
    set_id: Option<u32>,
    invert: bool,
) -> Result<&'x NewExpr, EncodeError> {
    x.u32(sys::NFTNL_EXPR_LOOKUP_SREG, sreg);
    if invert {
        x.u32(sys::NFTNL_EXPR_LOOKUP_FLAGS, k::LOOKUP_F_INV);
    }
    if let Some(d) = dreg {
        x.u32(sys::NFTNL_EXPR_LOOKUP_DREG, d);
    }
    x.string(sys::NFTNL_EXPR_LOOKUP_SET, set)?;
    if let Some(id) = set_id {
        x.u32(sys::NFTNL_EXPR_LOOKUP_SET_ID, id);
    }
    Ok(x)
}

/// `snat`/`dnat` to the address (and port) in registers; with an address
/// range and NF_NAT_RANGE_NETMAP in `flags`, a 1:1 prefix translation.
fn nat(
    x: &NewExpr,
    kind: u32,
    family: u32,
    (reg_addr_min, reg_addr_max): (u32, Option<u32>),
    reg_proto_min: Option<u32>,
    flags: Option<u32>,
) -> &NewExpr {
    x.u32(sys::NFTNL_EXPR_NAT_TYPE, kind)
        .u32(sys::NFTNL_EXPR_NAT_FAMILY, family)
        .u32(sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, reg_addr_min);
    if let Some(r) = reg_addr_max {
        x.u32(sys::NFTNL_EXPR_NAT_REG_ADDR_MAX, r);
    }
    if let Some(r) = reg_proto_min {
        x.u32(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, r);
    }
    if let Some(f) = flags {
        x.u32(sys::NFTNL_EXPR_NAT_FLAGS, f);
    }
    x
}

/// `accept`, `drop`, `return`, `jump CHAIN`, `goto CHAIN`.
fn verdict<'x>(x: &'x NewExpr, code: i32, chain: Option<&str>) -> Result<&'x NewExpr, EncodeError> {
    x.u32(sys::NFTNL_EXPR_IMM_DREG, k::REG_VERDICT)
        .u32(sys::NFTNL_EXPR_IMM_VERDICT, code as u32);
    if let Some(c) = chain {
        x.string(sys::NFTNL_EXPR_IMM_CHAIN, c)?;
    }
    Ok(x)
}

/// An expression being filled. Each attribute must belong to the
/// expression's kind, which [`expr`] matches one to one.
struct NewExpr(Owned<sys::nftnl_expr>);

impl NewExpr {
    fn alloc(name: &'static [u8]) -> Result<NewExpr, EncodeError> {
        // SAFETY: `name` is a NUL-terminated static string; null is handled.
        let p = unsafe { sys::nftnl_expr_alloc(name.as_ptr().cast()) };
        Ok(NewExpr(Owned::new(p, free_expr)?))
    }

    fn u32(&self, attr: u32, v: u32) -> &Self {
        // SAFETY: the expression is live and of the kind the attribute
        // belongs to (matched in `expr`).
        unsafe { sys::nftnl_expr_set_u32(self.0.as_ptr(), attr as u16, v) };
        self
    }

    fn u8(&self, attr: u32, v: u8) -> &Self {
        // SAFETY: as for `u32`: the expression is live and of the kind the
        // attribute belongs to.
        unsafe { sys::nftnl_expr_set_u8(self.0.as_ptr(), attr as u16, v) };
        self
    }

    fn data(&self, attr: u32, d: &[u8]) -> Result<&Self, EncodeError> {
        check_data(d)?;
        // SAFETY: the expression is live; `d` is 1..=64 bytes, within
        // libnftnl's 64-byte value buffers, and is copied.
        unsafe {
            sys::nftnl_expr_set(
                self.0.as_ptr(),
                attr as u16,
                d.as_ptr().cast::<c_void>(),
                d.len() as u32,
            )
        };
        Ok(self)
    }

    fn string(&self, attr: u32, s: &str) -> Result<&Self, EncodeError> {
        let c = cstr(s)?;
        // SAFETY: the expression is live; the string is copied.
        unsafe { sys::nftnl_expr_set_str(self.0.as_ptr(), attr as u16, c.as_ptr()) };
        Ok(self)
    }
}
