//! dock6's own answers to neighbour solicitations for proxied container
//! addresses, with `na_source = "target"`: some hosting providers drop
//! neighbour advertisements whose source is link-local (ndppd#71), and the
//! kernel's proxy always answers from the uplink's link-local address. So
//! dock6 answers from the target address itself, on a raw ICMPv6 socket,
//! while the ruleset drops the kernel's own answers for proxied targets
//! (chain `nd_answers`). The kernel's proxy entries stay: they make the
//! kernel join each address's solicited-node group, so the solicitations
//! are delivered here at all.
//!
//! Only live proxied addresses are answered (the set the last apply gave),
//! only solicitations that RFC 4861 §7.1.1 calls valid (hop limit 255, code
//! 0, a unicast target, no source link-layer option from the unspecified
//! address), only on the interface the address is proxied on, and at most
//! [`BURST`] answers at once, [`PER_SECOND`] a second, one per target every
//! [`PER_TARGET_INTERVAL`]. No `unsafe`: socket2 and nix.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, warn};

use super::ndisc::{Link, send, solicited_advertisement};

const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ND_OPT_SOURCE_LINKADDR: u8 = 1;

/// Answers that may go out at once.
pub const BURST: f64 = 50.0;
/// Answers a second, in the long run.
pub const PER_SECOND: f64 = 50.0;
/// A target is answered at most this often (a router asks about once a
/// second while it resolves an address).
pub const PER_TARGET_INTERVAL: Duration = Duration::from_millis(100);
/// How long a receive waits before the thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(250);

/// The proxied addresses answered for, each with the link it is proxied on.
pub type Answered = BTreeMap<Ipv6Addr, Link>;

