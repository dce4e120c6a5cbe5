//! What the loop shows of itself (`dock6 status`, the metrics): Docker's
//! connection state, counters, the last pass, and the parts of the last plan
//! worth showing. Filled from what the loop already has, never planned anew;
//! published to the status socket's board after every pass.

use std::time::{Duration, SystemTime};

use super::status_server::Board;
use super::view::DockerUpdate;
use crate::apply::{DockerFirewall, TableAction};
use crate::plan::Plan;
use crate::snapshot::Container;
use crate::status::{self, DockerStatus, PassStatus, Problem, Status, rfc3339};

pub(super) struct Shown {
    pub board: Board,
    pub status: Status,
    docker_ever_connected: bool,
    /// What the current pass could not do (filled as it goes).
    pub pass_errors: Vec<String>,
    pub table: String,
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
            status,
            docker_ever_connected: false,
            pass_errors: Vec::new(),
            table: "none".into(),
            warnings: Vec::new(),
        }
    }

    /// Docker's connection state from the watcher's updates; true when this
    /// one is a reconnect.
    pub fn docker_update(&mut self, update: &DockerUpdate) -> bool {
        let (state, reconnect) = match update {
            DockerUpdate::Full { .. } => ("connected", self.status.docker.state == "unreachable"),
            DockerUpdate::Lost => ("unreachable", false),
            _ => return false,
        };
        if state == "connected" {
            self.docker_ever_connected = true;
        }
        if reconnect {
            self.status.counters.docker_reconnects += 1;
        }
        if self.status.docker.state != state {
            self.status.docker = DockerStatus {
                state: state.into(),
                since: Some(rfc3339(SystemTime::now())),
            };
        }
        reconnect
    }

    pub fn firewall(&mut self, seen: &DockerFirewall) {
        let (mode, reason) = match seen {
            DockerFirewall::On(signature) => (
                "companion",
                format!(
                    "Docker's own IPv6 firewall is on ({signature}): NAT66, published ports and \
                     filtering are Docker's; dock6 does sysctls and NDP proxying"
                ),
            ),
            DockerFirewall::LoneChain(chain) => (
                "owner",
                format!("chain {chain} is not Docker's firewall (nothing jumps to it)"),
            ),
            DockerFirewall::Off => ("owner", "Docker's ip6tables is off".to_string()),
        };
        self.status.mode = mode.into();
        self.status.mode_reason = reason;
    }

    /// What a pass planned: networks, containers with their ports, proxy
    /// entries, the plan's warnings.
    pub fn plan(&mut self, plan: &Plan, containers: &[Container]) {
        self.status.uplink = plan.uplink.clone();
        self.status.networks = status::networks(plan);
        self.status.containers = status::containers(containers, &plan.ruleset);
        self.status.proxy_entries = status::proxy_entries(plan);
        self.warnings = status::plan_warnings(plan);
    }

    pub fn table_action(&mut self, action: Option<TableAction>) {
        self.table = match action {
            Some(a) => a.to_string(),
            None => "not applied".into(),
        };
        if let Some(TableAction::Updated(n)) = action {
            self.status.counters.element_changes += n as u64;
        }
    }

    /// The end of pass `number`: its result and the problems still standing.
    pub fn pass_done(&mut self, number: u64, took: Duration, converged: bool, synced: bool) {
        let result = match (synced, converged) {
            (false, true) => "waiting for Docker",
            (_, true) => "converged",
            (_, false) => "failed",
        };
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
        problems.extend(
            std::mem::take(&mut self.pass_errors)
                .into_iter()
                .map(|text| Problem {
                    level: "error".into(),
                    text,
                }),
        );
        self.status.problems = problems;
    }

    pub fn publish(&self, transactions: u64) {
        let mut status = self.status.clone();
        status.counters.transactions = transactions;
        *self.board.write().unwrap_or_else(|e| e.into_inner()) = status;
    }
}
