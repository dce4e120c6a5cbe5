//! `cargo xtask install`: dock6 onto a host without packages. The binary
//! under PREFIX (default /usr/local), the unit in /etc/systemd/system
//! (ExecStart pointing there), the commented config in /etc/dock6 unless one
//! is there already (an operator's file is never overwritten), dock6(8).
//! `root` is `/` on a real host; the tests install into a folder.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::deb::write_bytes;
use crate::{Sources, UNIT_BINARY, stripped_copy};

#[derive(Debug)]
pub struct Installed {
    pub binary: PathBuf,
    pub unit: PathBuf,
    pub config: PathBuf,
    /// False when a config was there already and was kept.
    pub config_written: bool,
    pub man_page: PathBuf,
}

pub fn install(sources: &Sources, root: &Path, prefix: &str) -> Result<Installed> {
    let prefix = prefix.trim_start_matches('/');
    let binary = root.join(prefix).join("sbin/dock6");
    stripped_copy(&sources.binary, &binary)?;
    let installed_path = format!("/{prefix}/sbin/dock6");
    let unit_text = std::fs::read_to_string(sources.unit())?.replace(UNIT_BINARY, &installed_path);
    let unit = root.join("etc/systemd/system/dock6.service");
    write_bytes(&unit, unit_text.as_bytes(), 0o644)?;
    let config = root.join("etc/dock6/dock6.toml");
    let config_written = !config.exists();
    if config_written {
        write_bytes(&config, &std::fs::read(sources.config())?, 0o644)?;
    }
    let man_page = root.join(prefix).join("share/man/man8/dock6.8");
    write_bytes(&man_page, &std::fs::read(sources.man_page())?, 0o644)?;
    Ok(Installed {
        binary,
        unit,
        config,
        config_written,
        man_page,
    })
}
