//! The Docker lab itself (xtask/src/lab.rs, included here as a module): a private dockerd in
//! namespaces of its own runs a container on an IPv6 network, and the container's address answers
//! over TCP from the host namespace. The lab is removed when the test ends, pass or fail.

mod common;

#[path = "../xtask/src/lab.rs"]
mod lab;

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

/// Brings the lab down when dropped, also after a failed `up` or a failed assertion.
struct Down(lab::Lab);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = self.0.down() {
            eprintln!("lab cleanup: {e:#}");
        }
    }
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An HTTP GET from a thread that joined `netns`, retried until `timeout` (the server may still be
/// starting); returns the response.
fn http_get_in(netns: &str, addr: SocketAddr, timeout: Duration) -> String {
    let path = format!("/run/netns/{netns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: a valid namespace fd; setns with CLONE_NEWNET changes only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                let started = Instant::now();
                loop {
                    let attempt = (|| -> std::io::Result<String> {
                        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                        let mut response = String::new();
                        stream.read_to_string(&mut response)?;
                        Ok(response)
                    })();
                    match attempt {
                        Ok(response) => return response,
                        Err(e) if started.elapsed() > timeout => panic!("GET http://{addr}/ from {netns}: {e}"),
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

#[test]
fn container_ipv6_address_answers_from_the_host_namespace() {
    if !common::require_root("lab_smoke") {
        return;
    }
    let name = format!("smoke-{}", std::process::id());
    let mut guard = Down(lab::Lab::new(&name).expect("valid lab name"));
    let started = Instant::now();
    guard.0.up(&lab::Options::default()).unwrap_or_else(|e| panic!("lab up: {e:#}"));
    eprintln!("lab {name} up in {:.1?}", started.elapsed());
    let lab = &guard.0;

    output(lab.docker().args(["network", "create", "--ipv6", "--subnet", "fd00:5::/64", "smoke"]));
    let id = output(lab.docker().args([
        "run",
        "-d",
        "--network",
        "smoke",
        "-p",
        "8080:80",
        lab::IMAGE,
        "sh",
        "-c",
        "echo hello-dock6 > /www/index.html && exec httpd -f -p 80 -h /www",
    ]));
    let address = output(lab.docker().args([
        "inspect",
        "--format",
        "{{(index .NetworkSettings.Networks \"smoke\").GlobalIPv6Address}}",
        &id,
    ]));
    let address: Ipv6Addr = address.parse().unwrap_or_else(|e| panic!("container address {address:?}: {e}"));
    assert_eq!(address.segments()[..4], [0xfd00, 5, 0, 0], "{address} is not in fd00:5::/64");

    // Docker reports `-p 8080:80` on both families.
    let ports = output(lab.docker().args(["inspect", "--format", "{{json .NetworkSettings.Ports}}", &id]));
    assert!(ports.contains(r#""HostIp":"::","HostPort":"8080""#), "{ports}");

    let response = http_get_in(&lab.host_ns, SocketAddr::from((address, 80)), Duration::from_secs(10));
    assert!(response.contains("hello-dock6"), "from [{address}]:80: {response:?}");

    // The published port on the host's uplink address, served by Docker's userland proxy.
    let host: Ipv6Addr = lab::HOST_V6.parse().unwrap();
    let response = http_get_in(&lab.host_ns, SocketAddr::from((host, 8080)), Duration::from_secs(10));
    assert!(response.contains("hello-dock6"), "from [{host}]:8080: {response:?}");

    drop(guard);
    assert!(!std::path::Path::new(lab::BASE_DIR).join(&name).exists(), "lab directory left behind");
    assert!(!std::path::Path::new("/run/netns").join(format!("{name}-host")).exists(), "namespace left behind");
}
