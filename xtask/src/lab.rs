//! A throwaway Docker lab: `cargo xtask lab up|down|status [NAME]`.
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
//! **For tests** (decision): this file is a self-contained, shell-free module (std + anyhow, which
//! both the xtask and the main crate have), so integration tests include it directly instead of
//! spawning `cargo xtask` (no nested cargo, no second build, typed access to addresses and names):
//!
//! ```ignore
//! #[path = "../xtask/src/lab.rs"]
//! mod lab;
//! let mut lab = lab::Lab::new("my-test-1234")?;   // unique name per test
//! lab.up(&lab::Options::default())?;               // call down() from a Drop guard, even if up fails
//! lab.docker().args(["run", "-d", "busybox", "sleep", "60"]);
//! lab.in_host("ip").args(["-6", "route"]);        // a command in the host namespace
//! lab.down()?;
//! ```
//!
//! Needs root, iproute2, util-linux (nsenter), tar, iptables, Debian's `docker.io` (only installed
//! when no `dockerd` is on the PATH) and `busybox-static` (installed when missing).
#![allow(dead_code)]

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, symlink};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

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

/// Directories outside the lab that Docker 20.10 / containerd 1.6 create whatever their roots:
/// dockerd's legacy plugin discovery directory and containerd's shim socket directory. `up`
/// records which did not exist before (`LAB/outside`); `down` removes those again when empty.
const OUTSIDE_DIRS: &[&str] = &[
    "/run/docker",
    "/run/docker/plugins",
    "/run/containerd",
    "/run/containerd/s",
];

/// The system containerd's socket, which dockerd would adopt.
pub const SYSTEM_CONTAINERD: &str = "/run/containerd/containerd.sock";

/// How long `up` waits for dockerd's socket to answer.
const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `down` waits after SIGTERM before SIGKILL.
const DOCKERD_STOP_TIMEOUT: Duration = Duration::from_secs(15);

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            userland_proxy: true,
            iptables: true,
            ip6tables: false,
        }
    }
}

