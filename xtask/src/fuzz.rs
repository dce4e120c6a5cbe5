//! `cargo xtask fuzz [SECONDS] [--parallel N]`: every cargo-fuzz target of
//! `fuzz/` for SECONDS each (default 60), from corpora seeded from the
//! golden scenarios and Docker's captured JSON. Not part of `cargo xtask
//! test`: it needs a nightly toolchain and minutes per target.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::{root_dir, run};

/// The targets, in the order they run.
const TARGETS: &[&str] = &["config", "labels", "docker_json", "snapshot_plan"];

const DEFAULT_SECONDS: u64 = 60;

pub fn cli(args: &[String]) -> Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut parallel = 1usize;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--parallel" => {
                let n = args.next().context("--parallel needs a number")?;
                parallel = n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("--parallel {n:?}: not a positive number"))?;
            }
            s => {
                seconds = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .with_context(|| format!("{s:?}: SECONDS must be a positive number"))?;
            }
        }
    }
    fuzz(seconds, parallel)
}

fn fuzz_dir() -> PathBuf {
    root_dir().join("fuzz")
}

/// `cargo +nightly …` through rustup's proxy, in `fuzz/`. Cargo's own
/// variables from the `cargo xtask` that runs us would pin the stable
/// toolchain, so they are cleared.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .current_dir(fuzz_dir())
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

fn fuzz(seconds: u64, parallel: usize) -> Result<()> {
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    for target in TARGETS {
        let n = seed(target)?;
        eprintln!("xtask: fuzz/corpus/{target}: {n} seed files");
    }
    // One build for all, so that parallel runs do not race to compile.
    let mut build = nightly_cargo();
    build.args(["fuzz", "build"]);
    run(build)?;

    let logs = fuzz_dir().join("artifacts").join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut results = Vec::new();
    let mut running: Vec<(&str, Child, PathBuf, Instant)> = Vec::new();
    let mut queue = TARGETS.iter();
    loop {
        while running.len() < parallel {
            let Some(target) = queue.next() else { break };
            let log = logs.join(format!("{target}.log"));
            eprintln!(
                "xtask: fuzzing {target} for {seconds} s (log: {})",
                log.display()
            );
            let child = start(target, seconds, &log)?;
            running.push((target, child, log, Instant::now()));
        }
        if running.is_empty() {
            break;
        }
        let (target, mut child, log, started) = running.remove(0);
        let status = child
            .wait()
            .with_context(|| format!("waiting for {target}"))?;
        let outcome = Outcome::read(target, &log, status.success(), started)?;
        eprintln!("xtask: {}", outcome.line());
        results.push(outcome);
    }

    eprintln!("\nxtask: fuzzing summary ({seconds} s per target)");
    for r in &results {
        eprintln!("  {}", r.line());
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.target)
        .collect();
    if !failed.is_empty() {
        bail!(
            "findings in {failed:?}: turn each artifact into a unit test (`cargo +nightly fuzz fmt TARGET ARTIFACT` shows the input)"
        );
    }
    Ok(())
}

fn start(target: &str, seconds: u64, log: &Path) -> Result<Child> {
    let out = fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = nightly_cargo();
    cmd.args(["fuzz", "run", target])
        .arg(format!("corpus/{target}"))
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-print_final_stats=1",
        ]);
    // JSON keys are long for byte mutations to stumble on: a dictionary of
    // them, where the target has one.
    let dict = fuzz_dir().join("dicts").join(format!("{target}.dict"));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    cmd.spawn()
        .with_context(|| format!("cannot start cargo fuzz run {target}"))
}

/// What one run reported, from libFuzzer's own lines.
struct Outcome {
    target: &'static str,
    passed: bool,
    /// `Done N runs in S second(s)`, else the last `#N` status line.
    runs: Option<u64>,
    /// libFuzzer's seconds when it finished, else the wall time.
    seconds: u64,
    artifact: Option<String>,
}

