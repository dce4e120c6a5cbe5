//! A recording stand-in for the kernel, for unit tests: it answers every
//! call with success, except calls whose description starts with one of
//! `fail` (e.g. `"sysctl net.ipv6.conf.eth0.proxy_ndp"`, `"replace"`), and
//! records each call in order.

use super::conntrack::DnatTarget;
use super::kernel::{ApplyError, Kernel};
use super::ndp::{ProxyNeighbour, ProxySyncReport};
use super::nftables::DockerFirewall;
use super::routes::{Dock6Route, RouteSyncReport};
use super::sysctl::{SysctlAction, SysctlOutcome};
use super::{HostError, nftables::NftError};
use crate::nft::{ElementChange, Table};
use crate::plan::{HostRoute, NaSource, ProxyEntry, SysctlSetting};

#[derive(Default)]
pub struct Recorder {
    pub calls: Vec<String>,
    /// Prefixes of the calls that fail.
    pub fail: Vec<String>,
    /// What `docker_ip6_firewall` answers.
    pub docker: Option<DockerFirewall>,
    /// The mappings of each `delete_dnat_flows` call, in order.
    pub flows: Vec<Vec<DnatTarget>>,
}

impl Recorder {
    /// Records `call`; an error if it is one that must fail.
    fn record(&mut self, call: String) -> Result<(), ApplyError> {
        let fails = self.fail.iter().any(|f| call.starts_with(f.as_str()));
        self.calls.push(call.clone());
        match fails {
            true => Err(NftError::Protocol(format!("{call}: failed on purpose")).into()),
            false => Ok(()),
        }
    }
}

impl Kernel for Recorder {
    fn replace_table(
        &mut self,
        table: &Table,
        since: Option<&[ElementChange]>,
    ) -> Result<(), ApplyError> {
        match since {
            None => self.record(format!("replace {}", table.name)),
            Some(c) => self.record(format!("replace {} since {}", table.name, c.len())),
        }
    }

    fn update_elements(
        &mut self,
        table: &str,
        changes: &[ElementChange],
    ) -> Result<(), ApplyError> {
        self.record(format!("update {table} {}", changes.len()))
    }

    fn table_exists(&mut self, name: &str) -> Result<bool, ApplyError> {
        self.record(format!("exists {name}")).map(|()| true)
    }

    fn docker_ip6_firewall(&mut self) -> Result<DockerFirewall, ApplyError> {
        self.record("docker firewall".into())?;
        Ok(self.docker.clone().unwrap_or(DockerFirewall::Off))
    }

    fn delete_table(&mut self, name: &str) -> Result<bool, ApplyError> {
        self.record(format!("delete {name}")).map(|()| true)
    }

    fn apply_sysctl(&mut self, s: &SysctlSetting) -> Result<SysctlOutcome, ApplyError> {
        let call = format!("sysctl {}={}", s.key(), s.value);
        if self.record(call).is_err() {
            return Err(HostError::SysctlMissing {
                key: s.key(),
                path: format!("/proc/sys/net/ipv6/conf/{}/{}", s.scope, s.name),
            }
            .into());
        }
        Ok(SysctlOutcome {
            key: s.key(),
            old: 0,
            new: s.value,
            action: SysctlAction::Changed,
        })
    }

    fn sync_proxy_entries(
        &mut self,
        desired: &[ProxyEntry],
        na_source: NaSource,
    ) -> Result<ProxySyncReport, ApplyError> {
        let by = match na_source {
            NaSource::LinkLocal => String::new(),
            NaSource::Target => " answered by dock6".into(),
        };
        self.record(format!("proxies {}{by}", desired.len()))?;
        Ok(ProxySyncReport::default())
    }

    fn remove_proxy_entries(&mut self) -> Result<Vec<ProxyNeighbour>, ApplyError> {
        self.record("remove proxies".into())?;
        Ok(Vec::new())
    }

    fn sync_host_routes(&mut self, desired: &[HostRoute]) -> Result<RouteSyncReport, ApplyError> {
        self.record(format!("routes {}", desired.len()))?;
        Ok(RouteSyncReport::default())
    }

    fn remove_host_routes(&mut self) -> Result<Vec<Dock6Route>, ApplyError> {
        self.record("remove routes".into())?;
        Ok(Vec::new())
    }

    fn delete_dnat_flows(&mut self, targets: &[DnatTarget]) -> Result<usize, ApplyError> {
        self.flows.push(targets.to_vec());
        self.record(format!("conntrack {}", targets.len()))?;
        Ok(0)
    }

    fn delete_prefix_flows(&mut self, prefixes: &[ipnet::Ipv6Net]) -> Result<usize, ApplyError> {
        let list: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
        self.record(format!("conntrack prefixes {}", list.join(" ")))?;
        Ok(0)
    }

    fn solicit_router(&mut self, interface: &str) -> Result<(), ApplyError> {
        self.record(format!("solicit {interface}"))
    }

    fn remember_forwarding_by_dock6(&mut self) -> Result<(), ApplyError> {
        self.record("remember forwarding".into())
    }

    fn forget_forwarding_by_dock6(&mut self) -> Result<bool, ApplyError> {
        self.record("forget forwarding".into()).map(|()| true)
    }
}
