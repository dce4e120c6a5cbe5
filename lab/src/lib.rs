//! A throwaway Docker lab: what `cargo xtask lab up|down|status [NAME]`, `cargo xtask demo` and
//! the Docker tests run against.
//!
//! Two network namespaces joined by a veth pair, and a private dockerd:
//!
//! ```text
//!  NAME-upstream ("the internet")            NAME-host (the Docker host)
//!  lo    2001:db8:ffff::1/128
//!  host0 2001:db8:1::1/64   <--- veth --->   eth0 2001:db8:1::10/64  default via 2001:db8:1::1
//!        198.51.100.1/24                          198.51.100.10/24   default via 198.51.100.1
//!                                            dockerd (docker0 203.0.113.1/26, fd00:d0c::/64)
//! ```
//!
//! dockerd runs *inside* the host namespace (`nsenter --net=/run/netns/NAME-host`, not
//! `ip netns exec`, which remounts /sys and hides the cgroups) with everything of its own under
//! the lab directory `/run/dock6-lab/NAME`: `daemon.json` (`--config-file`, so /etc/docker is never
//! read), `data/` (data root; the containerd that dockerd starts keeps its root in
//! `data/containerd/daemon`), `exec/` (exec root; containerd's socket and state in
//! `exec/containerd/`), `docker.pid`, `docker.sock`, `key.json`, `dockerd.log`. Containers' cgroups
//! go under the cgroup parent `dock6-lab-NAME`. IPv4 pools are documentation space
//! (203.0.113.0/24). The system's Docker is never started, stopped or read; the root network
//! namespace is never changed. The image `busybox` is built with `docker import` from Debian's static
//! busybox (no registry is reachable): every applet is a symlink in `/bin`.
//!
//! `lab up` prints `export` lines (also written to `LAB/env`), so `eval "$(cargo xtask lab up)"`
//! points a shell's `docker` at the lab. `lab down` works after a failed or partial `up` and is
//! idempotent: it kills the lab's containers, stops dockerd (pidfile pid: SIGTERM, wait, SIGKILL),
//! kills whatever is left in the lab's namespaces or rooted under the lab directory (containerd,
//! shims, docker-proxy, container processes), unmounts everything under the lab directory, deletes
//! the namespaces, the cgroup parent and the directory.
//!
//! Measured here (Debian docker.io 20.10.24, containerd 1.6, kernel 6.18, cgroup v1): `up` takes
//! 0.6–1.3 s (dockerd answers after 0.3–1 s). Whatever its roots, Docker 20.10 creates
//! `/run/docker/plugins` and containerd 1.6 puts shim sockets in `/run/containerd/s/`; `up`
//! records which of those directories it found absent and `down` removes the lab's shim sockets and
//! those directories again (when empty, and only when no other dockerd/containerd runs). Without
//! `deprecated-key-path` in daemon.json Docker 20.10 writes `/etc/docker/key.json`. The relative
//! cgroup parent lands under dockerd's own cgroup per hierarchy (nested in the memory one here).
//! If dockerd is SIGKILLed its containerd dies with it but shims and containers survive: `down`
//! finds them by namespace and cgroup.
//!
//! **A crate of its own** (std + anyhow, no shell anywhere), so that the xtask and the main
//! crate's integration tests (a dev-dependency) share it as an ordinary library: tests get typed
//! access to addresses and names without spawning `cargo xtask` (no nested cargo, no second build).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let mut lab = dock6_lab::Lab::new("my-test-1234")?; // unique name per test
//! lab.up(&dock6_lab::Options::default())?;            // call down() from a Drop guard, even if up fails
//! lab.docker().args(["run", "-d", "busybox", "sleep", "60"]);
//! lab.in_host("ip").args(["-6", "route"]);            // a command in the host namespace
//! lab.down()?;
//! # Ok(())
//! # }
//! ```
//!
//! Needs root, iproute2, util-linux (nsenter), tar, iptables, Debian's `docker.io` (only installed
//! when no `dockerd` is on the PATH) and `busybox-static` (installed when missing).
//!
//! **More Docker hosts on the same link** (a swarm's nodes): [`Lab::peer`] names node 2, 3, … of a
//! lab, each with a host namespace and a dockerd of its own and its uplink on the first lab's
//! link. When the first peer comes up, the upstream's end of the link becomes a bridge, `link0`,
//! holding the router's addresses, with `host0` and each peer's `hostN` on it:
//!
//! ```text
//!  NAME-upstream                              NAME-host        eth0 2001:db8:1::10  198.51.100.10
//!  link0 2001:db8:1::1/64  ── host0 ─ veth ─
//!        198.51.100.1/24   ── host2 ─ veth ─  NAME-n2-host     eth0 2001:db8:1::11  198.51.100.11
//! ```
//!
//! A peer is a lab of its own (`NAME-nN`: directory, dockerd, socket, cgroup parent) that shares
//! the upstream namespace: its `down` removes its host namespace and leaves the upstream to the
//! first lab's.
//!
//! Where things are: [`topology`] (namespaces, veth, addresses, routes), [`dockerd`] (config file,
//! start/stop, socket wait, containerd refusal), [`image`] (the busybox import), [`tools`] (apt
//! installs), [`apt`] (Debian packages fetched without installing them), [`teardown`] (`down`), [`sys`] (processes, signals, mounts: plain /proc and libc).

