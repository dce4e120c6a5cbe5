//! The reconcile loop: one `select!` over Docker updates, host (netlink)
//! events, the resync timer, SIGHUP and shutdown. Bursts are coalesced by a
//! short debounce; each pass plans the whole desired state and sends the
//! kernel only the difference.

mod docker;
mod host_grace;
mod kernel_thread;
mod pass;
mod retry;
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

use crate::apply::nftables::changes::{self, NftChange, NftMonitor};
use crate::apply::{ApplyError, DnatTarget, DockerFirewall};
use crate::config::{Config, ConfigError};
use crate::nft::Table;
use crate::plan::Note;
use host_grace::HostGrace;
pub use kernel_thread::{KernelThread, KernelThreadError};
pub use retry::Backoff;
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
    /// Ends the process: systemd (`Restart=always`) starts a fresh one.
    #[error("{0}; exiting so that a fresh dock6 takes over")]
    KernelThread(#[source] KernelThreadError),
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
    /// Mappings whose conntrack delete failed: tried again at the next pass.
    stale_flows: Vec<DnatTarget>,
    /// Retries of passes that did not converge.
    retry: Backoff,
    /// Last good host facts standing in for ones that vanished for a moment.
    host_grace: HostGrace,
    notes: Vec<Note>,
    passes: u64,
    /// systemd has been told the agent is ready.
    ready: bool,
    transactions: u64,
    bootstrap_checked: bool,
    /// What was last seen of Docker's own IPv6 firewall (`On`: dock6 runs
    /// as its companion).
    firewall: Option<DockerFirewall>,
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
    let mut nft_changes = match changes::subscribe() {
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
        stale_flows: Vec::new(),
        retry: Backoff::default(),
        host_grace: HostGrace::default(),
        notes: Vec::new(),
        passes: 0,
        ready: false,
        transactions: 0,
        bootstrap_checked: false,
        firewall: None,
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
        if let Some(e) = state.kernel.dead() {
            error!("{e}: exiting so that a fresh dock6 takes over");
            return Err(RunError::KernelThread(e));
        }
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
                state.passes += 1;
                let span = info_span!("reconcile", pass = state.passes);
                let converged = state.pass().instrument(span).await;
                state.notify_ready();
                due = state.next_due(converged);
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
) -> Result<NftChange, changes::NftMonitorError> {
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
        change: Result<NftChange, changes::NftMonitorError>,
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
}
