//! One apply of a whole plan, part by part: the table, the sysctls, the
//! proxy-NDP entries, the conntrack deletes. Each part runs and reports on
//! its own, so one failing part (a sysctl of an interface that went away)
//! does not keep the others from converging; the caller retries what failed.
//!
//! The one ordering that matters for safety is kept: forwarding is never
//! switched on unless the table (the filtering) is in, nor before the
//! uplink's `accept_ra` is set (forwarding would make the host drop router
//! advertisements, and with them its default route).

use tracing::{debug, info, warn};

use super::conntrack::DnatTarget;
use super::kernel::{ApplyError, Kernel, TableAction};
use super::ndp::ProxySyncReport;
use super::routes::RouteSyncReport;
use super::sysctl::SysctlOutcome;
use crate::nft::{ElementChange, Table, TableDiff, diff};
use crate::plan::removed_dnat_targets;
use crate::plan::{CHAIN_NOT_DOCKER, HostRoute, NaSource, Plan, ProxyEntry, SysctlSetting};

/// The outcome of one part of a pass.
#[derive(Debug)]
pub enum Part<T> {
    Done(T),
    Failed(ApplyError),
    /// Not attempted, because a part it depends on failed (the reason).
    Skipped(String),
}

impl<T> Part<T> {
    fn of(result: Result<T, ApplyError>) -> Part<T> {
        match result {
            Ok(t) => Part::Done(t),
            Err(e) => Part::Failed(e),
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Part::Done(_))
    }

    /// What went wrong, if anything.
    fn problem(&self) -> Option<String> {
        match self {
            Part::Done(_) => None,
            Part::Failed(e) => Some(e.to_string()),
            Part::Skipped(why) => Some(format!("skipped: {why}")),
        }
    }
}

/// One sysctl of the plan and what became of it.
#[derive(Debug)]
pub struct SysctlPart {
    pub key: String,
    pub outcome: Part<SysctlOutcome>,
}

#[derive(Debug)]
pub struct ApplyReport {
    /// `None` when the pass does not program the table (companion mode).
    pub table: Option<Part<TableAction>>,
    pub sysctls: Vec<SysctlPart>,
    pub proxies: Part<ProxySyncReport>,
    /// `/128` routes into bridges for proxied addresses (see `HostRoute`).
    pub routes: Part<RouteSyncReport>,
    /// `None` when no published mapping went away.
    pub conntrack: Option<Part<usize>>,
    /// The mappings whose flows were to be deleted (to try again if that failed).
    pub flow_targets: Vec<DnatTarget>,
}

impl ApplyReport {
    /// One line per part that failed or was skipped (per-entry proxy-NDP
    /// failures included); empty when the kernel holds the whole plan.
    pub fn failures(&self) -> Vec<String> {
        self.failures_by_kind()
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    }

    /// The same, each with the kind of part (`table`, `sysctl`,
    /// `proxy_ndp`, `host_route`, `conntrack`), as the metrics count them.
    pub fn failures_by_kind(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(p) = self.table.as_ref().and_then(Part::problem) {
            out.push(("table", format!("table: {p}")));
        }
        for s in &self.sysctls {
            match &s.outcome {
                // The error names the sysctl already.
                Part::Failed(e) => out.push(("sysctl", e.to_string())),
                other => out.extend(
                    other
                        .problem()
                        .map(|p| ("sysctl", format!("sysctl {}: {p}", s.key))),
                ),
            }
        }
        match &self.proxies {
            Part::Done(r) => out.extend(
                r.errors
                    .iter()
                    .map(|e| ("proxy_ndp", format!("proxy-NDP: {e}"))),
            ),
            other => out.extend(
                other
                    .problem()
                    .map(|p| ("proxy_ndp", format!("proxy-NDP entries: {p}"))),
            ),
        }
        match &self.routes {
            Part::Done(r) => out.extend(
                r.errors
                    .iter()
                    .map(|e| ("host_route", format!("host route: {e}"))),
            ),
            other => out.extend(
                other
                    .problem()
                    .map(|p| ("host_route", format!("host routes: {p}"))),
            ),
        }
        if let Some(p) = self.conntrack.as_ref().and_then(Part::problem) {
            out.push(("conntrack", format!("conntrack deletes: {p}")));
        }
        out
    }