impl Outcome {
    fn read(target: &'static str, log: &Path, success: bool, started: Instant) -> Result<Outcome> {
        let text =
            fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
        let done = text.lines().rev().find_map(parse_done);
        let last_status = text.lines().rev().find_map(|l| {
            let rest = l.strip_prefix('#')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        });
        let artifact = text
            .lines()
            .find_map(|l| l.split_once("Test unit written to "))
            .map(|(_, path)| path.trim().to_string());
        Ok(Outcome {
            target,
            passed: success && done.is_some(),
            runs: done.map(|(runs, _)| runs).or(last_status),
            seconds: done
                .map(|(_, s)| s)
                .unwrap_or_else(|| started.elapsed().as_secs()),
            artifact,
        })
    }

    fn line(&self) -> String {
        let runs = self.runs.map_or("?".to_string(), |r| r.to_string());
        let rate = match self.runs {
            Some(r) if self.seconds > 0 => format!(" ({}/s)", r / self.seconds),
            _ => String::new(),
        };
        let result = match (&self.artifact, self.passed) {
            (_, true) => "no finding".to_string(),
            (Some(a), false) => format!("FINDING: {a}"),
            (None, false) => "FAILED (see its log)".to_string(),
        };
        format!(
            "{:<14} {:>5} s  {runs:>12} executions{rate}  {result}",
            self.target, self.seconds
        )
    }
}

/// libFuzzer's closing line: `Done 123 runs in 60 second(s)`.
fn parse_done(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("Done ")?;
    let (runs, rest) = rest.split_once(" runs in ")?;
    let seconds = rest.split_whitespace().next()?;
    Some((runs.parse().ok()?, seconds.parse().ok()?))
}

/// Copies the seeds of `target` into `fuzz/corpus/TARGET/` (kept between
/// runs: libFuzzer adds what it finds there). Returns how many were copied.
fn seed(target: &str) -> Result<usize> {
    let root = root_dir();
    let corpus = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&corpus).with_context(|| format!("cannot create {}", corpus.display()))?;
    let mut sources: Vec<(String, PathBuf)> = Vec::new();
    let rules = |file: &str| -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(root.join("rules")).context("cannot read rules/")? {
            let dir = entry?.path();
            let path = dir.join(file);
            if path.is_file() {
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                out.push((format!("rules-{}-{file}", name.unwrap_or_default()), path));
            }
        }
        Ok(out)
    };
    let dir_files = |dir: &Path, prefix: &str| -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(out);
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_file() {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                out.push((format!("{prefix}{}", name.unwrap_or_default()), path));
            }
        }
        Ok(out)
    };
    match target {
        "config" => sources.extend(rules("dock6.toml")?),
        "snapshot_plan" => sources.extend(rules("snapshot.json")?),
        "docker_json" => {
            let captured = root.join("tests/data/docker20.10");
            sources.extend(
                dir_files(&captured, "docker20.10-")?
                    .into_iter()
                    .filter(|(n, _)| n.ends_with(".json")),
            );
        }
        _ => {}
    }
    // Seeds chosen by hand, committed under fuzz/seeds/TARGET/.
    sources.extend(dir_files(&fuzz_dir().join("seeds").join(target), "seed-")?);
    for (name, path) in &sources {
        fs::copy(path, corpus.join(name))
            .with_context(|| format!("cannot copy {} into the corpus", path.display()))?;
    }
    Ok(sources.len())
}

fn ensure_nightly() -> Result<()> {
    let ok = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        bail!(
            "cargo fuzz needs a nightly toolchain (`rustup toolchain install nightly`); `rustup toolchain list` shows none"
        );
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = nightly_cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz");
    let mut install = Command::new("cargo");
    install.args(["install", "cargo-fuzz", "--locked"]);
    run(install)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_done_line() {
        assert_eq!(
            parse_done("Done 1234567 runs in 601 second(s)"),
            Some((1234567, 601))
        );
        assert_eq!(parse_done("#1024 pulse cov: 10"), None);
    }
}
