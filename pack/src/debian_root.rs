//! A clean Debian root to install the `.deb` into: `debootstrap
//! --variant=minbase` of this host's suite with systemd (for
//! `systemd-analyze verify`), and the `.deb`'s library dependencies
//! downloaded but not installed, so the test installs them with apt from
//! the root's own cache. Made once and kept as a tarball (about 30 s and
//! 240 MB), so a test run only unpacks it; each test gets a fresh copy.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::sys::{output, run};

/// Kept outside any checkout, so CI's fresh clones share it.
pub const CACHE_DIR: &str = "/var/cache/dock6-test";
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// What the `.deb` brings beyond minbase: its Depends and Recommends
/// (apt installs those too, as it would for an operator).
pub const PRELOADED: &[&str] = &["libnftnl11", "libmnl0", "procps", "nftables"];

/// The cached root's tarball, made first if missing.
pub fn cached_root(cache: &Path) -> Result<PathBuf> {
    let suite = host_suite()?;
    // Named by what it holds: a changed list makes a new one.
    let tarball = cache.join(format!(
        "debian-{suite}-minbase-systemd-{}.tar",
        PRELOADED.join("+")
    ));
    if tarball.exists() {
        return Ok(tarball);
    }
    fs::create_dir_all(cache)?;
    let root = cache.join(format!("debian-{suite}.partial"));
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    eprintln!(
        "debian root: debootstrap {suite} into {} (once)",
        root.display()
    );
    run(Command::new("debootstrap")
        .args(["--variant=minbase", "--include=systemd", &suite])
        .arg(&root)
        .arg(MIRROR))?;
    run(&mut chrooted(&root, &["apt-get", "update", "-qq"], true))?;
    let mut download = vec!["apt-get", "install", "-y", "-qq", "--download-only"];
    download.extend_from_slice(PRELOADED);
    run(&mut chrooted(&root, &download, true))?;
    let partial = tarball.with_extension("tar.partial");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&partial)
        .arg("."))?;
    fs::rename(&partial, &tarball)?;
    fs::remove_dir_all(&root)?;
    remove_other_roots(cache, &tarball);
    Ok(tarball)
}

/// Roots cached for an older list of packages: 240 MB each.
fn remove_other_roots(cache: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if path != keep && name.starts_with("debian-") && name.ends_with(".tar") {
            let _ = fs::remove_file(&path);
        }
    }
}

/// A fresh copy of the cached root at `into`.
pub fn fresh_root(cache: &Path, into: &Path) -> Result<()> {
    let tarball = cached_root(cache)?;
    fs::create_dir_all(into)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(into)
        .arg("-xf")
        .arg(&tarball))
}

/// `argv` run chrooted into `root`, with /proc mounted in a mount
/// namespace of its own (gone when it ends: nothing stays mounted), and in
/// a network namespace of its own with nothing in it: whatever apt installs
/// there comes from the root's own cache.
pub fn in_root(root: &Path, argv: &[&str]) -> Command {
    chrooted(root, argv, false)
}

fn chrooted(root: &Path, argv: &[&str], online: bool) -> Command {
    let mut cmd = Command::new("unshare");
    if !online {
        cmd.arg("--net");
    }
    cmd.args([
        "--mount",
        "--fork",
        "sh",
        "-c",
        r#"mount -t proc proc "$0/proc" && exec chroot "$0" "$@""#,
    ])
    .arg(root)
    .args(argv)
    .env("DEBIAN_FRONTEND", "noninteractive")
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    cmd
}

/// This host's Debian suite (`bookworm`), from /etc/os-release.
fn host_suite() -> Result<String> {
    let release = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME")
}

/// Whether `output` ran fine: for the callers' messages.
pub fn run_in_root(root: &Path, argv: &[&str]) -> Result<String> {
    output(&mut in_root(root, argv))
}
