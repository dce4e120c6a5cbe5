//! The planner, kept between passes: the whole desired state as one
//! container-independent base (networks, chains, sysctls: planned anew at
//! every pass, they are few) and one part per container (planned again
//! only when that container, or the context every part reads, changed).
//!
//! [`plan`](super::plan) is the same planner run once over a whole
//! snapshot, so the golden files test this code; the agent keeps one and
//! updates it with the containers each pass names, which makes a pass with
//! one changed container cost the same at 10 and at 10,000 containers.
//! Tests check that any sequence of updates ends where planning the final
//! snapshot from scratch does, and that the element changes each update
//! reports lead exactly from the old table to the new one.

mod index;
mod part;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::Arc;

use index::{Claims, Counted, Owners, Pairs, Slot};
use part::{Context, DnatAddrKey, DnatAnyKey, DnatTo, Part, conflict_note, plan_part};

use super::guard::{Guard, SET_ONLINK_ENDPOINTS};
use super::host::{self, Others};
use super::networks::{Networks, managed_networks};
use super::ports::starting_ports;
use super::sets::{
    self, DnatTarget, MAP_DNAT_ADDR, MAP_DNAT_ANY, MAP_EGRESS_ADDRESSES, SET_ND_TARGETS,
    SET_OPEN_PORTS, SET_ORDER, SET_SEALED,
};
use super::{NaSource, Note, Plan, Policy, ProxyEntry, SysctlSetting, ruleset};
use crate::nft::{Chain, Element, ElementChange, L4Proto, Set, TABLE_NAME, Table, TableDiff};
use crate::snapshot::{Container, Snapshot};
use crate::text::quoted;

/// What one update changed, for the kernel.
#[derive(Debug, Default, PartialEq)]
pub struct Update {
    /// The element changes ([`ElementChanges::into_batch`]).
    pub changes: ElementChanges,
    /// The chains or the list of sets changed: only a whole-table replace
    /// gets the kernel there.
    pub shape_changed: bool,
    /// Published-port mappings no longer in the table: their conntrack
    /// entries must go (their flows must not stick to a container that is gone).
    pub removed_dnat: Vec<DnatTarget>,
    /// The plan's notes may differ from the last update's.
    pub notes_changed: bool,
    /// Containers whose parts changed (came, went or differ).
    pub replanned: usize,
}

/// A container as the status shows it, read off its part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerShown {
    /// `(host address or None for any, proto, host port, container port)`,
    /// the mappings this container holds in the DNAT maps.
    pub published: Vec<(Option<Ipv6Addr>, L4Proto, u16, u16)>,
    /// Open at its own addresses: `(address, proto, port)`.
    pub open: Vec<(Ipv6Addr, L4Proto, u16)>,
    pub sealed: bool,
}

/// The container-independent half of the plan.
#[derive(Debug)]
struct Base {
    context: Context,
    notes: Vec<Note>,
    sysctls: Vec<SysctlSetting>,
    sysctl_notes: Vec<Note>,
    chains: Vec<Chain>,
    network_sets: Vec<Set>,
    egress_map: bool,
    /// The table has set `nd_targets` (dock6 answers for proxied addresses).
    nd_targets: bool,
    docker_only: bool,
    na_source: NaSource,
}

