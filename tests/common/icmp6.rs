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

/// A whole IPv6 packet carrying a neighbour solicitation for `target` from
/// `source` to `destination` (hop limit 255, checksum computed), with a
/// source link-layer address option when `lladdr` is given: what a node
/// sends, including duplicate address detection (source `::`), which a
/// socket cannot send with the kernel choosing the source.
pub fn neighbour_solicitation_packet(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    target: Ipv6Addr,
    lladdr: Option<[u8; 6]>,
) -> Vec<u8> {
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    if let Some(mac) = lladdr {
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&mac);
    }
    let checksum = icmp6_checksum(source, destination, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[58, 255]);
    packet.extend_from_slice(&source.octets());
    packet.extend_from_slice(&destination.octets());
    packet.extend_from_slice(&icmp);
    packet
}

/// The ICMPv6 checksum (RFC 4443 §2.3): over the pseudo-header and the message.
fn icmp6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut bytes = Vec::with_capacity(40 + message.len() + 1);
    bytes.extend_from_slice(&source.octets());
    bytes.extend_from_slice(&destination.octets());
    bytes.extend_from_slice(&(message.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 58]);
    bytes.extend_from_slice(message);
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends a whole IPv6 `packet` (header included) out of `device` towards
/// `destination`, from the calling thread's namespace.
pub fn send_ipv6_packet(device: &str, destination: Ipv6Addr, packet: &[u8]) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    // IPPROTO_RAW: the caller writes the IPv6 header itself.
    let socket = Socket::new(
        Domain::IPV6,
        Type::RAW,
        Some(Protocol::from(libc::IPPROTO_RAW)),
    )
    .expect("raw IPv6 socket");
    socket
        .bind_device(Some(device.as_bytes()))
        .expect("bind to device");
    let to = SockAddr::from(std::net::SocketAddrV6::new(destination, 0, 0, 0));
    let sent = socket.send_to(packet, &to).expect("send the packet");
    assert_eq!(sent, packet.len(), "sent whole");
}

/// The raw ICMPv6 sockets process `pid` holds, duplicated into this
/// process (pidfd_getfd) so their options can be read as the kernel has
/// them. Found by inode: `/proc/PID/net/raw6` lists them (protocol 58 in
/// the local address' port column), `/proc/PID/fd` links to `socket:[INODE]`.
pub fn raw_icmp6_sockets_of(pid: u32) -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/raw6")).expect("raw6 table");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let protocol = fields.get(1)?.rsplit(':').next()?;
            (u32::from_str_radix(protocol, 16).ok()? == 58)
                .then(|| fields.get(9).map(|i| i.to_string()))?
        })
        .collect();
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd as libc::c_int) };
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fd directory") {
        let entry = entry.expect("fd entry");
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        let is_one = inodes.iter().any(|i| link == format!("socket:[{i}]"));
        let Some(target) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::c_int>().ok())
        else {
            continue;
        };
        if !is_one {
            continue;
        }
        // SAFETY: pidfd is a live pidfd; pidfd_getfd returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
        assert!(fd >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        // SAFETY: pidfd_getfd returned a new fd that nothing else owns.
        sockets.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) });
    }
    sockets
}

/// The ICMPv6 types `socket`'s ICMP6_FILTER lets through (all of them
/// when no filter was set).
pub fn icmp6_types_passed(socket: &impl AsRawFd) -> Vec<u8> {
    let mut filter = [0u32; 8];
    let mut len = std::mem::size_of_val(&filter) as libc::socklen_t;
    // SAFETY: `filter` and `len` are live locals; the kernel writes at most
    // `len` bytes (struct icmp6_filter) into `filter`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            1, // ICMPV6_FILTER
            filter.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "ICMPV6_FILTER: {}", std::io::Error::last_os_error());
    (0..=255u8)
        .filter(|t| filter[usize::from(t >> 5)] & (1 << (t & 31)) == 0)
        .collect()
}

/// The device `socket` is bound to (SO_BINDTODEVICE), if any.
pub fn bound_device(socket: &std::os::fd::OwnedFd) -> Option<String> {
    socket2::SockRef::from(socket)
        .device()
        .expect("SO_BINDTODEVICE")
        .map(|name| String::from_utf8_lossy(&name).into_owned())
}
