//! `cargo xtask kernels [--only 5.10,6.1] [--accel kvm|tcg] [--timeout SECS]`: dock6's kernel
//! tests on Debian's own kernels under qemu, one guest at a time.
//!
//! The kernels are the packages `xtask/kernels.txt` records (`fetch`); each boots with an
//! initramfs made here (`initramfs`) whose `/init` runs the checks (`guest`): every golden
//! scenario applied over netlink and listed identically to `nft -f` of its text, the in-place
//! whole-table replace, traffic across veths in namespaces (NAT66 egress, a DNAT'ed published
//! port keeping the client's address), the conntrack delete of a removed mapping, and the agent
//! (`run_fed`) reaching a converged pass and restoring its table after `nft flush ruleset`. Each
//! check is a test of the workspace, built by `cargo test --no-run`. KVM is used where a guest
//! boots with it at once, TCG otherwise; the run says which. A check that fails, or a guest that
//! does not finish within the timeout, fails the run, naming the kernel, the check and the
//! check's output (the kernel's error).

mod fetch;
mod guest;
mod initramfs;
mod qemu;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, root_dir, target_dir};
use qemu::{Accel, Boot, CheckResult, GuestRun};

/// Debian packages the matrix needs besides the test's own: qemu (without its recommended
/// desktop packages), kmod for `depmod -b` and the guest's modprobe, the static busybox, and
/// netbase's /etc/protocols (nft names protocols from it).
pub const PACKAGES: &[&str] = &["qemu-system-x86", "kmod", "busybox-static", "netbase"];

/// What a KVM guest gets to reach `/init` before TCG is used instead (a working KVM boots in
/// about a second; an emulated CPU in a few).
const KVM_PROBE: Duration = Duration::from_secs(6);
/// What a TCG guest gets to reach `/init`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default for `--timeout`: one guest's whole run.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// What every guest holds besides its kernel's modules.
pub struct Payload {
    pub dock6: PathBuf,
    /// Test program name → its executable.
    pub tests: BTreeMap<String, PathBuf>,
    pub rules: PathBuf,
}

struct Options {
    only: Option<Vec<String>>,
    /// Only the checks whose names begin with one of these.
    checks: Option<Vec<String>>,
    accel: Option<Accel>,
    timeout: Duration,
}

/// A comma-separated list.
fn list(value: &str) -> Vec<String> {
    value.split(',').map(|s| s.trim().to_string()).collect()
}

pub fn cli(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask kernels [--only 5.10,6.1,6.12] [--checks NAME,PREFIX…] [--accel kvm|tcg] [--timeout SECS]";
    let mut options = Options {
        only: None,
        checks: None,
        accel: None,
        timeout: RUN_TIMEOUT,
    };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value; {usage}"))?;
        match flag.as_str() {
            "--only" => options.only = Some(list(value)),
            "--checks" => options.checks = Some(list(value)),
            "--accel" => {
                options.accel = Some(match value.as_str() {
                    "kvm" => Accel::Kvm,
                    "tcg" => Accel::Tcg,
                    _ => bail!("--accel {value}: kvm or tcg"),
                })
            }
            "--timeout" => {
                options.timeout = Duration::from_secs(
                    value
                        .parse()
                        .with_context(|| format!("--timeout {value}"))?,
                )
            }
            _ => bail!("{usage}"),
        }
    }
    crate::install_packages(crate::PACKAGES)?;
    matrix(&options)
}

/// Runs the matrix with the defaults (what `cargo xtask test` calls).
pub fn run_all() -> Result<()> {
    matrix(&Options {
        only: None,
        checks: None,
        accel: None,
        timeout: RUN_TIMEOUT,
    })
}

