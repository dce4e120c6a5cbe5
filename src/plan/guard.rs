//! What keeps dock6 closed where it does not manage, and honest where it
//! does: every Docker bridge guarded (also those the plan does not manage or
//! has not seen yet), sources checked before any NAT, and forwarding that
//! dock6 itself turned on limited to Docker traffic.
//!
//! Docker's bridges are known exactly: the ones Docker lists, and, until
//! Docker lists them, interfaces with a name Docker itself gives (`docker0`,
//! `br-` and 12 hex digits of a network id). The kernel can only match a
//! name prefix (`br-*`), so the host's other interfaces with that prefix
//! (a router's `br-lan`, OpenStack's `br-ex`) are excluded by name through
//! the set `operator_bridges`: dock6 never touches them.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::host::Others;
use super::mode::link_local_prefix;
use super::ports::ContainerPlan;
use super::{Mode, NetworkPlan};
use crate::nft::{
    BaseChain, Chain, ChainKind, CtState, Direction, Hook, Priority, Rule, RuleBuilder,
    StandardPriority, rule,
};
use crate::snapshot::HostFacts;

/// Source checks run before conntrack (-200) and DNAT: a forged packet is
/// dropped before it costs a conntrack entry or is translated.
pub const PRIORITY_ANTISPOOF: Priority = Priority {
    base: StandardPriority::Raw,
    offset: 10,
};

pub const SET_UNMANAGED: &str = "unmanaged";
pub const SET_UNFILTERED: &str = "unfiltered";
pub const SET_ONLINK_ENDPOINTS: &str = "onlink_endpoints";
/// The host's interfaces whose names begin like a Docker bridge's (`br-`)
/// but are neither listed by Docker nor named as Docker names bridges.
pub const SET_OPERATOR_BRIDGES: &str = "operator_bridges";

pub const CHAIN_ANTISPOOF: &str = "antispoof";
pub const CHAIN_TO_UNMANAGED: &str = "to_unmanaged";
/// Its presence in the kernel is also the record that dock6 turned
/// forwarding on (it was 0): that outlives a restart of dock6.
pub const CHAIN_NOT_DOCKER: &str = "not_docker";

/// Bridges Docker may create without dock6 having seen them yet: the names
/// Docker gives the default bridge and user networks, as nft can match them
/// (a trailing `*` is a prefix match; see [`unseen_docker_bridges`]).
const DOCKER_BRIDGE_PATTERNS: [&str; 2] = ["docker0", "br-*"];
const DOCKER_BRIDGE_PREFIX: &str = "br-";
/// Docker names a user network's bridge `br-` and the first 12 hex digits
/// of the network's id.
const DOCKER_BRIDGE_ID_DIGITS: usize = 12;

/// What the guards are built from, besides the managed networks.
pub(super) struct Guard {
    /// Bridges of Docker networks dock6 does not manage (`off`, IPv4-only).
    pub unmanaged: Vec<String>,
    /// Bridges of `unfiltered` networks.
    pub unfiltered: Vec<String>,
    /// Every Docker IPv6 network (any mode), for the source checks.
    pub ipv6_networks: Vec<NetworkPlan>,
    /// Subnets whose sources never arrive from outside.
    pub foreign_subnets: Vec<(String, Ipv6Net)>,
    /// Networks with a subnet that covers a link prefix of the host, where
    /// the subnet as a whole also holds other nodes' addresses: only
    /// containers' own addresses (the set `onlink_endpoints`, see
    /// [`onlink_endpoints`]) can be checked there.
    pub link_covering: BTreeSet<String>,
    /// dock6 turns (or turned) forwarding on: it forwards Docker traffic only.
    pub docker_only: bool,
    /// The host's interfaces that `br-*` would take for Docker's.
    pub operator_bridges: Vec<String>,
    /// Bridges of `off` networks: their own subnets' traffic stays on them.
    pub off_bridges: Vec<String>,
}

impl Guard {
    pub fn new(host: &HostFacts, networks: &[NetworkPlan], closed_bridges: &[String]) -> Guard {
        let links = link_prefixes(host, networks, closed_bridges);
        // A subnet that covers a whole link prefix also holds other nodes'
        // addresses (the router's, the host's): only containers' own
        // addresses can be checked there.
        let (covering, foreign): (Vec<_>, Vec<_>) = networks
            .iter()
            .flat_map(|n| n.subnets.iter().map(move |s| (n.name.clone(), *s)))
            .partition(|(_, s)| links.iter().any(|p| s.contains(p)));
        let link_covering: BTreeSet<String> = covering.into_iter().map(|(n, _)| n).collect();
        let bridges_of = |mode: Mode| {
            networks
                .iter()
                .filter(move |n| n.mode == mode)
                .map(|n| n.bridge.clone())
        };
        Guard {
            operator_bridges: operator_bridges(host, networks, closed_bridges),
            off_bridges: bridges_of(Mode::Off).collect(),
            unmanaged: bridges_of(Mode::Off)
                .chain(closed_bridges.iter().cloned())
                .collect(),
            unfiltered: bridges_of(Mode::Unfiltered).collect(),
            ipv6_networks: networks.to_vec(),
            foreign_subnets: foreign,
            link_covering,
            // Only when dock6 is about to turn it on (or did): the chain
            // counts as a record of that too, which must not lie.
            docker_only: host.forwarding_enabled_by_dock6
                || (host.forwarding == Some(0) && networks.iter().any(|n| n.mode.forwards())),
        }
    }
}

