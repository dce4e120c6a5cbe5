//! Reading datagrams: messages, attributes, acknowledgements.

use std::fmt;

use super::{
    NFGENMSG_LEN, NLA_HDRLEN, NLA_TYPE_MASK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR,
    NLMSG_HDRLEN, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS, cstr, u16_ne, u32_ne,
};

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

/// One attribute: its type (flags masked off) and payload.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
}

/// The attributes in `b`, stopping at a malformed one.
pub fn attrs(b: &[u8]) -> Attrs<'_> {
    Attrs { rest: b }
}

#[derive(Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
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
        };
        let step = len.next_multiple_of(4).min(b.len());
        self.rest = &b[step..];
        Some(attr)
    }
}

/// The payload of the first attribute of type `kind` in `b`.
pub fn attr(b: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(b).find(|a| a.kind == kind).map(|a| a.payload)
}
