//! Facts → findings, one function per finding, each pure. The ids are
//! stable (docs/operations.md lists them).

use ipnet::Ipv6Net;

use super::facts::{DaemonJson, DockerFacts, Facts};
use super::swarm;
use super::{Finding, Severity};
use crate::firewall_role::{self, FirewallRole, OwnerBecause};
use crate::plan::{self, Mode};
use crate::snapshot::{HostFacts, Network, Snapshot};

/// Docker's first version with IPv6 on the default bridge without
/// `fixed-cidr-v6`, and with `ip6tables` on by default.
const DOCKER_IPV6_BY_DEFAULT: u32 = 27;
/// The oldest Docker dock6 is tested with (API 1.41).
const OLDEST_DOCKER: u32 = 20;

pub fn findings(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(docker_unreachable_or_old(facts));
    out.extend(docker_ip6tables(facts));
    out.extend(firewall_backend(facts));
    out.extend(daemon_json(facts));
    if let Ok(docker) = &facts.docker {
        out.extend(networks_without_subnet(docker));
        out.extend(overlapping_subnets(&docker.networks));
        out.extend(sixtofour_subnets(&docker.networks));
        out.extend(swarm::findings(docker));
    }
    out.extend(forward_policy_drop(facts));
    out.extend(firewalld_and_ufw(facts));
    out.extend(uplink(facts));
    out.extend(onlink_subnets_not_proxied(facts));
    out.extend(subnets_on_provider_prefixes(facts));
    out.extend(bridge_names(facts));
    out.extend(kernel(facts));
    out
}

fn docker_unreachable_or_old(facts: &Facts) -> Vec<Finding> {
    let docker = match &facts.docker {
        Err(e) => {
            return vec![
                Finding::new(
                    "docker-unreachable",
                    Severity::Error,
                    format!("Docker does not answer: {e}"),
                    "dock6 plans from Docker's networks and containers; without a snapshot it opens \
                     nothing (the agent keeps the table it has, or installs the fail-closed one)",
                )
                .fix("systemctl start docker (or: dock6 check --docker-host URL, dock6 run --docker-host URL)"),
            ];
        }
        Ok(docker) => docker,
    };
    let seen = format!("Docker {} (API {})", docker.version, docker.api_version);
    match docker.major() {
        Some(major) if major < OLDEST_DOCKER => vec![
            Finding::new(
                "docker-too-old",
                Severity::Error,
                seen,
                "dock6 needs Docker 20.10 or newer (API 1.41): older ones report ports and IPv6 endpoints differently",
            )
            .fix("upgrade Docker (Debian: apt-get install docker.io)"),
        ],
        _ => vec![Finding::new("docker", Severity::Info, seen, "dock6 follows this Docker")],
    }
}

