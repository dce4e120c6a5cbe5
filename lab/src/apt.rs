//! Debian packages fetched through the archive's `Packages` index without installing them: apt-get
//! against a sources list, state and cache of its own (the system's apt configuration, lists and
//! installed packages are never changed). The lab's Docker 28 bundle and the xtask's kernel matrix
//! use it.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::sys::{output, run};

/// A private apt in `dir` (created) reading only `sources` (sources.list lines), its index
/// downloaded once.
pub struct PrivateApt {
    dir: std::path::PathBuf,
}

impl PrivateApt {
    /// Writes the sources list under `dir` and runs `apt-get update` against it.
    pub fn update(dir: &Path, sources: &str) -> Result<PrivateApt> {
        for sub in [
            "etc/sources.list.d",
            "etc/preferences.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(dir.join("etc/sources.list"), sources)?;
        let apt = PrivateApt {
            dir: dir.to_path_buf(),
        };
        run(apt.command("apt-get").args(["update", "-qq"]))?;
        Ok(apt)
    }

    /// `apt-get download SPEC…` into `dest` (a spec is `NAME` or `NAME=VERSION`).
    pub fn download(&self, dest: &Path, specs: &[&str]) -> Result<()> {
        fs::create_dir_all(dest)?;
        run(self
            .command("apt-get")
            .current_dir(dest)
            .arg("download")
            .args(specs))
    }

    /// `apt-cache show NAME`: the index's stanzas for a package.
    pub fn show(&self, package: &str) -> Result<String> {
        output(self.command("apt-cache").args(["show", package]))
    }

    /// An apt command that reads only this sources list and keeps its lists, cache and lock
    /// here; the installed-package database is only read.
    fn command(&self, program: &str) -> Command {
        let d = self.dir.display();
        let mut cmd = Command::new(program);
        for option in [
            format!("Dir::Etc::SourceList={d}/etc/sources.list"),
            format!("Dir::Etc::SourceParts={d}/etc/sources.list.d"),
            format!("Dir::Etc::Preferences={d}/etc/preferences"),
            format!("Dir::Etc::PreferencesParts={d}/etc/preferences.d"),
            format!("Dir::State={d}/state"),
            format!("Dir::State::Lists={d}/state/lists"),
            format!("Dir::Cache={d}/cache"),
            // The system's apt lock is not ours to take; these directories are private.
            "Debug::NoLocking=1".to_string(),
            // apt's sandbox user cannot write into a root-only staging directory.
            "APT::Sandbox::User=root".to_string(),
        ] {
            cmd.arg("-o").arg(option);
        }
        cmd
    }
}

/// `dpkg -x DEB DIR`, and the package's name and version (`dpkg-deb -f`).
pub fn unpack(deb: &Path, dir: &Path) -> Result<(String, String)> {
    let field = |name: &str| -> Result<String> {
        Ok(
            output(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))?
                .trim()
                .to_string(),
        )
    };
    let (package, version) = (field("Package")?, field("Version")?);
    run(Command::new("dpkg").arg("-x").arg(deb).arg(dir))?;
    Ok((package, version))
}
