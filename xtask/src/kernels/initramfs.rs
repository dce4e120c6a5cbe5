//! The guest's initramfs: Debian's static busybox, the host's `nft`, `ip`, `kmod` (busybox's
//! modprobe does not autoload modules), `conntrack`, `nsenter`, `sysctl` and `setpriv` with the libraries
//! `ldd` names, the netfilter, bridge and veth modules of the kernel with a `modules.dep` made
//! by `depmod -b`, the dock6 binary and the test programs, `rules/`, and `/init` (the checks).
//! Written as a `newc` cpio archive, uncompressed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use super::fetch::Kernel;

/// Host programs the guest runs, at their host paths.
const PROGRAMS: &[&str] = &[
    "nft",
    "ip",
    "kmod",
    "conntrack",
    "nsenter",
    "sysctl",
    "setpriv",
];

/// The archive's contents by path inside the guest (no leading slash).
#[derive(Clone, Default)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

#[derive(Clone)]
enum Entry {
    Dir,
    File { data: Vec<u8>, executable: bool },
    Symlink(String),
}

impl Tree {
    fn add_parents(&mut self, path: &str) {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            self.entries
                .entry(p.to_string_lossy().into_owned())
                .or_insert(Entry::Dir);
            parent = p.parent();
        }
    }

    pub fn dir(&mut self, path: &str) {
        let path = path.trim_start_matches('/').to_string();
        self.add_parents(&path);
        self.entries.entry(path).or_insert(Entry::Dir);
    }

    pub fn file(&mut self, path: &str, data: Vec<u8>, executable: bool) {
        let path = path.trim_start_matches('/').to_string();
        self.add_parents(&path);
        self.entries.insert(path, Entry::File { data, executable });
    }

    /// A host file (symlinks followed) at `path` in the guest.
    pub fn copy(&mut self, path: &str, host: &Path) -> Result<()> {
        let data = fs::read(host).with_context(|| format!("read {}", host.display()))?;
        let executable = fs::metadata(host)?.permissions().mode() & 0o111 != 0;
        self.file(path, data, executable);
        Ok(())
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_start_matches('/').to_string();
        self.add_parents(&path);
        self.entries
            .insert(path, Entry::Symlink(target.to_string()));
    }

    /// A host program at its host path, with every library `ldd` names for it.
    pub fn program(&mut self, host: &Path) -> Result<()> {
        self.copy(&host.to_string_lossy(), host)?;
        self.libraries_of(host)
    }

    /// The libraries `ldd` names for `binary`, at their host paths.
    pub fn libraries_of(&mut self, binary: &Path) -> Result<()> {
        let out = Command::new("ldd")
            .arg(binary)
            .output()
            .context("run ldd")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() && !text.contains("not a dynamic executable") {
            bail!("ldd {} failed", binary.display());
        }
        for line in text.lines() {
            if line.contains("not found") {
                bail!("ldd {}: {}", binary.display(), line.trim());
            }
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|p| p.starts_with('/'))
                && !self.entries.contains_key(path.trim_start_matches('/'))
            {
                self.copy(path, Path::new(path))?;
            }
        }
        Ok(())
    }

    /// Every file and directory under `host_dir`, below `guest_dir`.
    pub fn copy_dir(&mut self, guest_dir: &str, host_dir: &Path) -> Result<()> {
        self.dir(guest_dir);
        for entry in
            fs::read_dir(host_dir).with_context(|| format!("read {}", host_dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let guest = format!("{}/{name}", guest_dir.trim_end_matches('/'));
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.copy_dir(&guest, &entry.path())?;
            } else if kind.is_symlink() {
                let target = fs::read_link(entry.path())?;
                self.symlink(&guest, &target.to_string_lossy());
            } else {
                self.copy(&guest, &entry.path())?;
            }
        }
        Ok(())
    }

    /// The `newc` cpio archive the kernel unpacks as its first root.
    pub fn write_cpio(&self, out: &Path) -> Result<()> {
        let mut w = std::io::BufWriter::new(
            fs::File::create(out).with_context(|| format!("create {}", out.display()))?,
        );
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (mode, data): (u32, &[u8]) = match entry {
                Entry::Dir => (0o040755, &[]),
                Entry::File { data, executable } => {
                    (if *executable { 0o100755 } else { 0o100644 }, data)
                }
                Entry::Symlink(target) => (0o120777, target.as_bytes()),
            };
            write_entry(&mut w, ino as u32 + 1, mode, path, data)?;
        }
        write_entry(&mut w, 0, 0, "TRAILER!!!", &[])?;
        w.flush()?;
        Ok(())
    }
}

fn write_entry(
    w: &mut impl std::io::Write,
    ino: u32,
    mode: u32,
    name: &str,
    data: &[u8],
) -> Result<()> {
    let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        0,
        0,
        0,
        data.len(),
        0,
        0,
        0,
        0,
        name.len() + 1,
        0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad(w, header.len() + name.len() + 1)?;
    w.write_all(data)?;
    pad(w, data.len())?;
    Ok(())
}

