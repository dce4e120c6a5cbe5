//! The reconcile loop: one `select!` over Docker updates, host (netlink)
//! events, nftables change notifications, the resync timer, SIGHUP and
//! shutdown (what it waits on is opened in `inputs`). The first change after
//! a quiet spell is applied at once; changes that arrive while a pass runs
//! wait in their channels and are all taken into the next pass, so a burst
//! costs about one pass per pass duration. Each pass plans again only what
//! changed (the planner keeps the desired state between passes) and sends
//! the kernel only the difference.

mod docker;
mod host_grace;
mod inputs;
mod kernel_thread;
mod link_cache;
mod metrics;
mod pass;
mod prefixes;
mod retry;
mod status;
mod status_server;
mod table_commit;
mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use crate::apply::nftables::changes::{self, NftChange};
use crate::apply::{ApplyError, DnatTarget};
use crate::config::{Config, ConfigError};
use crate::firewall_role::{DockerIp6tables, FirewallRole};
use crate::plan::{Note, Planner};
use host_grace::HostGrace;
use inputs::{Inputs, next_nft_change, next_watchdog_tick};
pub use kernel_thread::{KernelThread, KernelThreadError};
pub use retry::Backoff;
pub use table_commit::{ChangeWatch, Seen, TableCommit, commit_table};
pub use view::{DockerUpdate, DockerView};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub config_path: Option<PathBuf>,
    pub docker_host: Option<String>,
    /// Overrides the config's `status_socket`.
    pub status_socket: Option<PathBuf>,
    /// Overrides the config's `metrics_address` (loopback only unless the
    /// config has `metrics_allow_remote = true`).
    pub metrics_address: Option<String>,
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
    #[error("--metrics: {0}")]
    MetricsFlag(String),
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// Ends the process: systemd (`Restart=always`) starts a fresh one.
    #[error("{0}; exiting so that a fresh dock6 takes over")]
    KernelThread(#[source] KernelThreadError),
}

/// A conntrack delete's outcome: the mappings again when it failed.
type FlowsDone = Result<(), Vec<DnatTarget>>;

/// What the loop remembers between passes.
struct Loop {
    config_path: Option<PathBuf>,
    config: Config,
    view: DockerView,
    kernel: KernelThread,
    /// Conntrack deletes run here, so a pass need not wait for them.
    conntrack: Arc<KernelThread>,
    /// Mappings whose flows are to be deleted, for `pass::delete_flows_worker`.
    flows_todo: mpsc::UnboundedSender<Vec<DnatTarget>>,
    /// How each conntrack delete went, back from the worker (taken by `serve`).
    flows_done: Option<mpsc::UnboundedReceiver<FlowsDone>>,
    /// Retries of failed conntrack deletes.
    flow_retry: Backoff,
    handle: rtnetlink::Handle,
    /// The desired state, kept between passes: a pass plans again only
    /// what changed, and sends the kernel the element changes that follow.
    planner: Planner,
    /// The next pass replaces the whole table (resync, restore, after an
    /// error, a shape change), from the planner's whole table.
    replace_next: bool,
    /// The next pass is due at once (a restore found by a pass).
    restore_now: bool,
    /// dock6's last commit to its table left there the planner's table as
    /// of the last update: the element changes of the next update are then
    /// all a whole-table replace needs to send, as long as nobody else
    /// committed since (the kernel side checks that).
    kernel_has_last_plan: bool,
    /// Mappings whose conntrack delete failed: tried again at the next pass.
    stale_flows: Vec<DnatTarget>,
    /// Old `nptv6` mapped prefixes whose flows are still to be deleted.
    stale_prefixes: Vec<ipnet::Ipv6Net>,
    /// The uplink's prefixes seen in this run (which ones the host lost).
    prefix_memory: prefixes::PrefixMemory,
    /// Where each `nptv6` network is mapped, since when.
    mappings: prefixes::Mappings,
    /// Retries of passes that did not converge.
    retry: Backoff,
    /// Last good host facts standing in for ones that vanished for a moment.
    host_grace: HostGrace,
    /// The host's links, addresses and routes as last dumped.
    links: link_cache::LinkCache,
    notes: Vec<Note>,
    /// What `dock6 status` and the metrics show.
    shown: status::Shown,
    passes: u64,
    /// systemd has been told the agent is ready.
    ready: bool,
    /// The last pass converged (true before the first): the watchdog is
    /// pinged only then. Docker being away does not fail a pass.
    last_pass_converged: bool,
    transactions: u64,
    bootstrap_checked: bool,
    /// The fail-closed table this run installed, while it is the one in the
    /// kernel: installed again when the host's interfaces change it.
    bootstrap_installed: Option<crate::nft::Table>,
    /// Who filters IPv6 for Docker's bridges, as last decided (companion:
    /// Docker; owner: dock6).
    firewall: Option<FirewallRole>,
    /// What Docker said of its ip6tables when it last answered: kept while
    /// Docker is away (a Docker restart does not flip the role back and forth).
    docker_ip6tables: DockerIp6tables,
    /// dock6 turned forwarding on (it was 0), so it forwards Docker traffic
    /// only. Read at start from the record a flush cannot erase (see
    /// `apply::forwarding`), then kept from the plan.
    forwarding_by_dock6: bool,
}

