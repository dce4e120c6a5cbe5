//! A two-node Docker swarm in the lab: node 1 (the lab, the swarm's manager) and node 2 (its
//! peer, a worker) on one link behind the upstream, each with its own dockerd, and each with a
//! `docker_gwbridge` made with IPv6 and a ULA subnet of its own *before* the swarm starts (Docker
//! makes it IPv4-only otherwise, and tasks on overlay networks reach anything outside the swarm
//! through it). The control plane speaks IPv4 on the link (198.51.100.0/24); overlay subnets
//! come from 192.0.2.0/24. Services run the lab's own image and never look at a registry.

use std::process::Output;
use std::time::{Duration, Instant};

use super::docker_lab::{DockerLab, lab};

/// The IPv6 subnet of node N's `docker_gwbridge` (N = 1, 2).
pub fn gwbridge_subnet(node: usize) -> String {
    format!("fd00:9a7e:{node}::/64")
}

/// How long a task may take to run (on a node that has just (re)joined, Docker 20.10 rejects
/// the first tasks on an IPv6 overlay until the network's details reach it, and tries again).
pub const TASK_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Swarm {
    /// Node 1 first: it owns the upstream namespace.
    pub nodes: Vec<DockerLab>,
}

impl Swarm {
    /// Two labs on one link, their `docker_gwbridge`s, and a swarm of the two.
    pub fn up(tag: &str, options: lab::Options) -> Swarm {
        let first = DockerLab::up(tag, options.clone());
        let second = first.peer(2, options);
        let swarm = Swarm {
            nodes: vec![first, second],
        };
        for node in 1..=2 {
            swarm.make_gwbridge(node);
        }
        swarm.node(1).docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            &swarm.node(1).lab.host_v4(),
            "--default-addr-pool",
            "192.0.2.0/24",
            "--default-addr-pool-mask-length",
            "28",
        ]);
        swarm.join(2);
        swarm
    }

    /// Node `n` (1 or 2).
    pub fn node(&self, n: usize) -> &DockerLab {
        &self.nodes[n - 1]
    }

    pub fn docker_version(&self) -> lab::Docker {
        self.node(1).options.docker
    }

    /// `docker_gwbridge` as Docker documents customising it, with an IPv6 subnet.
    fn make_gwbridge(&self, n: usize) {
        self.node(n).docker(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            &gwbridge_subnet(n),
            "-o",
            "com.docker.network.bridge.name=docker_gwbridge",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "-o",
            "com.docker.network.bridge.enable_ip_masquerade=true",
            "docker_gwbridge",
        ]);
    }

    /// Node `n` joins the swarm as a worker.
    pub fn join(&self, n: usize) {
        let token = self
            .node(1)
            .docker(&["swarm", "join-token", "-q", "worker"]);
        let manager = format!("{}:2377", self.node(1).lab.host_v4());
        self.node(n).docker(&[
            "swarm",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            &self.node(n).lab.host_v4(),
            &manager,
        ]);
    }

    /// Node `n` leaves the swarm (its tasks stop).
    pub fn leave(&self, n: usize) {
        self.node(n).docker(&["swarm", "leave"]);
    }

    /// An attachable overlay network `name`, IPv4 only: the tasks' IPv6 goes through each
    /// node's `docker_gwbridge`, which is what dock6 manages. (Docker 28 cannot allocate an IPv6
    /// overlay subnet, moby#52469; on 26.1 a task did not reach another node's over one in this
    /// lab; on 20.10 its IPAM rejected tasks now and then with "Invalid address … does not
    /// belong to any of this network's subnets".)
    pub fn overlay(&self, name: &str) {
        let args = [
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            name,
        ];
        self.node(1).docker(&args);
    }

    /// `docker service create --detach --no-resolve-image ARGS` on the manager.
    pub fn service(&self, args: &[&str]) {
        let mut all = vec!["service", "create", "--detach", "--no-resolve-image"];
        all.extend_from_slice(args);
        self.node(1).docker(&all);
    }

    /// The running task container of `service` on node `n`, if there is one.
    pub fn task(&self, n: usize, service: &str) -> Option<String> {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        let ids = self.node(n).docker(&["ps", "-q", "--filter", &filter]);
        ids.split_whitespace().next().map(str::to_string)
    }

    /// Waits for a running task of `service` on node `n`; panics with the service's task list.
    pub fn wait_task(&self, n: usize, service: &str) -> String {
        let deadline = Instant::now() + TASK_TIMEOUT;
        loop {
            if let Some(id) = self.task(n, service) {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no task of {service} runs on node {n} within {TASK_TIMEOUT:?}:\n{}",
                self.node(1)
                    .docker(&["service", "ps", "--no-trunc", service])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until node `n` runs no task of `service`.
    pub fn wait_no_task(&self, n: usize, service: &str) {
        let deadline = Instant::now() + TASK_TIMEOUT;
        while self.task(n, service).is_some() {
            assert!(
                Instant::now() < deadline,
                "a task of {service} still runs on node {n} after {TASK_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `docker exec CONTAINER ARGS` on node `n`, whatever its outcome.
    pub fn exec(&self, n: usize, container: &str, args: &[&str]) -> Output {
        self.node(n)
            .lab
            .docker()
            .arg("exec")
            .arg(container)
            .args(args)
            .output()
            .expect("run docker exec")
    }

    /// A task's address on `network` (an overlay): its IPv6 one where it has one, else IPv4.
    pub fn overlay_address(&self, n: usize, container: &str, network: &str) -> String {
        let field = |name: &str| {
            self.node(n).docker(&[
                "inspect",
                "-f",
                &format!("{{{{(index .NetworkSettings.Networks \"{network}\").{name}}}}}"),
                container,
            ])
        };
        let v6 = field("GlobalIPv6Address");
        if v6.is_empty() {
            field("IPAddress")
        } else {
            v6
        }
    }
}
