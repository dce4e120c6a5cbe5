//! The real kernel, in the bench's own network namespace: the agent
//! (`agent.rs`, a child process) fed a synthetic Docker view. Latency is
//! from writing an update to the agent's stdin to the agent's `reconciled`
//! log line, which it writes when the pass is over: the table committed
//! (the kernel's ack read) and the host parts and conntrack deletes done.
//! The bench does not listen to nftables notifications itself: every
//! listener makes the kernel build one message per committed object.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::report::{Panel, Row, count, median, millis, ms, percentile};
use crate::synthetic;

/// Existing containers of the default run.
pub const SIZES: [usize; 4] = [0, 1_000, 2_000, 10_000];
/// Add and remove events per size (each waits for its commit).
const EVENTS: usize = 200;
const RESYNCS: usize = 7;
/// How long without a pass counts as settled.
const QUIET: Duration = Duration::from_millis(300);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The rows at each of `sizes`; without `events`, only the full resync and
/// the RSS (`--only resync`).
pub fn rows(log: &std::path::Path, sizes: &[usize], events: bool) -> anyhow::Result<Vec<Row>> {
    uplink()?;
    measure(log, sizes, events)
}

/// A veth pair standing in for the uplink, with the address and default
/// route the synthetic host facts name (the namespace is the bench's own).
fn uplink() -> anyhow::Result<()> {
    let u = synthetic::UPLINK;
    for args in [
        vec!["link", "set", "lo", "up"],
        vec!["link", "add", u, "type", "veth", "peer", "name", "up1"],
        vec!["link", "set", u, "up"],
        vec!["link", "set", "up1", "up"],
        vec![
            "-6",
            "addr",
            "add",
            synthetic::UPLINK_ADDRESS,
            "dev",
            u,
            "nodad",
        ],
        vec![
            "-6",
            "route",
            "add",
            "default",
            "via",
            synthetic::ROUTER,
            "dev",
            u,
        ],
    ] {
        let status = Command::new("ip").args(&args).status()?;
        if !status.success() {
            bail!("ip {} failed", args.join(" "));
        }
    }
    Ok(())
}

fn measure(log: &std::path::Path, sizes: &[usize], events: bool) -> anyhow::Result<Vec<Row>> {
    let mut agent = Agent::spawn(log)?;
    agent.settle(QUIET); // the fail-closed table, before any snapshot
    let mut rows = Vec::new();
    let mut firsts = Vec::new();
    for &size in sizes {
        agent.send(&format!("full {size}"))?;
        agent.pass_done()?;
        agent.settle(QUIET);

        let mut resyncs = Vec::new();
        for _ in 0..RESYNCS {
            let t = Instant::now();
            agent.sighup()?;
            resyncs.push(agent.pass_done()? - t);
            agent.settle(Duration::from_millis(20));
        }

        if events {
            let (row, p50) = update_events(&mut agent, size)?;
            rows.push(row);
            firsts.push(p50);
        }
        let rss = agent.rss_kib()?;
        let resync = median(&resyncs);
        let (target, met) = match size {
            2_000 => ("≤ 50 ms", Some(resync <= Duration::from_millis(50))),
            10_000 => ("≤ 250 ms", Some(resync <= Duration::from_millis(250))),
            _ => ("", None),
        };
        let row = Row::new(
            format!("full resync (SIGHUP → atomic replace committed), median of {RESYNCS}"),
            format!("{}×10", count(size)),
            ms(resync),
        )
        .point(Panel::Time, "full resync (median)", size, millis(resync));
        rows.push(match met {
            Some(met) => row.target(target, met),
            None => row,
        });
        let (target, met) = match size {
            2_000 => ("≤ 20 MB", Some(rss <= 20 * 1024)),
            10_000 => ("≤ 40 MB", Some(rss <= 40 * 1024)),
            _ => ("", None),
        };
        let row = Row::new(
            "agent RSS (VmRSS after the events)",
            format!("{}×10", count(size)),
            format!("{:.1} MB", rss as f64 / 1024.0),
        )
        .point(Panel::Rss, "dock6 agent RSS", size, rss as f64 / 1024.0);
        rows.push(match met {
            Some(met) => row.target(target, met),
            None => row,
        });
    }
    if let (Some(first), Some(last)) = (firsts.first(), firsts.last()) {
        let ratio = last.as_secs_f64() / first.as_secs_f64().max(1e-9);
        rows.push(
            Row::new(
                "per-event cost, p50 at 10,000 / p50 at 0",
                "0 → 10,000 existing",
                format!("{ratio:.2}×"),
            )
            .target("≤ 2×", ratio <= 2.0),
        );
    }
    agent.stop();
    Ok(rows)
}

