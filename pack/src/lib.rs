//! dock6's packages, built from a dock6 binary and the repository's `dist/`:
//!
//! - [`deb`]: a `.deb` made with `dpkg-deb` (binary, unit, commented config,
//!   man page), `cargo xtask deb`;
//! - [`install`]: the same files onto a host without packages, `cargo xtask install`;
//! - [`image`]: a container image's root (the binary and the shared
//!   libraries it loads), `docker import`ed by `cargo xtask image`;
//! - [`debian_root`]: a clean Debian root (debootstrap, cached) that the
//!   tests install the `.deb` into.
//!
//! Used by the xtask and by the tests, so both make the same thing.

pub mod deb;
pub mod debian_root;
pub mod image;
pub mod install;
mod sys;

use std::path::{Path, PathBuf};

/// Where the binary goes in the .deb and the image.
pub const SBIN: &str = "usr/sbin/dock6";
pub const UNIT: &str = "dist/dock6.service";
pub const CONFIG: &str = "dist/dock6.toml";
/// dock6(8), generated from the command line by `cargo xtask man` (tests/man.rs keeps it so).
pub const MAN_PAGE: &str = "dist/dock6.8";
/// The ExecStart path written in dist/dock6.service.
pub const UNIT_BINARY: &str = "/usr/sbin/dock6";

/// What every package is made of.
#[derive(Debug, Clone)]
pub struct Sources {
    /// A dock6 binary (stripped on the way in).
    pub binary: PathBuf,
    /// The repository (for `dist/`, README.md, LICENSE).
    pub repo: PathBuf,
    pub version: String,
}

impl Sources {
    pub fn unit(&self) -> PathBuf {
        self.repo.join(UNIT)
    }

    pub fn config(&self) -> PathBuf {
        self.repo.join(CONFIG)
    }

    pub fn man_page(&self) -> PathBuf {
        self.repo.join(MAN_PAGE)
    }
}

/// Copies `binary` to `to` without its symbols and debug info, mode 0755.
pub fn stripped_copy(binary: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    sys::run(
        std::process::Command::new("strip")
            .arg("--strip-unneeded")
            .arg("-o")
            .arg(to)
            .arg(binary),
    )?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