impl Base {
    fn new(config: &Policy, snapshot: &Snapshot) -> Base {
        let mut notes = Vec::new();
        let uplink = config
            .uplink
            .clone()
            .or_else(|| snapshot.host.default_route_interface.clone());
        if uplink.is_none() {
            notes.push(Note::warn(
                "no uplink: no IPv6 default route and no `uplink` in the config; NAT66 and NDP proxying are not planned",
            ));
        }
        let uplink_facts = uplink.as_deref().and_then(|u| snapshot.host.interface(u));
        let Networks {
            plans: networks,
            closed_bridges,
        } = managed_networks(config, snapshot, uplink_facts, &mut notes);
        let guard = Guard::new(&snapshot.host, &networks, &closed_bridges);
        let managed: Vec<_> = networks.iter().filter(|n| n.mode.filtered()).collect();
        let chains = ruleset::chains(config, uplink.as_deref(), &managed, &guard);
        let starting: Vec<_> = snapshot
            .starting
            .iter()
            .flat_map(|c| starting_ports(c, &networks))
            .collect();
        let network_sets = sets::network_sets(&managed, &guard, &starting);
        let egress_map = ruleset::has_egress_map(uplink.as_deref(), &managed);
        let nd_targets = ruleset::answers_itself_on(config, uplink.as_deref()).is_some();
        let mut sysctl_notes = Vec::new();
        let sysctls = host::sysctls(
            &snapshot.host,
            uplink_facts,
            uplink.as_deref(),
            &networks,
            &mut sysctl_notes,
        );
        let others = Others::new(&snapshot.host, uplink_facts);
        let docker_only = guard.docker_only;
        let context = Context::new(networks, uplink, uplink_facts, others, guard.link_covering);
        Base {
            context,
            notes,
            sysctls,
            sysctl_notes,
            chains,
            network_sets,
            egress_map,
            nd_targets,
            docker_only,
            na_source: config.na_source,
        }
    }

    fn same_shape(&self, other: &Base) -> bool {
        self.chains == other.chains
            && self.egress_map == other.egress_map
            && self.nd_targets == other.nd_targets
    }
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    part: Box<Part>,
}

/// The elements containers contribute, with who contributes each.
#[derive(Debug, Default)]
struct Index {
    sealed: Counted<Ipv6Addr>,
    open: Counted<(Ipv6Addr, L4Proto, u16)>,
    onlink: Counted<Ipv6Addr>,
    dnat_any: Claims<DnatAnyKey, DnatTo>,
    dnat_addr: Claims<DnatAddrKey, DnatTo>,
    egress: Claims<Ipv6Addr, Ipv6Addr>,
    proxies: Claims<Ipv6Addr, ProxyEntry>,
    /// How many `dnat_addr` keys map to each mapping (few: bindings to one
    /// host address), to tell whether a mapping left one key but not the maps.
    addr_targets: BTreeMap<DnatTarget, u32>,
}

impl Index {
    fn add(&mut self, slot: Slot, part: &Part, owners: &Owners) {
        part.sealed.iter().for_each(|a| self.sealed.add(a));
        part.open.iter().for_each(|k| self.open.add(k));
        part.onlink.iter().for_each(|a| self.onlink.add(a));
        for (k, to) in &part.dnat_any {
            self.dnat_any.claim(k, slot, *to, owners);
        }
        for (k, to) in &part.dnat_addr {
            self.dnat_addr.claim(k, slot, *to, owners);
        }
        for (a, e) in &part.egress {
            self.egress.claim(a, slot, *e, owners);
        }
        for p in &part.proxies {
            self.proxies.claim(&p.address, slot, p.clone(), owners);
        }
    }

    fn remove(&mut self, slot: Slot, part: &Part) {
        part.sealed.iter().for_each(|a| self.sealed.remove(a));
        part.open.iter().for_each(|k| self.open.remove(k));
        part.onlink.iter().for_each(|a| self.onlink.remove(a));
        for (k, to) in &part.dnat_any {
            self.dnat_any.release(k, slot, to);
        }
        for (k, to) in &part.dnat_addr {
            self.dnat_addr.release(k, slot, to);
        }
        for (a, e) in &part.egress {
            self.egress.release(a, slot, e);
        }
        for p in &part.proxies {
            self.proxies.release(&p.address, slot, p);
        }
    }

