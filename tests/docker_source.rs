//! `dock6::source::docker` against a real dockerd: a private one, started in
//! a network namespace of its own with its own config file, data and exec
//! roots and socket (DESIGN.md, "The demo never touches the user's system").
//! The image is built with `docker import` from Debian's static busybox.
//! Everything is removed by a drop guard, also when the test fails.

mod common;

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dock6::snapshot::PortBinding;
use dock6::source::docker::{
    DockerEvent, connect, docker_snapshot, event_stream, inspect_container, inspect_network,
};
use futures::{Stream, StreamExt};

const IMAGE: &str = "d6-busybox:test";

/// A private dockerd in namespace `d6dk-<pid>`, state in `/tmp/d6dk-<pid>`.
struct Dockerd {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Dockerd {
    fn start() -> Dockerd {
        let ns = format!("d6dk-{}", std::process::id());
        let dir = PathBuf::from(format!("/tmp/{ns}"));
        // Leftovers of a crashed run with the same pid.
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let _ = std::fs::remove_dir_all(&dir);
        // From here on, Drop cleans up whatever exists.
        let mut d = Dockerd { ns, dir, child: None };
        std::fs::create_dir_all(d.dir.join("cli")).expect("create test dir");
        std::fs::write(
            d.dir.join("daemon.json"),
            r#"{"ipv6": true, "fixed-cidr-v6": "fd00:d0c::/64", "ip6tables": false,
                "bip": "203.0.113.1/26",
                "default-address-pools": [{"base": "203.0.113.64/26", "size": 28}],
                "shutdown-timeout": 2}"#,
        )
        .expect("write daemon.json");
        run("ip", &["netns", "add", &d.ns]);
        run("ip", &["-n", &d.ns, "link", "set", "lo", "up"]);
        let log = std::fs::File::create(d.dir.join("dockerd.log")).expect("dockerd.log");
        let p = |name: &str| d.dir.join(name).to_string_lossy().into_owned();
        // nsenter, not `ip netns exec` (which remounts /sys and hides the cgroups).
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", d.ns))
            .args(["dockerd", "--config-file", &p("daemon.json"), "--data-root", &p("data")])
            .args(["--exec-root", &p("exec"), "--pidfile", &p("docker.pid"), "-H", &d.host()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn nsenter dockerd");
        d.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("dockerd exited ({status}):\n{}", d.log());
            }
            if d.dir.join("docker.sock").exists() && d.docker_ok(&["version"]) {
                break;
            }
            assert!(Instant::now() < deadline, "dockerd not ready after 60 s:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", self.dir.join("cli")).args(["-H", &self.host()]).args(args);
        cmd
    }

    fn docker_ok(&self, args: &[&str]) -> bool {
        self.docker_cmd(args).output().is_ok_and(|o| o.status.success())
    }

    /// `docker ARGS…`, panicking with stderr on failure; returns trimmed stdout.
    fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_cmd(args).output().expect("run docker");
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An image holding Debian's static busybox with a few applet links.
    fn import_busybox(&self) {
        let root = self.dir.join("image");
        std::fs::create_dir_all(root.join("bin")).expect("image dir");
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox (package busybox-static)");
        for applet in ["sh", "sleep", "nc", "httpd"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("applet link");
        }
        let tar = root.with_extension("tar");
        run("tar", &["-C", &root.to_string_lossy(), "-cf", &tar.to_string_lossy(), "."]);
        self.docker(&["import", &tar.to_string_lossy(), IMAGE]);
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if child.try_wait().ok().flatten().is_none() {
            // Containers first: busybox as PID 1 ignores SIGTERM, and dockerd
            // would wait for each of them on shutdown.
            let ids = self.docker_cmd(&["ps", "-aq"]).output().map(|o| o.stdout).unwrap_or_default();
            let ids = String::from_utf8_lossy(&ids);
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker_cmd(&args).output();
            }
            signal(child.id() as i32, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if child.try_wait().ok().flatten().is_none() {
                eprintln!("dockerd did not stop within 20 s: SIGKILL");
                let _ = child.kill();
            }
        }
        let _ = child.wait();
        // dockerd's own containerd, if a killed dockerd left it behind.
        if let Some(pid) = read_pid(&self.dir.join("exec/containerd/containerd.pid")) {
            signal(pid, libc::SIGKILL);
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
        // Mounts dockerd may have left under the test dir, deepest first.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.to_string_lossy().into_owned();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).output();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("removing {}: {e}", self.dir.display());
        }
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid we started; a stale pid only yields ESRCH.
    unsafe { libc::kill(pid, sig) };
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok().filter(|p| *p > 1)
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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
    // Without --containerd, dockerd uses a running system containerd if it
    // finds one: that would share state with the system's Docker.
    if Path::new("/run/containerd/containerd.sock").exists() {
        let why = "a system containerd is running (/run/containerd/containerd.sock); a private dockerd would use it";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{TEST}: {why}");
        }
        eprintln!("SKIPPED {TEST}: {why}");
        return;
    }

