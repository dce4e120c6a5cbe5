//! One guest under `qemu-system-x86_64`: the kernel and its initramfs, the serial console on
//! stdout, read line by line into a log and parsed for the guest's result lines.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::guest::{DONE, OUTPUT, RESULT, UP};

/// How the guest's CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (/dev/kvm), where it runs stock kernels.
    Kvm,
    /// qemu's own emulation: slower, works everywhere.
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG (emulated CPU)",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            // The default CPU model: `-cpu host` and `max` ask for MSRs a nested KVM may lack.
            Accel::Kvm => &["-accel", "kvm"],
            Accel::Tcg => &["-accel", "tcg", "-cpu", "max"],
        }
    }
}

/// One check's outcome as the guest reported it.
#[derive(Clone, Debug)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    /// Wall-clock time in the guest.
    pub seconds: f64,
    /// qemu's CPU time meanwhile: what the check costs where qemu has a core to itself.
    pub cpu_seconds: f64,
    /// The check's output (failed checks only).
    pub output: Vec<String>,
    /// `exit=N` of a failed check (124: the guest's per-check timeout).
    pub detail: String,
}

/// What one boot gave.
#[derive(Debug)]
pub enum Boot {
    /// The guest never printed its first line within the time given for it.
    NotUp,
    Ran(GuestRun),
}

#[derive(Debug)]
pub struct GuestRun {
    pub results: Vec<CheckResult>,
    /// The guest printed its last line (every check ran).
    pub finished: bool,
    /// From qemu's start to the guest's `/init`.
    pub boot: Duration,
    pub total: Duration,
    /// qemu's CPU time until the guest's last line.
    pub cpu: Duration,
    /// Why it ended early: the timeout, or qemu's exit.
    pub ended_early: Option<String>,
}

/// Boots `vmlinuz` with `initrd`, logs the console to `log`; gives up (kills qemu) when the guest
/// is not up within `up_within` or not done within `timeout`.
pub fn boot(
    accel: Accel,
    vmlinuz: &Path,
    initrd: &Path,
    log: &Path,
    up_within: Duration,
    timeout: Duration,
) -> Result<Boot> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(accel.args())
        .args(["-smp", "1", "-m", "1024", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio", "-net", "none"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start qemu-system-x86_64 (Debian's qemu-system-x86)")?;
    let lines = read_lines(&mut child)?;
    let mut log = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let started = Instant::now();
    let outcome = follow(&lines, &mut log, child.id(), started, up_within, timeout);
    // Our own child, by its handle: ends qemu whether the guest is done, stuck or early.
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// qemu's stdout and stderr, line by line, from two reader threads.
fn read_lines(child: &mut Child) -> Result<Receiver<String>> {
    let (tx, rx) = channel();
    let stdout = child.stdout.take().context("qemu stdout")?;
    let stderr = child.stderr.take().context("qemu stderr")?;
    let err_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if err_tx.send(format!("qemu: {line}")).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// CPU time (user + system) of process `pid` so far; zero when it cannot be read.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks of 1/100 s.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn follow(
    lines: &Receiver<String>,
    log: &mut File,
    pid: u32,
    started: Instant,
    up_within: Duration,
    timeout: Duration,
) -> Result<Boot> {
    let mut run = GuestRun {
        results: Vec::new(),
        finished: false,
        boot: Duration::ZERO,
        total: Duration::ZERO,
        cpu: Duration::ZERO,
        ended_early: None,
    };
    let mut cpu_before = Duration::ZERO;
    let mut up = false;
    let mut output: Vec<String> = Vec::new();
    loop {
        let limit = if up { timeout } else { up_within.min(timeout) };
        let left = limit.saturating_sub(started.elapsed());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line.trim_end_matches('\r').to_string(),
            Err(RecvTimeoutError::Timeout) if !up => return Ok(Boot::NotUp),
            Err(RecvTimeoutError::Timeout) => {
                run.ended_early = Some(format!("the guest did not finish within {timeout:?}"));
                break;
            }
            Err(RecvTimeoutError::Disconnected) => {
                if !run.finished {
                    run.ended_early = Some("qemu exited before the guest finished".into());
                }
                break;
            }
        };
        writeln!(log, "{line}")?;
        let cpu = cpu_time(pid);
        run.cpu = cpu.max(run.cpu);
        if line.starts_with(UP) {
            up = true;
            run.boot = started.elapsed();
            cpu_before = cpu;
        } else if line.starts_with(DONE) {
            run.finished = true;
            break;
        } else if let Some(rest) = line.strip_prefix(RESULT) {
            if let Some(mut result) = parse_result(rest, std::mem::take(&mut output)) {
                result.cpu_seconds = cpu.saturating_sub(cpu_before).as_secs_f64();
                run.results.push(result);
            }
            cpu_before = cpu;
        } else if let Some(text) = line.strip_prefix(OUTPUT) {
            output.push(text.to_string());
        } else if !up && line.contains("Kernel panic") {
            output.push(line);
        }
    }
    if !up && run.ended_early.is_some() {
        run.ended_early = Some(format!(
            "{} (the guest never started /init)",
            run.ended_early.take().unwrap_or_default()
        ));
    }
    run.total = started.elapsed();
    Ok(Boot::Ran(run))
}

/// ` pass|fail NAME START END [exit=N]`.
fn parse_result(rest: &str, output: Vec<String>) -> Option<CheckResult> {
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let [verdict, name, start, end, detail @ ..] = &fields[..] else {
        return None;
    };
    let seconds = end.parse::<f64>().ok()? - start.parse::<f64>().ok()?;
    Some(CheckResult {
        name: name.to_string(),
        passed: *verdict == "pass",
        seconds,
        cpu_seconds: 0.0,
        output,
        detail: detail.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_is_parsed_with_the_output_before_it() {
        let r = parse_result(
            " fail golden:nptv6 12.50 14.75 exit=101",
            vec!["replace_table: Operation not supported".into()],
        )
        .expect("parsed");
        assert_eq!(r.name, "golden:nptv6");
        assert!(!r.passed);
        assert!((r.seconds - 2.25).abs() < 1e-9);
        assert_eq!(r.detail, "exit=101");
        assert_eq!(r.output, ["replace_table: Operation not supported"]);
        assert!(parse_result(" pass x 1", vec![]).is_none());
    }
}
