//! The nfnetlink wire format: `nlmsghdr`, `nfgenmsg` and attributes, read
//! and written in plain safe Rust, plus the acknowledgement (`NLMSG_ERROR`)
//! and end-of-dump (`NLMSG_DONE`) messages. Writing is in `write.rs`.
//!
//! Reading (`read.rs`) never trusts a length: a message or attribute that claims more
//! bytes than there are ends the walk (a message as [`Malformed`], an
//! attribute silently, as the kernel's own `nla_for_each_attr` does).

mod read;
mod write;

pub use read::{Ack, Malformed, Message, attr, attrs, messages};
pub use write::{MsgWriter, request};

pub const NLMSG_HDRLEN: usize = 16;
/// `struct nfgenmsg`: family, version, resource id (big endian).
pub const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLA_F_NESTED: u16 = 0x8000;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
/// Control messages (`NLMSG_NOOP`, `NLMSG_ERROR`, `NLMSG_DONE`,
/// `NLMSG_OVERRUN`) have types below this.
pub const NLMSG_MIN_TYPE: u16 = 0x10;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
/// In an ack: the request was not echoed whole (`NETLINK_CAP_ACK`).
const NLM_F_CAPPED: u16 = 0x100;
/// In an ack: extended-ack attributes follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;

pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
pub const NFNL_SUBSYS_NFTABLES: u8 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

pub const NFPROTO_UNSPEC: u8 = 0;
pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV6: u8 = 10;

pub const ENOENT: i32 = 2;
/// A batch sent with a generation (NFNL_BATCH_GENID) the ruleset has moved on from.
pub const ERESTART: i32 = 85;

pub fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A big-endian u16 attribute payload (exactly two bytes).
pub fn be16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(b.try_into().ok()?))
}

/// A big-endian u32 attribute payload (at least four bytes).
pub fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// A NUL-terminated netlink string.
pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_message_reads_back() {
        let mut buf = Vec::new();
        let mut w = MsgWriter::begin(&mut buf, 0x0a06, NLM_F_REQUEST, 9, NFPROTO_INET, 0);
        w.put_str(1, "dock6").nest(4, |w| {
            w.put(2, &[1, 2, 3]);
        });
        w.finish();
        assert_eq!(buf.len() % 4, 0);
        let all: Vec<_> = messages(&buf).collect();
        let [Ok(m)] = &all[..] else {
            panic!("one message")
        };
        assert_eq!((m.msg_type(), m.seq(), m.family()), (0x0a06, 9, Some(1)));
        assert_eq!(m.subsystem(), NFNL_SUBSYS_NFTABLES);
        let a: Vec<_> = m.attrs().collect();
        assert_eq!(a.len(), 2);
        assert_eq!(cstr(a[0].payload), "dock6");
        assert_eq!(a[1].kind, 4);
        assert_eq!(attr(a[1].payload, 2), Some(&[1u8, 2, 3][..]));
    }

    #[test]
    fn bad_lengths_end_the_walk() {
        assert!(messages(&[]).next().is_none());
        assert!(matches!(
            messages(&[1, 2, 3]).next(),
            Some(Err(Malformed { msg_type: None, .. }))
        ));
        let mut m = vec![0u8; 16];
        m[..4].copy_from_slice(&100u32.to_ne_bytes());
        m[4..6].copy_from_slice(&0x0a00u16.to_ne_bytes());
        assert!(matches!(
            messages(&m).next(),
            Some(Err(Malformed {
                msg_type: Some(0x0a00),
                ..
            }))
        ));
        // An attribute longer than what is left.
        assert_eq!(attrs(&[200, 0, 1, 0, 0, 0]).count(), 0);
    }

    #[test]
    fn an_extended_nack_reads_errno_message_and_offset() {
        let mut m = Vec::new();
        m.extend(0u32.to_ne_bytes());
        m.extend(NLMSG_ERROR.to_ne_bytes());
        m.extend((NLM_F_ACK_TLVS | NLM_F_CAPPED).to_ne_bytes());
        m.extend(5u32.to_ne_bytes());
        m.extend(77u32.to_ne_bytes());
        m.extend((-ENOENT).to_ne_bytes());
        // The echoed header: len, type, flags, seq, portid.
        m.extend(40u32.to_ne_bytes());
        m.extend(0x0a06u16.to_ne_bytes());
        m.extend(0u16.to_ne_bytes());
        m.extend(5u32.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend([8, 0, NLMSGERR_ATTR_MSG as u8, 0, b'n', b'o', 0, 0]);
        m.extend([8, 0, NLMSGERR_ATTR_OFFS as u8, 0]);
        m.extend(24u32.to_ne_bytes());
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        let msg = messages(&m).next().and_then(Result::ok).expect("message");
        assert_eq!(
            msg.ack(),
            Some(Ack {
                seq: 5,
                errno: ENOENT,
                message: Some("no".into()),
                offset: Some(24),
            })
        );
    }
}
