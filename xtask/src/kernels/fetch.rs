//! Debian's kernel packages, as recorded in `xtask/kernels.txt`: fetched through each suite's
//! `Packages` index with the lab's private apt, unpacked with `dpkg -x` (never installed) and
//! cached in [`CACHE_DIR`], one directory per package version.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use dock6_lab::apt::{PrivateApt, unpack};

use crate::root_dir;

pub const CACHE_DIR: &str = "/var/cache/dock6-kernels";

/// The file that records which kernel packages are booted.
pub fn versions_file() -> PathBuf {
    root_dir().join("xtask/kernels.txt")
}

/// One line of `xtask/kernels.txt`.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub suite: String,
    pub package: String,
    pub version: String,
}

impl Recorded {
    /// `5.10`, `6.1`, `6.12`: the version's first two numbers.
    pub fn label(&self) -> String {
        self.version
            .split(['.', '-'])
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    fn cache_dir(&self) -> PathBuf {
        Path::new(CACHE_DIR).join(format!("{}_{}", self.package, self.version))
    }
}

/// A kernel ready to boot: its image and a module tree with `modules.dep`.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub recorded: Recorded,
    pub vmlinuz: PathBuf,
    /// The base for `depmod -b` / `modprobe -d`: holds `lib/modules/RELEASE/`.
    pub modules_base: PathBuf,
    /// `uname -r` of the kernel.
    pub release: String,
}

impl Kernel {
    pub fn modules_dir(&self) -> PathBuf {
        self.modules_base.join("lib/modules").join(&self.release)
    }
}

pub fn recorded() -> Result<Vec<Recorded>> {
    let path = versions_file();
    let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [suite, package, version] = fields[..] else {
            bail!(
                "{}:{}: `SUITE PACKAGE VERSION` expected, not {line:?}",
                path.display(),
                n + 1
            );
        };
        out.push(Recorded {
            suite: suite.into(),
            package: package.into(),
            version: version.into(),
        });
    }
    if out.is_empty() {
        bail!("{} records no kernel", path.display());
    }
    Ok(out)
}

/// Removes cached kernels no line of `xtask/kernels.txt` records any more (left by a version
/// that was replaced), so that the cache holds only what the matrix boots.
pub fn forget_unrecorded(recorded: &[Recorded]) -> Result<()> {
    let Ok(entries) = fs::read_dir(CACHE_DIR) else {
        return Ok(());
    };
    let kept: Vec<PathBuf> = recorded.iter().map(Recorded::cache_dir).collect();
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        // Another run's staging directory (`.tmp-PID`) is its own business.
        if name.contains(".tmp-") || kept.contains(&path) {
            continue;
        }
        eprintln!("xtask: removing {} (no longer recorded)", path.display());
        fs::remove_dir_all(&path).with_context(|| format!("remove {}", path.display()))?;
    }
    Ok(())
}