/// A container's addresses on networks whose subnet covers a link prefix
/// (`link_covering`), for the set `onlink_endpoints`; an address that is
/// someone else's (a container claiming the router's address) is left out,
/// so it cannot cut the host off from the real router.
pub(super) fn onlink_endpoints(
    container: &ContainerPlan,
    link_covering: &BTreeSet<String>,
    others: &Others,
) -> Vec<Ipv6Addr> {
    container
        .endpoints
        .iter()
        .filter(|e| link_covering.contains(&e.network))
        .map(|e| e.address)
        .filter(|a| others.claim(*a).is_none())
        .collect()
}

/// On-link prefixes of the host's interfaces that are not Docker bridges.
fn link_prefixes(
    host: &HostFacts,
    networks: &[NetworkPlan],
    closed_bridges: &[String],
) -> Vec<Ipv6Net> {
    host.interfaces
        .iter()
        .filter(|i| !is_docker_bridge(&i.name, networks, closed_bridges))
        .flat_map(|i| i.onlink_prefixes.iter().copied())
        .collect()
}

/// A bridge Docker lists, or one with a name Docker gives bridges.
fn is_docker_bridge(name: &str, networks: &[NetworkPlan], closed_bridges: &[String]) -> bool {
    docker_made_bridge_name(name)
        || networks.iter().any(|n| n.bridge == name)
        || closed_bridges.iter().any(|b| b == name)
}

