//! A two-node Docker swarm (two dockerds on one link behind the upstream, `docker_gwbridge` made
//! with IPv6 before `swarm init`) with `dock6 run` on each node. One swarm serves every step, in
//! order, because each step starts from what the one before left:
//!
//! 1. without dock6, a global service's task on each node has no IPv6 egress and a service
//!    published in host mode does not answer over IPv6 (the userland proxy is off, so only a
//!    DNAT could answer);
//! 2. with dock6 on both nodes, the same task reaches the upstream seen as its own node (NAT66
//!    through that node's `docker_gwbridge`) and the published port answers on each node's
//!    address with the client's address kept: the controls of step 1;
//! 3. tasks on the two nodes reach each other over the overlay, and dock6's table names no
//!    overlay network, not `ingress`, no overlay subnet and none of the swarm's own ports
//!    (2377/tcp, 7946/tcp+udp, 4789/udp): they are left to Docker;
//! 4. node 2 leaves the swarm (its port closes, node 1's stays open) and joins again (its new
//!    tasks get egress and the published port again);
//! 5. `docker service rm` closes the published port on both nodes and removes its elements.
//!
//! A second swarm runs dock6 itself as a Swarm global service from `dist/dock6-stack.yml`: it
//! cannot write /proc/sys there (read-only in any service), says so and does not converge, and
//! once each node has the sysctls the stack file asks for, it converges and gives the tasks
//! IPv6 egress, which they have not before it runs.
//!
//! Docker 20.10 gets an `--ipv6` overlay; Docker 28 cannot allocate one (moby#52469), so there
//! the overlay is IPv4-only and the tasks' IPv6 is their `docker_gwbridge` address. The lab's
//! daemon.json keeps Docker's own ip6tables off on both versions, so without dock6 nothing NATs
//! or DNATs IPv6.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::docker_lab::{DockerLab, lab};
use common::lab::sock;
use common::swarm::{Swarm, gwbridge_subnet};
use common::web::{INTERNET, PROMPTLY, UPSTREAM, WHO_AM_I_SERVER, answers, one_at_a_time, refused};

/// The overlay the services run on.
const OVERLAY: &str = "swarmnet";
/// A global service whose tasks probe egress and the overlay (a web server, not published).
const PROBE: &str = "probe";
/// A global service published in host mode on port [`HOST_PORT`] of every node.
const WEB: &str = "web";
const HOST_PORT: u16 = 8080;
/// The same service's port on the routing mesh (Docker's `ingress`, IPv4 only).
const MESH_PORT: u16 = 8090;
/// The upstream's echo peer: answers with the address it sees.
const ECHO_PORT: u16 = 7000;
/// dock6's own service, as `docker stack deploy -c dist/dock6-stack.yml dock6` names it.
const DOCK6_SERVICE: &str = "dock6_dock6";

