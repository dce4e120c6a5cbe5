//! What `netlink-sys` does not wrap: socket options set and read through libc, and
//! the registration of a socket with tokio's reactor. The only `unsafe` of
//! the nfnetlink layer.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

fn setsockopt<T>(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: the fd is an open socket owned by `socket`, borrowed for the
    // call; `value` is a live `T` whose size is passed, and the kernel only
    // reads that many bytes from it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn clamp(bytes: usize) -> libc::c_int {
    libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX)
}

/// `SO_NETNS_COOKIE` (Linux 5.14+): the cookie of the network namespace the
/// socket lives in, unique to that namespace for as long as the system runs
/// (unlike its nsfs inode number, which a later namespace can reuse).
pub fn netns_cookie(socket: &impl AsRawFd) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: the fd is an open socket owned by `socket`, borrowed for the
    // call; `cookie` is a live u64 and `len` says so, so the kernel writes
    // at most 8 bytes into it.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    match (rc, len) {
        (0, 8) => Ok(cookie),
        (0, _) => Err(io::Error::other("SO_NETNS_COOKIE: unexpected length")),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Makes the send buffer hold `bytes`: `SO_SNDBUFFORCE` (CAP_NET_ADMIN, not
/// capped by `net.core.wmem_max`), else `SO_SNDBUF`.
pub fn raise_send_buffer(socket: &impl AsRawFd, bytes: usize) {
    let want = clamp(bytes);
    if setsockopt(socket, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &want).is_err() {
        let _ = setsockopt(socket, libc::SOL_SOCKET, libc::SO_SNDBUF, &want);
    }
}

/// The same for the receive buffer (`SO_RCVBUFFORCE`, else `SO_RCVBUF`).
pub fn raise_receive_buffer(socket: &impl AsRawFd, bytes: usize) {
    let want = clamp(bytes);
    if setsockopt(socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &want).is_err() {
        let _ = setsockopt(socket, libc::SOL_SOCKET, libc::SO_RCVBUF, &want);
    }
}

/// `SO_RCVTIMEO`: a blocking receive fails with `EAGAIN` after `timeout`.
pub fn set_receive_timeout(socket: &impl AsRawFd, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    setsockopt(socket, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

/// Registers `socket` (non-blocking) with the current tokio runtime's
/// reactor, for readability. Panics outside a runtime with IO enabled, as
/// tokio does: the caller checks first.
pub fn register_readable<T: AsRawFd>(socket: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: the sockets registered here are `Conn`s, which own their fd
    // (through `netlink_sys::Socket`) and close it only when dropped, that
    // is when the `AsyncFd` owning them is; `as_raw_fd` always returns that
    // same fd.
    unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }.map_err(io::Error::from)
}

/// Moves the calling thread (only it) into a new, empty network namespace,
/// which goes away with the thread: for tests that talk to the kernel.
#[cfg(test)]
pub(crate) fn enter_fresh_netns() -> io::Result<()> {
    // SAFETY: unshare(2) with CLONE_NEWNET takes no pointers and changes
    // only the calling thread's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
