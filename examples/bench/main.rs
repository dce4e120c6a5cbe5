//! `cargo xtask bench`: dock6 at scale. Prints one table and the machine it
//! ran on; asserts nothing (targets are shown next to the figures).
//!
//! - plan + encode, no kernel: 1 … 10,000 containers × 10 published ports;
//! - the real kernel, in a network namespace of the bench's own: the agent
//!   fed a synthetic Docker view (update → commit latency, full resync, RSS);
//! - conntrack deletes beside 0 and 100,000 unrelated entries;
//! - with `--docker [20|26|28]` (the lab's Docker; 28 when no version is
//!   given), a real dockerd (the `dock6-lab` crate): `docker run -p` →
//!   reachable through dock6, Docker's own ip6tables and Docker's userland
//!   proxy, each against the container's own server at its own address; at
//!   10 and 1,000 running containers (or `--sizes`), so the default run
//!   leaves it out (`--only docker` runs it alone).
//!
//! For iterating on one part: `--only offline,resync,events,conntrack,docker`
//! (any of them; `resync` is the kernel part without the update events) and
//! `--sizes 2000,10000` (the container counts of the offline, kernel and
//! real-dockerd parts). Without them the bench prints the whole table.
//!
//! With `--out DIR`, it also writes the table as `DIR/bench.json` and draws
//! `DIR/bench.svg` (pass times and RSS against the number of containers;
//! `cargo xtask bench` passes `docs` for a whole run, `target/bench` for a
//! part).
//!
//! Needs root. It re-runs itself under `unshare -n`, so every kernel change
//! happens in a throw-away network namespace (the Docker lab makes its own):
//! `cargo build --release --bin dock6 --example bench && target/release/examples/bench`.

mod agent;
mod chart;
mod conntrack;
mod docker;
mod kernel;
mod offline;
mod report;
mod synthetic;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

const IN_NETNS: &str = "DOCK6_BENCH_IN_NETNS";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // Internal modes: the agent under test, the reachability probe.
        Some("agent") => return agent::main(),
        Some("probe") => {
            let (addr, port, until) = (args.get(1), args.get(2), args.get(3));
            return docker::probe(
                addr.context("address")?,
                port.context("port")?,
                until.map_or("open", String::as_str),
            );
        }
        _ => {}
    }
    let usage = "usage: bench [--docker [20|26|28]] [--only offline,resync,events,conntrack,docker] [--sizes N,…] [--out DIR]";
    let mut docker = None;
    let mut parts = Parts::all();
    let mut sizes: Option<Vec<usize>> = None;
    let mut out: Option<PathBuf> = None;
    let mut rest = args.iter().peekable();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--docker" => {
                let version = rest.next_if(|v| !v.starts_with("--"));
                let engine = match version {
                    Some(v) => dock6_lab::Docker::parse(v)?,
                    None => dock6_lab::Docker::V28,
                };
                docker = Some(engine);
            }
            "--only" => parts = Parts::parse(rest.next().context("--only needs a list")?)?,
            "--sizes" => {
                let list = rest.next().context("--sizes needs a list")?;
                let parsed = list
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("--sizes {list:?}"))?;
                sizes = Some(parsed);
            }
            "--out" => out = Some(rest.next().context("--out needs a folder")?.into()),
            other => bail!("{usage} (unknown argument {other:?})"),
        }
    }
    if std::env::var_os(IN_NETNS).is_none() {
        let status = Command::new("unshare")
            .arg("-n")
            .arg(std::env::current_exe()?)
            .args(&args)
            .env(IN_NETNS, "1")
            .status()
            .context("unshare -n (the bench needs root)")?;
        std::process::exit(status.code().unwrap_or(1));
    }

    let logs = std::env::temp_dir().join(format!("dock6-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let mut rows = Vec::new();
    if parts.offline {
        eprintln!("bench: plan + encode");
        rows.extend(offline::rows(sizes.as_deref().unwrap_or(&offline::SIZES))?);
    }
    if parts.resync || parts.events {
        eprintln!(
            "bench: the agent in the kernel (log: {})",
            logs.join("agent.log").display()
        );
        let kernel_sizes = sizes.as_deref().unwrap_or(&kernel::SIZES);
        rows.extend(kernel::rows(
            &logs.join("agent.log"),
            kernel_sizes,
            parts.events,
        )?);
    }
    if parts.conntrack {
        eprintln!("bench: conntrack");
        rows.extend(conntrack::rows(&logs.join("conntrack.txt"))?);
    }
    if let Some(engine) = docker {
        let docker_sizes = sizes.as_deref().unwrap_or(&docker::SIZES);
        rows.extend(docker::rows(engine, docker_sizes, &logs)?);
    }
    let shown: Vec<&str> = shown_args(&args);
    let command = format!("cargo xtask bench {}", shown.join(" "));
    let machine = machine();
    report::print(&machine, command.trim_end(), &rows);
    if let Some(dir) = out {
        write_outputs(&dir, &machine, command.trim_end(), &rows)?;
    }
    Ok(())
}

/// The arguments as the operator gave them to `cargo xtask bench` (without
/// the `--out` the xtask adds).
fn shown_args(args: &[String]) -> Vec<&str> {
    let mut shown = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--out" => {
                rest.next();
            }
            other => shown.push(other),
        }
    }
    shown
}

/// `bench.json` (the table) and `bench.svg` (the chart) in `dir`.
fn write_outputs(
    dir: &Path,
    machine: &str,
    command: &str,
    rows: &[report::Row],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let json = dir.join("bench.json");
    let text = serde_json::to_string_pretty(&report::json(machine, command, rows))?;
    std::fs::write(&json, text + "\n").with_context(|| format!("write {}", json.display()))?;
    let svg = dir.join("bench.svg");
    let points: Vec<report::Point> = rows.iter().flat_map(|r| r.points.clone()).collect();
    let title = format!("dock6 at scale · {machine}");
    chart::draw(&svg, &title, &points).with_context(|| format!("draw {}", svg.display()))?;
    eprintln!("bench: wrote {} and {}", json.display(), svg.display());
    Ok(())
}

/// Which parts of the bench run (`--only`; all by default).
struct Parts {
    offline: bool,
    resync: bool,
    events: bool,
    conntrack: bool,
}

impl Parts {
    fn all() -> Parts {
        Parts {
            offline: true,
            resync: true,
            events: true,
            conntrack: true,
        }
    }

    fn parse(list: &str) -> anyhow::Result<Parts> {
        let mut parts = Parts {
            offline: false,
            resync: false,
            events: false,
            conntrack: false,
        };
        for part in list.split(',') {
            match part.trim() {
                "offline" => parts.offline = true,
                "resync" => parts.resync = true,
                "events" => parts.events = true,
                "conntrack" => parts.conntrack = true,
                // The real-dockerd part alone (it runs with --docker).
                "docker" => {}
                other => {
                    bail!(
                        "--only: unknown part {other:?} (offline, resync, events, conntrack, docker)"
                    )
                }
            }
        }
        Ok(parts)
    }
}

/// CPU model, cores, memory, kernel.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or("?".into(), |kib| {
            format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!("machine: {model}, {cores} cores, {memory} RAM, Linux {kernel}")
}