/// One lab, by name. Creating the value touches nothing.
#[derive(Debug)]
pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    pub host_ns: String,
    pub upstream_ns: String,
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
            dockerd: None,
        })
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

    /// `docker -H unix://LAB/docker.sock`, with a client config directory of its own.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .arg("-H")
            .arg(self.docker_host());
        cmd
    }

    /// `PROGRAM` run in the host namespace (`nsenter --net=…`, so /sys is not remounted).
    pub fn in_host(&self, program: &str) -> Command {
        in_netns(&self.host_ns, program)
    }

    /// `PROGRAM` run in the upstream namespace.
    pub fn in_upstream(&self, program: &str) -> Command {
        in_netns(&self.upstream_ns, program)
    }

    /// `KEY=VALUE` pairs describing the lab (what `LAB/env` holds).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCKER_HOST", self.docker_host()),
            ("DOCK6_LAB", self.name.clone()),
            ("DOCK6_LAB_DIR", self.dir.display().to_string()),
            ("DOCK6_LAB_HOST_NS", self.host_ns.clone()),
            ("DOCK6_LAB_UPSTREAM_NS", self.upstream_ns.clone()),
            ("DOCK6_LAB_UPLINK", HOST_UPLINK.to_string()),
        ]
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
        if self.dir.exists() || netns_exists(&self.host_ns) || netns_exists(&self.upstream_ns) {
            bail!(
                "lab {} exists already (or is left over): `cargo xtask lab down {}` first",
                self.name,
                self.name
            );
        }
        fs::create_dir_all(BASE_DIR).with_context(|| format!("create {BASE_DIR}"))?;
        fs::create_dir(&self.dir).with_context(|| format!("create {}", self.dir.display()))?;
        self.make_network()?;
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
        self.start_dockerd(options)?;
        let have_image = self
            .docker()
            .args(["image", "inspect", IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !have_image.is_ok_and(|s| s.success()) {
            self.build_image()?;
        }
        Ok(())
    }

    /// Stops the lab's dockerd with SIGTERM (SIGKILL after a timeout), as a
    /// restart or an upgrade of Docker would; the namespaces stay.
    pub fn stop_docker(&mut self) -> Result<()> {
        let pid = fs::read_to_string(self.pidfile())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let pid = pid
            .or_else(|| self.dockerd.as_ref().map(|c| c.id() as i32))
            .context("no dockerd pid")?;
        if is_alive(pid) && cmdline(pid).contains(&self.dir.display().to_string()) {
            signal(pid, SIGTERM);
            if !wait_gone(&[pid], DOCKERD_STOP_TIMEOUT) {
                signal(pid, SIGKILL);
                wait_gone(&[pid], Duration::from_secs(5));
            }
        }
        if let Some(mut child) = self.dockerd.take() {
            let _ = child.wait();
        }
        Ok(())
    }

    fn make_network(&self) -> Result<()> {
        let (up, host) = (self.upstream_ns.as_str(), self.host_ns.as_str());
        run(Command::new("ip").args(["netns", "add", up]))?;
        run(Command::new("ip").args(["netns", "add", host]))?;
        for ns in [up, host] {
            // No duplicate address detection: addresses are usable at once.
            run(in_netns(ns, "sysctl").args([
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ]))?;
            ip(ns, &["link", "set", "lo", "up"])?;
        }
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
                UPSTREAM_LINK,
                "netns",
                up,
            ],
        )?;

        ip(
            up,
            &[
                "addr",
                "add",
                &format!("{UPSTREAM_INTERNET_V6}/128"),
                "dev",
                "lo",
            ],
        )?;
        ip(
            up,
            &[
                "addr",
                "add",
                &format!("{UPSTREAM_V6}/64"),
                "dev",
                UPSTREAM_LINK,
                "nodad",
            ],
        )?;
        ip(
            up,
            &[
                "addr",
                "add",
                &format!("{UPSTREAM_V4}/24"),
                "dev",
                UPSTREAM_LINK,
            ],
        )?;
        ip(up, &["link", "set", UPSTREAM_LINK, "up"])?;

        ip(
            host,
            &[
                "addr",
                "add",
                &format!("{HOST_V6}/64"),
                "dev",
                HOST_UPLINK,
                "nodad",
            ],
        )?;
        ip(
            host,
            &["addr", "add", &format!("{HOST_V4}/24"), "dev", HOST_UPLINK],
        )?;
        ip(host, &["link", "set", HOST_UPLINK, "up"])?;
        ip(
            host,
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                UPSTREAM_V6,
                "dev",
                HOST_UPLINK,
            ],
        )?;
        ip(
            host,
            &[
                "-4",
                "route",
                "add",
                "default",
                "via",
                UPSTREAM_V4,
                "dev",
                HOST_UPLINK,
            ],
        )?;
        Ok(())
    }

    fn daemon_json(&self, options: &Options) -> String {
        format!(
            r#"{{
  "ipv6": true,
  "fixed-cidr-v6": "{FIXED_CIDR_V6}",
  "ip6tables": {ip6tables},
  "experimental": {ip6tables},
  "iptables": {iptables},
  "userland-proxy": {proxy},
  "bip": "203.0.113.1/26",
  "default-address-pools": [{{"base": "203.0.113.64/26", "size": 28}}],
  "cgroup-parent": "{cgroup}",
  "shutdown-timeout": 2,
  "deprecated-key-path": "{key}"
}}
"#,
            iptables = options.iptables,
            ip6tables = options.ip6tables,
            proxy = options.userland_proxy,
            cgroup = self.cgroup_parent(),
            // Docker 20.10 otherwise creates /etc/docker/key.json (a daemon.json key, not a flag).
            key = self.dir.join("key.json").display(),
        )
    }

    fn start_dockerd(&mut self, options: &Options) -> Result<()> {
        // Without --containerd, dockerd uses a running system containerd when
        // it finds one: that would share state with the system's Docker.
        if Path::new(SYSTEM_CONTAINERD).exists() {
            bail!(
                "a system containerd is running ({SYSTEM_CONTAINERD}); a private dockerd would use it, so the lab refuses"
            );
        }
        let absent: Vec<&str> = OUTSIDE_DIRS
            .iter()
            .copied()
            .filter(|d| !Path::new(d).exists())
            .collect();
        fs::write(self.dir.join("outside"), absent.join("\n"))?;
        let config = self.dir.join("daemon.json");
        fs::write(&config, self.daemon_json(options))?;
        let log = fs::File::create(self.log_file())?;
        let mut cmd = self.in_host("dockerd");
        cmd.arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.pidfile())
            .arg("-H")
            .arg(self.docker_host())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal that ran `up` does not reach it.
            .process_group(0);
        let started = Instant::now();
        let child = cmd.spawn().context("cannot start dockerd")?;
        self.dockerd = Some(child);
        loop {
            let answered = self
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .output();
            if let Ok(out) = answered
                && out.status.success()
            {
                eprintln!(
                    "lab {}: dockerd {} answers after {:.1?}",
                    self.name,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    started.elapsed()
                );
                return Ok(());
            }
            if let Some(status) = self
                .dockerd
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "dockerd exited with {status}; its log:\n{}",
                    tail(&self.log_file(), 30)
                );
            }
            if started.elapsed() > DOCKERD_START_TIMEOUT {
                bail!(
                    "dockerd did not answer on {} within {DOCKERD_START_TIMEOUT:?}; its log:\n{}",
                    self.socket().display(),
                    tail(&self.log_file(), 30)
                );
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// `docker import` of a root holding Debian's static busybox and a symlink per applet.
    fn build_image(&self) -> Result<()> {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .context("no /bin/busybox (Debian's busybox-static)")?;
        let root = self.dir.join("image-root");
        let bin = root.join("bin");
        fs::create_dir_all(&bin)?;
        for dir in ["tmp", "etc", "proc", "sys", "dev", "root", "www"] {
            fs::create_dir_all(root.join(dir))?;
        }
        fs::copy(busybox, bin.join("busybox"))?;
        let list = output(Command::new(busybox).arg("--list"))?;
        for applet in list
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox")
        {
            symlink("busybox", bin.join(applet))?;
        }
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )?;
        fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
        let tarball = self.dir.join("busybox.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."))?;
        run(self
            .docker()
            .args([
                "import",
                "--change",
                r#"CMD ["sh"]"#,
                "--change",
                "ENV PATH=/bin",
            ])
            .arg(&tarball)
            .arg(format!("{IMAGE}:latest")))?;
        fs::remove_dir_all(&root)?;
        fs::remove_file(&tarball)?;
        Ok(())
    }

    /// Removes everything the lab made. Safe on a partial lab, and when nothing is left.
    pub fn down(&mut self) -> Result<()> {
        if !is_root() {
            bail!("the lab needs root");
        }
        let mut problems = Vec::new();
        // containerd 1.6 puts shim sockets in /run/containerd/s/ whatever its state directory:
        // note the lab's while its processes still live (unix sockets are listed per netns).
        let shim_sockets: Vec<PathBuf> = self
            .processes()
            .first()
            .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/net/unix")).ok())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(7))
            .filter(|p| p.starts_with("/run/containerd/s/"))
            .map(PathBuf::from)
            .collect();
        // 1. Containers first, with SIGKILL: dockerd's shutdown would otherwise wait for each
        //    container's stop timeout (busybox as PID 1 ignores SIGTERM).
        if self.socket().exists()
            && let Ok(ids) = output(self.docker().args(["ps", "-q"]))
        {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self
                    .docker()
                    .arg("kill")
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // 2. dockerd, by its pidfile (or our child).
        let pid = fs::read_to_string(self.pidfile())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let pid = pid.or_else(|| self.dockerd.as_ref().map(|c| c.id() as i32));
        if let Some(pid) = pid
            && is_alive(pid)
            && cmdline(pid).contains(&self.dir.display().to_string())
        {
            signal(pid, SIGTERM);
            if !wait_gone(&[pid], DOCKERD_STOP_TIMEOUT) {
                eprintln!(
                    "lab {}: dockerd {pid} ignored SIGTERM for {DOCKERD_STOP_TIMEOUT:?}: SIGKILL",
                    self.name
                );
                signal(pid, SIGKILL);
                wait_gone(&[pid], Duration::from_secs(5));
            }
        }
        if let Some(mut child) = self.dockerd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // 3. Whatever else lives in the lab: containerd, shims, docker-proxy, container processes.
        let leftovers = self.processes();
        if !leftovers.is_empty() {
            eprintln!(
                "lab {}: killing leftover processes {leftovers:?}",
                self.name
            );
            for &pid in &leftovers {
                signal(pid, SIGKILL);
            }
            if !wait_gone(&leftovers, Duration::from_secs(5)) {
                problems.push(format!("processes still alive: {:?}", self.processes()));
            }
        }
        // 4. Mounts under the lab directory (overlays, shm, netns files), deepest first.
        for _ in 0..3 {
            let mounts = mounts_under(&self.dir);
            if mounts.is_empty() {
                break;
            }
            for mount in mounts.iter().rev() {
                let _ = Command::new("umount")
                    .arg("--lazy")
                    .arg(mount)
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let mounts = mounts_under(&self.dir);
        if !mounts.is_empty() {
            problems.push(format!("still mounted: {mounts:?}"));
        }
        // 5. Namespaces (the veth pair goes with them).
        for ns in [&self.host_ns, &self.upstream_ns] {
            if netns_exists(ns)
                && let Err(e) = run(Command::new("ip").args(["netns", "delete", ns]))
            {
                problems.push(format!("{e:#}"));
            }
        }
        // 6. The cgroup parent, in every hierarchy (rmdir only removes empty cgroups).
        remove_cgroups(&self.cgroup_parent());
        for socket in shim_sockets.iter().filter(|s| s.exists()) {
            eprintln!(
                "lab {}: removing stale shim socket {}",
                self.name,
                socket.display()
            );
            let _ = fs::remove_file(socket);
        }
        // Directories outside the lab that did not exist before `up`, if empty, and only when no
        // other dockerd or containerd (another lab, the system's) may be using them.
        let outside = fs::read_to_string(self.dir.join("outside")).unwrap_or_default();
        let others = all_pids().into_iter().filter(|&p| is_alive(p)).any(|p| {
            fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| matches!(c.trim(), "dockerd" | "containerd"))
        });
        if !others {
            for dir in outside.lines().rev().filter(|l| !l.is_empty()) {
                let _ = fs::remove_dir(dir);
            }
        }
        // 7. The directory, only when nothing is mounted below it any more.
        if mounts.is_empty()
            && self.dir.exists()
            && let Err(e) = fs::remove_dir_all(&self.dir)
        {
            problems.push(format!("remove {}: {e}", self.dir.display()));
        }
        let _ = fs::remove_dir(BASE_DIR); // only when no other lab is left
        if !problems.is_empty() {
            bail!(
                "lab {} not completely removed:\n  {}",
                self.name,
                problems.join("\n  ")
            );
        }
        Ok(())
    }

    /// Pids living in the lab: in one of its namespaces (dockerd, containerd, shims, docker-proxy),
    /// in its cgroup parent (container processes: their root and executable are in a mount
    /// namespace of their own), or with their executable under the lab directory.
    pub fn processes(&self) -> Vec<i32> {
        let namespaces: Vec<String> = [&self.host_ns, &self.upstream_ns]
            .into_iter()
            .filter_map(|ns| fs::metadata(Path::new("/run/netns").join(ns)).ok())
            .map(|m| format!("net:[{}]", m.ino()))
            .collect();
        let cgroup = format!("/{}/", self.cgroup_parent());
        let me = std::process::id() as i32;
        let mut out = Vec::new();
        for pid in all_pids() {
            if pid == me || pid == 1 || !is_alive(pid) {
                continue;
            }
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let in_ns = fs::read_link(proc.join("ns/net"))
                .is_ok_and(|l| namespaces.iter().any(|n| l.as_os_str() == n.as_str()));
            let in_cgroup =
                fs::read_to_string(proc.join("cgroup")).is_ok_and(|c| c.contains(&cgroup));
            let exe_under = fs::read_link(proc.join("exe")).is_ok_and(|p| p.starts_with(&self.dir));
            if in_ns || in_cgroup || exe_under {
                out.push(pid);
            }
        }
        out
    }

    /// What exists of the lab, one line per item.
    pub fn status(&self) -> Vec<String> {
        let mut lines = vec![format!("lab {} ({})", self.name, self.dir.display())];
        lines.push(format!(
            "  directory: {}",
            if self.dir.exists() {
                "present"
            } else {
                "absent"
            }
        ));
        for ns in [&self.host_ns, &self.upstream_ns] {
            lines.push(format!(
                "  netns {ns}: {}",
                if netns_exists(ns) {
                    "present"
                } else {
                    "absent"
                }
            ));
        }
        let pid = fs::read_to_string(self.pidfile())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        lines.push(match pid {
            Some(pid) if is_alive(pid) => format!("  dockerd: pid {pid}"),
            Some(pid) => format!("  dockerd: pid {pid} is gone"),
            None => "  dockerd: no pidfile".into(),
        });
        if self.socket().exists() {
            match output(
                self.docker()
                    .args(["version", "--format", "{{.Server.Version}}"]),
            ) {
                Ok(v) => lines.push(format!("  docker: answers, server {}", v.trim())),
                Err(_) => lines.push("  docker: socket does not answer".into()),
            }
            if let Ok(ps) = output(self.docker().args([
                "ps",
                "--format",
                "{{.ID}} {{.Image}} {{.Status}} {{.Names}}",
            ])) {
                lines.extend(ps.lines().map(|l| format!("  container {l}")));
            }
        }
        lines.extend(
            mounts_under(&self.dir)
                .iter()
                .map(|m| format!("  mount {}", m.display())),
        );
        lines.extend(
            self.processes()
                .iter()
                .map(|p| format!("  process {p}: {}", cmdline(*p))),
        );
        lines
    }
}

/// `cargo xtask lab ARGS`.
pub fn cli(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask lab up [NAME] [--no-userland-proxy] [--no-iptables] [--ip6tables]\n       \
                 cargo xtask lab down [NAME]\n       cargo xtask lab status [NAME]\n\
                 NAME defaults to dock6-lab; `eval \"$(cargo xtask lab up)\"` sets DOCKER_HOST";
    let mut options = Options::default();
    let mut name = None;
    for arg in args.iter().skip(1) {
        match arg.as_str() {
            "--no-userland-proxy" => options.userland_proxy = false,
            "--no-iptables" => options.iptables = false,
            "--ip6tables" => options.ip6tables = true,
            "-h" | "--help" => {
                eprintln!("{usage}");
                return Ok(());
            }
            a if a.starts_with('-') => bail!("unknown option {a}\n{usage}"),
            a if name.is_none() => name = Some(a),
            a => bail!("unexpected argument {a}\n{usage}"),
        }
    }
    let mut lab = Lab::new(name.unwrap_or(DEFAULT_NAME))?;
    match args.first().map(String::as_str) {
        Some("up") => {
            let started = Instant::now();
            if let Err(e) = lab.up(&options) {
                bail!(
                    "{e:#}\nthe partial lab is left for inspection; remove it with `cargo xtask lab down {}`",
                    lab.name
                );
            }
            eprintln!(
                "lab {} is up after {:.1?}; {} holds:",
                lab.name,
                started.elapsed(),
                lab.dir.join("env").display()
            );
            let mut stdout = std::io::stdout().lock();
            for (key, value) in lab.env() {
                writeln!(stdout, "export {key}={value}")?;
            }
            eprintln!(
                "try: docker run --rm {IMAGE} ip -6 addr; nsenter --net=/run/netns/{} ip -6 route",
                lab.host_ns
            );
            Ok(())
        }
        Some("down") => {
            let started = Instant::now();
            lab.down()?;
            eprintln!("lab {} is down ({:.1?})", lab.name, started.elapsed());
            Ok(())
        }
        Some("status") => {
            for line in lab.status() {
                println!("{line}");
            }
            Ok(())
        }
        _ => bail!("{usage}"),
    }
}

// ---- helpers (no shell anywhere: every command is argv) ----

fn in_netns(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(program);
    cmd
}

fn ip(ns: &str, args: &[&str]) -> Result<()> {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(drop)
}

/// Runs to completion; stdout on success, an error with stderr otherwise.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin", "/usr/bin"]
            .iter()
            .any(|d| Path::new(d).join(program).is_file())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the Debian packages the lab needs, only those missing. An installed dockerd (any
/// origin) is used as it is; Debian's `docker.io` comes only where there is none.
/// Installs (Debian packages) what the lab needs and is missing; never over an installed Docker.
pub fn ensure_tools(options: &Options) -> Result<()> {
    let mut missing = Vec::new();
    for (program, package) in [
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("tar", "tar"),
    ] {
        if !on_path(program) {
            missing.push(package);
        }
    }
    if !on_path("dockerd") || !on_path("docker") {
        missing.push("docker.io");
    }
    if options.iptables && !on_path("iptables") {
        missing.push("iptables");
    }
    if !dpkg_installed("busybox-static") {
        missing.push("busybox-static");
    }
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("lab: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup parent is relative: runc puts it under dockerd's own cgroup in each hierarchy, which
/// need not be the root (here the memory hierarchy nests it under the session's cgroup). So look
/// for it a few levels down in every hierarchy.
fn remove_cgroups(parent: &str) {
    fn find(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if entry.file_name() == name {
                out.push(entry.path());
            } else if depth > 0 {
                find(&entry.path(), name, depth - 1, out);
            }
        }
    }
    let mut found = Vec::new();
    find(Path::new("/sys/fs/cgroup"), parent, 4, &mut found);
    for dir in found {
        rmdir_tree(&dir);
    }
}

/// rmdir, children first; cgroup directories cannot be removed any other way.
fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Alive and not a zombie.
fn is_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ") ".
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|s| s != "Z" && s != "X")
}

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn wait_gone(pids: &[i32], timeout: Duration) -> bool {
    let started = Instant::now();
    while pids.iter().any(|&p| is_alive(p)) {
        if started.elapsed() > timeout {
            return false;
        }
        sleep(Duration::from_millis(50));
    }
    true
}

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
    #[link_name = "geteuid"]
    fn lab_geteuid() -> u32;
}

fn signal(pid: i32, sig: i32) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    // SAFETY: kill(2) with a positive pid signals exactly that process; no memory is involved.
    unsafe {
        libc_kill(pid, sig);
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { lab_geteuid() == 0 }
}
