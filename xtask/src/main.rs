//! Developer tasks, `cargo xtask COMMAND`:
//!
//! - `test [CARGO TEST ARGS]`: every test of the workspace (kernel tests need root);
//! - `bless`: rewrite the golden files under `rules/` from the current planner;
//! - `man`: rewrite `dist/dock6.8` from the command line (clap_mangen);
//! - `demo`: a container with IPv6 egress and a published port, in namespaces (root);
//! - `bench [--docker [20|26|28]]`: dock6 at scale, one table (`examples/bench`, root);
//! - `kernels [--only 5.10,6.1,6.12] [--accel kvm|tcg] [--timeout SECS]`: the kernel tests on
//!   Debian's 5.10, 6.1 and 6.12 under qemu (`kernels/`, root);
//! - `deps`: only install the Debian packages;
//! - `lab up|down|status [NAME]`: the Docker lab of the `dock6-lab` crate (`lab/`);
//! - `fuzz [SECONDS] [--parallel N]`: every cargo-fuzz target for SECONDS (nightly; not CI);
//! - `deb [--out DIR]`, `install [--root DIR] [--prefix PREFIX]`, `image [--tag TAG]`: the packages.
//!
//! Each command installs what it needs (Debian packages via apt-get) first,
//! so a fresh machine needs nothing by hand.

mod demo;
mod fuzz;
mod kernels;
mod lab;
mod packages;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use dock6_lab::{dpkg_installed, is_root};