pub async fn run(options: RunOptions) -> Result<(), RunError> {
    let (docker_tx, docker_rx) = mpsc::channel(1024);
    let (resync_tx, resync_rx) = mpsc::channel(1);
    let config = Config::load(options.config_path.as_deref())?;
    let _lock = crate::agent_lock::acquire()?;
    tokio::spawn(docker::watch(
        options.docker_host.clone(),
        docker_tx,
        resync_rx,
    ));
    serve(options, config, docker_rx, resync_tx).await
}

/// The agent with Docker's view fed by the caller instead of the Docker
/// watcher (benchmarks, embedding): `updates` are the watcher's
/// [`DockerUpdate`]s; a full snapshot is asked for on `resync_requests`
/// (at SIGHUP and at each resync). Everything else is as in [`run`].
pub async fn run_fed(
    options: RunOptions,
    updates: mpsc::Receiver<DockerUpdate>,
    resync_requests: mpsc::Sender<()>,
) -> Result<(), RunError> {
    let config = Config::load(options.config_path.as_deref())?;
    let _lock = crate::agent_lock::acquire()?;
    serve(options, config, updates, resync_requests).await
}

async fn serve(
    options: RunOptions,
    config: Config,
    updates: mpsc::Receiver<DockerUpdate>,
    resync_requests: mpsc::Sender<()>,
) -> Result<(), RunError> {
    crate::apply::give_large_frees_back();
    let metrics_address = match &options.metrics_address {
        Some(text) => Some(
            crate::config::parse_metrics_address(text, config.metrics_allow_remote)
                .map_err(RunError::MetricsFlag)?,
        ),
        None => config.metrics_address,
    };
    let (mut inputs, handle) = Inputs::open(&config, updates, resync_requests)?;
    let socket_path = options
        .status_socket
        .clone()
        .unwrap_or_else(|| config.status_socket.clone());
    let mut state = Loop::start(options.config_path, config, handle).await?;
    let (details_tx, mut details) = mpsc::channel(16);
    // Without its socket the agent still does its job; `dock6 status` then says no agent answers.
    let _socket = status_server::serve(&socket_path, state.shown.board.clone(), details_tx)
        .map_err(|e| error!("{e}: dock6 status is not served"))
        .ok();
    if let Some(address) = metrics_address {
        metrics::serve(address, state.shown.metrics.clone()).await?;
    }
    state.serve(&mut inputs, &mut details).await?;
    info!(
        passes = state.passes,
        transactions = state.transactions,
        "dock6 stopping; its rules stay in the kernel"
    );
    Ok(())
}

