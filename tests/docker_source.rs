//! `dock6::source::docker` against a real dockerd: the lab's private one, in
//! network namespaces of its own with its own config file, data and exec
//! roots and socket, so the test never reads or changes the system's Docker
//! or the host's network. Everything is removed by a drop guard, also when
//! the test fails.

mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::docker_lab::DockerLab;
use dock6::snapshot::PortBinding;
use dock6::source::docker::{
    DockerEvent, connect, docker_snapshot, event_stream, inspect_container, inspect_network,
    internal_network_ids,
};
use futures::{Stream, StreamExt};

const IMAGE: &str = common::docker_lab::lab::IMAGE;

/// The next hint about `id` matching `want`, within 15 s.
async fn wait_for<S>(events: &mut S, what: &str, want: impl Fn(&DockerEvent) -> bool) -> DockerEvent
where
    S: Stream<Item = Result<DockerEvent, dock6::source::docker::DockerError>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => panic!("no {what} event within 15 s"),
            Ok(None) => panic!("event stream ended while waiting for {what}"),
            Ok(Some(Err(e))) => panic!("event stream: {e}"),
            Ok(Some(Ok(event))) if want(&event) => return event,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_events_and_inspect_against_a_private_dockerd() {
    const TEST: &str = "docker_source";
    if !common::require_root(TEST) {
        return;
    }
    let started = Instant::now();
    let dockerd = DockerLab::up("dsrc", Default::default());
    let start_time = started.elapsed();
    let v6net_id = dockerd.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:1::/64",
        "--label",
        "dock6.mode=nat66",
        "v6net",
    ]);
    let web_id = dockerd.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--label",
        "dock6.expose=80/tcp",
        "--network",
        "v6net",
        "-p",
        "8080:80",
        IMAGE,
        "sleep",
        "100000",
    ]);

    let client = connect(Some(&dockerd.host())).await.expect("connect");
    assert_eq!(
        client.client_version().to_string(),
        dockerd.options.docker.api_version(),
        "the version negotiated with {:?}",
        dockerd.options.docker
    );

    // Subscribe first, then snapshot.
    let mut events = Box::pin(event_stream(&client));
    let t = Instant::now();
    let state = docker_snapshot(&client).await.expect("snapshot");
    let internal = internal_network_ids(&state.networks);
    let snapshot_1 = t.elapsed();

    let names: Vec<&str> = state.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["bridge", "host", "none", "v6net"]);
    let v6net = &state.networks[3];
    assert_eq!(v6net.id, v6net_id);
    assert_eq!(v6net.driver, "bridge");
    assert!(v6net.enable_ipv6 && !v6net.internal);
    assert_eq!(v6net.ipv6_subnets(), vec!["fd00:1::/64".parse().unwrap()]);
    assert_eq!(
        v6net.labels.get("dock6.mode").map(String::as_str),
        Some("nat66")
    );
    assert_eq!(v6net.bridge_name(), format!("br-{}", &v6net_id[..12]));
    let bridge = &state.networks[0];
    assert_eq!(bridge.bridge_name(), "docker0");
    assert_eq!(
        bridge.ipv6_subnets(),
        vec!["fd00:d0c::/64".parse().unwrap()]
    );

    assert_eq!(state.containers.len(), 1);
    let web = &state.containers[0];
    assert_eq!(
        (web.id.as_str(), web.name.as_str()),
        (web_id.as_str(), "web")
    );
    assert_eq!(
        web.labels.get("dock6.expose").map(String::as_str),
        Some("80/tcp")
    );
    assert_eq!(web.gateway_network.as_deref(), Some("v6net"));
    let address = web.networks["v6net"]
        .ipv6_address
        .expect("web has an IPv6 address on v6net");
    assert!(
        "fd00:1::/64"
            .parse::<ipnet::Ipv6Net>()
            .unwrap()
            .contains(&address),
        "{address}"
    );
    let binding = |ip: &str| PortBinding {
        host_ip: ip.into(),
        host_port: "8080".into(),
    };
    // Docker publishes on both families; dock6 keeps the IPv6 binding only.
    assert_eq!(web.ports["80/tcp"], Some(vec![binding("::")]));

    // A container started after the subscription, before the stream is first
    // polled: its events still arrive (the subscription asks for them `since`).
    let second_id = dockerd.docker(&[
        "run",
        "-d",
        "--name",
        "second",
        "--network",
        "v6net",
        IMAGE,
        "sleep",
        "100000",
    ]);
    let t = Instant::now();
    wait_for(&mut events, "second started", |e| {
        *e == DockerEvent::ContainerChanged {
            id: second_id.clone(),
        }
    })
    .await;
    let event_latency = t.elapsed();
    let second = inspect_container(&client, &second_id, &internal)
        .await
        .expect("inspect")
        .expect("second runs");
    assert_eq!(second.name, "second");
    assert_eq!(second.gateway_network.as_deref(), Some("v6net"));
    let second_address: Ipv6Addr = second.networks["v6net"].ipv6_address.expect("address");
    assert_ne!(second_address, address);
    assert_eq!(
        inspect_network(&client, &v6net_id)
            .await
            .expect("inspect network")
            .as_ref(),
        Some(v6net)
    );

    // Connect → the container is named; remove → gone.
    dockerd.docker(&["network", "create", "other"]);
    dockerd.docker(&["network", "connect", "other", "second"]);
    wait_for(&mut events, "second connected", |e| {
        *e == DockerEvent::ContainerChanged {
            id: second_id.clone(),
        }
    })
    .await;
    let second = inspect_container(&client, &second_id, &internal)
        .await
        .expect("inspect")
        .expect("second runs");
    assert_eq!(
        second.networks.keys().collect::<Vec<_>>(),
        ["other", "v6net"]
    );
    assert_eq!(
        second.gateway_network.as_deref(),
        Some("v6net"),
        "dual-stack v6net before IPv4-only other"
    );
    dockerd.docker(&["rm", "-f", "second"]);
    wait_for(&mut events, "second gone", |e| {
        *e == DockerEvent::ContainerGone {
            id: second_id.clone(),
        }
    })
    .await;
    assert_eq!(
        inspect_container(&client, &second_id, &internal)
            .await
            .expect("inspect"),
        None
    );
    assert_eq!(
        inspect_container(&client, "no-such-container", &internal)
            .await
            .expect("inspect"),
        None
    );
    assert_eq!(
        inspect_network(&client, "no-such-network")
            .await
            .expect("inspect"),
        None
    );

    // Snapshot time with more containers.
    const N: usize = 10;
    for i in 0..N {
        let name = format!("c{i}");
        dockerd.docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "v6net",
            "-p",
            "80",
            IMAGE,
            "sleep",
            "100000",
        ]);
    }
    let t = Instant::now();
    let state = docker_snapshot(&client).await.expect("snapshot");
    let snapshot_n = t.elapsed();
    assert_eq!(state.containers.len(), N + 1);
    assert!(
        state
            .containers
            .iter()
            .all(|c| c.networks["v6net"].ipv6_address.is_some())
    );

    drop(events);
    let t = Instant::now();
    drop(dockerd);
    eprintln!(
        "timings: dockerd start {start_time:?}; snapshot with 1 container {snapshot_1:?}, with {} containers {snapshot_n:?}; \
         event after start {event_latency:?}; stop and cleanup {:?}",
        N + 1,
        t.elapsed()
    );
}
