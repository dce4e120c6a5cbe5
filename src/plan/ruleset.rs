//! The `table inet dock6` ruleset. Structure (chains, rules) depends only on
//! the networks; containers only add set and map elements, so one more
//! container costs O(1) kernel work.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::egress::{EGRESS_LABEL, natted_out};

use super::guard::{self, Guard, SET_ONLINK_ENDPOINTS};
use super::mode::link_local_prefix;
use super::sets::{
    MAP_DNAT_ADDR, MAP_DNAT_ANY, MAP_EGRESS_ADDRESSES, SET_BRIDGES, SET_ICMPV6_INBOUND,
    SET_ND_TARGETS, SET_OPEN_PORTS, SET_SEALED, SET_STARTING_ADDR, SET_STARTING_ANY,
};
use super::{NaSource, NetworkPlan, Policy};
use crate::nft::{
    BaseChain, Chain, ChainKind, CtState, Direction, DnatKey, Hook, Icmpv6Type, L4Proto, Priority,
    RejectWith, Rule, StandardPriority, Statement, rule,
};

/// Forward filtering runs just before the standard `filter` priority, so
/// the accept mark is set before a user's `policy drop` chain looks at it.
pub const PRIORITY_FILTER: Priority = Priority {
    base: StandardPriority::Filter,
    offset: -5,
};
/// Published ports are DNAT'ed just before the standard `dstnat` chains.
pub const PRIORITY_DSTNAT: Priority = Priority {
    base: StandardPriority::Dstnat,
    offset: -5,
};
/// The same for locally generated traffic, where nft has no `dstnat` name.
pub const PRIORITY_OUTPUT_DNAT: Priority = Priority {
    base: StandardPriority::Number,
    offset: -105,
};
/// Masquerade runs just before the standard `srcnat` chains.
pub const PRIORITY_SRCNAT: Priority = Priority {
    base: StandardPriority::Srcnat,
    offset: -5,
};

pub const CHAIN_FORWARD: &str = "forward";
pub const CHAIN_TO_DOCKER: &str = "to_docker";
pub const CHAIN_FROM_DOCKER: &str = "from_docker";
pub const CHAIN_MARK_ACCEPT: &str = "mark_accept";
pub const CHAIN_PREROUTING: &str = "prerouting";
pub const CHAIN_OUTPUT: &str = "output";
pub const CHAIN_PUBLISHED: &str = "published";
pub const CHAIN_POSTROUTING: &str = "postrouting";
pub const CHAIN_INPUT: &str = "input";
/// With `na_source = "target"`: drops the kernel's own answers for proxied
/// addresses (dock6 answers those itself, set `nd_targets`).
pub const CHAIN_ND_ANSWERS: &str = "nd_answers";

const ESTABLISHED: [CtState; 2] = [CtState::Established, CtState::Related];

/// Whether the table has the map `egress_addresses`: whenever nat66 egress
/// is NATed out of an uplink, so that a labelled container adds map
/// elements, never a rule or a table replace.
pub(super) fn has_egress_map(uplink: Option<&str>, managed: &[&NetworkPlan]) -> bool {
    uplink.is_some() && managed.iter().any(|n| natted_out(n))
}

/// The chains of the table: a function of the networks and the host only.
pub(super) fn chains(
    config: &Policy,
    uplink: Option<&str>,
    managed: &[&NetworkPlan],
    guard: &Guard,
) -> Vec<Chain> {
    let per_container_egress = has_egress_map(uplink, managed);
    let mut chains = vec![
        guard::antispoof_chain(guard),
        forward_chain(guard),
        to_docker_chain(managed),
        from_docker_chain(managed),
        guard::to_unmanaged_chain(guard),
    ];
    if guard.docker_only {
        chains.push(guard::not_docker_chain());
    }
    chains.extend([
        mark_accept_chain(config.accept_mark),
        nat_entry_chain(CHAIN_PREROUTING, Hook::Prerouting, PRIORITY_DSTNAT),
        nat_entry_chain(CHAIN_OUTPUT, Hook::Output, PRIORITY_OUTPUT_DNAT),
        published_chain(managed),
        postrouting_chain(config, uplink, managed, guard, per_container_egress),
        input_chain(),
    ]);
    if let Some(uplink) = answers_itself_on(config, uplink) {
        chains.push(nd_answers_chain(uplink));
    }
    chains
}

