//! The narrow seam between dock6's logic and the kernel: the real thing
//! (nftables over netlink, rtnetlink, /proc/sys) and, in tests, a recording
//! fake.

use tracing::{debug, info, warn};

use super::conntrack::{ConntrackError, DnatTarget};
use super::ndp::{ProxyNeighbour, ProxySyncReport};
use super::sysctl::SysctlOutcome;
use super::{HostError, nft};
use std::collections::BTreeSet;

use crate::nft::{Element, ElementChange, TABLE_NAME, Table, TableDiff, Value, diff};
use crate::plan::{Plan, ProxyEntry, SysctlSetting};
use crate::plan::{SET_DNAT_ADDR, SET_DNAT_ANY};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Nft(#[from] nft::NftError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Conntrack(#[from] ConntrackError),
    #[error("cannot start the netlink runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

pub trait Kernel {
    fn replace_table(&mut self, table: &Table) -> Result<(), ApplyError>;
    /// Set and map element changes to `table`, in one batch.
    fn update_elements(&mut self, table: &str, changes: &[ElementChange])
    -> Result<(), ApplyError>;
    fn table_exists(&mut self, name: &str) -> Result<bool, ApplyError>;
    /// Whether Docker's own IPv6 firewall (`"ip6tables": true`, through
    /// iptables-nft) is in the kernel: its `DOCKER` chain in `ip6 nat` or `ip6 filter`.
    fn docker_ip6_firewall(&mut self) -> Result<bool, ApplyError>;
    /// True if the table existed.
    fn delete_table(&mut self, name: &str) -> Result<bool, ApplyError>;
    fn apply_sysctl(&mut self, setting: &SysctlSetting) -> Result<SysctlOutcome, ApplyError>;
    fn sync_proxy_entries(&mut self, desired: &[ProxyEntry])
    -> Result<ProxySyncReport, ApplyError>;
    fn remove_proxy_entries(&mut self) -> Result<Vec<ProxyNeighbour>, ApplyError>;
    /// Deletes the conntrack entries of flows DNAT'ed to these mappings;
    /// returns how many.
    fn delete_dnat_flows(&mut self, targets: &[DnatTarget]) -> Result<usize, ApplyError>;
    /// Sends a router solicitation on `interface`, so a default route comes
    /// back at once rather than at the next advertisement.
    fn solicit_router(&mut self, interface: &str) -> Result<(), ApplyError>;
}

/// The kernel of the namespace this thread runs in.
pub struct LinuxKernel {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
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
        Ok(LinuxKernel { runtime, handle })
    }
}

impl Kernel for LinuxKernel {
    fn replace_table(&mut self, table: &Table) -> Result<(), ApplyError> {
        Ok(nft::replace_table(table)?)
    }

    fn update_elements(
        &mut self,
        table: &str,
        changes: &[ElementChange],
    ) -> Result<(), ApplyError> {
        Ok(nft::update_elements(table, changes)?)
    }

    fn table_exists(&mut self, name: &str) -> Result<bool, ApplyError> {
        Ok(nft::table_exists(name)?)
    }

    fn docker_ip6_firewall(&mut self) -> Result<bool, ApplyError> {
        Ok(nft::ip6_chain_exists("nat", "DOCKER")? || nft::ip6_chain_exists("filter", "DOCKER")?)
    }

    fn delete_table(&mut self, name: &str) -> Result<bool, ApplyError> {
        Ok(nft::delete_table(name)?)
    }

    fn apply_sysctl(&mut self, setting: &SysctlSetting) -> Result<SysctlOutcome, ApplyError> {
        Ok(super::apply_sysctl(setting)?)
    }

    /// Also announces each new entry with an unsolicited neighbour
    /// advertisement, so the upstream router learns of a container at once.
    fn sync_proxy_entries(
        &mut self,
        desired: &[ProxyEntry],
    ) -> Result<ProxySyncReport, ApplyError> {
        let handle = &self.handle;
        Ok(self.runtime.block_on(async {
            let report = super::sync_proxy_entries(handle, desired).await?;
            for entry in &report.added {
                if let Err(e) =
                    super::send_unsolicited_na(handle, &entry.interface, entry.address, false).await
                {
                    warn!("{e}");
                }
            }
            Ok::<_, HostError>(report)
        })?)
    }

    fn remove_proxy_entries(&mut self) -> Result<Vec<ProxyNeighbour>, ApplyError> {
        Ok(self
            .runtime
            .block_on(super::remove_all_dock6_entries(&self.handle))?)
    }

    fn delete_dnat_flows(&mut self, targets: &[DnatTarget]) -> Result<usize, ApplyError> {
        Ok(super::delete_dnat_flows(targets)?)
    }

    fn solicit_router(&mut self, interface: &str) -> Result<(), ApplyError> {
        Ok(self
            .runtime
            .block_on(super::send_router_solicitation(&self.handle, interface))?)
    }
}

