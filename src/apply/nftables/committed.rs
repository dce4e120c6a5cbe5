//! What dock6 last committed to a table of its own, per network namespace:
//! each chain's rules (as expressions) and the ruleset generation that
//! commit produced. The sets' elements are not kept here: the caller that
//! plans the table (the agent's planner) knows what changed in them since.
//!
//! A batch sent with a generation (`Batch::at_generation`) commits only at
//! that generation, and every commit adds one to it; so after such a batch
//! succeeds, the ruleset is at exactly `generation + 1`, and as long as it
//! still is, nobody (dock6 included) has committed anything since: the
//! kernel's table holds exactly what that commit left. A replace can then
//! send only the differences (`in_place.rs`): the rules if they differ from
//! the ones recorded, and the element changes the caller names; the kernel
//! cannot list a large set cheaply (a set dump restarts its walk from the
//! first element for every message, quadratic in the set's size). Any other
//! commit in the namespace moves the generation, and the record is not used.
//!
//! Kept per thread: the kernel thread of the agent sends all of dock6's
//! batches.

use std::cell::RefCell;

use super::encode::Expr;
use crate::apply::nfnetlink::thread_netns;

/// Each chain's rules, as the expressions sent (sets named, not by id).
pub(super) type Rules = Vec<(String, Vec<Expr>)>;

/// The record of one table.
pub(super) struct Committed {
    netns: u64,
    table: String,
    /// The ruleset generation right after dock6's commit.
    pub generation: u32,
    pub rules: Rules,
}

thread_local! {
    static COMMITTED: RefCell<Vec<Committed>> = const { RefCell::new(Vec::new()) };
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

/// Records that `table` holds `rules` at `generation`.
pub(super) fn store(table: &str, generation: u32, rules: Rules) {
    let record = Committed {
        netns: thread_netns().unwrap_or(0),
        table: table.to_string(),
        generation,
        rules,
    };
    forget(table);
    COMMITTED.with(|c| c.borrow_mut().push(record));
}

/// Drops the record of `table` (its state is no longer known).
pub(super) fn forget(table: &str) {
    drop(take(table));
}

impl Committed {
    /// The record after one more commit of dock6's own on top of it that
    /// left the rules as they were (element changes).
    pub(super) fn advanced(mut self) -> Committed {
        self.generation = after(self.generation);
        self
    }
}
