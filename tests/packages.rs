//! The packages, as an operator installs them: the `.deb` goes into a clean
//! Debian root (debootstrap, cached; see `dock6_pack::debian_root`) with
//! apt, which brings its dependencies; the binary runs there and the
//! installed unit passes `systemd-analyze verify`; the root booted with
//! systemd (systemd-nspawn) starts the unit, which gets ready, keeps its
//! watchdog fed and answers `dock6 status`; installed again there (systemd
//! running) it is still not started, and a newer version installed over the
//! running agent restarts it on the new binary; removing the package keeps
//! the config. `cargo xtask install` into the same root (after the .deb is
//! removed) keeps the operator's config and its unit verifies too. Needs
//! root. (The image is proven in tests/operators.rs, against the lab's
//! dockerd.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dock6_pack::Sources;
use dock6_pack::debian_root::{CACHE_DIR, fresh_root, in_root, run_in_root};

fn sources() -> Sources {
    Sources {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_dock6")),
        repo: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// The version of the `.deb` that upgrades the one under test.
const NEXT_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+1");

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

/// The root booted with systemd as its init (`systemd-nspawn --boot`, a
/// network namespace of its own: whatever dock6 programs there dies with
/// it); powered off on drop.
struct Booted {
    nspawn: std::process::Child,
    init: u32,
}

impl Booted {
    fn boot(root: &Path, log: &Path) -> Booted {
        let log = std::fs::File::create(log).expect("create the boot log");
        let nspawn = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(root)
            .args([
                "--register=no",
                "--keep-unit",
                "-q",
                "--boot",
                "--private-network",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("start systemd-nspawn");
        let deadline = Instant::now() + Duration::from_secs(30);
        let init = loop {
            if let Some(init) = descendant_named(nspawn.id(), "systemd") {
                break init;
            }
            assert!(
                Instant::now() < deadline,
                "systemd did not start in the root"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let booted = Booted { nspawn, init };
        // "running", or "degraded" where a unit of the minimal root cannot
        // start; until systemd listens on its bus, systemctl cannot ask.
        let state = loop {
            let (_, state) = booted.run(&["systemctl", "is-system-running", "--wait"]);
            if !state.contains("Failed to connect to bus") && state.trim() != "offline" {
                break state;
            }
            assert!(Instant::now() < deadline, "systemd in the root: {state}");
            std::thread::sleep(Duration::from_millis(100));
        };
        eprintln!("the root booted: {}", state.trim());
        booted
    }

    /// `argv` inside (all of init's namespaces): (success, stdout + stderr).
    fn run(&self, argv: &[&str]) -> (bool, String) {
        let out = Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "-a"])
            .args(argv)
            .output()
            .expect("nsenter");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn show(&self, property: &str) -> String {
        let (_, value) = self.run(&["systemctl", "show", "dock6", "-P", property]);
        value.trim().to_string()
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        // SIGTERM makes systemd-nspawn power the container off in order.
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.nspawn.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The first descendant of `pid` whose command is `comm`.
fn descendant_named(pid: u32, comm: &str) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    for child in children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
    {
        let name = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
        if name.trim() == comm {
            return Some(child);
        }
        if let Some(found) = descendant_named(child, comm) {
            return Some(found);
        }
    }
    None
}

/// The installed unit started by systemd in the booted root: ready
/// (Type=notify), kept alive by its watchdog (shortened to 2 s by a
/// drop-in: without pings systemd would kill it), serving `dock6 status`,
/// its fail-closed table in the root's own network namespace, reloaded by
/// `systemctl reload`, logging to the journal without timestamps of its own.
fn start_the_unit(root: &Path, log: &Path) {
    let dropin = root.join("etc/systemd/system/dock6.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(dropin.join("watchdog.conf"), "[Service]\nWatchdogSec=2s\n").unwrap();
    let booted = Booted::boot(root, log);
    installing_with_systemd_running_starts_nothing(&booted);
    let (ok, text) = booted.run(&["systemctl", "start", "dock6"]);
    assert!(ok, "systemctl start dock6: {text}");
    assert_eq!(booted.show("ActiveState"), "active");
    assert_eq!(booted.show("WatchdogUSec"), "2s");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        booted.show("ActiveState"),
        "active",
        "alive after 2.5 watchdog periods"
    );
    assert_eq!(
        booted.show("NRestarts"),
        "0",
        "never killed by the watchdog"
    );

    let (ok, status) = booted.run(&["dock6", "status"]);
    assert!(ok, "{status}");
    eprintln!("dock6 status, in the booted root:\n{status}");
    assert!(status.contains("docker:    unreachable since"), "{status}");
    let (ok, table) = booted.run(&["nft", "list", "table", "inet", "dock6"]);
    assert!(
        ok && table.contains("oifname \"docker0\""),
        "the fail-closed table: {table}"
    );

    let (ok, text) = booted.run(&["systemctl", "reload", "dock6"]);
    assert!(ok, "systemctl reload dock6: {text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let journal = loop {
        let (_, journal) = booted.run(&["journalctl", "-u", "dock6", "-o", "cat", "--no-pager"]);
        if journal.contains("configuration reloaded") || Instant::now() > deadline {
            break journal;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(journal.contains("configuration reloaded"), "{journal}");
    // The unit leaves no CAP_SYS_ADMIN and restricts namespaces: the kernel
    // probe at start has the kernel check the table in place instead.
    assert!(
        journal.contains(
            "takes dock6's table (checked by the kernel in this namespace, then aborted)"
        ),
        "{journal}"
    );
    let line = journal
        .lines()
        .find(|l| l.contains("capabilities dropped"))
        .unwrap_or_else(|| panic!("{journal}"));
    assert!(
        line.trim_start().starts_with("INFO"),
        "journald stamps the line, dock6 does not: {line}"
    );

    an_upgrade_restarts_the_running_agent(&booted);

    let (ok, text) = booted.run(&["systemctl", "stop", "dock6"]);
    assert!(ok, "{text}");
    let (ok, status) = booted.run(&["dock6", "status"]);
    assert!(!ok && status.contains("no agent is running"), "{status}");
    let (ok, _) = booted.run(&["nft", "list", "table", "inet", "dock6"]);
    assert!(ok, "stopping leaves the rules in the kernel");
}

/// The package removed and installed again while systemd runs: its
/// maintainer scripts see systemd, and still the unit is not started.
fn installing_with_systemd_running_starts_nothing(booted: &Booted) {
    let (ok, text) = booted.run(&["dpkg", "--remove", "dock6"]);
    assert!(ok, "dpkg --remove dock6: {text}");
    let (ok, text) = booted.run(&["dpkg", "--install", "/var/tmp/dock6.deb"]);
    assert!(ok, "dpkg --install dock6.deb: {text}");
    assert_eq!(booted.show("ActiveState"), "inactive", "a fresh install");
    assert_eq!(booted.show("UnitFileState"), "disabled", "a fresh install");
}

/// `/var/tmp/dock6-next.deb` installed over the running agent: systemd runs
/// the new binary in a new process, and the table is still in the kernel.
fn an_upgrade_restarts_the_running_agent(booted: &Booted) {
    let before = booted.show("MainPID");
    let (ok, text) = booted.run(&["dpkg", "--install", "/var/tmp/dock6-next.deb"]);
    assert!(ok, "dpkg --install dock6-next.deb: {text}");
    let (_, version) = booted.run(&["dpkg-query", "-W", "-f=${Version}", "dock6"]);
    assert_eq!(version.trim(), NEXT_VERSION);
    let after = booted.show("MainPID");
    let (_, running) = booted.run(&["readlink", &format!("/proc/{after}/exe")]);
    assert!(
        after != before && after != "0" && running.trim() == "/usr/sbin/dock6",
        "the agent runs on after the upgrade as pid {after} (pid {before} before), \
         its binary {running:?}\n{text}"
    );
    assert_eq!(booted.show("ActiveState"), "active");
    let (ok, status) = booted.run(&["dock6", "status"]);
    assert!(ok, "the new agent answers: {status}");
    let (ok, table) = booted.run(&["nft", "list", "table", "inet", "dock6"]);
    assert!(ok && table.contains("oifname \"docker0\""), "{table}");
}

/// A copy of the package `deb` that says it is `version` (what it holds is
/// the same); its path. Repacked with fast compression: building the
/// package again would compress the binary again, for a minute.
fn with_version(deb: &Path, version: &str, dir: &Path) -> PathBuf {
    let tree = dir.join("repacked");
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run dpkg-deb");
        assert!(out.status.success(), "{cmd:?}: {out:?}");
    };
    run(Command::new("dpkg-deb")
        .arg("--raw-extract")
        .arg(deb)
        .arg(&tree));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).expect("DEBIAN/control");
    let text: String = text
        .lines()
        .map(|l| match l.starts_with("Version:") {
            true => format!("Version: {version}\n"),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&control, text).expect("write DEBIAN/control");
    let out = dir.join(format!("dock6_{version}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zgzip", "-z1"])
        .arg(&tree)
        .arg(&out));
    std::fs::remove_dir_all(&tree).expect("remove the repacked tree");
    out
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
        || !common::require_tools(
            test,
            &[
                "debootstrap",
                "dpkg-deb",
                "strip",
                "unshare",
                "systemd-nspawn",
            ],
        )
    {
        return;
    }
    let scratch =
        Scratch(std::env::temp_dir().join(format!("dock6-packages-{}", std::process::id())));
    let dir = &scratch.0;
    std::fs::create_dir_all(dir).unwrap();
    let deb = dock6_pack::deb::build_deb(&sources(), dir).unwrap_or_else(|e| panic!("{e:#}"));
    let next_deb = with_version(&deb, NEXT_VERSION, dir);
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

    std::fs::copy(&deb, root.join("var/tmp/dock6.deb")).unwrap();
    std::fs::copy(&next_deb, root.join("var/tmp/dock6-next.deb")).unwrap();
    let installed = run_in_root(
        &root,
        // Offline (see `in_root`): the dependencies come from the root's cache.
        &["apt-get", "install", "-y", "-qq", "/var/tmp/dock6.deb"],
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
    // dock6(8), as generated from the command line (tests/man.rs), under man8.
    let man = Command::new("gzip")
        .arg("-dc")
        .arg(root.join("usr/share/man/man8/dock6.8.gz"))
        .output()
        .expect("gzip -dc dock6.8.gz");
    assert!(
        man.status.success(),
        "usr/share/man/man8/dock6.8.gz is there"
    );
    assert_eq!(
        String::from_utf8_lossy(&man.stdout),
        std::fs::read_to_string(sources().man_page()).unwrap()
    );
    verify_in(&root, "/lib/systemd/system/dock6.service")
        .unwrap_or_else(|e| panic!("the installed unit: {e}"));
    let (enabled, _) = in_debian(&root, &["systemctl", "is-enabled", "dock6.service"]);
    assert!(
        !enabled,
        "installing enables nothing: `dock6 check` comes first"
    );
    start_the_unit(&root, &dir.join("boot.log"));
    std::fs::remove_dir_all(root.join("etc/systemd/system/dock6.service.d")).unwrap();

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
    assert_eq!(
        std::fs::read(&done.man_page).unwrap(),
        std::fs::read(sources().man_page()).unwrap()
    );
    let (ok, version) = in_debian(&root, &["/usr/local/sbin/dock6", "--version"]);
    assert!(ok, "{version}");
    verify_in(&root, "/etc/systemd/system/dock6.service")
        .unwrap_or_else(|e| panic!("the unit of xtask install: {e}"));
}