/// `EVENTS` adds and removes of one container beside `size` existing ones,
/// each waiting for its commit: the row, and the p50 of all of them.
fn update_events(agent: &mut Agent, size: usize) -> anyhow::Result<(Row, Duration)> {
    let (mut adds, mut removes) = (Vec::new(), Vec::new());
    for e in 0..EVENTS {
        let i = size + e;
        let t = Instant::now();
        agent.send(&format!("add {i}"))?;
        adds.push(agent.pass_done()? - t);
        let t = Instant::now();
        agent.send(&format!("remove {i}"))?;
        removes.push(agent.pass_done()? - t);
    }
    let at = format!("{} existing", count(size));
    let all: Vec<Duration> = adds.iter().chain(&removes).copied().collect();
    let p99 = percentile(&all, 99.0);
    let row = Row::new(
        format!("update → commit, add p50/p99 · remove p50/p99 ({EVENTS} each)"),
        at,
        format!(
            "{} / {} · {} / {}",
            ms(median(&adds)),
            ms(percentile(&adds, 99.0)),
            ms(median(&removes)),
            ms(percentile(&removes, 99.0))
        ),
    )
    .target("p99 ≤ 5 ms", p99 <= Duration::from_millis(5))
    .point(
        Panel::Time,
        "add → commit (p50)",
        size,
        millis(median(&adds)),
    )
    .point(
        Panel::Time,
        "add → commit (p99)",
        size,
        millis(percentile(&adds, 99.0)),
    )
    .point(
        Panel::Time,
        "remove → commit (p50)",
        size,
        millis(median(&removes)),
    )
    .point(
        Panel::Time,
        "remove → commit (p99)",
        size,
        millis(percentile(&removes, 99.0)),
    );
    Ok((row, median(&all)))
}

struct Agent {
    child: Child,
    stdin: ChildStdin,
    /// When each `reconciled` line of the agent's log was read.
    passes: Receiver<Instant>,
}

impl Agent {
    fn spawn(log: &std::path::Path) -> anyhow::Result<Agent> {
        let mut file =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("agent")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().context("the agent's stdin")?;
        let stderr = child.stderr.take().context("the agent's stderr")?;
        let (tx, passes) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("reconciled table=") {
                    let _ = tx.send(Instant::now());
                }
                let _ = writeln!(file, "{line}");
            }
        });
        Ok(Agent {
            child,
            stdin,
            passes,
        })
    }

    /// Waits for the end of the next pass that changed the table.
    fn pass_done(&self) -> anyhow::Result<Instant> {
        match self.passes.recv_timeout(COMMIT_TIMEOUT) {
            Ok(at) => Ok(at),
            Err(RecvTimeoutError::Timeout) => bail!("no pass within {COMMIT_TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => bail!("the agent is gone"),
        }
    }

    /// Waits until no pass has ended for `quiet`.
    fn settle(&self, quiet: Duration) {
        while self.passes.recv_timeout(quiet).is_ok() {}
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// SIGHUP: re-read the config and replace the whole table (`kill(1)`,
    /// whose start, about a millisecond, is in the figure).
    fn sighup(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -HUP {} failed", self.child.id());
        }
        Ok(())
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS in /proc/PID/status")
    }

    /// SIGTERM (the agent stops; its rules die with the namespace).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
