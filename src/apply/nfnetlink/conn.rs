//! One `NETLINK_NETFILTER` socket: send, receive whole datagrams, and route
//! the replies to a request by its sequence number.
//!
//! A batch is one contiguous buffer sent in one `send` after raising the
//! send buffer to fit it (`SO_SNDBUFFORCE`, CAP_NET_ADMIN): a batch split
//! over several sends is refused (ENOBUFS) and commits nothing. The kernel
//! processes the batch synchronously inside that call and queues one ack per
//! message that asked for one (`NLM_F_ACK`), errors included: all are read
//! back. Replies for other sequence numbers (left over from an earlier,
//! failed exchange on this socket) are skipped.
//!
//! A batch the kernel refuses may leave replies on the socket that were
//! never read: acknowledgements of the messages it took before refusing the
//! whole. Such a socket is marked spent ([`Conn::is_spent`]) and not used
//! again (see [`super::with_conn`]).

use std::cell::Cell;
use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};

use super::codec::{self, Ack, Message, NLMSG_DONE, NLMSG_ERROR};
use super::sys;

/// How long a blocking receive waits for the kernel.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Reserves `count` consecutive sequence numbers and returns the first.
/// They increase across every exchange of the process, so that no two
/// exchanges share a number, and they start from the clock, so that a fresh
/// process does not reuse the numbers of an earlier one whose replies might
/// still be queued.
pub fn next_seq(count: u32) -> u32 {
    let _ = SEQ.compare_exchange(
        0,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1)
            | 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    SEQ.fetch_add(count.max(1), Ordering::Relaxed)
}

fn invalid(e: codec::Malformed) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink reply: {e}"),
    )
}

