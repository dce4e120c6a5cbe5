//! The netfilter netlink socket: sends a whole batch in one `sendto` and
//! collects the kernel's acknowledgements.
//!
//! mnl's `send_all` sends each batch page separately, and a batch split over
//! several sends is refused (ENOBUFS) and commits nothing; so the batch is one
//! contiguous buffer, sent at once after raising the send buffer
//! (`SO_SNDBUFFORCE`, CAP_NET_ADMIN) to fit it. The kernel processes the
//! batch synchronously inside that call and queues one ack per message that
//! asked for one (`NLM_F_ACK`), errors included: all are read back.

use std::io;
use std::os::fd::RawFd;

use mnl::mnl_sys;

const NETLINK_NETFILTER: i32 = 12;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;

/// One acknowledgement: `errno` 0 means success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    pub seq: u32,
    pub errno: i32,
    /// The kernel's extended-ack message, if it gave one.
    pub message: Option<String>,
    /// Offset of the offending attribute within the failed message.
    pub offset: Option<u32>,
}

#[repr(C, align(8))]
struct RecvBuf([u8; 64 * 1024]);

pub(crate) struct Conn {
    sock: mnl::Socket,
    fd: RawFd,
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket owned by `Conn`; the option value is a
    // c_int that lives across the call, and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Conn {
    pub(crate) fn open() -> io::Result<Conn> {
        let bus = mnl::Bus::try_from(NETLINK_NETFILTER)
            .ok_or_else(|| io::Error::other("no netfilter bus"))?;
        let sock = mnl::Socket::new(bus)?;
        // SAFETY: `as_raw_socket` is a live mnl socket owned by `sock`,
        // which outlives every use of the fd (both live in `Conn`).
        let fd = unsafe { mnl_sys::mnl_socket_get_fd(sock.as_raw_socket()) };
        // Extended acks carry the offending attribute's offset; capped acks
        // do not echo whole (possibly large) messages back.
        let _ = setsockopt_int(fd, libc::SOL_NETLINK, NETLINK_EXT_ACK, 1);
        let _ = setsockopt_int(fd, libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let timeout = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: as in `setsockopt_int`, with a timeval value.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Conn { sock, fd })
    }

    pub(crate) fn portid(&self) -> u32 {
        self.sock.portid()
    }

    /// Makes room for a batch of `len` bytes and `acks` acknowledgements.
    fn size_buffers(&self, len: usize, acks: usize) {
        let want_snd = (len + 64 * 1024).min(i32::MAX as usize) as libc::c_int;
        if setsockopt_int(self.fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, want_snd).is_err() {
            let _ = setsockopt_int(self.fd, libc::SOL_SOCKET, libc::SO_SNDBUF, want_snd);
        }
        // Each ack is its own skb; leave generous room per ack.
        let want_rcv =
            (acks.saturating_mul(2048) + 256 * 1024).min(i32::MAX as usize) as libc::c_int;
        if setsockopt_int(self.fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want_rcv).is_err() {
            let _ = setsockopt_int(self.fd, libc::SOL_SOCKET, libc::SO_RCVBUF, want_rcv);
        }
    }

    /// Sends `batch` in one call and returns the acks for the sequence
    /// numbers in `expected`. An error for `begin` (the batch-begin
    /// message's sequence number) is a batch-level failure and ends the wait;
    /// acks for other sequence numbers (left over from an earlier, failed
    /// exchange on this socket) are ignored.
    pub(crate) fn transact(
        &self,
        batch: &[u8],
        begin: u32,
        expected: &[u32],
    ) -> io::Result<Vec<Ack>> {
        self.size_buffers(batch.len(), expected.len());
        let sent = self.sock.send(batch)?;
        if sent != batch.len() {
            return Err(io::Error::other(format!(
                "sent {sent} of {} bytes",
                batch.len()
            )));
        }
        let mut pending: std::collections::BTreeSet<u32> = expected.iter().copied().collect();
        let mut acks = Vec::with_capacity(expected.len());
        let mut buf = Box::new(RecvBuf([0; 64 * 1024]));
        let portid = self.portid();
        while !pending.is_empty() {
            let n = self.sock.recv_raw(&mut buf.0)?;
            if n == 0 {
                return Err(io::Error::other("netlink socket closed"));
            }
            let mut stray_error = None;
            for ack in parse_acks(&buf.0[..n], portid) {
                if pending.remove(&ack.seq) {
                    acks.push(ack);
                } else if ack.seq == begin && ack.errno != 0 {
                    stray_error = Some(ack);
                }
            }
            if let Some(ack) = stray_error {
                acks.push(ack);
                break;
            }
        }
        Ok(acks)
    }
}