    pub fn is_complete(&self) -> bool {
        self.failures().is_empty()
    }

    /// What happened to the table, if it was programmed.
    pub fn table_action(&self) -> Option<TableAction> {
        match &self.table {
            Some(Part::Done(action)) => Some(*action),
            _ => None,
        }
    }
}

/// Applies a whole plan: the table first, then the sysctls in the planned
/// order (accept_ra before forwarding), the proxy-NDP entries, and the
/// conntrack entries of mappings that went away (after the new table is in,
/// so no flow can be re-created with an old mapping).
///
/// Unless `previous.replace`, only the element differences to
/// `previous.table` are sent (when the structure is the same); a failed
/// element batch (someone changed the table) falls back to an atomic
/// whole-table replace.
pub fn apply_plan(kernel: &mut dyn Kernel, plan: &Plan, previous: Previous<'_>) -> ApplyReport {
    let base = if previous.replace {
        None
    } else {
        previous.table
    };
    let table = Part::of(apply_table(kernel, &plan.ruleset, base));
    let mut flow_targets = previous.stale_flows.to_vec();
    if let Some(last) = previous.table {
        flow_targets.extend(removed_dnat_targets(last, &plan.ruleset));
    }
    finish_pass(
        kernel,
        table,
        &HostState::of(plan),
        flow_targets,
        previous.defer_flows,
    )
}

/// What the table is to get in one pass.
#[derive(Debug)]
pub enum TableChange {
    /// The whole table, replaced atomically; `since`: the element changes
    /// from the table of dock6's last commit to this one, when the caller
    /// knows that the kernel got that table (only they are then sent,
    /// unless someone else committed since).
    Replace {
        table: Table,
        since: Option<Vec<ElementChange>>,
    },
    /// Element changes to the table of that name, in one batch.
    Elements {
        table: String,
        changes: Vec<ElementChange>,
    },
    Unchanged,
}

/// The host-side part of a plan: what [`apply_host`] makes true.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub sysctls: Vec<SysctlSetting>,
    pub host_routes: Vec<HostRoute>,
    pub proxy_entries: Vec<ProxyEntry>,
    pub na_source: NaSource,
    /// dock6 turns (or turned) forwarding on and forwards Docker traffic
    /// only: that is recorded before forwarding is switched on.
    pub docker_only_forwarding: bool,
}

impl HostState {
    pub fn of(plan: &Plan) -> HostState {
        HostState {
            sysctls: plan.sysctls.clone(),
            host_routes: plan.host_routes.clone(),
            proxy_entries: plan.proxy_entries.clone(),
            na_source: plan.na_source,
            docker_only_forwarding: plan
                .ruleset
                .chains
                .iter()
                .any(|c| c.name == CHAIN_NOT_DOCKER),
        }
    }
}

/// One pass of the agent, which keeps the plan itself and knows what
/// changed: `table` as given (a failed element batch fails the table part:
/// the caller replaces the whole table next), then the host as in
/// [`apply_plan`]. `flow_targets`: the mappings whose flows are to go.
pub fn apply_pass(
    kernel: &mut dyn Kernel,
    table: &TableChange,
    host: &HostState,
    flow_targets: Vec<DnatTarget>,
    defer_flows: bool,
) -> ApplyReport {
    let table = apply_table_change(kernel, table);
    finish_pass(kernel, table, host, flow_targets, defer_flows)
}

