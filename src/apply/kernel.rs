//! The narrow seam between dock6's logic and the kernel: the real thing
//! (nftables over netlink, rtnetlink, /proc/sys) and, in tests, a recording
//! fake.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use tracing::warn;

use super::conntrack::{ConntrackError, DnatTarget};
use super::ndisc::{Link, find_link};
use super::ndp::{ProxyNeighbour, ProxySyncReport};
use super::ndp_responder::{Answered, Listening, Responder};
use super::routes::{Dock6Route, RouteSyncReport};
use super::sysctl::SysctlOutcome;
use super::{HostError, nftables};

use crate::nft::{ElementChange, TABLE_NAME, Table};
use crate::plan::{HostRoute, NaSource, ProxyEntry, SysctlSetting};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Nft(#[from] nftables::NftError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Conntrack(#[from] ConntrackError),
    #[error("cannot start the netlink runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The thread doing the kernel calls is dead or stuck: nothing more
    /// can be done in this process.
    #[error("{0}")]
    KernelThread(String),
}

pub trait Kernel {
    /// Replaces the whole table atomically. `since`: the element changes
    /// from what dock6 last committed to it to `table`, when the caller
    /// knows them (see [`nftables::replace_table_how`]).
    fn replace_table(
        &mut self,
        table: &Table,
        since: Option<&[ElementChange]>,
    ) -> Result<(), ApplyError>;
    /// Set and map element changes to `table`, in one batch.
    fn update_elements(&mut self, table: &str, changes: &[ElementChange])
    -> Result<(), ApplyError>;
    fn table_exists(&mut self, name: &str) -> Result<bool, ApplyError>;
    /// Whether Docker's own IPv6 firewall is in the kernel, by its
    /// signature (see [`nftables::docker_ip6_firewall`]).
    fn docker_ip6_firewall(&mut self) -> Result<nftables::DockerFirewall, ApplyError>;
    /// True if the table existed.
    fn delete_table(&mut self, name: &str) -> Result<bool, ApplyError>;
    fn apply_sysctl(&mut self, setting: &SysctlSetting) -> Result<SysctlOutcome, ApplyError>;
    /// Makes dock6's proxy-NDP entries exactly `desired`; with
    /// `NaSource::Target`, dock6 also answers solicitations for them itself.
    fn sync_proxy_entries(
        &mut self,
        desired: &[ProxyEntry],
        na_source: NaSource,
    ) -> Result<ProxySyncReport, ApplyError>;
    fn remove_proxy_entries(&mut self) -> Result<Vec<ProxyNeighbour>, ApplyError>;
    /// Makes dock6's tagged `/128` routes into bridges exactly `desired`.
    fn sync_host_routes(&mut self, desired: &[HostRoute]) -> Result<RouteSyncReport, ApplyError>;
    fn remove_host_routes(&mut self) -> Result<Vec<Dock6Route>, ApplyError>;
    /// Deletes the conntrack entries of flows DNAT'ed to these mappings;
    /// returns how many.
    fn delete_dnat_flows(&mut self, targets: &[DnatTarget]) -> Result<usize, ApplyError>;
    /// Deletes the conntrack entries of flows translated to or from these
    /// (old `nptv6` mapped) prefixes; returns how many.
    fn delete_prefix_flows(&mut self, prefixes: &[Ipv6Net]) -> Result<usize, ApplyError>;
    /// Sends a router solicitation on `interface`, so a default route comes
    /// back at once rather than at the next advertisement.
    fn solicit_router(&mut self, interface: &str) -> Result<(), ApplyError>;
    /// Records, where a flush of the ruleset cannot erase it, that dock6
    /// turns (or turned) forwarding on (see `forwarding.rs`).
    fn remember_forwarding_by_dock6(&mut self) -> Result<(), ApplyError>;
    /// Removes that record; true if there was one.
    fn forget_forwarding_by_dock6(&mut self) -> Result<bool, ApplyError>;
}

/// The kernel of the namespace this thread runs in.
pub struct LinuxKernel {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    /// dock6's host routes: dumped with a filter the kernel applies (see
    /// `routes::route_dump_connection`), else `handle` again.
    routes: rtnetlink::Handle,
    /// Answers neighbour solicitations itself (`na_source = "target"`).
    responder: Option<Responder>,
}

