//! One container's part of the plan: every element it contributes to the
//! table, its proxy-NDP entries and its notes. A function of the container
//! and the [`Context`] alone, so a part stays valid until either changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use super::super::egress::egress_addresses;
use super::super::guard::onlink_endpoints;
use super::super::host::{Others, proxy_entries};
use super::super::ports::{Listen, container_plan};
use super::super::{NetworkPlan, Note, ProxyEntry};
use compact_str::CompactString;

use super::index::Pairs;
use crate::nft::L4Proto;
use crate::snapshot::{Container, Interface};
use crate::text::quoted;

/// What every container's part is planned from: the networks and the host
/// facts that containers' decisions read. When it changes, every part is
/// planned again; when only containers change, only theirs are.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::plan) struct Context {
    pub networks: Vec<NetworkPlan>,
    pub uplink: Option<String>,
    /// The uplink's addresses and on-link prefixes (its neighbours are in
    /// `others`; `accept_ra` is not read for containers, and left out).
    pub uplink_facts: Option<Interface>,
    pub others: Others,
    /// Networks with a subnet that covers a link prefix of the host.
    pub link_covering: BTreeSet<String>,
}

impl Context {
    pub fn new(
        networks: Vec<NetworkPlan>,
        uplink: Option<String>,
        uplink_facts: Option<&Interface>,
        others: Others,
        link_covering: BTreeSet<String>,
    ) -> Context {
        let uplink_facts = uplink_facts.map(|u| Interface {
            name: u.name.clone(),
            accept_ra: None,
            addresses: u.addresses.clone(),
            onlink_prefixes: u.onlink_prefixes.clone(),
            dynamic_prefixes: u.dynamic_prefixes.clone(),
            deprecated_addresses: u.deprecated_addresses.clone(),
            ..Interface::default()
        });
        Context {
            networks,
            uplink,
            uplink_facts,
            others,
            link_covering,
        }
    }
}

pub(super) type DnatAnyKey = (L4Proto, u16);
pub(super) type DnatAddrKey = (Ipv6Addr, L4Proto, u16);
/// Where a published port goes: the container's address and port.
pub(super) type DnatTo = (Ipv6Addr, u16);

/// (Boxed slices, not vectors: the agent keeps one part per container.)
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Part {
    pub name: CompactString,
    /// Its addresses, when `dock6.expose=false` (or malformed).
    pub sealed: Box<[Ipv6Addr]>,
    pub open: Box<[(Ipv6Addr, L4Proto, u16)]>,
    pub dnat_any: Box<[(DnatAnyKey, DnatTo)]>,
    pub dnat_addr: Box<[(DnatAddrKey, DnatTo)]>,
    /// `container address → egress address` (label `dock6.egress-address`).
    pub egress: Box<[(Ipv6Addr, Ipv6Addr)]>,
    pub onlink: Box<[Ipv6Addr]>,
    pub proxies: Box<[ProxyEntry]>,
    pub notes: Box<[Note]>,
}

impl Part {
    /// Nothing to keep: no element, no entry, no note.
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty() && !self.contributes()
    }

    pub fn contributes(&self) -> bool {
        !(self.sealed.is_empty()
            && self.open.is_empty()
            && self.dnat_any.is_empty()
            && self.dnat_addr.is_empty()
            && self.egress.is_empty()
            && self.onlink.is_empty()
            && self.proxies.is_empty())
    }
}

pub(super) fn plan_part(container: &Container, ctx: &Context) -> Part {
    let mut notes = Vec::new();
    let plan = container_plan(container, &ctx.networks, &mut notes);
    let name = CompactString::from(container.name.as_str());
    if plan.endpoints.is_empty() {
        return Part {
            name,
            notes: notes.into(),
            ..Part::default()
        };
    }
    let uplink = ctx.uplink_facts.as_ref();
    let one = std::slice::from_ref(&plan);
    let egress: Box<[_]> = egress_addresses(uplink, &ctx.networks, one, &mut notes)
        .into_iter()
        .collect();
    let proxies = proxy_entries(
        &ctx.others,
        ctx.uplink.as_deref(),
        uplink,
        &ctx.networks,
        one,
        &mut notes,
    );
    let onlink = onlink_endpoints(&plan, &ctx.link_covering, &ctx.others);
    let mut sealed = Vec::new();
    if plan.sealed {
        sealed = plan.endpoints.iter().map(|e| e.address).collect();
        sealed.sort_unstable();
        sealed.dedup();
    }
    let (dnat_any, dnat_addr) = dnat_entries(&plan.name, &plan.published, &mut notes);
    Part {
        name,
        sealed: sealed.into(),
        open: plan.open.into_iter().collect(),
        dnat_any: dnat_any.into(),
        dnat_addr: dnat_addr.into(),
        egress,
        onlink: onlink.into(),
        proxies: proxies.into(),
        notes: notes.into(),
    }
}

/// The container's DNAT map entries. A host port it publishes twice to
/// different places keeps the first (the kernel refuses duplicate keys).
fn dnat_entries(
    name: &str,
    published: &[super::super::ports::Published],
    notes: &mut Vec<Note>,
) -> (Pairs<DnatAnyKey, DnatTo>, Pairs<DnatAddrKey, DnatTo>) {
    let mut any: BTreeMap<DnatAnyKey, DnatTo> = BTreeMap::new();
    let mut addr: BTreeMap<DnatAddrKey, DnatTo> = BTreeMap::new();
    for p in published {
        let to = (p.target, p.container_port);
        let existing = match p.listen {
            Listen::Any => *any.entry((p.proto, p.host_port)).or_insert(to),
            Listen::Addr(a) => *addr.entry((a, p.proto, p.host_port)).or_insert(to),
        };
        if existing != to {
            notes.push(conflict_note(name, p.host_port, p.proto, name));
        }
    }
    (any.into_iter().collect(), addr.into_iter().collect())
}

/// The warning for a host port that `owner` already publishes elsewhere.
pub(super) fn conflict_note(name: &str, host_port: u16, proto: L4Proto, owner: &str) -> Note {
    Note::warn(format!(
        "container {}: host port {host_port}/{} is already published by {}; skipped",
        quoted(name),
        proto.name(),
        quoted(owner)
    ))
}
