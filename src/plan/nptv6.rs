//! Mode `nptv6`: a network's subnet translated 1:1 onto an equally long
//! global prefix (the kernel's netmap range: `snat ip6 prefix to …` out of
//! the uplink, `dnat ip6 prefix to …` in). Stateless and stable: a container
//! keeps its address inside Docker and is always seen at the same mapped
//! address outside.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::mode::{NPTV6_PREFIX_LABEL, is_link_local};
use super::{NetworkPlan, Policy};
use crate::snapshot::{HostFacts, Network, Snapshot};
use crate::text::quoted;

/// The prefix `network` (mode `nptv6`, with these IPv6 `subnets`) is mapped
/// onto: the config's `prefix`, else its `dock6.nptv6-prefix` label. `Err`
/// says why the network cannot be mapped (it is then refused as a whole).
pub(super) fn mapped_prefix(
    config: &Policy,
    network: &Network,
    subnets: &[Ipv6Net],
    snapshot: &Snapshot,
    planned: &[NetworkPlan],
) -> Result<Ipv6Net, String> {
    let prefix = match config.network_prefixes.get(&network.name) {
        Some(p) => *p,
        None => {
            let Some(text) = network.labels.get(NPTV6_PREFIX_LABEL) else {
                return Err(format!(
                    "mode nptv6 needs a prefix (`prefix` in its [networks.{}] config table, or the label {NPTV6_PREFIX_LABEL})",
                    network.name
                ));
            };
            text.trim().parse::<Ipv6Net>().map_err(|_| {
                format!(
                    "label {NPTV6_PREFIX_LABEL}={} is not an IPv6 prefix like 2001:db8:5::/64",
                    quoted(text)
                )
            })?
        }
    };
    check(prefix, subnets, snapshot, planned)?;
    Ok(prefix.trunc())
}

/// Why `prefix` cannot be the mapping of `subnets`, if so.
fn check(
    prefix: Ipv6Net,
    subnets: &[Ipv6Net],
    snapshot: &Snapshot,
    planned: &[NetworkPlan],
) -> Result<(), String> {
    let [subnet] = subnets else {
        return Err(format!(
            "mode nptv6 maps exactly one IPv6 subnet, and the network has {}",
            subnets.len()
        ));
    };
    if prefix.prefix_len() != subnet.prefix_len() {
        return Err(format!(
            "nptv6 prefix {} is /{} but its subnet {subnet} is /{}: a 1:1 mapping needs equal lengths",
            prefix.trunc(),
            prefix.prefix_len(),
            subnet.prefix_len()
        ));
    }
    let p = prefix.trunc();
    let first = p.addr().segments()[0];
    if is_link_local(&p) || first & 0xff00 == 0xff00 || first & 0xff00 == 0 {
        return Err(format!("nptv6 prefix {p} is not a global unicast prefix"));
    }
    if let Some((name, s)) = docker_subnets(snapshot).find(|(_, s)| overlaps(&p, s)) {
        return Err(format!(
            "nptv6 prefix {p} overlaps network {}'s subnet {s}",
            quoted(name)
        ));
    }
    if let Some(other) = planned
        .iter()
        .find(|n| n.nptv6.is_some_and(|o| overlaps(&p, &o)))
    {
        return Err(format!(
            "nptv6 prefix {p} overlaps network {}'s nptv6 prefix",
            quoted(&other.name)
        ));
    }
    if let Some(a) = foreign_address(&snapshot.host, &p) {
        return Err(format!(
            "nptv6 prefix {p} holds {a}, which is not a container's (the host's own address or the default router's)"
        ));
    }
    Ok(())
}

fn docker_subnets(snapshot: &Snapshot) -> impl Iterator<Item = (&str, Ipv6Net)> {
    snapshot.networks.iter().flat_map(|n| {
        n.ipv6_subnets()
            .into_iter()
            .map(move |s| (n.name.as_str(), s))
    })
}

fn overlaps(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// An address inside `prefix` that belongs to the host or its router: a
/// prefix DNAT would take its traffic away.
fn foreign_address(host: &HostFacts, prefix: &Ipv6Net) -> Option<Ipv6Addr> {
    host.interfaces
        .iter()
        .flat_map(|i| i.addresses.iter().map(|a| a.addr()))
        .chain(host.default_routers.iter().copied())
        .find(|a| prefix.contains(a))
}

/// `address` (inside `from`) translated into `to`: `to`'s network bits, the
/// address's host bits. Both prefixes have the same length.
pub fn map_address(address: Ipv6Addr, from: &Ipv6Net, to: &Ipv6Net) -> Ipv6Addr {
    let host_mask = u128::from(from.hostmask());
    let network = u128::from(to.network()) & !host_mask;
    Ipv6Addr::from(network | (u128::from(address) & host_mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_their_host_bits() {
        let from: Ipv6Net = "fd00:5::/64".parse().unwrap();
        let to: Ipv6Net = "2001:db8:5::/64".parse().unwrap();
        let a: Ipv6Addr = "fd00:5::a:2".parse().unwrap();
        assert_eq!(
            map_address(a, &from, &to),
            "2001:db8:5::a:2".parse::<Ipv6Addr>().unwrap()
        );
        let from: Ipv6Net = "fd00:5::/80".parse().unwrap();
        let to: Ipv6Net = "2001:db8:1:0:5::/80".parse().unwrap();
        let a: Ipv6Addr = "fd00:5::2".parse().unwrap();
        assert_eq!(
            map_address(a, &from, &to),
            "2001:db8:1:0:5:0:0:2".parse::<Ipv6Addr>().unwrap()
        );
    }
}
