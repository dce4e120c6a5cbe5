//! The `.deb`, made with `dpkg-deb` from a staging tree: `/usr/sbin/dock6`,
//! `/lib/systemd/system/dock6.service`, `/etc/dock6/dock6.toml` (a
//! conffile: an operator's edits survive upgrades), `dock6(8)`, the README.
//! Installing it enables and starts nothing: the operator runs `dock6
//! check` first, then `systemctl enable --now dock6`. Upgrading it restarts
//! an agent that is running (`try-restart`), so the new binary runs.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::sys::{output, run};
use crate::{SBIN, Sources, stripped_copy};

const POSTINST: &str = r#"#!/bin/sh
set -e
# Installed, not enabled or started: `dock6 check`, then `systemctl enable --now dock6`.
# On an upgrade ($2: the version replaced) a running agent restarts on the
# new binary; its table stays in the kernel meanwhile. A stopped one stays stopped.
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ -n "$2" ]; then
        if command -v deb-systemd-invoke >/dev/null; then
            deb-systemd-invoke try-restart dock6.service || true
        else
            systemctl try-restart dock6.service || true
        fi
    fi
fi
"#;
const PRERM: &str = "#!/bin/sh\nset -e\n\
# Stopping leaves dock6's rules in the kernel; `dock6 cleanup` removes them.\n\
if [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then\n    systemctl stop dock6.service || true\nfi\n";
const POSTRM: &str = "#!/bin/sh\nset -e\n\
if [ -d /run/systemd/system ]; then\n    systemctl daemon-reload || true\nfi\n";

/// Packages of the programs the unit runs.
const TOOLS: &[&str] = &["procps"];

/// Builds `dock6_VERSION_ARCH.deb` in `out_dir`; returns its path.
pub fn build_deb(sources: &Sources, out_dir: &Path) -> Result<PathBuf> {
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_string();
    let name = format!("dock6_{}_{arch}", sources.version);
    let stage = out_dir.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    let binary = stage.join(SBIN);
    stripped_copy(&sources.binary, &binary)?;
    copy(
        &sources.unit(),
        &stage.join("lib/systemd/system/dock6.service"),
        0o644,
    )?;
    copy(
        &sources.config(),
        &stage.join("etc/dock6/dock6.toml"),
        0o644,
    )?;
    let man = stage.join("usr/share/man/man8/dock6.8");
    copy(&sources.man_page(), &man, 0o644)?;
    run(Command::new("gzip").args(["-9", "-n", "-f"]).arg(&man))?;
    let doc = stage.join("usr/share/doc/dock6");
    copy(
        &sources.repo.join("README.md"),
        &doc.join("README.md"),
        0o644,
    )?;
    write(
        &doc.join("copyright"),
        "dock6\nLicense: Apache-2.0\nOn Debian systems the license is in /usr/share/common-licenses/Apache-2.0.\n",
        0o644,
    )?;

    let control = stage.join("DEBIAN");
    let depends = depends(&sources.binary)?;
    let size_kib = installed_size_kib(&stage)?;
    write(
        &control.join("control"),
        &format!(
            "Package: dock6\nVersion: {version}\nArchitecture: {arch}\nSection: net\nPriority: optional\n\
             Maintainer: dock6 developers <dock6@localhost>\nInstalled-Size: {size_kib}\nDepends: {depends}\n\
             Recommends: nftables\nSuggests: docker.io\n\
             Description: IPv6 for Docker containers\n \
             A host agent that gives Docker containers real IPv6: forwarding sysctls, NAT66,\n \
             NDP proxying and routed prefixes, in one nftables table of its own kept in step\n \
             with Docker. Ships a systemd unit (not enabled on install) and a commented config.\n",
            version = sources.version,
        ),
        0o644,
    )?;
    write(&control.join("conffiles"), "/etc/dock6/dock6.toml\n", 0o644)?;
    write(&control.join("postinst"), POSTINST, 0o755)?;
    write(&control.join("prerm"), PRERM, 0o755)?;
    write(&control.join("postrm"), POSTRM, 0o755)?;

    let deb = out_dir.join(format!("{name}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zxz"])
        .arg(&stage)
        .arg(&deb))?;
    fs::remove_dir_all(&stage)?;
    Ok(deb)
}

/// The packages that hold the shared libraries `binary` loads, each at
/// least at the upstream version installed here (what it was linked
/// against; the Debian revision left out, so any point release of the
/// suite will do).
fn depends(binary: &Path) -> Result<String> {
    let mut packages: Vec<String> = Vec::new();
    for lib in crate::image::shared_libraries(binary)? {
        let package = owning_package(&lib)?;
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    if packages.is_empty() {
        bail!("{} loads no shared library dpkg knows", binary.display());
    }
    // The unit's ExecReload runs /bin/kill (procps: not in a minimal root).
    for tool in TOOLS {
        if !packages.iter().any(|p| p == tool) {
            packages.push(tool.to_string());
        }
    }
    packages.sort();
    let mut out = Vec::new();
    for package in packages {
        let version = output(Command::new("dpkg-query").args(["-W", "-f=${Version}", &package]))?;
        let upstream = version.trim().split('-').next().unwrap_or_default();
        out.push(format!("{package} (>= {upstream})"));
    }
    Ok(out.join(", "))
}

/// `dpkg -S` of the library, tried as ldd names it and as /usr/lib (merged /usr).
fn owning_package(lib: &Path) -> Result<String> {
    let mut candidates = vec![lib.to_path_buf()];
    if let Ok(rest) = lib.strip_prefix("/lib") {
        candidates.push(Path::new("/usr/lib").join(rest));
    }
    if let Ok(rest) = lib.strip_prefix("/lib64") {
        candidates.push(Path::new("/usr/lib64").join(rest));
    }
    for path in &candidates {
        if let Ok(found) = output(Command::new("dpkg").arg("-S").arg(path)) {
            // `libnftnl11:amd64: /usr/lib/x86_64-linux-gnu/libnftnl.so.11`
            if let Some(package) = found.lines().next().and_then(|l| l.split(':').next()) {
                return Ok(package.trim().to_string());
            }
        }
    }
    bail!("no Debian package holds {}", lib.display())
}

fn installed_size_kib(stage: &Path) -> Result<u64> {
    let out = output(
        Command::new("du")
            .args(["-sk", "--exclude=DEBIAN"])
            .arg(stage),
    )?;
    out.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du printed no size")
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let text = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_bytes(to, &text, mode)
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    write_bytes(to, text.as_bytes(), mode)
}

pub(crate) fn write_bytes(to: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(to, bytes).with_context(|| format!("writing {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}