pub mod apt;
mod bundle;
mod dockerd;
mod image;
mod status;
mod sys;
mod teardown;
mod tools;
mod topology;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{Context as _, Result, bail};

pub use bundle::{Bundle, SID_28, TRIXIE_26, bundle_versions, ensure_bundle};
pub use dockerd::SYSTEM_CONTAINERD;
pub use sys::{is_root, output};
pub use tools::{dpkg_installed, ensure_tools};

pub const DEFAULT_NAME: &str = "dock6-lab";
/// Parent of every lab directory.
pub const BASE_DIR: &str = "/run/dock6-lab";

/// The upstream's "internet" address (on its loopback).
pub const UPSTREAM_INTERNET_V6: &str = "2001:db8:ffff::1";
pub const UPSTREAM_V6: &str = "2001:db8:1::1";
pub const HOST_V6: &str = "2001:db8:1::10";
pub const LINK_V6_PREFIX: &str = "2001:db8:1::/64";
pub const UPSTREAM_V4: &str = "198.51.100.1";
pub const HOST_V4: &str = "198.51.100.10";
/// The uplink's name in the host namespace.
pub const HOST_UPLINK: &str = "eth0";
/// The other end of the veth pair, in the upstream namespace.
pub const UPSTREAM_LINK: &str = "host0";
/// `fixed-cidr-v6` of the default bridge.
pub const FIXED_CIDR_V6: &str = "fd00:d0c::/64";
/// The image built by `up`.
pub const IMAGE: &str = "busybox";

/// Choices for `up`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Docker's `userland-proxy` (default true, Docker's own default): published ports are also
    /// served by a `docker-proxy` process, which is what answers on IPv6 without dock6. With false,
    /// Docker 20.10 still *holds* listening sockets on `0.0.0.0:PORT` and `[::]:PORT` (to reserve
    /// the port) and never accepts on them: a connection to the host's address completes the
    /// handshake and then hangs, unless something DNATs it first.
    pub userland_proxy: bool,
    /// Docker's `iptables` (default true): IPv4 NAT and filtering inside the host namespace
    /// (iptables-nft there; FORWARD policy DROP). Without it dockerd still runs, but containers
    /// have no IPv4 egress (no masquerade).
    pub iptables: bool,
    /// Docker's own IPv6 firewall (`ip6tables`; experimental in 20.10, so `experimental` goes
    /// with it). Off by default: dock6 owns IPv6. On, dock6 runs as Docker's companion.
    pub ip6tables: bool,
    /// Which Docker the lab runs: [`Docker::from_env`] by default, so the same tests run against
    /// each version (`DOCK6_LAB_DOCKER=26 cargo test …`, `DOCK6_LAB_DOCKER=28 …`).
    pub docker: Docker,
    /// More daemon.json members, as JSON text (`"key": value`), for a test of one setting.
    pub daemon_extra: Vec<String>,
    /// daemon.json's `shutdown-timeout` (seconds; default 2): how long dockerd tries to stop
    /// its containers before it exits and leaves the rest running. A lab of a few containers
    /// stops at once; a thousand take minutes, and the next dockerd's own containerd then
    /// reconnects their shims one by one, past dockerd's wait for it.
    pub shutdown_timeout: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            userland_proxy: true,
            iptables: true,
            ip6tables: false,
            docker: Docker::from_env().unwrap_or_else(|e| panic!("{e:#}")),
            daemon_extra: Vec::new(),
            shutdown_timeout: 2,
        }
    }
}

