//! A real dockerd (the `dock6-lab` crate): background containers with two
//! published ports each (10 of them, then each of `--sizes`; 1,000 by
//! default; 250 to a network, see [`PER_NETWORK`]), then `docker run -p` → the port answering HTTP over IPv6 from
//! the upstream namespace, for three setups:
//!
//! - dock6, Docker's ip6tables off, userland proxy off (dock6's DNAT answers);
//! - Docker's own ip6tables, no dock6, userland proxy off (Docker's DNAT);
//! - Docker's userland proxy, no ip6tables, no dock6.
//!
//! Each against the floor of the same `docker run`: the container's own
//! server answering at its own address from the host namespace (no NAT, no
//! proxy, no firewall), the moment its port could first be reached at all.
//! Both probes are `bench probe` children (a connect with a 50 ms timeout
//! every 5 ms, then an HTTP request), polling before `docker run` starts;
//! the published-port probe also counts the connections that were neither
//! refused nor answered: a SYN dropped in silence (the connect timed out),
//! or a connection taken by Docker's placeholder socket and never answered.
//!
//! With dock6 at each size also: one `docker rm -f` → its port closed, dock6
//! started with every container running and no table of its own yet →
//! every port answering, a restart of Docker with them all (dock6's passes
//! and transactions), dock6's RSS, and the duration of the pass that follows
//! one `docker run`. Docker's own rules and the proxy are measured at the
//! smallest size only.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use dock6_lab::{Docker, HOST_V6, IMAGE, Lab, Options};

use crate::report::{Panel, Row, count, median, millis, ms, percentile};

/// The container counts of the real-dockerd part, besides the baseline.
pub const SIZES: [usize; 1] = [1000];
/// The size every other is compared with (per-event pass time).
const BASELINE: usize = 10;
/// The containers' networks, `bench`, `bench1`, …: IPv6 (ULA, so NAT66)
/// and IPv4, [`PER_NETWORK`] containers on each. The timed containers are
/// on `bench`.
const NETWORK: &str = "bench";
/// Containers per network. A bridge floods every multicast frame (each
/// neighbour solicitation) to all its ports, one packet per port queued at
/// once on the receiving core, whose queue holds 1,000
/// (`net.core.netdev_max_backlog`, one value for the whole machine): past
/// some 500 containers on one bridge, solicitations are dropped and new
/// containers cannot resolve their gateway. Hosts that large split their
/// containers over networks (or raise the backlog); the bench does the
/// former.
const PER_NETWORK: usize = 250;
/// Published ports per background container.
const PORTS: usize = 2;
const FIRST_PORT: usize = 10_000;
const RUNS: usize = 20;
/// `docker run`s of the background containers in flight at once.
const PARALLEL: usize = 4;

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Dock6,
    DockerIp6tables,
    UserlandProxy,
}

impl Setup {
    fn describe(self) -> &'static str {
        match self {
            Setup::Dock6 => "dock6's DNAT (Docker ip6tables off, userland proxy off)",
            Setup::DockerIp6tables => "Docker's own ip6tables, no dock6 (userland proxy off)",
            Setup::UserlandProxy => "Docker's userland proxy (no ip6tables, no dock6)",
        }
    }

    /// The setup's series in the chart.
    fn series(self) -> &'static str {
        match self {
            Setup::Dock6 => "docker run → answering: dock6",
            Setup::DockerIp6tables => "docker run → answering: Docker's ip6tables",
            Setup::UserlandProxy => "docker run → answering: userland proxy",
        }
    }

    fn options(self, docker: Docker) -> Options {
        Options {
            userland_proxy: self == Setup::UserlandProxy,
            iptables: true,
            ip6tables: self == Setup::DockerIp6tables,
            docker,
            daemon_extra: Vec::new(),
            // Time for dockerd to stop a thousand containers before it exits (see the field).
            shutdown_timeout: 900,
        }
    }
}

/// One `docker run -p` timed: to the published port from upstream, to the
/// container's own address from the host, and how many of the published
/// port's connections went unanswered (timed out, or connected and left
/// silent) before it answered.
struct Run {
    published: Duration,
    floor: Duration,
    unanswered: usize,
}

