//! The container-owned elements of the table, kept with who contributes
//! each, so that one container's change touches only its own elements and
//! the keys it shares: a pass with one new container at 10,000 costs a few
//! map operations, not a walk of every set.
//!
//! Each structure also records, for the keys an update touched, what they
//! held before it: the element changes of the update are exactly the keys
//! whose value differs at its end (a container removed and added again
//! unchanged gives none).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use compact_str::CompactString;

/// A container's place in the index (see [`Owners`]); never reused while
/// the container's part holds it.
pub(super) type Slot = u32;

/// Who the slots are: each container's name and id, which rank claims on a
/// shared key (the first container by name, then id, wins it).
#[derive(Debug, Default)]
pub(super) struct Owners {
    slots: Vec<Option<(CompactString, Arc<str>)>>,
    free: Vec<Slot>,
}

impl Owners {
    pub fn take(&mut self, name: &str, id: &Arc<str>) -> Slot {
        let owner = Some((CompactString::from(name), Arc::clone(id)));
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = owner;
                slot
            }
            None => {
                self.slots.push(owner);
                (self.slots.len() - 1) as Slot
            }
        }
    }

    pub fn release(&mut self, slot: Slot) {
        self.slots[slot as usize] = None;
        self.free.push(slot);
    }

    pub fn name(&self, slot: Slot) -> &str {
        self.slots[slot as usize]
            .as_ref()
            .map_or("", |(name, _)| name.as_str())
    }

    pub fn rank(&self, a: Slot, b: Slot) -> Ordering {
        self.slots[a as usize].cmp(&self.slots[b as usize])
    }
}

/// Keys any number of containers may contribute (the same address twice
/// in stale data): in the set while one does. (Hashed: a hundred thousand
/// keys cost a third less than in a B-tree; the rare whole-table listing
/// sorts them.)
#[derive(Debug)]
pub(super) struct Counted<K: Ord> {
    counts: HashMap<K, u32>,
    /// Touched keys: whether each was in the set before the update.
    before: BTreeMap<K, bool>,
}

