//! dock6's own answers to neighbour solicitations for proxied container
//! addresses, with `na_source = "target"`: some hosting providers drop
//! neighbour advertisements whose source is link-local (ndppd#71), and the
//! kernel's proxy always answers from the uplink's link-local address. So
//! dock6 answers from the target address itself, on a raw ICMPv6 socket,
//! while the ruleset drops the kernel's own answers for these targets (chain
//! `nd_answers`, set `nd_targets`). The kernel's proxy entries stay: they
//! make the kernel join each address's solicited-node group, so the
//! solicitations are delivered here at all.
//!
//! The socket receives neighbour solicitations only (an ICMPv6 filter), on
//! the interface the addresses are proxied on only (bound to it, again
//! whenever that interface changes). Only live proxied addresses are
//! answered (the set the last apply gave), only solicitations that RFC 4861
//! §7.1.1 calls valid ([`validate`]), only on the interface the address is
//! proxied on, and at most [`BURST`] answers at once, [`PER_SECOND`] a
//! second, one per target every [`PER_TARGET_INTERVAL`].

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

use super::icmp6_filter;
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

/// The interface the socket listens on: its name, and the index the name
/// had when the socket was bound (an interface made again under the same
/// name has a new index, and the socket must be bound again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    pub name: String,
    pub index: u32,
}