/// The uplink, when dock6 answers solicitations for its proxied addresses
/// itself there (the table then has chain `nd_answers` and set `nd_targets`).
pub(super) fn answers_itself_on<'u>(config: &Policy, uplink: Option<&'u str>) -> Option<&'u str> {
    match config.na_source {
        NaSource::Target => uplink,
        NaSource::LinkLocal => None,
    }
}

fn base(kind: ChainKind, hook: Hook, priority: Priority) -> Option<BaseChain> {
    Some(BaseChain {
        kind,
        hook,
        priority,
    })
}

fn chain(name: &str, base: Option<BaseChain>, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.to_string(),
        base,
        rules,
    }
}

fn forward_chain(guard: &Guard) -> Chain {
    let mut rules = vec![
        rule().not_ipv6().comment("IPv4 is never touched").ret(),
        rule().oif_in(SET_BRIDGES).jump(CHAIN_TO_DOCKER),
        rule().iif_in(SET_BRIDGES).jump(CHAIN_FROM_DOCKER),
    ];
    rules.extend(guard::forward_tail(guard));
    chain(
        CHAIN_FORWARD,
        base(ChainKind::Filter, Hook::Forward, PRIORITY_FILTER),
        rules,
    )
}

/// Traffic into a Docker bridge. Ends in a verdict for every packet.
fn to_docker_chain(managed: &[&NetworkPlan]) -> Chain {
    let mut rules = vec![
        rule().ct_state(&ESTABLISHED).goto(CHAIN_MARK_ACCEPT),
        rule().ct_state(&[CtState::Invalid]).drop(),
        published_accept(managed),
    ];
    rules.extend(managed.iter().map(|n| icc_rule(n)));
    for n in managed.iter().filter(|n| n.internal) {
        rules.push(
            rule()
                .oifname(&n.bridge)
                .comment(format!("network {}: internal", n.name))
                .drop(),
        );
    }
    rules.push(
        rule()
            .iif_in(SET_BRIDGES)
            .comment("networks are isolated from each other")
            .drop(),
    );
    rules.extend(guard::isolation_from_other_bridges(Direction::In));
    rules.extend(inbound_rules(managed));
    chain(CHAIN_TO_DOCKER, None, rules)
}

/// DNAT'ed traffic is a published port, accepted before any isolation;
/// but not what an `nptv6` network's prefix DNAT brought in (first
/// addressed to its mapped prefix): that is filtered like routed traffic.
fn published_accept(managed: &[&NetworkPlan]) -> Rule {
    let prefixes: Vec<Ipv6Net> = mapped(managed).map(|(_, _, p)| p).collect();
    let comment = if prefixes.is_empty() {
        "published ports, before any isolation"
    } else {
        "published ports, before any isolation (not what an nptv6 prefix brought in)"
    };
    prefixes
        .into_iter()
        .fold(rule().ct_status_dnat(), |r, p| r.ct_original_daddr_not(p))
        .comment(comment)
        .goto(CHAIN_MARK_ACCEPT)
}

