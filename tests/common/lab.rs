//! The standard lab: an "upstream" namespace (the internet: a /128 on lo, and
//! the router on the uplink's link), a "host" namespace with the uplink and
//! Docker-like bridges, and "container" namespaces on those bridges.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Output;

use super::netns::Netns;

/// "The internet": a server address on the upstream's loopback.
pub const INTERNET: &str = "2001:db8:ffff::1";
pub const UPSTREAM_LINK: &str = "2001:db8:1::1";
pub const HOST_UPLINK: &str = "2001:db8:1::10";
pub const UPSTREAM_V4: &str = "198.51.100.1";
pub const HOST_V4: &str = "198.51.100.10";

pub struct Lab {
    pub upstream: Netns,
    pub host: Netns,
    pub containers: Vec<(String, Netns)>,
    dir: PathBuf,
}

pub fn sock(addr: &str, port: u16) -> SocketAddr {
    SocketAddr::new(addr.parse::<IpAddr>().expect("address"), port)
}

impl Lab {
    /// Upstream and host joined by `eth0` on both sides: 2001:db8:1::/64 and
    /// 198.51.100.0/24; the host's default routes point upstream.
    pub fn new(tag: &str) -> Lab {
        let upstream = Netns::new(&format!("{tag}u"));
        let host = Netns::new(&format!("{tag}h"));
        host.ip(&format!(
            "link add eth0 type veth peer name eth0 netns {}",
            upstream.name
        ));
        upstream.ip(&format!("addr add {INTERNET}/128 dev lo"));
        upstream.ip(&format!("addr add {UPSTREAM_LINK}/64 dev eth0 nodad"));
        upstream.ip(&format!("addr add {UPSTREAM_V4}/24 dev eth0"));
        upstream.ip("link set eth0 up");
        host.ip(&format!("addr add {HOST_UPLINK}/64 dev eth0 nodad"));
        host.ip(&format!("addr add {HOST_V4}/24 dev eth0"));
        host.ip("link set eth0 up");
        host.ip(&format!(
            "-6 route add default via {UPSTREAM_LINK} dev eth0"
        ));
        host.sysctl("net.ipv4.ip_forward", "1");
        let dir = std::env::temp_dir().join(format!("dock6-lab-{}", host.name));
        std::fs::create_dir_all(&dir).expect("lab temp dir");
        Lab {
            upstream,
            host,
            containers: Vec::new(),
            dir,
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

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
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

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