    /// The element changes since the last call, and the mappings that went
    /// away with them.
    fn take_changes(
        &mut self,
        egress_map: bool,
        nd_targets: bool,
    ) -> (ElementChanges, Vec<DnatTarget>) {
        let dnat_any = self.dnat_any.take_changes();
        let dnat_addr = self.dnat_addr.take_changes();
        let removed = self.count_targets(&dnat_any.0, &dnat_addr.0, &dnat_addr.1);
        let egress = self.egress.take_changes();
        let proxied = proxied_address_changes(self.proxies.take_changes());
        let changes = ElementChanges {
            network: Vec::new(),
            sealed: self.sealed.take_changes(),
            open: self.open.take_changes(),
            onlink: self.onlink.take_changes(),
            dnat_any,
            dnat_addr,
            // Without the map (no NATed egress), labels add nothing to the kernel.
            egress: if egress_map {
                egress
            } else {
                Default::default()
            },
            // Without the set (dock6 does not answer), proxies add nothing to the table.
            nd_targets: if nd_targets {
                proxied
            } else {
                Default::default()
            },
        };
        (changes, removed)
    }

    /// The mappings of the removed entries that no key maps to any more
    /// (the maps as they are now).
    fn count_targets(
        &mut self,
        any_gone: &[(DnatAnyKey, DnatTo)],
        addr_gone: &[(DnatAddrKey, DnatTo)],
        addr_came: &[(DnatAddrKey, DnatTo)],
    ) -> Vec<DnatTarget> {
        let target = |(proto, host_port): DnatAnyKey, (target, target_port): DnatTo| DnatTarget {
            proto,
            host_port,
            target,
            target_port,
        };
        let addr_target = |((_, p, port), to): &(DnatAddrKey, DnatTo)| target((*p, *port), *to);
        for t in addr_came.iter().map(addr_target) {
            *self.addr_targets.entry(t).or_insert(0) += 1;
        }
        for t in addr_gone.iter().map(addr_target) {
            if let Some(count) = self.addr_targets.get_mut(&t) {
                *count -= 1;
                if *count == 0 {
                    self.addr_targets.remove(&t);
                }
            }
        }
        let gone = any_gone
            .iter()
            .map(|(k, to)| target(*k, *to))
            .chain(addr_gone.iter().map(addr_target));
        let mut removed: Vec<DnatTarget> = gone
            .filter(|t| {
                let any = self.dnat_any.winner(&(t.proto, t.host_port));
                let still = any.is_some_and(|(_, to)| *to == (t.target, t.target_port))
                    || self.addr_targets.contains_key(t);
                !still
            })
            .collect();
        removed.sort_unstable();
        removed.dedup();
        removed
    }
}

/// An update's element changes, kept typed (a few bytes each) until the
/// kernel is to get them: a pass that replaces the whole table (the first
/// at 10,000 containers adds every element) never builds them.
#[derive(Debug, Default, PartialEq)]
pub struct ElementChanges {
    network: Vec<ElementChange>,
    sealed: (Vec<Ipv6Addr>, Vec<Ipv6Addr>),
    open: (Vec<OpenKey>, Vec<OpenKey>),
    onlink: (Vec<Ipv6Addr>, Vec<Ipv6Addr>),
    dnat_any: (Pairs<DnatAnyKey, DnatTo>, Pairs<DnatAnyKey, DnatTo>),
    dnat_addr: (Pairs<DnatAddrKey, DnatTo>, Pairs<DnatAddrKey, DnatTo>),
    egress: (Pairs<Ipv6Addr, Ipv6Addr>, Pairs<Ipv6Addr, Ipv6Addr>),
    nd_targets: (Vec<Ipv6Addr>, Vec<Ipv6Addr>),
}

/// The proxied addresses that went and came, from the changes of the proxy
/// entries (an entry that changed but kept its address is no change).
fn proxied_address_changes(
    (gone, came): (Pairs<Ipv6Addr, ProxyEntry>, Pairs<Ipv6Addr, ProxyEntry>),
) -> (Vec<Ipv6Addr>, Vec<Ipv6Addr>) {
    let gone: BTreeSet<Ipv6Addr> = gone.into_iter().map(|(a, _)| a).collect();
    let came: BTreeSet<Ipv6Addr> = came.into_iter().map(|(a, _)| a).collect();
    (
        gone.difference(&came).copied().collect(),
        came.difference(&gone).copied().collect(),
    )
}