fn matrix(options: &Options) -> Result<()> {
    if !dock6_lab::is_root() {
        bail!(
            "the kernel matrix needs root (dpkg -x into {}, the guests' namespaces)",
            fetch::CACHE_DIR
        );
    }
    crate::install_packages_without_recommends(PACKAGES)?;
    let started = Instant::now();
    let mut recorded = fetch::recorded()?;
    fetch::forget_unrecorded(&recorded)?;
    if let Some(only) = &options.only {
        recorded.retain(|r| only.contains(&r.label()));
        if recorded.is_empty() {
            bail!("--only {only:?} names none of the recorded kernels");
        }
    }
    let kernels = recorded
        .iter()
        .map(fetch::ensure)
        .collect::<Result<Vec<_>>>()?;
    let payload = build_payload()?;
    let scenarios = scenario_names()?;
    let mut checks = guest::checks(&scenarios);
    if let Some(wanted) = &options.checks {
        checks.retain(|c| wanted.iter().any(|w| c.name.starts_with(w.as_str())));
        if checks.is_empty() {
            bail!("--checks {wanted:?} names none of the checks");
        }
    }
    let work = target_dir().join("kernels");
    std::fs::create_dir_all(&work)?;
    let mut common = initramfs::common_tree(&payload, &work)?;
    common.file("/init", guest::init_script(&checks).into_bytes(), true);
    let mut accel = options.accel;
    let mut runs = Vec::new();
    for kernel in &kernels {
        let initrd = work.join(format!("{}.cpio", kernel.recorded.label()));
        let mut tree = common.clone();
        initramfs::add_modules(&mut tree, kernel, &work)?;
        tree.write_cpio(&initrd)?;
        let (used, run) = boot_with(accel, kernel, &initrd, &work, options.timeout)?;
        accel = Some(used);
        runs.push((kernel, run));
    }
    let names: Vec<String> = checks.iter().map(|c| c.name.clone()).collect();
    report(
        &runs,
        &names,
        accel.unwrap_or(Accel::Tcg),
        started.elapsed(),
    )
}

/// Boots one kernel with `accel`; with none chosen yet, tries KVM first (when /dev/kvm exists)
/// and keeps that run if the guest comes up quickly, else boots again with TCG.
fn boot_with(
    accel: Option<Accel>,
    kernel: &fetch::Kernel,
    initrd: &Path,
    work: &Path,
    timeout: Duration,
) -> Result<(Accel, GuestRun)> {
    let label = kernel.recorded.label();
    let log = work.join(format!("{label}.log"));
    let try_first = match accel {
        Some(a) => a,
        None if Path::new("/dev/kvm").exists() => Accel::Kvm,
        None => Accel::Tcg,
    };
    let mut order = vec![try_first];
    if accel.is_none() && try_first == Accel::Kvm {
        order.push(Accel::Tcg);
    }
    for candidate in order {
        let up_within = if accel.is_none() && candidate == Accel::Kvm {
            KVM_PROBE
        } else {
            BOOT_TIMEOUT
        };
        eprintln!(
            "xtask: kernel {label} ({} {}) with {}",
            kernel.recorded.package,
            kernel.recorded.version,
            candidate.name()
        );
        match qemu::boot(candidate, &kernel.vmlinuz, initrd, &log, up_within, timeout)? {
            Boot::Ran(run) => {
                eprintln!(
                    "xtask: kernel {label}: /init after {:.1?}, {} checks in {:.1?} (console: {})",
                    run.boot,
                    run.results.len(),
                    run.total,
                    log.display()
                );
                return Ok((candidate, run));
            }
            Boot::NotUp if candidate == Accel::Kvm && accel.is_none() => eprintln!(
                "xtask: KVM did not boot the guest within {KVM_PROBE:?}: using TCG (an emulated CPU) instead"
            ),
            Boot::NotUp => bail!(
                "kernel {label}: the guest did not reach /init within {up_within:?} (console: {})",
                log.display()
            ),
        }
    }
    bail!("kernel {label}: no accelerator booted it")
}

