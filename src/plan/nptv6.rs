//! Mode `nptv6`: a network's subnet translated 1:1 onto an equally long
//! global prefix (the kernel's netmap range: `snat ip6 prefix to …` out of
//! the uplink, `dnat ip6 prefix to …` in). Stateless and stable: a container
//! keeps its address inside Docker and is always seen at the same mapped
//! address outside.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::mode::{NPTV6_PREFIX_LABEL, is_global_unicast, is_link_local};
use super::{NetworkPlan, Policy, PrefixSource};
use crate::snapshot::{HostFacts, Interface, Network, Snapshot};
use crate::text::quoted;

/// Where `network`'s mapped prefix comes from: the config's `prefix`, else
/// its `dock6.nptv6-prefix` label. `Err` says why it has none that works.
pub(super) fn prefix_source(config: &Policy, network: &Network) -> Result<PrefixSource, String> {
    if let Some(source) = config.network_prefixes.get(&network.name) {
        return Ok(*source);
    }
    let Some(text) = network.labels.get(NPTV6_PREFIX_LABEL) else {
        return Err(format!(
            "mode nptv6 needs a prefix (`prefix` in its [networks.{}] config table, or the label {NPTV6_PREFIX_LABEL})",
            network.name
        ));
    };
    PrefixSource::parse(text).map_err(|why| format!("label {NPTV6_PREFIX_LABEL}: {why}"))
}

/// The prefix `network` (mode `nptv6`, with these IPv6 `subnets`) is mapped
/// onto now. `Ok(None)`: it follows the host's prefix and the host has none
/// right now (the network waits, closed). `Err` says why the network cannot
/// be mapped (it is then refused as a whole).
pub(super) fn mapped_prefix(
    source: PrefixSource,
    subnets: &[Ipv6Net],
    uplink: Option<&Interface>,
    snapshot: &Snapshot,
    planned: &[NetworkPlan],
) -> Result<Option<Ipv6Net>, String> {
    let [subnet] = subnets else {
        return Err(format!(
            "mode nptv6 maps exactly one IPv6 subnet, and the network has {}",
            subnets.len()
        ));
    };
    let prefix = match source {
        PrefixSource::Fixed(prefix) => prefix,
        PrefixSource::Uplink => {
            let candidates = uplink.map(uplink_prefixes).unwrap_or_default();
            match provider_prefix(&candidates, subnet, "the uplink's prefix")? {
                Some(provider) => embed(subnet, &provider),
                None => return Ok(None),
            }
        }
        PrefixSource::Delegated => {
            let candidates = snapshot.host.delegated_prefixes.clone();
            match provider_prefix(&candidates, subnet, "the delegated prefix")? {
                Some(provider) => embed(subnet, &provider),
                None => return Ok(None),
            }
        }
    };
    check(prefix, subnet, snapshot, planned)?;
    Ok(Some(prefix.trunc()))
}

/// The uplink's global on-link prefixes, best first: those the network
/// handed out (router advertisement, DHCPv6) before the host's own static
/// ones — `uplink` means the provider's prefix; then those where the host
/// has a preferred address, before those without one yet, before those whose
/// addresses are all deprecated (a renumbering deprecates the old prefix:
/// the mapping moves to the new one at once); then the lowest.
fn uplink_prefixes(uplink: &Interface) -> Vec<Ipv6Net> {
    let state = |p: &Ipv6Net| {
        let inside: Vec<Ipv6Addr> = uplink
            .addresses
            .iter()
            .map(|a| a.addr())
            .filter(|a| p.contains(a))
            .collect();
        if inside
            .iter()
            .any(|a| !uplink.deprecated_addresses.contains(a))
        {
            2
        } else if inside.is_empty() {
            1
        } else {
            0
        }
    };
    let mut out: Vec<Ipv6Net> = uplink
        .onlink_prefixes
        .iter()
        .map(Ipv6Net::trunc)
        .filter(is_global_unicast)
        .collect();
    out.sort_by_key(|p| {
        (
            std::cmp::Reverse(uplink.dynamic_prefixes.iter().any(|d| d.trunc() == *p)),
            std::cmp::Reverse(state(p)),
            *p,
        )
    });
    out.dedup();
    out
}

/// The first of `candidates` (best first) that `subnet` fits under; `None`
/// when there is none at all; `Err` when there are some but `subnet` is
/// shorter than each.
fn provider_prefix(
    candidates: &[Ipv6Net],
    subnet: &Ipv6Net,
    what: &str,
) -> Result<Option<Ipv6Net>, String> {
    if let Some(p) = candidates
        .iter()
        .find(|p| p.prefix_len() <= subnet.prefix_len())
    {
        return Ok(Some(*p));
    }
    match candidates.first() {
        None => Ok(None),
        Some(p) => Err(format!(
            "its subnet {subnet} is shorter than {what} {p}: the subnet must be as long or longer, its extra bits choose where it lands inside the prefix"
        )),
    }
}

