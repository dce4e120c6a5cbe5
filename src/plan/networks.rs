//! Which Docker networks dock6 manages, and how.

use std::collections::BTreeSet;

use super::mode::{GatewayMode, ModeSource, choose_mode, is_6to4};
use ipnet::Ipv6Net;

use super::{Mode, NetworkPlan, Note, Policy, PrefixSource, nptv6};
use crate::snapshot::{Interface, Network, Snapshot};
use crate::text::quoted;

const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";

/// What the snapshot says of Docker's bridges.
pub(super) struct Networks {
    /// Every IPv6 bridge network, sorted by name, with its mode (`off` ones
    /// included: the ruleset keeps them closed).
    pub plans: Vec<NetworkPlan>,
    /// Bridges of Docker bridge networks without IPv6, or whose IPv6
    /// subnets dock6 refuses: it gives them nothing and keeps inbound IPv6
    /// forwarding to them closed.
    pub closed_bridges: Vec<String>,
}

/// Sorts Docker's networks into IPv6 bridge networks with a mode and
/// IPv4-only bridges. Other drivers are skipped with a note.
pub(super) fn managed_networks(
    config: &Policy,
    snapshot: &Snapshot,
    uplink: Option<&Interface>,
    notes: &mut Vec<Note>,
) -> Networks {
    let mut networks: Vec<&Network> = snapshot.networks.iter().collect();
    networks.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let mut seen_bridges = BTreeSet::new();
    let mut out = Networks {
        plans: Vec::new(),
        closed_bridges: Vec::new(),
    };
    for network in networks {
        let Some(bridge) = own_bridge(network, &mut seen_bridges, notes) else {
            continue;
        };
        let subnets = network.ipv6_subnets();
        if subnets.is_empty() {
            notes.push(Note::info(format!(
                "network {}: no IPv6 subnet; inbound IPv6 forwarding to {bridge} stays closed",
                quoted(&network.name)
            )));
            out.closed_bridges.push(bridge);
            continue;
        }
        if let Some(why) = refused_subnets(&subnets, &out.plans) {
            notes.push(Note::warn(format!(
                "network {}: {why}; refused: nothing is planned for it and inbound IPv6 forwarding to {bridge} stays closed",
                quoted(&network.name)
            )));
            out.closed_bridges.push(bridge);
            continue;
        }
        let plan = network_plan(config, network, bridge.clone(), subnets, uplink, notes);
        let plan = closed_if_on_former_prefix(plan, snapshot, uplink, notes);
        match with_mapped_prefix(plan, config, network, snapshot, uplink, &out.plans, notes) {
            Ok(plan) => out.plans.push(plan),
            Err(why) => {
                notes.push(Note::warn(format!(
                    "network {}: {why}; refused: nothing is planned for it and inbound IPv6 forwarding to {bridge} stays closed",
                    quoted(&network.name)
                )));
                out.closed_bridges.push(bridge);
            }
        }
    }

    for name in config.network_modes.keys() {
        if !snapshot.networks.iter().any(|n| &n.name == name) {
            notes.push(Note::info(format!(
                "config names network {name:?}, which Docker does not have"
            )));
        }
    }
    out
}

/// Shortest IPv6 subnet dock6 plans for: anything shorter (`::/0` from
/// odd data) would open or source-check far more than one Docker network.
const MIN_PREFIX_LEN: u8 = 48;

/// Why a network's IPv6 subnets cannot be taken as they are, if so: one
/// shorter than /48, one in a range no container network can hold, or one
/// overlapping a network already planned (Docker
/// refuses overlapping pools, so this is stale or odd data).
fn refused_subnets(subnets: &[Ipv6Net], planned: &[NetworkPlan]) -> Option<String> {
    if let Some(s) = subnets.iter().find(|s| s.prefix_len() < MIN_PREFIX_LEN) {
        return Some(format!(
            "its IPv6 subnet {s} is shorter than /{MIN_PREFIX_LEN}"
        ));
    }
    if let Some((s, why)) = subnets
        .iter()
        .find_map(|s| special_range(s).map(|w| (s, w)))
    {
        return Some(format!("its IPv6 subnet {s} {why}"));
    }
    let overlaps = |a: &Ipv6Net, b: &Ipv6Net| a.contains(&b.network()) || b.contains(&a.network());
    for s in subnets {
        for other in planned {
            if let Some(o) = other.subnets.iter().find(|o| overlaps(s, o)) {
                return Some(format!(
                    "its IPv6 subnet {s} overlaps network {}'s {o}",
                    quoted(&other.name)
                ));
            }
        }
    }
    None
}

/// Ranges no container network can hold: their addresses are not a
/// container's to be reached at (or proxied, or DNAT'ed to).
fn special_range(s: &Ipv6Net) -> Option<&'static str> {
    let first = s.addr().segments()[0];
    if first & 0xff00 == 0 {
        Some("is in ::/8 (unspecified, loopback, IPv4-mapped or -compatible addresses)")
    } else if first & 0xff00 == 0xff00 {
        Some("is multicast")
    } else {
        None
    }
}

