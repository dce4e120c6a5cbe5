//! Everything the loop waits on: Docker updates (from the watcher task),
//! host changes (rtnetlink notifications), nftables change notifications,
//! the resync timer and signals. Opened once, before the first pass, so
//! that no change between then and the first apply is missed.

use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Interval;
use tracing::warn;

use super::RunError;
use super::view::DockerUpdate;
use crate::apply::nftables::changes::{self, NftChange, NftMonitor};
use crate::config::Config;

pub(super) struct Inputs {
    pub docker: mpsc::Receiver<DockerUpdate>,
    /// Asks the Docker watcher for a full snapshot.
    resync_tx: mpsc::Sender<()>,
    pub netlink: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    /// `None` when the subscription failed or stopped: a changed table is
    /// then restored at the next resync only.
    pub nft_changes: Option<NftMonitor>,
    pub resync: Interval,
    pub sighup: Signal,
    pub sigterm: Signal,
    pub sigint: Signal,
    /// Ticks at half systemd's `WatchdogSec=` when the unit has a watchdog.
    pub watchdog: Option<Interval>,
}

impl Inputs {
    /// Opens every subscription around the Docker watcher's channels
    /// (`docker`: its updates, `resync_tx`: asks it for a full snapshot);
    /// also returns the rtnetlink handle the passes read host facts with.
    pub fn open(
        config: &Config,
        docker: mpsc::Receiver<DockerUpdate>,
        resync_tx: mpsc::Sender<()>,
    ) -> Result<(Inputs, rtnetlink::Handle), RunError> {
        let groups = [
            MulticastGroup::Link,
            MulticastGroup::Ipv6Ifaddr,
            MulticastGroup::Ipv6Route,
        ];
        let (connection, handle, netlink) =
            rtnetlink::new_multicast_connection(&groups).map_err(RunError::Netlink)?;
        tokio::spawn(connection);
        let nft_changes = match changes::subscribe() {
            Ok(monitor) => Some(monitor),
            Err(e) => {
                warn!(
                    "no nftables change notifications ({e}); a changed table is restored at the next resync only"
                );
                None
            }
        };
        let inputs = Inputs {
            docker,
            resync_tx,
            netlink,
            nft_changes,
            resync: first_tick_later(config.resync_interval),
            sighup: signal(SignalKind::hangup()).map_err(RunError::Signal)?,
            sigterm: signal(SignalKind::terminate()).map_err(RunError::Signal)?,
            sigint: signal(SignalKind::interrupt()).map_err(RunError::Signal)?,
            watchdog: sd_notify::watchdog_enabled().map(|period| {
                let half = (period / 2).max(Duration::from_millis(10));
                tokio::time::interval(half)
            }),
        };
        Ok((inputs, handle))
    }

    pub fn ask_docker_for_snapshot(&self) {
        // A request already pending is as good as a second one.
        let _ = self.resync_tx.try_send(());
    }

    /// A new resync period (after a config reload), counted from now.
    pub fn restart_resync(&mut self, period: Duration) {
        self.resync = first_tick_later(period);
    }
}

/// An interval whose first tick is one period away (tokio's fires at once).
fn first_tick_later(period: Duration) -> Interval {
    tokio::time::interval_at(tokio::time::Instant::now() + period, period)
}

/// The next nftables change, or never when there is no subscription (it is
/// dropped after a read error, which would otherwise repeat at once).
pub(super) async fn next_nft_change(
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

/// The next watchdog tick, or never without a watchdog.
pub(super) async fn next_watchdog_tick(watchdog: &mut Option<Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
