//! One agent per network namespace: while `dock6 run` runs, `dock6 cleanup`
//! and a second `dock6 run` in the same namespace refuse; elsewhere they don't.
//! The agent tells systemd it is ready and keeps only its network capabilities.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::Netns;

fn dock6_in(ns: &Netns, args: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", ns.name))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_dock6"))
        .args(args);
    cmd
}

fn empty_config() -> String {
    format!("{}/tests/data/empty.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn cleanup_and_a_second_agent_refuse_while_an_agent_runs() {
    if !common::require_root("cleanup_and_a_second_agent_refuse_while_an_agent_runs") {
        return;
    }
    let (ns, other) = (Netns::new("lock"), Netns::new("lock2"));
    let log = std::env::temp_dir().join(format!("dock6-lock-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).unwrap();
    let notify_path =
        std::env::temp_dir().join(format!("dock6-notify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&notify_path);
    let notify =
        std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Never the machine's /run/dock6/dock6.sock.
    let status_socket =
        std::env::temp_dir().join(format!("dock6-lock-status-{}.sock", std::process::id()));
    let run_args = [
        "run",
        "--docker-host",
        "unix:///nonexistent/docker.sock",
        "--config",
        &empty_config(),
        "--status-socket",
        status_socket.to_str().expect("utf-8 temp dir"),
    ];
    let mut agent = dock6_in(&ns, &run_args)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start dock6 run");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("reconnecting to Docker")
    {
        assert!(
            Instant::now() < deadline,
            "agent did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Ready for systemd without Docker (dock6 starts before docker.service), and only network caps left.
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("a readiness notification");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "READY=1");
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.id())).unwrap();
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let line = status.lines().find(|l| l.starts_with(set)).unwrap();
        assert!(
            line.ends_with("0000000000003000"),
            "only CAP_NET_ADMIN and CAP_NET_RAW: {line}"
        );
    }

    let cleanup = dock6_in(&ns, &["cleanup"]).output().unwrap();
    let err = String::from_utf8_lossy(&cleanup.stderr);
    assert!(
        !cleanup.status.success() && err.contains("already running"),
        "cleanup not refused: {err}"
    );
    assert!(
        err.contains(&agent.id().to_string()),
        "names the agent's pid: {err}"
    );
    let second = dock6_in(&ns, &run_args).output().unwrap();
    assert!(
        !second.status.success(),
        "a second agent in the same namespace must refuse"
    );
    assert!(
        dock6_in(&other, &["cleanup"]).status().unwrap().success(),
        "another namespace is not affected"
    );

    // SAFETY: kill(2) on our own, unreaped child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(
        agent.wait().unwrap().success(),
        "agent stops cleanly on SIGTERM"
    );
    let cleanup = dock6_in(&ns, &["cleanup"]).output().unwrap();
    assert!(
        cleanup.status.success(),
        "{}",
        String::from_utf8_lossy(&cleanup.stderr)
    );
    assert!(
        String::from_utf8_lossy(&cleanup.stdout).contains("removed table inet dock6"),
        "the bootstrap table was there"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&notify_path);
}
