//! `ICMP6_FILTER` (RFC 3542 §3.2) on a raw ICMPv6 socket: the kernel
//! delivers only the message types the filter passes, so a socket that
//! waits for one type is not woken by every other ICMPv6 message of the
//! host. Neither libc, nix nor socket2 wraps this option; its one
//! `setsockopt` is the only `unsafe` here.

use std::io;
use std::os::fd::AsRawFd;

/// `ICMPV6_FILTER` of linux/icmpv6.h, at level `IPPROTO_ICMPV6`.
const ICMPV6_FILTER: libc::c_int = 1;

/// `struct icmp6_filter`: one bit per type, a set bit blocks the type.
type Filter = [u32; 8];

/// The filter that blocks every type but `pass` (glibc's
/// `ICMP6_FILTER_SETBLOCKALL` then `ICMP6_FILTER_SETPASS`).
fn passing_only(pass: u8) -> Filter {
    let mut filter = [u32::MAX; 8];
    filter[usize::from(pass >> 5)] &= !(1u32 << (pass & 31));
    filter
}

/// Makes the raw ICMPv6 `socket` receive messages of type `pass` only.
pub fn receive_only(socket: &impl AsRawFd, pass: u8) -> io::Result<()> {
    let filter = passing_only(pass);
    // SAFETY: the fd is an open socket owned by `socket`, borrowed for the
    // call; `filter` is a live `[u32; 8]` (the layout of `struct
    // icmp6_filter`) whose size is passed, and the kernel only reads that
    // many bytes from it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMPV6_FILTER,
            (&filter as *const Filter).cast(),
            size_of::<Filter>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(filter: &Filter, t: u8) -> bool {
        filter[usize::from(t >> 5)] & (1 << (t & 31)) != 0
    }

    #[test]
    fn only_the_passed_type_is_let_through() {
        let filter = passing_only(135);
        assert!(!blocks(&filter, 135));
        let blocked = (0..=255u8).filter(|t| blocks(&filter, *t)).count();
        assert_eq!(blocked, 255, "every other type is blocked");
        assert!(blocks(&filter, 136) && blocks(&filter, 128) && blocks(&filter, 134));
    }
}