impl<K: Ord> Default for Counted<K> {
    fn default() -> Self {
        Counted {
            counts: HashMap::new(),
            before: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> Counted<K> {
    pub fn add(&mut self, key: &K) {
        self.touch(key);
        *self.counts.entry(key.clone()).or_insert(0) += 1;
    }

    pub fn remove(&mut self, key: &K) {
        self.touch(key);
        if let Some(count) = self.counts.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(key);
            }
        }
    }

    fn touch(&mut self, key: &K) {
        if !self.before.contains_key(key) {
            let present = self.counts.contains_key(key);
            self.before.insert(key.clone(), present);
        }
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<&K> {
        let mut keys: Vec<&K> = self.counts.keys().collect();
        keys.sort_unstable();
        keys
    }

    /// The keys the update took out of the set and those it put in; the
    /// next update starts afresh.
    pub fn take_changes(&mut self) -> (Vec<K>, Vec<K>) {
        let (mut gone, mut came) = (Vec::new(), Vec::new());
        for (key, was) in std::mem::take(&mut self.before) {
            match (was, self.counts.contains_key(&key)) {
                (true, false) => gone.push(key),
                (false, true) => came.push(key),
                _ => {}
            }
        }
        (gone, came)
    }
}

/// Map entries, key and value.
pub(super) type Pairs<K, D> = Vec<(K, D)>;

/// Map keys that more than one container may claim (a host port two
/// containers publish: Docker refuses that, so it means stale data). The
/// kernel takes one value per key: the claim of the first container by
/// name wins, the others wait behind it and take over when it goes.
#[derive(Debug)]
pub(super) struct Claims<K: Ord, D> {
    /// Each key's winning claim (kept apart from the rare waiting ones, so
    /// a key costs no allocation of its own; hashed, as in [`Counted`]).
    winners: HashMap<K, (Slot, D)>,
    /// The other claims of contested keys, by rank (ties: in the order made).
    waiting: BTreeMap<K, Vec<(Slot, D)>>,
    /// Touched keys: their winning value before the update.
    before: BTreeMap<K, Option<D>>,
}

impl<K: Ord, D> Default for Claims<K, D> {
    fn default() -> Self {
        Claims {
            winners: HashMap::new(),
            waiting: BTreeMap::new(),
            before: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone, D: Clone + PartialEq> Claims<K, D> {
    pub fn claim(&mut self, key: &K, slot: Slot, data: D, owners: &Owners) {
        self.touch(key);
        let claim = match self.winners.get_mut(key) {
            None => {
                self.winners.insert(key.clone(), (slot, data));
                return;
            }
            Some(winner) if owners.rank(slot, winner.0) == Ordering::Less => {
                std::mem::replace(winner, (slot, data))
            }
            Some(_) => (slot, data),
        };
        let waiting = self.waiting.entry(key.clone()).or_default();
        let at = waiting.partition_point(|(s, _)| owners.rank(*s, claim.0) != Ordering::Greater);
        waiting.insert(at, claim);
    }

    pub fn release(&mut self, key: &K, slot: Slot, data: &D) {
        self.touch(key);
        let is_winner = self
            .winners
            .get(key)
            .is_some_and(|(s, d)| *s == slot && d == data);
        let Some(waiting) = self.waiting.get_mut(key) else {
            if is_winner {
                self.winners.remove(key);
            }
            return;
        };
        let at = match is_winner {
            true => Some(0),
            false => waiting.iter().position(|(s, d)| *s == slot && d == data),
        };
        let Some(at) = at else {
            return;
        };
        let next = waiting.remove(at);
        if is_winner {
            self.winners.insert(key.clone(), next);
        }
        if waiting.is_empty() {
            self.waiting.remove(key);
        }
    }

    fn touch(&mut self, key: &K) {
        if !self.before.contains_key(key) {
            let winner = self.winner(key).map(|(_, d)| d.clone());
            self.before.insert(key.clone(), winner);
        }
    }

    pub fn winner(&self, key: &K) -> Option<&(Slot, D)> {
        self.winners.get(key)
    }

    /// Every key with its winning claim, in key order.
    pub fn winners(&self) -> Vec<(&K, &(Slot, D))> {
        let mut winners: Vec<_> = self.winners.iter().collect();
        winners.sort_unstable_by(|a, b| a.0.cmp(b.0));
        winners
    }

    pub fn len(&self) -> usize {
        self.winners.len()
    }

    /// Keys several containers claim, each with its winning claim and the
    /// others.
    pub fn contested(&self) -> impl Iterator<Item = (&K, &(Slot, D), &[(Slot, D)])> {
        self.waiting.iter().filter_map(|(k, waiting)| {
            let winner = self.winners.get(k)?;
            Some((k, winner, waiting.as_slice()))
        })
    }

    /// The (key, value) pairs the update took out of the map and those it
    /// put in (a key whose value changed is in both); the next update
    /// starts afresh.
    pub fn take_changes(&mut self) -> (Pairs<K, D>, Pairs<K, D>) {
        let (mut gone, mut came) = (Vec::new(), Vec::new());
        for (key, was) in std::mem::take(&mut self.before) {
            let now = self.winner(&key).map(|(_, d)| d);
            if was.as_ref() == now {
                continue;
            }
            if let Some(now) = now {
                came.push((key.clone(), now.clone()));
            }
            if let Some(was) = was {
                gone.push((key, was));
            }
        }
        (gone, came)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_counted_twice_stays_until_both_are_gone() {
        let mut set = Counted::default();
        set.add(&1);
        set.add(&1);
        assert_eq!(set.take_changes(), (vec![], vec![1]));
        set.remove(&1);
        assert_eq!(set.take_changes(), (vec![], vec![]));
        set.remove(&1);
        assert_eq!(set.take_changes(), (vec![1], vec![]));
    }

    #[test]
    fn removed_and_added_again_is_no_change() {
        let mut set = Counted::default();
        set.add(&7);
        set.take_changes();
        set.remove(&7);
        set.add(&7);
        assert_eq!(set.take_changes(), (vec![], vec![]));
    }

    #[test]
    fn the_first_container_by_name_wins_a_claimed_key_and_the_next_takes_over() {
        let mut owners = Owners::default();
        let web = owners.take("web", &Arc::from("2"));
        let api = owners.take("api", &Arc::from("1"));
        let mut map = Claims::default();
        map.claim(&80, web, "web-target", &owners);
        assert_eq!(map.take_changes(), (vec![], vec![(80, "web-target")]));
        map.claim(&80, api, "api-target", &owners);
        assert_eq!(map.winner(&80), Some(&(api, "api-target")));
        assert_eq!(
            map.take_changes(),
            (vec![(80, "web-target")], vec![(80, "api-target")])
        );
        assert_eq!(map.contested().count(), 1);
        map.release(&80, api, &"api-target");
        assert_eq!(
            map.take_changes(),
            (vec![(80, "api-target")], vec![(80, "web-target")])
        );
        assert_eq!(map.contested().count(), 0);
        map.release(&80, web, &"web-target");
        assert_eq!(map.take_changes(), (vec![(80, "web-target")], vec![]));
        assert_eq!(map.len(), 0);
    }
}
