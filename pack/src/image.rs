//! The container image: a root holding the stripped binary at
//! /usr/sbin/dock6 and exactly the shared libraries it loads (with the
//! dynamic loader), made into a tarball for `docker import`. Its
//! entrypoint is `dock6`, its command `run`. Run it as
//! `docker run --network host --cap-add NET_ADMIN --cap-add NET_RAW
//! --security-opt systempaths=unconfined -v /var/run/docker.sock:/var/run/docker.sock`
//! (`systempaths=unconfined`: Docker mounts /proc/sys read-only, and dock6
//! writes forwarding, accept_ra and proxy_ndp there).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::sys::{output, run};
use crate::{SBIN, stripped_copy};

/// `docker import --change` lines of the image.
pub const CHANGES: &[&str] = &[r#"ENTRYPOINT ["/usr/sbin/dock6"]"#, r#"CMD ["run"]"#];

/// The absolute paths of the shared libraries `binary` loads, the dynamic
/// loader included, as `ldd` resolves them here.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let listing = output(Command::new("ldd").arg(binary))?;
    let mut out = Vec::new();
    for line in listing.lines() {
        // `libnftnl.so.11 => /lib/x86_64-linux-gnu/libnftnl.so.11 (0x…)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            out.push(PathBuf::from(path));
        }
    }
    Ok(out)
}

/// The image's root at `root`.
pub fn image_root(binary: &Path, root: &Path) -> Result<()> {
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    stripped_copy(binary, &root.join(SBIN))?;
    for lib in shared_libraries(binary)? {
        let inside = root.join(lib.strip_prefix("/").unwrap_or(&lib));
        fs::create_dir_all(inside.parent().context("a library in /")?)?;
        // The file itself, under the name the binary asks for.
        fs::copy(&lib, &inside).with_context(|| format!("copying {}", lib.display()))?;
    }
    for dir in ["run", "tmp", "etc", "proc", "sys", "dev"] {
        fs::create_dir_all(root.join(dir))?;
    }
    std::os::unix::fs::symlink("../run", root.join("var/run")).or_else(|_| {
        fs::create_dir_all(root.join("var"))?;
        std::os::unix::fs::symlink("../run", root.join("var/run"))
    })?;
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/usr/sbin/nologin\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

/// The tarball of `image_root` for `docker import`, at `tarball`.
pub fn image_tarball(binary: &Path, work: &Path, tarball: &Path) -> Result<()> {
    let root = work.join("dock6-image-root");
    image_root(binary, &root)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--owner=0", "--group=0", "-cf"])
        .arg(tarball)
        .arg("."))?;
    fs::remove_dir_all(&root)?;
    Ok(())
}

/// `docker import` of `tarball` as `tag`, with `docker` the client to use
/// (for a Docker of the caller's choice).
pub fn import(mut docker: Command, tarball: &Path, tag: &str) -> Result<String> {
    docker.arg("import");
    for change in CHANGES {
        docker.args(["--change", change]);
    }
    Ok(output(docker.arg(tarball).arg(tag))?.trim().to_string())
}
