//! What the planner knows of the world, as plain data: Docker's networks and
//! running containers, and the host's interfaces. The JSON form of this is the
//! input of `dock6 render --snapshot FILE` (schema in docs/development.md).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

use compact_str::CompactString;

pub use crate::sorted_map::SortedMap;
use ipnet::{IpNet, Ipv6Net};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub host: HostFacts,
    #[serde(default)]
    pub networks: Vec<Network>,
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Containers Docker is starting (created, not yet running), with the
    /// host ports they are to publish in `ports` (their `HostConfig`'s
    /// bindings, less the ports something on the host already listens on)
    /// and no addresses yet. Until one runs and its ports are DNAT'ed,
    /// Docker holds those ports with a socket that never accepts: dock6
    /// refuses connections to them instead (see `plan::starting_ports`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starting: Vec<Container>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    /// Interface of the IPv6 default route, if there is one.
    #[serde(default)]
    pub default_route_interface: Option<String>,
    /// Gateways of the IPv6 default routes: never proxied for a container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_routers: Vec<Ipv6Addr>,
    /// Current `net.ipv6.conf.all.forwarding`, when known. 0 means that when
    /// dock6 turns forwarding on, it forwards Docker traffic only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<u8>,
    /// dock6 itself turned forwarding on (it was 0), so it stays Docker-only.
    /// Read from dock6's own table, where the marker lives with the rules.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarding_enabled_by_dock6: bool,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Prefixes delegated to the host (DHCPv6 prefix delegation): the
    /// unreachable (or blackhole) route a delegation client installs for the
    /// whole prefix, global prefixes only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegated_prefixes: Vec<Ipv6Net>,
    /// The uplink's on-link and delegated prefixes that dock6 saw earlier in
    /// this run and the host no longer has (the provider renumbered): a
    /// network built on one is closed rather than taken for routed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_prefixes: Vec<Ipv6Net>,
}

impl HostFacts {
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: String,
    /// Current `net.ipv6.conf.<name>.accept_ra`, when known.
    #[serde(default)]
    pub accept_ra: Option<u8>,
    /// Addresses with their prefix length, e.g. `2001:db8:1::10/64`.
    #[serde(default)]
    pub addresses: Vec<Ipv6Net>,
    /// On-link prefixes (connected routes) of the interface.
    #[serde(default)]
    pub onlink_prefixes: Vec<Ipv6Net>,
    /// Global addresses that other nodes on this link answer for (the
    /// neighbour table, proxy entries aside): never proxied for a container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<Ipv6Addr>,
    /// Addresses dock6 already proxies here (its tagged proxy entries): a
    /// neighbour entry planted later for one of them does not take it away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dock6_proxies: Vec<Ipv6Addr>,
    /// On-link prefixes that came from the network (a router advertisement,
    /// DHCPv6) rather than the host's own configuration: the provider may
    /// change them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_prefixes: Vec<Ipv6Net>,
    /// Addresses past their preferred lifetime: still valid for the
    /// connections that use them, not chosen for new ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deprecated_addresses: Vec<Ipv6Addr>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub id: String,
    pub name: String,
    #[serde(default = "default_driver")]
    pub driver: String,
    /// Linux bridge name; when absent it is derived as Docker does
    /// (`com.docker.network.bridge.name`, else `br-` + the first 12 hex digits of the id).
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub internal: bool,
    /// IPAM configuration, IPv4 and IPv6 alike.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_driver() -> String {
    "bridge".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub subnet: IpNet,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Endpoints by network name.
    #[serde(default)]
    pub networks: SortedMap<String, Endpoint>,
    /// The network that gives the container its default gateway, if known.
    #[serde(default)]
    pub gateway_network: Option<String>,
    /// Docker's `NetworkSettings.Ports`, as Docker reports it:
    /// `"80/tcp": [{"HostIp": "::", "HostPort": "8080"}]` (or `null` when not published).
    /// (Short strings are held inline: the agent keeps every port binding
    /// of every running container, tens of thousands on a big host.)
    #[serde(default)]
    pub ports: SortedMap<CompactString, Option<Vec<PortBinding>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(default)]
    pub ipv6_address: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortBinding {
    #[serde(rename = "HostIp", default)]
    pub host_ip: CompactString,
    #[serde(rename = "HostPort", default)]
    pub host_port: CompactString,
}

impl Network {
    /// The IPv6 subnets of the network (only when IPv6 is enabled on it).
    pub fn ipv6_subnets(&self) -> Vec<Ipv6Net> {
        if !self.enable_ipv6 {
            return Vec::new();
        }
        self.subnets
            .iter()
            .filter_map(|s| match s.subnet {
                IpNet::V6(net) => Some(net.trunc()),
                IpNet::V4(_) => None,
            })
            .collect()
    }

    /// The Linux bridge Docker made for this network.
    pub fn bridge_name(&self) -> String {
        if let Some(b) = &self.bridge {
            return b.clone();
        }
        if let Some(b) = self.options.get("com.docker.network.bridge.name") {
            return b.clone();
        }
        let short: String = self.id.chars().take(12).collect();
        format!("br-{short}")
    }

    /// A boolean Docker bridge option (`"true"`/`"false"`), with Docker's default.
    pub fn bool_option(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.options.get(key).map(|v| v.trim()) {
            None => Ok(default),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(other) => Err(other.to_string()),
        }
    }
}