/// The table part of [`apply_pass`] alone (the caller finishes the pass
/// with [`finish_pass`]).
pub fn apply_table_change(kernel: &mut dyn Kernel, table: &TableChange) -> Part<TableAction> {
    Part::of(match table {
        TableChange::Replace { table, since } => replace_table(kernel, table, since.as_deref()),
        TableChange::Elements { table, changes } => kernel
            .update_elements(table, changes)
            .map(|()| TableAction::Updated(changes.len())),
        TableChange::Unchanged => Ok(TableAction::Unchanged),
    })
}

/// The host after the table (`table`: how that went), and the conntrack
/// deletes once it is in.
pub fn finish_pass(
    kernel: &mut dyn Kernel,
    table: Part<TableAction>,
    host: &HostState,
    mut flow_targets: Vec<DnatTarget>,
    defer_flows: bool,
) -> ApplyReport {
    let table_in = table.is_done();
    let HostParts {
        sysctls,
        routes,
        proxies,
    } = apply_host(kernel, host, table_in);
    flow_targets.sort();
    flow_targets.dedup();
    let conntrack = match (flow_targets.is_empty(), table_in) {
        (true, _) => None,
        (false, true) if defer_flows => None,
        (false, true) => Some(Part::of(delete_flows(kernel, &flow_targets))),
        (false, false) => Some(Part::Skipped("the new table is not in".into())),
    };
    ApplyReport {
        table: Some(table),
        sysctls,
        proxies,
        routes,
        conntrack,
        flow_targets,
    }
}

/// What the kernel had before this apply, as far as dock6 knows.
#[derive(Debug, Default, Clone, Copy)]
pub struct Previous<'a> {
    /// The table last applied with success.
    pub table: Option<&'a Table>,
    /// Replace the whole table even if only elements differ (a resync, a
    /// restore, or an earlier failure).
    pub replace: bool,
    /// Mappings whose flows are still to be deleted (an earlier delete failed).
    pub stale_flows: &'a [DnatTarget],
    /// Leave the conntrack deletes to the caller: `flow_targets` of the
    /// report, once the table is in. (The agent runs them on a thread of
    /// their own: a delete walks the kernel's whole conntrack hash table
    /// once per batch of mappings, and the next pass need not wait for that.)
    pub defer_flows: bool,
}

/// What a companion of Docker's own IPv6 firewall does: sysctls and
/// proxy-NDP entries only (Docker filters its bridges).
pub fn apply_companion(kernel: &mut dyn Kernel, host: &HostState) -> ApplyReport {
    let HostParts {
        sysctls,
        routes,
        proxies,
    } = apply_host(kernel, host, true);
    ApplyReport {
        table: None,
        sysctls,
        proxies,
        routes,
        conntrack: None,
        flow_targets: Vec::new(),
    }
}

fn delete_flows(kernel: &mut dyn Kernel, gone: &[DnatTarget]) -> Result<usize, ApplyError> {
    let n = kernel.delete_dnat_flows(gone)?;
    debug!(
        "{n} conntrack entries of {} removed mappings deleted",
        gone.len()
    );
    Ok(n)
}

struct HostParts {
    sysctls: Vec<SysctlPart>,
    routes: Part<RouteSyncReport>,
    proxies: Part<ProxySyncReport>,
}

/// The sysctls, then the host routes (so a container is routed to before
/// its address is answered for), then the proxy-NDP entries.
/// `filtering_in`: the table is in (or Docker filters), so forwarding may be
/// switched on.
fn apply_host(kernel: &mut dyn Kernel, plan: &HostState, filtering_in: bool) -> HostParts {
    let started = std::time::Instant::now();
    let mut sysctls: Vec<SysctlPart> = Vec::new();
    for setting in &plan.sysctls {
        let accept_ra_failed = sysctls
            .iter()
            .any(|s| s.key.ends_with(".accept_ra") && !s.outcome.is_done());
        let outcome = match blocker(setting, filtering_in, accept_ra_failed) {
            Some(why) => Part::Skipped(why.into()),
            None => Part::of(apply_sysctl(kernel, setting, plan.docker_only_forwarding)),
        };
        sysctls.push(SysctlPart {
            key: setting.key(),
            outcome,
        });
    }
    let sysctls_took = started.elapsed();
    let routes = Part::of(kernel.sync_host_routes(&plan.host_routes));
    let routes_took = started.elapsed() - sysctls_took;
    let proxies = Part::of(kernel.sync_proxy_entries(&plan.proxy_entries, plan.na_source));
    if let Part::Done(report) = &proxies {
        log_proxies(report);
    }
    debug!(
        sysctls_ms = millis(sysctls_took),
        routes_ms = millis(routes_took),
        proxies_ms = millis(started.elapsed() - sysctls_took - routes_took),
        "host side applied"
    );
    HostParts {
        sysctls,
        routes,
        proxies,
    }
}

