//! Per-container egress addresses: the container label
//! `dock6.egress-address=ADDR` makes a nat66 container's new connections out
//! of the uplink come from ADDR (a mail server that needs its rDNS, a service
//! allow-listed by address) instead of the uplink's default source. One map
//! keyed by container address, one rule: a labelled container adds map
//! elements, never rules.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use super::mode::is_ula;
use super::ports::ContainerPlan;
use super::{Mode, NetworkPlan, Note};
use crate::snapshot::Interface;
use crate::text::quoted;

pub const EGRESS_LABEL: &str = "dock6.egress-address";

/// `container address : egress address`, for the map `egress_addresses`.
/// A label whose address is not a global address of the uplink is refused
/// for that container with a warning (its egress keeps the default).
pub(super) fn egress_addresses(
    uplink: Option<&Interface>,
    networks: &[NetworkPlan],
    containers: &[ContainerPlan],
    notes: &mut Vec<Note>,
) -> BTreeMap<Ipv6Addr, Ipv6Addr> {
    let mut out = BTreeMap::new();
    for c in containers {
        let Some(value) = &c.egress_label else {
            continue;
        };
        let refuse = |why: String| {
            Note::warn(format!(
                "container {}: label {EGRESS_LABEL}={} refused: {why}; its egress uses the default",
                quoted(&c.name),
                quoted(value)
            ))
        };
        let address = match egress_address(value, uplink) {
            Ok(a) => a,
            Err(why) => {
                notes.push(refuse(why));
                continue;
            }
        };
        let natted: Vec<Ipv6Addr> = c
            .endpoints
            .iter()
            .filter(|e| {
                networks
                    .iter()
                    .any(|n| n.name == e.network && natted_out(n))
            })
            .map(|e| e.address)
            .collect();
        if natted.is_empty() {
            notes.push(refuse(
                "the container has no address on a nat66 network that is NATed out of the uplink"
                    .into(),
            ));
        }
        out.extend(natted.into_iter().map(|a| (a, address)));
    }
    out
}

/// Whether the network's egress is NAT66'ed out of the uplink (where the
/// label can choose the source).
pub(super) fn natted_out(n: &NetworkPlan) -> bool {
    n.mode == Mode::Nat66 && n.masquerade && !n.internal
}

/// The label's address, if it is a global address of the uplink.
fn egress_address(value: &str, uplink: Option<&Interface>) -> Result<Ipv6Addr, String> {
    let address: Ipv6Addr = value
        .trim()
        .parse()
        .map_err(|_| "not an IPv6 address".to_string())?;
    let Some(uplink) = uplink else {
        return Err("there is no uplink".into());
    };
    let global = !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address.is_unicast_link_local()
        || is_ula(&address.into()));
    if !global || !uplink.addresses.iter().any(|a| a.addr() == address) {
        return Err(format!(
            "{address} is not a global address on the uplink {}",
            uplink.name
        ));
    }
    Ok(address)
}
