//! The nfnetlink wire format: `nlmsghdr`, `nfgenmsg` and attributes, read
//! and written in plain safe Rust, plus the acknowledgement (`NLMSG_ERROR`)
//! and end-of-dump (`NLMSG_DONE`) messages.
//!
//! Reading never trusts a length: a message or attribute that claims more
//! bytes than there are ends the walk (a message as [`Malformed`], an
//! attribute silently, as the kernel's own `nla_for_each_attr` does).

use std::fmt;

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

// ---- reading ---------------------------------------------------------------

/// A message header that does not fit its datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The message type, when the header was whole enough to have one.
    pub msg_type: Option<u16>,
    pub reason: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// One netlink message, its length checked against the datagram.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// The whole message, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn msg_type(&self) -> u16 {
        u16_ne(self.bytes, 4).unwrap_or(0)
    }

    pub fn flags(&self) -> u16 {
        u16_ne(self.bytes, 6).unwrap_or(0)
    }

    pub fn seq(&self) -> u32 {
        u32_ne(self.bytes, 8).unwrap_or(0)
    }

    /// The sender's port id (for a notification: the committing socket's).
    pub fn portid(&self) -> u32 {
        u32_ne(self.bytes, 12).unwrap_or(0)
    }

    /// The nfnetlink subsystem (`NFNL_SUBSYS_*`) of a non-control message.
    pub fn subsystem(&self) -> u8 {
        (self.msg_type() >> 8) as u8
    }

    /// The message type within its subsystem (`NFT_MSG_*`, `IPCTNL_MSG_*`).
    pub fn subsystem_msg(&self) -> u8 {
        self.msg_type() as u8
    }

    /// `nfgenmsg.nfgen_family`, if the message has an `nfgenmsg`.
    pub fn family(&self) -> Option<u8> {
        self.bytes.get(NLMSG_HDRLEN).copied()
    }

    /// The attributes after `nfgenmsg`.
    pub fn attrs(&self) -> Attrs<'a> {
        attrs(self.bytes.get(NLMSG_HDRLEN + NFGENMSG_LEN..).unwrap_or(&[]))
    }

    /// The acknowledgement this `NLMSG_ERROR` message carries.
    pub fn ack(&self) -> Option<Ack> {
        if self.msg_type() != NLMSG_ERROR {
            return None;
        }
        // struct nlmsgerr { int error; struct nlmsghdr msg; } + payload/TLVs
        let m = self.bytes;
        let (err, orig_len, seq) = (u32_ne(m, 16)?, u32_ne(m, 20)?, u32_ne(m, 28)?);
        let mut ack = Ack {
            seq,
            errno: -(err as i32),
            message: None,
            offset: None,
        };
        if self.flags() & NLM_F_ACK_TLVS != 0 {
            // With NETLINK_CAP_ACK (or for a success) only the original
            // header is echoed.
            let echoed = if ack.errno != 0 && self.flags() & NLM_F_CAPPED == 0 {
                orig_len as usize
            } else {
                NLMSG_HDRLEN
            };
            let tlvs = m.get(20 + echoed.next_multiple_of(4)..).unwrap_or(&[]);
            for a in attrs(tlvs) {
                match a.kind {
                    NLMSGERR_ATTR_MSG => ack.message = Some(cstr(a.payload)),
                    NLMSGERR_ATTR_OFFS => ack.offset = u32_ne(a.payload, 0),
                    _ => {}
                }
            }
        }
        Some(ack)
    }

    /// The error an `NLMSG_DONE` carries (0: the dump is complete).
    pub fn done_errno(&self) -> i32 {
        u32_ne(self.bytes, NLMSG_HDRLEN).map_or(0, |e| -(e as i32))
    }
}

/// One acknowledgement: `errno` 0 means success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub seq: u32,
    pub errno: i32,
    /// The kernel's extended-ack message, if it gave one.
    pub message: Option<String>,
    /// Offset of the offending attribute within the failed message.
    pub offset: Option<u32>,
}

/// The messages of one datagram. A message whose length does not fit ends
/// the walk with an error; so do trailing bytes too short for a header.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { rest: datagram }
}

pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest;
        if b.is_empty() {
            return None;
        }
        if b.len() < NLMSG_HDRLEN {
            self.rest = &[];
            return Some(Err(Malformed {
                msg_type: None,
                reason: format!("{} bytes left, shorter than a message header", b.len()),
            }));
        }
        let len = u32_ne(b, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            self.rest = &[];
            return Some(Err(Malformed {
                msg_type: u16_ne(b, 4),
                reason: format!("bad message length {len}"),
            }));
        }
        self.rest = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some(Ok(Message { bytes: &b[..len] }))
    }
}

/// One attribute: its type (flags masked off), payload, and the offset of
/// its header in the bytes being walked.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
    pub offset: usize,
}

/// The attributes in `b`, stopping at a malformed one.
pub fn attrs(b: &[u8]) -> Attrs<'_> {
    Attrs { rest: b, at: 0 }
}

#[derive(Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let b = self.rest;
        let len = usize::from(u16_ne(b, 0)?);
        let kind = u16_ne(b, 2)? & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > b.len() {
            self.rest = &[];
            return None;
        }
        let attr = Attr {
            kind,
            payload: &b[NLA_HDRLEN..len],
            offset: self.at,
        };
        let step = len.next_multiple_of(4).min(b.len());
        self.rest = &b[step..];
        self.at += step;
        Some(attr)
    }
}

/// The payload of the first attribute of type `kind` in `b`.
pub fn attr(b: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(b).find(|a| a.kind == kind).map(|a| a.payload)
}

// ---- writing ---------------------------------------------------------------

/// Appends one message to a buffer: header and `nfgenmsg` first, then
/// attributes; [`MsgWriter::finish`] sets the length.
pub struct MsgWriter<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
}

impl<'b> MsgWriter<'b> {
    /// `msg_type` is the whole `nlmsg_type` (subsystem in the high byte);
    /// the port id is left 0 (the kernel fills in the sender's).
    pub fn begin(
        buf: &'b mut Vec<u8>,
        msg_type: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> MsgWriter<'b> {
        let start = buf.len();
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, NFNETLINK_V0, res_id (big endian)
        buf.extend_from_slice(&[family, 0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        MsgWriter { buf, start }
    }

    pub fn put(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        self.buf
            .extend_from_slice(&((NLA_HDRLEN + payload.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// A NUL-terminated string.
    pub fn put_str(&mut self, kind: u16, s: &str) -> &mut Self {
        self.buf
            .extend_from_slice(&((NLA_HDRLEN + s.len() + 1) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
        self
    }

    /// A nested attribute (`NLA_F_NESTED`) holding what `fill` writes.
    pub fn nest(&mut self, kind: u16, fill: impl FnOnce(&mut Self)) -> &mut Self {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        fill(self);
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn pad(&mut self) {
        let padded = self.buf.len().next_multiple_of(4);
        self.buf.resize(padded, 0);
    }

    /// Sets `nlmsg_len`.
    pub fn finish(self) {
        let len = (self.buf.len() - self.start) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

/// One request message with string attributes only (names of tables,
/// chains), as the GET requests need.
pub fn request(
    msg_type: u16,
    flags: u16,
    seq: u32,
    family: u8,
    strings: &[(u16, &str)],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    let mut w = MsgWriter::begin(&mut buf, msg_type, flags, seq, family, 0);
    for (kind, value) in strings {
        w.put_str(*kind, value);
    }
    w.finish();
    buf
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
        assert_eq!((a[1].kind, a[1].offset), (4, 12));
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
