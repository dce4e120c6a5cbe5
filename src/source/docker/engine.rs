//! Which Docker engine answers, and which firewall backend it reports: what an operator needs to
//! read once per connection to understand why dock6 owns IPv6 firewalling or runs as Docker's
//! companion. `/info` has no `ip6tables` field: what it tells of it is the version (on by default
//! from 27) and whether experimental features are on (which ip6tables needs before 27); daemon.json
//! says the rest (see `firewall_role`).

use std::fmt;

use bollard::Docker;

use super::DockerError;
use crate::text::clip;

/// What `/info` says of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engine {
    /// `ServerVersion` (e.g. `28.5.2`).
    pub version: String,
    /// The API version the client negotiated.
    pub api: String,
    /// `FirewallBackend.Driver` (API ≥ 1.49): `iptables`, `nftables`, or either with
    /// `+firewalld`; `None` for older engines, which only have iptables.
    pub firewall_backend: Option<String>,
    /// `ExperimentalBuild`: experimental features are on.
    pub experimental: bool,
}

impl Engine {
    /// Whether firewalld manages Docker's rules: its reloads remove and re-add them, and it puts
    /// Docker's bridges in a zone of its own.
    pub fn with_firewalld(&self) -> bool {
        self.firewall_backend
            .as_deref()
            .is_some_and(|b| b.contains("firewalld"))
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Docker {} (API {}", self.version, self.api)?;
        match &self.firewall_backend {
            Some(backend) => write!(f, ", firewall backend {backend})"),
            None => write!(
                f,
                ", firewall backend iptables: not reported before API 1.49)"
            ),
        }
    }
}

/// `/info`, reduced to [`Engine`]; text from Docker is clipped so a hostile daemon cannot flood
/// the log.
pub async fn engine(docker: &Docker) -> Result<Engine, DockerError> {
    let info = docker
        .info()
        .await
        .map_err(DockerError::request("reading /info"))?;
    Ok(Engine {
        version: clip(info.server_version.as_deref().unwrap_or("(unknown)")).into_owned(),
        api: docker.client_version().to_string(),
        firewall_backend: info
            .firewall_backend
            .and_then(|f| f.driver)
            .filter(|d| !d.is_empty())
            .map(|d| clip(&d).into_owned()),
        experimental: info.experimental_build.unwrap_or(false),
    })
}
