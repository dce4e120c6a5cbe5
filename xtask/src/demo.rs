//! `cargo xtask demo`: dock6's main job on a fresh machine, in namespaces of
//! its own. It brings up the lab (a private dockerd in a "host" namespace
//! behind an "upstream" one), runs `dock6 run` against it, starts a container
//! on a ULA network with a published port, shows its IPv6 egress and the
//! published port working from the upstream, and tears everything down.
//! The system's own Docker and network are never touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use dock6_lab::{self as lab, Lab};

const NAME: &str = "dock6-demo";
const NETWORK: &str = "demo";
const SUBNET: &str = "fd00:d6::/64";
/// The request busybox `nc` sends to the who-am-I CGI.
const GET_IP: &str = r#"printf 'GET /cgi-bin/ip HTTP/1.0\r\n\r\n'"#;
const CGI: &str = "#!/bin/sh\necho Content-Type: text/plain\necho\necho \"$REMOTE_ADDR\"\n";

pub fn demo(dock6: &Path, options: &lab::Options) -> Result<()> {
    let mut lab = Lab::new(NAME)?;
    let _ = lab.down(); // leftovers of an interrupted demo
    let result = run_demo(&mut lab, dock6, options);
    eprintln!("\n== tearing down: dock6 stopped (its rules would stay in the kernel), lab removed");
    let down = lab.down();
    result.and(down)
}

fn step(text: &str) {
    eprintln!("\n== {text}");
}

/// The demo's steps, each printed as it starts; the lab is torn down by the caller.
fn run_demo(lab: &mut Lab, dock6: &Path, options: &lab::Options) -> Result<()> {
    step(
        "lab: upstream namespace (the internet, 2001:db8:ffff::1) and host namespace with a private dockerd",
    );
    lab.up(options)?;
    let mut internet = start_internet(lab)?;
    let (mut agent, log) = start_agent(lab, dock6)?;
    start_web_container(lab)?;
    show_egress(lab)?;
    show_published_port(lab)?;

    step("table inet dock6, map dnat_any (in the host namespace)");
    let map = lab::output(
        lab.in_host("nft")
            .args(["list", "map", "inet", "dock6", "dnat_any"]),
    )?;
    eprintln!("{}", map.trim_end());

    step("dock6's log");
    eprintln!("{}", std::fs::read_to_string(&log)?.trim_end());
    agent.stop();
    internet.stop();
    eprintln!("\nOK: a container with working IPv6 egress and an IPv6 published port.");
    Ok(())
}

/// A who-am-I web server on the upstream's "internet" address.
fn start_internet(lab: &Lab) -> Result<Guard> {
    step("the internet: a web server on 2001:db8:ffff::1 that answers with the client's address");
    let www = lab.dir.join("www");
    std::fs::create_dir_all(www.join("cgi-bin"))?;
    std::fs::write(www.join("cgi-bin/ip"), CGI)?;
    lab::output(Command::new("chmod").arg("+x").arg(www.join("cgi-bin/ip")))?;
    let child = lab
        .in_upstream("busybox")
        .args([
            "httpd",
            "-f",
            "-p",
            &format!("[{}]:80", lab::UPSTREAM_INTERNET_V6),
            "-h",
        ])
        .arg(&www)
        .stdin(Stdio::null())
        .spawn()
        .context("start the upstream web server")?;
    Ok(Guard(child))
}

/// `dock6 run` in the host namespace, once it has reconciled; also the path of its log.
fn start_agent(lab: &Lab, dock6: &Path) -> Result<(Guard, PathBuf)> {
    step("dock6 run, in the host namespace, against the lab's dockerd");
    let log = lab.dir.join("dock6.log");
    let log_file = std::fs::File::create(&log)?;
    let agent = Guard(
        lab.in_host(&dock6.display().to_string())
            .args(["run", "--docker-host", &lab.docker_host()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("start dock6 run")?,
    );
    wait_for(
        || Ok(std::fs::read_to_string(&log)?.contains("reconciled")),
        "dock6's first reconcile",
    )?;
    Ok((agent, log))
}

/// The ULA network and the container `web` on it, port 80 published as 8080.
fn start_web_container(lab: &Lab) -> Result<()> {
    step(&format!(
        "docker network create --ipv6 --subnet {SUBNET} {NETWORK}; docker run -p 8080:80 (busybox httpd)"
    ));
    lab::output(
        lab.docker()
            .args(["network", "create", "--ipv6", "--subnet", SUBNET, NETWORK]),
    )?;
    let server = format!(
        "mkdir -p /www/cgi-bin && printf '{}' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www",
        CGI.replace('\n', "\\n").replace('"', "\\\"")
    );
    lab::output(lab.docker().args([
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        NETWORK,
        "-p",
        "8080:80",
        lab::IMAGE,
        "sh",
        "-c",
        &server,
    ]))?;
    let address = lab::output(lab.docker().args([
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").GlobalIPv6Address}}}}"),
        "web",
    ]))?;
    eprintln!(
        "container web has {} (ULA: dock6 chose nat66)",
        address.trim()
    );
    Ok(())
}

/// A container's request to the internet arrives from the host's address (NAT66).
fn show_egress(lab: &Lab) -> Result<()> {
    step("IPv6 egress: the container asks the internet who it is");
    let egress = lab::output(lab.docker().args([
        "run",
        "--rm",
        "--network",
        NETWORK,
        lab::IMAGE,
        "sh",
        "-c",
        &format!("{GET_IP} | nc {} 80", lab::UPSTREAM_INTERNET_V6),
    ]))?;
    let seen = body(&egress);
    eprintln!(
        "the internet sees {seen} (the host's address {}: NAT66)",
        lab::HOST_V6
    );
    if seen.trim_matches(['[', ']']) != lab::HOST_V6 {
        bail!("egress seen as {seen:?}, expected the host's address");
    }
    Ok(())
}

/// The upstream reaches the published port on the host's address, and the container sees the
/// upstream's own address.
fn show_published_port(lab: &Lab) -> Result<()> {
    step(&format!(
        "published port: the upstream fetches http://[{}]:8080/cgi-bin/ip",
        lab::HOST_V6
    ));
    let mut seen = String::new();
    wait_for(
        || {
            let answer = lab::output(lab.in_upstream("busybox").args([
                "sh",
                "-c",
                &format!("{GET_IP} | nc {} 8080", lab::HOST_V6),
            ]))
            .unwrap_or_default();
            seen = body(&answer);
            Ok(seen.contains(lab::UPSTREAM_V6))
        },
        "the published port to be DNAT'ed",
    )?;
    eprintln!(
        "the container sees {seen}: the client's real address (DNAT by dock6, not Docker's userland proxy)"
    );
    Ok(())
}

/// The body of an HTTP answer (CGI output may end its headers with "\n\n").
fn body(answer: &str) -> String {
    let answer = answer.replace("\r\n", "\n");
    answer
        .split_once("\n\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default()
}

fn wait_for(mut ready: impl FnMut() -> Result<bool>, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready()? {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A child process of the demo, ended with SIGTERM by its pid.
struct Guard(Child);

impl Guard {
    fn stop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.0.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                sleep(Duration::from_millis(20));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}
