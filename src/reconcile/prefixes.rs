//! The provider's prefixes over one run of the agent. The planner is pure
//! and sees one moment; what a renumbering needs is memory:
//! - which of the uplink's prefixes (on-link or delegated) the host had
//!   earlier and lost, so a network built on one is closed rather than
//!   taken for a routed one (see `HostFacts::former_prefixes`);
//! - where each `nptv6` network is mapped now and since when, so a moved
//!   mapping is logged once (old → new), shown by `dock6 status` and the
//!   metrics, and the flows of its old prefix are deleted.

use std::collections::BTreeMap;
use std::time::SystemTime;

use ipnet::Ipv6Net;

use crate::plan::{NetworkPlan, PrefixSource, is_global_unicast};
use crate::snapshot::HostFacts;

/// At most this many prefixes are remembered: a host renumbered every few
/// minutes for days must not grow the agent.
const REMEMBERED: usize = 64;

/// The uplink's global prefixes seen in this run, most recent last.
#[derive(Debug, Default)]
pub struct PrefixMemory {
    seen: Vec<Ipv6Net>,
    /// The host's prefixes at the last [`PrefixMemory::remember`].
    current: Vec<Ipv6Net>,
}

/// The uplink's global on-link prefixes and the delegated ones, sorted.
fn provider_prefixes(host: &HostFacts, uplink: Option<&str>) -> Vec<Ipv6Net> {
    let uplink = uplink.or(host.default_route_interface.as_deref());
    let mut out: Vec<Ipv6Net> = uplink
        .and_then(|u| host.interface(u))
        .map(|i| i.onlink_prefixes.as_slice())
        .unwrap_or(&[])
        .iter()
        .chain(&host.delegated_prefixes)
        .map(Ipv6Net::trunc)
        .filter(is_global_unicast)
        .collect();
    out.sort();
    out.dedup();
    out
}

impl PrefixMemory {
    /// Whether `host` has other prefixes than at the last `remember`.
    pub fn changed(&self, host: &HostFacts, uplink: Option<&str>) -> bool {
        provider_prefixes(host, uplink) != self.current
    }

    /// Remembers the host's current prefixes and fills in
    /// `host.former_prefixes`: those seen earlier and gone now (and not
    /// inside one the host still has).
    pub fn remember(&mut self, host: &mut HostFacts, uplink: Option<&str>) {
        let current = provider_prefixes(host, uplink);
        for p in &current {
            self.seen.retain(|s| s != p);
            self.seen.push(*p);
        }
        if self.seen.len() > REMEMBERED {
            let extra = self.seen.len() - REMEMBERED;
            self.seen.drain(..extra);
        }
        host.former_prefixes = self
            .seen
            .iter()
            .filter(|s| !current.iter().any(|c| c.contains(*s) || s.contains(c)))
            .copied()
            .collect();
        self.current = current;
    }
}

/// One `nptv6` network's mapping as last planned.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub subnet: Ipv6Net,
    pub source: PrefixSource,
    /// `None` while the host has no prefix to follow (the network is closed).
    pub prefix: Option<Ipv6Net>,
    /// When the mapping took its present prefix (or lost it), or was first planned.
    pub since: SystemTime,
    /// How many times it moved in this run.
    pub changes: u64,
}

/// A mapping that moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingChange {
    pub network: String,
    pub source: PrefixSource,
    pub old: Option<Ipv6Net>,
    pub new: Option<Ipv6Net>,
}

impl MappingChange {
    /// One log line: old → new.
    pub fn describe(&self) -> String {
        let show = |p: Option<Ipv6Net>| p.map_or("none".to_string(), |p| p.to_string());
        format!(
            "network {:?}: nptv6 mapping {} → {} (follows the {} prefix)",
            self.network,
            show(self.old),
            show(self.new),
            self.source
        )
    }
}

/// Every `nptv6` network's mapping, by network name.
#[derive(Debug, Default)]
pub struct Mappings {
    current: BTreeMap<String, Mapping>,
}

impl Mappings {
    /// Takes the planned `networks` (at `now`) and returns the mappings
    /// that moved since the last call. A network seen for the first time is
    /// not a move.
    pub fn follow(&mut self, networks: &[NetworkPlan], now: SystemTime) -> Vec<MappingChange> {
        let mut changes = Vec::new();
        let mut next = BTreeMap::new();
        for n in networks {
            let (Some(source), Some(subnet)) = (n.nptv6_source, n.subnets.first()) else {
                continue;
            };
            let mapping = match self.current.remove(&n.name) {
                Some(old) if old.prefix == n.nptv6 && old.subnet == *subnet => old,
                Some(old) if old.subnet == *subnet => {
                    changes.push(MappingChange {
                        network: n.name.clone(),
                        source,
                        old: old.prefix,
                        new: n.nptv6,
                    });
                    Mapping {
                        source,
                        prefix: n.nptv6,
                        since: now,
                        changes: old.changes + 1,
                        ..old
                    }
                }
                // New, or Docker's network was made again with another subnet.
                _ => Mapping {
                    subnet: *subnet,
                    source,
                    prefix: n.nptv6,
                    since: now,
                    changes: 0,
                },
            };
            next.insert(n.name.clone(), mapping);
        }
        self.current = next;
        changes
    }

