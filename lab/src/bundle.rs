//! Newer Dockers for the lab without installing them.
//!
//! Production hosts run Docker 20.10 to 29; Debian bookworm packages 20.10. Debian trixie packages
//! 26.1.5 and Debian sid 28.5.2, and their binaries run on bookworm: `dockerd`, `docker-proxy`,
//! `containerd` (1.7 from trixie, 2.1 from sid), the runc shim, the `docker` client and the
//! `docker-compose` plugin need glibc ≤ 2.36 and bookworm's libsystemd. Their `runc` needs a newer
//! glibc, so bookworm's `runc` 1.1.5 serves; their `tini-static` serves as `docker-init`.
//!
//! [`ensure_bundle`] fetches a suite's .debs with a private apt (`crate::apt`: the system's apt
//! configuration, lists and installed packages are never changed), unpacks them with `dpkg -x` into
//! the bundle's cache directory and links the programs into its `bin/`, which the lab puts first on
//! dockerd's `PATH`. Fetched once per machine; a second process that loses the race to fill the
//! cache throws its own copy away.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::apt::{PrivateApt, unpack};

/// One Docker from one Debian suite, unpacked into a cache directory of its own.
#[derive(Debug)]
pub struct Bundle {
    /// The Debian suite the packages come from.
    pub suite: &'static str,
    /// The major version its `docker.io` must have (`"28."`): when the suite moves on, the lab
    /// says so instead of silently testing another Docker.
    pub major: &'static str,
    /// Where it is unpacked: `root/` (the packages), `bin/` (links), `VERSION`.
    pub cache_dir: &'static str,
    /// The packages fetched.
    pub packages: &'static [&'static str],
    /// `bin/docker-init` → this (relative to `bin/`): the suite's `tini-static`.
    pub init: &'static str,
}

/// Debian 13 (trixie)'s Docker 26.1 with containerd 1.7 and compose 2.26.
pub const TRIXIE_26: Bundle = Bundle {
    suite: "trixie",
    major: "26.",
    cache_dir: "/var/cache/dock6-lab/docker-26",
    // trixie's `tini` holds tini-static too.
    packages: &[
        "docker.io",
        "docker-cli",
        "containerd",
        "tini",
        "docker-compose",
    ],
    init: "../root/usr/bin/tini-static",
};

/// Debian sid's Docker 28.5 with containerd 2.1 and compose 2.40.
pub const SID_28: Bundle = Bundle {
    suite: "sid",
    major: "28.",
    cache_dir: "/var/cache/dock6-lab/docker-28",
    packages: &[
        "docker.io",
        "docker-cli",
        "containerd",
        "tini-static",
        "docker-compose",
    ],
    init: "../root/usr/bin/tini-static",
};

/// `bin/NAME` → the unpacked program (relative, so the links survive the cache's final rename);
/// `docker-init` is the bundle's own ([`Bundle::init`]).
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
    (
        "docker-compose",
        "../root/usr/libexec/docker/cli-plugins/docker-compose",
    ),
];

/// bookworm's runc, which the shim finds through `bin/runc`.
const SYSTEM_RUNC: &[&str] = &["/usr/sbin/runc", "/usr/bin/runc"];

/// The bundle's `bin/`, fetching and unpacking it first when the cache lacks it.
pub fn ensure_bundle(bundle: &Bundle) -> Result<PathBuf> {
    let cache = Path::new(bundle.cache_dir);
    if cache.join("VERSION").is_file() {
        return Ok(cache.join("bin"));
    }
    let parent = cache.parent().context("cache dir has a parent")?;
    fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let name = cache
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("docker");
    let staging = parent.join(format!("{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let filled = fill(bundle, &staging);
    if let Err(e) = filled {
        let _ = fs::remove_dir_all(&staging);
        return Err(e.context(format!(
            "fetching Docker {}x from Debian {} into {}",
            bundle.major, bundle.suite, bundle.cache_dir
        )));
    }
    if fs::rename(&staging, cache).is_err() {
        // Another process filled the cache first: its copy is as good as ours.
        let _ = fs::remove_dir_all(&staging);
    }
    if !cache.join("VERSION").is_file() {
        bail!(
            "{} exists but holds no VERSION: remove it and try again",
            bundle.cache_dir
        );
    }
    Ok(cache.join("bin"))
}

/// The versions the bundle holds (`VERSION`, one `package version` per line).
pub fn bundle_versions(bundle: &Bundle) -> Option<String> {
    fs::read_to_string(Path::new(bundle.cache_dir).join("VERSION")).ok()
}

/// Downloads, checks and unpacks the packages into `dir`, then links `bin/`.
fn fill(bundle: &Bundle, dir: &Path) -> Result<()> {
    let debs = dir.join("debs");
    eprintln!(
        "lab: fetching Docker {}x from Debian {} (once; cached in {})",
        bundle.major, bundle.suite, bundle.cache_dir
    );
    let sources = format!(
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {} main\n",
        bundle.suite
    );
    let apt = PrivateApt::update(&dir.join("apt"), &sources)?;
    apt.download(&debs, bundle.packages)?;
    let mut versions = String::new();
    let root = dir.join("root");
    for entry in fs::read_dir(&debs)? {
        let (package, version) = unpack(&entry?.path(), &root)?;
        if package == "docker.io" && !version.starts_with(bundle.major) {
            bail!(
                "Debian {}'s docker.io is {version} now, not {}x: update the lab's Docker bundles (lab/src/bundle.rs)",
                bundle.suite,
                bundle.major
            );
        }
        versions.push_str(&format!("{package} {version}\n"));
    }
    let bin = dir.join("bin");
    fs::create_dir(&bin)?;
    for (name, target) in LINKS.iter().chain(&[("docker-init", bundle.init)]) {
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
