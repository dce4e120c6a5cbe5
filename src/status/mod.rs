//! What a running agent tells `dock6 status`: the JSON it serves on its
//! unix socket (stable: fields are only ever added; every field documented
//! in docs/status-json.md, checked by a test here), built from what the loop already has — its planner and Docker's
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

    use serde_json::Value;

    const SCHEMA_DOC: &str = include_str!("../../docs/status-json.md");

    /// A status with every optional field set and one element in every
    /// list, so that every field of the JSON appears.
    fn full_status() -> Status {
        Status {
            format: FORMAT,
            version: "0.1.0".into(),
            pid: 1234,
            started: "2026-12-01T12:00:00Z".into(),
            docker: DockerStatus {
                state: "connected".into(),
                since: Some("2026-12-01T12:00:01Z".into()),
            },
            mode: "owner".into(),
            mode_reason: "Docker's ip6tables is off".into(),
            uplink: Some("eth0".into()),
            networks: vec![NetworkStatus {
                name: "web".into(),
                bridge: "br-0123456789ab".into(),
                subnets: vec!["fd00:61::/64".into()],
                mode: "nat66".into(),
                mode_source: "automatic".into(),
                internal: false,
                icc: true,
                nptv6: Some(Nptv6Status {
                    follows: "uplink".into(),
                    prefix: Some("2001:db8:1:0:d6::/80".into()),
                    since: "2026-12-01T12:00:02Z".into(),
                    changes: 1,
                }),
            }],
            containers: vec![ContainerStatus {
                name: "web1".into(),
                id: "c0ffee".into(),
                addresses: [("web".to_string(), "fd00:61::2".parse().unwrap())].into(),
                published: vec!["tcp *:8080 -> 80".into()],
                open: vec!["tcp 80".into()],
                sealed: false,
            }],
            proxy_entries: vec![ProxyStatus {
                address: "2001:db8:1::1:2".parse().unwrap(),
                interface: "eth0".into(),
                container: "web1".into(),
                network: "web".into(),
            }],
            last_pass: Some(PassStatus {
                number: 2,
                at: "2026-12-01T12:00:02Z".into(),
                duration_ms: 6.8,
                result: "converged".into(),
                table: "replaced".into(),
            }),
            problems: vec![Problem {
                level: "warning".into(),
                text: "something".into(),
            }],
            counters: Counters::default(),
        }
    }

    /// The documented fields: `| \`path\` | type | meaning |` rows.
    fn documented() -> BTreeMap<String, String> {
        SCHEMA_DOC
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let path = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((path.to_string(), cells.get(2)?.to_string()))
            })
            .collect()
    }

    /// The JSON's type in the schema's words.
    fn kind(value: &Value) -> &'static str {
        match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Every field path of `value` with its type; arrays as `path[]`; the
    /// objects the schema calls maps are not entered (their keys are data).
    fn fields(
        value: &Value,
        path: &str,
        maps: &[String],
        out: &mut BTreeMap<String, &'static str>,
    ) {
        match value {
            Value::Object(members) if !maps.iter().any(|m| m == path) => {
                for (key, member) in members {
                    let child = match path {
                        "" => key.clone(),
                        _ => format!("{path}.{key}"),
                    };
                    out.insert(child.clone(), kind(member));
                    fields(member, &child, maps, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    fields(item, &format!("{path}[]"), maps, out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_documented_schema_is_the_status_json() {
        let doc = documented();
        assert!(doc.len() > 40, "the schema table was found: {doc:?}");
        let maps: Vec<String> = doc
            .iter()
            .filter(|(_, kind)| kind.starts_with("map"))
            .map(|(path, _)| path.clone())
            .collect();
        let json = serde_json::to_value(full_status()).unwrap();
        let mut served = BTreeMap::new();
        fields(&json, "", &maps, &mut served);
        let undocumented: Vec<&String> = served.keys().filter(|p| !doc.contains_key(*p)).collect();
        let gone: Vec<&String> = doc.keys().filter(|p| !served.contains_key(*p)).collect();
        assert!(
            undocumented.is_empty(),
            "fields served but not in docs/status-json.md: {undocumented:?}"
        );
        assert!(
            gone.is_empty(),
            "fields in docs/status-json.md the status does not serve: {gone:?}"
        );
        for (path, kind) in &served {
            let documented = &doc[path];
            let first = documented.split_whitespace().next().unwrap_or("");
            let matches = first == *kind || (first == "map" && *kind == "object");
            assert!(
                matches,
                "{path}: served as {kind}, documented as {documented:?}"
            );
        }
        assert!(
            SCHEMA_DOC.contains(&format!("It is **{FORMAT}**")),
            "docs/status-json.md names the schema version {FORMAT}"
        );
    }

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