/// What one lab measured.
struct Figures {
    setup: Setup,
    size: usize,
    created: Duration,
    runs: Vec<Run>,
    dock6: Option<Dock6Figures>,
}

/// What only the dock6 lab measures.
struct Dock6Figures {
    pass_after_run: Vec<Duration>,
    rm_closed: Duration,
    sweep_alone: Duration,
    start_reconciled: Duration,
    start_all_answering: Duration,
    /// Or why Docker did not come back.
    restart: Result<Restart, String>,
    rss_kb: u64,
}

struct Restart {
    all_answering: Duration,
    passes: u64,
    transactions: u64,
}

pub fn rows(engine: Docker, sizes: &[usize], logs: &Path) -> anyhow::Result<Vec<Row>> {
    dock6_lab::ensure_tools(&Setup::UserlandProxy.options(engine))?;
    let version = docker_version(engine)?;
    let mut sizes: Vec<usize> = sizes.iter().copied().chain([BASELINE]).collect();
    sizes.sort();
    sizes.dedup();
    let mut figures = Vec::new();
    for &size in &sizes {
        eprintln!(
            "bench: Docker {version}: {} at {size}",
            Setup::Dock6.describe()
        );
        figures.push(measure(Setup::Dock6, size, engine, logs)?);
    }
    for setup in [Setup::DockerIp6tables, Setup::UserlandProxy] {
        eprintln!(
            "bench: Docker {version}: {} at {}",
            setup.describe(),
            sizes[0]
        );
        figures.push(measure(setup, sizes[0], engine, logs)?);
    }
    Ok(table(&version, &figures))
}

fn table(version: &str, figures: &[Figures]) -> Vec<Row> {
    let baseline_pass = figures
        .iter()
        .find(|f| f.setup == Setup::Dock6 && f.size == BASELINE)
        .and_then(|f| f.dock6.as_ref())
        .map(|d| median(&d.pass_after_run));
    let mut rows = Vec::new();
    for f in figures {
        let at = format!("Docker {version}, {}×{PORTS} running", count(f.size));
        rows.push(Row::new(
            format!(
                "{} containers × {PORTS} ports created (docker run, {PARALLEL} at a time): {}",
                count(f.size),
                f.setup.describe()
            ),
            at.clone(),
            format!("{:.1} s", f.created.as_secs_f64()),
        ));
        rows.extend(run_rows(f, &at));
        if let Some(d) = &f.dock6 {
            rows.extend(dock6_rows(f.size, d, baseline_pass, &at));
        }
    }
    rows
}

fn run_rows(f: &Figures, at: &str) -> Vec<Row> {
    let floors: Vec<Duration> = f.runs.iter().map(|r| r.floor).collect();
    let published: Vec<Duration> = f.runs.iter().map(|r| r.published).collect();
    let ratios: Vec<f64> = f
        .runs
        .iter()
        .map(|r| r.published.as_secs_f64() / r.floor.as_secs_f64())
        .collect();
    let median_ratio = median_f64(&ratios);
    let unanswered: usize = f.runs.iter().map(|r| r.unanswered).sum();
    let published_row = Row::new(
        format!(
            "docker run -p → answering from upstream, median / p99 of {RUNS} (median ratio to the floor of the same run): {}",
            f.setup.describe()
        ),
        at.to_string(),
        format!(
            "{} / {} ({median_ratio:.2}× floor)",
            ms(median(&published)),
            ms(percentile(&published, 99.0))
        ),
    )
    .point(
        Panel::Time,
        f.setup.series(),
        f.size,
        millis(median(&published)),
    );
    let silent_row = Row::new(
        format!(
            "connections to the published port neither refused nor answered (the SYN dropped: a 50 ms connect timeout; or connected and silent for 50 ms) before it answered, in {RUNS} runs: {}",
            f.setup.describe()
        ),
        at.to_string(),
        unanswered.to_string(),
    );
    let (published_row, silent_row) = if f.setup == Setup::Dock6 {
        (
            published_row.target("≤ 1.0× floor", median_ratio <= 1.0),
            silent_row.target("0", unanswered == 0),
        )
    } else {
        (published_row, silent_row)
    };
    let mut floor_row = Row::new(
        format!(
            "floor: docker run → the container's own server answering at its own address from the host, median / p99 of {RUNS}: {}",
            f.setup.describe()
        ),
        at.to_string(),
        format!(
            "{} / {}",
            ms(median(&floors)),
            ms(percentile(&floors, 99.0))
        ),
    );
    if f.setup == Setup::Dock6 {
        let series = "docker run → own address (floor, dock6's lab)";
        floor_row = floor_row.point(Panel::Time, series, f.size, millis(median(&floors)));
    }
    vec![floor_row, published_row, silent_row]
}