/// The network's Linux bridge, unless it is not a bridge network or its
/// bridge is already another network's (stale data): skipped with a note.
fn own_bridge(
    network: &Network,
    seen: &mut BTreeSet<String>,
    notes: &mut Vec<Note>,
) -> Option<String> {
    if network.driver != "bridge" {
        notes.push(Note::info(format!(
            "skipped network {}: driver {} (only bridge networks are managed)",
            quoted(&network.name),
            quoted(&network.driver)
        )));
        return None;
    }
    let bridge = network.bridge_name();
    if !seen.insert(bridge.clone()) {
        notes.push(Note::warn(format!(
            "skipped network {}: bridge {} already belongs to another network",
            quoted(&network.name),
            quoted(&bridge)
        )));
        return None;
    }
    Some(bridge)
}

/// Mode `nptv6` needs its mapped prefix; a network that cannot have one is
/// refused (`Err` says why). One that follows the host's prefix while the
/// host has none is closed, as mode `off`, until it has one.
fn with_mapped_prefix(
    mut plan: NetworkPlan,
    config: &Policy,
    network: &Network,
    snapshot: &Snapshot,
    uplink: Option<&Interface>,
    planned: &[NetworkPlan],
    notes: &mut Vec<Note>,
) -> Result<NetworkPlan, String> {
    if plan.mode != Mode::Nptv6 {
        return Ok(plan);
    }
    let source = nptv6::prefix_source(config, network)?;
    plan.nptv6_source = Some(source);
    plan.nptv6 = nptv6::mapped_prefix(source, &plan.subnets, uplink, snapshot, planned)?;
    if plan.nptv6.is_none() {
        let has = match source {
            PrefixSource::Delegated => "no prefix is delegated to the host",
            _ => "the uplink has no global prefix",
        };
        notes.push(Note::warn(format!(
            "network {}: nptv6 prefix = {}: {has} now; closed (as mode off) until there is one",
            quoted(&network.name),
            quoted(&source.to_string())
        )));
        plan.mode = Mode::Off;
    }
    Ok(plan)
}

/// An `ndp-proxy` or `routed` network whose subnet lies inside a prefix the
/// host had earlier in this run and no longer has (the provider renumbered)
/// cannot be followed: Docker owns the subnet. Closed (as mode `off`, so no
/// proxy entries and nothing forwarded), with a warning that says how to
/// follow the provider instead.
fn closed_if_on_former_prefix(
    mut plan: NetworkPlan,
    snapshot: &Snapshot,
    uplink: Option<&Interface>,
    notes: &mut Vec<Note>,
) -> NetworkPlan {
    if !matches!(plan.mode, Mode::NdpProxy | Mode::Routed) {
        return plan;
    }
    let Some(subnet) = plan.subnets.first() else {
        return plan;
    };
    let host = &snapshot.host;
    let current = uplink
        .map(|u| u.onlink_prefixes.as_slice())
        .unwrap_or(&[])
        .iter()
        .chain(&host.delegated_prefixes);
    if current.clone().any(|p| p.contains(subnet)) {
        return plan;
    }
    let Some(former) = host.former_prefixes.iter().find(|p| p.contains(subnet)) else {
        return plan;
    };
    notes.push(Note::warn(format!(
        "network {}: its subnet {subnet} lies inside {former}, a prefix the host no longer has (renumbered by the provider?); dock6 cannot renumber a Docker subnet, so the network is closed (mode {} stopped: no proxy entries, nothing forwarded). To follow the provider's prefix, give the network a ULA subnet with mode nptv6 and prefix = \"uplink\" (or \"delegated\")",
        quoted(&plan.name),
        plan.mode.name()
    )));
    plan.mode = Mode::Off;
    plan
}

fn network_plan(
    config: &Policy,
    network: &Network,
    bridge: String,
    subnets: Vec<Ipv6Net>,
    uplink: Option<&Interface>,
    notes: &mut Vec<Note>,
) -> NetworkPlan {
    let (mode, mode_source) = choose_mode(config, network, &subnets, uplink, notes);
    if mode == Mode::Routed && subnets.iter().any(is_6to4) {
        notes.push(Note::warn(format!(
            "network {}: subnet in 6to4 space (2002::/16) is unlikely to be routable",
            quoted(&network.name)
        )));
    }
    if mode == Mode::Unfiltered {
        notes.push(Note::warn(format!(
            "network {}: mode unfiltered: dock6 neither filters nor NATs it; the operator's own rules must",
            quoted(&network.name)
        )));
    }
    NetworkPlan {
        name: network.name.clone(),
        bridge,
        subnets,
        mode,
        mode_source,
        icc: bool_option(network, OPT_ICC, true, false, notes),
        masquerade: bool_option(network, OPT_MASQUERADE, true, true, notes),
        internal: network.internal || GatewayMode::of(network) == Some(GatewayMode::Isolated),
        unprotected: mode == Mode::Nat66
            && mode_source == ModeSource::Docker
            && GatewayMode::of(network) == Some(GatewayMode::NatUnprotected),
        nptv6: None,
        nptv6_source: None,
    }
}

/// A Docker boolean option; a value Docker would not accept falls back to
/// `on_error` (the closed choice) with a warning.
fn bool_option(
    network: &Network,
    key: &str,
    default: bool,
    on_error: bool,
    notes: &mut Vec<Note>,
) -> bool {
    network.bool_option(key, default).unwrap_or_else(|bad| {
        notes.push(Note::warn(format!(
            "network {}: option {key}={} is not true/false; using {on_error}",
            quoted(&network.name),
            quoted(&bad)
        )));
        on_error
    })
}
