//! Writing messages: header, `nfgenmsg`, attributes.

use super::{NLA_F_NESTED, NLA_HDRLEN};

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

    /// Bytes of the message so far (header included).
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
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
