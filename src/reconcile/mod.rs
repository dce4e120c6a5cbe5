//! The reconcile loop: one `select!` over Docker updates, host (netlink)
//! events, the resync timer, SIGHUP and shutdown. Bursts are coalesced by a
//! short debounce; each pass plans the whole desired state and sends the
//! kernel only the difference.

mod docker;
mod kernel_thread;
mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rtnetlink::MulticastGroup;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use crate::apply::{ApplyError, TableAction};
use crate::config::{Config, ConfigError};
use crate::nft::Table;
use crate::plan::{self, Level, Note};
use crate::source::nftables::{self, NftChange, NftMonitor};
pub use docker::Backoff;
use kernel_thread::KernelThread;
pub use view::{DockerUpdate, DockerView};

/// How long a burst of events may go on before a pass runs.
const DEBOUNCE: Duration = Duration::from_millis(150);

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub config_path: Option<PathBuf>,
    pub docker_host: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the netlink route socket: {0}")]
    Netlink(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Kernel(#[from] ApplyError),
    #[error(transparent)]
    Lock(#[from] crate::agent_lock::LockError),
}

/// What the loop remembers between passes.
struct Loop {
    config_path: Option<PathBuf>,
    config: Config,
    view: DockerView,
    kernel: KernelThread,
    handle: rtnetlink::Handle,
    /// The table last applied with success: what element changes are
    /// computed against, and which published mappings existed.
    last_table: Option<Arc<Table>>,
    /// The next pass replaces the whole table (resync, restore, after an error).
    replace_next: bool,
    notes: Vec<Note>,
    passes: u64,
    /// systemd has been told the agent is ready.
    ready: bool,
    transactions: u64,
    bootstrap_checked: bool,
    /// Docker's own IPv6 firewall was seen: dock6 runs as its companion.
    companion: Option<bool>,
    /// dock6 turned forwarding on (it was 0), so it forwards Docker traffic
    /// only. Kept here too, so a foreign `nft flush ruleset` (which takes
    /// the record in the table with it) does not forget it.
    forwarding_by_dock6: bool,
}

pub async fn run(options: RunOptions) -> Result<(), RunError> {
    let config = Config::load(options.config_path.as_deref())?;
    let _lock = crate::agent_lock::acquire()?;
    let (docker_tx, mut docker_rx) = mpsc::channel(1024);
    let (resync_tx, resync_rx) = mpsc::channel(1);
    tokio::spawn(docker::watch(
        options.docker_host.clone(),
        docker_tx,
        resync_rx,
    ));

    let groups = [
        MulticastGroup::Link,
        MulticastGroup::Ipv6Ifaddr,
        MulticastGroup::Ipv6Route,
    ];
    let (connection, handle, mut netlink_events) =
        rtnetlink::new_multicast_connection(&groups).map_err(RunError::Netlink)?;
    tokio::spawn(connection);

    // Before the first apply, so that no change in between is missed.
    let mut nft_changes = match nftables::subscribe() {
        Ok(monitor) => Some(monitor),
        Err(e) => {
            warn!(
                "no nftables change notifications ({e}); a changed table is restored at the next resync only"
            );
            None
        }
    };
    let mut ours_touched = false;

    let mut sighup = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    let mut resync = tokio::time::interval(config.resync_interval);
    resync.tick().await;

    let mut state = Loop {
        config_path: options.config_path,
        config,
        view: DockerView::default(),
        kernel: KernelThread::start()?,
        handle,
        last_table: None,
        replace_next: true,
        notes: Vec::new(),
        passes: 0,
        ready: false,
        transactions: 0,
        bootstrap_checked: false,
        companion: None,
        forwarding_by_dock6: false,
    };
    state.forwarding_by_dock6 = state
        .kernel
        .call(|_| crate::apply::forwarding_enabled_by_dock6())
        .await
        .unwrap_or_else(|e| {
            warn!("cannot read whether dock6 turned forwarding on: {e}");
            false
        });
    state.check_docker_firewall().await;
    let mut due: Option<Instant> = Some(Instant::now());
    loop {
        let deadline = due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            Some(update) = docker_rx.recv() => {
                if state.view.apply(update) {
                    due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                }
            }
            Some(_) = netlink_events.next() => {
                due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
            }
            change = next_nft_change(&mut nft_changes) => {
                if state.nft_change(change, &mut ours_touched) {
                    // Restore at once: someone else's commit changed or deleted the table.
                    due = Some(Instant::now());
                }
            }
            _ = resync.tick() => {
                let _ = resync_tx.try_send(());
                state.replace_next = true;
                due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
            }
            _ = sighup.recv() => {
                state.reload_config();
                let _ = resync_tx.try_send(());
                state.replace_next = true;
                resync = tokio::time::interval(state.config.resync_interval);
                resync.tick().await;
                due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tokio::time::sleep_until(deadline), if due.is_some() => {
                due = None;
                state.passes += 1;
                let span = info_span!("reconcile", pass = state.passes);
                state.pass().instrument(span).await;
                state.notify_ready();
            }
        }
    }
    info!(
        passes = state.passes,
        transactions = state.transactions,
        "dock6 stopping; its rules stay in the kernel"
    );
    Ok(())
}

/// The next nftables change, or never when there is no subscription (it is
/// dropped after a read error, which would otherwise repeat at once).
async fn next_nft_change(
    monitor: &mut Option<NftMonitor>,
) -> Result<NftChange, nftables::NftMonitorError> {
    match monitor {
        Some(m) => {
            let change = m.next().await;
            if change.is_err() {
                *monitor = None;
            }
            change
        }
        None => std::future::pending().await,
    }
}

impl Loop {
    /// Handles one nftables notification; true when the table must be
    /// restored now. A commit touching `table inet dock6` that dock6 did not
    /// make (`nft flush ruleset`, a reload of nftables.conf) calls for a
    /// whole-table replace.
    fn nft_change(
        &mut self,
        change: Result<NftChange, nftables::NftMonitorError>,
        ours_touched: &mut bool,
    ) -> bool {
        match change {
            Ok(NftChange::OurTableTouched { what, .. }) => {
                debug!("table inet dock6: {what}");
                *ours_touched = true;
                false
            }
            Ok(NftChange::Generation(generation)) => {
                let foreign = std::mem::take(ours_touched) && !generation.is_from_this_process();
                if foreign {
                    warn!(
                        "table inet dock6 was changed by {} (pid {}): restoring it",
                        generation.comm, generation.pid
                    );
                    self.force_restore();
                }
                foreign
            }
            Ok(NftChange::Overrun) | Ok(NftChange::Unrecognized { .. }) => {
                *ours_touched = false;
                warn!(
                    "nftables notifications lost or not understood: replacing the table to be sure"
                );
                self.force_restore();
                true
            }
            Ok(NftChange::OtherTable { .. }) => false,
            Err(e) => {
                error!(
                    "nftables change notifications stopped ({e}); a changed table is restored at the next resync"
                );
                false
            }
        }
    }

    /// systemd (`Type=notify`, ordered before docker.service): ready after
    /// the first pass, when the kernel holds either the plan, the fail-closed
    /// table, or the table kept from an earlier run — not after Docker is up.
    fn notify_ready(&mut self) {
        if self.ready {
            return;
        }
        self.ready = true;
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            warn!("cannot notify systemd: {e}");
        }
    }

    fn force_restore(&mut self) {
        self.replace_next = true;
        self.bootstrap_checked = false;
    }

    fn reload_config(&mut self) {
        match Config::load(self.config_path.as_deref()) {
            Ok(config) => {
                info!("configuration reloaded");
                self.config = config;
            }
            Err(e) => error!("configuration not reloaded, keeping the previous one: {e}"),
        }
    }

    async fn pass(&mut self) {
        if !self.view.synced {
            self.bootstrap_if_no_table().await;
            return;
        }
        let mut host = match crate::source::host::host_facts(&self.handle).await {
            Ok(host) => host,
            Err(e) => {
                warn!("{e}; keeping what the kernel has");
                return;
            }
        };
        host.forwarding_enabled_by_dock6 = self.forwarding_by_dock6;
        let plan = plan::plan(&self.config, &self.view.snapshot(host));
        self.log_new_notes(&plan.notes);
        if self.check_docker_firewall().await {
            self.replace_next = true;
            match self
                .kernel
                .call(move |k| crate::apply::apply_host(k, &plan))
                .await
            {
                Ok(_) => info!(
                    containers = self.view.container_count(),
                    "reconciled (companion: sysctls and proxy-NDP only)"
                ),
                Err(e) => error!("{e}"),
            }
            return;
        }
        let last = self.last_table.clone();
        let replace = self.replace_next;
        let result = self
            .kernel
            .call(move |k| {
                let previous = if replace { None } else { last.as_deref() };
                let report = crate::apply::apply_plan(k, &plan, previous)?;
                // After the new table is in: no flow can be re-created with an old mapping.
                if let Some(last) = &last {
                    let gone = crate::apply::removed_dnat_targets(last, &plan.ruleset);
                    if !gone.is_empty()
                        && let Err(e) = k.delete_dnat_flows(&gone)
                    {
                        warn!("conntrack entries of removed mappings not deleted: {e}");
                    }
                }
                Ok((report, plan.ruleset))
            })
            .await;
        match result {
            Ok((report, ruleset)) => {
                if report.table == TableAction::Unchanged {
                    debug!(
                        containers = self.view.container_count(),
                        "reconciled: nothing to change"
                    );
                } else {
                    self.transactions += 1;
                    info!(
                        table = %report.table,
                        containers = self.view.container_count(),
                        transactions = self.transactions,
                        "reconciled"
                    );
                }
                self.forwarding_by_dock6 = ruleset
                    .chains
                    .iter()
                    .any(|c| c.name == plan::CHAIN_NOT_DOCKER);
                self.last_table = Some(Arc::new(ruleset));
                self.replace_next = false;
            }
            Err(e) => {
                error!("{e}");
                self.replace_next = true;
            }
        }
    }

    /// Whether Docker's own IPv6 firewall is on; says so loudly whenever
    /// that changes. As its companion dock6 leaves NAT and filtering to
    /// Docker (and removes its own table, which would otherwise fight it).
    async fn check_docker_firewall(&mut self) -> bool {
        let on = match self.kernel.call(|k| k.docker_ip6_firewall()).await {
            Ok(on) => on,
            Err(e) => {
                warn!("cannot tell whether Docker's IPv6 firewall is on: {e}");
                self.companion.unwrap_or(false)
            }
        };
        if self.companion != Some(on) {
            if on {
                warn!(
                    "Docker's own IPv6 firewall (\"ip6tables\": true) is on: dock6 runs as its companion, leaving NAT66, \
                     published ports and filtering to Docker and doing sysctls and NDP proxying only; \
                     set \"ip6tables\": false in daemon.json to let dock6 own IPv6 firewalling (recommended)"
                );
                match self
                    .kernel
                    .call(|k| k.delete_table(crate::nft::TABLE_NAME))
                    .await
                {
                    Ok(true) => info!("removed table inet dock6 so as not to fight Docker's rules"),
                    Ok(false) => {}
                    Err(e) => error!("{e}"),
                }
            } else {
                info!(
                    "dock6 owns IPv6 firewalling for Docker bridges (table inet dock6); Docker's ip6tables is off"
                );
            }
            self.companion = Some(on);
        }
        on
    }

    /// Before the first Docker snapshot: fail closed, but only where there is
    /// no table at all (a table left by an earlier run stays as it is).
    async fn bootstrap_if_no_table(&mut self) {
        if self.bootstrap_checked || self.companion == Some(true) {
            return;
        }
        self.bootstrap_checked = true;
        let result = self
            .kernel
            .call(|k| match k.table_exists(crate::nft::TABLE_NAME)? {
                true => Ok(false),
                false => k.replace_table(&plan::bootstrap_table()).map(|()| true),
            })
            .await;
        match result {
            Ok(true) => {
                self.transactions += 1;
                info!("no Docker snapshot yet and no table: installed the fail-closed table");
            }
            Ok(false) => info!("no Docker snapshot yet: keeping the table already in the kernel"),
            Err(e) => error!("{e}"),
        }
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
