//! Containers for the end-to-end tests (`dock6 run` against the xtask lab's
//! dockerd): a busybox web server that answers with the client's address,
//! its addresses, and waits for a port to answer.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::agent::Agent;
use super::docker_lab::{DockerLab, lab};
use super::netns::Netns;

pub const HOST: &str = lab::HOST_V6;
pub const UPSTREAM: &str = lab::UPSTREAM_V6;
pub const INTERNET: &str = lab::UPSTREAM_INTERNET_V6;
pub const PROMPTLY: Duration = Duration::from_secs(20);

/// One lab at a time per test binary: these tests start dozens of containers on two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Whether `test` may run (root: see `require_root`), holding the one-lab lock.
pub fn one_at_a_time(test: &str) -> Option<MutexGuard<'static, ()>> {
    super::require_root(test).then(|| SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A busybox httpd on ports 80 and 9000 whose `/cgi-bin/ip` answers with the client's address.
pub const WHO_AM_I_SERVER: &str = "mkdir -p /www/cgi-bin && \
    printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \"$REMOTE_ADDR\"\\n' > /www/cgi-bin/ip && \
    chmod +x /www/cgi-bin/ip && httpd -p 9000 -h /www && exec httpd -f -p 80 -h /www";

pub fn run_server(lab: &DockerLab, name: &str, network: &str, publish: &[&str]) -> String {
    run_server_with(lab, name, network, &[], publish)
}

/// The same with more `docker run` options (`--ip6 …`, `--cap-add …`).
pub fn run_server_with(
    lab: &DockerLab,
    name: &str,
    network: &str,
    options: &[&str],
    publish: &[&str],
) -> String {
    server_container(lab, &["run", "-d"], name, network, options, publish)
}

/// The who-am-I server as a container made by `verb` (`run -d`, `create`).
pub fn server_container(
    lab: &DockerLab,
    verb: &[&str],
    name: &str,
    network: &str,
    options: &[&str],
    publish: &[&str],
) -> String {
    let mut args = verb.to_vec();
    args.extend(["--name", name, "--network", network]);
    args.extend_from_slice(options);
    for p in publish {
        args.extend(["-p", p]);
    }
    args.extend([lab::IMAGE, "sh", "-c", WHO_AM_I_SERVER]);
    lab.docker(&args)
}

/// Whether dock6's `set` or `map` NAME (in the lab's host) holds an
/// element for TCP port `port`.
pub fn dock6_holds_tcp_port(lab: &DockerLab, kind: &str, name: &str, port: u16) -> bool {
    let listed = lab
        .host_ns()
        .exec_ok(&["nft", "list", kind, "inet", "dock6", name]);
    let element = format!("tcp . {port}");
    listed
        .match_indices(&element)
        .any(|(at, _)| !listed[at + element.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The source address the internet sees from a throwaway container on
/// `network` (an echo peer on the upstream's internet address answers with it).
pub fn internet_sees_from(lab: &DockerLab, network: &str) -> String {
    try_internet_sees_from(lab, network)
        .unwrap_or_else(|e| panic!("a container on {network} reaching the internet: {e}"))
}

/// The same, or what went wrong (the container's error).
pub fn try_internet_sees_from(lab: &DockerLab, network: &str) -> Result<String, String> {
    let _peer = lab.upstream_ns().tcp_echo_peer(7000);
    let out = lab
        .lab
        .docker()
        .args(["run", "--rm", "--network", network, lab::IMAGE])
        .args(["nc", INTERNET, "7000"])
        .output()
        .expect("run docker");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).trim().to_string();
    match out.status.success() {
        true => Ok(text(out.stdout)),
        false => Err(text(out.stderr)),
    }
}

pub fn address_of(lab: &DockerLab, container: &str, network: &str) -> String {
    lab.docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").GlobalIPv6Address}}}}"),
        container,
    ])
}

/// The pid of a container's init process (to enter its network namespace).
pub fn pid_of(lab: &DockerLab, container: &str) -> u32 {
    let pid = lab.docker(&["inspect", "-f", "{{.State.Pid}}", container]);
    pid.parse()
        .unwrap_or_else(|_| panic!("pid of {container}: {pid:?}"))
}

pub fn ipv6_network(lab: &DockerLab, name: &str, subnet: &str) {
    lab.docker(&["network", "create", "--ipv6", "--subnet", subnet, name]);
}

/// An IPv6 network with more `docker network create` options (labels, `-o`).
pub fn ipv6_network_with(lab: &DockerLab, name: &str, subnet: &str, options: &[&str]) {
    let mut args = vec!["network", "create", "--ipv6", "--subnet", subnet];
    args.extend_from_slice(options);
    args.push(name);
    lab.docker(&args);
}

/// Waits until `to` answers `from` with a body holding `seen` (the client
/// address the container sees); panics with dock6's log after `PROMPTLY`.
pub fn answers(from: &Netns, to: SocketAddr, seen: &str, agent: &Agent) -> Duration {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < PROMPTLY {
        match from.http_get(to, "/cgi-bin/ip") {
            Ok(body) if body.contains(seen) => return started.elapsed(),
            Ok(body) => last = body,
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "{to} did not answer {} as {seen} within {PROMPTLY:?} (last answer: {last})\n{}",
        from.name,
        agent.log()
    );
}

/// Waits until `to` answers the upstream *with the upstream's own address*:
/// DNAT by dock6, not Docker's userland proxy (which answers from the
/// bridge's address as soon as `docker run` returns).
pub fn reached_by_dnat(upstream: &Netns, to: SocketAddr, agent: &Agent) -> Duration {
    answers(upstream, to, UPSTREAM, agent)
}

/// Whether an HTTP GET from `from` to `to` fails (refused, dropped or reset).
pub fn refused(from: &Netns, to: SocketAddr) -> bool {
    from.http_get(to, "/cgi-bin/ip").is_err()
}
