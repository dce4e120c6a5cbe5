//! `dock6 check` on a node of a Docker swarm: what the node is (from
//! `/info`'s `Swarm`), the services it publishes through the routing mesh,
//! and the two findings about them.
//!
//! A swarm task reaches outside its host through the node's
//! `docker_gwbridge`, an ordinary bridge network to dock6: with IPv6 and a
//! ULA subnet on it, dock6 gives the tasks NAT66 like any other network. Docker
//! makes that bridge IPv4-only at the node's first task, and it can be
//! remade only while the node is out of the swarm. The routing mesh
//! (Docker's `ingress` overlay) is IPv4-only; ports published in host mode are
//! ordinary published ports of the task's container, which dock6 DNATs.

use bollard::Docker;
use bollard::models::{
    EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, LocalNodeState, Service,
    SwarmInfo,
};
use ipnet::Ipv6Net;

use super::facts::DockerFacts;
use super::{Finding, Severity};
use crate::snapshot::{Container, Network};

/// The network Docker gives every swarm node for its tasks' outside traffic.
pub const GWBRIDGE: &str = "docker_gwbridge";
/// The label Docker puts on a task's container: the service's name.
const SERVICE_LABEL: &str = "com.docker.swarm.service.name";
/// Docker's driver options for the `docker_gwbridge` it makes itself.
const GWBRIDGE_OPTIONS: &str = "-o com.docker.network.bridge.name=docker_gwbridge \
     -o com.docker.network.bridge.enable_icc=false \
     -o com.docker.network.bridge.enable_ip_masquerade=true";

