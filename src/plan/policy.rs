//! What the operator decides for the planner: the planner's whole input
//! besides the Docker snapshot and host facts. The config file holds it (with
//! the loop's own settings), so the planner never depends on the config.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

/// The mark bit dock6 ORs into what it accepts, so a user's `policy drop`
/// forward chain can let Docker traffic through with one line.
pub const DEFAULT_ACCEPT_MARK: u32 = 0x0400_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Interface facing the upstream router; default: the IPv6 default route's.
    pub uplink: Option<String>,
    /// Source address for NAT66 (instead of masquerade's choice).
    pub egress_address: Option<Ipv6Addr>,
    pub accept_mark: u32,
    /// Per-network mode overrides, by Docker network name.
    pub network_modes: BTreeMap<String, Mode>,
    /// Where an `nptv6` network's mapped prefix comes from, by Docker
    /// network name (else the network's `dock6.nptv6-prefix` label).
    pub network_prefixes: BTreeMap<String, PrefixSource>,
    /// The source of the neighbour advertisements for proxied addresses.
    pub na_source: NaSource,
}

/// Where an `nptv6` network's mapped prefix comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrefixSource {
    /// A prefix of its own, as long as the network's subnet.
    Fixed(Ipv6Net),
    /// The uplink's current global on-link prefix: the one the provider
    /// announces, followed when it changes.
    Uplink,
    /// The prefix currently delegated to the host (DHCPv6 prefix
    /// delegation), followed when it changes.
    Delegated,
}

impl PrefixSource {
    /// `uplink`, `delegated` or a prefix like `2001:db8:5::/64` (no host bits).
    pub fn parse(text: &str) -> Result<PrefixSource, String> {
        match text.trim() {
            "uplink" => return Ok(PrefixSource::Uplink),
            "delegated" => return Ok(PrefixSource::Delegated),
            _ => {}
        }
        let net: Ipv6Net = text.trim().parse().map_err(|_| {
            format!(
                "{text:?} is not \"uplink\", \"delegated\" or an IPv6 prefix like \"2001:db8:5::/64\""
            )
        })?;
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has host bits set (the prefix is {})",
                net.trunc()
            ));
        }
        Ok(PrefixSource::Fixed(net))
    }

    /// Whether the prefix follows the host's (changes without a config change).
    pub fn follows_host(self) -> bool {
        !matches!(self, PrefixSource::Fixed(_))
    }
}

impl std::fmt::Display for PrefixSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrefixSource::Fixed(p) => write!(f, "{p}"),
            PrefixSource::Uplink => f.write_str("uplink"),
            PrefixSource::Delegated => f.write_str("delegated"),
        }
    }
}

/// Where neighbour advertisements for proxied container addresses come
/// from. Some hosting providers drop advertisements from a link-local
/// source for a global target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NaSource {
    /// The kernel's proxy answers, from the uplink's link-local address.
    #[default]
    LinkLocal,
    /// dock6 answers itself, from the target (the container's) address; the
    /// kernel's own answers for proxied targets are dropped.
    Target,
}

impl NaSource {
    pub fn name(self) -> &'static str {
        match self {
            NaSource::LinkLocal => "link-local",
            NaSource::Target => "target",
        }
    }

    pub fn parse(text: &str) -> Option<NaSource> {
        match text.trim() {
            "link-local" => Some(NaSource::LinkLocal),
            "target" => Some(NaSource::Target),
            _ => None,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            uplink: None,
            egress_address: None,
            accept_mark: DEFAULT_ACCEPT_MARK,
            network_modes: BTreeMap::new(),
            network_prefixes: BTreeMap::new(),
            na_source: NaSource::LinkLocal,
        }
    }
}

/// How dock6 handles one Docker IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Nat66,
    NdpProxy,
    Routed,
    /// 1:1 stateless prefix translation of the network's subnet onto an
    /// equally long global prefix.
    Nptv6,
    Off,
    Unfiltered,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nat66 => "nat66",
            Mode::NdpProxy => "ndp-proxy",
            Mode::Routed => "routed",
            Mode::Nptv6 => "nptv6",
            Mode::Off => "off",
            Mode::Unfiltered => "unfiltered",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        match text.trim() {
            "nat66" => Some(Mode::Nat66),
            "ndp-proxy" => Some(Mode::NdpProxy),
            "routed" => Some(Mode::Routed),
            "nptv6" => Some(Mode::Nptv6),
            "off" => Some(Mode::Off),
            "unfiltered" => Some(Mode::Unfiltered),
            _ => None,
        }
    }

    /// Whether containers' own addresses are reachable from outside (on what
    /// is published or exposed). For `nptv6` that is through their mapped
    /// addresses only: the filter sees the container address after the
    /// prefix DNAT.
    pub fn addresses_reachable(self) -> bool {
        matches!(self, Mode::NdpProxy | Mode::Routed | Mode::Nptv6)
    }

    /// Whether dock6 filters and NATs the network (its bridge is in
    /// `@bridges`). `off` networks are closed; `unfiltered` ones are left to
    /// the operator's own rules.
    pub fn filtered(self) -> bool {
        matches!(
            self,
            Mode::Nat66 | Mode::NdpProxy | Mode::Routed | Mode::Nptv6
        )
    }

    /// Whether the network needs IPv6 forwarding.
    pub fn forwards(self) -> bool {
        self != Mode::Off
    }
}