/// The answering thread; stops (and closes its socket) when dropped.
pub struct Responder {
    answered: Arc<Mutex<Answered>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Opens the socket in the calling thread's network namespace and starts
    /// answering (for nothing until [`Responder::set`]).
    pub fn start() -> io::Result<Responder> {
        let socket = listening_socket()?;
        let answered = Arc::new(Mutex::new(Answered::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (answered.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("dock6-ndp-answers".into())
            .spawn(move || serve(&socket, &a, &s))?;
        Ok(Responder {
            answered,
            stop,
            thread: Some(thread),
        })
    }

    /// Answers for exactly `answered` from now on; returns the addresses
    /// that were not answered for before (to be announced).
    pub fn set(&self, answered: Answered) -> Vec<Ipv6Addr> {
        let mut current = self
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new = answered
            .keys()
            .filter(|a| !current.contains_key(a))
            .copied()
            .collect();
        *current = answered;
        new
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn listening_socket() -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
    setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

fn serve(socket: &Socket, answered: &Mutex<Answered>, stop: &AtomicBool) {
    let mut limiter = RateLimiter::new(Instant::now());
    let mut buf = [0u8; 1280];
    while !stop.load(Ordering::SeqCst) {
        let received = match receive(socket, &mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!("neighbour solicitations: receive failed: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let answer = {
            let answered = answered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            answer_for(&received, &buf[..received.len], &answered)
        };
        let Some(answer) = answer else { continue };
        if !limiter.allow(Instant::now(), answer.target) {
            debug!(target = %answer.target, "neighbour solicitation not answered: rate limit");
            continue;
        }
        let packet = solicited_advertisement(
            answer.target,
            answer.link.lladdr.as_deref(),
            answer.solicited,
        );
        match send(
            answer.link.index,
            Some(answer.target),
            answer.destination,
            &packet,
        ) {
            Ok(()) => {
                debug!(target = %answer.target, to = %answer.destination, "neighbour solicitation answered from the target")
            }
            Err(e) => warn!(
                "answer to a neighbour solicitation for {} (to {}) failed: {e}",
                answer.target, answer.destination
            ),
        }
    }
}

/// One ICMPv6 message as received, with what the kernel says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub source: Ipv6Addr,
    /// The IPv6 hop limit it arrived with.
    pub hop_limit: Option<u8>,
    /// The interface it arrived on.
    pub ifindex: Option<u32>,
}

fn receive(socket: &Socket, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
    let msg = recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let (mut hop_limit, mut ifindex) = (None, None);
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv6PacketInfo(info) => ifindex = Some(info.ipi6_ifindex),
            _ => {}
        }
    }
    let source = msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
    Ok(Received {
        len: msg.bytes,
        source,
        hop_limit,
        ifindex,
    })
}

/// What to send for a solicitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub target: Ipv6Addr,
    pub destination: Ipv6Addr,
    /// S flag: false for an answer to duplicate address detection (sent to
    /// all nodes).
    pub solicited: bool,
    pub link: Link,
}

/// The answer to `packet` (an ICMPv6 message), if it is a valid neighbour
/// solicitation for an address dock6 answers for on the interface it came
/// in on.
pub fn answer_for(received: &Received, packet: &[u8], answered: &Answered) -> Option<Answer> {
    if received.hop_limit != Some(255) {
        return None;
    }
    let solicitation = parse_solicitation(packet)?;
    let link = answered.get(&solicitation.target)?;
    if received.ifindex != Some(link.index) {
        return None;
    }
    let dad = received.source.is_unspecified();
    if dad && solicitation.source_lladdr {
        return None;
    }
    Some(Answer {
        target: solicitation.target,
        destination: if dad { ALL_NODES } else { received.source },
        solicited: !dad,
        link: link.clone(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solicitation {
    pub target: Ipv6Addr,
    /// It carries a source link-layer address option.
    pub source_lladdr: bool,
}

/// A neighbour solicitation (type 135, code 0, a unicast target, well-formed
/// options), or `None`.
pub fn parse_solicitation(packet: &[u8]) -> Option<Solicitation> {
    if packet.len() < 24 || packet[0] != ND_NEIGHBOR_SOLICIT || packet[1] != 0 {
        return None;
    }
    let octets: [u8; 16] = packet[8..24].try_into().ok()?;
    let target = Ipv6Addr::from(octets);
    if target.is_multicast() || target.is_unspecified() {
        return None;
    }
    let mut source_lladdr = false;
    let mut options = &packet[24..];
    while !options.is_empty() {
        let [kind, units, ..] = *options else {
            return None;
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return None;
        }
        source_lladdr |= kind == ND_OPT_SOURCE_LINKADDR;
        options = &options[len..];
    }
    Some(Solicitation {
        target,
        source_lladdr,
    })
}

/// A token bucket for all answers, and a minimum interval per target.
#[derive(Debug)]
pub struct RateLimiter {
    tokens: f64,
    last: Instant,
    per_target: HashMap<Ipv6Addr, Instant>,
}

impl RateLimiter {
    pub fn new(now: Instant) -> RateLimiter {
        RateLimiter {
            tokens: BURST,
            last: now,
            per_target: HashMap::new(),
        }
    }

    pub fn allow(&mut self, now: Instant, target: Ipv6Addr) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * PER_SECOND).min(BURST);
        self.last = now;
        if self
            .per_target
            .get(&target)
            .is_some_and(|t| now.saturating_duration_since(*t) < PER_TARGET_INTERVAL)
        {
            return false;
        }
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        if self.per_target.len() >= 4096 {
            self.per_target
                .retain(|_, t| now.saturating_duration_since(*t) < PER_TARGET_INTERVAL);
        }
        self.per_target.insert(target, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solicitation(target: Ipv6Addr, options: &[u8]) -> Vec<u8> {
        let mut p = vec![135, 0, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&target.octets());
        p.extend_from_slice(options);
        p
    }

    fn link() -> Link {
        Link {
            index: 7,
            lladdr: Some(vec![2, 0, 0, 0, 0, 1]),
        }
    }

    #[test]
    fn only_valid_solicitations_for_answered_addresses_get_an_answer() {
        let target: Ipv6Addr = "2001:db8:1:0:1::2".parse().unwrap();
        let asker: Ipv6Addr = "fe80::1".parse().unwrap();
        let answered: Answered = [(target, link())].into();
        let sllao = [1, 1, 2, 0, 0, 0, 0, 9];
        let packet = solicitation(target, &sllao);
        let ok = Received {
            len: packet.len(),
            source: asker,
            hop_limit: Some(255),
            ifindex: Some(7),
        };
        assert_eq!(
            answer_for(&ok, &packet, &answered),
            Some(Answer {
                target,
                destination: asker,
                solicited: true,
                link: link()
            })
        );
        let off_link = Received {
            hop_limit: Some(254),
            ..ok.clone()
        };
        assert_eq!(answer_for(&off_link, &packet, &answered), None);
        let other_interface = Received {
            ifindex: Some(8),
            ..ok.clone()
        };
        assert_eq!(answer_for(&other_interface, &packet, &answered), None);
        let other = solicitation("2001:db8:1::99".parse().unwrap(), &[]);
        assert_eq!(answer_for(&ok, &other, &answered), None);
        // Duplicate address detection: to all nodes, S clear; never with a
        // source link-layer option.
        let dad = Received {
            source: Ipv6Addr::UNSPECIFIED,
            ..ok.clone()
        };
        let answer = answer_for(&dad, &solicitation(target, &[]), &answered).unwrap();
        assert_eq!((answer.destination, answer.solicited), (ALL_NODES, false));
        assert_eq!(answer_for(&dad, &packet, &answered), None);
    }

    #[test]
    fn malformed_solicitations_are_refused() {
        let target: Ipv6Addr = "2001:db8::2".parse().unwrap();
        assert!(parse_solicitation(&solicitation(target, &[])).is_some());
        let mut wrong_code = solicitation(target, &[]);
        wrong_code[1] = 1;
        assert_eq!(parse_solicitation(&wrong_code), None);
        assert_eq!(parse_solicitation(&solicitation(target, &[1, 0])), None);
        assert_eq!(
            parse_solicitation(&solicitation(target, &[1, 2, 0, 0])),
            None
        );
        assert_eq!(
            parse_solicitation(&solicitation("ff02::1".parse().unwrap(), &[])),
            None
        );
        assert_eq!(parse_solicitation(&[135, 0, 0, 0]), None);
        let mut advert = solicitation(target, &[]);
        advert[0] = 136;
        assert_eq!(parse_solicitation(&advert), None);
    }

    #[test]
    fn answers_are_rate_limited() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(start);
        let a: Ipv6Addr = "2001:db8::a".parse().unwrap();
        assert!(limiter.allow(start, a));
        assert!(!limiter.allow(start, a), "one per target per interval");
        assert!(limiter.allow(start + PER_TARGET_INTERVAL, a));
        let mut limiter = RateLimiter::new(start);
        let allowed = (0..200u16)
            .filter(|i| limiter.allow(start, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, *i)))
            .count();
        assert_eq!(allowed, BURST as usize, "a burst, then nothing");
        let later = start + Duration::from_secs(1);
        let allowed = (200..400u16)
            .filter(|i| limiter.allow(later, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, *i)))
            .count();
        assert_eq!(allowed, PER_SECOND as usize, "refilled at the rate");
    }
}
