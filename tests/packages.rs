//! The packages, as an operator installs them: the `.deb` goes into a clean
//! Debian root (debootstrap, cached; see `dock6_pack::debian_root`) with
//! apt, which brings its dependencies; the binary runs there and the
//! installed unit passes `systemd-analyze verify`; removing it keeps the
//! config. `cargo xtask install` into the same root (after the .deb is
//! removed) keeps the operator's config and its unit verifies too. Needs
//! root. (The image is proven in tests/operators.rs, against the lab's
//! dockerd.)

mod common;

use std::path::{Path, PathBuf};

use dock6_pack::Sources;
use dock6_pack::debian_root::{CACHE_DIR, fresh_root, in_root, run_in_root};

fn sources() -> Sources {
    Sources {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_dock6")),
        repo: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// `argv` in the root: (success, stdout + stderr).
fn in_debian(root: &Path, argv: &[&str]) -> (bool, String) {
    let out = in_root(root, argv).output().expect("run in the root");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `systemd-analyze verify UNIT` in the root; its complaints about dock6.
fn verify_in(root: &Path, unit: &str) -> Result<(), String> {
    let (ok, text) = in_debian(root, &["systemd-analyze", "verify", "--man=no", unit]);
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("dock6")).collect();
    match ok && ours.is_empty() {
        true => Ok(()),
        false => Err(text),
    }
}

/// Removes the test's folder (a whole Debian root) when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[test]
fn the_deb_installs_into_a_clean_debian_root_and_xtask_install_after_it() {
    let test = "the_deb_installs_into_a_clean_debian_root_and_xtask_install_after_it";
    if !common::require_root(test)
        || !common::require_tools(test, &["debootstrap", "dpkg-deb", "strip", "unshare"])
    {
        return;
    }
    let scratch =
        Scratch(std::env::temp_dir().join(format!("dock6-packages-{}", std::process::id())));
    let dir = &scratch.0;
    std::fs::create_dir_all(dir).unwrap();
    let deb = dock6_pack::deb::build_deb(&sources(), dir).unwrap_or_else(|e| panic!("{e:#}"));
    let root = dir.join("root");
    let started = std::time::Instant::now();
    fresh_root(Path::new(CACHE_DIR), &root).unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "figure: clean Debian root ready in {:.1?}",
        started.elapsed()
    );

    // The control: the root is clean (no dock6, none of its libraries).
    let (there, _) = in_debian(&root, &["dpkg", "-s", "dock6"]);
    assert!(!there, "dock6 is not in a clean root");
    let (there, _) = in_debian(&root, &["dpkg", "-s", "libnftnl11"]);
    assert!(
        !there,
        "libnftnl11 is not in a clean root (apt must bring it)"
    );

    std::fs::copy(&deb, root.join("tmp/dock6.deb")).unwrap();
    let installed = run_in_root(
        &root,
        // Offline (see `in_root`): the dependencies come from the root's cache.
        &["apt-get", "install", "-y", "-qq", "/tmp/dock6.deb"],
    );
    installed.unwrap_or_else(|e| panic!("apt-get install ./dock6.deb: {e:#}"));
    let (ok, version) = in_debian(&root, &["dock6", "--version"]);
    assert!(ok, "dock6 runs in the root: {version}");
    assert_eq!(
        version.trim(),
        format!("dock6 {}", env!("CARGO_PKG_VERSION"))
    );
    let (ok, table) = in_debian(&root, &["dock6", "render", "--bootstrap"]);
    assert!(ok && table.contains("table inet dock6"), "{table}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/dock6/dock6.toml")).unwrap(),
        std::fs::read_to_string(sources().config()).unwrap()
    );
    assert!(root.join("usr/share/man/man8/dock6.8.gz").exists());
    verify_in(&root, "/lib/systemd/system/dock6.service")
        .unwrap_or_else(|e| panic!("the installed unit: {e}"));
    let (enabled, _) = in_debian(&root, &["systemctl", "is-enabled", "dock6.service"]);
    assert!(
        !enabled,
        "installing enables nothing: `dock6 check` comes first"
    );

    // Removed (not purged): the binary goes, the operator's config stays.
    std::fs::write(root.join("etc/dock6/dock6.toml"), "uplink = \"eth0\"\n").unwrap();
    run_in_root(&root, &["apt-get", "remove", "-y", "-qq", "dock6"])
        .unwrap_or_else(|e| panic!("apt-get remove dock6: {e:#}"));
    assert!(!root.join("usr/sbin/dock6").exists());
    assert!(
        root.join("etc/dock6/dock6.toml").exists(),
        "a conffile stays on remove"
    );

    // `cargo xtask install` into the same root: the config is kept.
    let done = dock6_pack::install::install(&sources(), &root, "/usr/local")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!done.config_written, "the operator's config is kept");
    assert_eq!(
        std::fs::read_to_string(&done.config).unwrap(),
        "uplink = \"eth0\"\n"
    );
    let unit = std::fs::read_to_string(&done.unit).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/sbin/dock6 run"),
        "{unit}"
    );
    let (ok, version) = in_debian(&root, &["/usr/local/sbin/dock6", "--version"]);
    assert!(ok, "{version}");
    verify_in(&root, "/etc/systemd/system/dock6.service")
        .unwrap_or_else(|e| panic!("the unit of xtask install: {e}"));
}