/// `subnet` moved under `provider`: the provider's network bits, then the
/// subnet's own bits between the two lengths, as long as the subnet.
/// `fd00:b6:7:0:d6::/80` under `2001:db8:1::/64` is `2001:db8:1:0:d6::/80`.
pub fn embed(subnet: &Ipv6Net, provider: &Ipv6Net) -> Ipv6Net {
    let provider_bits = u128::from(provider.netmask());
    let network = (u128::from(provider.network()) & provider_bits)
        | (u128::from(subnet.network()) & !provider_bits);
    Ipv6Net::new(Ipv6Addr::from(network), subnet.prefix_len())
        .expect("the subnet's length is a valid prefix length")
        .trunc()
}

/// Why `prefix` cannot be the mapping of `subnet`, if so.
fn check(
    prefix: Ipv6Net,
    subnet: &Ipv6Net,
    snapshot: &Snapshot,
    planned: &[NetworkPlan],
) -> Result<(), String> {
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

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn a_subnet_lands_under_the_provider_prefix_by_its_own_extra_bits() {
        assert_eq!(
            embed(&net("fd00:b6:7:0:d6::/80"), &net("2001:db8:1::/64")),
            net("2001:db8:1:0:d6::/80")
        );
        assert_eq!(
            embed(&net("fd00:b6:7:5::/64"), &net("2001:db8:100::/56")),
            net("2001:db8:100:5::/64")
        );
        assert_eq!(
            embed(&net("fd00:b6:7:5::/64"), &net("2001:db8:100::/64")),
            net("2001:db8:100::/64")
        );
        // Host bits of an odd provider prefix are not carried over.
        assert_eq!(
            embed(&net("fd00:b6:7:5::/64"), &net("2001:db8:100:ff::/56")),
            net("2001:db8:100:5::/64")
        );
    }

    fn uplink(
        onlink: &[&str],
        addresses: &[&str],
        dynamic: &[&str],
        deprecated: &[&str],
    ) -> Interface {
        Interface {
            name: "eth0".into(),
            onlink_prefixes: onlink.iter().map(|s| net(s)).collect(),
            addresses: addresses.iter().map(|s| net(s)).collect(),
            dynamic_prefixes: dynamic.iter().map(|s| net(s)).collect(),
            deprecated_addresses: deprecated.iter().map(|s| s.parse().unwrap()).collect(),
            ..Interface::default()
        }
    }

    #[test]
    fn the_provider_prefix_is_preferred_over_static_and_deprecated_ones() {
        // A static prefix, the old provider prefix (deprecated) and the new
        // one (its address still in duplicate address detection).
        let up = uplink(
            &[
                "2001:db8:1::/64",
                "2001:db8:a::/64",
                "2001:db8:b::/64",
                "fd00:9::/64",
                "fe80::/64",
            ],
            &["2001:db8:1::10/64", "2001:db8:a::10/64"],
            &["2001:db8:a::/64", "2001:db8:b::/64"],
            &["2001:db8:a::10"],
        );
        assert_eq!(
            uplink_prefixes(&up),
            vec![
                net("2001:db8:b::/64"),
                net("2001:db8:a::/64"),
                net("2001:db8:1::/64")
            ]
        );
        // Before the renumbering: the provider's prefix with its preferred address.
        let up = uplink(
            &["2001:db8:1::/64", "2001:db8:a::/64"],
            &["2001:db8:1::10/64", "2001:db8:a::10/64"],
            &["2001:db8:a::/64"],
            &[],
        );
        assert_eq!(uplink_prefixes(&up)[0], net("2001:db8:a::/64"));
        // Two preferred provider prefixes: the lowest, whatever the order.
        let up = uplink(
            &["2001:db8:c::/64", "2001:db8:b::/64"],
            &["2001:db8:c::10/64", "2001:db8:b::10/64"],
            &["2001:db8:b::/64", "2001:db8:c::/64"],
            &[],
        );
        assert_eq!(uplink_prefixes(&up)[0], net("2001:db8:b::/64"));
    }

    #[test]
    fn a_subnet_shorter_than_every_provider_prefix_is_refused() {
        let candidates = [net("2001:db8:1::/64")];
        let e =
            provider_prefix(&candidates, &net("fd00:1::/56"), "the uplink's prefix").unwrap_err();
        assert!(
            e.contains("fd00:1::/56 is shorter than the uplink's prefix 2001:db8:1::/64"),
            "{e}"
        );
        assert_eq!(provider_prefix(&[], &net("fd00:1::/64"), "x"), Ok(None));
        // A longer candidate is skipped for one that fits.
        let candidates = [net("2001:db8:1::/72"), net("2001:db8:2::/64")];
        assert_eq!(
            provider_prefix(&candidates, &net("fd00:1::/64"), "x"),
            Ok(Some(net("2001:db8:2::/64")))
        );
    }

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
