//! The agent under test, as a child process of its own (so its RSS is the
//! agent's alone): dock6's reconcile loop (`reconcile::run_fed`) with the
//! Docker watcher replaced by lines on stdin naming synthetic updates —
//! `full N` (containers 0..N), `add I`, `remove I`. Everything else is the
//! real agent: host facts over rtnetlink, the planner, the kernel thread,
//! the nftables change monitor, SIGHUP.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};
use dock6::reconcile::{DockerUpdate, RunOptions, run_fed};
use tokio::sync::mpsc;

use crate::synthetic;

pub fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (updates, rx) = mpsc::channel(1024);
        let (resync_tx, mut resync_rx) = mpsc::channel(1);
        // The view fed here is the whole truth: a resync has nothing to re-read.
        tokio::spawn(async move { while resync_rx.recv().await.is_some() {} });
        std::thread::spawn(move || {
            if let Err(e) = feed(&updates) {
                tracing::error!("bench feeder: {e:#}");
            }
        });
        run_fed(RunOptions::default(), rx, resync_tx).await
    })?;
    Ok(())
}

fn feed(updates: &mpsc::Sender<DockerUpdate>) -> anyhow::Result<()> {
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (what, n) = line.split_once(' ').context("`WHAT N` expected")?;
        let n: usize = n
            .trim()
            .parse()
            .with_context(|| format!("number in {line:?}"))?;
        let update = match what {
            "full" => DockerUpdate::Full {
                networks: vec![synthetic::network()],
                containers: synthetic::containers(n),
            },
            "add" => DockerUpdate::Container {
                id: synthetic::container(n).id,
                container: Some(Box::new(synthetic::container(n))),
            },
            "remove" => DockerUpdate::Container {
                id: synthetic::container(n).id,
                container: None,
            },
            other => bail!("unknown update {other:?}"),
        };
        updates.blocking_send(update)?;
    }
    Ok(())
}
