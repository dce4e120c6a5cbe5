//! One reconcile pass: host facts, the plan, Docker's firewall, the kernel.
//! Each returns whether the kernel now holds what was planned; the loop
//! retries a pass that did not converge (see `retry`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::host_grace::GraceEvent;
use super::retry;
use super::table_commit::{TableCommit, commit_table};
use super::{FlowsDone, KernelThread, Loop};
use crate::apply::nftables::changes::NftMonitor;
use crate::apply::{
    ApplyReport, DnatTarget, DockerFirewall, HostState, Kernel as _, TableAction, TableChange,
    millis,
};
use crate::firewall_role::{self, FirewallRole};
use crate::plan::{self, Level, Note, Update};
use crate::snapshot::HostFacts;

/// How long a pass waits for the host facts (rtnetlink dumps, milliseconds
/// even with a full routing table): a reply lost on an overrun netlink
/// socket fails the pass, which is retried, instead of holding the loop.
const HOST_FACTS_TIMEOUT: Duration = Duration::from_secs(30);

impl Loop {
    /// When the next pass is due after one that `converged` (or not): a
    /// retry after a failure, the end of a running host-facts grace, or the
    /// end of the refusal of a starting container's ports.
    pub(super) fn next_due(&mut self, converged: bool) -> Option<Instant> {
        let now = Instant::now();
        let due = retry::after_pass(converged, &mut self.retry, now, None);
        if let Some(at) = due {
            warn!("the pass did not converge: retrying in {:?}", at - now);
        }
        [
            due,
            self.host_grace.deadline(self.config.host_facts_grace),
            self.view.starting_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One pass; `monitor` is muted while a whole-table replace commits.
    /// The planner plans again only the containers that changed since the
    /// last pass (all of them when the networks or the host facts they
    /// read changed), and the kernel gets only the element changes that
    /// follow, unless the table's shape changed or a replace is due.
    pub(super) async fn pass(&mut self, monitor: Option<&NftMonitor>) -> bool {
        if !self.view.synced {
            return self.bootstrap_if_no_table().await;
        }
        // From here on the planned table is the kernel's to have.
        self.bootstrap_installed = None;
        self.view.expire_starting(Instant::now());
        let started = std::time::Instant::now();
        let Some(mut host) = self.host_facts().await else {
            return false;
        };
        let facts_took = started.elapsed();
        host.forwarding_enabled_by_dock6 = self.forwarding_by_dock6;
        self.prefix_memory
            .remember(&mut host, self.config.policy.uplink.as_deref());
        let changed = self.view.take_changed();
        let snapshot = self.view.snapshot(host);
        let update = self
            .planner
            .update(&self.config.policy, snapshot, Some(&changed));
        debug!(
            replanned = update.replanned,
            element_changes = update.changes.len(),
            host_facts_ms = millis(facts_took),
            plan_ms = millis(started.elapsed() - facts_took),
            "planned"
        );
        self.shown
            .planned(&self.planner, self.view.container_count());
        self.follow_mappings();
        if update.notes_changed {
            let notes = self.planner.notes();
            self.shown.plan_notes(&notes);
            self.log_new_notes(&notes);
        }
        let checking = std::time::Instant::now();
        let (companion, certain) = self.check_docker_firewall().await;
        let applying = std::time::Instant::now();
        let converged = match companion {
            true => self.companion_pass(update).await,
            false => self.table_pass(update, monitor).await,
        };
        debug!(
            docker_firewall_ms = millis(applying - checking),
            apply_ms = millis(applying.elapsed()),
            "pass applied"
        );
        converged && certain
    }

    /// Notes where the `nptv6` networks are mapped now: a moved mapping is
    /// logged once, and its old prefix's flows are deleted once the table
    /// that no longer translates into it is in.
    fn follow_mappings(&mut self) {
        let moved = self
            .mappings
            .follow(self.planner.networks(), std::time::SystemTime::now());
        for change in &moved {
            info!("{}", change.describe());
            self.shown.mapping_moved(change);
            self.stale_prefixes.extend(change.old);
        }
        self.shown.mappings(&self.mappings);
    }

    /// Deletes the flows of old `nptv6` mapped prefixes (the table no
    /// longer translates into them); false if that failed (tried again with
    /// the next pass).
    async fn delete_old_prefix_flows(&mut self) -> bool {
        if self.stale_prefixes.is_empty() {
            return true;
        }
        let prefixes = std::mem::take(&mut self.stale_prefixes);
        let wanted = prefixes.clone();
        let list: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
        match self
            .conntrack
            .call(move |k| k.delete_prefix_flows(&wanted))
            .await
        {
            Ok(deleted) => {
                info!(
                    "{deleted} conntrack entries of the old mapped prefix {} deleted",
                    list.join(", ")
                );
                true
            }
            Err(e) => {
                warn!(
                    "{e}: the flows of the old mapped prefix {} are tried again",
                    list.join(", ")
                );
                self.shown.error("conntrack", e.to_string());
                self.stale_prefixes = prefixes;
                false
            }
        }
    }

    /// The host-side part of the plan, for the kernel thread.
    fn host_state(&self) -> HostState {
        let proxy_entries = self.planner.proxy_entries();
        HostState {
            sysctls: self.planner.sysctls().to_vec(),
            host_routes: self.planner.host_routes(&proxy_entries),
            proxy_entries,
            na_source: self.planner.na_source(),
            docker_only_forwarding: self.planner.forwards_docker_only(),
        }
    }

    /// Fresh host facts, with the last good ones standing in for what
    /// vanished for a moment; `None` when they cannot be read.
    async fn host_facts(&mut self) -> Option<HostFacts> {
        let mut fresh = self.read_host_facts(false).await?;
        // A route dump is not one atomic read: a router advertisement that
        // adds the new prefix and withdraws the old one while the dump runs
        // can leave both out of it, and a mapping that follows the
        // provider's prefix would flap through whatever else the uplink has.
        // When the provider's prefixes seem to have changed, they are read
        // once more (the kernel is done with the advertisement by then).
        if self
            .prefix_memory
            .changed(&fresh, self.config.policy.uplink.as_deref())
        {
            fresh = self.read_host_facts(true).await?;
        }
        let grace = self.config.host_facts_grace;
        let uplink = self.config.policy.uplink.as_deref();
        let (facts, event) = self.host_grace.facts(fresh, uplink, grace, Instant::now());
        match event {
            Some(GraceEvent::Started { what, grace }) => warn!(
                "{what} vanished: planning with the last good host facts for up to {grace:?} (host_facts_grace)"
            ),
            Some(GraceEvent::Recovered { after }) => {
                info!("host facts back after {after:?}: grace period over")
            }
            Some(GraceEvent::Expired { what, after }) => warn!(
                "{what} still missing after {after:?}: grace period over, planning without it"
            ),
            None => {}
        }
        Some(facts)
    }

    /// One read of the host facts; `None` (logged, shown) when it fails.
    /// The host facts, from the last dump of links, addresses and routes
    /// while no notification changed them (see `link_cache`), unless `dump`.
    async fn read_host_facts(&mut self, dump: bool) -> Option<HostFacts> {
        let kept = (!dump)
            .then(|| self.links.fresh(Instant::now()).cloned())
            .flatten();
        let read = async {
            let state = match kept {
                Some(state) => state,
                None => {
                    let dumping = std::time::Instant::now();
                    let state = crate::source::host::link_state(&self.handle).await?;
                    debug!(
                        dump_ms = millis(dumping.elapsed()),
                        "host links, addresses and routes dumped"
                    );
                    self.links.store(state.clone(), Instant::now());
                    state
                }
            };
            crate::source::host::host_facts_from(&self.handle, &state).await
        };
        match tokio::time::timeout(HOST_FACTS_TIMEOUT, read).await {
            Ok(Ok(host)) => Some(host),
            Ok(Err(e)) => {
                warn!("{e}; keeping what the kernel has");
                self.shown.error("host_facts", e.to_string());
                None
            }
            Err(_) => {
                let e = format!(
                    "the host's links, addresses and routes were not read within \
                     {HOST_FACTS_TIMEOUT:?}"
                );
                warn!("{e}; keeping what the kernel has");
                self.shown.error("host_facts", e);
                None
            }
        }
    }

    async fn companion_pass(&mut self, update: Update) -> bool {
        self.replace_next = true;
        self.kernel_has_last_plan = false;
        // Docker's rules DNAT now: flows of mappings dock6 dropped are Docker's business.
        drop(update);
        let host = self.host_state();
        let result = self
            .kernel
            .call(move |k| Ok(crate::apply::apply_companion(k, &host)))
            .await;
        match result {
            Ok(report) => {
                let converged = self.log_failures(&report);
                self.shown.table_note("removed (companion)");
                info!(
                    containers = self.view.container_count(),
                    "reconciled (companion: sysctls and proxy-NDP only)"
                );
                converged
            }
            Err(e) => {
                error!("{e}");
                self.shown.error("kernel", e.to_string());
                false
            }
        }
    }

    async fn table_pass(&mut self, update: Update, monitor: Option<&NftMonitor>) -> bool {
        let replacing = self.replace_next || update.shape_changed;
        let elements = !replacing && !update.changes.is_empty();
        let change = match (replacing, update.changes.is_empty()) {
            (true, _) => TableChange::Replace {
                table: self.planner.table(),
                // Built only when they lead from what the kernel has.
                since: self
                    .kernel_has_last_plan
                    .then(|| update.changes.into_batch()),
            },
            (false, true) => TableChange::Unchanged,
            (false, false) => TableChange::Elements {
                table: crate::nft::TABLE_NAME.to_string(),
                changes: update.changes.into_batch(),
            },
        };
        let mut flows = std::mem::take(&mut self.stale_flows);
        flows.extend(update.removed_dnat);
        // Kept in case the kernel thread does not answer: tried again with the next pass.
        let pending_flows = flows.clone();
        let host = self.host_state();
        match commit_table(&self.kernel, monitor, change, host, flows).await {
            Ok(TableCommit {
                report,
                unseen_commit,
            }) => {
                let table_in = report.table_action().is_some();
                self.kernel_has_last_plan = table_in;
                let mut converged = self.after_table_pass(report, elements);
                if table_in {
                    converged &= self.delete_old_prefix_flows().await;
                }
                // After the report, which ends a replace_next that this must keep.
                if unseen_commit {
                    self.force_restore();
                    self.restore_now = true;
                }
                converged
            }
            Err(e) => {
                error!("{e}");
                self.shown.error("kernel", e.to_string());
                self.replace_next = true;
                self.kernel_has_last_plan = false;
                self.stale_flows = pending_flows;
                false
            }
        }
    }

    /// Deletes the conntrack entries of removed mappings on the conntrack
    /// thread (see [`delete_flows_worker`]), after the table that no longer
    /// DNATs to them is in, without holding up the next pass.
    fn delete_flows_later(&mut self, targets: Vec<DnatTarget>) {
        if self.flows_todo.send(targets).is_err() {
            error!("the conntrack worker is gone: flows of removed mappings are not deleted");
        }
    }

    /// `elements`: the pass sent element changes (not a replace).
    fn after_table_pass(&mut self, report: ApplyReport, elements: bool) -> bool {
        let converged = self.log_failures(&report);
        self.shown.table_action(report.table_action());
        match &report.conntrack {
            // Skipped: the table is not in; tried again with the next pass.
            Some(part) if !part.is_done() => self.stale_flows = report.flow_targets.clone(),
            Some(_) => {}
            None if report.flow_targets.is_empty() => {}
            None => self.delete_flows_later(report.flow_targets.clone()),
        }
        let Some(action) = report.table_action() else {
            self.replace_next = true;
            if elements {
                // Someone changed the table under dock6: the whole table
                // goes in with the next pass, at once.
                warn!("element update failed: replacing the whole table");
                self.restore_now = true;
            }
            return false;
        };
        if action == TableAction::Unchanged {
            debug!(
                containers = self.view.container_count(),
                "reconciled: nothing to change"
            );
        } else {
            self.transactions += 1;
            info!(
                table = %action,
                containers = self.view.container_count(),
                transactions = self.transactions,
                "reconciled"
            );
        }
        self.forwarding_by_dock6 = self.planner.forwards_docker_only();
        self.replace_next = false;
        if action == TableAction::Replaced {
            crate::apply::release_free_memory();
        }
        converged
    }

    /// Whether dock6 runs as the companion of Docker's own IPv6 firewall,
    /// and whether that is certain (false: the kernel could not be read, the
    /// last answer stands). Companion only when Docker says its ip6tables is
    /// on and its rules are in the kernel (see `firewall_role`). Says so
    /// loudly whenever it changes; on entering companion mode dock6 removes
    /// its own table, which would fight Docker's NAT and filtering.
    pub(super) async fn check_docker_firewall(&mut self) -> (bool, bool) {
        let seen = match self.kernel.call(|k| k.docker_ip6_firewall()).await {
            Ok(seen) => seen,
            Err(e) => {
                warn!("cannot tell whether Docker's IPv6 firewall is on: {e}");
                let on = self
                    .firewall
                    .as_ref()
                    .is_some_and(FirewallRole::is_companion);
                return (on, false);
            }
        };
        let role = firewall_role::decide(&self.docker_ip6tables, &seen);
        if self.firewall.as_ref() == Some(&role) {
            return (role.is_companion(), true);
        }
        log_role(&role);
        self.shown.firewall(&role);
        let certain = match role.is_companion() {
            true => self.remove_own_table().await,
            false => true,
        };
        let companion = role.is_companion();
        self.firewall = Some(role);
        (companion, certain)
    }

    /// Deletes dock6's table for Docker's firewall, checking Docker's
    /// signature once more right before (never leave forwarding on with
    /// nothing filtering the bridges); false if that did not go through.
    async fn remove_own_table(&mut self) -> bool {
        let result = self
            .kernel
            .call(|k| match k.docker_ip6_firewall()? {
                DockerFirewall::On(_) => k.delete_table(crate::nft::TABLE_NAME).map(Some),
                _ => Ok(None),
            })
            .await;
        match result {
            Ok(Some(true)) => info!("removed table inet dock6 so as not to fight Docker's rules"),
            Ok(Some(false)) => {}
            Ok(None) => {
                warn!("Docker's IPv6 firewall went away again: table inet dock6 kept");
                return false;
            }
            Err(e) => {
                error!("{e}");
                return false;
            }
        }
        true
    }

    /// Before the first Docker snapshot: fail closed, but only where there is
    /// no table at all (a table left by an earlier run stays as it is). The
    /// fail-closed table names the host's own `br-…` interfaces, so it is
    /// installed again when those change while Docker is still away.
    async fn bootstrap_if_no_table(&mut self) -> bool {
        let companion = self
            .firewall
            .as_ref()
            .is_some_and(FirewallRole::is_companion);
        if companion || (self.bootstrap_checked && self.bootstrap_installed.is_none()) {
            return true;
        }
        let table = plan::bootstrap_table(&self.bootstrap_host_facts().await);
        if self.bootstrap_checked && self.bootstrap_installed.as_ref() == Some(&table) {
            return true;
        }
        let ours = self.bootstrap_installed.is_some();
        self.kernel_has_last_plan = false;
        let replacing = table.clone();
        let result = self
            .kernel
            .call(
                move |k| match !ours && k.table_exists(crate::nft::TABLE_NAME)? {
                    true => Ok(false),
                    false => k.replace_table(&replacing, None).map(|()| true),
                },
            )
            .await;
        match result {
            Ok(true) => {
                self.transactions += 1;
                self.shown.table_note("fail-closed table installed");
                info!("no Docker snapshot yet and no table: installed the fail-closed table");
                self.bootstrap_installed = Some(table);
            }
            Ok(false) => {
                self.shown.table_note("kept from an earlier run");
                info!("no Docker snapshot yet: keeping the table already in the kernel")
            }
            Err(e) => {
                error!("{e}");
                return false;
            }
        }
        self.bootstrap_checked = true;
        true
    }

    /// The host's interfaces for the fail-closed table; none when they cannot
    /// be read, so that every `br-…` interface counts as Docker's (closed).
    async fn bootstrap_host_facts(&self) -> HostFacts {
        match crate::source::host::host_facts(&self.handle).await {
            Ok(host) => host,
            Err(e) => {
                warn!("{e}; the fail-closed table takes every br-… interface for Docker's");
                HostFacts::default()
            }
        }
    }

    /// Logs each part that failed (and keeps it for `status`); true when none did.
    fn log_failures(&mut self, report: &ApplyReport) -> bool {
        let failures = report.failures_by_kind();
        let none = failures.is_empty();
        for (kind, failure) in failures {
            error!("{failure}");
            self.shown.error(kind, failure);
        }
        none
    }

    fn log_new_notes(&mut self, notes: &[Note]) {
        for note in notes.iter().filter(|n| !self.notes.contains(n)) {
            match note.level {
                Level::Info => info!("{}", note.text),
                Level::Warn => warn!("{}", note.text),
            }
        }
        self.notes = notes.to_vec();
    }
}

fn log_role(role: &FirewallRole) {
    match role.log_line() {
        (Level::Warn, line) => warn!("{line}"),
        (Level::Info, line) => info!("{line}"),
    }
}

/// At most this many mappings per conntrack call. A call walks the kernel's
/// conntrack hash table once however many mappings it has (tens of
/// milliseconds with 100,000 entries), then deletes each entry it found one
/// by one: a call must end well within the kernel thread's timeout.
const FLOW_TARGETS_PER_CALL: usize = 512;

/// Runs the deferred conntrack deletes on `thread`, one batch at a time:
/// what comes within [`FLOW_GATHER`] of a removal, or queues up while a
/// batch runs, goes into one batch (duplicates once), so a burst of
/// removals never piles up calls. Each outcome goes back to
/// the loop on `done` (the mappings again, when a delete failed).
pub(super) async fn delete_flows_worker(
    thread: Arc<KernelThread>,
    mut todo: mpsc::UnboundedReceiver<Vec<DnatTarget>>,
    done: mpsc::UnboundedSender<FlowsDone>,
) {
    while let Some(mut targets) = next_batch(&mut todo, FLOW_GATHER).await {
        targets.sort();
        targets.dedup();
        for chunk in targets.chunks(FLOW_TARGETS_PER_CALL) {
            let wanted = chunk.to_vec();
            let result = match thread.call(move |k| k.delete_dnat_flows(&wanted)).await {
                Ok(deleted) => {
                    debug!(
                        "{deleted} conntrack entries of {} removed mapping(s) deleted",
                        chunk.len()
                    );
                    Ok(())
                }
                Err(e) => {
                    warn!(
                        "{e}: the conntrack entries of {} removed mapping(s) are tried again",
                        chunk.len()
                    );
                    Err(chunk.to_vec())
                }
            };
            if done.send(result).is_err() {
                return;
            }
        }
    }
}

/// How long the conntrack worker gathers removed mappings before it walks
/// the kernel's conntrack table for them. A walk holds a CPU for
/// milliseconds whatever it looks for (tens with 100,000 entries, and
/// without yielding it); one for every removal of a burst would keep a
/// core busy and delay the passes that follow. A removed mapping's flows
/// go at most this much later.
const FLOW_GATHER: Duration = Duration::from_millis(200);

/// The next batch of mappings whose flows are to be deleted: the first
/// that comes, and all that come within `gather` after it.
async fn next_batch(
    todo: &mut mpsc::UnboundedReceiver<Vec<DnatTarget>>,
    gather: Duration,
) -> Option<Vec<DnatTarget>> {
    let mut targets = todo.recv().await?;
    let until = Instant::now() + gather;
    while let Ok(Some(more)) = tokio::time::timeout_at(until, todo.recv()).await {
        targets.extend(more);
    }
    Some(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::L4Proto;

    fn mapping(host_port: u16) -> DnatTarget {
        DnatTarget {
            proto: L4Proto::Udp,
            host_port,
            target: "fd00:1::2".parse().expect("address"),
            target_port: 53,
        }
    }

    /// Removals that come one after another (a container at a time, as
    /// `docker compose down` removes them) are one batch, so one walk of
    /// the kernel's conntrack table; one that comes after the batch was
    /// taken is the next batch.
    #[tokio::test(start_paused = true)]
    async fn removals_within_the_gathering_time_are_one_batch() {
        let (tx, mut todo) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for port in [1, 2, 3] {
                let _ = tx.send(vec![mapping(port)]);
                tokio::time::sleep(FLOW_GATHER / 10).await;
            }
            tokio::time::sleep(FLOW_GATHER * 5).await;
            let _ = tx.send(vec![mapping(4)]);
        });
        let first = next_batch(&mut todo, FLOW_GATHER).await;
        assert_eq!(first, Some(vec![mapping(1), mapping(2), mapping(3)]));
        let second = next_batch(&mut todo, FLOW_GATHER).await;
        assert_eq!(second, Some(vec![mapping(4)]), "the one that came later");
        assert_eq!(
            next_batch(&mut todo, FLOW_GATHER).await,
            None,
            "no sender left"
        );
    }
}