impl Loop {
    async fn start(
        config_path: Option<PathBuf>,
        config: Config,
        handle: rtnetlink::Handle,
    ) -> Result<Loop, RunError> {
        let conntrack = Arc::new(KernelThread::start()?);
        let (flows_todo, todo) = mpsc::unbounded_channel();
        let (done, flows_done) = mpsc::unbounded_channel();
        tokio::spawn(pass::delete_flows_worker(
            Arc::clone(&conntrack),
            todo,
            done,
        ));
        let mut state = Loop {
            config_path,
            config,
            view: DockerView::default(),
            kernel: KernelThread::start()?,
            conntrack: Arc::clone(&conntrack),
            flows_todo,
            flows_done: Some(flows_done),
            flow_retry: Backoff::default(),
            handle,
            planner: Planner::default(),
            replace_next: true,
            restore_now: false,
            kernel_has_last_plan: false,
            stale_flows: Vec::new(),
            stale_prefixes: Vec::new(),
            prefix_memory: prefixes::PrefixMemory::default(),
            mappings: prefixes::Mappings::default(),
            retry: Backoff::default(),
            host_grace: HostGrace::default(),
            links: link_cache::LinkCache::default(),
            notes: Vec::new(),
            shown: status::Shown::new(),
            passes: 0,
            ready: false,
            last_pass_converged: true,
            transactions: 0,
            bootstrap_checked: false,
            bootstrap_installed: None,
            firewall: None,
            docker_ip6tables: DockerIp6tables::not_yet(),
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
        Ok(state)
    }

    /// The one `select!`: until SIGTERM/SIGINT, or a dead kernel thread.
    async fn serve(
        &mut self,
        inputs: &mut Inputs,
        details: &mut mpsc::Receiver<status_server::DetailsRequest>,
    ) -> Result<(), RunError> {
        let mut due: Option<Instant> = Some(Instant::now());
        let mut watch = ChangeWatch::default();
        let mut flows_done = self.flows_done.take();
        loop {
            if let Some(e) = self.kernel.dead().or_else(|| self.conntrack.dead()) {
                error!("{e}: exiting so that a fresh dock6 takes over");
                return Err(RunError::KernelThread(e));
            }
            // No debounce: a change is due now, also when a retry or the end
            // of a host-facts grace is already due later. What queues up
            // meanwhile is drained into the pass (`take_pending`).
            let now = || Some(Instant::now());
            let deadline = due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(update) = inputs.docker.recv() => {
                    if self.docker_update(update) {
                        due = now();
                    }
                }
                Some((message, _)) = inputs.netlink.next() => {
                    // A container's veth coming and going changes nothing
                    // dock6 reads: no pass for it.
                    if self.links.notified(&message) {
                        due = now();
                    }
                }
                change = next_nft_change(&mut inputs.nft_changes) => {
                    if self.nft_change(change, &mut watch) {
                        // Restore at once: someone else's commit changed or deleted the table.
                        due = Some(Instant::now());
                    }
                }
                _ = inputs.resync.tick() => {
                    inputs.ask_docker_for_snapshot();
                    self.links.forget();
                    self.replace_next = true;
                    due = now();
                }
                _ = inputs.sighup.recv() => {
                    self.reload_config();
                    self.links.forget();
                    inputs.ask_docker_for_snapshot();
                    inputs.restart_resync(self.config.resync_interval);
                    self.replace_next = true;
                    due = now();
                }
                _ = next_watchdog_tick(&mut inputs.watchdog) => self.ping_watchdog(),
                Some(reply) = details.recv() => {
                    // The asker may have given up; nothing to do then.
                    let _ = reply.send(self.status_details());
                }
                Some(done) = recv_some(&mut flows_done) => match done {
                    Ok(()) => self.flow_retry.reset(),
                    Err(failed) => {
                        // Tried again with a pass, after a growing delay.
                        self.stale_flows.extend(failed);
                        let retry = Instant::now() + self.flow_retry.next_delay();
                        due = Some(due.map_or(retry, |d| d.min(retry)));
                    }
                },
                _ = inputs.sigterm.recv() => return Ok(()),
                _ = inputs.sigint.recv() => return Ok(()),
                _ = tokio::time::sleep_until(deadline), if due.is_some() => {
                    self.take_pending(inputs);
                    self.passes += 1;
                    let span = info_span!("reconcile", pass = self.passes);
                    let started = Instant::now();
                    let converged = self.pass(inputs.nft_changes.as_ref()).instrument(span).await;
                    self.shown.pass_done(self.passes, started.elapsed(), converged, self.view.synced);
                    self.shown.publish(self.transactions);
                    self.last_pass_converged = converged;
                    self.notify_ready();
                    due = self.next_due(converged);
                    if std::mem::take(&mut self.restore_now) {
                        due = Some(Instant::now());
                    }
                }
            }
        }
    }
}

