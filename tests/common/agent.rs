//! `dock6 run` as a child process inside a lab's host namespace, logging to
//! a file; stopped with SIGTERM by its pid on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::docker_lab::DockerLab;
use super::netns::Netns;

pub struct Agent {
    child: Child,
    pub log: PathBuf,
    /// The dock6 process itself (not the same as `child` under a wrapper).
    pid: u32,
}

/// `command` (which ends in the dock6 binary) + `run --docker-host H
/// --config dir/dock6.toml`, logging to `dir/dock6.log`.
fn run_dock6(
    mut command: Command,
    docker_host: &str,
    dir: &Path,
    config: &str,
    env: &[(&str, &str)],
) -> (Child, PathBuf) {
    let config_path = dir.join("dock6.toml");
    std::fs::write(&config_path, with_daemon_json(config, dir)).expect("write dock6.toml");
    let log = dir.join("dock6.log");
    let file = File::create(&log).expect("create dock6.log");
    let child = command
        .args(["run", "--docker-host", docker_host, "--config"])
        .arg(&config_path)
        // Never the machine's /run/dock6/dock6.sock: a socket of the test's own.
        .arg("--status-socket")
        .arg(status_socket(dir))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone log file"))
        .stderr(file)
        .spawn()
        .expect("start dock6 run");
    (child, log)
}

/// `config` reading Docker's daemon.json from `dir` (where the lab writes the one its dockerd
/// runs with), never this machine's /etc/docker/daemon.json, unless it names one itself.
fn with_daemon_json(config: &str, dir: &Path) -> String {
    match config.contains("docker_daemon_json") {
        true => config.to_string(),
        false => format!(
            "docker_daemon_json = \"{}\"\n{config}",
            dir.join("daemon.json").display()
        ),
    }
}

/// Where an agent started in `dir` serves `dock6 status`.
pub fn status_socket(dir: &Path) -> PathBuf {
    dir.join("status.sock")
}

/// `dock6 status --json` of the agent serving `socket`, asked from the lab's host namespace.
#[allow(dead_code)] // Not every test binary asks.
pub fn status_json(lab: &DockerLab, socket: &Path) -> serde_json::Value {
    let out = lab
        .in_host(env!("CARGO_BIN_EXE_dock6"))
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .expect("dock6 status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

impl Agent {
    /// Starts `dock6 run` against the lab's dockerd, with `config` as its config file.
    pub fn start(lab: &DockerLab, config: &str) -> Agent {
        Agent::start_wrapped(lab, config, &[])
    }

    /// The same, run by `wrapper` (e.g. `unshare --pid --fork`), which
    /// either execs dock6 or, with `--fork`, runs it as its only child.
    pub fn start_wrapped(lab: &DockerLab, config: &str, wrapper: &[&str]) -> Agent {
        Agent::start_wrapped_env(lab, config, wrapper, &[])
    }

    /// The same with more environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub fn start_wrapped_env(
        lab: &DockerLab,
        config: &str,
        wrapper: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let (program, prefix) = match wrapper.split_first() {
            Some((program, args)) => (*program, args.to_vec()),
            None => (env!("CARGO_BIN_EXE_dock6"), vec![]),
        };
        let mut command = lab.in_host(program);
        if !wrapper.is_empty() {
            command.args(prefix).arg(env!("CARGO_BIN_EXE_dock6"));
        }
        let (child, log) = run_dock6(command, &lab.host(), &lab.lab.dir, config, env);
        let pid = match wrapper.contains(&"--fork") {
            true => only_child(child.id()),
            false => child.id(),
        };
        Agent { child, log, pid }
    }

    /// `dock6 run --docker-host DOCKER_HOST` in namespace `ns` (`ip netns
    /// exec` execs it: the child is dock6 itself), with `config` written to
    /// `dir/dock6.toml` and its log in `dir/dock6.log`.
    pub fn start_in(ns: &Netns, docker_host: &str, dir: &Path, config: &str) -> Agent {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_dock6")]);
        let (child, log) = run_dock6(command, docker_host, dir, config, &[]);
        let pid = child.id();
        Agent { child, log, pid }
    }

    /// The dock6 process's pid (in this test's pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the log holds `needle` (or panics after `timeout`, showing the log).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.wait_for_log_since(0, needle, timeout);
    }

    /// Polls `done` every 50 ms until it holds; panics with `what` and the
    /// log after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what} within {timeout:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where the log ends now: what is written after this is new.
    pub fn mark(&self) -> usize {
        self.log().len()
    }

    /// Waits until the log written after `mark` holds `needle` (or panics after `timeout`).
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().get(mark..).unwrap_or_default().contains(needle) {
            if Instant::now() > deadline {
                panic!(
                    "dock6 did not log {needle:?} within {timeout:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The highest `transactions=N` the agent has logged.
    pub fn transactions(&self) -> u64 {
        self.log()
            .split("transactions=")
            .skip(1)
            .filter_map(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .max()
            .unwrap_or(0)
    }

    /// The agent's resident set size, from /proc (KiB).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status.lines().find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
    }

    /// SIGHUP: dock6 reloads its config and takes a full Docker snapshot.
    pub fn reload(&self) {
        // SAFETY: kill(2) on the pid of dock6, our child (or its only child
        // under a wrapper), which has not been reaped.
        unsafe { libc::kill(self.pid as i32, libc::SIGHUP) };
    }

    /// SIGTERM, then wait; returns whether it exited with success.
    pub fn stop(&mut self) -> bool {
        // SAFETY: kill(2) on the pid of dock6, our child (or its only child
        // under a wrapper), which has not been reaped.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.is_running() {
            self.stop();
        }
        // A failed test's lab (and this log with it) is removed next: keep
        // the agent's last lines in the test's output.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- the last {} lines of {} ---\n{}",
                tail.len(),
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}

/// The one child of process `pid`, waited for (a wrapper forks it).
fn only_child(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(child) = children
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
        {
            return child;
        }
        assert!(Instant::now() < deadline, "process {pid} started no child");
        std::thread::sleep(Duration::from_millis(10));
    }
}