/// newc aligns names and data to four bytes.
fn pad(w: &mut impl std::io::Write, len: usize) -> Result<()> {
    w.write_all(&[0u8; 3][..(4 - len % 4) % 4])?;
    Ok(())
}

/// What every guest holds, whatever its kernel: busybox and its applets, the host programs, the
/// dock6 binary and test programs (stripped), `rules/`.
pub fn common_tree(payload: &super::Payload, scratch: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    let busybox = Path::new("/usr/bin/busybox");
    tree.copy("/bin/busybox", busybox)?;
    let applets = dock6_lab::output(Command::new(busybox).arg("--list"))?;
    for applet in applets.split_whitespace() {
        if applet != "busybox" {
            tree.symlink(&format!("/bin/{applet}"), "busybox");
        }
    }
    for program in PROGRAMS {
        tree.program(&find_program(program)?)?;
    }
    // `/init` calls the real ip by this path (busybox sh prefers its own applet).
    let ip = find_program("ip")?;
    if ip != Path::new("/usr/sbin/ip") {
        tree.symlink("/usr/sbin/ip", &ip.to_string_lossy());
    }
    // kmod answers as modprobe by the name it is called with; the kernel calls it for autoloading.
    let kmod = find_program("kmod")?;
    tree.symlink("/usr/sbin/modprobe", &kmod.to_string_lossy());
    for dir in ["proc", "sys", "dev", "run", "tmp", "root", "etc"] {
        tree.dir(dir);
    }
    tree.file(
        "/etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        false,
    );
    // nft names protocols (`tcp`, not `6`) and services from these, as on a host.
    for file in ["/etc/protocols", "/etc/services"] {
        tree.copy(file, Path::new(file))
            .with_context(|| format!("{file} (Debian's netbase)"))?;
    }
    tree.copy_dir(&payload.rules.to_string_lossy(), &payload.rules)?;
    let stripped = |binary: &Path, name: &str| -> Result<PathBuf> {
        let out = scratch.join(name);
        let mut strip = Command::new("strip");
        strip.arg("-o").arg(&out).arg(binary);
        crate::run(strip)?;
        Ok(out)
    };
    let dock6 = stripped(&payload.dock6, "dock6")?;
    tree.copy(&payload.dock6.to_string_lossy(), &dock6)?;
    tree.libraries_of(&dock6)?;
    for (name, binary) in &payload.tests {
        let small = stripped(binary, name)?;
        tree.copy(&format!("/checks/{name}"), &small)?;
        tree.libraries_of(&small)?;
    }
    Ok(tree)
}

/// Where the host keeps `program` (the guest gets it at the same path).
fn find_program(program: &str) -> Result<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("no {program} on this host (cargo xtask deps installs it)"))
}

/// The modules a guest may load: every nf_* / nft_* / nfnetlink* module of the netfilter
/// directories, the bridge, br_netfilter and veth, with what they depend on, under
/// `lib/modules/RELEASE` with a `modules.dep` of their own (`depmod -b`).
pub fn add_modules(tree: &mut Tree, kernel: &Kernel, scratch: &Path) -> Result<()> {
    let source = kernel.modules_dir();
    let mut wanted = Vec::new();
    for dir in [
        "kernel/net/netfilter",
        "kernel/net/ipv4/netfilter",
        "kernel/net/ipv6/netfilter",
        "kernel/net/bridge",
        "kernel/drivers/net",
    ] {
        let Ok(entries) = fs::read_dir(source.join(dir)) else {
            continue;
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(module) = name.split(".ko").next().filter(|_| name.contains(".ko")) else {
                continue;
            };
            let netfilter = module.starts_with("nf") && dir.ends_with("netfilter");
            if netfilter || ["bridge", "br_netfilter", "veth"].contains(&module) {
                wanted.push(module.to_string());
            }
        }
    }
    if !wanted.iter().any(|m| m == "nf_tables") {
        bail!("{} has no nf_tables module", source.display());
    }
    let mut show = Command::new("modprobe");
    show.arg("-d")
        .arg(&kernel.modules_base)
        .arg("-S")
        .arg(&kernel.release)
        .args(["-a", "--show-depends"])
        .args(&wanted);
    let listed = dock6_lab::output(&mut show)?;
    let base = scratch.join("modules");
    let _ = fs::remove_dir_all(&base);
    let target = base.join("lib/modules").join(&kernel.release);
    fs::create_dir_all(&target)?;
    for line in listed.lines() {
        let Some(file) = line.strip_prefix("insmod ").map(str::trim) else {
            continue;
        };
        let relative = Path::new(file)
            .strip_prefix(&source)
            .with_context(|| format!("{file} lies outside {}", source.display()))?;
        let to = target.join(relative);
        fs::create_dir_all(to.parent().context("parent")?)?;
        fs::copy(file, &to)?;
    }
    for name in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        if source.join(name).is_file() {
            fs::copy(source.join(name), target.join(name))?;
        }
    }
    let mut depmod = Command::new("depmod");
    depmod.arg("-b").arg(&base).arg(&kernel.release);
    crate::run(depmod)?;
    tree.copy_dir("/lib/modules", &base.join("lib/modules"))
}
