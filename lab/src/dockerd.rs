//! The lab's private dockerd: its config file, starting it in the host namespace and waiting for
//! its socket, stopping it by its pidfile, and refusing to start where a system containerd runs.

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::bundle::ensure_bundle;
use crate::sys::{SIGKILL, SIGTERM, cmdline, is_alive, signal, tail, wait_gone};
use crate::{Docker, FIXED_CIDR_V6, Lab, Options};

/// Directories outside the lab that Docker creates whatever its roots: dockerd's legacy plugin
/// discovery directory and containerd's shim socket directory (20.10 / containerd 1.6 and
/// 28 / containerd 2.1), and containerd 2's `opt` plugin directory. `up` records which did not
/// exist before (`LAB/outside`); `down` removes those again when empty.
pub(crate) const OUTSIDE_DIRS: &[&str] = &[
    "/run/docker",
    "/run/docker/plugins",
    "/run/containerd",
    "/run/containerd/s",
    "/opt/containerd",
    "/opt/containerd/bin",
    "/opt/containerd/lib",
];

/// Directories outside any lab that some lab made (one per line, appended by each `up`),
/// removed by the last lab to go down.
pub(crate) const SHARED_OUTSIDE: &str = "/run/dock6-lab/outside";

/// The system containerd's socket, which dockerd would adopt.
pub const SYSTEM_CONTAINERD: &str = "/run/containerd/containerd.sock";

/// How long `up` waits for dockerd's socket to answer.
const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `down` waits after SIGTERM before SIGKILL.
pub(crate) const DOCKERD_STOP_TIMEOUT: Duration = Duration::from_secs(15);

impl Lab {
    /// Stops the lab's dockerd with SIGTERM (SIGKILL after a timeout), as a
    /// restart or an upgrade of Docker would; the namespaces stay.
    pub fn stop_docker(&mut self) -> Result<()> {
        self.stop_docker_within(DOCKERD_STOP_TIMEOUT)
    }

    /// The same, waiting up to `wait` for dockerd to stop its containers (it stops them
    /// one `--stop-timeout` each, some at a time: a thousand take minutes) before SIGKILL.
    pub fn stop_docker_within(&mut self, wait: Duration) -> Result<()> {
        let pid = self.dockerd_pid().context("no dockerd pid")?;
        if self.is_lab_dockerd(pid) {
            terminate_within(pid, wait);
        }
        if let Some(mut child) = self.dockerd.take() {
            let _ = child.wait();
        }
        Ok(())
    }

    /// dockerd's pid: its pidfile's, else that of the child this process started.
    pub(crate) fn dockerd_pid(&self) -> Option<i32> {
        fs::read_to_string(self.pidfile())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .or_else(|| self.dockerd.as_ref().map(|c| c.id() as i32))
    }

    /// Whether `pid` is alive and still this lab's dockerd (its command line names the lab
    /// directory), so a stale pidfile never makes us signal an unrelated process.
    pub(crate) fn is_lab_dockerd(&self, pid: i32) -> bool {
        is_alive(pid) && cmdline(pid).contains(&self.dir.display().to_string())
    }

    /// `LAB/bin` → the bundle's programs, and the compose plugin in the lab's client config
    /// directory, when the lab runs a bundled Docker; nothing for the installed one.
    pub(crate) fn link_bundle(&self, docker: Docker) -> Result<()> {
        let Some(bundle) = docker.bundle() else {
            return Ok(());
        };
        if self.bin_dir().exists() {
            return Ok(());
        }
        let bin = ensure_bundle(bundle)?;
        symlink(&bin, self.bin_dir())?;
        let plugins = self.dir.join("client/cli-plugins");
        fs::create_dir_all(&plugins)?;
        symlink(bin.join("docker-compose"), plugins.join("docker-compose"))?;
        Ok(())
    }

