//! Raw ICMPv6 receiving for the NDP tests: a socket bound to one device
//! that reports each message's hop limit and source.

use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;

/// One ICMPv6 message received on a raw socket: payload, source, hop limit.
pub struct Received {
    pub payload: Vec<u8>,
    pub source: Ipv6Addr,
    pub hop_limit: Option<i32>,
}

/// A raw ICMPv6 socket bound to `device` that reports hop limits.
pub fn icmp6_listener(device: &str) -> socket2::Socket {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).expect("raw socket");
    socket
        .bind_device(Some(device.as_bytes()))
        .expect("bind to device");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVHOPLIMIT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "IPV6_RECVHOPLIMIT: {}",
        std::io::Error::last_os_error()
    );
    socket
}

/// Receives ICMPv6 messages until one has type `kind`.
pub fn receive(socket: &socket2::Socket, kind: u8) -> Received {
    loop {
        let mut buf = [0u8; 1500];
        let mut control = [0u64; 16];
        // SAFETY: zeroed sockaddr_in6 and msghdr are valid; every pointer
        // below refers to a live local buffer of the length given.
        let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
        assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        let mut hop_limit = None;
        // SAFETY: the kernel filled msg_control; CMSG_* walk it within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::IPPROTO_IPV6
                    && (*cmsg).cmsg_type == libc::IPV6_HOPLIMIT
                {
                    hop_limit = Some(std::ptr::read_unaligned(
                        libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
                    ));
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        let payload = buf[..n as usize].to_vec();
        if payload.first() == Some(&kind) {
            return Received {
                payload,
                source: Ipv6Addr::from(from.sin6_addr.s6_addr),
                hop_limit,
            };
        }
    }
}
