//! The lab's network: two namespaces, the veth pair between them, their addresses and the
//! host's default routes (see the diagrams in the crate documentation); for a peer, its host
//! namespace on the first lab's link, which becomes a bridge in the upstream. Every command is
//! argv (`ip -n NS …`), never a shell, and runs only in the lab's own namespaces.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::sys::run;
use crate::{HOST_UPLINK, Lab, UPSTREAM_INTERNET_V6, UPSTREAM_LINK, UPSTREAM_V4, UPSTREAM_V6};

/// The bridge in the upstream that carries the link once it has more than one host.
pub const LINK_BRIDGE: &str = "link0";

impl Lab {
    /// Both namespaces, the link, the addresses and the host's default routes; for a peer, its
    /// host namespace on the first lab's link.
    pub(crate) fn make_network(&self) -> Result<()> {
        let (up, host) = (self.upstream_ns.as_str(), self.host_ns.as_str());
        if self.owns_upstream() {
            create_namespaces(&[up, host])?;
            add_link(host, up, UPSTREAM_LINK)?;
            address_upstream(up)?;
        } else {
            create_namespaces(&[host])?;
            link_bridge(up)?;
            let upstream_end = format!("host{}", self.node);
            add_link(host, up, &upstream_end)?;
            ip(up, &["link", "set", &upstream_end, "master", LINK_BRIDGE])?;
            ip(up, &["link", "set", &upstream_end, "up"])?;
        }
        address_host(host, &self.host_v6(), &self.host_v4())?;
        default_routes(host)
    }
}

/// Turns the upstream's end of the link into a bridge (once): `link0` takes the router's
/// addresses from `host0`, which joins it, so more hosts can join the same link.
fn link_bridge(up: &str) -> Result<()> {
    let exists = Command::new("ip")
        .args(["-n", up, "link", "show", LINK_BRIDGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if exists {
        return Ok(());
    }
    ip(up, &["link", "add", LINK_BRIDGE, "type", "bridge"])?;
    ip(up, &["link", "set", UPSTREAM_LINK, "master", LINK_BRIDGE])?;
    let v6 = format!("{UPSTREAM_V6}/64");
    let v4 = format!("{UPSTREAM_V4}/24");
    ip(up, &["addr", "del", &v6, "dev", UPSTREAM_LINK])?;
    ip(up, &["addr", "del", &v4, "dev", UPSTREAM_LINK])?;
    ip(up, &["addr", "add", &v6, "dev", LINK_BRIDGE, "nodad"])?;
    ip(up, &["addr", "add", &v4, "dev", LINK_BRIDGE])?;
    ip(up, &["link", "set", LINK_BRIDGE, "up"])
}

/// `ip netns add` for each, with loopback up and duplicate address detection off.
fn create_namespaces(namespaces: &[&str]) -> Result<()> {
    for ns in namespaces {
        run(Command::new("ip").args(["netns", "add", ns]))?;
    }
    for ns in namespaces {
        // No duplicate address detection: addresses are usable at once.
        run(in_netns(ns, "sysctl").args([
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]))?;
        ip(ns, &["link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// The veth pair: `eth0` in the host, its peer `upstream_end` moved into the upstream.
fn add_link(host: &str, up: &str, upstream_end: &str) -> Result<()> {
    ip(
        host,
        &[
            "link",
            "add",
            HOST_UPLINK,
            "type",
            "veth",
            "peer",
            "name",
            upstream_end,
            "netns",
            up,
        ],
    )
}

/// "The internet" on the upstream's loopback, the router's addresses on the link.
fn address_upstream(up: &str) -> Result<()> {
    let internet = format!("{UPSTREAM_INTERNET_V6}/128");
    ip(up, &["addr", "add", &internet, "dev", "lo"])?;
    let v6 = format!("{UPSTREAM_V6}/64");
    ip(up, &["addr", "add", &v6, "dev", UPSTREAM_LINK, "nodad"])?;
    let v4 = format!("{UPSTREAM_V4}/24");
    ip(up, &["addr", "add", &v4, "dev", UPSTREAM_LINK])?;
    ip(up, &["link", "set", UPSTREAM_LINK, "up"])
}

/// The host's uplink addresses.
fn address_host(host: &str, v6: &str, v4: &str) -> Result<()> {
    let v6 = format!("{v6}/64");
    ip(host, &["addr", "add", &v6, "dev", HOST_UPLINK, "nodad"])?;
    let v4 = format!("{v4}/24");
    ip(host, &["addr", "add", &v4, "dev", HOST_UPLINK])?;
    ip(host, &["link", "set", HOST_UPLINK, "up"])
}

/// The host's default routes, both families, via the upstream.
fn default_routes(host: &str) -> Result<()> {
    for (family, via) in [("-6", UPSTREAM_V6), ("-4", UPSTREAM_V4)] {
        ip(
            host,
            &[
                family,
                "route",
                "add",
                "default",
                "via",
                via,
                "dev",
                HOST_UPLINK,
            ],
        )?;
    }
    Ok(())
}

/// `PROGRAM` run in namespace `ns` with `nsenter --net=…` (unlike `ip netns exec`, it does not
/// remount /sys, so dockerd there still sees the cgroups).
pub(crate) fn in_netns(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(program);
    cmd
}

/// `ip -n NS ARGS`.
fn ip(ns: &str, args: &[&str]) -> Result<()> {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

pub(crate) fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}