    fn daemon_json(&self, options: &Options) -> String {
        let version_keys = match options.docker {
            // ip6tables is experimental in 20.10; without deprecated-key-path it writes
            // /etc/docker/key.json (a daemon.json key, not a flag).
            Docker::Installed => format!(
                r#"  "experimental": {ip6tables},
  "deprecated-key-path": "{key}","#,
                ip6tables = options.ip6tables,
                key = self.dir.join("key.json").display(),
            ),
            // 26 still needs experimental for ip6tables; since 25 no key.json is written.
            Docker::V26 => format!(r#"  "experimental": {},"#, options.ip6tables),
            // 28 has neither key; ip6tables is on by default from 27, so it is always written out.
            Docker::V28 => String::new(),
        };
        let extra: String = options
            .daemon_extra
            .iter()
            .map(|member| format!("  {member},\n"))
            .collect();
        format!(
            r#"{{
  "ipv6": true,
  "fixed-cidr-v6": "{FIXED_CIDR_V6}",
  "ip6tables": {ip6tables},
{version_keys}
{extra}  "iptables": {iptables},
  "userland-proxy": {proxy},
  "bip": "203.0.113.1/26",
  "default-address-pools": [{{"base": "203.0.113.64/26", "size": 28}}],
  "cgroup-parent": "{cgroup}",
  "shutdown-timeout": {shutdown_timeout}
}}
"#,
            iptables = options.iptables,
            ip6tables = options.ip6tables,
            proxy = options.userland_proxy,
            cgroup = self.cgroup_parent(),
            shutdown_timeout = options.shutdown_timeout,
        )
    }

    /// dockerd in the host namespace, answering on the lab's socket when this returns.
    pub(crate) fn start_dockerd(&mut self, options: &Options) -> Result<()> {
        refuse_system_containerd()?;
        self.record_outside_dirs()?;
        let config = self.dir.join("daemon.json");
        fs::write(&config, self.daemon_json(options))?;
        let mut cmd = self.dockerd_command(&config)?;
        let started = Instant::now();
        let child = cmd.spawn().context("cannot start dockerd")?;
        self.dockerd = Some(child);
        self.wait_for_dockerd(started)
    }

    /// Notes which of [`OUTSIDE_DIRS`] do not exist yet, for `down`: in `LAB/outside`, and in
    /// the record all labs share ([`SHARED_OUTSIDE`]). Labs overlap (tests run several at once):
    /// the one that made a directory is often not the last to go down, and only the last may
    /// remove it.
    fn record_outside_dirs(&self) -> Result<()> {
        let absent: Vec<&str> = OUTSIDE_DIRS
            .iter()
            .copied()
            .filter(|d| !Path::new(d).exists())
            .collect();
        fs::write(self.dir.join("outside"), absent.join("\n"))?;
        if !absent.is_empty() {
            let mut shared = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(SHARED_OUTSIDE)?;
            std::io::Write::write_all(&mut shared, format!("{}\n", absent.join("\n")).as_bytes())?;
        }
        Ok(())
    }

    /// `dockerd` with every root, file and socket under the lab directory, logging to
    /// `dockerd.log`.
    fn dockerd_command(&self, config: &Path) -> Result<Command> {
        let log = fs::File::create(self.log_file())?;
        let bundled = self.bin_dir();
        let mut cmd = if bundled.exists() {
            // The bundle first on PATH: dockerd finds containerd, docker-proxy and docker-init
            // there, containerd the shim, the shim runc.
            let path =
                std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
            let mut cmd = self.in_host(&bundled.join("dockerd").display().to_string());
            cmd.env("PATH", format!("{}:{path}", bundled.display()));
            cmd
        } else {
            self.in_host("dockerd")
        };
        cmd.arg("--config-file")
            .arg(config)
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.pidfile())
            .arg("-H")
            .arg(self.docker_host())
            // No registry is reachable: a swarm task would first try to pull its image and wait
            // for the lookup to fail (about 20 s) before using the local one.
            .env("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal that ran `up` does not reach it.
            .process_group(0);
        Ok(cmd)
    }

    /// Polls `docker version` until the server answers; fails with the log's tail when dockerd
    /// exits or does not answer within [`DOCKERD_START_TIMEOUT`].
    fn wait_for_dockerd(&mut self, started: Instant) -> Result<()> {
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
}

/// Without `--containerd`, dockerd uses a running system containerd when it finds one: that
/// would share state with the system's Docker.
fn refuse_system_containerd() -> Result<()> {
    if Path::new(SYSTEM_CONTAINERD).exists() {
        bail!(
            "a system containerd is running ({SYSTEM_CONTAINERD}); a private dockerd would use it, so the lab refuses"
        );
    }
    Ok(())
}

/// SIGTERM, then SIGKILL after [`DOCKERD_STOP_TIMEOUT`]; false when SIGKILL was needed.
pub(crate) fn terminate(pid: i32) -> bool {
    terminate_within(pid, DOCKERD_STOP_TIMEOUT)
}

/// SIGTERM, then SIGKILL after `wait`; false when SIGKILL was needed.
fn terminate_within(pid: i32, wait: Duration) -> bool {
    signal(pid, SIGTERM);
    if wait_gone(&[pid], wait) {
        return true;
    }
    signal(pid, SIGKILL);
    wait_gone(&[pid], Duration::from_secs(5));
    false
}