/// This node in its swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmFacts {
    pub node_id: String,
    pub role: Role,
    /// Services publishing ports through the routing mesh (ingress mode):
    /// on a manager every one of the swarm, with their ports; on a worker
    /// those with a task here (only managers can list services).
    pub ingress: Result<Vec<IngressService>, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Worker,
    /// `managers` and `nodes`: the swarm's counts (0 where `/info` lacks them).
    Manager {
        managers: u64,
        nodes: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressService {
    pub name: String,
    /// Empty where they are not known (on a worker).
    pub ports: Vec<IngressPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPort {
    pub published: u16,
    pub target: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// The node's swarm facts; `None` when it is in no swarm (`LocalNodeState`
/// other than `active`).
pub(super) async fn gather(
    client: &Docker,
    info: Option<&SwarmInfo>,
    containers: &[Container],
) -> Option<SwarmFacts> {
    let (node_id, role) = node(info?)?;
    let ingress = match role {
        Role::Manager { .. } => client
            .list_services(None::<bollard::query_parameters::ListServicesOptions>)
            .await
            .map(|services| ingress_services(&services)),
        Role::Worker => client
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map(|networks| ingress_tasks(&ingress_network_names(&networks), containers)),
    };
    Some(SwarmFacts {
        node_id,
        role,
        ingress: ingress.map_err(|e| e.to_string()),
    })
}

/// The node's id and role, when it is an active member of a swarm.
pub fn node(info: &SwarmInfo) -> Option<(String, Role)> {
    if info.local_node_state != Some(LocalNodeState::ACTIVE) {
        return None;
    }
    let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    let role = match info.control_available {
        Some(true) => Role::Manager {
            managers: count(info.managers),
            nodes: count(info.nodes),
        },
        _ => Role::Worker,
    };
    Some((info.node_id.clone().unwrap_or_default(), role))
}

/// The services with ports in ingress mode (the routing mesh), and those ports.
pub fn ingress_services(services: &[Service]) -> Vec<IngressService> {
    let mut out: Vec<IngressService> = services
        .iter()
        .filter_map(|s| {
            let name = s.spec.as_ref()?.name.clone()?;
            let ports: Vec<IngressPort> = s
                .endpoint
                .as_ref()?
                .ports
                .as_ref()?
                .iter()
                .filter(|p| p.publish_mode != Some(EndpointPortConfigPublishModeEnum::HOST))
                .filter_map(|p| {
                    Some(IngressPort {
                        published: u16::try_from(p.published_port?).ok()?,
                        target: u16::try_from(p.target_port?).ok()?,
                        protocol: protocol_name(p.protocol),
                    })
                })
                .collect();
            (!ports.is_empty()).then_some(IngressService { name, ports })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn protocol_name(protocol: Option<EndpointPortConfigProtocolEnum>) -> String {
    match protocol {
        Some(EndpointPortConfigProtocolEnum::UDP) => "udp",
        Some(EndpointPortConfigProtocolEnum::SCTP) => "sctp",
        // Docker's default.
        _ => "tcp",
    }
    .to_string()
}

/// The names of the swarm's ingress networks (`Ingress: true`; `ingress` unless remade).
pub fn ingress_network_names(networks: &[bollard::models::Network]) -> Vec<String> {
    networks
        .iter()
        .filter(|n| n.ingress == Some(true))
        .filter_map(|n| n.name.clone())
        .collect()
}

/// The services with a task here on an ingress network: Docker attaches a
/// task to it only when its service publishes a port through the mesh.
pub fn ingress_tasks(ingress: &[String], containers: &[Container]) -> Vec<IngressService> {
    let mut names: Vec<String> = containers
        .iter()
        .filter(|c| ingress.iter().any(|n| c.networks.contains_key(n)))
        .filter_map(|c| c.labels.get(SERVICE_LABEL).cloned())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| IngressService {
            name,
            ports: Vec::new(),
        })
        .collect()
}

/// The swarm findings of this node; none outside a swarm.
pub fn findings(docker: &DockerFacts) -> Vec<Finding> {
    let Some(swarm) = &docker.swarm else {
        return Vec::new();
    };
    let mut out = Vec::new();
    out.extend(gwbridge_without_ipv6(swarm, &docker.networks));
    out.extend(ingress_ports(swarm));
    out
}

/// Whether `network` is the swarm's gateway bridge on a swarm node, whose
/// findings are this module's.
pub fn is_swarm_gwbridge(docker: &DockerFacts, network: &Network) -> bool {
    docker.swarm.is_some() && network.name == GWBRIDGE
}

fn gwbridge_without_ipv6(swarm: &SwarmFacts, networks: &[Network]) -> Option<Finding> {
    let gwbridge = networks.iter().find(|n| n.name == GWBRIDGE);
    if gwbridge.is_some_and(|n| !n.ipv6_subnets().is_empty()) {
        return None;
    }
    let create = format!(
        "docker network create --ipv6 --subnet {} {GWBRIDGE_OPTIONS} {GWBRIDGE}",
        free_ula(networks)
    );
    let why = "swarm tasks reach outside this host through docker_gwbridge: without IPv6 on it \
               they have no IPv6 egress, and dock6 has no subnet of theirs to NAT66 (with a ULA \
               subnet it is an ordinary nat66 network to dock6)";
    let role = role_name(swarm.role);
    let Some(_) = gwbridge else {
        return Some(
            Finding::new(
                "swarm-gwbridge-without-ipv6",
                Severity::Warning,
                format!("this swarm {role} has no docker_gwbridge yet: Docker makes it without IPv6 at its first task"),
                format!("{why}; made now, before any task, it interrupts nothing"),
            )
            .fix(create),
        );
    };
    Some(
        Finding::new(
            "swarm-gwbridge-without-ipv6",
            Severity::Warning,
            format!("this swarm {role}'s docker_gwbridge has no IPv6"),
            format!(
                "{why}; Docker removes it only while the node is out of the swarm: remaking it \
                 stops this node's tasks until the node is back (the swarm starts replicated \
                 tasks on other nodes, global ones come back when it joins again) and the ports \
                 the swarm publishes do not answer on this node meanwhile; other containers keep running"
            ),
        )
        .fix(remake_steps(swarm, &create).join("\n")),
    )
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Worker => "worker",
        Role::Manager { .. } => "manager",
    }
}

/// The commands that remake `docker_gwbridge` with IPv6 on this node, one a
/// line, for its role: leave the swarm, remove and create the bridge, join again.
fn remake_steps(swarm: &SwarmFacts, create: &str) -> Vec<String> {
    let remake = [format!("docker network rm {GWBRIDGE}"), create.to_string()];
    let id = &swarm.node_id;
    let rejoin = "docker swarm join --token TOKEN MANAGER:2377   # the command noted above";
    match swarm.role {
        Role::Worker => [
            "docker swarm join-token worker   # on a manager: note the join command it prints".to_string(),
            "docker swarm leave".to_string(),
        ]
        .into_iter()
        .chain(remake)
        .chain([rejoin.to_string()])
        .collect(),
        // The swarm's only node; counts /info lacks (0) take the careful way below.
        Role::Manager { nodes: 1, .. } => [
            "docker swarm leave --force   # the only node: this ends the swarm, its services, secrets and configs".to_string(),
        ]
        .into_iter()
        .chain(remake)
        .chain([
            "docker swarm init   # then create the services again".to_string(),
        ])
        .collect(),
        Role::Manager { managers, .. } => {
            let first = match managers {
                0 | 1 => vec![
                    "docker node promote NODE   # another node first: leaving as the only manager would end the swarm"
                        .to_string(),
                ],
                _ => Vec::new(),
            };
            first
                .into_iter()
                .chain([
                    "docker swarm join-token worker   # note the join command it prints".to_string(),
                    format!("docker node demote {id}"),
                    "docker swarm leave".to_string(),
                ])
                .chain(remake)
                .chain([
                    rejoin.to_string(),
                    format!(
                        "docker node rm {id} && docker node promote NEW-ID   # on a manager: the old entry out, this node a manager again"
                    ),
                ])
                .collect()
        }
    }
}

/// A ULA /64 for `docker_gwbridge` that overlaps none of this node's
/// networks (every node may use the same one: each NATs its own).
fn free_ula(networks: &[Network]) -> Ipv6Net {
    let taken: Vec<Ipv6Net> = networks.iter().flat_map(|n| n.ipv6_subnets()).collect();
    (0u16..=0xffff)
        .map(|n| {
            let address = std::net::Ipv6Addr::new(0xfd00, 0x6b, n, 0, 0, 0, 0, 0);
            Ipv6Net::new(address, 64).expect("64 is a valid prefix length")
        })
        .find(|candidate| {
            !taken
                .iter()
                .any(|t| t.contains(&candidate.network()) || candidate.contains(&t.network()))
        })
        .unwrap_or_else(|| "fd00:6b::/64".parse().expect("a valid prefix"))
}

fn ingress_ports(swarm: &SwarmFacts) -> Option<Finding> {
    let why = "Docker's routing mesh (the ingress overlay network) is IPv4-only: these ports do \
               not answer over IPv6, and dock6 leaves the ingress and overlay networks alone; a \
               port published in host mode is an ordinary published port of the task's container, \
               which dock6 publishes on IPv6 (on the nodes that run a task; one task per node and port)";
    let services = match &swarm.ingress {
        Err(e) => {
            return Some(Finding::new(
                "swarm-ingress-ports",
                Severity::Info,
                format!("could not list the services published through the routing mesh: {e}"),
                why,
            ));
        }
        Ok(services) if services.is_empty() => return None,
        Ok(services) => services,
    };
    let seen = services
        .iter()
        .map(|s| match s.ports.is_empty() {
            true => s.name.clone(),
            false => format!(
                "{} ({})",
                s.name,
                s.ports
                    .iter()
                    .map(|p| format!("{}:{}/{}", p.published, p.target, p.protocol))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let fix = services
        .iter()
        .map(|s| match s.ports.is_empty() {
            true => format!(
                "docker service inspect --format '{{{{json .Endpoint.Ports}}}}' {}   # on a manager: its ports; then publish them in host mode",
                s.name
            ),
            false => host_mode_update(s),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let seen = match swarm.role {
        Role::Worker => {
            format!("services with a task here published through the routing mesh: {seen}")
        }
        Role::Manager { .. } => format!("services published through the routing mesh: {seen}"),
    };
    Some(Finding::new("swarm-ingress-ports", Severity::Info, seen, why).fix(fix))
}

/// `docker service update` moving each of a service's mesh ports to host mode.
fn host_mode_update(service: &IngressService) -> String {
    let mut command = String::from("docker service update");
    for p in &service.ports {
        let spec = format!(
            "published={},target={}{}",
            p.published,
            p.target,
            match p.protocol.as_str() {
                "tcp" => String::new(),
                other => format!(",protocol={other}"),
            }
        );
        command.push_str(&format!(
            " --publish-rm {spec} --publish-add mode=host,{spec}"
        ));
    }
    command.push(' ');
    command.push_str(&service.name);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES_26: &str = include_str!("../../tests/data/swarm/services-26.json");
    const INFO_MANAGER_26: &str = include_str!("../../tests/data/swarm/info-manager-26.json");
    const NETWORKS_26: &str = include_str!("../../tests/data/swarm/networks-26.json");

    fn info(json: &str) -> SwarmInfo {
        let info: bollard::models::SystemInfo = serde_json::from_str(json).unwrap();
        info.swarm.unwrap()
    }

    #[test]
    fn a_manager_and_a_worker_are_told_apart_and_a_node_outside_a_swarm_has_no_facts() {
        let manager = info(INFO_MANAGER_26);
        let (id, role) = node(&manager).unwrap();
        assert_eq!(id, "rvbh41z6a30n6p6zkugxnexwh");
        assert_eq!(
            role,
            Role::Manager {
                managers: 1,
                nodes: 1
            }
        );
        // A worker's /info: ControlAvailable false, no counts.
        let worker = info(
            r#"{"Swarm": {"NodeID": "w1", "NodeAddr": "198.51.100.11", "LocalNodeState": "active",
                "ControlAvailable": false, "Error": "", "RemoteManagers": null}}"#,
        );
        assert_eq!(node(&worker), Some(("w1".into(), Role::Worker)));
        let outside = info(
            r#"{"Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                "ControlAvailable": false, "Error": "", "RemoteManagers": null}}"#,
        );
        assert_eq!(node(&outside), None);
    }

    #[test]
    fn only_ports_in_ingress_mode_count_for_the_routing_mesh() {
        let services: Vec<Service> = serde_json::from_str(SERVICES_26).unwrap();
        let found = ingress_services(&services);
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        // web publishes in host mode only, plain nothing; udp has one port of each mode.
        assert_eq!(names, ["mesh", "udp"], "{found:#?}");
        let mesh = &found[0];
        assert!(mesh.ports.contains(&IngressPort {
            published: 5300,
            target: 53,
            protocol: "udp".into()
        }));
        assert_eq!(mesh.ports.len(), 3);
        assert_eq!(
            found[1].ports,
            [IngressPort {
                published: 9090,
                target: 90,
                protocol: "tcp".into()
            }]
        );
        assert_eq!(
            host_mode_update(&found[1]),
            "docker service update --publish-rm published=9090,target=90 \
             --publish-add mode=host,published=9090,target=90 udp"
        );
    }

    #[test]
    fn a_worker_finds_its_mesh_services_by_their_tasks_on_the_ingress_network() {
        let networks: Vec<bollard::models::Network> = serde_json::from_str(NETWORKS_26).unwrap();
        let ingress = ingress_network_names(&networks);
        assert_eq!(ingress, ["ingress"]);
        let task = |name: &str, service: &str, network: &str| Container {
            id: name.into(),
            name: name.into(),
            labels: [(SERVICE_LABEL.to_string(), service.to_string())].into(),
            networks: [(network.to_string(), Default::default())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let containers = [
            task("mesh.1", "mesh", "ingress"),
            task("mesh.2", "mesh", "ingress"),
            task("web.1", "web", "bridge"),
        ];
        let found = ingress_tasks(&ingress, &containers);
        assert_eq!(
            found,
            [IngressService {
                name: "mesh".into(),
                ports: vec![]
            }]
        );
    }

    fn network(name: &str, subnets: &[&str], ipv6: bool) -> Network {
        Network {
            id: format!("{name}-id"),
            name: name.into(),
            driver: "bridge".into(),
            enable_ipv6: ipv6,
            subnets: subnets
                .iter()
                .map(|s| crate::snapshot::Subnet {
                    subnet: s.parse().unwrap(),
                    gateway: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn swarm(role: Role) -> SwarmFacts {
        SwarmFacts {
            node_id: "n1".into(),
            role,
            ingress: Ok(vec![]),
        }
    }

    #[test]
    fn a_gwbridge_without_ipv6_is_a_warning_whose_steps_fit_the_nodes_role() {
        let v4 = network(GWBRIDGE, &["203.0.113.64/28"], false);
        let taken = network("bridge", &["fd00:6b::/64"], true);
        let networks = [v4.clone(), taken];
        let worker = gwbridge_without_ipv6(&swarm(Role::Worker), &networks).unwrap();
        assert_eq!(worker.severity, Severity::Warning);
        assert!(worker.why.contains("stops this node's tasks"), "{worker:?}");
        let steps: Vec<&str> = worker.fix.as_deref().unwrap().lines().collect();
        assert!(steps[1].starts_with("docker swarm leave"), "{steps:#?}");
        assert_eq!(steps[2], "docker network rm docker_gwbridge");
        assert_eq!(
            steps[3],
            "docker network create --ipv6 --subnet fd00:6b:1::/64 \
             -o com.docker.network.bridge.name=docker_gwbridge \
             -o com.docker.network.bridge.enable_icc=false \
             -o com.docker.network.bridge.enable_ip_masquerade=true docker_gwbridge",
            "a ULA the node's other networks do not use"
        );
        assert!(steps[4].starts_with("docker swarm join --token"));

        let single = Role::Manager {
            managers: 1,
            nodes: 1,
        };
        let fix = gwbridge_without_ipv6(&swarm(single), std::slice::from_ref(&v4))
            .unwrap()
            .fix
            .unwrap();
        assert!(fix.starts_with("docker swarm leave --force"), "{fix}");
        assert!(fix.contains("\ndocker swarm init"), "{fix}");

        let one_of_three = Role::Manager {
            managers: 3,
            nodes: 5,
        };
        let fix = gwbridge_without_ipv6(&swarm(one_of_three), std::slice::from_ref(&v4))
            .unwrap()
            .fix
            .unwrap();
        assert!(
            fix.contains("\ndocker node demote n1\ndocker swarm leave\n"),
            "{fix}"
        );
        assert!(!fix.contains("promote NODE"), "{fix}");
        let sole_of_many = Role::Manager {
            managers: 1,
            nodes: 3,
        };
        let fix = gwbridge_without_ipv6(&swarm(sole_of_many), std::slice::from_ref(&v4))
            .unwrap()
            .fix
            .unwrap();
        assert!(fix.starts_with("docker node promote NODE"), "{fix}");
        let counts_unknown = Role::Manager {
            managers: 0,
            nodes: 0,
        };
        let fix = gwbridge_without_ipv6(&swarm(counts_unknown), std::slice::from_ref(&v4))
            .unwrap()
            .fix
            .unwrap();
        assert!(
            fix.starts_with("docker node promote NODE") && !fix.contains("--force"),
            "without counts, never the step that ends the swarm: {fix}"
        );

        // Made with IPv6: nothing to say. Not made yet: made now, nothing interrupted.
        let v6 = network(GWBRIDGE, &["203.0.113.64/28", "fd00:6b::/64"], true);
        assert_eq!(gwbridge_without_ipv6(&swarm(Role::Worker), &[v6]), None);
        let none = gwbridge_without_ipv6(&swarm(Role::Worker), &[]).unwrap();
        assert!(none.why.contains("interrupts nothing"), "{none:?}");
        assert!(
            none.fix
                .unwrap()
                .starts_with("docker network create --ipv6 --subnet fd00:6b::/64"),
        );
    }

    #[test]
    fn mesh_ports_are_an_info_with_the_host_mode_commands() {
        let mut facts = swarm(Role::Manager {
            managers: 1,
            nodes: 1,
        });
        assert_eq!(ingress_ports(&facts), None, "no mesh ports, nothing to say");
        facts.ingress = Ok(vec![IngressService {
            name: "web".into(),
            ports: vec![IngressPort {
                published: 5353,
                target: 53,
                protocol: "udp".into(),
            }],
        }]);
        let f = ingress_ports(&facts).unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(f.seen.contains("web (5353:53/udp)"), "{f:?}");
        assert!(f.why.contains("IPv4-only"), "{f:?}");
        assert_eq!(
            f.fix.as_deref(),
            Some(
                "docker service update --publish-rm published=5353,target=53,protocol=udp \
                 --publish-add mode=host,published=5353,target=53,protocol=udp web"
            )
        );
        facts.role = Role::Worker;
        facts.ingress = Ok(vec![IngressService {
            name: "web".into(),
            ports: vec![],
        }]);
        let f = ingress_ports(&facts).unwrap();
        assert!(f.seen.contains("with a task here"), "{f:?}");
        assert!(f.fix.unwrap().contains("docker service inspect"));
    }
}