    let started = Instant::now();
    let dockerd = Dockerd::start();
    let start_time = started.elapsed();
    dockerd.import_busybox();
    let v6net_id = dockerd.docker(&[
        "network", "create", "--ipv6", "--subnet", "fd00:1::/64", "--label", "dock6.mode=nat66", "v6net",
    ]);
    let web_id = dockerd.docker(&[
        "run", "-d", "--name", "web", "--label", "dock6.expose=80/tcp", "--network", "v6net", "-p",
        "8080:80", IMAGE, "sleep", "100000",
    ]);

    let client = connect(Some(&dockerd.host())).await.expect("connect");
    assert_eq!(client.client_version().to_string(), "1.41", "Debian's Docker 20.10 speaks API 1.41");

    // Subscribe first, then snapshot.
    let mut events = Box::pin(event_stream(&client));
    let t = Instant::now();
    let state = docker_snapshot(&client).await.expect("snapshot");
    let snapshot_1 = t.elapsed();

    let names: Vec<&str> = state.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["bridge", "host", "none", "v6net"]);
    let v6net = &state.networks[3];
    assert_eq!(v6net.id, v6net_id);
    assert_eq!(v6net.driver, "bridge");
    assert!(v6net.enable_ipv6 && !v6net.internal);
    assert_eq!(v6net.ipv6_subnets(), vec!["fd00:1::/64".parse().unwrap()]);
    assert_eq!(v6net.labels.get("dock6.mode").map(String::as_str), Some("nat66"));
    assert_eq!(v6net.bridge_name(), format!("br-{}", &v6net_id[..12]));
    let bridge = &state.networks[0];
    assert_eq!(bridge.bridge_name(), "docker0");
    assert_eq!(bridge.ipv6_subnets(), vec!["fd00:d0c::/64".parse().unwrap()]);

    assert_eq!(state.containers.len(), 1);
    let web = &state.containers[0];
    assert_eq!((web.id.as_str(), web.name.as_str()), (web_id.as_str(), "web"));
    assert_eq!(web.labels.get("dock6.expose").map(String::as_str), Some("80/tcp"));
    assert_eq!(web.gateway_network.as_deref(), Some("v6net"));
    let address = web.networks["v6net"].ipv6_address.expect("web has an IPv6 address on v6net");
    assert!("fd00:1::/64".parse::<ipnet::Ipv6Net>().unwrap().contains(&address), "{address}");
    let binding = |ip: &str| PortBinding { host_ip: ip.into(), host_port: "8080".into() };
    assert_eq!(web.ports["80/tcp"], Some(vec![binding("0.0.0.0"), binding("::")]));

    // A container started after the subscription, before the stream is first
    // polled: its events still arrive (the subscription asks for them `since`).
    let second_id = dockerd.docker(&["run", "-d", "--name", "second", "--network", "v6net", IMAGE, "sleep", "100000"]);
    let t = Instant::now();
    wait_for(&mut events, "second started", |e| {
        *e == DockerEvent::ContainerChanged { id: second_id.clone() }
    })
    .await;
    let event_latency = t.elapsed();
    let second = inspect_container(&client, &second_id).await.expect("inspect").expect("second runs");
    assert_eq!(second.name, "second");
    assert_eq!(second.gateway_network.as_deref(), Some("v6net"));
    let second_address: Ipv6Addr = second.networks["v6net"].ipv6_address.expect("address");
    assert_ne!(second_address, address);
    assert_eq!(inspect_network(&client, &v6net_id).await.expect("inspect network").as_ref(), Some(v6net));

    // Connect → the container is named; remove → gone.
    dockerd.docker(&["network", "create", "other"]);
    dockerd.docker(&["network", "connect", "other", "second"]);
    wait_for(&mut events, "second connected", |e| {
        *e == DockerEvent::ContainerChanged { id: second_id.clone() }
    })
    .await;
    let second = inspect_container(&client, &second_id).await.expect("inspect").expect("second runs");
    assert_eq!(second.networks.keys().collect::<Vec<_>>(), ["other", "v6net"]);
    assert_eq!(second.gateway_network.as_deref(), Some("v6net"), "dual-stack v6net before IPv4-only other");
    dockerd.docker(&["rm", "-f", "second"]);
    wait_for(&mut events, "second gone", |e| *e == DockerEvent::ContainerGone { id: second_id.clone() }).await;
    assert_eq!(inspect_container(&client, &second_id).await.expect("inspect"), None);
    assert_eq!(inspect_container(&client, "no-such-container").await.expect("inspect"), None);
    assert_eq!(inspect_network(&client, "no-such-network").await.expect("inspect"), None);

    // Snapshot time with more containers.
    const N: usize = 10;
    for i in 0..N {
        let name = format!("c{i}");
        dockerd.docker(&["run", "-d", "--name", &name, "--network", "v6net", "-p", "80", IMAGE, "sleep", "100000"]);
    }
    let t = Instant::now();
    let state = docker_snapshot(&client).await.expect("snapshot");
    let snapshot_n = t.elapsed();
    assert_eq!(state.containers.len(), N + 1);
    assert!(state.containers.iter().all(|c| c.networks["v6net"].ipv6_address.is_some()));

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