/// Whether Docker itself names bridges this way: `docker0`, or `br-` and
/// the first 12 (lowercase) hex digits of a network's id.
pub fn docker_made_bridge_name(name: &str) -> bool {
    name == "docker0"
        || name.strip_prefix(DOCKER_BRIDGE_PREFIX).is_some_and(|id| {
            id.len() == DOCKER_BRIDGE_ID_DIGITS
                && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// The host's interfaces that `br-*` would take for a Docker bridge but
/// that are not one (the operator's `br-lan`), sorted.
fn operator_bridges(
    host: &HostFacts,
    networks: &[NetworkPlan],
    closed_bridges: &[String],
) -> Vec<String> {
    let mut names: Vec<String> = host
        .interfaces
        .iter()
        .map(|i| &i.name)
        .filter(|name| name.starts_with(DOCKER_BRIDGE_PREFIX))
        .filter(|name| !is_docker_bridge(name, networks, closed_bridges))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The same before Docker has listed anything: by name alone.
pub(super) fn host_operator_bridges(host: &HostFacts) -> Vec<String> {
    operator_bridges(host, &[], &[])
}

/// `docker0`, and `br-*` that is not one of the operator's bridges: a Docker
/// bridge, by the names Docker gives them, that dock6 may not have seen yet.
fn unseen_docker_bridges(dir: Direction) -> [RuleBuilder; 2] {
    let [default_bridge, user_bridges] = DOCKER_BRIDGE_PATTERNS;
    match dir {
        Direction::In => [
            rule().iifname(default_bridge),
            rule()
                .iifname(user_bridges)
                .iif_not_in(SET_OPERATOR_BRIDGES),
        ],
        Direction::Out => [
            rule().oifname(default_bridge),
            rule()
                .oifname(user_bridges)
                .oif_not_in(SET_OPERATOR_BRIDGES),
        ],
    }
}

/// After the jumps for managed bridges: unfiltered bridges are the
/// operator's; any other Docker bridge is closed from outside and sealed
/// (nothing it sends leaves for an interface that is not a Docker bridge);
/// when dock6 turned forwarding on, nothing but Docker traffic is forwarded.
/// Every packet to a Docker bridge has its verdict before the seal, so the
/// seal sees only what leaves Docker's bridges for other interfaces.
pub(super) fn forward_tail(guard: &Guard) -> Vec<Rule> {
    let mut rules = vec![
        rule()
            .oif_in(SET_UNFILTERED)
            .comment("mode unfiltered: the operator's own rules decide")
            .accept(),
        rule()
            .oif_in(SET_UNMANAGED)
            .comment("Docker bridges dock6 does not manage")
            .jump(CHAIN_TO_UNMANAGED),
    ];
    rules.extend(unseen_docker_bridges(Direction::Out).map(|r| {
        r.comment("a Docker bridge not seen yet")
            .jump(CHAIN_TO_UNMANAGED)
    }));
    rules.push(rule().iif_in(SET_UNFILTERED).accept());
    rules.push(
        rule()
            .iif_in(SET_UNMANAGED)
            .comment("nothing a Docker bridge dock6 does not manage sends is forwarded")
            .drop(),
    );
    rules.extend(unseen_docker_bridges(Direction::In).map(RuleBuilder::drop));
    if guard.docker_only {
        rules.push(rule().goto(CHAIN_NOT_DOCKER));
    }
    rules
}

/// Into a Docker bridge dock6 does not manage: replies, and a network's own
/// traffic on its bridge (which reaches the forward hook through
/// br_netfilter); nothing new from outside or from another bridge. A
/// link-local or unspecified source is never routed, so such a packet
/// comes from the same bridge.
pub(super) fn to_unmanaged_chain(guard: &Guard) -> Chain {
    let unspecified = Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 128).expect("/128 is a valid prefix");
    let mut rules = vec![
        rule()
            .ct_state(&[CtState::Established, CtState::Related])
            .accept(),
        rule().saddr(link_local_prefix()).accept(),
        rule().saddr(unspecified).accept(),
    ];
    rules.extend(
        guard
            .off_bridges
            .iter()
            .map(|b| rule().iifname(b).oifname(b).accept()),
    );
    rules.push(
        rule()
            .comment("not managed by dock6: nothing new from outside or from another bridge")
            .drop(),
    );
    Chain {
        name: CHAIN_TO_UNMANAGED.to_string(),
        base: None,
        rules,
    }
}

/// Between a managed network and any other Docker bridge (networks are
/// isolated from each other): in `from_docker` by the output bridge
/// (`Direction::Out`), in `to_docker` by the input bridge (`Direction::In`).
pub(super) fn isolation_from_other_bridges(dir: Direction) -> Vec<Rule> {
    let by_set = |set: &str| match dir {
        Direction::In => rule().iif_in(set),
        Direction::Out => rule().oif_in(set),
    };
    let mut rules = vec![
        by_set(SET_UNMANAGED)
            .comment("isolated from the Docker bridges dock6 does not manage")
            .drop(),
        by_set(SET_UNFILTERED).drop(),
    ];
    rules.extend(unseen_docker_bridges(dir).map(RuleBuilder::drop));
    rules
}

pub(super) fn not_docker_chain() -> Chain {
    Chain {
        name: CHAIN_NOT_DOCKER.to_string(),
        base: None,
        rules: vec![
            rule()
                .comment(
                    "forwarding was off until dock6 turned it on: only Docker traffic is forwarded",
                )
                .drop(),
        ],
    }
}

/// Source checks before DNAT: a packet from a bridge carries an address of
/// that network; a packet from anywhere else carries none of a Docker
/// network's; the bridge of an IPv4-only or refused network brings no other
/// source at all, so a container there cannot send IPv6 from an address of
/// its choosing. A Docker bridge not seen yet has no known subnet: what it
/// sends is not forwarded (see [`forward_tail`]), but it may still answer
/// the host. Link-local and unspecified sources (neighbour discovery, DAD)
/// are never forwarded and pass; so does the host's own traffic to itself.
pub(super) fn antispoof_chain(guard: &Guard) -> Chain {
    let unspecified = Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 128).expect("/128 is a valid prefix");
    let link_local = link_local_prefix();
    let mut rules = vec![
        rule().not_ipv6().comment("IPv4 is never touched").ret(),
        rule().saddr(unspecified).ret(),
        rule().saddr(link_local).ret(),
        rule()
            .iifname("lo")
            .comment("the host's own traffic to itself")
            .ret(),
    ];
    for n in &guard.ipv6_networks {
        for s in &n.subnets {
            rules.push(rule().iifname(&n.bridge).saddr(*s).ret());
        }
        rules.push(
            rule()
                .iifname(&n.bridge)
                .comment(format!("network {}: no source outside its subnets", n.name))
                .drop(),
        );
    }
    rules.push(
        rule()
            .iif_in(SET_UNMANAGED)
            .comment("IPv4-only and refused networks: link-local sources only")
            .drop(),
    );
    for (name, subnet) in &guard.foreign_subnets {
        rules.push(
            rule()
                .saddr(*subnet)
                .comment(format!(
                    "network {name}: its sources never arrive from outside"
                ))
                .drop(),
        );
    }
    rules.push(
        rule()
            .saddr_in(SET_ONLINK_ENDPOINTS)
            .comment("containers' own addresses never arrive from outside")
            .drop(),
    );
    Chain {
        name: CHAIN_ANTISPOOF.to_string(),
        base: Some(BaseChain {
            kind: ChainKind::Filter,
            hook: Hook::Prerouting,
            priority: PRIORITY_ANTISPOOF,
        }),
        rules,
    }
}