/// The answering thread; stops (and closes its socket) when dropped.
pub struct Responder {
    socket: Arc<Socket>,
    listening: Mutex<Option<Listening>>,
    answered: Arc<Mutex<Answered>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Opens the socket in the calling thread's network namespace and starts
    /// answering (for nothing until [`Responder::set`]).
    pub fn start() -> io::Result<Responder> {
        let socket = Arc::new(listening_socket()?);
        let answered = Arc::new(Mutex::new(Answered::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sock, a, s) = (socket.clone(), answered.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("dock6-ndp-answers".into())
            .spawn(move || serve(&sock, &a, &s))?;
        Ok(Responder {
            socket,
            listening: Mutex::new(None),
            answered,
            stop,
            thread: Some(thread),
        })
    }

    /// Answers for exactly `answered` from now on, listening on `on` (all
    /// of `answered` is proxied there; `None`: on every interface, when the
    /// addresses are proxied on several); returns the addresses that were
    /// not answered for before (to be announced).
    pub fn set(&self, answered: Answered, on: Option<Listening>) -> io::Result<Vec<Ipv6Addr>> {
        self.listen_on(on)?;
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
        Ok(new)
    }

    /// Binds the socket to `on` unless it is bound there already. Messages
    /// queued from the interface before are still checked against each
    /// address's interface when answered.
    fn listen_on(&self, on: Option<Listening>) -> io::Result<()> {
        let mut listening = self
            .listening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *listening == on {
            return Ok(());
        }
        self.socket
            .bind_device(on.as_ref().map(|l| l.name.as_bytes()))?;
        debug!(interface = ?on.as_ref().map(|l| &l.name), "neighbour solicitations: listening");
        *listening = on;
        Ok(())
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
    icmp6_filter::receive_only(&socket, ND_NEIGHBOR_SOLICIT)?;
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

/// One ICMPv6 message as received, with what the kernel says of it (the
/// kernel has checked its ICMPv6 checksum: it does on every raw ICMPv6
/// socket, and drops a message whose checksum is wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub source: Ipv6Addr,
    /// The IPv6 destination address it was sent to.
    pub destination: Option<Ipv6Addr>,
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
    let (mut hop_limit, mut ifindex, mut destination) = (None, None, None);
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                ifindex = Some(info.ipi6_ifindex);
                destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            _ => {}
        }
    }
    let source = msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
    Ok(Received {
        len: msg.bytes,
        source,
        destination,
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
    let solicitation = match validate(received, packet) {
        Ok(s) => s,
        Err(why) => {
            debug!(from = %received.source, "neighbour solicitation ignored: {why}");
            return None;
        }
    };
    let link = answered.get(&solicitation.target)?;
    if received.ifindex != Some(link.index) {
        return None;
    }
    let dad = received.source.is_unspecified();
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

/// Why a message is not a valid neighbour solicitation (RFC 4861 §7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("hop limit is not 255 (sent from off the link)")]
    HopLimit,
    #[error("not a neighbour solicitation")]
    NotASolicitation,
    #[error("ICMP code is not 0")]
    Code,
    #[error("shorter than 24 bytes")]
    TooShort,
    #[error("the target is a multicast (or the unspecified) address")]
    Target,
    #[error("an option of length 0, or longer than the message")]
    OptionLength,
    #[error("from the unspecified address, but not to a solicited-node address")]
    DetectionNotToSolicitedNode,
    #[error("from the unspecified address, with a source link-layer address option")]
    DetectionWithLinkLayerAddress,
}

/// `packet`, as `received`, if it is a neighbour solicitation RFC 4861
/// §7.1.1 calls valid: hop limit 255, type 135, code 0, at least 24 bytes,
/// a target that is not multicast (nor unspecified), every option of a
/// length above 0 and within the message; from the unspecified address
/// (duplicate address detection) only to a solicited-node multicast
/// address and without a source link-layer address option. (The kernel
/// checked the checksum; there is no authentication header.)
pub fn validate(received: &Received, packet: &[u8]) -> Result<Solicitation, Invalid> {
    if received.hop_limit != Some(255) {
        return Err(Invalid::HopLimit);
    }
    let solicitation = parse_solicitation(packet)?;
    if received.source.is_unspecified() {
        if !received.destination.is_some_and(is_solicited_node) {
            return Err(Invalid::DetectionNotToSolicitedNode);
        }
        if solicitation.source_lladdr {
            return Err(Invalid::DetectionWithLinkLayerAddress);
        }
    }
    Ok(solicitation)
}

/// `ff02::1:ff00:0/104`, the solicited-node multicast addresses.
fn is_solicited_node(address: Ipv6Addr) -> bool {
    let o = address.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]
}

/// The solicitation in `packet` (an ICMPv6 message) by its own content.
fn parse_solicitation(packet: &[u8]) -> Result<Solicitation, Invalid> {
    match packet {
        [ND_NEIGHBOR_SOLICIT, 0, ..] => {}
        [ND_NEIGHBOR_SOLICIT, ..] => return Err(Invalid::Code),
        _ => return Err(Invalid::NotASolicitation),
    }
    let Some(octets) = packet.get(8..24) else {
        return Err(Invalid::TooShort);
    };
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(octets).map_err(|_| Invalid::TooShort)?);
    if target.is_multicast() || target.is_unspecified() {
        return Err(Invalid::Target);
    }
    let mut source_lladdr = false;
    let mut options = &packet[24..];
    while !options.is_empty() {
        let [kind, units, ..] = *options else {
            return Err(Invalid::OptionLength);
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return Err(Invalid::OptionLength);
        }
        source_lladdr |= kind == ND_OPT_SOURCE_LINKADDR;
        options = &options[len..];
    }
    Ok(Solicitation {
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

    fn received(source: Ipv6Addr, destination: Ipv6Addr, packet: &[u8]) -> Received {
        Received {
            len: packet.len(),
            source,
            destination: Some(destination),
            hop_limit: Some(255),
            ifindex: Some(7),
        }
    }

    const TARGET: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 1, 0, 0, 2);
    /// `ff02::1:ff00:2`, the target's solicited-node address.
    const SOLICITED_NODE: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);
    const ASKER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const SLLAO: [u8; 8] = [1, 1, 2, 0, 0, 0, 0, 9];

    #[test]
    fn only_valid_solicitations_for_answered_addresses_get_an_answer() {
        let answered: Answered = [(TARGET, link())].into();
        let packet = solicitation(TARGET, &SLLAO);
        let ok = received(ASKER, SOLICITED_NODE, &packet);
        assert_eq!(
            answer_for(&ok, &packet, &answered),
            Some(Answer {
                target: TARGET,
                destination: ASKER,
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
        // Duplicate address detection: to all nodes, S clear.
        let plain = solicitation(TARGET, &[]);
        let dad = received(Ipv6Addr::UNSPECIFIED, SOLICITED_NODE, &plain);
        let answer = answer_for(&dad, &plain, &answered).unwrap();
        assert_eq!((answer.destination, answer.solicited), (ALL_NODES, false));
    }

    /// RFC 4861 §7.1.1, one rule broken at a time, against a valid control
    /// of each kind (from a node, and duplicate address detection).
    #[test]
    fn each_rule_of_rfc_4861_7_1_1_is_checked() {
        let valid = solicitation(TARGET, &SLLAO);
        let from_node = received(ASKER, SOLICITED_NODE, &valid);
        let plain = solicitation(TARGET, &[]);
        let detection = received(Ipv6Addr::UNSPECIFIED, SOLICITED_NODE, &plain);
        // The controls; a node may solicit at the target's unicast address too.
        assert!(validate(&from_node, &valid).is_ok());
        assert!(validate(&received(ASKER, TARGET, &valid), &valid).is_ok());
        assert_eq!(
            validate(&detection, &plain),
            Ok(Solicitation {
                target: TARGET,
                source_lladdr: false
            })
        );

        let hop_limit = Received {
            hop_limit: Some(254),
            ..from_node.clone()
        };
        assert_eq!(validate(&hop_limit, &valid), Err(Invalid::HopLimit));
        let unknown_hop_limit = Received {
            hop_limit: None,
            ..from_node.clone()
        };
        assert_eq!(validate(&unknown_hop_limit, &valid), Err(Invalid::HopLimit));
        let mut advert = valid.clone();
        advert[0] = 136;
        assert_eq!(
            validate(&from_node, &advert),
            Err(Invalid::NotASolicitation)
        );
        let mut code = valid.clone();
        code[1] = 1;
        assert_eq!(validate(&from_node, &code), Err(Invalid::Code));
        assert_eq!(validate(&from_node, &valid[..23]), Err(Invalid::TooShort));
        let multicast = solicitation(SOLICITED_NODE, &[]);
        assert_eq!(validate(&from_node, &multicast), Err(Invalid::Target));
        let zero_length = solicitation(TARGET, &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            validate(&from_node, &zero_length),
            Err(Invalid::OptionLength)
        );
        let past_the_end = solicitation(TARGET, &[1, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            validate(&from_node, &past_the_end),
            Err(Invalid::OptionLength)
        );
        assert_eq!(
            validate(&from_node, &solicitation(TARGET, &[1])),
            Err(Invalid::OptionLength)
        );
        for destination in [TARGET, ALL_NODES, "2001:db8:1::10".parse().unwrap()] {
            let elsewhere = Received {
                destination: Some(destination),
                ..detection.clone()
            };
            assert_eq!(
                validate(&elsewhere, &plain),
                Err(Invalid::DetectionNotToSolicitedNode),
                "detection sent to {destination}"
            );
        }
        let unknown_destination = Received {
            destination: None,
            ..detection.clone()
        };
        assert_eq!(
            validate(&unknown_destination, &plain),
            Err(Invalid::DetectionNotToSolicitedNode)
        );
        let with_option = received(Ipv6Addr::UNSPECIFIED, SOLICITED_NODE, &valid);
        assert_eq!(
            validate(&with_option, &valid),
            Err(Invalid::DetectionWithLinkLayerAddress)
        );
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