/// The non-internal `nptv6` networks with their subnet and mapped prefix.
fn mapped<'a>(
    managed: &'a [&'a NetworkPlan],
) -> impl Iterator<Item = (&'a NetworkPlan, Ipv6Net, Ipv6Net)> + 'a {
    managed
        .iter()
        .filter(|n| !n.internal)
        .filter_map(|n| Some((*n, *n.subnets.first()?, n.nptv6?)))
}

/// Traffic between containers of one network (through br_netfilter):
/// `com.docker.network.bridge.enable_icc` decides.
fn icc_rule(n: &NetworkPlan) -> Rule {
    let same_bridge = rule().iifname(&n.bridge).oifname(&n.bridge);
    if n.icc {
        same_bridge
            .comment(format!(
                "network {}: inter-container traffic allowed",
                n.name
            ))
            .goto(CHAIN_MARK_ACCEPT)
    } else {
        same_bridge
            .comment(format!("network {}: enable_icc=false", n.name))
            .drop()
    }
}

/// From outside: sealed containers get nothing, open ports and (where
/// containers' own addresses are reachable) essential ICMPv6 are accepted,
/// nothing else.
fn inbound_rules(managed: &[&NetworkPlan]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = mapped(managed)
        .map(|(n, _, prefix)| {
            rule()
                .oifname(&n.bridge)
                .ct_original_daddr_not(prefix)
                .comment(format!(
                    "network {}: nptv6, reachable at its mapped prefix only",
                    n.name
                ))
                .drop()
        })
        .collect();
    rules.extend([
        rule()
            .daddr_in(SET_SEALED)
            .comment("dock6.expose=false")
            .drop(),
        rule()
            .daddr_proto_port_in(SET_OPEN_PORTS)
            .goto(CHAIN_MARK_ACCEPT),
    ]);
    for n in managed
        .iter()
        .filter(|n| n.mode.addresses_reachable() && !n.internal)
    {
        rules.push(
            rule()
                .oifname(&n.bridge)
                .icmpv6_type_in(SET_ICMPV6_INBOUND)
                .comment(format!("network {}: {}", n.name, n.mode.name()))
                .goto(CHAIN_MARK_ACCEPT),
        );
    }
    for n in managed.iter().filter(|n| n.unprotected && !n.internal) {
        rules.push(
            rule()
                .oifname(&n.bridge)
                .comment(format!(
                    "network {}: gateway_mode_ipv6=nat-unprotected, every port open",
                    n.name
                ))
                .goto(CHAIN_MARK_ACCEPT),
        );
    }
    rules.push(rule().comment("nothing else reaches a container").drop());
    rules
}

/// Traffic out of a Docker bridge to anything that is not a managed bridge.
fn from_docker_chain(managed: &[&NetworkPlan]) -> Chain {
    let mut rules = vec![
        rule().ct_state(&ESTABLISHED).goto(CHAIN_MARK_ACCEPT),
        rule().ct_state(&[CtState::Invalid]).drop(),
    ];
    for n in managed.iter().filter(|n| n.internal) {
        rules.push(
            rule()
                .iifname(&n.bridge)
                .comment(format!("network {}: internal, no egress", n.name))
                .drop(),
        );
    }
    rules.extend(guard::isolation_from_other_bridges(Direction::Out));
    rules.push(rule().goto(CHAIN_MARK_ACCEPT));
    chain(CHAIN_FROM_DOCKER, None, rules)
}

/// The kernel's proxy answers a solicitation for a proxied (global)
/// address from the uplink's link-local address; some providers drop those.
/// With `na_source = "target"` dock6 answers from the target itself, and
/// the kernel's answer is dropped on its way out: an advertisement from a
/// link-local source for a target dock6 answers for (set `nd_targets`). An
/// operator's own proxy entries on the uplink are still answered by the
/// kernel, as before dock6.
fn nd_answers_chain(uplink: &str) -> Chain {
    chain(
        CHAIN_ND_ANSWERS,
        base(ChainKind::Filter, Hook::Output, PRIORITY_FILTER),
        vec![
            rule()
                .oifname(uplink)
                .icmpv6_type(Icmpv6Type::NeighborAdvert)
                .saddr(link_local_prefix())
                .nd_target_in(SET_ND_TARGETS)
                .comment(
                    "na_source = target: dock6 answers for these targets itself, from each address",
                )
                .drop(),
        ],
    )
}

fn mark_accept_chain(mark: u32) -> Chain {
    chain(
        CHAIN_MARK_ACCEPT,
        None,
        vec![
            rule()
                .statement(Statement::MarkOr(mark))
                .comment("a user's forward chain lets Docker traffic through with: meta mark & M == M accept")
                .accept(),
        ],
    )
}

fn nat_entry_chain(name: &str, hook: Hook, priority: Priority) -> Chain {
    chain(
        name,
        base(ChainKind::Nat, hook, priority),
        vec![rule().ipv6().jump(CHAIN_PUBLISHED)],
    )
}

/// Published ports, then the `nptv6` networks' mapped prefixes (for the
/// host's own traffic too: `output` jumps here as well).
/// `[::1]` and link-local destinations, which are never DNAT'ed: they
/// leave the chains of published ports.
fn never_dnated() -> [Rule; 2] {
    let loopback = Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).expect("/128 is a valid prefix");
    [
        rule()
            .daddr(loopback)
            .comment("[::1] cannot be NATed")
            .ret(),
        rule()
            .daddr(link_local_prefix())
            .comment("link-local destinations are never DNAT'ed")
            .ret(),
    ]
}