/// The published-port mappings of `old` that `new` no longer has (or maps
/// elsewhere): their flows must not stick to a container that is gone.
pub fn removed_dnat_targets(old: &Table, new: &Table) -> Vec<DnatTarget> {
    let targets = |table: &Table| -> BTreeSet<DnatTarget> {
        [SET_DNAT_ANY, SET_DNAT_ADDR]
            .iter()
            .filter_map(|name| table.set(name))
            .flat_map(|set| set.elements.iter())
            .filter_map(dnat_target)
            .collect()
    };
    targets(old).difference(&targets(new)).copied().collect()
}

/// `[addr .] proto . port : target . target_port` → a DnatTarget.
fn dnat_target(element: &Element) -> Option<DnatTarget> {
    let (proto, host_port) = match element.key.as_slice() {
        [Value::Proto(p), Value::Port(port)]
        | [Value::Addr(_), Value::Proto(p), Value::Port(port)] => (*p, *port),
        _ => return None,
    };
    match element.data.as_slice() {
        [Value::Addr(target), Value::Port(target_port)] => Some(DnatTarget {
            proto,
            host_port,
            target: *target,
            target_port: *target_port,
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
pub struct ApplyReport {
    pub table: TableAction,
    pub sysctls: Vec<SysctlOutcome>,
    pub proxies: ProxySyncReport,
}

/// Applies a whole plan. Filtering goes in first, so forwarding is never on
/// without it; then the sysctls in the planned order (accept_ra before
/// forwarding); then proxy-NDP entries. The first error stops it: what was
/// already in place stays.
///
/// With `previous` (the table last applied with success) only the element
/// differences are sent, unless the structure changed; without it, or when
/// the element batch fails (someone changed the table), the whole table is
/// replaced atomically.
pub fn apply_plan(
    kernel: &mut dyn Kernel,
    plan: &Plan,
    previous: Option<&Table>,
) -> Result<ApplyReport, ApplyError> {
    let table = apply_table(kernel, &plan.ruleset, previous)?;
    let (sysctls, proxies) = apply_host(kernel, plan)?;
    Ok(ApplyReport {
        table,
        sysctls,
        proxies,
    })
}

/// The host side of a plan alone: sysctls, then proxy-NDP entries. What a
/// companion of Docker's own IPv6 firewall does.
pub fn apply_host(
    kernel: &mut dyn Kernel,
    plan: &Plan,
) -> Result<(Vec<SysctlOutcome>, ProxySyncReport), ApplyError> {
    let mut sysctls = Vec::new();
    for setting in &plan.sysctls {
        let outcome = kernel.apply_sysctl(setting)?;
        debug!("{outcome}");
        if setting.name == "accept_ra" && outcome.changed() {
            // Forwarding is about to stop the kernel from soliciting: ask now.
            match kernel.solicit_router(&setting.scope) {
                Ok(()) => info!("router solicitation sent on {}", setting.scope),
                Err(e) => warn!("{e}"),
            }
        }
        sysctls.push(outcome);
    }
    let proxies = kernel.sync_proxy_entries(&plan.proxy_entries)?;
    for entry in &proxies.added {
        info!(
            "proxy-NDP entry {} on {} added",
            entry.address, entry.interface
        );
    }
    for entry in &proxies.removed {
        info!("proxy-NDP entry {entry} removed");
    }
    for error in &proxies.errors {
        warn!("{error}");
    }
    Ok((sysctls, proxies))
}

fn apply_table(
    kernel: &mut dyn Kernel,
    table: &Table,
    previous: Option<&Table>,
) -> Result<TableAction, ApplyError> {
    match previous.map(|p| diff(p, table)) {
        Some(TableDiff::Same) => return Ok(TableAction::Unchanged),
        Some(TableDiff::Elements(changes)) => match kernel.update_elements(&table.name, &changes) {
            Ok(()) => return Ok(TableAction::Updated(changes.len())),
            Err(e) => warn!("element update failed ({e}); replacing the whole table"),
        },
        Some(TableDiff::Structure) | None => {}
    }
    kernel.replace_table(table)?;
    info!(
        chains = table.chains.len(),
        elements = table.element_count(),
        "table inet {} replaced",
        table.name
    );
    Ok(TableAction::Replaced)
}

#[derive(Debug)]
pub struct CleanupReport {
    pub table_existed: bool,
    pub removed_proxies: Vec<ProxyNeighbour>,
}

/// Removes everything dock6 made: its table and its tagged proxy entries.
/// Sysctls are left as they are (turning forwarding off could cut the host).
pub fn cleanup(kernel: &mut dyn Kernel) -> Result<CleanupReport, ApplyError> {
    let table_existed = kernel.delete_table(TABLE_NAME)?;
    let removed_proxies = kernel.remove_proxy_entries()?;
    Ok(CleanupReport {
        table_existed,
        removed_proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::snapshot::Snapshot;

    /// Records what would have been done, in order.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_sysctl: bool,
    }

    impl Kernel for Recorder {
        fn replace_table(&mut self, table: &Table) -> Result<(), ApplyError> {
            self.calls.push(format!("replace {}", table.name));
            Ok(())
        }

        fn update_elements(
            &mut self,
            table: &str,
            changes: &[ElementChange],
        ) -> Result<(), ApplyError> {
            self.calls.push(format!("update {table} {}", changes.len()));
            Ok(())
        }

        fn table_exists(&mut self, name: &str) -> Result<bool, ApplyError> {
            self.calls.push(format!("exists {name}"));
            Ok(true)
        }

        fn docker_ip6_firewall(&mut self) -> Result<bool, ApplyError> {
            Ok(false)
        }

        fn delete_table(&mut self, name: &str) -> Result<bool, ApplyError> {
            self.calls.push(format!("delete {name}"));
            Ok(true)
        }

        fn apply_sysctl(&mut self, s: &SysctlSetting) -> Result<SysctlOutcome, ApplyError> {
            self.calls.push(format!("sysctl {}={}", s.key(), s.value));
            if self.fail_sysctl {
                return Err(HostError::SysctlMissing {
                    key: s.key(),
                    path: s.proc_path(),
                }
                .into());
            }
            Ok(SysctlOutcome {
                key: s.key(),
                old: 0,
                new: s.value,
                action: super::super::SysctlAction::Changed,
            })
        }

        fn sync_proxy_entries(
            &mut self,
            desired: &[ProxyEntry],
        ) -> Result<ProxySyncReport, ApplyError> {
            self.calls.push(format!("proxies {}", desired.len()));
            Ok(ProxySyncReport::default())
        }

        fn remove_proxy_entries(&mut self) -> Result<Vec<ProxyNeighbour>, ApplyError> {
            self.calls.push("remove proxies".into());
            Ok(Vec::new())
        }

        fn delete_dnat_flows(&mut self, targets: &[DnatTarget]) -> Result<usize, ApplyError> {
            self.calls.push(format!("conntrack {}", targets.len()));
            Ok(0)
        }

        fn solicit_router(&mut self, interface: &str) -> Result<(), ApplyError> {
            self.calls.push(format!("solicit {interface}"));
            Ok(())
        }
    }

    fn all_three_modes() -> Plan {
        let text = include_str!("../../rules/all-three-modes/snapshot.json");
        let snapshot: Snapshot = serde_json::from_str(text).expect("bundled scenario parses");
        crate::plan::plan(&Config::default(), &snapshot)
    }

    #[test]
    fn filtering_goes_in_before_forwarding_and_accept_ra_before_forwarding() {
        let mut k = Recorder::default();
        apply_plan(&mut k, &all_three_modes(), None).unwrap();
        assert_eq!(
            k.calls,
            [
                "replace dock6",
                "sysctl net.ipv6.conf.eth0.accept_ra=2",
                "solicit eth0",
                "sysctl net.ipv6.conf.all.forwarding=1",
                "sysctl net.ipv6.conf.eth0.proxy_ndp=1",
                "proxies 1",
            ]
        );
    }

    #[test]
    fn a_failed_sysctl_stops_before_forwarding() {
        let mut k = Recorder {
            fail_sysctl: true,
            ..Default::default()
        };
        let e = apply_plan(&mut k, &all_three_modes(), None).unwrap_err();
        assert!(
            e.to_string().contains("net.ipv6.conf.eth0.accept_ra"),
            "{e}"
        );
        assert_eq!(
            k.calls,
            ["replace dock6", "sysctl net.ipv6.conf.eth0.accept_ra=2"]
        );
    }

    #[test]
    fn a_plan_differing_in_elements_only_sends_element_changes() {
        let mut k = Recorder::default();
        let plan = all_three_modes();
        let report = apply_plan(&mut k, &plan, Some(&plan.ruleset)).unwrap();
        assert_eq!(report.table, TableAction::Unchanged);
        let mut previous = plan.ruleset.clone();
        previous.sets.iter_mut().for_each(|s| s.elements.clear());
        let report = apply_plan(&mut k, &plan, Some(&previous)).unwrap();
        assert_eq!(
            report.table,
            TableAction::Updated(plan.ruleset.element_count())
        );
        assert!(
            k.calls.iter().all(|c| !c.starts_with("replace")),
            "{:?}",
            k.calls
        );
    }

    #[test]
    fn removed_and_moved_mappings_are_found() {
        let plan = all_three_modes();
        let mut moved = plan.ruleset.clone();
        let dnat = moved
            .sets
            .iter_mut()
            .find(|s| s.name == SET_DNAT_ANY)
            .unwrap();
        dnat.elements.retain(|e| e.key[1] != Value::Port(5353));
        dnat.elements[0].data[0] = Value::Addr("fd00:1::99".parse().unwrap());
        let removed = removed_dnat_targets(&plan.ruleset, &moved);
        let ports: Vec<u16> = removed.iter().map(|t| t.host_port).collect();
        assert_eq!(ports, [8080, 5353], "{removed:?}");
        assert!(removed_dnat_targets(&plan.ruleset, &plan.ruleset).is_empty());
    }

    #[test]
    fn cleanup_removes_table_then_proxies() {
        let mut k = Recorder::default();
        cleanup(&mut k).unwrap();
        assert_eq!(k.calls, ["delete dock6", "remove proxies"]);
    }
}