impl Conn {
    /// Sends one dump request (sequence number `seq`) and returns the
    /// answer's messages, whole (header included), up to `NLMSG_DONE`; an
    /// error the kernel answers with is `Ok(Err(errno))`.
    pub(crate) fn dump(&self, request: &[u8], seq: u32) -> io::Result<Result<Vec<Vec<u8>>, i32>> {
        self.sock.send(request)?;
        let mut buf = Box::new(RecvBuf([0; 64 * 1024]));
        let portid = self.portid();
        let mut out = Vec::new();
        loop {
            let n = self.sock.recv_raw(&mut buf.0)?;
            if n == 0 {
                return Err(io::Error::other("netlink socket closed"));
            }
            let mut b = &buf.0[..n];
            while let (Some(len), Some(ty)) = (u32_at(b, 0), u16_at(b, 4)) {
                let len = len as usize;
                if len < 16 || len > b.len() {
                    break;
                }
                let msg = &b[..len];
                let ours = u32_at(msg, 8) == Some(seq) && u32_at(msg, 12) == Some(portid);
                match (ours, ty) {
                    (true, NLMSG_DONE) => return Ok(Ok(out)),
                    (true, NLMSG_ERROR) => match u32_at(msg, 16).map(|e| -(e as i32)) {
                        Some(0) => return Ok(Ok(out)),
                        Some(errno) => return Ok(Err(errno)),
                        None => return Err(io::Error::other("short netlink error message")),
                    },
                    (true, _) => out.push(msg.to_vec()),
                    (false, _) => {}
                }
                b = &b[len.next_multiple_of(4).min(b.len())..];
            }
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the NLMSG_ERROR messages (acks) in one datagram.
pub(crate) fn parse_acks(mut b: &[u8], portid: u32) -> Vec<Ack> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let Some(len) = u32_at(b, 0).map(|l| l as usize) else {
            break;
        };
        if len < 16 || len > b.len() {
            break;
        }
        let msg = &b[..len];
        let ty = u16_at(msg, 4).unwrap_or(0);
        let flags = u16_at(msg, 6).unwrap_or(0);
        let pid = u32_at(msg, 12).unwrap_or(0);
        if ty == NLMSG_ERROR && (pid == portid || pid == 0) {
            // struct nlmsgerr { int error; struct nlmsghdr msg; } + payload/TLVs
            if let (Some(err), Some(orig_len), Some(seq)) =
                (u32_at(msg, 16), u32_at(msg, 20), u32_at(msg, 28))
            {
                let errno = -(err as i32);
                let mut ack = Ack {
                    seq,
                    errno,
                    message: None,
                    offset: None,
                };
                if flags & NLM_F_ACK_TLVS != 0 {
                    // With NETLINK_CAP_ACK (or for a success) only the
                    // original header is echoed.
                    let echoed = if errno != 0 && flags & 0x100 == 0 {
                        orig_len as usize
                    } else {
                        16
                    };
                    let mut at = 20 + echoed.next_multiple_of(4);
                    while let (Some(alen), Some(aty)) = (u16_at(msg, at), u16_at(msg, at + 2)) {
                        let alen = usize::from(alen);
                        if alen < 4 || at + alen > msg.len() {
                            break;
                        }
                        let val = &msg[at + 4..at + alen];
                        match aty & 0x3fff {
                            NLMSGERR_ATTR_MSG => {
                                let s = val.split(|c| *c == 0).next().unwrap_or(&[]);
                                ack.message = Some(String::from_utf8_lossy(s).into_owned());
                            }
                            NLMSGERR_ATTR_OFFS => ack.offset = u32_at(val, 0),
                            _ => {}
                        }
                        at += alen.next_multiple_of(4);
                    }
                }
                out.push(ack);
            }
        }
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}
