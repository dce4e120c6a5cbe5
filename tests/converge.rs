//! A pass that fails is retried on its own, with backoff, until it
//! converges: no event is needed. `dock6 run` against the xtask lab's
//! dockerd, in a mount namespace where the uplink's `accept_ra` sysctl is
//! made unwritable for a while (a read-only bind mount over its /proc file);
//! then the mount goes away — nothing the network sees — and dock6 gets
//! there by itself. Needs root.
//!
//! The same run shows systemd's watchdog (`NOTIFY_SOCKET`, `WATCHDOG_USEC`
//! as systemd sets them, a datagram socket of the test's own): `WATCHDOG=1`
//! is not sent while passes fail, is sent again once they converge, and
//! goes on while Docker is merely away; `dock6 status` says Docker is
//! unreachable then, and counts the reconnect once it is back.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::agent::{Agent, status_json as status};
use common::docker_lab::{DockerLab, lab};

const PROMPTLY: Duration = Duration::from_secs(20);
const ACCEPT_RA: &str = "/proc/sys/net/ipv6/conf/eth0/accept_ra";

#[test]
fn a_failed_sysctl_is_retried_until_it_converges_without_an_event() {
    if !common::require_root("a_failed_sysctl_is_retried_until_it_converges_without_an_event") {
        return;
    }
    let mut lab = DockerLab::up("e2eretry", lab::Options::default());
    let host = lab.host_ns();
    let original_ra = host.read_sysctl("net.ipv6.conf.eth0.accept_ra");
    let fake = lab.lab.dir.join("accept_ra");
    std::fs::write(&fake, "1\n").expect("write the stand-in sysctl file");
    // A private mount namespace for dock6 alone: the host's /proc is not touched.
    let script = format!(
        "mount --bind {fake} {ACCEPT_RA} && mount -o remount,bind,ro {ACCEPT_RA} && exec \"$0\" \"$@\"",
        fake = fake.display()
    );
    let status_socket = common::agent::status_socket(&lab.lab.dir);
    let notify_path = lab.lab.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let env = [
        ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
        // Pinged every 250 ms while healthy.
        ("WATCHDOG_USEC", "500000"),
    ];
    let mut agent =
        Agent::start_wrapped_env(&lab, "", &["unshare", "--mount", "sh", "-c", &script], &env);
    agent.wait_for_log("eth0.accept_ra", PROMPTLY);
    agent.wait_for_log("retrying", PROMPTLY);
    let early = queued(&notify);
    assert!(
        early.iter().any(|m| m.contains("READY=1")),
        "ready after the first pass, converged or not: {early:?}"
    );
    let failing = notifications(&notify, Duration::from_millis(1500));
    assert!(
        !failing.iter().any(|m| m.contains("WATCHDOG=1")),
        "no watchdog ping while passes fail: {failing:?}"
    );
    assert_eq!(
        host.read_sysctl("net.ipv6.conf.eth0.accept_ra"),
        original_ra,
        "control: dock6 could not write accept_ra"
    );
    assert!(
        !agent.log().contains("net.ipv6.conf.all.forwarding: 0 → 1"),
        "forwarding waits for accept_ra:\n{}",
        agent.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let failures = agent.log().matches("retrying").count();
    assert!(failures >= 2, "retried without an event:\n{}", agent.log());

    // Both namespaces: what /proc/sys/net shows depends on the network namespace.
    let mnt = format!("--mount=/proc/{}/ns/mnt", agent.pid());
    let net = format!("--net=/proc/{}/ns/net", agent.pid());
    let out = std::process::Command::new("nsenter")
        .args([mnt.as_str(), net.as_str(), "umount", ACCEPT_RA])
        .output()
        .expect("nsenter umount");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixed = Instant::now();
    while host.read_sysctl("net.ipv6.conf.eth0.accept_ra") != "2"
        || host.read_sysctl("net.ipv6.conf.all.forwarding") != "1"
    {
        assert!(
            fixed.elapsed() < PROMPTLY,
            "did not converge after the sysctl came back:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "figure: converged {:?} after the sysctl came back",
        fixed.elapsed()
    );
    // Converged: no more retries, and the watchdog is pinged again.
    let retries = agent.log().matches("retrying").count();
    let converged = notifications(&notify, Duration::from_secs(3));
    assert_eq!(
        agent.log().matches("retrying").count(),
        retries,
        "{}",
        agent.log()
    );
    let pings = converged
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(pings >= 4, "pinged while passes converge: {converged:?}");

    // Docker merely away: still healthy.
    let mark = agent.mark();
    lab.lab.stop_docker().expect("stop dockerd");
    agent.wait_for_log_since(mark, "reconnecting to Docker", PROMPTLY);
    let away = notifications(&notify, Duration::from_secs(1));
    assert!(
        away.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
        "pinged while Docker is away: {away:?}"
    );
    assert!(agent.is_running());
    let away = status(&lab, &status_socket);
    assert_eq!(away["docker"]["state"], "unreachable", "{away:#}");
    assert!(
        away["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["text"]
                .as_str()
                .unwrap()
                .starts_with("Docker unreachable since")),
        "{away:#}"
    );

    // Docker back: status counts the reconnect.
    let options = lab.options.clone();
    lab.lab.start_docker(&options).expect("start dockerd again");
    let deadline = Instant::now() + PROMPTLY;
    let back = loop {
        let now = status(&lab, &status_socket);
        if now["docker"]["state"] == "connected" || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(back["docker"]["state"], "connected", "{back:#}");
    assert_eq!(back["counters"]["docker_reconnects"], 1, "{back:#}");
}

/// The datagrams that arrive on `socket` within `window`.
fn notifications(socket: &UnixDatagram, window: Duration) -> Vec<String> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // What came before the window is not part of it.
    queued(socket);
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

/// The datagrams already waiting on `socket`.
fn queued(socket: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}
