//! The live view, as `dock6 snapshot` prints it and `dock6 render --diff`
//! plans from: one full Docker snapshot and the host facts of this network
//! namespace, in the snapshot JSON that `render --snapshot` reads.

use crate::snapshot::{HostFacts, Snapshot};
use crate::source::docker::{self, DockerError};
use crate::source::host::{self, HostFactsError};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Host(#[from] HostFactsError),
    #[error("cannot open the netlink route socket: {0}")]
    Netlink(#[source] std::io::Error),
    #[error("cannot read dock6's table: {0}")]
    Table(#[source] crate::apply::ApplyError),
}

/// This namespace's host facts, over a netlink connection of their own.
pub async fn host_facts_now() -> Result<HostFacts, LiveError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(LiveError::Netlink)?;
    let connection = tokio::spawn(connection);
    let facts = host::host_facts(&handle).await;
    connection.abort();
    Ok(facts?)
}

/// Docker's networks and running containers and the host's facts, read
/// now. `docker_host` as for `dock6 run` (else `DOCKER_HOST`, else the
/// default socket).
pub async fn live_snapshot(docker_host: Option<&str>) -> Result<Snapshot, LiveError> {
    let client = docker::connect(docker_host).await?;
    let state = docker::docker_snapshot(&client).await?;
    let mut host = host_facts_now().await?;
    // Read from dock6's own table, as the agent does at start.
    host.forwarding_enabled_by_dock6 =
        crate::apply::forwarding_enabled_by_dock6().map_err(LiveError::Table)?;
    Ok(Snapshot {
        host,
        networks: state.networks,
        containers: state.containers,
        starting: Vec::new(),
    })
}