impl LinuxKernel {
    pub fn new() -> Result<LinuxKernel, ApplyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ApplyError::Runtime)?;
        let (connection, handle, _) = runtime
            .block_on(async { rtnetlink::new_connection() })
            .map_err(|e| ApplyError::Host(HostError::NetlinkSocket(e)))?;
        runtime.spawn(connection);
        let routes = match runtime.block_on(async { super::routes::route_dump_connection() }) {
            Some((connection, routes)) => {
                runtime.spawn(connection);
                routes
            }
            None => handle.clone(),
        };
        Ok(LinuxKernel {
            runtime,
            handle,
            routes,
            responder: None,
        })
    }
}

impl Kernel for LinuxKernel {
    fn replace_table(
        &mut self,
        table: &Table,
        since: Option<&[ElementChange]>,
    ) -> Result<(), ApplyError> {
        nftables::replace_table_how(table, since)?;
        Ok(())
    }

    fn update_elements(
        &mut self,
        table: &str,
        changes: &[ElementChange],
    ) -> Result<(), ApplyError> {
        Ok(nftables::update_elements(table, changes)?)
    }

    fn table_exists(&mut self, name: &str) -> Result<bool, ApplyError> {
        Ok(nftables::table_exists(name)?)
    }

    fn docker_ip6_firewall(&mut self) -> Result<nftables::DockerFirewall, ApplyError> {
        Ok(nftables::docker_ip6_firewall()?)
    }

    fn delete_table(&mut self, name: &str) -> Result<bool, ApplyError> {
        Ok(nftables::delete_table(name)?)
    }

    fn apply_sysctl(&mut self, setting: &SysctlSetting) -> Result<SysctlOutcome, ApplyError> {
        Ok(super::apply_sysctl(setting)?)
    }

    /// Also announces each new entry with an unsolicited neighbour
    /// advertisement, so the upstream router learns of a container at once
    /// (with `NaSource::Target`: from the address itself, and each address
    /// new to dock6's own answering).
    fn sync_proxy_entries(
        &mut self,
        desired: &[ProxyEntry],
        na_source: NaSource,
    ) -> Result<ProxySyncReport, ApplyError> {
        let handle = &self.handle;
        let responder = &mut self.responder;
        Ok(self.runtime.block_on(async {
            let report = super::sync_proxy_entries(handle, desired).await?;
            let announce: Vec<(String, Ipv6Addr, Option<Ipv6Addr>)> = match na_source {
                NaSource::LinkLocal => {
                    *responder = None;
                    report
                        .added
                        .iter()
                        .map(|e| (e.interface.clone(), e.address, None))
                        .collect()
                }
                NaSource::Target => answer_ourselves(handle, responder, desired)
                    .await?
                    .into_iter()
                    .map(|(interface, address)| (interface, address, Some(address)))
                    .collect(),
            };
            for (interface, address, source) in announce {
                if let Err(e) =
                    super::send_unsolicited_na(handle, &interface, address, false, source).await
                {
                    warn!("{e}");
                }
                super::progress::beat();
            }
            Ok::<_, HostError>(report)
        })?)
    }

    fn remove_proxy_entries(&mut self) -> Result<Vec<ProxyNeighbour>, ApplyError> {
        Ok(self
            .runtime
            .block_on(super::remove_all_dock6_entries(&self.handle))?)
    }

    fn sync_host_routes(&mut self, desired: &[HostRoute]) -> Result<RouteSyncReport, ApplyError> {
        Ok(self
            .runtime
            .block_on(super::sync_host_routes(&self.routes, desired))?)
    }

    fn remove_host_routes(&mut self) -> Result<Vec<Dock6Route>, ApplyError> {
        Ok(self
            .runtime
            .block_on(super::remove_all_dock6_routes(&self.routes))?)
    }

    fn delete_dnat_flows(&mut self, targets: &[DnatTarget]) -> Result<usize, ApplyError> {
        Ok(super::delete_dnat_flows(targets)?)
    }

    fn delete_prefix_flows(&mut self, prefixes: &[Ipv6Net]) -> Result<usize, ApplyError> {
        Ok(super::delete_prefix_flows(prefixes)?)
    }

