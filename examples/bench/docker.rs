//! A real dockerd (the `dock6-lab` crate): 100 containers × 10 published
//! ports, then `docker run -p` → the port answering HTTP over IPv6 from the
//! upstream namespace (median of 20), for three setups in one run:
//!
//! - dock6, Docker's ip6tables off, userland proxy off (dock6's DNAT answers);
//! - Docker's own ip6tables, no dock6, userland proxy off (Docker's DNAT);
//! - the floor: ip6tables off, no dock6, Docker's userland proxy answering.
//!
//! The probe runs in the upstream namespace (`bench probe`, a child of its
//! own) and is polling before `docker run` starts; the time is from just
//! before `docker run` to the probe's first HTTP answer.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use dock6_lab::{Docker, HOST_V6, IMAGE, Lab, Options};

use crate::report::{Row, median, ms};

const BACKGROUND: usize = 100;
/// The containers' network: IPv6 (ULA, so NAT66) and a /25 for IPv4.
const NETWORK: &str = "bench";
const PORTS: usize = 10;
const RUNS: usize = 20;
/// `docker run`s of the background containers in flight at once.
const PARALLEL: usize = 4;

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Dock6,
    DockerIp6tables,
    Floor,
}

impl Setup {
    fn describe(self) -> &'static str {
        match self {
            Setup::Dock6 => "dock6 (Docker ip6tables off, userland proxy off)",
            Setup::DockerIp6tables => "Docker's own ip6tables, no dock6 (userland proxy off)",
            Setup::Floor => "floor: no dock6, ip6tables off, Docker's userland proxy",
        }
    }

    fn options(self, docker: Docker) -> Options {
        Options {
            userland_proxy: self == Setup::Floor,
            iptables: true,
            ip6tables: self == Setup::DockerIp6tables,
            docker,
            daemon_extra: Vec::new(),
        }
    }
}

pub fn rows(engine: Docker, logs: &Path) -> anyhow::Result<Vec<Row>> {
    dock6_lab::ensure_tools(&Setup::Floor.options(engine))?;
    let version = docker_version(engine)?;
    let mut figures = Vec::new();
    for setup in [Setup::Dock6, Setup::DockerIp6tables, Setup::Floor] {
        eprintln!("bench: Docker {version}: {}", setup.describe());
        figures.push((setup, measure(setup, engine, logs)?));
    }
    let floor = figures
        .iter()
        .find(|(s, _)| *s == Setup::Floor)
        .map(|(_, t)| *t)
        .context("no floor")?;
    let docker_own = figures
        .iter()
        .find(|(s, _)| *s == Setup::DockerIp6tables)
        .map(|(_, t)| *t)
        .context("no Docker ip6tables figure")?;
    let at = format!("Docker {version}, {BACKGROUND}×{PORTS} running");
    let mut rows = Vec::new();
    for (setup, time) in figures {
        let ratio = time.as_secs_f64() / floor.as_secs_f64();
        let row = Row::new(
            format!(
                "docker run -p → answering on IPv6, median of {RUNS}: {}",
                setup.describe()
            ),
            at.clone(),
            format!("{} ({ratio:.2}× floor)", ms(time)),
        );
        rows.push(match setup {
            Setup::Dock6 => row.target(
                "≤ 1.05× floor, < Docker's ip6tables",
                ratio <= 1.05 && time < docker_own,
            ),
            _ => row,
        });
    }
    Ok(rows)
}

/// The engine's version as dockerd reports it (`Docker version 28.5.2, build …`).
fn docker_version(engine: Docker) -> anyhow::Result<String> {
    let dockerd = match engine.bundle() {
        None => PathBuf::from("dockerd"),
        Some(bundle) => dock6_lab::ensure_bundle(bundle)?.join("dockerd"),
    };
    let out = Command::new(&dockerd).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    Ok(text
        .split_whitespace()
        .nth(2)
        .map(|v| v.trim_end_matches(',').to_string())
        .unwrap_or_else(|| engine.label().to_string()))
}

/// Takes the lab down when dropped, whatever happened.
struct LabGuard(Lab);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.down() {
            eprintln!("bench: lab {} down: {e:#}", self.0.name);
        }
    }
}

/// Stops the dock6 it holds (SIGTERM by its pid) when dropped.
struct Dock6(Child);