/// `cargo test --no-run` of the workspace (what `cargo xtask test` built already): the dock6
/// binary and the check programs' executables.
fn build_payload() -> Result<Payload> {
    let mut build = cargo();
    build.args([
        "test",
        "--workspace",
        "--all-targets",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    let out = build
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("run cargo test --no-run")?;
    if !out.status.success() {
        bail!("cargo test --no-run failed");
    }
    let mut dock6 = None;
    let mut tests = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(kinds), Some(executable)) = (
            message["target"]["name"].as_str(),
            message["target"]["kind"].as_array(),
            message["executable"].as_str(),
        ) else {
            continue;
        };
        let kind = |k: &str| kinds.iter().any(|v| v == k);
        // The binary itself, not its unit tests (also of kind `bin`).
        let unit_tests = message["profile"]["test"].as_bool().unwrap_or(false);
        if kind("bin") && name == "dock6" && !unit_tests {
            dock6 = Some(PathBuf::from(executable));
        } else if kind("test") && guest::PROGRAMS.contains(&name) {
            tests.insert(name.to_string(), PathBuf::from(executable));
        }
    }
    for program in guest::PROGRAMS {
        if !tests.contains_key(*program) {
            bail!("cargo test --no-run built no tests/{program}.rs");
        }
    }
    Ok(Payload {
        dock6: dock6.context("cargo test --no-run built no dock6 binary")?,
        tests,
        rules: root_dir().join("rules"),
    })
}

/// The golden scenarios: `rules/NAME/` with a `snapshot.json`.
fn scenario_names() -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root_dir().join("rules"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("snapshot.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no scenarios under rules/");
    }
    Ok(names)
}

/// The table of kernels × checks with times, then every failure with its output; an error when
/// anything failed, went missing or did not finish.
fn report(
    runs: &[(&fetch::Kernel, GuestRun)],
    checks: &[String],
    accel: Accel,
    took: Duration,
) -> Result<()> {
    let width = checks.iter().map(String::len).max().unwrap_or(5).max(13);
    const CELL: usize = 18;
    let mut table = format!("{:width$}", "check");
    for (kernel, _) in runs {
        table.push_str(&format!("  {:>CELL$}", kernel.recorded.label()));
    }
    table.push('\n');
    let mut failures = Vec::new();
    for name in checks {
        table.push_str(&format!("{name:width$}"));
        for (kernel, run) in runs {
            let cell = match run.results.iter().find(|r| &r.name == name) {
                Some(r) => {
                    if !r.passed {
                        failures.push(failure(kernel, r));
                    }
                    let verdict = if r.passed { "ok" } else { "FAIL" };
                    format!("{verdict} {:5.1}s ({:4.1}s)", r.seconds, r.cpu_seconds)
                }
                None => {
                    failures.push(format!(
                        "kernel {} ({} {}): check {name} did not report",
                        kernel.recorded.label(),
                        kernel.recorded.package,
                        kernel.recorded.version
                    ));
                    "—".to_string()
                }
            };
            table.push_str(&format!("  {cell:>CELL$}"));
        }
        table.push('\n');
    }
    let mut row = |label: &str, value: &dyn Fn(&GuestRun) -> String| {
        table.push_str(&format!("{label:width$}"));
        for (_, run) in runs {
            table.push_str(&format!("  {:>CELL$}", value(run)));
        }
        table.push('\n');
    };
    row("boot to /init", &|r| {
        format!("{:.1}s", r.boot.as_secs_f64())
    });
    row("whole guest", &|r| {
        format!(
            "{:.1}s ({:.1}s)",
            r.total.as_secs_f64(),
            r.cpu.as_secs_f64()
        )
    });
    table.push_str("(times: wall clock, and in parentheses qemu's CPU time)\n");
    println!("{table}");
    for (kernel, run) in runs {
        if let Some(why) = &run.ended_early {
            failures.push(format!(
                "kernel {} ({} {}): {why}",
                kernel.recorded.label(),
                kernel.recorded.package,
                kernel.recorded.version
            ));
        }
    }
    let versions: Vec<String> = runs
        .iter()
        .map(|(k, _)| format!("{} ({})", k.recorded.label(), k.recorded.version))
        .collect();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}\n");
        }
        bail!(
            "{} failure(s) on the kernels {} ({}, {took:.0?})",
            failures.len(),
            versions.join(", "),
            accel.name()
        );
    }
    eprintln!(
        "xtask: every check passed on the kernels {} ({}, {took:.0?})",
        versions.join(", "),
        accel.name()
    );
    Ok(())
}

fn failure(kernel: &fetch::Kernel, r: &CheckResult) -> String {
    let mut text = format!(
        "kernel {} ({} {}): check {} failed ({}):",
        kernel.recorded.label(),
        kernel.recorded.package,
        kernel.recorded.version,
        r.name,
        r.detail
    );
    for line in &r.output {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}