/// A duration in milliseconds, for timing fields of debug logs.
pub fn millis(took: std::time::Duration) -> f64 {
    took.as_secs_f64() * 1e3
}

/// Why `setting` must not be applied now, if so: forwarding waits for the
/// filtering and for accept_ra.
fn blocker(
    setting: &SysctlSetting,
    filtering_in: bool,
    accept_ra_failed: bool,
) -> Option<&'static str> {
    let forwarding_on = setting.name == "forwarding" && setting.value != 0;
    match (forwarding_on, filtering_in, accept_ra_failed) {
        (true, false, _) => Some("the table is not in, so forwarding is not switched on"),
        (true, true, true) => Some("accept_ra failed, so forwarding is not switched on"),
        _ => None,
    }
}

/// `docker_only_forwarding`: forwarding is switched on only once the
/// record of that is written (without it, a flushed table would leave a
/// later dock6 taking forwarding for the operator's).
fn apply_sysctl(
    kernel: &mut dyn Kernel,
    setting: &SysctlSetting,
    docker_only_forwarding: bool,
) -> Result<SysctlOutcome, ApplyError> {
    if docker_only_forwarding && turns_forwarding_on(setting) {
        kernel.remember_forwarding_by_dock6()?;
    }
    let outcome = kernel.apply_sysctl(setting);
    super::progress::beat();
    let outcome = outcome?;
    debug!("{outcome}");
    if setting.name == "accept_ra" && outcome.changed() {
        // Forwarding is about to stop the kernel from soliciting: ask now.
        match kernel.solicit_router(&setting.scope) {
            Ok(()) => info!("router solicitation sent on {}", setting.scope),
            Err(e) => warn!("{e}"),
        }
    }
    Ok(outcome)
}

fn turns_forwarding_on(setting: &SysctlSetting) -> bool {
    setting.scope == "all" && setting.name == "forwarding" && setting.value != 0
}

fn log_proxies(report: &ProxySyncReport) {
    for entry in &report.added {
        info!(
            "proxy-NDP entry {} on {} added",
            entry.address, entry.interface
        );
    }
    for entry in &report.removed {
        info!("proxy-NDP entry {entry} removed");
    }
}

fn apply_table(
    kernel: &mut dyn Kernel,
    table: &Table,
    previous: Option<&Table>,
) -> Result<TableAction, ApplyError> {
    match previous.map(|p| diff(p, table)) {
        Some(TableDiff::Same) => return Ok(TableAction::Unchanged),
        Some(TableDiff::Elements(changes)) => match kernel.update_elements(&table.name, &changes) {
            Ok(()) => return Ok(TableAction::Updated(changes.len())),
            Err(e) => warn!("element update failed ({e}); replacing the whole table"),
        },
        Some(TableDiff::Structure) | None => {}
    }
    replace_table(kernel, table, None)
}

fn replace_table(
    kernel: &mut dyn Kernel,
    table: &Table,
    since: Option<&[ElementChange]>,
) -> Result<TableAction, ApplyError> {
    kernel.replace_table(table, since)?;
    info!(
        chains = table.chains.len(),
        elements = table.element_count(),
        "table inet {} replaced",
        table.name
    );
    Ok(TableAction::Replaced)
}

#[cfg(test)]
pub(crate) mod tests;