/// What the upstream's echo peer sees from a task of `node` (trimmed), or why it saw nothing.
fn egress_seen(swarm: &Swarm, node: usize, task: &str) -> Result<String, String> {
    let out = swarm.exec(
        node,
        task,
        &["nc", "-w", "3", INTERNET, &ECHO_PORT.to_string()],
    );
    let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.success() && !seen.is_empty() {
        true => Ok(seen),
        false => Err(format!(
            "nc exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The client address busybox httpd's CGI reports (`[fd00::4]`, `[::ffff:192.0.2.19]`), bare.
fn client_address(line: &str) -> &str {
    let bare = line.trim().trim_matches(['[', ']']);
    bare.strip_prefix("::ffff:").unwrap_or(bare)
}

/// `table inet dock6` of a node, as nft lists it.
fn dock6_table(node: &DockerLab) -> String {
    node.host_ns()
        .exec_ok(&["nft", "list", "table", "inet", "dock6"])
}

/// Whether dock6's DNAT maps of a node hold an element for `tcp . port`.
fn maps_port(node: &DockerLab, port: u16) -> bool {
    dock6_table(node).contains(&format!("tcp . {port} :"))
}

/// Polls `done` until it holds; panics with `what` after `PROMPTLY`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROMPTLY;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {PROMPTLY:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_two_node_swarm_gets_ipv6_egress_and_host_mode_ports_from_dock6() {
    let Some(_serial) =
        one_at_a_time("a_two_node_swarm_gets_ipv6_egress_and_host_mode_ports_from_dock6")
    else {
        return;
    };
    let started = Instant::now();
    let swarm = Swarm::up(
        "swarm",
        lab::Options {
            userland_proxy: false,
            ..Default::default()
        },
    );
    swarm.overlay(OVERLAY);
    let host_mode = format!("mode=host,target=80,published={HOST_PORT}");
    let mesh = format!("mode=ingress,target=80,published={MESH_PORT}");
    for (service, publish) in [(PROBE, vec![]), (WEB, vec![&host_mode, &mesh])] {
        let mut args = vec!["--name", service, "--mode", "global", "--network", OVERLAY];
        for p in publish {
            args.extend(["--publish", p.as_str()]);
        }
        args.extend([lab::IMAGE, "sh", "-c", WHO_AM_I_SERVER]);
        swarm.service(&args);
    }
    let probes = [swarm.wait_task(1, PROBE), swarm.wait_task(2, PROBE)];
    for node in 1..=2 {
        swarm.wait_task(node, WEB);
    }
    eprintln!(
        "figure: a two-node swarm with its services running after {:.0?} (Docker {})",
        started.elapsed(),
        swarm.docker_version().label()
    );
    let upstream = swarm.node(1).upstream_ns();
    let _echo = upstream.tcp_echo_peer(ECHO_PORT);

    without_dock6_nothing_answers_over_ipv6(&swarm, &probes);

    let agents: Vec<Agent> = swarm.nodes.iter().map(|n| Agent::start(n, "")).collect();
    for agent in &agents {
        agent.wait_for_log("reconciled", PROMPTLY);
    }
    with_dock6_each_node_gives_its_tasks_ipv6(&swarm, &probes, &agents);
    the_overlay_and_the_swarms_own_traffic_are_left_alone(&swarm, &probes, &agents);
    a_node_that_leaves_and_rejoins_is_followed(&swarm, &agents);
    removing_the_service_closes_its_port_on_every_node(&swarm, &agents);
    eprintln!(
        "figure: the swarm test took {:.0?} (Docker {})",
        started.elapsed(),
        swarm.docker_version().label()
    );
}

/// Step 1, the closed paths: no IPv6 egress from a task, no answer on a host-mode port. Their
/// controls are step 2's open paths, same tasks, same probes.
fn without_dock6_nothing_answers_over_ipv6(swarm: &Swarm, probes: &[String; 2]) {
    let upstream = swarm.node(1).upstream_ns();
    for node in 1..=2 {
        let task = &probes[node - 1];
        let routes = swarm.exec(node, task, &["ip", "-6", "route", "show", "default"]);
        let routes = String::from_utf8_lossy(&routes.stdout);
        let gateway = gwbridge_subnet(node).replace("::/64", "::1");
        assert!(
            routes.contains(&format!("via {gateway}")),
            "node {node}: the task's IPv6 default route goes through docker_gwbridge: {routes}"
        );
        assert!(
            egress_seen(swarm, node, task).is_err(),
            "node {node}: without dock6 a task reaches the upstream over IPv6 (the Docker in the \
             lab has its ip6tables off, so nothing should NAT66 it)"
        );
        let address = swarm.node(node).host_v6();
        assert!(
            refused(&upstream, sock(&address, HOST_PORT)),
            "node {node}: without dock6 the host-mode port answers on {address}"
        );
    }
}

/// Step 2: egress seen as each node, the host-mode port answering on each node's address with
/// the client's address kept, DNAT'ed to the task's `docker_gwbridge` address.
fn with_dock6_each_node_gives_its_tasks_ipv6(
    swarm: &Swarm,
    probes: &[String; 2],
    agents: &[Agent],
) {
    let upstream = swarm.node(1).upstream_ns();
    for node in 1..=2 {
        let address = swarm.node(node).host_v6();
        assert_eq!(
            egress_seen(swarm, node, &probes[node - 1]),
            Ok(address.clone()),
            "node {node}: its task reaches the upstream as the node (NAT66 through its docker_gwbridge)\n{}",
            agents[node - 1].log()
        );
        answers(
            &upstream,
            sock(&address, HOST_PORT),
            UPSTREAM,
            &agents[node - 1],
        );
        let table = dock6_table(swarm.node(node));
        let gwbridge = gwbridge_subnet(node).replace("::/64", ":");
        assert!(
            table
                .lines()
                .any(|l| l.contains(&format!("tcp . {HOST_PORT} : {gwbridge}"))),
            "node {node}: the host-mode port is DNAT'ed to the task's docker_gwbridge address\n{table}"
        );
    }
}

/// Step 3: the overlay carries traffic between the nodes' tasks with dock6 running (the client
/// address arrives unchanged), and dock6's table names none of what the swarm owns. The
/// control for "names none": the same table does name `docker_gwbridge` and its subnet.
fn the_overlay_and_the_swarms_own_traffic_are_left_alone(
    swarm: &Swarm,
    probes: &[String; 2],
    agents: &[Agent],
) {
    let (from, to) = (
        swarm.overlay_address(1, &probes[0], OVERLAY),
        swarm.overlay_address(2, &probes[1], OVERLAY),
    );
    let request = format!("printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {to} 80");
    let out = swarm.exec(1, &probes[0], &["sh", "-c", &request]);
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.lines().any(|l| client_address(l) == from),
        "node 1's task reaches node 2's at {to} over the overlay, seen as {from}: {body:?}"
    );
    for node in 1..=2 {
        let lab = swarm.node(node);
        let table = dock6_table(lab);
        assert!(
            table.contains("docker_gwbridge") && table.contains(&gwbridge_subnet(node)),
            "control: node {node}'s table names docker_gwbridge and its subnet\n{table}"
        );
        let mut swarm_owned = vec!["ingress".to_string(), OVERLAY.to_string()];
        for network in ["ingress", OVERLAY] {
            let id = lab.docker(&["network", "inspect", "-f", "{{.Id}}", network]);
            swarm_owned.push(id.chars().take(12).collect());
        }
        swarm_owned.extend(["2377", "7946", "4789"].map(String::from));
        for name in &swarm_owned {
            assert!(
                !table.contains(name.as_str()),
                "node {node}: dock6's table names {name:?}, which the swarm owns (the ingress \
                 and overlay networks, their subnets and the swarm's ports are Docker's)\n{table}"
            );
        }
        let log = agents[node - 1].log();
        for network in ["ingress", OVERLAY] {
            assert!(
                log.contains(&format!(
                    "skipped network \"{network}\": driver \"overlay\""
                )),
                "node {node}: dock6 says it leaves the overlay network {network} alone\n{log}"
            );
        }
        assert!(
            !table.contains(&format!("{MESH_PORT}")) && table.contains(&format!("{HOST_PORT}")),
            "node {node}: the routing mesh's port {MESH_PORT} (Docker's IPv4-only ingress) is \
             left to Docker, the host-mode port {HOST_PORT} is dock6's\n{table}"
        );
    }
}

/// Step 4: node 2 leaves (its tasks stop: dock6 removes its port, node 1's stays open) and
/// joins again (new tasks, new addresses: dock6 follows them).
fn a_node_that_leaves_and_rejoins_is_followed(swarm: &Swarm, agents: &[Agent]) {
    let upstream = swarm.node(1).upstream_ns();
    let (first, second) = (swarm.node(1).host_v6(), swarm.node(2).host_v6());
    swarm.leave(2);
    swarm.wait_no_task(2, WEB);
    wait_until(
        "node 2's dock6 removes the port of the task that left",
        || !maps_port(swarm.node(2), HOST_PORT),
    );
    assert!(
        refused(&upstream, sock(&second, HOST_PORT)),
        "node 2 left the swarm: its host-mode port no longer answers"
    );
    answers(&upstream, sock(&first, HOST_PORT), UPSTREAM, &agents[0]);

    swarm.join(2);
    let probe = swarm.wait_task(2, PROBE);
    swarm.wait_task(2, WEB);
    answers(&upstream, sock(&second, HOST_PORT), UPSTREAM, &agents[1]);
    let deadline = Instant::now() + PROMPTLY;
    let seen = loop {
        match egress_seen(swarm, 2, &probe) {
            Ok(seen) => break seen,
            Err(e) if Instant::now() >= deadline => panic!(
                "node 2's new task has no IPv6 egress: {e}\n{}",
                agents[1].log()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert_eq!(
        seen, second,
        "node 2's new task reaches the upstream as node 2"
    );
}

/// Step 5: `docker service rm` closes the port on both nodes and removes its DNAT elements.
/// The control is step 2 (and 4): the same port answered on both nodes.
fn removing_the_service_closes_its_port_on_every_node(swarm: &Swarm, agents: &[Agent]) {
    for node in 1..=2 {
        assert!(
            maps_port(swarm.node(node), HOST_PORT),
            "control: node {node} maps the port before the service is removed\n{}",
            agents[node - 1].log()
        );
    }
    swarm.node(1).docker(&["service", "rm", WEB]);
    let upstream = swarm.node(1).upstream_ns();
    for node in 1..=2 {
        let address = swarm.node(node).host_v6();
        wait_until(
            &format!("node {node}: the removed service's elements go and its port closes"),
            || {
                !maps_port(swarm.node(node), HOST_PORT)
                    && refused(&upstream, sock(&address, HOST_PORT))
            },
        );
    }
}

/// `dist/dock6-stack.yml` deployed as its header says, on a fresh swarm.
#[test]
fn the_stack_file_runs_dock6_on_every_node_once_the_sysctls_are_set() {
    let Some(_serial) =
        one_at_a_time("the_stack_file_runs_dock6_on_every_node_once_the_sysctls_are_set")
    else {
        return;
    };
    let started = Instant::now();
    let swarm = Swarm::up("swstack", lab::Options::default());
    swarm.overlay(OVERLAY);
    swarm.service(&[
        "--name",
        PROBE,
        "--mode",
        "global",
        "--network",
        OVERLAY,
        lab::IMAGE,
        "sh",
        "-c",
        WHO_AM_I_SERVER,
    ]);
    let probes = [swarm.wait_task(1, PROBE), swarm.wait_task(2, PROBE)];
    let _echo = swarm.node(1).upstream_ns().tcp_echo_peer(ECHO_PORT);
    for node in 1..=2 {
        assert!(
            egress_seen(&swarm, node, &probes[node - 1]).is_err(),
            "node {node}: a task has IPv6 egress before dock6 runs"
        );
    }

    deploy_the_stack_file(&swarm);
    let agents = [
        swarm.wait_task(1, DOCK6_SERVICE),
        swarm.wait_task(2, DOCK6_SERVICE),
    ];
    for node in 1..=2 {
        let task = &agents[node - 1];
        wait_until(
            &format!("node {node}: dock6 in its task says /proc/sys is read-only"),
            || task_log(&swarm, node, task).contains("Read-only file system"),
        );
        assert_eq!(
            last_pass(&swarm, node, task),
            "failed",
            "node {node}: without the sysctls set beforehand, dock6 as a service cannot converge"
        );
    }
    // The node's preparation the stack file asks for (sysctl.d on a real host).
    for node in 1..=2 {
        let host = swarm.node(node).host_ns();
        host.sysctl("net.ipv6.conf.eth0.accept_ra", "2");
        host.sysctl("net.ipv6.conf.all.forwarding", "1");
    }
    for node in 1..=2 {
        let task = &agents[node - 1];
        wait_until(&format!("node {node}: dock6's service converges"), || {
            last_pass(&swarm, node, task) == "converged"
        });
        assert_eq!(
            egress_seen(&swarm, node, &probes[node - 1]),
            Ok(swarm.node(node).host_v6()),
            "node {node}: dock6 run by Swarm gives the node's task IPv6 egress\n{}",
            task_log(&swarm, node, task)
        );
    }
    swarm.node(1).docker(&["stack", "rm", "dock6"]);
    eprintln!(
        "figure: the stack-file test took {:.0?} (Docker {})",
        started.elapsed(),
        swarm.docker_version().label()
    );
}

/// The image (as `cargo xtask image` makes it) on both nodes, and the stack deployed from
/// `dist/`. The lab's nodes share one file system, so each node's Docker socket and run
/// directory are reached through a link named by its swarm node id (a Swarm template).
fn deploy_the_stack_file(swarm: &Swarm) {
    let first = &swarm.node(1).lab;
    let tarball = first.dir.join("dock6-image.tar");
    let binary = Path::new(env!("CARGO_BIN_EXE_dock6"));
    dock6_pack::image::image_tarball(binary, &first.dir, &tarball)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let links = first.dir.join("nodes");
    std::fs::create_dir(&links).expect("create the node links");
    for node in &swarm.nodes {
        dock6_pack::image::import(node.lab.docker(), &tarball, "dock6:test")
            .unwrap_or_else(|e| panic!("{e:#}"));
        let id = node.docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
        std::os::unix::fs::symlink(&node.lab.dir, links.join(&id)).expect("link a node");
        std::fs::create_dir(node.lab.dir.join("dock6-run")).expect("create the run directory");
    }
    let per_node = |path: &str| format!("{}/{{{{.Node.ID}}}}/{path}", links.display());
    let stack_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/dock6-stack.yml");
    let out = first
        .docker()
        .env("DOCK6_IMAGE", "dock6:test")
        .env("DOCKER_SOCKET", per_node("docker.sock"))
        .env("DOCK6_RUN_DIR", per_node("dock6-run"))
        .args(["stack", "deploy", "--resolve-image", "never", "-c"])
        .arg(&stack_file)
        .arg("dock6")
        .output()
        .expect("docker stack deploy");
    assert!(
        out.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a task wrote to stdout and stderr.
fn task_log(swarm: &Swarm, node: usize, task: &str) -> String {
    let out = swarm
        .node(node)
        .lab
        .docker()
        .args(["logs", task])
        .output()
        .expect("docker logs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `last_pass.result` of `dock6 status --json` in dock6's task ("" when there is none yet).
fn last_pass(swarm: &Swarm, node: usize, task: &str) -> String {
    let out = swarm.exec(node, task, &["/usr/sbin/dock6", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status["last_pass"]["result"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