/// The kernel from the cache, fetched and unpacked first when the cache lacks it.
pub fn ensure(recorded: &Recorded) -> Result<Kernel> {
    let dir = recorded.cache_dir();
    if !dir.join("VERSION").is_file() {
        fs::create_dir_all(CACHE_DIR).with_context(|| format!("create {CACHE_DIR}"))?;
        let staging =
            Path::new(CACHE_DIR).join(format!("{}.tmp-{}", recorded.package, std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        if let Err(e) = fill(recorded, &staging) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        if fs::rename(&staging, &dir).is_err() {
            // Another process filled the cache first: its copy is as good as ours.
            let _ = fs::remove_dir_all(&staging);
        }
    }
    cached(recorded, &dir)
}

fn cached(recorded: &Recorded, dir: &Path) -> Result<Kernel> {
    let modules_base = dir.join("root");
    let release = only_entry(&modules_base.join("lib/modules"))?;
    Ok(Kernel {
        recorded: recorded.clone(),
        vmlinuz: dir.join("vmlinuz"),
        modules_base,
        release,
    })
}

/// Downloads the recorded version, unpacks it, keeps the image and the modules the guest may
/// need, and makes their `modules.dep` (Debian's image packages ship none).
fn fill(recorded: &Recorded, dir: &Path) -> Result<()> {
    let Recorded {
        suite,
        package,
        version,
    } = recorded;
    eprintln!(
        "xtask: fetching {package} {version} from Debian {suite} (once; cached in {CACHE_DIR})"
    );
    let sources = format!(
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {suite} main\n"
    );
    let apt = PrivateApt::update(&dir.join("apt"), &sources)
        .with_context(|| format!("reading Debian {suite}'s Packages index"))?;
    let debs = dir.join("debs");
    if let Err(e) = apt.download(&debs, &[&format!("{package}={version}")]) {
        // apt's own words, without the long command line before them.
        let text = format!("{e:#}");
        let said = text.find("E: ").map_or(text.as_str(), |at| &text[at..]);
        bail!(
            "Debian {suite} no longer has {package} {version} (apt: {said}); {}: record that package and version in {} (a newer kernel enters the matrix deliberately)",
            current_hint(&apt),
            versions_file().display()
        );
    }
    let unpacked = dir.join("unpacked");
    for entry in fs::read_dir(&debs)? {
        unpack(&entry?.path(), &unpacked)?;
    }
    let boot = unpacked.join("boot");
    let image = fs::read_dir(&boot)
        .with_context(|| format!("{package} has no /boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{package} has no /boot/vmlinuz-*"))?;
    fs::rename(&image, dir.join("vmlinuz"))?;
    // 6.12 keeps its modules under usr/lib/modules, older ones under lib/modules.
    let modules_parent = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|p| unpacked.join(p))
        .find(|p| p.is_dir())
        .with_context(|| format!("{package} has no lib/modules"))?;
    let release = only_entry(&modules_parent)?;
    let kept = dir.join("root/lib/modules").join(&release);
    keep_network_modules(&modules_parent.join(&release), &kept)?;
    let mut depmod = Command::new("depmod");
    depmod.arg("-b").arg(dir.join("root")).arg(&release);
    crate::run(depmod)?;
    fs::remove_dir_all(&unpacked)?;
    fs::remove_dir_all(&debs)?;
    fs::remove_dir_all(dir.join("apt"))?;
    fs::write(dir.join("VERSION"), format!("{package} {version}\n"))?;
    Ok(())
}

/// What the suite's `linux-image-amd64` depends on now: the package to record instead.
fn current_hint(apt: &PrivateApt) -> String {
    let stanza = apt.show("linux-image-amd64").unwrap_or_default();
    let version = stanza.lines().find_map(|l| l.strip_prefix("Version: "));
    let depends = stanza.lines().find_map(|l| l.strip_prefix("Depends: "));
    match (depends, version) {
        (Some(depends), Some(version)) => {
            format!("its linux-image-amd64 is {version} and depends on {depends}")
        }
        _ => "see which linux-image-*-amd64 its index has now".to_string(),
    }
}

/// The module tree minus what no guest of the matrix loads (graphics, sound, storage and most
/// other drivers: about two thirds of it). Kept: networking, the libraries and crypto it uses,
/// and veth.
fn keep_network_modules(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to.join("kernel/drivers/net"))?;
    for entry in fs::read_dir(from)? {
        let path = entry?.path();
        if path.is_file() {
            fs::rename(&path, to.join(path.file_name().context("file name")?))?;
        }
    }
    for sub in ["net", "lib", "crypto", "arch"] {
        let source = from.join("kernel").join(sub);
        if source.is_dir() {
            fs::rename(&source, to.join("kernel").join(sub))?;
        }
    }
    for entry in fs::read_dir(from.join("kernel/drivers/net"))? {
        let path = entry?.path();
        let name = path.file_name().context("file name")?.to_string_lossy();
        if name.starts_with("veth.ko") {
            fs::rename(&path, to.join("kernel/drivers/net").join(&*name))?;
        }
    }
    Ok(())
}

/// The name of the only entry of a directory (a module tree holds one release).
fn only_entry(dir: &Path) -> Result<String> {
    let names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match &names[..] {
        [one] => Ok(one.clone()),
        _ => bail!("{} holds {names:?}, not one kernel release", dir.display()),
    }
}
