//! What `dock6 check` looks at, read once: Docker (version, /info's
//! firewall backend, networks and containers), daemon.json, the host's
//! facts, the forward-hook chains of other tables, Docker's IPv6 firewall
//! signature, firewalld's and ufw's traces in nftables, the node's swarm, and whether the
//! kernel takes dock6's table. Every read that fails is kept as its error:
//! a finding says so, the others still run.

use std::path::{Path, PathBuf};

use super::swarm::{self, SwarmFacts};
use crate::apply::DockerFirewall;
use crate::apply::nftables::ForwardChain;
use crate::config::Config;
use crate::snapshot::{Container, HostFacts, Network};

pub use crate::source::daemon_json::{DEFAULT_DAEMON_JSON, DaemonJson, read_daemon_json};

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub docker_host: Option<String>,
    pub daemon_json: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DockerFacts {
    pub version: String,
    pub api_version: String,
    /// `/info` `FirewallBackend.Driver` (API ≥ 1.49: `iptables`, `nftables`, `…+firewalld`).
    pub firewall_backend: Option<String>,
    /// `/info` `ExperimentalBuild` (before Docker 27, ip6tables needs it).
    pub experimental: bool,
    pub networks: Vec<Network>,
    pub containers: Vec<Container>,
    /// This node in its swarm; `None` outside one.
    pub swarm: Option<SwarmFacts>,
}

impl DockerFacts {
    /// The major version (`28` of `28.5.2`, `20` of `20.10.24+dfsg1`).
    pub fn major(&self) -> Option<u32> {
        self.version.split('.').next()?.parse().ok()
    }
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub config: Config,
    /// The Docker endpoint as the user would write it.
    pub docker_host: String,
    pub docker: Result<DockerFacts, String>,
    pub daemon_json: DaemonJson,
    pub host: Result<HostFacts, String>,
    pub forward_chains: Result<Vec<ForwardChain>, String>,
    pub docker_firewall: Result<DockerFirewall, String>,
    /// `table inet firewalld` (firewalld's nftables backend).
    pub firewalld: bool,
    /// `chain ip6 filter ufw6-before-forward` (ufw, through ip6tables-nft).
    pub ufw: bool,
    /// Whether the kernel takes a table like dock6's (NAT, masquerade, maps);
    /// `None` when the probe could not run (no throwaway namespace: not root).
    pub kernel_table: Option<Result<(), String>>,
    /// `/proc/sys/net/ipv6/conf/all/proxy_ndp` exists.
    pub proxy_ndp: bool,
}

/// Reads everything, in this network namespace.
pub async fn gather(config: Config, options: &CheckOptions) -> Facts {
    let docker_host = options
        .docker_host
        .clone()
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| crate::source::docker::DEFAULT_DOCKER_HOST.into());
    let docker = docker_facts(&docker_host).await;
    let daemon_json = read_daemon_json(
        options
            .daemon_json
            .as_deref()
            .unwrap_or(&config.docker_daemon_json),
    );
    let host = host_facts().await;
    let nft = |e: crate::apply::nftables::NftError| e.to_string();
    Facts {
        config,
        docker_host,
        docker,
        daemon_json,
        host,
        forward_chains: crate::apply::nftables::forward_chains().map_err(nft),
        docker_firewall: crate::apply::nftables::docker_ip6_firewall().map_err(nft),
        firewalld: crate::apply::nftables::table_exists("firewalld").unwrap_or(false),
        ufw: crate::apply::nftables::ip6_chain_exists("filter", "ufw6-before-forward")
            .unwrap_or(false),
        kernel_table: probe_kernel(),
        proxy_ndp: Path::new("/proc/sys/net/ipv6/conf/all/proxy_ndp").exists(),
    }
}

async fn docker_facts(host: &str) -> Result<DockerFacts, String> {
    use crate::source::docker;
    let client = docker::connect(Some(host))
        .await
        .map_err(|e| e.to_string())?;
    let version = client.version().await.map_err(|e| e.to_string())?;
    let info = client.info().await.map_err(|e| e.to_string())?;
    let state = docker::docker_snapshot(&client)
        .await
        .map_err(|e| e.to_string())?;
    let swarm = swarm::gather(&client, info.swarm.as_ref(), &state.containers).await;
    Ok(DockerFacts {
        version: version.version.unwrap_or_default(),
        api_version: version.api_version.unwrap_or_default(),
        firewall_backend: info.firewall_backend.and_then(|f| f.driver),
        experimental: info.experimental_build.unwrap_or(false),
        networks: state.networks,
        containers: state.containers,
        swarm,
    })
}

async fn host_facts() -> Result<HostFacts, String> {
    crate::source::live::host_facts_now()
        .await
        .map_err(|e| e.to_string())
}

fn probe_kernel() -> Option<Result<(), String>> {
    use crate::apply::probe::{ProbeError, kernel_takes};
    match kernel_takes(&crate::plan::probe_table()) {
        Ok(_) => Some(Ok(())),
        Err(ProbeError::CannotProbe { .. }) => None,
        Err(e) => Some(Err(e.to_string())),
    }
}
