//! The pure planner: (config, Docker snapshot, host facts) → desired state.
//!
//! No tokio, no syscalls, no interface-index lookups: everything here is a
//! function of its inputs, which is what makes golden files possible.

mod bootstrap;
mod egress;
mod guard;
mod host;
mod invariants;
mod labels;
mod mode;
mod networks;
mod nptv6;
mod planner;
mod policy;
mod ports;
mod probe;
mod report;
mod ruleset;
mod sets;

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::nft::Table;
use crate::snapshot::Snapshot;

pub use bootstrap::bootstrap_table;
pub use egress::EGRESS_LABEL;
pub use guard::{CHAIN_NOT_DOCKER, docker_made_bridge_name};
pub use invariants::check_invariants;
pub use labels::{Expose, parse_expose};
pub use mode::ModeSource;
pub use mode::is_global_unicast;
pub use nptv6::{embed, map_address};
pub use planner::{ContainerShown, ElementChanges, Planner, Update};
pub use policy::{DEFAULT_ACCEPT_MARK, Mode, NaSource, Policy, PrefixSource};
pub use probe::probe_table;
pub use ruleset::{
    CHAIN_FORWARD, CHAIN_MARK_ACCEPT, PRIORITY_DSTNAT, PRIORITY_FILTER, PRIORITY_OUTPUT_DNAT,
    PRIORITY_SRCNAT,
};
pub use sets::{
    DnatTarget, MAP_DNAT_ADDR, MAP_DNAT_ANY, MAP_EGRESS_ADDRESSES, SET_BRIDGES, SET_OPEN_PORTS,
    SET_SEALED, removed_dnat_targets,
};

/// The whole desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub uplink: Option<String>,
    pub networks: Vec<NetworkPlan>,
    pub ruleset: Table,
    pub proxy_entries: Vec<ProxyEntry>,
    /// Who answers neighbour solicitations for the proxied addresses, and
    /// from which source (`Target`: dock6 itself, from each address).
    pub na_source: NaSource,
    pub host_routes: Vec<HostRoute>,
    pub sysctls: Vec<SysctlSetting>,
    pub notes: Vec<Note>,
}

/// What was decided for one Docker IPv6 network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    pub name: String,
    pub bridge: String,
    pub subnets: Vec<Ipv6Net>,
    pub mode: Mode,
    pub mode_source: ModeSource,
    pub icc: bool,
    pub masquerade: bool,
    /// `--internal`, or Docker's `gateway_mode_ipv6=isolated`: no egress,
    /// nothing from outside, never a DNAT target, no proxy entries.
    pub internal: bool,
    /// Docker's `gateway_mode_ipv6=nat-unprotected`: every port open at the
    /// containers' own addresses (sealed containers aside), as Docker does.
    pub unprotected: bool,
    /// Mode `nptv6`: the global prefix the network's (only) subnet is mapped
    /// onto, as long as the subnet.
    pub nptv6: Option<Ipv6Net>,
    /// Where an `nptv6` network's prefix comes from (also while it has none:
    /// a network following the host's prefix waits closed, as mode `off`).
    pub nptv6_source: Option<PrefixSource>,
}

/// A kernel proxy-NDP entry: answer neighbour solicitations for `address` on
/// `interface`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProxyEntry {
    pub interface: String,
    pub address: Ipv6Addr,
    pub container: String,
    pub network: String,
}

/// A `/128` route of a proxied container address into its bridge. Needed
/// where the network's subnet covers the uplink's on-link prefix: the host
/// then has two connected routes for the same prefix, the uplink's wins, and
/// traffic for the container would go back out of the uplink.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostRoute {
    pub address: Ipv6Addr,
    /// The network's bridge.
    pub interface: String,
    pub container: String,
}

/// A sysctl under `net.ipv6.conf`, in the order it must be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlSetting {
    /// `all` or an interface name (which may contain dots).
    pub scope: String,
    pub name: String,
    pub value: u8,
    /// The value the host reported, when known.
    pub current: Option<u8>,
    /// Leave the sysctl alone when it currently has this value (accept_ra 0:
    /// a static uplink stays static).
    pub keep_if: Option<u8>,
    pub reason: String,
}

impl SysctlSetting {
    pub fn key(&self) -> String {
        sysctl_key(&self.scope, &self.name)
    }
}

/// `net.ipv6.conf.<scope>.<name>` as sysctl(8) writes it: dots in interface
/// names become `/` (`net.ipv6.conf.eth0/100.accept_ra` for `eth0.100`).
pub fn sysctl_key(scope: &str, name: &str) -> String {
    format!("net.ipv6.conf.{}.{name}", scope.replace('.', "/"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
}

/// Something the operator should know about the plan: skipped input, a
/// label that failed closed, a binding that cannot work on IPv6.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    pub level: Level,
    pub text: String,
}

impl Note {
    pub fn info(text: impl Into<String>) -> Note {
        Note {
            level: Level::Info,
            text: text.into(),
        }
    }

    pub fn warn(text: impl Into<String>) -> Note {
        Note {
            level: Level::Warn,
            text: text.into(),
        }
    }
}

/// Plans the whole desired state: the [`Planner`] run once over `snapshot`.
pub fn plan(config: &Policy, snapshot: &Snapshot) -> Plan {
    let mut planner = Planner::default();
    planner.update(config, snapshot, None);
    planner.plan()
}

#[cfg(test)]
mod tests;