/// Connections to the host for a port a container is being started with.
/// Docker holds such a port from early in its start with a socket that
/// never accepts (its userland proxy off): a client's first connection
/// hangs there and the next are dropped in silence, until the container
/// runs and dock6 DNATs the port. Refused instead: the client tries again
/// at once, and the port answers as soon as the container does. Only the
/// ports of containers being started are in the sets; DNAT'ed traffic never
/// reaches this hook.
fn input_chain() -> Chain {
    let mut rules = vec![rule().not_ipv6().comment("IPv4 is never touched").ret()];
    rules.extend(never_dnated());
    rules.extend([
        rule()
            .l4proto(L4Proto::Tcp)
            .proto_port_in(SET_STARTING_ANY)
            .comment("a port of a container being started: refused until it is DNAT'ed")
            .statement(Statement::Reject(RejectWith::TcpReset))
            .done(),
        rule()
            .l4proto(L4Proto::Tcp)
            .daddr_proto_port_in(SET_STARTING_ADDR)
            .statement(Statement::Reject(RejectWith::TcpReset))
            .done(),
        rule()
            .proto_port_in(SET_STARTING_ANY)
            .statement(Statement::Reject(RejectWith::IcmpxPortUnreachable))
            .done(),
        rule()
            .daddr_proto_port_in(SET_STARTING_ADDR)
            .statement(Statement::Reject(RejectWith::Icmpv6PortUnreachable))
            .done(),
    ]);
    chain(
        CHAIN_INPUT,
        base(ChainKind::Filter, Hook::Input, PRIORITY_FILTER),
        rules,
    )
}

fn published_chain(managed: &[&NetworkPlan]) -> Chain {
    let mut rules = Vec::from(never_dnated());
    rules.extend([
        rule()
            .statement(Statement::DnatMap {
                key: DnatKey::AddrProtoPort,
                map: MAP_DNAT_ADDR.into(),
            })
            .done(),
        rule()
            .fib_daddr_local()
            .statement(Statement::DnatMap {
                key: DnatKey::ProtoPort,
                map: MAP_DNAT_ANY.into(),
            })
            .done(),
    ]);
    for (n, subnet, prefix) in mapped(managed) {
        rules.push(
            rule()
                .daddr(prefix)
                .statement(Statement::DnatPrefix(subnet))
                .comment(format!(
                    "network {}: nptv6, mapped prefix → its subnet",
                    n.name
                ))
                .done(),
        );
    }
    chain(CHAIN_PUBLISHED, None, rules)
}

fn postrouting_chain(
    config: &Policy,
    uplink: Option<&str>,
    managed: &[&NetworkPlan],
    guard: &Guard,
    per_container_egress: bool,
) -> Chain {
    let mut rules = Vec::new();
    for n in managed.iter().filter(|n| !n.internal) {
        for subnet in &n.subnets {
            // No `iifname` in postrouting (the kernel has no input device
            // there): the antispoof chain has already dropped packets from
            // outside with a source in this subnet; where the subnet covers a
            // link prefix and so also holds other nodes' addresses, only
            // containers' own addresses are taken for hairpin.
            let mut hairpin = rule().oifname(&n.bridge).saddr(*subnet);
            if guard.link_covering.contains(&n.name) {
                hairpin = hairpin.saddr_in(SET_ONLINK_ENDPOINTS);
            }
            rules.push(
                hairpin
                    .ct_status_dnat()
                    .statement(Statement::Masquerade)
                    .comment(format!("network {}: hairpin to a published port", n.name))
                    .done(),
            );
        }
    }
    if let Some(uplink) = uplink {
        for (n, subnet, prefix) in mapped(managed) {
            rules.push(
                rule()
                    .oifname(uplink)
                    .saddr(subnet)
                    .statement(Statement::SnatPrefix(prefix))
                    .comment(format!(
                        "network {}: nptv6, its subnet → mapped prefix",
                        n.name
                    ))
                    .done(),
            );
        }
        if per_container_egress {
            rules.push(
                rule()
                    .oifname(uplink)
                    .statement(Statement::SnatBySaddrMap {
                        map: MAP_EGRESS_ADDRESSES.into(),
                    })
                    .comment(format!(
                        "{EGRESS_LABEL}: a container's own source (containers not in the map fall through)"
                    ))
                    .done(),
            );
        }
        for n in managed.iter().filter(|n| natted_out(n)) {
            for subnet in &n.subnets {
                let nat = match config.egress_address {
                    Some(addr) => Statement::Snat(addr),
                    None => Statement::Masquerade,
                };
                rules.push(
                    rule()
                        .oifname(uplink)
                        .saddr(*subnet)
                        .statement(nat)
                        .comment(format!("network {}: nat66", n.name))
                        .done(),
                );
            }
        }
    }
    chain(
        CHAIN_POSTROUTING,
        base(ChainKind::Nat, Hook::Postrouting, PRIORITY_SRCNAT),
        rules,
    )
}
