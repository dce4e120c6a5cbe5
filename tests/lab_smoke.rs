//! The Docker lab itself (the `dock6-lab` crate, lab/): a private dockerd in namespaces
//! of its own runs a container on an IPv6 network, and the container's
//! address answers over TCP from the host namespace. The lab is removed when
//! the test ends, pass or fail.

mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::docker_lab::{DockerLab, lab};
use common::lab::sock;

#[test]
fn container_ipv6_address_answers_from_the_host_namespace() {
    if !common::require_root("lab_smoke") {
        return;
    }
    let started = Instant::now();
    let docker_lab = DockerLab::up("smoke", lab::Options::default());
    eprintln!(
        "lab {} up in {:.1?}",
        docker_lab.lab.name,
        started.elapsed()
    );
    let (name, host_ns) = (docker_lab.lab.name.clone(), docker_lab.lab.host_ns.clone());

    docker_lab.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:5::/64",
        "smoke",
    ]);
    let id = docker_lab.docker(&[
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
    ]);
    let address = docker_lab.docker(&[
        "inspect",
        "--format",
        "{{(index .NetworkSettings.Networks \"smoke\").GlobalIPv6Address}}",
        &id,
    ]);
    let address: Ipv6Addr = address
        .parse()
        .unwrap_or_else(|e| panic!("container address {address:?}: {e}"));
    assert_eq!(
        address.segments()[..4],
        [0xfd00, 5, 0, 0],
        "{address} is not in fd00:5::/64"
    );

    // Docker reports `-p 8080:80` on both families.
    let ports = docker_lab.docker(&[
        "inspect",
        "--format",
        "{{json .NetworkSettings.Ports}}",
        &id,
    ]);
    assert!(
        ports.contains(r#""HostIp":"::","HostPort":"8080""#),
        "{ports}"
    );

    let host = docker_lab.host_ns();
    let body = host.http_get_within(sock(&address.to_string(), 80), "/", Duration::from_secs(10));
    assert_eq!(body.expect("the container answers"), "hello-dock6");
    // The published port on the host's uplink address, served by Docker's userland proxy.
    let body = host.http_get_within(sock(lab::HOST_V6, 8080), "/", Duration::from_secs(10));
    assert_eq!(body.expect("the userland proxy answers"), "hello-dock6");

    drop(docker_lab);
    assert!(
        !std::path::Path::new(lab::BASE_DIR).join(&name).exists(),
        "lab directory left behind"
    );
    assert!(
        !std::path::Path::new("/run/netns").join(host_ns).exists(),
        "namespace left behind"
    );
}
