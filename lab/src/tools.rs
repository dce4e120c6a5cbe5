//! What the lab needs installed, and installing the missing Debian packages with apt-get.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::Options;
use crate::sys::run;

/// Installs the Debian packages the lab needs, only those missing. An installed dockerd (any
/// origin) is used as it is; Debian's `docker.io` comes only where there is none.
pub fn ensure_tools(options: &Options) -> Result<()> {
    let missing = missing_packages(options);
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("lab: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
}

/// The packages to install: by program for the tools (any origin will do), by package for
/// busybox-static (the image holds no libc, so only the static build runs in it).
fn missing_packages(options: &Options) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for (program, package) in [
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("tar", "tar"),
    ] {
        if !on_path(program) {
            missing.push(package);
        }
    }
    if !on_path("dockerd") || !on_path("docker") {
        missing.push("docker.io");
    }
    // A Docker bundle brings everything but runc (trixie's and sid's need a newer glibc).
    if options.docker.bundle().is_some() && !on_path("runc") {
        missing.push("runc");
    }
    if (options.iptables || options.ip6tables) && !on_path("iptables") {
        missing.push("iptables");
    }
    if !dpkg_installed("busybox-static") {
        missing.push("busybox-static");
    }
    missing.dedup();
    missing
}

/// On the PATH, or in the sbin/bin directories a root shell's PATH may lack.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin", "/usr/bin"]
            .iter()
            .any(|d| Path::new(d).join(program).is_file())
}

/// Whether dpkg has `package` installed (false where there is no dpkg).
pub fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}