    fn solicit_router(&mut self, interface: &str) -> Result<(), ApplyError> {
        Ok(self
            .runtime
            .block_on(super::send_router_solicitation(&self.handle, interface))?)
    }

    fn remember_forwarding_by_dock6(&mut self) -> Result<(), ApplyError> {
        Ok(super::forwarding::remember_forwarding_by_dock6()?)
    }

    fn forget_forwarding_by_dock6(&mut self) -> Result<bool, ApplyError> {
        Ok(super::forwarding::forget_forwarding_by_dock6()?)
    }
}

/// Hands `desired` to dock6's own answering (started on first use); returns
/// the (interface, address) pairs it did not answer for before.
async fn answer_ourselves(
    handle: &rtnetlink::Handle,
    responder: &mut Option<Responder>,
    desired: &[ProxyEntry],
) -> Result<Vec<(String, Ipv6Addr)>, HostError> {
    let mut links = BTreeMap::new();
    let mut answered = Answered::new();
    let mut interface_of = BTreeMap::new();
    for entry in desired {
        if !links.contains_key(&entry.interface) {
            let link = find_link(handle, &entry.interface)
                .await
                .map_err(|source| HostError::Netlink {
                    what: format!(
                        "answering for proxied addresses: looking up {}",
                        entry.interface
                    ),
                    source,
                })?;
            links.insert(entry.interface.clone(), link);
        }
        if let Some(Some(link)) = links.get(&entry.interface) {
            answered.insert(entry.address, link.clone());
            interface_of.insert(entry.address, entry.interface.clone());
        }
    }
    let responder = match responder {
        Some(r) => r,
        // Nothing to answer for: no socket, no thread.
        None if answered.is_empty() => return Ok(Vec::new()),
        None => responder.insert(Responder::start().map_err(HostError::Responder)?),
    };
    let on = only_interface(&links);
    Ok(responder
        .set(answered, on)
        .map_err(HostError::Responder)?
        .into_iter()
        .filter_map(|a| Some((interface_of.get(&a)?.clone(), a)))
        .collect())
}

/// The one interface every answered address is proxied on (the uplink), to
/// listen on; `None` when they are on several (or none exists).
fn only_interface(links: &BTreeMap<String, Option<Link>>) -> Option<Listening> {
    let mut present = links
        .iter()
        .filter_map(|(name, link)| Some((name, link.as_ref()?)));
    match (present.next(), present.next()) {
        (Some((name, link)), None) => Some(Listening {
            name: name.clone(),
            index: link.index,
        }),
        _ => None,
    }
}

/// What happened to the table in one apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableAction {
    Replaced,
    /// Element changes in one batch.
    Updated(usize),
    Unchanged,
}

impl std::fmt::Display for TableAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableAction::Replaced => f.write_str("replaced"),
            TableAction::Updated(n) => write!(f, "{n} element changes"),
            TableAction::Unchanged => f.write_str("unchanged"),
        }
    }
}

#[derive(Debug)]
pub struct CleanupReport {
    pub table_existed: bool,
    pub removed_proxies: Vec<ProxyNeighbour>,
    pub removed_routes: Vec<Dock6Route>,
    /// The record that dock6 turned forwarding on was there.
    pub forwarding_record_removed: bool,
}

/// Removes everything dock6 made: its table, its tagged proxy entries and
/// host routes, and its record of having turned forwarding on (the table
/// that limited that forwarding to Docker goes too). Sysctls are left as
/// they are (turning forwarding off could cut the host).
pub fn cleanup(kernel: &mut dyn Kernel) -> Result<CleanupReport, ApplyError> {
    let table_existed = kernel.delete_table(TABLE_NAME)?;
    let removed_proxies = kernel.remove_proxy_entries()?;
    let removed_routes = kernel.remove_host_routes()?;
    let forwarding_record_removed = kernel.forget_forwarding_by_dock6()?;
    Ok(CleanupReport {
        table_existed,
        removed_proxies,
        removed_routes,
        forwarding_record_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::fake::Recorder;

    #[test]
    fn cleanup_removes_table_then_proxies() {
        let mut k = Recorder::default();
        cleanup(&mut k).unwrap();
        assert_eq!(
            k.calls,
            [
                "delete dock6",
                "remove proxies",
                "remove routes",
                "forget forwarding"
            ]
        );
    }
}