    pub fn get(&self, network: &str) -> Option<&Mapping> {
        self.current.get(network)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Mapping)> {
        self.current.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::{Mode, ModeSource};
    use crate::snapshot::Interface;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn host(onlink: &[&str], delegated: &[&str]) -> HostFacts {
        HostFacts {
            default_route_interface: Some("eth0".into()),
            interfaces: vec![Interface {
                name: "eth0".into(),
                onlink_prefixes: onlink.iter().map(|p| net(p)).collect(),
                ..Interface::default()
            }],
            delegated_prefixes: delegated.iter().map(|p| net(p)).collect(),
            ..HostFacts::default()
        }
    }

    #[test]
    fn prefixes_the_host_lost_are_former_until_they_come_back() {
        let mut memory = PrefixMemory::default();
        let mut h = host(&["2001:db8:a::/64", "fd00:1::/64"], &["2001:db8:100::/56"]);
        assert!(memory.changed(&h, None), "nothing seen yet");
        memory.remember(&mut h, None);
        assert!(h.former_prefixes.is_empty());
        assert!(!memory.changed(&h, None));
        let mut h = host(&["2001:db8:b::/64"], &["2001:db8:200::/56"]);
        assert!(memory.changed(&h, None));
        memory.remember(&mut h, None);
        assert_eq!(
            h.former_prefixes,
            vec![net("2001:db8:a::/64"), net("2001:db8:100::/56")],
            "global prefixes only (the ULA is not a provider's)"
        );
        let mut h = host(
            &["2001:db8:a::/64", "2001:db8:b::/64"],
            &["2001:db8:200::/56"],
        );
        memory.remember(&mut h, None);
        assert_eq!(
            h.former_prefixes,
            vec![net("2001:db8:100::/56")],
            "a is back"
        );
        // A delegation made longer is not a lost prefix.
        let mut h = host(
            &["2001:db8:a::/64", "2001:db8:b::/64"],
            &["2001:db8:100::/48"],
        );
        memory.remember(&mut h, None);
        assert_eq!(h.former_prefixes, vec![net("2001:db8:200::/56")]);
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut memory = PrefixMemory::default();
        for i in 0..200u16 {
            let mut h = host(&[&format!("2001:db8:{i:x}::/64")], &[]);
            memory.remember(&mut h, None);
        }
        assert_eq!(memory.seen.len(), REMEMBERED);
    }

    fn plan(name: &str, subnet: &str, source: PrefixSource, prefix: Option<&str>) -> NetworkPlan {
        NetworkPlan {
            name: name.into(),
            bridge: "br-0".into(),
            subnets: vec![net(subnet)],
            mode: if prefix.is_some() {
                Mode::Nptv6
            } else {
                Mode::Off
            },
            mode_source: ModeSource::Config,
            icc: true,
            masquerade: true,
            internal: false,
            unprotected: false,
            nptv6: prefix.map(net),
            nptv6_source: Some(source),
        }
    }

    #[test]
    fn a_moved_mapping_is_reported_once_with_its_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let t1 = t0 + Duration::from_secs(60);
        let mut m = Mappings::default();
        let a = plan(
            "web",
            "fd00::/80",
            PrefixSource::Uplink,
            Some("2001:db8:a::/80"),
        );
        assert!(
            m.follow(std::slice::from_ref(&a), t0).is_empty(),
            "first seen: no move"
        );
        assert!(
            m.follow(std::slice::from_ref(&a), t1).is_empty(),
            "unchanged"
        );
        assert_eq!(m.get("web").unwrap().since, t0);
        let b = plan(
            "web",
            "fd00::/80",
            PrefixSource::Uplink,
            Some("2001:db8:b::/80"),
        );
        let changes = m.follow(std::slice::from_ref(&b), t1);
        assert_eq!(
            changes
                .iter()
                .map(MappingChange::describe)
                .collect::<Vec<_>>(),
            [
                "network \"web\": nptv6 mapping 2001:db8:a::/80 → 2001:db8:b::/80 (follows the uplink prefix)"
            ]
        );
        assert_eq!(m.get("web").unwrap().since, t1);
        assert_eq!(m.get("web").unwrap().changes, 1);
        assert!(
            m.follow(std::slice::from_ref(&b), t1).is_empty(),
            "logged once"
        );
        let none = plan("web", "fd00::/80", PrefixSource::Uplink, None);
        assert_eq!(m.follow(&[none], t1)[0].new, None);
        assert!(
            m.follow(&[], t1).is_empty(),
            "a network that goes is no move"
        );
        assert!(m.get("web").is_none());
    }
}