/// The Docker engines the lab can run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Docker {
    /// The installed one: Debian bookworm's `docker.io` 20.10 (installed when no dockerd is).
    #[default]
    Installed,
    /// Debian trixie's 26.1, unpacked into a cache and never installed (see `bundle.rs`).
    V26,
    /// Debian sid's 28.5, unpacked into a cache and never installed (see `bundle.rs`).
    V28,
}

/// The environment variable that picks the lab's Docker: `20` (or unset), `26` or `28`.
pub const DOCKER_ENV: &str = "DOCK6_LAB_DOCKER";

impl Docker {
    /// The Dockers that come as bundles (tested in the matrix beside the installed one).
    pub const BUNDLED: &[Docker] = &[Docker::V26, Docker::V28];

    /// The Docker named by [`DOCKER_ENV`]; an unknown value is an error, never a silent default,
    /// so a test matrix cannot run the same version twice without noticing.
    pub fn from_env() -> Result<Docker> {
        match std::env::var(DOCKER_ENV) {
            Err(_) => Ok(Docker::Installed),
            Ok(v) => Docker::parse(&v),
        }
    }

    pub fn parse(value: &str) -> Result<Docker> {
        match value.trim() {
            "" | "20" | "20.10" | "installed" => Ok(Docker::Installed),
            "26" | "26.1" => Ok(Docker::V26),
            "28" | "28.5" => Ok(Docker::V28),
            other => bail!("{DOCKER_ENV}={other:?}: use 20 (the installed Docker), 26 or 28"),
        }
    }

    /// The API version the engine speaks (Debian's 20.10: 1.41; trixie's 26.1: 1.45; sid's 28.5:
    /// 1.51).
    pub fn api_version(self) -> &'static str {
        match self {
            Docker::Installed => "1.41",
            Docker::V26 => "1.45",
            Docker::V28 => "1.51",
        }
    }

    /// The short name tests print and the matrix is keyed by.
    pub fn label(self) -> &'static str {
        match self {
            Docker::Installed => "20",
            Docker::V26 => "26",
            Docker::V28 => "28",
        }
    }

    /// The bundle it comes from; `None` for the installed Docker.
    pub fn bundle(self) -> Option<&'static Bundle> {
        match self {
            Docker::Installed => None,
            Docker::V26 => Some(&TRIXIE_26),
            Docker::V28 => Some(&SID_28),
        }
    }

    /// Docker 27 and later: ip6tables on by default, IPv6 on the default bridge without
    /// `fixed-cidr-v6`, no `experimental` needed for either.
    pub fn ipv6_by_default(self) -> bool {
        self == Docker::V28
    }
}

/// The most Docker hosts one link carries (node 1, the lab itself, and its peers).
pub const MAX_NODES: u8 = 9;

/// One lab, by name. Creating the value touches nothing.
#[derive(Debug)]
pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    pub host_ns: String,
    pub upstream_ns: String,
    /// Which Docker host of the link this is: 1 for a lab of its own (it owns the upstream
    /// namespace), 2 … [`MAX_NODES`] for a [`Lab::peer`].
    pub node: u8,
    /// dockerd, when this process started it (reaped by `down`).
    dockerd: Option<Child>,
}

impl Lab {
    pub fn new(name: &str) -> Result<Lab> {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !name.starts_with(['-', '.']);
        if !valid {
            bail!(
                "lab name {name:?}: use 1 to 32 characters out of [A-Za-z0-9._-], not starting with - or ."
            );
        }
        Ok(Lab {
            name: name.to_string(),
            dir: Path::new(BASE_DIR).join(name),
            host_ns: format!("{name}-host"),
            upstream_ns: format!("{name}-upstream"),
            node: 1,
            dockerd: None,
        })
    }

    /// Node `node` (2 … [`MAX_NODES`]) of this lab's link: a lab named `NAME-nNODE` whose host
    /// namespace is linked to this lab's upstream. Creating the value touches nothing; its `up`
    /// needs this lab's network up first.
    pub fn peer(&self, node: u8) -> Result<Lab> {
        if self.node != 1 || !(2..=MAX_NODES).contains(&node) {
            bail!(
                "lab {}: a peer is node 2 to {MAX_NODES} of a lab of its own",
                self.name
            );
        }
        let mut peer = Lab::new(&format!("{}-n{node}", self.name))?;
        peer.upstream_ns = self.upstream_ns.clone();
        peer.node = node;
        Ok(peer)
    }

    /// Whether this lab made (and so removes) the upstream namespace.
    pub(crate) fn owns_upstream(&self) -> bool {
        self.node == 1
    }