/// Debian packages the build and the tests need: the C libraries behind
/// nftnl/mnl, `nft` for golden checks, iproute2 for namespaces, the
/// `conntrack` CLI to check conntrack deletes from outside, systemd-analyze.
const PACKAGES: &[&str] = &[
    "pkg-config",
    "libnftnl-dev",
    "libmnl-dev",
    "nftables",
    "iproute2",
    "util-linux",
    "conntrack",
    // systemd-analyze, to verify the shipped unit (tests/dist.rs).
    "systemd",
    // The .deb (dpkg-deb is in dpkg), a stripped binary, a clean Debian root to install it
    // into, and systemd-nspawn to boot that root and start the unit under systemd.
    "binutils",
    "debootstrap",
    "systemd-container",
    // The rollout's gate of docs/fleet.md, run by tests/check.rs as an operator runs it.
    "jq",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bless") => bless(),
        Some("man") => man(),
        Some("demo") => demo(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("kernels") => kernels::cli(&args[1..]),
        Some("deps") => install_packages(PACKAGES)
            .and_then(|()| install_packages_without_recommends(kernels::PACKAGES)),
        Some("lab") => lab::cli(&args[1..]),
        Some("fuzz") => fuzz::cli(&args[1..]),
        Some("deb") => packages::deb(&args[1..]),
        Some("install") => packages::install(&args[1..]),
        Some("image") => packages::image(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|bless|man|demo|bench|kernels|deps|lab|fuzz|deb|install|image>
"
            );
            eprintln!(
                "  test   install what is needed, check fmt and clippy, then run every test (kernel tests need root)"
            );
            eprintln!("  bless  rewrite the golden files under rules/ from the current planner");
            eprintln!(
                "  man    rewrite dist/dock6.8, dock6(8), from the command line's help texts"
            );
            eprintln!(
                "  demo   install what is needed, then show a container with IPv6 egress and a published port, in namespaces"
            );
            eprintln!(
                "  bench  [--docker [20|26|28]] [--only offline,resync,events,conntrack,docker] [--sizes N,…]: dock6 at scale, one table (release build; root; namespaces of its own; --docker: a real dockerd too, 1,000 containers by default, ~30 min more; --only/--sizes: some parts at some sizes)"
            );
            eprintln!(
                "  kernels [--only 5.10,6.1,6.12] [--accel kvm|tcg] [--timeout SECS]: the kernel tests on Debian's 5.10, 6.1 and 6.12 under qemu (root; kernels fetched once into /var/cache/dock6-kernels)"
            );
            eprintln!("  deps   only install the Debian packages");
            eprintln!(
                "  lab    up|down|status [NAME]: a private dockerd in namespaces of its own (see lab/src/lib.rs)"
            );
            eprintln!(
                "  fuzz   [SECONDS] [--parallel N]: run every fuzz target for SECONDS (default 60; nightly, cargo-fuzz; not part of test)"
            );
            eprintln!(
                "  deb    [--out DIR]: the .deb from the release binary (default target/deb)"
            );
            eprintln!(
                "  install [--root DIR] [--prefix PREFIX]: binary, unit, config and man page onto this host (/usr/local)"
            );
            eprintln!(
                "  image  [--tag TAG]: the container image, imported into the Docker `docker` reaches"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where cargo builds: `CARGO_TARGET_DIR`, else the workspace's target/.
fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root_dir().join("target"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root_dir());
    cmd
}

fn run(mut cmd: Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn install_packages(packages: &[&str]) -> Result<()> {
    install_with(packages, &[])
}

/// The same without the packages each one recommends (qemu's recommend a desktop).
fn install_packages_without_recommends(packages: &[&str]) -> Result<()> {
    install_with(packages, &["--no-install-recommends"])
}

fn install_with(packages: &[&str], apt_options: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {missing:?}; run as root or `sudo apt-get install {}`",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(apt_options)
        .args(&missing);
    run(install)
}

fn test(extra: &[String]) -> Result<()> {
    install_packages(PACKAGES)?;
    install_packages_without_recommends(kernels::PACKAGES)?;
    // The Docker tests' lab: docker.io only where no Docker is installed, busybox-static.
    dock6_lab::ensure_tools(&dock6_lab::Options::default())?;
    ensure_components(&["rustfmt", "clippy"])?;
    check_docker_matrix()?;
    // The habits that keep the tree readable fail the run like a test does.
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    // Dockers 26 and 28 for the matrix (and 28 for tests/modern_docker.rs): fetched once, before
    // any test races.
    for docker in dock6_lab::Docker::BUNDLED {
        dock6_lab::ensure_tools(&options_for(*docker))?;
        if let Some(bundle) = docker.bundle() {
            dock6_lab::ensure_bundle(bundle)?;
        }
    }
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-targets"])
        .args(extra);
    run(cmd)?;
    docker_matrix(extra)?;
    // The kernel tests again on Debian's 5.10, 6.1 and 6.12 (the test programs built above).
    kernels::run_all()
}

/// The test binaries that run against each Docker of the lab: every one that starts a lab
/// dockerd of the default version. `cargo test` above ran them on the installed Docker
/// (Debian's 20.10); they run again here on each bundled Docker (trixie's 26.1, sid's 28.5).
/// Tests that need Docker 28 itself (tests/modern_docker.rs) ask for it and ran above.
const DOCKER_MATRIX: &[&str] = &[
    "attack",
    "check",
    "converge",
    "docker_restarts",
    "docker_source",
    "e2e",
    "firewall_role",
    "lab_smoke",
    "operators",
    "pid_namespace",
    "renumbering",
    "starting_ports",
    "swarm",
];

/// The Docker tests again, on each bundled Docker (`DOCK6_LAB_DOCKER=26`, then `28`); each
/// version's run time is printed, and all of them at the end.
fn docker_matrix(extra: &[String]) -> Result<()> {
    let mut times = Vec::new();
    for docker in dock6_lab::Docker::BUNDLED {
        let started = std::time::Instant::now();
        let mut cmd = cargo();
        cmd.env(dock6_lab::DOCKER_ENV, docker.label())
            .args(["test", "-p", "dock6"]);
        for test in DOCKER_MATRIX {
            cmd.args(["--test", test]);
        }
        cmd.args(extra);
        run(cmd).with_context(|| format!("the Docker tests on Docker {}", docker.label()))?;
        let took = started.elapsed();
        eprintln!(
            "xtask: the Docker tests passed on Docker {} ({took:.0?})",
            docker.label()
        );
        times.push(format!("{} {took:.0?}", docker.label()));
    }
    eprintln!("xtask: Docker matrix times: {}", times.join(", "));
    Ok(())
}

fn options_for(docker: dock6_lab::Docker) -> dock6_lab::Options {
    dock6_lab::Options {
        docker,
        ..Default::default()
    }
}

/// A test file that starts a lab dockerd (`DockerLab::up`) without pinning a bundled Docker must
/// be in [`DOCKER_MATRIX`], or it would silently run on one Docker only.
fn check_docker_matrix() -> Result<()> {
    let tests = root_dir().join("tests");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&tests).with_context(|| format!("read {}", tests.display()))? {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".rs"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)?;
        if text.contains("DockerLab::up(")
            && !text.contains("Docker::V28")
            && !text.contains("Docker::V26")
            && !DOCKER_MATRIX.contains(&name)
        {
            missing.push(name.to_string());
        }
    }
    if !missing.is_empty() {
        bail!(
            "tests {missing:?} start a lab dockerd but are not in xtask's DOCKER_MATRIX: add them"
        );
    }
    Ok(())
}

/// rustup components the test command runs (`cargo fmt`, `cargo clippy`),
/// added when the toolchain lacks them.
fn ensure_components(components: &[&str]) -> Result<()> {
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|c| {
            let sub = if *c == "rustfmt" { "fmt" } else { c };
            !cargo()
                .args([sub, "--version"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut add = Command::new("rustup");
    add.args(["component", "add"]).args(&missing);
    run(add)
}

fn bless() -> Result<()> {
    let mut cmd = cargo();
    cmd.env("DOCK6_BLESS", "1")
        .args(["test", "--test", "golden"]);
    run(cmd)?;
    eprintln!("xtask: golden files rewritten; review `git diff rules/` like code");
    Ok(())
}

/// dock6(8) is generated by the test that checks it (`tests/man.rs`), which
/// writes `dist/dock6.8` when blessing.
fn man() -> Result<()> {
    let mut cmd = cargo();
    cmd.env("DOCK6_BLESS", "1").args([
        "test",
        "--test",
        "man",
        "the_shipped_man_page_is_the_generated_one",
    ]);
    run(cmd)?;
    eprintln!("xtask: dist/dock6.8 rewritten; `man -l dist/dock6.8` shows it");
    Ok(())
}

/// `cargo xtask bench [--docker [20|26|28]]`: the release build of dock6 and of
/// `examples/bench`, then the bench (root; see examples/bench/main.rs).
fn bench(args: &[String]) -> Result<()> {
    install_packages(PACKAGES)?;
    dock6_lab::ensure_tools(&dock6_lab::Options::default())?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--quiet",
        "--bin",
        "dock6",
        "--example",
        "bench",
    ]);
    run(build)?;
    // A whole run's table and chart are the ones the docs show; a part's
    // stay under target/.
    let part = args.iter().any(|a| a == "--only" || a == "--sizes");
    let out = match part {
        true => target_dir().join("bench"),
        false => root_dir().join("docs"),
    };
    let mut cmd = Command::new(target_dir().join("release/examples/bench"));
    cmd.args(args).arg("--out").arg(out);
    run(cmd)
}

/// `demo [--docker 20|26|28]`: the installed Docker by default, or trixie's 26 or sid's 28 (see
/// the lab).
fn demo(args: &[String]) -> Result<()> {
    let options = match args {
        [] => dock6_lab::Options::default(),
        [flag, version] if flag == "--docker" => dock6_lab::Options {
            docker: dock6_lab::Docker::parse(version)?,
            ..Default::default()
        },
        _ => bail!("usage: cargo xtask demo [--docker 20|26|28]"),
    };
    install_packages(PACKAGES)?;
    dock6_lab::ensure_tools(&options)?;
    let mut cmd = cargo();
    cmd.args(["build", "--quiet", "--bin", "dock6"]);
    run(cmd)?;
    demo::demo(&target_dir().join("debug/dock6"), &options)
}
