//! Which mode a network gets. Precedence: config file > `dock6.mode` label >
//! Docker's own `gateway_mode_ipv6` (Docker ≥ 27) > automatic.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::{Mode, Note, Policy};
use crate::snapshot::{Interface, Network};
use crate::text::quoted;

pub const MODE_LABEL: &str = "dock6.mode";
/// A network label naming the prefix an `nptv6` network is mapped onto; on
/// its own it also chooses mode `nptv6` (at the label's precedence).
pub const NPTV6_PREFIX_LABEL: &str = "dock6.nptv6-prefix";
/// Docker ≥ 27's per-network choice of how IPv6 reaches the containers.
pub const GATEWAY_MODE_OPTION: &str = "com.docker.network.bridge.gateway_mode_ipv6";

/// What Docker's `gateway_mode_ipv6` asks for, as Docker documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayMode {
    /// `nat`: NAT66 (even on a global subnet), no direct access.
    Nat,
    /// `nat-unprotected`: NAT66, and every port open at the containers' own
    /// addresses (Docker drops no direct access).
    NatUnprotected,
    /// `routed`: no NAT; published container ports open at their addresses.
    Routed,
    /// `isolated`: no way in or out (as `--internal`).
    Isolated,
}

impl GatewayMode {
    pub fn of(network: &Network) -> Option<GatewayMode> {
        match network.options.get(GATEWAY_MODE_OPTION)?.trim() {
            "nat" => Some(GatewayMode::Nat),
            "nat-unprotected" => Some(GatewayMode::NatUnprotected),
            "routed" => Some(GatewayMode::Routed),
            "isolated" => Some(GatewayMode::Isolated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSource {
    Config,
    Label,
    /// Docker's `gateway_mode_ipv6` option.
    Docker,
    Automatic,
}

impl ModeSource {
    pub fn name(self) -> &'static str {
        match self {
            ModeSource::Config => "config",
            ModeSource::Label => "label",
            ModeSource::Docker => "gateway_mode_ipv6",
            ModeSource::Automatic => "automatic",
        }
    }
}

pub(super) fn choose_mode(
    config: &Policy,
    network: &Network,
    subnets: &[Ipv6Net],
    uplink: Option<&Interface>,
    notes: &mut Vec<Note>,
) -> (Mode, ModeSource) {
    if let Some(mode) = config.network_modes.get(&network.name) {
        if let Some(label) = network.labels.get(MODE_LABEL) {
            notes.push(Note::info(format!(
                "network {}: config mode {} overrides label {MODE_LABEL}={}",
                quoted(&network.name),
                mode.name(),
                quoted(label)
            )));
        }
        return (*mode, ModeSource::Config);
    }
    let onlink = uplink.map(|u| u.onlink_prefixes.as_slice()).unwrap_or(&[]);
    if let Some(label) = network.labels.get(MODE_LABEL) {
        match Mode::parse(label) {
            Some(Mode::NdpProxy) if !inside_onlink(subnets, onlink) => notes.push(Note::warn(format!(
                "network {}: label {MODE_LABEL}=ndp-proxy refused: its subnet is not inside an on-link prefix of the uplink; choosing automatically",
                quoted(&network.name)
            ))),
            Some(mode) => return (mode, ModeSource::Label),
            None => notes.push(Note::warn(format!(
                "network {}: label {MODE_LABEL}={} is not one of nat66, ndp-proxy, routed, nptv6, off, unfiltered; choosing automatically",
                quoted(&network.name),
                quoted(label)
            ))),
        }
    } else if network.labels.contains_key(NPTV6_PREFIX_LABEL) {
        return (Mode::Nptv6, ModeSource::Label);
    }
    let automatic = (automatic_mode(subnets, onlink), ModeSource::Automatic);
    match GatewayMode::of(network) {
        Some(GatewayMode::Nat | GatewayMode::NatUnprotected) => (Mode::Nat66, ModeSource::Docker),
        // No NAT, reachable at the containers' own addresses. Inside an on-link prefix the
        // upstream router asks for those addresses by neighbour solicitation, which only a
        // proxy entry answers: Docker routes them but cannot make them reachable there.
        Some(GatewayMode::Routed) if inside_onlink(subnets, onlink) => {
            (Mode::NdpProxy, ModeSource::Docker)
        }
        Some(GatewayMode::Routed) => (Mode::Routed, ModeSource::Docker),
        // Closed whatever the mode (see `NetworkPlan::internal`).
        Some(GatewayMode::Isolated) => automatic,
        None => {
            if let Some(value) = network.options.get(GATEWAY_MODE_OPTION) {
                notes.push(Note::warn(format!(
                    "network {}: option {GATEWAY_MODE_OPTION}={} is not nat, nat-unprotected, routed or isolated; choosing automatically",
                    quoted(&network.name),
                    quoted(value)
                )));
            }
            automatic
        }
    }
}

/// Whether the network's first IPv6 subnet lies inside an on-link prefix:
/// only then can the upstream router reach its containers by proxied NDP.
fn inside_onlink(subnets: &[Ipv6Net], onlink: &[Ipv6Net]) -> bool {
    subnets
        .first()
        .is_some_and(|s| onlink.iter().any(|p| p.contains(s)))
}

/// ULA → nat66; inside an on-link prefix of the uplink → ndp-proxy; any
/// other global prefix → routed. Decided on the network's first IPv6 subnet.
pub fn automatic_mode(subnets: &[Ipv6Net], onlink: &[Ipv6Net]) -> Mode {
    let Some(subnet) = subnets.first() else {
        return Mode::Off;
    };
    if is_ula(subnet) {
        Mode::Nat66
    } else if is_link_local(subnet) {
        Mode::Off
    } else if inside_onlink(subnets, onlink) {
        Mode::NdpProxy
    } else {
        Mode::Routed
    }
}

pub fn is_ula(net: &Ipv6Net) -> bool {
    net.addr().segments()[0] & 0xfe00 == 0xfc00
}

/// A global unicast prefix: not link-local, unique-local, multicast or in
/// ::/8 — what a provider hands out, and the only thing a mapping follows.
pub fn is_global_unicast(net: &Ipv6Net) -> bool {
    let first = net.addr().segments()[0];
    !is_ula(net) && !is_link_local(net) && first & 0xff00 != 0xff00 && first & 0xff00 != 0
}

pub fn is_link_local(net: &Ipv6Net) -> bool {
    net.addr().is_unicast_link_local()
}

/// fe80::/10, as a prefix to match on.
pub fn link_local_prefix() -> Ipv6Net {
    Ipv6Net::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10).expect("/10 is a valid prefix")
}

/// 6to4 (2002::/16): routable only through relays that mostly no longer exist.
pub fn is_6to4(net: &Ipv6Net) -> bool {
    net.addr().segments()[0] == 0x2002
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn automatic_modes() {
        let onlink = [net("2001:db8:1::/64")];
        assert_eq!(automatic_mode(&[net("fd00:1::/64")], &onlink), Mode::Nat66);
        assert_eq!(
            automatic_mode(&[net("2001:db8:1:0:1::/80")], &onlink),
            Mode::NdpProxy
        );
        assert_eq!(
            automatic_mode(&[net("2001:db8:1::/64")], &onlink),
            Mode::NdpProxy
        );
        assert_eq!(
            automatic_mode(&[net("2001:db8:2::/64")], &onlink),
            Mode::Routed
        );
        assert_eq!(
            automatic_mode(&[net("2001:db8::/48")], &onlink),
            Mode::Routed
        );
        assert_eq!(automatic_mode(&[net("fe80::/64")], &onlink), Mode::Off);
        assert_eq!(automatic_mode(&[], &onlink), Mode::Off);
    }
}
