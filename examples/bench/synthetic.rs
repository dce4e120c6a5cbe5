//! A synthetic Docker view, in the snapshot types the Docker source
//! produces: one NAT66 network and N containers with 10 published ports each
//! (5 tcp, 5 udp, on `::`), and the host facts of the bench namespace.

use std::net::Ipv6Addr;

use dock6::snapshot::{
    Container, Endpoint, HostFacts, Interface, Network, PortBinding, SortedMap, Subnet,
};

pub const PORTS_PER_CONTAINER: usize = 10;
pub const UPLINK: &str = "up0";
pub const UPLINK_ADDRESS: &str = "2001:db8:1::10/64";
pub const ROUTER: &str = "2001:db8:1::1";
pub const NETWORK: &str = "bench";
pub const BRIDGE: &str = "br-bench";
const SUBNET: &str = "fd00:b::/64";

/// The largest index [`container`] takes: host ports stay below 65536.
pub const MAX_CONTAINERS: usize = 12_000;

pub fn network() -> Network {
    Network {
        id: format!("{:b>64}", ""),
        name: NETWORK.into(),
        driver: "bridge".into(),
        bridge: Some(BRIDGE.into()),
        enable_ipv6: true,
        subnets: vec![Subnet {
            subnet: SUBNET.parse().expect("subnet"),
            gateway: Some("fd00:b::1".parse().expect("gateway")),
        }],
        ..Default::default()
    }
}

/// Container `i`: address `fd00:b::i+2`; container ports 8000–8004/tcp and
/// 9000–9004/udp published on host ports `1024 + 5i + k` (tcp and udp).
pub fn container(i: usize) -> Container {
    assert!(i < MAX_CONTAINERS, "container index {i} too large");
    let address = Ipv6Addr::from(0xfd00_000b_u128 << 96 | (i as u128 + 2));
    let mut ports = Vec::new();
    for k in 0..PORTS_PER_CONTAINER / 2 {
        let host_port = (1024 + 5 * i + k).to_string();
        let binding = || {
            Some(vec![PortBinding {
                host_ip: "::".into(),
                host_port: host_port.as_str().into(),
            }])
        };
        ports.push((format!("{}/tcp", 8000 + k).into(), binding()));
        ports.push((format!("{}/udp", 9000 + k).into(), binding()));
    }
    Container {
        id: format!("{i:064x}"),
        name: format!("c{i:05}"),
        networks: SortedMap::from([(
            NETWORK.to_string(),
            Endpoint {
                ipv6_address: Some(address),
            },
        )]),
        gateway_network: Some(NETWORK.into()),
        ports: ports.into_iter().collect(),
        ..Default::default()
    }
}

pub fn containers(n: usize) -> Vec<Container> {
    (0..n).map(container).collect()
}

/// What the host source reads in the bench namespace (for the no-kernel part).
pub fn host() -> HostFacts {
    let address: ipnet::Ipv6Net = UPLINK_ADDRESS.parse().expect("address");
    HostFacts {
        default_route_interface: Some(UPLINK.into()),
        default_routers: vec![ROUTER.parse().expect("router")],
        forwarding: Some(0),
        interfaces: vec![Interface {
            name: UPLINK.into(),
            accept_ra: Some(1),
            addresses: vec![address],
            onlink_prefixes: vec![address.trunc()],
            ..Default::default()
        }],
        ..Default::default()
    }
}
