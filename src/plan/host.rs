//! Host-side state: sysctls (in the order they must be applied) and
//! proxy-NDP entries.

use std::collections::BTreeSet;

use super::ports::ContainerPlan;
use super::{Mode, NetworkPlan, Note, ProxyEntry, SysctlSetting};
use crate::snapshot::Interface;

pub(super) fn sysctls(
    uplink_facts: Option<&Interface>,
    uplink: Option<&str>,
    networks: &[NetworkPlan],
    notes: &mut Vec<Note>,
) -> Vec<SysctlSetting> {
    let managed = networks.iter().any(|n| n.mode != Mode::Off);
    if !managed {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(uplink) = uplink {
        let current = uplink_facts.and_then(|f| f.accept_ra);
        if current == Some(0) {
            notes.push(Note::info(format!(
                "uplink {uplink}: accept_ra is 0 (static configuration); left as it is"
            )));
        } else {
            out.push(SysctlSetting {
                scope: uplink.to_string(),
                name: "accept_ra".into(),
                value: 2,
                current,
                keep_if: Some(0),
                reason:
                    "keep the RA-learned default route once forwarding is on (before forwarding)"
                        .into(),
            });
        }
    }
    out.push(SysctlSetting {
        scope: "all".into(),
        name: "forwarding".into(),
        value: 1,
        current: None,
        keep_if: None,
        reason: "route container traffic".into(),
    });
    if let Some(uplink) = uplink
        && networks.iter().any(|n| n.mode == Mode::NdpProxy)
    {
        out.push(SysctlSetting {
            scope: uplink.to_string(),
            name: "proxy_ndp".into(),
            value: 1,
            current: None,
            keep_if: None,
            reason: "answer neighbour solicitations for ndp-proxy containers".into(),
        });
    }
    out
}

/// One entry per container address on a (non-internal) ndp-proxy network,
/// on the uplink. Sealed containers get one too: their own outbound replies
/// need the upstream router to find them.
pub(super) fn proxy_entries(
    uplink: Option<&str>,
    networks: &[NetworkPlan],
    containers: &[ContainerPlan],
) -> Vec<ProxyEntry> {
    let Some(uplink) = uplink else {
        return Vec::new();
    };
    let proxied: BTreeSet<&str> = networks
        .iter()
        .filter(|n| n.mode == Mode::NdpProxy && !n.internal)
        .map(|n| n.name.as_str())
        .collect();
    let mut entries: Vec<ProxyEntry> = containers
        .iter()
        .flat_map(|c| {
            c.endpoints
                .iter()
                .filter(|e| proxied.contains(e.network.as_str()))
                .map(|e| ProxyEntry {
                    interface: uplink.to_string(),
                    address: e.address,
                    container: c.name.clone(),
                    network: e.network.clone(),
                })
        })
        .collect();
    entries.sort();
    entries.dedup_by(|a, b| a.address == b.address);
    entries
}
