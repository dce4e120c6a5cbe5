//! The `dock6` command line, as an operator uses it.

use std::process::Command;

fn dock6(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dock6"))
        .args(args)
        .output()
        .expect("run dock6");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn rules(path: &str) -> String {
    format!("{}/rules/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn render_prints_the_plan() {
    let (ok, out, err) = dock6(&[
        "render",
        "--snapshot",
        &rules("all-three-modes/snapshot.json"),
        "--config",
        &format!("{}/tests/data/empty.toml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("table inet dock6 {"));
    assert!(out.contains("# proxy-ndp entries:\n#   2001:db8:1:0:1::2 on eth0"));
}

#[test]
fn bad_config_names_file_line_and_key_and_prints_no_plan() {
    let dir = std::env::temp_dir().join(format!("dock6-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dock6.toml");
    std::fs::write(&config, "uplink = \"eth0\"\nresync_interval = 30\n").unwrap();
    let (ok, out, err) = dock6(&[
        "render",
        "--snapshot",
        &rules("all-three-modes/snapshot.json"),
        "--config",
        config.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!ok);
    assert!(
        out.is_empty(),
        "nothing may be printed before the config is valid: {out}"
    );
    assert!(
        err.contains("dock6.toml:2: key `resync_interval`: invalid type"),
        "{err}"
    );
}

#[test]
fn bad_snapshot_names_file_and_line() {
    let (ok, _, err) = dock6(&["render", "--snapshot", &rules("bootstrap.nft")]);
    assert!(!ok);
    assert!(err.contains("bootstrap.nft:1:"), "{err}");
}

#[test]
fn apply_needs_no_once_and_still_accepts_it() {
    // A snapshot file that cannot be read stops `apply` before any kernel
    // call, so the flag handling shows without root.
    for once in [&[][..], &["--once"][..]] {
        let mut args = vec!["apply", "--snapshot", "/nonexistent/dock6-snapshot.json"];
        args.extend_from_slice(once);
        let (ok, _, err) = dock6(&args);
        assert!(!ok);
        assert!(
            err.contains("/nonexistent/dock6-snapshot.json: cannot read"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn help_lists_the_operator_commands() {
    let (ok, out, err) = dock6(&["--help"]);
    assert!(ok, "{err}");
    for command in ["render", "apply", "snapshot", "run", "cleanup"] {
        assert!(out.contains(&format!("  {command} ")), "{command}: {out}");
    }
}

#[test]
fn metrics_on_a_remote_address_are_refused_unless_the_config_allows() {
    let (ok, _, err) = dock6(&[
        "run",
        "--config",
        &format!("{}/tests/data/empty.toml", env!("CARGO_MANIFEST_DIR")),
        "--metrics",
        "0.0.0.0:9586",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--metrics: 0.0.0.0:9586 is not a loopback address"),
        "{err}"
    );
}

/// `dock6 ARGS` as an unprivileged user (nobody, via setpriv when this test runs as root).
fn dock6_unprivileged(args: &[&str]) -> (Option<i32>, String, String) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = match root {
        true => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_dock6"));
            c
        }
        false => Command::new(env!("CARGO_BIN_EXE_dock6")),
    };
    let out = command.args(args).output().expect("run dock6");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn without_root_check_says_what_it_could_not_see_and_status_is_refused() {
    let (code, out, _) = dock6_unprivileged(&[
        "check",
        "--docker-host",
        "unix:///nonexistent/dock6-docker.sock",
        "--daemon-json",
        "/nonexistent/daemon.json",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("error   nftables-unreadable: "), "{out}");
    // The kernel is not blamed for what a lack of root prevents.
    assert!(out.contains("warning kernel-unprobed: "), "{out}");
    assert!(!out.contains("kernel-nftables"), "{out}");

    // A root-only socket: refused with the reason, not taken for "no agent" (exit 3).
    let dir = std::env::temp_dir().join(format!("dock6-cli-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("dock6.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = dock6_unprivileged(&["status", "--socket", socket.to_str().unwrap()]);
    drop(listener);
    std::fs::remove_dir_all(&dir).ok();
    // SAFETY: as above.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("permission denied: dock6 status needs root"),
            "{err}"
        );
    }
}