/// Whose IPv6 firewall it is, decided as the agent decides it: Docker's word (`/info` and
/// daemon.json) and Docker's rules in the kernel.
fn docker_ip6tables(facts: &Facts) -> Vec<Finding> {
    let fix = "\"ip6tables\": false in /etc/docker/daemon.json, then systemctl restart docker \
               (dock6 then owns IPv6 filtering: the recommended setup)";
    let why = "dock6 runs as Docker's companion: NAT66, published ports and filtering are Docker's \
               (its nat gateway mode blocks direct routing to NDP-proxied or routed addresses); \
               dock6 does sysctls and NDP proxying only";
    let kernel = match &facts.docker_firewall {
        Ok(kernel) => kernel,
        Err(e) => {
            return vec![Finding::new(
                "nftables-unreadable",
                Severity::Error,
                format!("cannot read nftables: {e}"),
                "check needs to see the kernel's tables (run it as root)",
            )];
        }
    };
    let docker = firewall_role::docker_ip6tables(
        facts.docker.as_ref().ok().map(|d| d.version.as_str()),
        facts.docker.as_ref().is_ok_and(|d| d.experimental),
        &facts.daemon_json,
    );
    match firewall_role::decide(&docker, kernel) {
        FirewallRole::Companion { signature, docker } => vec![
            Finding::new(
                "docker-ip6tables",
                Severity::Warning,
                format!("Docker's own IPv6 firewall is in the kernel ({signature}) and on ({docker})"),
                why,
            )
            .fix(fix),
        ],
        FirewallRole::Owner(OwnerBecause::DockerRulesMissing { docker }) => vec![
            Finding::new("docker-ip6tables", Severity::Warning, docker, why).fix(fix),
        ],
        FirewallRole::Owner(OwnerBecause::StaleRules { signature, docker }) => vec![
            Finding::new(
                "docker-ip6tables-left-behind",
                Severity::Warning,
                format!(
                    "rules of Docker's IPv6 firewall are in the kernel ({signature}) but Docker's \
                     ip6tables is off ({docker})"
                ),
                "left behind when ip6tables was turned off, they filter nothing Docker makes now; \
                 dock6 owns IPv6 filtering (table inet dock6) and does not take them for Docker's firewall",
            )
            .fix(firewall_role::removal_hint(&signature)),
        ],
        FirewallRole::Owner(OwnerBecause::DockerUnknown {
            docker,
            signature: Some(signature),
        }) => vec![Finding::new(
            "docker-ip6tables-unknown",
            Severity::Warning,
            format!(
                "rules of Docker's IPv6 firewall are in the kernel ({signature}), but whether \
                 Docker's ip6tables is on cannot be told ({docker})"
            ),
            "dock6 runs as Docker's companion only when Docker says its ip6tables is on; \
             until then it owns IPv6 filtering beside these rules",
        )
        .fix("make Docker answer and daemon.json readable (see the findings above)")],
        FirewallRole::Owner(_) => Vec::new(),
    }
}

fn firewall_backend(facts: &Facts) -> Vec<Finding> {
    let Some(backend) = facts
        .docker
        .as_ref()
        .ok()
        .and_then(|d| d.firewall_backend.clone())
    else {
        return Vec::new();
    };
    match backend.contains("firewalld") {
        true => vec![
            Finding::new(
                "docker-firewalld",
                Severity::Warning,
                format!("Docker's firewall backend is {backend}"),
                "Docker puts its bridges in firewalld's docker zone; firewalld's reload rebuilds its rules \
                 and its policies decide forwarding between zones, whatever dock6 accepts",
            )
            .fix("let dock6's mark through in firewalld (see the firewalld finding), or run firewalld without Docker's integration"),
        ],
        false => vec![Finding::new(
            "docker-firewall-backend",
            Severity::Info,
            format!("Docker's firewall backend is {backend}"),
            "how Docker programs its own rules (/info FirewallBackend)",
        )],
    }
}

fn daemon_json(facts: &Facts) -> Vec<Finding> {
    let (path, value) = match &facts.daemon_json {
        DaemonJson::Missing(_) => return Vec::new(),
        DaemonJson::Unreadable(path, e) => {
            return vec![Finding::new(
                "daemon-json-unreadable",
                Severity::Warning,
                format!("{}: {e}", path.display()),
                "Docker refuses to start with an invalid daemon.json; check could not look for IPv6 pitfalls in it",
            )
            .fix(format!("python3 -m json.tool {} (shows where it breaks)", path.display()))];
        }
        DaemonJson::Parsed(path, value) => (path, value),
    };
    let ipv6 = value.get("ipv6").and_then(|v| v.as_bool()) == Some(true);
    let has_cidr = value
        .get("fixed-cidr-v6")
        .and_then(|v| v.as_str())
        .is_some();
    let major = facts.docker.as_ref().ok().and_then(DockerFacts::major);
    let old = major.is_none_or(|m| m < DOCKER_IPV6_BY_DEFAULT);
    if ipv6 && !has_cidr && old {
        return vec![Finding::new(
            "ipv6-without-fixed-cidr-v6",
            Severity::Error,
            format!("{} sets \"ipv6\": true without \"fixed-cidr-v6\"", path.display()),
            "Docker before 27 needs an IPv6 subnet for the default bridge: without one it refuses to start \
             or docker0 gets no IPv6",
        )
        .fix("\"fixed-cidr-v6\": \"fd00:d0c::/64\" (a ULA: dock6 gives it NAT66) in daemon.json, then systemctl restart docker")];
    }
    Vec::new()
}

