//! A container being started, its userland proxy off: Docker holds its
//! published ports from early in the start with a socket that never
//! accepts, so a client that comes before the DNAT hangs there or has its
//! SYN dropped in silence. dock6 reads the ports at the container's
//! `create` and refuses connections to them until the DNAT is in: a client
//! sees refused, then the container's answer, and never a silent port.

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::docker_lab::{DockerLab, lab};
use common::lab::sock;
use common::web::{
    HOST, PROMPTLY, dock6_holds_tcp_port, ipv6_network, one_at_a_time, refused, server_container,
};

/// What one connection to a port got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// The container's HTTP answer.
    Answer,
    /// Refused (a reset or an ICMPv6 error) at once.
    Refused,
    /// No answer to the SYN: dropped in silence.
    TimedOut,
    /// Connected, but nothing answered the request: Docker's placeholder.
    Silent,
}

/// One connection to `to` with a `wait` for the connect and for the answer.
fn connect_once(to: SocketAddr, wait: Duration) -> Seen {
    match TcpStream::connect_timeout(&to, wait) {
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(wait));
            let _ = s.write_all(b"GET /cgi-bin/ip HTTP/1.0\r\n\r\n");
            let mut head = [0u8; 5];
            match s.read_exact(&mut head) {
                Ok(()) if &head == b"HTTP/" => Seen::Answer,
                _ => Seen::Silent,
            }
        }
        Err(e) if e.kind() == ErrorKind::TimedOut => Seen::TimedOut,
        Err(_) => Seen::Refused,
    }
}

/// Whether `tcp . port` is among the ports dock6 refuses while a container starts.
fn refused_while_starting(lab: &DockerLab, port: u16) -> bool {
    dock6_holds_tcp_port(lab, "set", "starting_any", port)
}

#[test]
fn a_port_being_set_up_is_refused_until_the_container_answers_never_silent() {
    let Some(_serial) = one_at_a_time("a_port_being_set_up_is_refused_until_it_answers") else {
        return;
    };
    let lab = DockerLab::up(
        "start",
        lab::Options {
            userland_proxy: false,
            ..Default::default()
        },
    );
    let agent = Agent::start(&lab, "");
    agent.wait_for_log("reconciled", PROMPTLY);
    ipv6_network(&lab, "app", "fd00:57::/64");
    let (upstream, host) = (lab.upstream_ns(), lab.host_ns());

    // Someone else's service on the host, on a port a created container asks
    // for too (its start would fail on it).
    let _theirs = host.tcp_echo_peer(9999);
    let create = |name: &str, publish: &[&str], options: &[&str]| {
        server_container(&lab, &["create"], name, "app", options, publish);
    };
    create("late", &["9999:80", "8081:80"], &[]);
    create("sealed", &["8083:80"], &["--label", "dock6.expose=false"]);
    create("web", &["8080:80"], &[]);
    agent.wait_until(
        "dock6 refuses 8080 and 8081 before their start",
        PROMPTLY,
        || refused_while_starting(&lab, 8080) && refused_while_starting(&lab, 8081),
    );
    assert!(
        !refused_while_starting(&lab, 9999),
        "a port the host's own service holds is never refused"
    );
    assert!(
        !refused_while_starting(&lab, 8083),
        "a sealed container's port is not dock6's to refuse"
    );
    // The host's own service still answers on its port (the path left open)...
    let theirs = upstream
        .tcp(sock(HOST, 9999))
        .expect("the host's own service on 9999 answers");
    assert!(theirs.contains(lab::UPSTREAM_V6), "{theirs}");
    // ...while the created container's port is refused at once, not dropped.
    let seen = upstream.run(|| connect_once(sock(HOST, 8080), Duration::from_millis(500)));
    assert_eq!(seen, Seen::Refused, "8080 before the start");

    // A client that keeps trying through the whole start.
    let to = sock(HOST, 8080);
    let probe = upstream.spawn(move || {
        let deadline = Instant::now() + PROMPTLY;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let s = connect_once(to, Duration::from_millis(500));
            seen.push(s);
            if s == Seen::Answer {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    });
    lab.docker(&["start", "web"]);
    let seen = probe.join().expect("the probe thread");
    let count = |what: Seen| seen.iter().filter(|s| **s == what).count();
    assert_eq!(
        seen.last(),
        Some(&Seen::Answer),
        "8080 answers once web runs: {seen:?}\n{}",
        agent.log()
    );
    assert_eq!(
        (count(Seen::TimedOut), count(Seen::Silent)),
        (0, 0),
        "no connection is dropped or left hanging while the port is set up: {seen:?}"
    );
    assert!(
        count(Seen::Refused) > 0,
        "the probe came before the DNAT: {seen:?}"
    );
    let answer = upstream
        .http_get(to, "/cgi-bin/ip")
        .expect("web answers through the DNAT");
    assert!(
        answer.contains(lab::UPSTREAM_V6),
        "DNAT'ed with the client's address: {answer}"
    );
    assert!(
        !refused_while_starting(&lab, 8080),
        "running: no longer refused"
    );

    // What dock6 spares clients: Docker's placeholder socket, which a sealed
    // container's port (never DNAT'ed, never refused) keeps.
    lab.docker(&["start", "sealed"]);
    std::thread::sleep(Duration::from_millis(500));
    let seen = upstream.run(|| connect_once(sock(HOST, 8083), Duration::from_millis(500)));
    assert!(
        matches!(seen, Seen::Silent | Seen::TimedOut),
        "Docker holds 8083 and never answers: {seen:?}"
    );
    assert!(refused(&upstream, sock(HOST, 8083)));
}