/// The next message of `rx`, or never when there is none.
async fn recv_some<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Loop {
    /// Takes every Docker update and host notification already waiting, so
    /// that one pass covers them all (a burst costs few transactions).
    /// nftables notifications are left to the `select!`: they must be read
    /// in order, and a foreign commit seen after this pass is restored by
    /// the next.
    fn take_pending(&mut self, inputs: &mut Inputs) {
        while let Ok(update) = inputs.docker.try_recv() {
            self.docker_update(update);
        }
        while let Ok((message, _)) = inputs.netlink.try_recv() {
            self.links.notified(&message);
        }
    }

    /// Takes one update of the Docker watcher into the view; true when the
    /// view changed.
    fn docker_update(&mut self, update: DockerUpdate) -> bool {
        if let DockerUpdate::Engine(engine) = &update {
            return self.docker_engine(engine);
        }
        if self.shown.docker_update(&update) {
            self.shown.publish(self.transactions);
        }
        let full = matches!(update, DockerUpdate::Full { .. });
        let changed = self.view.apply(update);
        if full {
            // The view just dropped its old copy of every container.
            crate::apply::release_free_memory();
        }
        changed
    }

    /// Docker answered: what it says of its own IPv6 firewall (`/info` and
    /// daemon.json, read now: a changed daemon.json takes effect only when
    /// Docker restarts, and then it answers anew); true when that changed.
    fn docker_engine(&mut self, engine: &crate::source::docker::Engine) -> bool {
        let daemon_json =
            crate::source::daemon_json::read_daemon_json(&self.config.docker_daemon_json);
        let says = crate::firewall_role::docker_ip6tables(
            Some(&engine.version),
            engine.experimental,
            &daemon_json,
        );
        debug!("Docker's ip6tables: {says:?}");
        if says == self.docker_ip6tables {
            return false;
        }
        if let DockerIp6tables::Unknown(why) = &says {
            warn!(
                "cannot tell whether Docker's own IPv6 firewall is on ({why}): dock6 keeps \
                 owning IPv6 firewalling (table inet dock6)"
            );
        }
        self.docker_ip6tables = says;
        true
    }

    /// Handles one nftables notification; true when the table must be
    /// restored now. A commit touching `table inet dock6` that dock6 did not
    /// make (`nft flush ruleset`, a reload of nftables.conf) calls for a
    /// whole-table replace.
    fn nft_change(
        &mut self,
        change: Result<NftChange, changes::NftMonitorError>,
        watch: &mut ChangeWatch,
    ) -> bool {
        let change = match change {
            Ok(change) => change,
            Err(e) => {
                error!(
                    "nftables change notifications stopped ({e}); a changed table is restored at the next resync"
                );
                return false;
            }
        };
        match watch.see(&change) {
            Seen::Nothing => false,
            Seen::Foreign { comm, pid } => {
                warn!("table inet dock6 was changed by {comm} (pid {pid}): restoring it");
                self.shown.tamper_restore();
                self.force_restore();
                true
            }
            Seen::Lost => {
                warn!(
                    "nftables notifications lost or not understood: replacing the table to be sure"
                );
                self.force_restore();
                true
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

    /// `WATCHDOG=1` while passes converge: a loop that is stuck, or whose
    /// passes keep failing for `WatchdogSec=`, is restarted by systemd.
    fn ping_watchdog(&self) {
        if !self.last_pass_converged {
            debug!("watchdog not pinged: the last pass did not converge");
            return;
        }
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
            warn!("cannot ping systemd's watchdog: {e}");
        }
    }

    /// The containers and proxy entries for `dock6 status`, read off the
    /// planner and the view (rendered only when asked).
    fn status_details(&self) -> Arc<status_server::Details> {
        Arc::new(status_server::Details {
            containers: crate::status::containers(self.view.containers(), &self.planner),
            proxy_entries: crate::status::proxy_entries(&self.planner.proxy_entries()),
            after_pass: self.passes,
        })
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
