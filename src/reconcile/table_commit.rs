//! The kernel side of a table pass, and what the nftables change monitor
//! makes of the commits it sees. Both are public (with any [`Kernel`] on the
//! kernel thread) so that they can be driven against a real kernel with a
//! commit of someone else's slipped in between dock6's own steps.

use tracing::{debug, warn};

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
/// (left to the caller: `report.flow_targets`). `monitor` is muted while a
/// whole-table replace commits: the kernel builds one notification per
/// object of a transaction for each listener, which for a large table costs
/// most of the commit.
pub async fn commit_table<S: Kernel + 'static>(
    kernel: &KernelThread<S>,
    monitor: Option<&NftMonitor>,
    change: TableChange,
    host: HostState,
    flows: Vec<DnatTarget>,
) -> Result<TableCommit, ApplyError> {
    let replacing = matches!(change, TableChange::Replace(_));
    let muted = match (replacing, monitor) {
        (true, Some(m)) => m.mute().map_err(|e| warn!("{e}")).is_ok(),
        _ => false,
    };
    let result = kernel
        .call(move |k| {
            let report = crate::apply::apply_pass(k, &change, &host, flows, true);
            let generation = muted.then(nftables::generation).and_then(Result::ok);
            Ok((report, generation))
        })
        .await;
    let mut unseen_commit = false;
    if let (true, Some(m)) = (muted, monitor) {
        let after = result.as_ref().ok().and_then(|(_, g)| *g);
        unseen_commit = unmute(kernel, m, after).await;
    }
    let (report, _) = result?;
    Ok(TableCommit {
        report,
        unseen_commit,
    })
}

/// Unmutes the change monitor after a whole-table replace; true when a
/// commit made between the generation read right after the pass (`after`)
/// and now went unseen.
async fn unmute<S: 'static>(
    kernel: &KernelThread<S>,
    monitor: &NftMonitor,
    after: Option<u32>,
) -> bool {
    if let Err(e) = monitor.unmute() {
        tracing::error!("{e}; a changed table is restored at the next resync only");
    }
    let now = kernel.call(|_| Ok(nftables::generation()?)).await;
    match (after, now) {
        (Some(after), Ok(now)) if after == now => false,
        (after, now) => {
            warn!(
                "an nftables commit may have gone unseen while dock6 replaced its table \
                 (generation {after:?} → {:?}): replacing it again",
                now.ok()
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
