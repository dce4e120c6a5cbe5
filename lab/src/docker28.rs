//! Docker 28 for the lab without installing it.
//!
//! Production hosts run Docker 27–29; Debian bookworm packages 20.10. Debian sid packages 28.5.2,
//! and its binaries run on bookworm: `dockerd`, `docker-proxy`, `containerd` 2.1, the runc shim,
//! the `docker` client and the `docker-compose` plugin need glibc ≤ 2.36 and bookworm's
//! libsystemd. sid's `runc` needs glibc 2.38, so bookworm's `runc` 1.1.5 serves; sid's
//! `tini-static` serves as `docker-init`.
//!
//! [`ensure_bundle`] fetches sid's .debs with a private apt (`crate::apt`: the system's apt
//! configuration, lists and installed packages are never changed), unpacks them with `dpkg -x` into [`CACHE_DIR`] and links the programs into its `bin/`, which
//! the lab puts first on dockerd's `PATH`. Fetched once per machine; a second process that loses
//! the race to fill the cache throws its own copy away.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::apt::{PrivateApt, unpack};

/// Where the unpacked bundle lives: `root/` (the unpacked packages), `bin/` (links), `VERSION`.
pub const CACHE_DIR: &str = "/var/cache/dock6-lab/docker-28";

/// The Debian sid packages of the bundle.
const PACKAGES: &[&str] = &[
    "docker.io",
    "docker-cli",
    "containerd",
    "tini-static",
    "docker-compose",
];

/// The major version the lab's "Docker 28" must be: when sid moves on, the lab says so instead of
/// silently testing another Docker.
const MAJOR: &str = "28.";

const SID_SOURCES: &str = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main\n";

/// `bin/NAME` → the unpacked program (relative, so the links survive the cache's final rename).
const LINKS: &[(&str, &str)] = &[
    ("dockerd", "../root/usr/sbin/dockerd"),
    ("docker-proxy", "../root/usr/sbin/docker-proxy"),
    ("docker", "../root/usr/bin/docker"),
    ("containerd", "../root/usr/bin/containerd"),
    (
        "containerd-shim-runc-v2",
        "../root/usr/bin/containerd-shim-runc-v2",
    ),
    ("ctr", "../root/usr/bin/ctr"),
    ("docker-init", "../root/usr/bin/tini-static"),
    (
        "docker-compose",
        "../root/usr/libexec/docker/cli-plugins/docker-compose",
    ),
];

/// bookworm's runc, which the shim finds through `bin/runc`.
const SYSTEM_RUNC: &[&str] = &["/usr/sbin/runc", "/usr/bin/runc"];

/// The bundle's `bin/`, fetching and unpacking it first when the cache lacks it.
pub fn ensure_bundle() -> Result<PathBuf> {
    let cache = Path::new(CACHE_DIR);
    if cache.join("VERSION").is_file() {
        return Ok(cache.join("bin"));
    }
    let parent = cache.parent().context("cache dir has a parent")?;
    fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let staging = parent.join(format!("docker-28.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let filled = fill(&staging);
    if let Err(e) = filled {
        let _ = fs::remove_dir_all(&staging);
        return Err(e.context(format!(
            "fetching Docker 28 from Debian sid into {CACHE_DIR}"
        )));
    }
    if fs::rename(&staging, cache).is_err() {
        // Another process filled the cache first: its copy is as good as ours.
        let _ = fs::remove_dir_all(&staging);
    }
    if !cache.join("VERSION").is_file() {
        bail!("{CACHE_DIR} exists but holds no VERSION: remove it and try again");
    }
    Ok(cache.join("bin"))
}

/// The versions the bundle holds (`VERSION`, one `package version` per line).
pub fn bundle_versions() -> Option<String> {
    fs::read_to_string(Path::new(CACHE_DIR).join("VERSION")).ok()
}

/// Downloads, checks and unpacks the packages into `dir`, then links `bin/`.
fn fill(dir: &Path) -> Result<()> {
    let debs = dir.join("debs");
    eprintln!("lab: fetching Docker 28 from Debian sid (once; cached in {CACHE_DIR})");
    let apt = PrivateApt::update(&dir.join("apt"), SID_SOURCES)?;
    apt.download(&debs, PACKAGES)?;
    let mut versions = String::new();
    let root = dir.join("root");
    for entry in fs::read_dir(&debs)? {
        let (package, version) = unpack(&entry?.path(), &root)?;
        if package == "docker.io" && !version.starts_with(MAJOR) {
            bail!(
                "Debian sid's docker.io is {version} now, not {MAJOR}x: update the lab's Docker bundle (lab/src/docker28.rs)"
            );
        }
        versions.push_str(&format!("{package} {version}\n"));
    }
    let bin = dir.join("bin");
    fs::create_dir(&bin)?;
    for (name, target) in LINKS {
        if !bin.join(target).exists() {
            bail!("the unpacked packages lack {target}");
        }
        symlink(target, bin.join(name))?;
    }
    let runc = SYSTEM_RUNC
        .iter()
        .find(|p| Path::new(p).is_file())
        .context("no runc installed (Debian's runc package)")?;
    symlink(runc, bin.join("runc"))?;
    // The .debs and apt lists are only the means: about 80 MB the cache need not keep.
    fs::remove_dir_all(&debs)?;
    fs::remove_dir_all(dir.join("apt"))?;
    fs::write(dir.join("VERSION"), versions)?;
    Ok(())
}