fn is_ipv6_bridge(n: &Network) -> bool {
    n.enable_ipv6 && n.driver == "bridge"
}

/// (A swarm node's `docker_gwbridge` has its own finding: it is remade differently.)
fn networks_without_subnet(docker: &DockerFacts) -> Vec<Finding> {
    docker
        .networks
        .iter()
        .filter(|n| is_ipv6_bridge(n) && n.ipv6_subnets().is_empty())
        .filter(|n| !swarm::is_swarm_gwbridge(docker, n))
        .map(|n| {
            Finding::new(
                "network-without-ipv6-subnet",
                Severity::Warning,
                format!("network {} has IPv6 enabled but no IPv6 subnet", n.name),
                "dock6 has nothing to plan for it: its containers get no IPv6 egress or published ports",
            )
            .fix(format!(
                "docker network rm {0} && docker network create --ipv6 --subnet fd00:N::/64 {0}",
                n.name
            ))
        })
        .collect()
}

fn overlaps(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn overlapping_subnets(networks: &[Network]) -> Vec<Finding> {
    let subnets: Vec<(&str, Ipv6Net)> = networks
        .iter()
        .filter(|n| is_ipv6_bridge(n))
        .flat_map(|n| {
            n.ipv6_subnets()
                .into_iter()
                .map(move |s| (n.name.as_str(), s))
        })
        .collect();
    let mut out = Vec::new();
    for (i, (a_name, a)) in subnets.iter().enumerate() {
        for (b_name, b) in &subnets[i + 1..] {
            if a_name != b_name && overlaps(a, b) {
                out.push(
                    Finding::new(
                        "overlapping-subnets",
                        Severity::Error,
                        format!("networks {a_name} ({a}) and {b_name} ({b}) overlap"),
                        "an address would belong to two bridges: dock6 plans only the first by name and \
                         keeps the other closed",
                    )
                    .fix(format!("give {b_name} a subnet of its own (docker network rm / create --subnet)")),
                );
            }
        }
    }
    out
}

fn sixtofour_subnets(networks: &[Network]) -> Vec<Finding> {
    let sixtofour: Ipv6Net = "2002::/16".parse().expect("a valid prefix");
    networks
        .iter()
        .filter(|n| is_ipv6_bridge(n))
        .flat_map(|n| n.ipv6_subnets().into_iter().map(move |s| (n, s)))
        .filter(|(_, s)| sixtofour.contains(s))
        .map(|(n, s)| {
            Finding::new(
                "sixtofour-subnet",
                Severity::Warning,
                format!("network {} uses {s}, inside 6to4's 2002::/16", n.name),
                "no router routes a 6to4 prefix back to this host (the example of old guides): \
                 dock6 treats it as routed, and nothing answers comes back",
            )
            .fix(format!(
                "a ULA subnet (fd00::/8, NAT66) or a prefix routed to this host: docker network create --ipv6 --subnet fd00:N::/64 {}",
                n.name
            ))
        })
        .collect()
}

fn forward_policy_drop(facts: &Facts) -> Vec<Finding> {
    let Ok(chains) = &facts.forward_chains else {
        return Vec::new();
    };
    let mark = facts.config.policy.accept_mark;
    chains
        .iter()
        .filter(|c| c.policy_drop)
        .map(|c| {
            let name = format!("{} {} {}", c.family, c.table, c.chain);
            if c.accepts_a_mark {
                return Finding::new(
                    "forward-policy-drop",
                    Severity::Info,
                    format!("chain {name} has policy drop and accepts a packet mark"),
                    format!("presumably dock6's line (mark {mark:#010x}): Docker's traffic gets through"),
                );
            }
            let fix = match c.is_iptables() {
                true => format!(
                    "ip6tables -I {} -m mark --mark {mark:#x}/{mark:#x} -j ACCEPT",
                    c.chain
                ),
                false => format!(
                    "nft insert rule {name} 'meta mark & {mark:#010x} == {mark:#010x} accept' \
                     (and the same line in that chain in /etc/nftables.conf)"
                ),
            };
            Finding::new(
                "forward-policy-drop",
                Severity::Warning,
                format!("chain {name} (hook forward, priority {}) has policy drop", c.priority),
                "an nftables accept is final only in its own base chain: this chain drops the Docker \
                 traffic dock6 accepts, unless it lets dock6's mark through",
            )
            .fix(fix)
        })
        .collect()
}

fn firewalld_and_ufw(facts: &Facts) -> Vec<Finding> {
    let mark = facts.config.policy.accept_mark;
    let mut out = Vec::new();
    if facts.firewalld {
        out.push(
            Finding::new(
                "firewalld",
                Severity::Warning,
                "firewalld is active (table inet firewalld)",
                "firewalld filters forwarding between its zones, and its reload rebuilds its rules: \
                 Docker's IPv6 traffic that dock6 accepts can still be rejected there",
            )
            .fix(format!(
                "firewall-cmd --permanent --direct --add-rule ipv6 filter FORWARD 0 -m mark --mark {mark:#x}/{mark:#x} -j ACCEPT \
                 && firewall-cmd --reload (or put docker0 and the br-* bridges in a zone that forwards)"
            )),
        );
    }
    if facts.ufw {
        out.push(
            Finding::new(
                "ufw",
                Severity::Warning,
                "ufw is active (chain ip6 filter ufw6-before-forward)",
                "ufw's default forward policy is drop: Docker's IPv6 traffic that dock6 accepts is \
                 dropped in ufw's chains",
            )
            .fix(format!(
                "in /etc/ufw/before6.rules, before COMMIT: -A ufw6-before-forward -m mark --mark {mark:#x}/{mark:#x} -j ACCEPT; then ufw reload"
            )),
        );
    }
    out
}

fn uplink(facts: &Facts) -> Vec<Finding> {
    let host = match &facts.host {
        Ok(host) => host,
        Err(e) => {
            return vec![Finding::new(
                "host-unreadable",
                Severity::Error,
                format!("cannot read the host's links, addresses and routes: {e}"),
                "dock6 plans from them",
            )];
        }
    };
    let configured = facts.config.policy.uplink.as_deref();
    let name = match (configured, host.default_route_interface.as_deref()) {
        (Some(name), _) if host.interface(name).is_none() => {
            return vec![
                Finding::new(
                    "uplink-not-found",
                    Severity::Error,
                    format!("the configured uplink {name} does not exist"),
                    "NAT66 goes out of the uplink and ndp-proxy needs its prefixes: without it dock6 \
                     plans no NAT66 and no proxy entries",
                )
                .fix(format!(
                    "uplink = \"NAME\" in /etc/dock6/dock6.toml with one of: {}",
                    interface_names(host)
                )),
            ];
        }
        (Some(name), _) => name,
        (None, Some(name)) => name,
        (None, None) => {
            return vec![
                Finding::new(
                    "no-default-route",
                    Severity::Error,
                    "no IPv6 default route, and no uplink configured",
                    "dock6 takes the interface of the IPv6 default route as the uplink: without one, \
                     NAT66 has nowhere to go and ndp-proxy no prefix",
                )
                .fix("give the host IPv6 (a default route, from RAs or static), or uplink = \"eth0\" in /etc/dock6/dock6.toml"),
            ];
        }
    };
    let mut out = vec![Finding::new(
        "uplink",
        Severity::Info,
        format!("uplink {name}"),
        "NAT66 goes out of it; its on-link prefixes decide ndp-proxy",
    )];
    out.extend(forwarding_with_accept_ra_1(host, name));
    out
}

fn interface_names(host: &HostFacts) -> String {
    let names: Vec<&str> = host.interfaces.iter().map(|i| i.name.as_str()).collect();
    names.join(", ")
}

fn forwarding_with_accept_ra_1(host: &HostFacts, uplink: &str) -> Option<Finding> {
    let accept_ra = host.interface(uplink)?.accept_ra?;
    if host.forwarding != Some(1) || accept_ra != 1 {
        return None;
    }
    Some(
        Finding::new(
            "forwarding-with-accept-ra-1",
            Severity::Warning,
            format!("net.ipv6.conf.all.forwarding = 1 and net.ipv6.conf.{uplink}.accept_ra = 1"),
            "with forwarding on, the kernel ignores router advertisements unless accept_ra is 2: the \
             RA-learned default route vanishes when its lifetime ends (dock6 run sets 2 itself)",
        )
        .fix(format!(
            "sysctl -w net.ipv6.conf.{uplink}.accept_ra=2 (and in /etc/sysctl.d/ to keep it)"
        )),
    )
}

/// The plan the agent would make of what Docker and the host say now, with
/// the host facts; `None` when either could not be read.
fn planned(facts: &Facts) -> Option<(plan::Plan, &HostFacts)> {
    let (Ok(docker), Ok(host)) = (&facts.docker, &facts.host) else {
        return None;
    };
    let snapshot = Snapshot {
        host: host.clone(),
        networks: docker.networks.clone(),
        containers: docker.containers.clone(),
        starting: Vec::new(),
    };
    Some((plan::plan(&facts.config.policy, &snapshot), host))
}

/// Networks whose subnet lies inside an on-link prefix of the uplink but
/// whose mode, as the planner chooses it, is not ndp-proxy.
fn onlink_subnets_not_proxied(facts: &Facts) -> Vec<Finding> {
    let Some((plan, host)) = planned(facts) else {
        return Vec::new();
    };
    let Some(uplink) = plan.uplink.as_deref().and_then(|u| host.interface(u)) else {
        return Vec::new();
    };
    plan.networks
        .iter()
        .filter(|n| !matches!(n.mode, Mode::NdpProxy | Mode::Off))
        .filter_map(|n| {
            let subnet = n
                .subnets
                .iter()
                .find(|s| uplink.onlink_prefixes.iter().any(|p| p.contains(*s)))?;
            Some(
                Finding::new(
                    "onlink-subnet-not-ndp-proxy",
                    Severity::Warning,
                    format!(
                        "network {} ({subnet}) lies inside {}'s on-link prefix but is in mode {} ({})",
                        n.name,
                        uplink.name,
                        n.mode.name(),
                        n.mode_source.name()
                    ),
                    "the router takes its addresses for neighbours on the link and asks for them with \
                     NDP: only ndp-proxy mode answers, so nothing from outside reaches them",
                )
                .fix(format!(
                    "[networks.{}] mode = \"ndp-proxy\" in /etc/dock6/dock6.toml (or drop its dock6.mode label)",
                    n.name
                )),
            )
        })
        .collect()
}

/// Networks in mode ndp-proxy or routed whose subnet lies inside a prefix
/// the provider hands out and may change (an on-link prefix learned from a
/// router advertisement or DHCPv6, or a delegated prefix): at the next
/// renumbering they break, and dock6 cannot move them.
fn subnets_on_provider_prefixes(facts: &Facts) -> Vec<Finding> {
    let Some((plan, host)) = planned(facts) else {
        return Vec::new();
    };
    let uplink = plan.uplink.as_deref().and_then(|u| host.interface(u));
    let provider: Vec<(Ipv6Net, &str)> = uplink
        .map(|u| u.dynamic_prefixes.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|p| (*p, "announced by the uplink's router"))
        .chain(
            host.delegated_prefixes
                .iter()
                .map(|p| (*p, "delegated to the host")),
        )
        .collect();
    plan.networks
        .iter()
        .filter(|n| matches!(n.mode, Mode::NdpProxy | Mode::Routed))
        .filter_map(|n| {
            let subnet = n.subnets.first()?;
            let (prefix, how) = provider.iter().find(|(p, _)| p.contains(subnet))?;
            Some(
                Finding::new(
                    "subnet-on-provider-prefix",
                    Severity::Warning,
                    format!(
                        "network {} ({subnet}, mode {}) is built on {prefix}, a prefix {how}: the provider may change it",
                        n.name,
                        n.mode.name()
                    ),
                    "Docker cannot renumber a network, and neither can dock6: when the prefix \
                     changes, dock6 closes the network and its containers lose IPv6 from outside",
                )
                .fix(format!(
                    "give it a ULA subnet and map it onto whatever prefix the host has: \
                     docker network create --ipv6 --subnet fd00:…/80 --label dock6.nptv6-prefix={} {} \
                     (docs/renumbering.md)",
                    if how.starts_with("delegated") { "delegated" } else { "uplink" },
                    n.name
                )),
            )
        })
        .collect()
}

/// Interfaces whose names could be mistaken for Docker's bridges: named as
/// Docker names them while Docker has no such network (taken for Docker's),
/// or beginning like them while they are not (left alone, said once).
fn bridge_names(facts: &Facts) -> Vec<Finding> {
    let (Ok(docker), Ok(host)) = (&facts.docker, &facts.host) else {
        return Vec::new();
    };
    let listed: Vec<String> = docker.networks.iter().map(Network::bridge_name).collect();
    let unlisted = |name: &&str| !listed.iter().any(|b| b == name);
    let names = || {
        host.interfaces
            .iter()
            .map(|i| i.name.as_str())
            .filter(unlisted)
    };
    let mut out: Vec<Finding> = names()
        .filter(|name| plan::docker_made_bridge_name(name))
        .map(|name| {
            Finding::new(
                "interface-named-like-docker",
                Severity::Warning,
                format!("interface {name} is named as Docker names its bridges, but Docker has no such network"),
                "dock6 takes it for a Docker bridge it has not seen yet: no new inbound IPv6 reaches it, \
                 and only link-local sources leave it",
            )
            .fix(format!(
                "if Docker left it behind: ip link delete {name}; if it is yours, give it another name"
            ))
        })
        .collect();
    let operators: Vec<&str> = names()
        .filter(|name| name.starts_with("br-") && !plan::docker_made_bridge_name(name))
        .collect();
    if !operators.is_empty() {
        out.push(Finding::new(
            "operator-bridges",
            Severity::Info,
            format!("not Docker's: {}", operators.join(", ")),
            "these interfaces begin like Docker's bridges (br-) but are neither Docker's networks nor \
             named as Docker names bridges: dock6 leaves their traffic alone",
        ));
    }
    out
}

fn kernel(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    match &facts.kernel_table {
        None => out.push(Finding::new(
            "kernel-unprobed",
            Severity::Warning,
            "could not try dock6's table in a throwaway network namespace",
            "making one needs root: whether this kernel has what dock6 needs (NAT, masquerade, maps) is unknown",
        ).fix("run dock6 check as root")),
        Some(Ok(())) => {}
        Some(Err(e)) => out.push(
            Finding::new(
                "kernel-nftables",
                Severity::Error,
                format!("this kernel does not take a table like dock6's: {e}"),
                "dock6 needs nf_tables with NAT (masquerade, DNAT), sets, maps and concatenations",
            )
            .fix("a kernel with CONFIG_NF_TABLES, CONFIG_NFT_NAT, CONFIG_NFT_MASQ (Debian's has them; modprobe nft_nat)"),
        ),
    }
    if !facts.proxy_ndp {
        out.push(
            Finding::new(
                "kernel-proxy-ndp",
                Severity::Error,
                "no /proc/sys/net/ipv6/conf/all/proxy_ndp",
                "ndp-proxy mode needs the kernel's IPv6 and its proxy NDP",
            )
            .fix("a kernel with IPv6 (CONFIG_IPV6), not booted with ipv6.disable=1"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::DockerFirewall;
    use crate::check::facts::DockerFacts;
    use crate::config::Config;

    fn facts(version: &str, daemon: Option<&str>) -> Facts {
        Facts {
            config: Config::default(),
            docker_host: "unix:///var/run/docker.sock".into(),
            docker: Ok(DockerFacts {
                version: version.into(),
                api_version: "1.41".into(),
                firewall_backend: None,
                experimental: false,
                networks: vec![],
                containers: vec![],
                swarm: None,
            }),
            daemon_json: match daemon {
                Some(text) => DaemonJson::Parsed(
                    "/etc/docker/daemon.json".into(),
                    serde_json::from_str(text).unwrap(),
                ),
                None => DaemonJson::Missing("/etc/docker/daemon.json".into()),
            },
            host: Ok(HostFacts::default()),
            forward_chains: Ok(vec![]),
            docker_firewall: Ok(DockerFirewall::Off),
            firewalld: false,
            ufw: false,
            kernel_table: Some(Ok(())),
            proxy_ndp: true,
        }
    }

    fn ids(f: &Facts) -> Vec<String> {
        findings(f).into_iter().map(|f| f.id).collect()
    }

    #[test]
    fn docker_versions_decide_the_ipv6_pitfalls() {
        let old = facts("19.03.15", Some(r#"{"ipv6": true}"#));
        assert!(ids(&old).contains(&"docker-too-old".to_string()));
        assert!(ids(&old).contains(&"ipv6-without-fixed-cidr-v6".to_string()));
        let new = facts("28.5.2", Some(r#"{"ipv6": true}"#));
        assert!(!ids(&new).contains(&"ipv6-without-fixed-cidr-v6".to_string()));
        assert!(
            ids(&new).contains(&"docker-ip6tables".to_string()),
            "on by default since 27"
        );
        let off = facts("28.5.2", Some(r#"{"ipv6": true, "ip6tables": false}"#));
        assert!(!ids(&off).contains(&"docker-ip6tables".to_string()));
        let twenty = facts("20.10.24+dfsg1", None);
        assert!(
            !ids(&twenty).contains(&"docker-ip6tables".to_string()),
            "off by default before 27"
        );
    }

    #[test]
    fn docker_rules_left_behind_are_named_and_not_taken_for_dockers_firewall() {
        let rules = || {
            Ok(DockerFirewall::On(
                "ip6 nat PREROUTING jumps to chain DOCKER".into(),
            ))
        };
        for (version, daemon) in [
            ("20.10.24+dfsg1", Some(r#"{"ipv6": true}"#)),
            ("28.5.2", Some(r#"{"ip6tables": false}"#)),
        ] {
            let mut f = facts(version, daemon);
            f.docker_firewall = rules();
            let found = findings(&f);
            let left = found
                .iter()
                .find(|x| x.id == "docker-ip6tables-left-behind")
                .unwrap_or_else(|| panic!("{version}: {found:?}"));
            assert!(
                left.fix
                    .as_deref()
                    .unwrap_or("")
                    .contains("ip6tables -t nat -F"),
                "{left:?}"
            );
            assert!(
                !ids(&f).contains(&"docker-ip6tables".to_string()),
                "{version}"
            );
        }
        // Docker 28 with its default, and its rules in: Docker's firewall.
        let mut f = facts("28.5.2", Some(r#"{"ipv6": true}"#));
        f.docker_firewall = rules();
        assert!(ids(&f).contains(&"docker-ip6tables".to_string()));
        assert!(!ids(&f).contains(&"docker-ip6tables-left-behind".to_string()));
        // Docker not answering, daemon.json silent: not known, and said so.
        let mut f = facts("28.5.2", None);
        f.docker = Err("connection refused".into());
        f.docker_firewall = rules();
        assert!(ids(&f).contains(&"docker-ip6tables-unknown".to_string()));
        assert!(!ids(&f).contains(&"docker-ip6tables".to_string()));
        // 20.10 with experimental and "ip6tables": true, its rules in: Docker's firewall too.
        let mut f = facts(
            "20.10.24",
            Some(r#"{"ip6tables": true, "experimental": true}"#),
        );
        f.docker.as_mut().unwrap().experimental = true;
        f.docker_firewall = rules();
        assert!(ids(&f).contains(&"docker-ip6tables".to_string()));
    }

    #[test]
    fn a_subnet_on_a_provider_prefix_is_a_warning_a_static_one_is_not() {
        let mut f = facts("28.5.2", None);
        let network = |id: &str, name: &str, subnet: &str| Network {
            id: id.repeat(64),
            name: name.into(),
            driver: "bridge".into(),
            enable_ipv6: true,
            subnets: vec![crate::snapshot::Subnet {
                subnet: subnet.parse().unwrap(),
                gateway: None,
            }],
            ..Default::default()
        };
        let docker = f.docker.as_mut().unwrap();
        docker.networks = vec![
            network("a", "slaac", "2001:db8:a:0:d6::/80"),
            network("b", "static", "2001:db8:1:0:d6::/80"),
            network("c", "pd", "2001:db8:100:5::/64"),
            network("d", "ula", "fd00:1::/64"),
        ];
        let net = |s: &str| s.parse::<Ipv6Net>().unwrap();
        f.host = Ok(HostFacts {
            default_route_interface: Some("eth0".into()),
            interfaces: vec![crate::snapshot::Interface {
                name: "eth0".into(),
                addresses: vec![net("2001:db8:1::10/64"), net("2001:db8:a::10/64")],
                onlink_prefixes: vec![net("2001:db8:1::/64"), net("2001:db8:a::/64")],
                dynamic_prefixes: vec![net("2001:db8:a::/64")],
                ..Default::default()
            }],
            delegated_prefixes: vec![net("2001:db8:100::/56")],
            ..Default::default()
        });
        let found: Vec<Finding> = findings(&f)
            .into_iter()
            .filter(|x| x.id == "subnet-on-provider-prefix")
            .collect();
        let names: Vec<String> = found.iter().map(|x| x.seen.clone()).collect();
        assert_eq!(found.len(), 2, "{names:?}");
        assert!(
            names[1].starts_with(
                "network slaac (2001:db8:a:0:d6::/80, mode ndp-proxy) is built on 2001:db8:a::/64"
            ),
            "{names:?}"
        );
        assert!(
            names[0].starts_with("network pd (2001:db8:100:5::/64, mode routed)"),
            "{names:?}"
        );
        assert!(
            found[0]
                .fix
                .as_deref()
                .unwrap()
                .contains("dock6.nptv6-prefix=delegated pd")
        );
    }

    #[test]
    fn a_firewalld_backend_is_a_warning_others_an_info() {
        let mut f = facts("28.5.2", Some(r#"{"ip6tables": false}"#));
        f.docker.as_mut().unwrap().firewall_backend = Some("iptables+firewalld".into());
        assert!(ids(&f).contains(&"docker-firewalld".to_string()));
        f.docker.as_mut().unwrap().firewall_backend = Some("nftables".into());
        assert!(ids(&f).contains(&"docker-firewall-backend".to_string()));
    }

    #[test]
    fn a_kernel_without_nat_or_proxy_ndp_is_an_error() {
        let mut f = facts("20.10.24", None);
        f.kernel_table = Some(Err("chain postrouting: Operation not supported".into()));
        f.proxy_ndp = false;
        let found = findings(&f);
        for id in ["kernel-nftables", "kernel-proxy-ndp"] {
            let finding = found.iter().find(|x| x.id == id).expect(id);
            assert_eq!(finding.severity, Severity::Error);
        }
    }
}
