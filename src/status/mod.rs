//! What a running agent tells `dock6 status`: the JSON it serves on its
//! unix socket (stable: fields are only ever added; documented in
//! docs/operations.md), built from what the loop already has — its planner and Docker's
//! view — and the human form of it.
//!
//! Nothing here plans: the networks, proxy entries and ports are read off
//! the planner whose state the passes applied.

mod client;
mod render;

pub use client::{StatusQueryError, query};

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::plan::{Level, NetworkPlan, Note, Planner, ProxyEntry};
use crate::snapshot::Container;

/// Where the agent serves its status unless the config says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/dock6/dock6.sock";

/// The version of the JSON's shape; raised only for a change that is not an addition.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub format: u32,
    /// dock6's own version.
    pub version: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started: String,
    pub docker: DockerStatus,
    /// `owner`: dock6 owns IPv6 filtering (its table); `companion`:
    /// Docker's ip6tables is on and dock6 does sysctls and NDP proxying only;
    /// `unknown` until it was read.
    pub mode: String,
    /// Why that mode: Docker's firewall signature, or that it is off.
    pub mode_reason: String,
    pub uplink: Option<String>,
    pub networks: Vec<NetworkStatus>,
    pub containers: Vec<ContainerStatus>,
    pub proxy_entries: Vec<ProxyStatus>,
    pub last_pass: Option<PassStatus>,
    /// Warnings and errors still standing: the plan's warnings and what
    /// the last pass could not apply.
    pub problems: Vec<Problem>,
    pub counters: Counters,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerStatus {
    /// `connected`, `unreachable`, or `connecting` (no answer yet since start).
    pub state: String,
    /// When it entered that state (RFC 3339); `None` while connecting.
    pub since: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub name: String,
    pub bridge: String,
    pub subnets: Vec<String>,
    pub mode: String,
    /// What chose the mode: `config`, `label`, `gateway_mode_ipv6` or `automatic`.
    pub mode_source: String,
    pub internal: bool,
    pub icc: bool,
    /// Mode `nptv6` (also while it waits for a prefix, shown as mode `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nptv6: Option<Nptv6Status>,
}

/// Where an `nptv6` network is mapped, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nptv6Status {
    /// `uplink`, `delegated` or the fixed prefix.
    pub follows: String,
    /// The mapped prefix now; `None` while the host has none to follow.
    pub prefix: Option<String>,
    /// When the mapping took this prefix (or lost it), or was first planned (RFC 3339).
    pub since: String,
    /// How many times the mapping moved since dock6 started.
    pub changes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub id: String,
    /// Network name → IPv6 address.
    pub addresses: BTreeMap<String, Ipv6Addr>,
    /// Published on IPv6: `tcp [2001:db8::10]:8080 -> 80` or `tcp *:8080 -> 80`
    /// (any local address of the host).
    pub published: Vec<String>,
    /// Open at the container's own address from outside: `tcp 80`.
    pub open: Vec<String>,
    /// `dock6.expose=false` (or a malformed label): nothing inbound on IPv6.
    pub sealed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyStatus {
    pub address: Ipv6Addr,
    pub interface: String,
    pub container: String,
    pub network: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassStatus {
    pub number: u64,
    /// When it ended (RFC 3339).
    pub at: String,
    pub duration_ms: f64,
    /// `converged`, `failed` (retried with backoff), or `waiting for Docker`
    /// (no snapshot yet: the fail-closed or the earlier table stays).
    pub result: String,
    /// What the table got: `replaced`, `N element changes`, `unchanged`,
    /// `removed (companion)`, `fail-closed table installed`, `kept from an
    /// earlier run`, or `none`.
    pub table: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// `warning` or `error`.
    pub level: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub passes: u64,
    pub failed_passes: u64,
    /// Kernel transactions on the table (replaces and element batches).
    pub transactions: u64,
    pub element_changes: u64,
    /// Whole-table restores after someone else's commit (`nft flush ruleset`).
    pub tamper_restores: u64,
    /// Connections to Docker that came back after it was lost.
    pub docker_reconnects: u64,
}

pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The planned networks, as status shows them.
pub fn networks(networks: &[NetworkPlan]) -> Vec<NetworkStatus> {
    networks
        .iter()
        .map(|n| NetworkStatus {
            name: n.name.clone(),
            bridge: n.bridge.clone(),
            subnets: n.subnets.iter().map(|s| s.to_string()).collect(),
            mode: n.mode.name().to_string(),
            mode_source: n.mode_source.name().to_string(),
            internal: n.internal,
            icc: n.icc,
            nptv6: None,
        })
        .collect()
}

pub fn proxy_entries(entries: &[ProxyEntry]) -> Vec<ProxyStatus> {
    entries
        .iter()
        .map(|p| ProxyStatus {
            address: p.address,
            interface: p.interface.clone(),
            container: p.container.clone(),
            network: p.network.clone(),
        })
        .collect()
}

/// The plan's warnings (its infos are not problems).
pub fn plan_warnings(notes: &[Note]) -> Vec<Problem> {
    notes
        .iter()
        .filter(|n| n.level == Level::Warn)
        .map(|n| Problem {
            level: "warning".into(),
            text: n.text.clone(),
        })
        .collect()
}

/// Each container with its IPv6 addresses and, read off the planner, what
/// is published to it and open at it.
pub fn containers(containers: &[Container], planner: &Planner) -> Vec<ContainerStatus> {
    containers
        .iter()
        .map(|c| {
            let held = planner.container(&c.id).unwrap_or_default();
            ContainerStatus {
                name: c.name.clone(),
                id: c.id.clone(),
                addresses: c
                    .networks
                    .iter()
                    .filter_map(|(net, ep)| Some((net.clone(), ep.ipv6_address?)))
                    .collect(),
                published: held
                    .published
                    .iter()
                    .map(|(on, proto, host, port)| match on {
                        Some(on) => format!("{} [{on}]:{host} -> {port}", proto.name()),
                        None => format!("{} *:{host} -> {port}", proto.name()),
                    })
                    .collect(),
                open: held
                    .open
                    .iter()
                    .map(|(_, proto, port)| format!("{} {port}", proto.name()))
                    .collect(),
                sealed: held.sealed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_show_what_the_plan_publishes_and_opens() {
        let scenario = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rules/all-three-modes/snapshot.json"
        );
        let snapshot = crate::source::load_snapshot(std::path::Path::new(scenario)).unwrap();
        let mut planner = crate::plan::Planner::default();
        planner.update(&crate::plan::Policy::default(), &snapshot, None);
        let shown = containers(&snapshot.containers, &planner);
        assert_eq!(shown.len(), snapshot.containers.len());
        let nat = shown
            .iter()
            .find(|c| c.addresses.values().any(|a| a.segments()[0] == 0xfd00))
            .expect("a ULA container");
        assert!(
            nat.published
                .iter()
                .any(|p| p.starts_with("tcp *:8080 -> 80")),
            "{nat:?}"
        );
        assert!(
            nat.open.is_empty(),
            "NAT66: nothing open at its own address: {nat:?}"
        );
        let routed = shown
            .iter()
            .find(|c| !c.open.is_empty())
            .expect("a container with open ports");
        assert!(
            routed
                .open
                .iter()
                .all(|o| o.starts_with("tcp ") || o.starts_with("udp "))
        );
    }
}