    /// The namespaces this lab removes on `down`.
    pub(crate) fn own_namespaces(&self) -> Vec<&str> {
        let mut namespaces = vec![self.host_ns.as_str()];
        if self.owns_upstream() {
            namespaces.push(self.upstream_ns.as_str());
        }
        namespaces
    }

    /// The host's IPv6 address on the link: [`HOST_V6`] for node 1, the next ones for peers.
    pub fn host_v6(&self) -> String {
        format!("2001:db8:1::{:x}", 0x10 + u16::from(self.node) - 1)
    }

    /// The host's IPv4 address on the link: [`HOST_V4`] for node 1, the next ones for peers.
    pub fn host_v4(&self) -> String {
        format!("198.51.100.{}", 10 + u16::from(self.node) - 1)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The value for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn cgroup_parent(&self) -> String {
        format!("dock6-lab-{}", self.name)
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("docker.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// `LAB/bin`: a link to the Docker bundle's programs when the lab runs one (Docker 26, 28).
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// `docker -H unix://LAB/docker.sock`, with a client config directory of its own; the
    /// bundle's client when the lab runs a bundled Docker, so client and server match.
    pub fn docker(&self) -> Command {
        let bundled = self.bin_dir().join("docker");
        let mut cmd = if bundled.exists() {
            Command::new(bundled)
        } else {
            Command::new("docker")
        };
        cmd.env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .arg("-H")
            .arg(self.docker_host());
        cmd
    }

    /// `PROGRAM` run in the host namespace (`nsenter --net=…`, so /sys is not remounted).
    pub fn in_host(&self, program: &str) -> Command {
        topology::in_netns(&self.host_ns, program)
    }

    /// `PROGRAM` run in the upstream namespace.
    pub fn in_upstream(&self, program: &str) -> Command {
        topology::in_netns(&self.upstream_ns, program)
    }

    /// `KEY=VALUE` pairs describing the lab (what `LAB/env` holds).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("DOCKER_HOST", self.docker_host()),
            ("DOCK6_LAB", self.name.clone()),
            ("DOCK6_LAB_DIR", self.dir.display().to_string()),
            ("DOCK6_LAB_HOST_NS", self.host_ns.clone()),
            ("DOCK6_LAB_UPSTREAM_NS", self.upstream_ns.clone()),
            ("DOCK6_LAB_UPLINK", HOST_UPLINK.to_string()),
        ];
        if self.bin_dir().exists() {
            // For `eval` in a shell: the bundle's client first, the rest of the PATH as it is.
            env.push(("PATH", format!("{}:$PATH", self.bin_dir().display())));
        }
        env
    }

    /// Brings the lab up. On error the partial lab stays for inspection (`dockerd.log`);
    /// `down()` removes it.
    pub fn up(&mut self, options: &Options) -> Result<()> {
        self.up_network()?;
        self.start_docker(options)
    }

    /// The namespaces and the link only: Docker not started yet (a host
    /// where dock6 starts before Docker).
    pub fn up_network(&mut self) -> Result<()> {
        if !is_root() {
            bail!("the lab needs root (network namespaces, dockerd)");
        }
        if !self.owns_upstream() && !topology::netns_exists(&self.upstream_ns) {
            bail!(
                "lab {}: the link's upstream {} is not up (bring node 1 up first)",
                self.name,
                self.upstream_ns
            );
        }
        if self.dir.exists()
            || self
                .own_namespaces()
                .iter()
                .any(|ns| topology::netns_exists(ns))
        {
            bail!(
                "lab {} exists already (or is left over): `cargo xtask lab down {}` first",
                self.name,
                self.name
            );
        }
        fs::create_dir_all(BASE_DIR).with_context(|| format!("create {BASE_DIR}"))?;
        fs::create_dir(&self.dir).with_context(|| format!("create {}", self.dir.display()))?;
        self.make_network()?;
        self.write_env()
    }

    /// `LAB/env`: the `export` lines of [`Lab::env`].
    fn write_env(&self) -> Result<()> {
        let mut env = String::new();
        for (key, value) in self.env() {
            env.push_str(&format!("export {key}={value}\n"));
        }
        fs::write(self.dir.join("env"), env)?;
        Ok(())
    }

    /// Starts the lab's dockerd (again) and makes sure the image exists.
    pub fn start_docker(&mut self, options: &Options) -> Result<()> {
        ensure_tools(options)?;
        self.link_bundle(options.docker)?;
        self.write_env()?;
        self.start_dockerd(options)?;
        self.ensure_image()
    }
}