/// A netfilter netlink socket in the network namespace of the thread that
/// opened it.
pub struct Conn {
    socket: Socket,
    portid: u32,
    /// A batch failed on this socket: replies of it may still be queued.
    spent: Cell<bool>,
}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Conn {
    pub fn open() -> io::Result<Conn> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        let addr = socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Extended acks carry the offending attribute's offset; capped acks
        // do not echo whole (possibly large) messages back.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        sys::set_receive_timeout(&socket, RECEIVE_TIMEOUT)?;
        Ok(Conn {
            socket,
            portid: addr.port_number(),
            spent: Cell::new(false),
        })
    }

    pub fn portid(&self) -> u32 {
        self.portid
    }

    /// Whether a batch failed on this socket, so that replies of it may
    /// still be queued: the socket is not to be used again.
    pub fn is_spent(&self) -> bool {
        self.spent.get()
    }

    /// The cookie of the network namespace the socket lives in (see
    /// [`sys::netns_cookie`]).
    pub fn netns_cookie(&self) -> io::Result<u64> {
        sys::netns_cookie(&self.socket)
    }

    /// Joins a multicast group (e.g. `NFNLGRP_NFTABLES`).
    pub fn join(&self, group: u32) -> io::Result<()> {
        self.socket.add_membership(group)
    }

    /// Leaves a multicast group joined with [`Conn::join`].
    pub fn leave(&self, group: u32) -> io::Result<()> {
        self.socket.drop_membership(group)
    }

    /// Makes the socket non-blocking and registers it with the current
    /// tokio runtime (which must have IO enabled) for reading.
    pub fn into_async(self) -> io::Result<tokio::io::unix::AsyncFd<Conn>> {
        self.socket.set_non_blocking(true)?;
        sys::register_readable(self)
    }

    /// Sets `SO_RCVBUF` (capped by `net.core.rmem_max`) and returns the size
    /// the kernel granted (which it doubles for bookkeeping).
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<usize> {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        self.socket.set_rx_buf_sz(bytes)?;
        self.socket.get_rx_buf_sz()
    }

    /// Sends `bytes` in one call.
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let sent = self.socket.send(bytes, 0)?;
        if sent != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", bytes.len()),
            ));
        }
        Ok(())
    }

    /// Receives one datagram whole, whatever its size (its length is
    /// peeked first). On a non-blocking socket, `WouldBlock` when there is
    /// none.
    pub fn recv(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        loop {
            buf.clear();
            let peeked = self.socket.recv(buf, libc::MSG_PEEK | libc::MSG_TRUNC);
            let len = match peeked {
                Ok(0) => return Err(io::Error::other("netlink socket closed")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            buf.clear();
            buf.reserve(len);
            match self.socket.recv(buf, libc::MSG_TRUNC) {
                Ok(n) if n > buf.len() => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("datagram of {n} bytes cut to {}", buf.len()),
                    ));
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `batch` in one call and returns the acks for the sequence
    /// numbers in `expected`. An error for `begin` (the batch-begin
    /// message's sequence number) is a batch-level failure and ends the wait.
    ///
    /// Any error marks the socket spent: the kernel refuses a batch whole,
    /// and when it refuses it at commit it acknowledges each message as
    /// taken only after reporting the failure, so acknowledgements of a
    /// failed batch can remain queued after the wait ends.
    pub fn transact(&self, batch: &[u8], begin: u32, expected: &[u32]) -> io::Result<Vec<Ack>> {
        let acks = self.exchange(batch, begin, expected)?;
        if acks.iter().any(|a| a.errno != 0) {
            self.spent.set(true);
        }
        Ok(acks)
    }

    fn exchange(&self, batch: &[u8], begin: u32, expected: &[u32]) -> io::Result<Vec<Ack>> {
        sys::raise_send_buffer(&self.socket, batch.len() + 64 * 1024);
        // Each ack is its own skb; leave generous room per ack.
        sys::raise_receive_buffer(
            &self.socket,
            expected.len().saturating_mul(2048) + 256 * 1024,
        );
        self.send(batch)?;
        let mut pending: BTreeSet<u32> = expected.iter().copied().collect();
        let mut acks = Vec::with_capacity(expected.len());
        let mut buf = Vec::new();
        while !pending.is_empty() {
            self.recv(&mut buf)?;
            let mut batch_error = None;
            for msg in codec::messages(&buf) {
                let Some(ack) = self.ack_for_us(&msg.map_err(invalid)?) else {
                    continue;
                };
                if pending.remove(&ack.seq) {
                    acks.push(ack);
                } else if ack.seq == begin && ack.errno != 0 {
                    batch_error = Some(ack);
                }
            }
            if let Some(ack) = batch_error {
                acks.push(ack);
                break;
            }
        }
        Ok(acks)
    }

    fn ack_for_us(&self, msg: &Message<'_>) -> Option<Ack> {
        let to_us = msg.portid() == self.portid || msg.portid() == 0;
        if to_us { msg.ack() } else { None }
    }

    /// One request that asked for an ack (`NLM_F_ACK`): its ack.
    pub fn request(&self, request: &[u8], seq: u32) -> io::Result<Option<Ack>> {
        Ok(self.exchange(request, seq, &[seq])?.into_iter().next())
    }

    /// Sends one dump request (sequence number `seq`) and hands each message
    /// of the answer to `each`, up to `NLMSG_DONE`; an error the kernel
    /// answers with is `Ok(Err(errno))`.
    pub fn dump(
        &self,
        request: &[u8],
        seq: u32,
        mut each: impl FnMut(&Message<'_>),
    ) -> io::Result<Result<(), i32>> {
        self.send(request)?;
        let mut buf = Vec::new();
        loop {
            self.recv(&mut buf)?;
            for msg in codec::messages(&buf) {
                let msg = msg.map_err(invalid)?;
                if msg.seq() != seq || msg.portid() != self.portid {
                    continue;
                }
                match msg.msg_type() {
                    NLMSG_DONE => {
                        return Ok(match msg.done_errno() {
                            0 => Ok(()),
                            errno => Err(errno),
                        });
                    }
                    NLMSG_ERROR => match msg.ack() {
                        Some(Ack { errno: 0, .. }) => return Ok(Ok(())),
                        Some(ack) => return Ok(Err(ack.errno)),
                        None => return Err(io::Error::other("short netlink error message")),
                    },
                    _ => each(&msg),
                }
            }
        }
    }
}
