//! The kernel side of a table pass, and what the nftables change monitor
//! makes of the commits it sees. Both are public (with any [`Kernel`] on the
//! kernel thread) so that they can be driven against a real kernel with a
//! commit of someone else's slipped in between dock6's own steps.

use tracing::{debug, error, warn};

use super::KernelThread;
use crate::apply::nftables::{self, changes::NftChange, changes::NftMonitor};
use crate::apply::{ApplyError, ApplyReport, DnatTarget, HostState, Kernel, TableChange};

/// What one table pass did, and whether a commit of someone else may have
/// gone unseen while the change monitor was muted (the table is then to be
/// replaced again at once).
#[derive(Debug)]
pub struct TableCommit {
    pub report: ApplyReport,
    pub unseen_commit: bool,
}

/// Applies `change`, then the host side (`host`) and the conntrack deletes
/// (left to the caller: `report.flow_targets`).
///
/// `monitor` is muted while a whole-table replace commits: the kernel
/// builds one notification per object of a transaction for each listener,
/// which for a large table costs most of the commit. It hears again as soon
/// as that commit is in, before the sysctls, routes and proxy entries, so
/// that a commit of someone else's while those are applied is seen as any
/// other. The ruleset generation read right after dock6's commit is compared
/// with the one read right after the monitor hears again: if they differ,
/// someone committed in between, unseen ([`TableCommit::unseen_commit`]).
/// Only the round trip between dock6's commit and that first read remains
/// blind.
pub async fn commit_table<S: Kernel + 'static>(
    kernel: &KernelThread<S>,
    monitor: Option<&NftMonitor>,
    change: TableChange,
    host: HostState,
    flows: Vec<DnatTarget>,
) -> Result<TableCommit, ApplyError> {
    let muted = match (&change, monitor) {
        (TableChange::Replace { .. }, Some(m)) => m.mute().map_err(|e| warn!("{e}")).is_ok(),
        _ => false,
    };
    let committed = kernel
        .call(move |k| {
            let started = std::time::Instant::now();
            let table = crate::apply::apply_table_change(k, &change);
            debug!(
                table_ms = crate::apply::millis(started.elapsed()),
                "table part applied"
            );
            let generation = muted.then(nftables::generation).and_then(Result::ok);
            Ok((table, generation))
        })
        .await;
    if let (true, Some(m)) = (muted, monitor)
        && let Err(e) = m.unmute()
    {
        error!("{e}; a changed table is restored at the next resync only");
    }
    let (table, after_commit) = committed?;
    let (report, heard_from) = kernel
        .call(move |k| {
            let heard_from = muted.then(nftables::generation).and_then(Result::ok);
            let report = crate::apply::finish_pass(k, table, &host, flows, true);
            Ok((report, heard_from))
        })
        .await?;
    let unseen_commit = muted && missed(after_commit, heard_from);
    Ok(TableCommit {
        report,
        unseen_commit,
    })
}

/// Whether a commit may have fallen between dock6's own (the ruleset then
/// at generation `after_commit`) and the monitor hearing again (at
/// `heard_from`). Unknown generations count as a commit missed.
fn missed(after_commit: Option<u32>, heard_from: Option<u32>) -> bool {
    match (after_commit, heard_from) {
        (Some(a), Some(b)) if a == b => false,
        (a, b) => {
            warn!(
                "an nftables commit may have gone unseen while dock6 replaced its table \
                 (generation {a:?} → {b:?}): replacing it again"
            );
            true
        }
    }
}

/// What a run of nftables notifications amounts to, one transaction at a
/// time.
#[derive(Debug, Default)]
pub struct ChangeWatch {
    /// The transaction being read touched `table inet dock6`.
    ours_touched: bool,
}

/// What [`ChangeWatch::see`] concluded from one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Nothing to do (yet).
    Nothing,
    /// A transaction that dock6 did not commit touched its table.
    Foreign { comm: String, pid: u32 },
    /// Notifications were lost or not understood: the table may have changed.
    Lost,
}

impl ChangeWatch {
    pub fn see(&mut self, change: &NftChange) -> Seen {
        match change {
            NftChange::OurTableTouched { what, .. } => {
                debug!("table inet dock6: {what}");
                self.ours_touched = true;
                Seen::Nothing
            }
            NftChange::Generation(generation) => {
                let touched = std::mem::take(&mut self.ours_touched);
                match touched && !generation.is_from_this_process() {
                    true => Seen::Foreign {
                        comm: generation.comm.clone(),
                        pid: generation.pid,
                    },
                    false => Seen::Nothing,
                }
            }
            NftChange::Overrun | NftChange::Unrecognized { .. } => {
                self.ours_touched = false;
                Seen::Lost
            }
            NftChange::OtherTable { .. } => Seen::Nothing,
        }
    }
}
