//! What the loop shows of itself (`dock6 status`, the metrics): Docker's
//! connection state, counters, the last pass, the networks and the plan's
//! warnings. Filled from what the loop already has, never planned anew;
//! published to the status socket's board after every pass. (Containers
//! and proxy entries are rendered only when asked: `status_server`.)

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::metrics::Metrics;
use super::prefixes::{MappingChange, Mappings};
use super::status_server::Board;
use super::view::DockerUpdate;
use crate::apply::TableAction;
use crate::firewall_role::FirewallRole;
use crate::plan::{Note, Planner};
use crate::status::{self, DockerStatus, PassStatus, Problem, Status, rfc3339};

pub(super) struct Shown {
    pub board: Board,
    pub metrics: Arc<Metrics>,
    status: Status,
    docker_ever_connected: bool,
    /// What the current pass could not do (filled as it goes).
    pass_errors: Vec<String>,
    /// What the last pass could not do.
    last_errors: Vec<String>,
    /// Transactions already counted in the metrics.
    transactions_counted: u64,
    table: String,
    /// The last plan's warnings.
    warnings: Vec<Problem>,
}

impl Shown {
    pub fn new() -> Shown {
        let status = Status {
            format: status::FORMAT,
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            started: rfc3339(SystemTime::now()),
            docker: DockerStatus {
                state: "connecting".into(),
                since: None,
            },
            mode: "unknown".into(),
            mode_reason: "not read yet".into(),
            ..Default::default()
        };
        Shown {
            board: Default::default(),
            metrics: Arc::new(Metrics::new()),
            status,
            transactions_counted: 0,
            docker_ever_connected: false,
            pass_errors: Vec::new(),
            last_errors: Vec::new(),
            table: "none".into(),
            warnings: Vec::new(),
        }
    }

    /// Docker's connection state from the watcher's updates; true when it
    /// changed (the loop publishes it then, without waiting for a pass).
    pub fn docker_update(&mut self, update: &DockerUpdate) -> bool {
        let (state, reconnect) = match update {
            DockerUpdate::Full { .. } => ("connected", self.status.docker.state == "unreachable"),
            DockerUpdate::Lost => ("unreachable", false),
            _ => return false,
        };
        match state {
            "connected" => {
                self.docker_ever_connected = true;
                self.metrics.docker_up.set(1);
            }
            _ => {
                self.metrics.docker_up.set(0);
                self.metrics.error("docker");
            }
        }
        if reconnect {
            self.status.counters.docker_reconnects += 1;
            self.metrics.docker_reconnects.inc();
        }
        if self.status.docker.state == state {
            return false;
        }
        self.status.docker = DockerStatus {
            state: state.into(),
            since: Some(rfc3339(SystemTime::now())),
        };
        true
    }

    pub fn firewall(&mut self, role: &FirewallRole) {
        let (mode, reason) = role.status();
        self.status.mode = mode.into();
        self.status.mode_reason = reason;
    }

    /// What a pass planned, as far as it is shown at every pass: the
    /// uplink, the networks and the counts. Containers and proxy entries
    /// are read off the planner when `dock6 status` asks ([`containers`]).
    pub fn planned(&mut self, planner: &Planner, containers: usize) {
        self.status.uplink = planner.uplink().map(str::to_string);
        self.status.networks = status::networks(planner.networks());
        self.metrics.containers.set(containers as i64);
        self.metrics
            .published_ports
            .set(planner.published_count() as i64);
        self.metrics.proxy_entries.set(planner.proxy_count() as i64);
    }

    /// Where each `nptv6` network is mapped now (after [`Shown::planned`]).
    pub fn mappings(&mut self, mappings: &Mappings) {
        for n in &mut self.status.networks {
            n.nptv6 = mappings.get(&n.name).map(|m| status::Nptv6Status {
                follows: m.source.to_string(),
                prefix: m.prefix.map(|p| p.to_string()),
                since: rfc3339(m.since),
                changes: m.changes,
            });
        }
        self.metrics.mappings(mappings);
    }

    /// A mapping moved: counted, and its old prefix no longer shown.
    pub fn mapping_moved(&mut self, change: &MappingChange) {
        self.metrics.mapping_moved(change);
    }

    /// The plan's notes changed: its warnings are problems.
    pub fn plan_notes(&mut self, notes: &[Note]) {
        self.warnings = status::plan_warnings(notes);
    }

    /// Something the current pass could not do, of `kind` (as the metrics count errors).
    pub fn error(&mut self, kind: &str, text: String) {
        self.metrics.error(kind);
        self.pass_errors.push(text);
    }

    pub fn tamper_restore(&mut self) {
        self.status.counters.tamper_restores += 1;
        self.metrics.tamper_restores.inc();
    }

    /// What the pass did to the table, where it was no plan's apply.
    pub fn table_note(&mut self, note: &str) {
        self.table = note.into();
    }

    pub fn table_action(&mut self, action: Option<TableAction>) {
        self.table = match action {
            Some(a) => a.to_string(),
            None => "not applied".into(),
        };
        if let Some(TableAction::Updated(n)) = action {
            self.status.counters.element_changes += n as u64;
            self.metrics.element_changes.inc_by(n as u64);
        }
    }

    /// The end of pass `number`: its result and the problems still standing.
    pub fn pass_done(&mut self, number: u64, took: Duration, converged: bool, synced: bool) {
        let (result, label) = match (synced, converged) {
            (false, true) => ("waiting for Docker", "waiting_for_docker"),
            (_, true) => ("converged", "converged"),
            (_, false) => ("failed", "failed"),
        };
        self.metrics.pass(label, took);
        self.status.counters.passes = number;
        if !converged {
            self.status.counters.failed_passes += 1;
        }
        self.status.last_pass = Some(PassStatus {
            number,
            at: rfc3339(SystemTime::now()),
            duration_ms: took.as_secs_f64() * 1000.0,
            result: result.into(),
            table: std::mem::replace(&mut self.table, "none".into()),
        });
        self.last_errors = std::mem::take(&mut self.pass_errors);
    }

    /// Problems still standing: the plan's warnings, Docker not answering,
    /// what the last pass could not apply.
    fn problems(&self) -> Vec<Problem> {
        let mut problems = self.warnings.clone();
        let docker = match (
            self.docker_ever_connected,
            self.status.docker.state.as_str(),
        ) {
            (false, _) => Some("no answer from Docker yet: nothing is planned from it".to_string()),
            (true, "unreachable") => Some(format!(
                "Docker unreachable since {}: the kernel keeps the last plan",
                self.status.docker.since.as_deref().unwrap_or("?")
            )),
            _ => None,
        };
        problems.extend(docker.map(|text| Problem {
            level: "warning".into(),
            text,
        }));
        problems.extend(self.last_errors.iter().map(|text| Problem {
            level: "error".into(),
            text: text.clone(),
        }));
        problems
    }

    pub fn publish(&mut self, transactions: u64) {
        self.metrics
            .transactions
            .inc_by(transactions.saturating_sub(self.transactions_counted));
        self.transactions_counted = transactions;
        let mut status = self.status.clone();
        status.counters.transactions = transactions;
        status.problems = self.problems();
        *self.board.write().unwrap_or_else(|e| e.into_inner()) = status;
    }
}
