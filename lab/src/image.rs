//! The lab's only image, `busybox`: no registry is reachable, so it is made with `docker import`
//! of a root holding Debian's static busybox and a symlink per applet.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};

use crate::sys::{output, run};
use crate::{IMAGE, Lab};

impl Lab {
    /// Builds the image unless the lab's dockerd has it already (a restarted dockerd keeps it).
    pub(crate) fn ensure_image(&self) -> Result<()> {
        let have_image = self
            .docker()
            .args(["image", "inspect", IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !have_image.is_ok_and(|s| s.success()) {
            self.build_image()?;
        }
        Ok(())
    }

    /// `docker import` of the root made by [`image_root`], as `busybox:latest`.
    fn build_image(&self) -> Result<()> {
        let root = self.dir.join("image-root");
        image_root(&root)?;
        let tarball = self.dir.join("busybox.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."))?;
        run(self
            .docker()
            .args([
                "import",
                "--change",
                r#"CMD ["sh"]"#,
                "--change",
                "ENV PATH=/bin",
            ])
            .arg(&tarball)
            .arg(format!("{IMAGE}:latest")))?;
        fs::remove_dir_all(&root)?;
        fs::remove_file(&tarball)?;
        Ok(())
    }
}

/// A root file system at `root`: `/bin/busybox` with every applet a symlink to it, the usual
/// empty directories (`/www` for the tests' web servers), and `passwd`/`group` for root and nobody.
fn image_root(root: &Path) -> Result<()> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .context("no /bin/busybox (Debian's busybox-static)")?;
    let bin = root.join("bin");
    fs::create_dir_all(&bin)?;
    for dir in ["tmp", "etc", "proc", "sys", "dev", "root", "www"] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::copy(busybox, bin.join("busybox"))?;
    let list = output(Command::new(busybox).arg("--list"))?;
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        symlink("busybox", bin.join(applet))?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}