impl Drop for Dock6 {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn measure(setup: Setup, engine: Docker, logs: &Path) -> anyhow::Result<Duration> {
    let name = format!("d6bench-{}", std::process::id());
    let mut lab = LabGuard(Lab::new(&name)?);
    lab.0.up(&setup.options(engine))?;
    let lab = &lab.0;
    // The default bridge's IPv4 pool (a /26) holds fewer than 120 containers.
    let out = lab
        .docker()
        .args(["network", "create", "--ipv6", "--subnet", "fd00:be::/64"])
        .args(["--subnet", "203.0.113.128/25", NETWORK])
        .output()?;
    if !out.status.success() {
        bail!(
            "docker network create: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let _dock6 = match setup {
        Setup::Dock6 => Some(start_dock6(lab, &logs.join("dock6-docker.log"))?),
        _ => None,
    };
    start_background(lab)?;
    // Let the background's events and passes finish before timing.
    std::thread::sleep(Duration::from_secs(2));
    let mut times = Vec::new();
    for r in 0..RUNS {
        let port = 20_000 + r;
        let mut probe = Probe::start(lab, port)?;
        let t = Instant::now();
        docker_run(lab, &format!("m{r}"), &[port])?;
        probe.wait()?;
        times.push(t.elapsed());
    }
    Ok(median(&times))
}

fn dock6_binary() -> anyhow::Result<PathBuf> {
    // target/release/examples/bench → target/release/dock6
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("dock6"))
        .context("no target directory")?;
    if !bin.exists() {
        bail!(
            "{} missing: `cargo build --release --bin dock6` (cargo xtask bench does)",
            bin.display()
        );
    }
    Ok(bin)
}

fn start_dock6(lab: &Lab, log: &Path) -> anyhow::Result<Dock6> {
    let file = std::fs::File::create(log)?;
    let child = lab
        .in_host(&dock6_binary()?.display().to_string())
        .args(["run", "--docker-host", &lab.docker_host()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()?;
    let dock6 = Dock6(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(log)?.contains("reconciled") {
        if Instant::now() > deadline {
            bail!("dock6 did not reconcile within 30 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(dock6)
}

/// The background: containers `bg0…` with 10 published ports each.
fn start_background(lab: &Lab) -> anyhow::Result<()> {
    let chunks: Vec<Vec<usize>> = (0..BACKGROUND)
        .collect::<Vec<_>>()
        .chunks(BACKGROUND.div_ceil(PARALLEL))
        .map(<[usize]>::to_vec)
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || -> anyhow::Result<()> {
                    for i in chunk {
                        let ports: Vec<usize> =
                            (0..PORTS).map(|k| 10_000 + i * PORTS + k).collect();
                        docker_run(lab, &format!("bg{i}"), &ports)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a docker run thread panicked"))??;
        }
        Ok(())
    })
}

/// `docker run -d -p H:80 …` a busybox httpd; extra ports go to 81, 82, …
fn docker_run(lab: &Lab, name: &str, host_ports: &[usize]) -> anyhow::Result<()> {
    let mut cmd = lab.docker();
    cmd.args(["run", "-d", "--name", name, "--network", NETWORK]);
    for (k, port) in host_ports.iter().enumerate() {
        cmd.arg("-p").arg(format!("{port}:{}", 80 + k));
    }
    cmd.args([IMAGE, "httpd", "-f", "-p", "80", "-h", "/"]);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "docker run {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `bench probe` in the upstream namespace, polling `[HOST_V6]:port`.
struct Probe(Child);

impl Probe {
    fn start(lab: &Lab, port: usize) -> anyhow::Result<Probe> {
        let mut child = lab
            .in_upstream(&std::env::current_exe()?.display().to_string())
            .args(["probe", HOST_V6, &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("probe stdout")?;
        let mut ready = String::new();
        BufReader::new(stdout).read_line(&mut ready)?;
        if ready.trim() != "polling" {
            bail!("probe did not start: {ready:?}");
        }
        Ok(Probe(child))
    }

    fn wait(&mut self) -> anyhow::Result<()> {
        let status = self.0.wait()?;
        if !status.success() {
            bail!("the probe gave up: the port never answered");
        }
        Ok(())
    }
}

/// The probe itself: connects to `[addr]:port` again and again until an HTTP
/// answer comes (a connection that opens but says nothing, e.g. a port held
/// by Docker with its proxy off and no DNAT yet, is retried after 10 ms).
pub fn probe(addr: &str, port: &str) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let to: std::net::SocketAddr = format!("[{addr}]:{port}").parse()?;
    println!("polling");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&to, Duration::from_millis(50)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(10)));
            let _ = s.write_all(b"GET /etc/hostname HTTP/1.0\r\n\r\n");
            let mut head = [0u8; 5];
            if s.read_exact(&mut head).is_ok() && &head == b"HTTP/" {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    bail!("{to} did not answer within 60 s")
}
