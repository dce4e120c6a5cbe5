//! The standard lab for `dock6 apply --once` traffic tests: the xtask lab's
//! topology without Docker — an "upstream" namespace (the internet: a /128
//! on lo, and the router on the uplink's link) and a "host" namespace with
//! the uplink `eth0` — plus Docker-like bridges in the host and "container"
//! namespaces on them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Output;

use super::docker_lab::{DockerLab, lab};
use super::netns::Netns;

/// "The internet": a server address on the upstream's loopback.
pub const INTERNET: &str = lab::UPSTREAM_INTERNET_V6;
pub const UPSTREAM_LINK: &str = lab::UPSTREAM_V6;
pub const HOST_UPLINK: &str = lab::HOST_V6;
pub const UPSTREAM_V4: &str = lab::UPSTREAM_V4;
pub const HOST_V4: &str = lab::HOST_V4;

pub struct Lab {
    // Fields drop in order: the containers' namespaces, then the topology.
    pub containers: Vec<(String, Netns)>,
    pub upstream: Netns,
    pub host: Netns,
    topology: DockerLab,
}

pub fn sock(addr: &str, port: u16) -> SocketAddr {
    SocketAddr::new(addr.parse::<IpAddr>().expect("address"), port)
}

impl Lab {
    /// Upstream and host joined on 2001:db8:1::/64 and 198.51.100.0/24; the
    /// host's default routes point upstream, and it forwards IPv4.
    pub fn new(tag: &str) -> Lab {
        let topology = DockerLab::network_only(tag, lab::Options::default());
        let (upstream, host) = (topology.upstream_ns(), topology.host_ns());
        host.sysctl("net.ipv4.ip_forward", "1");
        Lab {
            containers: Vec::new(),
            upstream,
            host,
            topology,
        }
    }

    /// A bridge in the host with gateway `gw6` (CIDR) and optionally an IPv4
    /// gateway. `routed` also routes the prefix from the upstream to the host.
    pub fn bridge(&self, name: &str, gw6: &str, gw4: Option<&str>, routed: Option<&str>) {
        self.host.ip(&format!("link add {name} type bridge"));
        self.host.ip(&format!("addr add {gw6} dev {name} nodad"));
        if let Some(gw4) = gw4 {
            self.host.ip(&format!("addr add {gw4} dev {name}"));
            let net: ipnet::Ipv4Net = gw4.parse().expect("ipv4 cidr");
            self.upstream
                .ip(&format!("-4 route add {} via {HOST_V4}", net.trunc()));
        }
        self.host.ip(&format!("link set {name} up"));
        if let Some(prefix) = routed {
            self.upstream
                .ip(&format!("-6 route add {prefix} via {HOST_UPLINK}"));
        }
    }

    /// A container namespace attached to `bridge`, with `addr6/len` and a
    /// default route via `gw6` (and likewise for IPv4 when given).
    pub fn container(
        &mut self,
        name: &str,
        bridge: &str,
        addr6: &str,
        gw6: &str,
        v4: Option<(&str, &str)>,
    ) -> &Netns {
        let ns = Netns::new(&format!("c{name}"));
        let veth = format!("v{name}");
        self.host.ip(&format!(
            "link add {veth} type veth peer name eth0 netns {}",
            ns.name
        ));
        self.host.ip(&format!("link set {veth} master {bridge} up"));
        ns.ip(&format!("addr add {addr6} dev eth0 nodad"));
        ns.ip("link set eth0 up");
        ns.ip(&format!("-6 route add default via {gw6} dev eth0"));
        if let Some((addr4, gw4)) = v4 {
            ns.ip(&format!("addr add {addr4} dev eth0"));
            ns.ip(&format!("-4 route add default via {gw4} dev eth0"));
        }
        self.containers.push((name.to_string(), ns));
        &self.containers.last().expect("just pushed").1
    }

    pub fn c(&self, name: &str) -> &Netns {
        &self
            .containers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no container {name}"))
            .1
    }

    /// The lab's own directory (removed with the lab).
    pub fn dir(&self) -> &std::path::Path {
        &self.topology.lab.dir
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.topology.lab.dir.join(file);
        std::fs::write(&path, text).expect("write lab file");
        path
    }

    /// Runs the dock6 binary inside the host namespace.
    pub fn dock6(&self, args: &[&str]) -> Output {
        let mut argv = vec![env!("CARGO_BIN_EXE_dock6")];
        argv.extend_from_slice(args);
        self.host.exec(&argv)
    }

    /// `dock6 apply --snapshot S --config C --once` in the host; panics on failure.
    pub fn apply(&self, snapshot: &serde_json::Value, config: &str) {
        let s = self.write("snapshot.json", &snapshot.to_string());
        let c = self.write("dock6.toml", config);
        let out = self.dock6(&[
            "apply",
            "--snapshot",
            s.to_str().unwrap(),
            "--config",
            c.to_str().unwrap(),
            "--once",
        ]);
        assert!(
            out.status.success(),
            "dock6 apply failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The host facts of this lab, as a snapshot's `host` object.
    pub fn host_facts(&self) -> serde_json::Value {
        serde_json::json!({
            "default_route_interface": "eth0",
            "interfaces": [{
                "name": "eth0",
                "accept_ra": self.host.read_sysctl("net.ipv6.conf.eth0.accept_ra").parse::<u8>().ok(),
                "addresses": [format!("{HOST_UPLINK}/64")],
                "onlink_prefixes": ["2001:db8:1::/64"]
            }]
        })
    }
}