type OpenKey = (Ipv6Addr, L4Proto, u16);

impl ElementChanges {
    pub fn len(&self) -> usize {
        self.network.len()
            + self.sealed.0.len()
            + self.sealed.1.len()
            + self.open.0.len()
            + self.open.1.len()
            + self.onlink.0.len()
            + self.onlink.1.len()
            + self.dnat_any.0.len()
            + self.dnat_any.1.len()
            + self.dnat_addr.0.len()
            + self.dnat_addr.1.len()
            + self.egress.0.len()
            + self.egress.1.len()
            + self.nd_targets.0.len()
            + self.nd_targets.1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removals, then additions (a map entry whose value changed is in
    /// both), as one batch takes them.
    pub fn into_batch(self) -> Vec<ElementChange> {
        let mut out = Changes::default();
        out.elements(self.network);
        let (gone, came) = self.sealed;
        out.set(SET_SEALED, gone, came, sets::address_element);
        let (gone, came) = self.open;
        out.set(SET_OPEN_PORTS, gone, came, sets::open_port_element);
        let (gone, came) = self.onlink;
        out.set(SET_ONLINK_ENDPOINTS, gone, came, sets::address_element);
        let (gone, came) = self.dnat_any;
        out.map(MAP_DNAT_ANY, gone, came, sets::dnat_any_element);
        let (gone, came) = self.dnat_addr;
        out.map(MAP_DNAT_ADDR, gone, came, sets::dnat_addr_element);
        let (gone, came) = self.egress;
        out.map(MAP_EGRESS_ADDRESSES, gone, came, sets::egress_element);
        let (gone, came) = self.nd_targets;
        out.set(SET_ND_TARGETS, gone, came, sets::nd_target_element);
        out.into_batch()
    }
}

/// Element changes gathered set by set: removals go before additions.
#[derive(Default)]
struct Changes {
    removes: Vec<ElementChange>,
    adds: Vec<ElementChange>,
}

impl Changes {
    fn set<K>(&mut self, set: &str, gone: Vec<K>, came: Vec<K>, element: fn(&K) -> Element) {
        self.removes
            .extend(gone.iter().map(|k| ElementChange::Remove {
                set: set.to_string(),
                element: element(k),
            }));
        self.adds.extend(came.iter().map(|k| ElementChange::Add {
            set: set.to_string(),
            element: element(k),
        }));
    }

    fn map<K, D>(
        &mut self,
        set: &str,
        gone: Vec<(K, D)>,
        came: Vec<(K, D)>,
        element: fn(&K, &D) -> Element,
    ) {
        self.removes
            .extend(gone.iter().map(|(k, d)| ElementChange::Remove {
                set: set.to_string(),
                element: element(k, d),
            }));
        self.adds
            .extend(came.iter().map(|(k, d)| ElementChange::Add {
                set: set.to_string(),
                element: element(k, d),
            }));
    }

    fn elements(&mut self, changes: Vec<ElementChange>) {
        for change in changes {
            match change {
                ElementChange::Remove { .. } => self.removes.push(change),
                ElementChange::Add { .. } => self.adds.push(change),
            }
        }
    }

    fn into_batch(mut self) -> Vec<ElementChange> {
        self.removes.append(&mut self.adds);
        self.removes
    }
}

/// The desired state, kept up to date one update at a time.
#[derive(Debug, Default)]
pub struct Planner {
    base: Option<Base>,
    /// By container id (shared with `owners`).
    parts: HashMap<Arc<str>, Entry>,
    owners: Owners,
    index: Index,
    /// Notes on the input as a whole (two containers with one id).
    input_notes: Vec<Note>,
    /// Containers whose parts have notes, by id.
    noted: BTreeSet<Arc<str>>,
}

impl Planner {
    /// Brings the plan up to `snapshot`. With `changed`, only the containers
    /// with those ids may differ from the last update (the others are not
    /// looked at): `snapshot.containers` must then be sorted by id, each id
    /// once, as the agent's view of Docker keeps them. Without it, every
    /// container is looked at (and ids seen twice are resolved with a note).
    pub fn update(
        &mut self,
        config: &Policy,
        snapshot: &Snapshot,
        changed: Option<&BTreeSet<String>>,
    ) -> Update {
        let base = Base::new(config, snapshot);
        let old = self.base.take();
        let context_changed = old.as_ref().is_none_or(|o| o.context != base.context);
        let mut update = Update {
            shape_changed: old.as_ref().is_none_or(|o| !o.same_shape(&base)),
            notes_changed: old
                .as_ref()
                .is_none_or(|o| o.notes != base.notes || o.sysctl_notes != base.sysctl_notes),
            ..Update::default()
        };
        let ctx = &base.context;
        match changed {
            Some(ids) if !context_changed => {
                for id in ids {
                    let container = find_by_id(&snapshot.containers, id);
                    self.replan(id, container, ctx, &mut update);
                }
            }
            _ => {
                let (containers, input_notes) = unique_ids(&snapshot.containers);
                update.notes_changed |= input_notes != self.input_notes;
                self.input_notes = input_notes;
                let present: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
                let gone: Vec<Arc<str>> = self
                    .parts
                    .keys()
                    .filter(|id| !present.contains(&***id))
                    .cloned()
                    .collect();
                for id in gone {
                    self.replan(&id, None, ctx, &mut update);
                }
                for c in containers {
                    self.replan(&c.id, Some(c), ctx, &mut update);
                }
            }
        }
        let (mut changes, removed) = self.index.take_changes(base.egress_map, base.nd_targets);
        if let Some(old) = &old {
            changes.network = network_set_changes(&old.network_sets, &base.network_sets);
        }
        update.changes = changes;
        update.removed_dnat = removed;
        self.base = Some(base);
        update
    }

    /// Plans `container` (gone: `None`) again as the container with `id`,
    /// and counts it in `update` when its part changed.
    fn replan(
        &mut self,
        id: &str,
        container: Option<&Container>,
        ctx: &Context,
        update: &mut Update,
    ) {
        let new = container
            .map(|c| plan_part(c, ctx))
            .filter(|p| !p.is_empty());
        let unchanged = match (self.parts.get(id), &new) {
            (Some(old), Some(new)) => *old.part == *new,
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            return;
        }
        update.replanned += 1;
        let had_notes = match self.parts.remove(id) {
            Some(old) => {
                self.index.remove(old.slot, &old.part);
                self.owners.release(old.slot);
                !old.part.notes.is_empty()
            }
            None => false,
        };
        let has_notes = new.as_ref().is_some_and(|p| !p.notes.is_empty());
        let id: Arc<str> = Arc::from(id);
        match has_notes {
            true => self.noted.insert(Arc::clone(&id)),
            false => self.noted.remove(&id),
        };
        if let Some(part) = new {
            let slot = self.owners.take(&part.name, &id);
            self.index.add(slot, &part, &self.owners);
            let part = Box::new(part);
            self.parts.insert(id, Entry { slot, part });
        }
        update.notes_changed |= had_notes || has_notes;
    }

    fn base(&self) -> Option<&Base> {
        self.base.as_ref()
    }

    /// The whole table as planned.
    pub fn table(&self) -> Table {
        let (chains, mut sets) = match self.base() {
            Some(b) => (b.chains.clone(), b.network_sets.clone()),
            None => (Vec::new(), Vec::new()),
        };
        let egress_map = self.base().is_some_and(|b| b.egress_map);
        let nd_targets = self.base().is_some_and(|b| b.nd_targets);
        for mut set in sets::container_sets(egress_map, nd_targets) {
            set.elements = self.elements(&set.name);
            sets.push(set);
        }
        sets.sort_by_key(|s| SET_ORDER.iter().position(|n| *n == s.name));
        Table {
            name: TABLE_NAME.to_string(),
            sets,
            chains,
        }
    }

    /// The elements containers contribute to `set`, in order.
    fn elements(&self, set: &str) -> Vec<Element> {
        let i = &self.index;
        match set {
            SET_SEALED => i
                .sealed
                .keys()
                .into_iter()
                .map(sets::address_element)
                .collect(),
            SET_OPEN_PORTS => i
                .open
                .keys()
                .into_iter()
                .map(sets::open_port_element)
                .collect(),
            SET_ONLINK_ENDPOINTS => i
                .onlink
                .keys()
                .into_iter()
                .map(sets::address_element)
                .collect(),
            MAP_DNAT_ANY => i
                .dnat_any
                .winners()
                .into_iter()
                .map(|(k, (_, to))| sets::dnat_any_element(k, to))
                .collect(),
            MAP_DNAT_ADDR => i
                .dnat_addr
                .winners()
                .into_iter()
                .map(|(k, (_, to))| sets::dnat_addr_element(k, to))
                .collect(),
            MAP_EGRESS_ADDRESSES => i
                .egress
                .winners()
                .into_iter()
                .map(|(k, (_, e))| sets::egress_element(k, e))
                .collect(),
            SET_ND_TARGETS => {
                let mut addresses: Vec<&Ipv6Addr> =
                    i.proxies.winners().into_iter().map(|(a, _)| a).collect();
                addresses.sort_unstable();
                addresses.into_iter().map(sets::nd_target_element).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The proxy-NDP entries, by address.
    pub fn proxy_entries(&self) -> Vec<ProxyEntry> {
        self.index
            .proxies
            .winners()
            .into_iter()
            .map(|(_, (_, e))| e.clone())
            .collect()
    }

    pub fn sysctls(&self) -> &[SysctlSetting] {
        self.base().map_or(&[], |b| b.sysctls.as_slice())
    }

    pub fn na_source(&self) -> NaSource {
        self.base().map_or(NaSource::default(), |b| b.na_source)
    }

    /// The table has the chain that limits forwarding to Docker traffic
    /// (dock6 turned forwarding on).
    pub fn forwards_docker_only(&self) -> bool {
        self.base().is_some_and(|b| b.docker_only)
    }

    pub fn uplink(&self) -> Option<&str> {
        self.base().and_then(|b| b.context.uplink.as_deref())
    }

    pub fn networks(&self) -> &[super::NetworkPlan] {
        self.base().map_or(&[], |b| b.context.networks.as_slice())
    }

    /// How many mappings the DNAT maps hold.
    pub fn published_count(&self) -> usize {
        self.index.dnat_any.len() + self.index.dnat_addr.len()
    }

    pub fn proxy_count(&self) -> usize {
        self.index.proxies.len()
    }

    /// What the container with `id` holds in the table, if anything.
    pub fn container(&self, id: &str) -> Option<ContainerShown> {
        let entry = self.parts.get(id)?;
        let holds = |winner: Option<&(Slot, DnatTo)>| winner.is_some_and(|(s, _)| *s == entry.slot);
        let i = &self.index;
        let any = entry
            .part
            .dnat_any
            .iter()
            .filter(|(k, _)| holds(i.dnat_any.winner(k)))
            .map(|((proto, host), (_, port))| (None, *proto, *host, *port));
        let addr = entry
            .part
            .dnat_addr
            .iter()
            .filter(|(k, _)| holds(i.dnat_addr.winner(k)))
            .map(|((on, proto, host), (_, port))| (Some(*on), *proto, *host, *port));
        Some(ContainerShown {
            published: any.chain(addr).collect(),
            open: entry.part.open.to_vec(),
            sealed: !entry.part.sealed.is_empty(),
        })
    }

    /// Every note of the plan: the networks', then each container's (by
    /// name), clashes over host ports, the host's.
    pub fn notes(&self) -> Vec<Note> {
        let Some(base) = self.base() else {
            return Vec::new();
        };
        let mut notes = base.notes.clone();
        notes.extend(self.input_notes.iter().cloned());
        let mut noted: Vec<&Entry> = self
            .noted
            .iter()
            .filter_map(|id| self.parts.get(id))
            .collect();
        noted.sort_by(|a, b| self.owners.rank(a.slot, b.slot));
        notes.extend(noted.iter().flat_map(|e| e.part.notes.iter().cloned()));
        notes.extend(self.clash_notes());
        notes.extend(base.sysctl_notes.iter().cloned());
        if base.na_source == NaSource::Target && self.proxy_count() > 0 {
            notes.push(Note::info(
                "na_source = target: dock6 answers neighbour solicitations for proxied addresses itself, from each address (while `dock6 run` runs)",
            ));
        }
        notes
    }

    /// A warning for each container whose host port another container
    /// (first by name) holds with a different mapping.
    fn clash_notes(&self) -> Vec<Note> {
        let name = |slot: Slot| self.owners.name(slot);
        let mut notes = Vec::new();
        let mut clash =
            |port: u16, proto: L4Proto, (winner, to): (Slot, DnatTo), others: &[(Slot, DnatTo)]| {
                for (slot, _) in others.iter().filter(|(_, d)| *d != to) {
                    notes.push(conflict_note(name(*slot), port, proto, name(winner)));
                }
            };
        for ((proto, port), winner, others) in self.index.dnat_any.contested() {
            clash(*port, *proto, *winner, others);
        }
        for ((_, proto, port), winner, others) in self.index.dnat_addr.contested() {
            clash(*port, *proto, *winner, others);
        }
        notes
    }

    /// The whole plan.
    pub fn plan(&self) -> Plan {
        let proxy_entries = self.proxy_entries();
        let (uplink_facts, networks) = match self.base() {
            Some(b) => (
                b.context.uplink_facts.as_ref(),
                b.context.networks.as_slice(),
            ),
            None => (None, &[][..]),
        };
        let host_routes = host::host_routes(uplink_facts, networks, &proxy_entries);
        Plan {
            uplink: self.uplink().map(str::to_string),
            networks: networks.to_vec(),
            ruleset: self.table(),
            proxy_entries,
            na_source: self.na_source(),
            host_routes,
            sysctls: self.sysctls().to_vec(),
            notes: self.notes(),
        }
    }

    /// The `/128` routes into bridges for the proxied addresses that need one.
    pub fn host_routes(&self, proxy_entries: &[ProxyEntry]) -> Vec<super::HostRoute> {
        match self.base() {
            Some(b) => host::host_routes(
                b.context.uplink_facts.as_ref(),
                &b.context.networks,
                proxy_entries,
            ),
            None => Vec::new(),
        }
    }
}

/// The container with `id` in `containers`, sorted by id.
fn find_by_id<'c>(containers: &'c [Container], id: &str) -> Option<&'c Container> {
    containers
        .binary_search_by(|c| c.id.as_str().cmp(id))
        .ok()
        .map(|i| &containers[i])
}

/// The containers with ids seen once; of two with one id (stale data) the
/// first by name stays, with a note for the other.
fn unique_ids(containers: &[Container]) -> (Vec<&Container>, Vec<Note>) {
    let mut sorted: Vec<&Container> = containers.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let mut seen = HashSet::new();
    let mut notes = Vec::new();
    sorted.retain(|c| {
        let first = seen.insert(c.id.as_str());
        if !first {
            notes.push(Note::warn(format!(
                "container {}: id {} is already another container's (stale data); skipped",
                quoted(&c.name),
                quoted(&c.id)
            )));
        }
        first
    });
    (sorted, notes)
}

/// The element changes between two passes' network sets (same names, same order).
fn network_set_changes(old: &[Set], new: &[Set]) -> Vec<ElementChange> {
    let table = |sets: &[Set]| Table {
        name: TABLE_NAME.to_string(),
        sets: sets.to_vec(),
        chains: Vec::new(),
    };
    match crate::nft::diff(&table(old), &table(new)) {
        TableDiff::Elements(changes) => changes,
        TableDiff::Same | TableDiff::Structure => Vec::new(),
    }
}

#[cfg(test)]
pub(super) mod tests;