fn dock6_rows(
    size: usize,
    d: &Dock6Figures,
    baseline_pass: Option<Duration>,
    at: &str,
) -> Vec<Row> {
    let pass = median(&d.pass_after_run);
    let mut pass_row = Row::new(
        format!("dock6's pass after one docker run -p, median of {RUNS}"),
        at.to_string(),
        ms(pass),
    )
    .point(
        Panel::Time,
        "dock6's pass after docker run (real dockerd)",
        size,
        millis(pass),
    );
    if let Some(base) = baseline_pass.filter(|_| size != BASELINE) {
        let ratio = pass.as_secs_f64() / base.as_secs_f64();
        pass_row = Row {
            figure: format!("{} ({ratio:.2}× at {BASELINE})", ms(pass)),
            ..pass_row
        }
        .target(format!("≤ 2× at {BASELINE}"), ratio <= 2.0);
    }
    let ports = size * PORTS;
    vec![
        pass_row,
        Row::new(
            "docker rm -f → its published port closed (refused or silent) from upstream, dock6",
            at.to_string(),
            ms(d.rm_closed),
        ),
        Row::new(
            format!(
                "dock6 started, no table of its own yet → reconciled / every one of the {} ports answering from upstream (a sweep alone: {})",
                count(ports),
                ms(d.sweep_alone)
            ),
            at.to_string(),
            format!("{} / {}", ms(d.start_reconciled), ms(d.start_all_answering)),
        ),
        Row::new(
            format!(
                "Docker restarted (containers restarted by their policy) → every one of the {} ports answering: dock6's passes, transactions",
                count(ports)
            ),
            at.to_string(),
            match &d.restart {
                Ok(r) => format!(
                    "{:.1} s: {} passes, {} transactions",
                    r.all_answering.as_secs_f64(),
                    r.passes,
                    r.transactions
                ),
                Err(e) => format!("not measured: {e}"),
            },
        ),
        Row::new(
            "dock6 RSS",
            at.to_string(),
            format!("{:.1} MB", d.rss_kb as f64 / 1024.0),
        )
        .point(
            Panel::Rss,
            "dock6 RSS (real dockerd)",
            size,
            d.rss_kb as f64 / 1024.0,
        ),
    ]
}

fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
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

fn measure(setup: Setup, size: usize, engine: Docker, logs: &Path) -> anyhow::Result<Figures> {
    let name = format!("d6bench-{}", std::process::id());
    let mut guard = LabGuard(Lab::new(&name)?);
    let options = setup.options(engine);
    guard.0.up(&options)?;
    create_networks(&guard.0, size)?;
    let agent = Agent {
        log: logs.join(format!("dock6-docker-{size}.log")),
        socket: logs.join(format!("dock6-docker-{size}.sock")),
    };
    let mut dock6 = match setup {
        Setup::Dock6 => Some(agent.start(&guard.0)?),
        _ => None,
    };
    let t = Instant::now();
    start_background(&guard.0, size)?;
    let created = t.elapsed();
    eprintln!(
        "bench: {size}×{PORTS} created in {:.1} s",
        created.as_secs_f64()
    );
    // Let the background's events and passes finish before timing, and
    // the kernel's own work: each new container's first solicitations and
    // reports, flooded by its bridge to every port, keep the cores in
    // softirq for a minute and more after a thousand came up.
    std::thread::sleep(Duration::from_secs(2));
    let settled = settle();
    eprintln!(
        "bench: the host settled after {:.0} s (interrupt work under {SETTLED_PERCENT} % of the CPU)",
        settled.as_secs_f64()
    );
    let mut runs = Vec::new();
    let mut pass_after_run = Vec::new();
    for r in 0..RUNS {
        runs.push(timed_run(&guard.0, r)?);
        if dock6.is_some() {
            // The pass that took the container in, once it has ended.
            std::thread::sleep(Duration::from_millis(300));
            pass_after_run.push(agent.status()?.last_pass);
        }
    }
    let dock6 = match dock6.take() {
        Some(running) => Some(dock6_figures(
            &mut guard.0,
            &options,
            &agent,
            running,
            size,
            pass_after_run,
        )?),
        None => None,
    };
    Ok(Figures {
        setup,
        size,
        created,
        runs,
        dock6,
    })
}

