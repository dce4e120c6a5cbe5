//! What dock6 last committed to a table of its own, per network namespace:
//! each set's elements (as kernel bytes) and each chain's rules (as
//! expressions), and the ruleset generation that commit produced.
//!
//! A batch sent with a generation (`Batch::at_generation`) commits only at
//! that generation, and every commit adds one to it; so after such a batch
//! succeeds, the ruleset is at exactly `generation + 1`, and as long as it
//! still is, nobody (dock6 included) has committed anything since: the
//! kernel's sets hold exactly the elements recorded here. A replace can then
//! send only the differences (`in_place.rs`); the kernel cannot list a large
//! set cheaply (a set dump restarts its walk from the first element for
//! every message, quadratic in the set's size). Any other commit in the
//! namespace moves the generation, and the record is not used.
//!
//! Kept per thread: the kernel thread of the agent sends all of dock6's
//! batches.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::NftError;
use super::encode::{Expr, encode_values};
use super::table::{element_of, rules_of};
use crate::apply::nfnetlink::thread_netns;
use crate::nft::{ElementChange, Set, Table};

/// A set's elements: key bytes → data bytes (empty for a set).
pub(super) type SetElems = HashMap<Box<[u8]>, Elem>;

/// One element's data, and the last replace that found it planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Elem {
    pub data: Box<[u8]>,
    pub seen: u32,
}

/// Each chain's rules, as the expressions sent (sets named, not by id).
pub(super) type Rules = Vec<(String, Vec<Expr>)>;

/// What a commit left in a table.
pub(super) struct Contents {
    pub sets: HashMap<String, SetElems>,
    pub rules: Rules,
}

/// The record of one table.
pub(super) struct Committed {
    netns: u64,
    table: String,
    /// The ruleset generation right after dock6's commit.
    pub generation: u32,
    pub contents: Contents,
}

thread_local! {
    static COMMITTED: RefCell<Vec<Committed>> = const { RefCell::new(Vec::new()) };
    static LAST_MARK: Cell<u32> = const { Cell::new(0) };
}

/// A mark for [`Elem::seen`] that no element carries yet (one per replace;
/// elements recorded otherwise carry 0).
pub(super) fn next_mark() -> u32 {
    LAST_MARK.with(|m| {
        let next = m.get().wrapping_add(1).max(1);
        m.set(next);
        next
    })
}

/// The generation after a commit applied at `generation` (0 is skipped).
pub(super) fn after(generation: u32) -> u32 {
    match generation.wrapping_add(1) {
        0 => 1,
        g => g,
    }
}

/// Takes the record of `table` in this thread's network namespace out of
/// the store (put back with [`store`] once a commit built on it succeeded).
pub(super) fn take(table: &str) -> Option<Committed> {
    let netns = thread_netns().unwrap_or(0);
    COMMITTED.with(|c| {
        let mut all = c.borrow_mut();
        let i = all
            .iter()
            .position(|r| r.netns == netns && r.table == table)?;
        Some(all.swap_remove(i))
    })
}

/// Records that `table` holds `contents` at `generation`.
pub(super) fn store(table: &str, generation: u32, contents: Contents) {
    let record = Committed {
        netns: thread_netns().unwrap_or(0),
        table: table.to_string(),
        generation,
        contents,
    };
    forget(table);
    COMMITTED.with(|c| c.borrow_mut().push(record));
}

/// Drops the record of `table` (its state is no longer known).
pub(super) fn forget(table: &str) {
    drop(take(table));
}

/// What `table` holds once committed.
pub(super) fn planned(table: &Table) -> Result<Contents, NftError> {
    let mut sets = HashMap::with_capacity(table.sets.len());
    for set in &table.sets {
        sets.insert(set.name.clone(), planned_elements(set)?);
    }
    Ok(Contents {
        sets,
        rules: rules_of(table)?,
    })
}

/// The elements of `set`, as kernel bytes.
pub(super) fn planned_elements(set: &Set) -> Result<SetElems, NftError> {
    let mut elems = SetElems::with_capacity(set.elements.len());
    for e in &set.elements {
        let (key, data) = element_of(set, e)?;
        let data = data.map_or_else(Box::default, |d| d.as_slice().into());
        elems.insert(key.as_slice().into(), Elem { data, seen: 0 });
    }
    Ok(elems)
}

impl Committed {
    /// The record after `changes` were committed on top of it; `None` if
    /// one names a set it does not know.
    pub(super) fn with_changes(mut self, changes: &[ElementChange]) -> Option<Committed> {
        for change in changes {
            match change {
                ElementChange::Add { set, element } => {
                    let key = encode_values(&element.key, None, "key").ok()?;
                    let data = match element.data.is_empty() {
                        true => Box::default(),
                        false => encode_values(&element.data, None, "data")
                            .ok()?
                            .as_slice()
                            .into(),
                    };
                    let elem = Elem { data, seen: 0 };
                    let set = self.contents.sets.get_mut(set)?;
                    set.insert(key.as_slice().into(), elem);
                }
                ElementChange::Remove { set, element } => {
                    let key = encode_values(&element.key, None, "key").ok()?;
                    self.contents.sets.get_mut(set)?.remove(key.as_slice());
                }
            }
        }
        self.generation = after(self.generation);
        Some(self)
    }
}