/// The network of background container `i`.
fn network_of(i: usize) -> String {
    match i / PER_NETWORK {
        0 => NETWORK.to_string(),
        n => format!("{NETWORK}{n}"),
    }
}

/// The networks for `size` background containers (and the timed ones):
/// network `n` has `fd00:be:N::/64` and `10.200+N.0.0/20`.
/// The share of the CPUs' time in (soft) interrupts under which the host
/// counts as settled.
const SETTLED_PERCENT: u64 = 20;

/// Waits (up to 5 minutes) until the CPUs spend less than
/// [`SETTLED_PERCENT`] of 2 s in interrupts; how long that took.
fn settle() -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(300) {
        let (irq0, all0) = cpu_times();
        std::thread::sleep(Duration::from_secs(2));
        let (irq1, all1) = cpu_times();
        if (irq1 - irq0) * 100 < SETTLED_PERCENT * (all1 - all0).max(1) {
            break;
        }
    }
    started.elapsed()
}

/// (irq + softirq, all) jiffies of all CPUs, from `/proc/stat`.
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let irq = fields.get(5).copied().unwrap_or(0) + fields.get(6).copied().unwrap_or(0);
    (irq, fields.iter().take(8).sum())
}

fn create_networks(lab: &Lab, size: usize) -> anyhow::Result<()> {
    for n in 0..size.div_ceil(PER_NETWORK).max(1) {
        let (subnet6, subnet4) = (
            format!("fd00:be:{n:x}::/64"),
            format!("10.{}.0.0/20", 200 + n),
        );
        let out = lab
            .docker()
            .args(["network", "create", "--ipv6", "--subnet", &subnet6])
            .args(["--subnet", &subnet4, &network_of(n * PER_NETWORK)])
            .output()?;
        if !out.status.success() {
            bail!(
                "docker network create: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Run `r`: container `m{r}` at a fixed address of its own, published on
/// port 20000 + r; both probes polling before `docker run` starts.
fn timed_run(lab: &Lab, r: usize) -> anyhow::Result<Run> {
    let port = 20_000 + r;
    let own = format!("fd00:be::f:{r:x}");
    let published = Probe::start(
        lab.in_upstream(&bench_exe()?),
        HOST_V6,
        &port.to_string(),
        "open",
    )?;
    let floor = Probe::start(lab.in_host(&bench_exe()?), &own, "80", "open")?;
    let t = Probe::now();
    docker_run(lab, &format!("m{r}"), NETWORK, &[port], Some(&own))?;
    let (published_at, unanswered) = published.wait()?;
    let (floor_at, _) = floor.wait()?;
    Ok(Run {
        published: published_at.saturating_sub(t),
        floor: floor_at.saturating_sub(t),
        unanswered,
    })
}

fn dock6_figures(
    lab: &mut Lab,
    options: &Options,
    agent: &Agent,
    running: Dock6,
    size: usize,
    pass_after_run: Vec<Duration>,
) -> anyhow::Result<Dock6Figures> {
    let rss_kb = rss_kb(running.0.id())?;
    // One container removed: its port stops answering.
    let closed = Probe::start(lab.in_upstream(&bench_exe()?), HOST_V6, "20000", "closed")?;
    let t = Probe::now();
    docker(lab, &["rm", "-f", "m0"])?;
    let rm_closed = closed.wait()?.0.saturating_sub(t);
    let ports = format!("{FIRST_PORT}-{}", FIRST_PORT + size * PORTS - 1);
    let sweep = |lab: &Lab| Probe::start(lab.in_upstream(&bench_exe()?), HOST_V6, &ports, "open");
    let t = Probe::now();
    let sweep_alone = sweep(lab)?.wait()?.0.saturating_sub(t);
    // dock6 stopped, its table gone (a host booting with the containers).
    drop(running);
    let out = lab
        .in_host("nft")
        .args(["delete", "table", "inet", "dock6"])
        .output()?;
    if !out.status.success() {
        bail!(
            "nft delete table: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let all = sweep(lab)?;
    let t = Probe::now();
    let running = agent.start(lab)?;
    let start_reconciled = Probe::now().saturating_sub(t);
    let start_all_answering = all.wait()?.0.saturating_sub(t);
    let before = agent.status()?;
    let t = Probe::now();
    // dockerd stops its containers before it exits (a second each, some at a time).
    let restarted = lab
        .stop_docker_within(Duration::from_secs(900))
        .and_then(|()| lab.start_docker(options))
        .and_then(|()| Ok(sweep(lab)?.wait()?.0.saturating_sub(t)));
    // The passes the restart's last events brought.
    std::thread::sleep(Duration::from_secs(2));
    let after = agent.status()?;
    drop(running);
    // A Docker that did not come back is reported in its row; the other figures stand.
    let restart = restarted
        .map(|all_answering| Restart {
            all_answering,
            passes: after.passes.saturating_sub(before.passes),
            transactions: after.transactions.saturating_sub(before.transactions),
        })
        .map_err(|e| {
            eprintln!("bench: Docker did not come back: {e:#}");
            format!("{e:#}")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        });
    Ok(Dock6Figures {
        pass_after_run,
        rm_closed,
        sweep_alone,
        start_reconciled,
        start_all_answering,
        restart,
        rss_kb,
    })
}

fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

fn bench_exe() -> anyhow::Result<String> {
    Ok(std::env::current_exe()?.display().to_string())
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

/// Where the bench's dock6 logs and serves its status.
struct Agent {
    log: PathBuf,
    socket: PathBuf,
}

/// What the bench reads of `dock6 status --json`.
struct AgentStatus {
    passes: u64,
    transactions: u64,
    last_pass: Duration,
}

impl Agent {
    /// Starts dock6 in the lab's host namespace; returns once it has
    /// reconciled (logged in a fresh log).
    fn start(&self, lab: &Lab) -> anyhow::Result<Dock6> {
        let file = std::fs::File::create(&self.log)?;
        let child = lab
            .in_host(&dock6_binary()?.display().to_string())
            .args(["run", "--docker-host", &lab.docker_host()])
            .arg("--status-socket")
            .arg(&self.socket)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        let dock6 = Dock6(child);
        let deadline = Instant::now() + Duration::from_secs(600);
        while !std::fs::read_to_string(&self.log)?.contains("reconciled") {
            if Instant::now() > deadline {
                bail!(
                    "dock6 did not reconcile within 600 s; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(dock6)
    }

    fn status(&self) -> anyhow::Result<AgentStatus> {
        let out = Command::new(dock6_binary()?)
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()?;
        if !out.status.success() {
            bail!(
                "dock6 status: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let number = |v: &serde_json::Value| v.as_u64().context("not a number");
        Ok(AgentStatus {
            passes: number(&json["counters"]["passes"])?,
            transactions: number(&json["counters"]["transactions"])?,
            last_pass: Duration::from_secs_f64(
                json["last_pass"]["duration_ms"]
                    .as_f64()
                    .context("no last pass")?
                    / 1e3,
            ),
        })
    }
}

/// The background: containers `bg0…` with `PORTS` published ports each,
/// restarted by Docker when it restarts.
fn start_background(lab: &Lab, size: usize) -> anyhow::Result<()> {
    let chunks: Vec<Vec<usize>> = (0..size)
        .collect::<Vec<_>>()
        .chunks(size.div_ceil(PARALLEL))
        .map(<[usize]>::to_vec)
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || -> anyhow::Result<()> {
                    for i in chunk {
                        let ports: Vec<usize> =
                            (0..PORTS).map(|k| FIRST_PORT + i * PORTS + k).collect();
                        docker_run(lab, &format!("bg{i}"), &network_of(i), &ports, None)?;
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
/// (the same server, listening on each).
fn docker_run(
    lab: &Lab,
    name: &str,
    network: &str,
    host_ports: &[usize],
    address: Option<&str>,
) -> anyhow::Result<()> {
    let mut cmd = lab.docker();
    cmd.args(["run", "-d", "--name", name, "--network", network]);
    cmd.args(["--restart", "unless-stopped", "--stop-timeout", "1"]);
    if let Some(address) = address {
        cmd.args(["--ip6", address]);
    }
    for (k, port) in host_ports.iter().enumerate() {
        cmd.arg("-p").arg(format!("{port}:{}", 80 + k));
    }
    let listen: Vec<String> = (0..host_ports.len())
        .map(|k| format!("httpd -p {} -h /", 80 + k))
        .collect();
    cmd.args([
        IMAGE,
        "sh",
        "-c",
        &format!("{} && exec sleep 1000000", listen.join(" && ")),
    ]);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "docker run {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn docker(lab: &Lab, args: &[&str]) -> anyhow::Result<()> {
    let out = lab.docker().args(args).output()?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A `bench probe` child, polling since it said so.
struct Probe(Child);

impl Probe {
    fn start(mut command: Command, addr: &str, ports: &str, until: &str) -> anyhow::Result<Probe> {
        let mut child = command
            .args(["probe", addr, ports, until])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.as_mut().context("probe stdout")?;
        let mut ready = [0u8; 8];
        stdout.read_exact(&mut ready)?;
        if &ready != b"polling\n" {
            bail!("probe did not start: {ready:?}");
        }
        Ok(Probe(child))
    }

    /// When the probe saw what it waited for (as [`Probe::now`]), and how
    /// many of its connections went unanswered.
    fn wait(mut self) -> anyhow::Result<(Duration, usize)> {
        let stdout = self.0.stdout.take().context("probe stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let status = self.0.wait()?;
        if !status.success() {
            bail!("the probe gave up: {line}");
        }
        let mut words = line.split_whitespace();
        let at: u64 = words.next().context("probe: no time")?.parse()?;
        let unanswered: usize = words.next().context("probe: no count")?.parse()?;
        Ok((Duration::from_micros(at), unanswered))
    }

    /// The wall clock, shared by the bench and its probes in every
    /// namespace.
    fn now() -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// The probe itself (`probe ADDR PORT[-LAST] open|closed`): a connect to
/// `[addr]:port` with a 50 ms timeout every 5 ms, then an HTTP request,
/// until it answers (`open`, each port of the range in turn), or until the
/// connect fails (`closed`). Prints the time it saw that and how many
/// connections went unanswered (timed out, or connected and silent).
pub fn probe(addr: &str, ports: &str, until: &str) -> anyhow::Result<()> {
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>()?, b.parse::<u16>()?),
        None => (ports.parse::<u16>()?, ports.parse::<u16>()?),
    };
    let addr: std::net::Ipv6Addr = addr.parse()?;
    let open = match until {
        "open" => true,
        "closed" => false,
        other => bail!("probe: open or closed, not {other:?}"),
    };
    println!("polling");
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut unanswered = 0;
    for port in first..=last {
        let to = std::net::SocketAddr::from((addr, port));
        loop {
            if Instant::now() > deadline {
                bail!("{to} not {until} within 900 s");
            }
            match answers(&to) {
                Answer::Http if open => break,
                Answer::Refused | Answer::TimedOut if !open => break,
                Answer::TimedOut | Answer::Silent => unanswered += 1,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    println!("{} {unanswered}", Probe::now().as_micros());
    Ok(())
}

enum Answer {
    Http,
    /// Connected but no HTTP (a port Docker holds, with no DNAT yet).
    Silent,
    Refused,
    TimedOut,
}

fn answers(to: &std::net::SocketAddr) -> Answer {
    use std::io::Write as _;
    match std::net::TcpStream::connect_timeout(to, Duration::from_millis(50)) {
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = s.write_all(b"GET /etc/hostname HTTP/1.0\r\n\r\n");
            let mut head = [0u8; 5];
            if s.read_exact(&mut head).is_ok() && &head == b"HTTP/" {
                Answer::Http
            } else {
                Answer::Silent
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Answer::TimedOut,
        Err(_) => Answer::Refused,
    }
}
