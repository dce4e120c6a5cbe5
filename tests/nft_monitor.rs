//! nftables change notifications (`dock6::apply::nftables::changes`), against the
//! kernel in fresh network namespaces. Needs root.

mod common;

use std::time::Duration;

use dock6::apply::nftables::changes::{
    Generation, NftChange, NftEvent, NftMonitor, NftObject, NftOp, subscribe,
};
use dock6::nft::TABLE_NAME;

use common::{in_fresh_netns, require_root};

/// Runs `nft ARGS` (with optional stdin) in the calling thread's namespace;
/// returns its pid.
fn run_nft(args: &[&str], stdin: Option<&str>) -> u32 {
    common::nft_with_pid(args, stdin).0
}

/// A current-thread runtime on the calling (namespaced) thread.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

async fn next(monitor: &mut NftMonitor) -> NftChange {
    tokio::time::timeout(Duration::from_secs(5), monitor.next())
        .await
        .expect("a notification within 5 s")
        .expect("read a notification")
}

/// Everything up to and including the next NEWGEN.
async fn transaction(monitor: &mut NftMonitor) -> (Vec<NftChange>, Generation) {
    let mut changes = Vec::new();
    loop {
        match next(monitor).await {
            NftChange::Generation(g) => return (changes, g),
            other => changes.push(other),
        }
    }
}

fn ours(object: NftObject, op: NftOp) -> NftEvent {
    NftEvent { object, op }
}

fn touched_ours(changes: &[NftChange]) -> Vec<NftEvent> {
    changes
        .iter()
        .filter_map(|c| match c {
            NftChange::OurTableTouched { what, .. } => Some(*what),
            _ => None,
        })
        .collect()
}

fn other_tables(changes: &[NftChange]) -> Vec<(u8, String, NftEvent)> {
    changes
        .iter()
        .filter_map(|c| match c {
            NftChange::OtherTable {
                family,
                table,
                what,
                ..
            } => Some((*family, table.clone(), *what)),
            _ => None,
        })
        .collect()
}

#[test]
fn reports_who_changed_which_table() {
    if !require_root("reports_who_changed_which_table") {
        return;
    }
    in_fresh_netns(|| {
        block_on(async {
            let mut monitor = subscribe().expect("subscribe");

            let pid = run_nft(&["add", "table", "inet", "other"], None);
            let (changes, generation) = transaction(&mut monitor).await;
            assert_eq!(touched_ours(&changes), vec![], "{changes:?}");
            assert_eq!(
                other_tables(&changes),
                vec![(1, "other".into(), ours(NftObject::Table, NftOp::New))]
            );
            assert_eq!(
                (generation.pid, generation.comm.as_str()),
                (pid, "nft"),
                "{generation:?}"
            );
            assert!(!generation.is_from_this_process(), "{generation:?}");

            let pid = run_nft(
                &["-f", "-"],
                Some(&format!(
                    "table inet {TABLE_NAME} {{\n\tchain c {{\n\t}}\n}}\n"
                )),
            );
            let (changes, next_generation) = transaction(&mut monitor).await;
            assert_eq!(
                touched_ours(&changes),
                vec![
                    ours(NftObject::Table, NftOp::New),
                    ours(NftObject::Chain, NftOp::New)
                ],
                "{changes:?}"
            );
            assert_eq!(other_tables(&changes), vec![]);
            assert_eq!(next_generation.pid, pid);
            assert!(
                next_generation.id > generation.id,
                "{generation:?} then {next_generation:?}"
            );
            assert!(!next_generation.is_from_this_process());

            // Same name, other family: not ours.
            run_nft(&["add", "table", "ip", TABLE_NAME], None);
            let (changes, _) = transaction(&mut monitor).await;
            assert_eq!(touched_ours(&changes), vec![], "{changes:?}");
            assert_eq!(
                other_tables(&changes),
                vec![(2, TABLE_NAME.into(), ours(NftObject::Table, NftOp::New))]
            );

            let pid = run_nft(&["flush", "ruleset"], None);
            let (changes, generation) = transaction(&mut monitor).await;
            let ours_now = touched_ours(&changes);
            assert!(
                ours_now.contains(&ours(NftObject::Table, NftOp::Deleted)),
                "{changes:?}"
            );
            assert!(
                ours_now.contains(&ours(NftObject::Chain, NftOp::Deleted)),
                "{changes:?}"
            );
            let mut others: Vec<_> = other_tables(&changes)
                .into_iter()
                .map(|(f, t, e)| (f, t, e.to_string()))
                .collect();
            others.sort();
            assert_eq!(
                others,
                vec![
                    (1, "other".into(), "table deleted".into()),
                    (2, TABLE_NAME.into(), "table deleted".into())
                ]
            );
            assert_eq!(generation.pid, pid);
            assert!(!generation.is_from_this_process());
        })
    });
}

/// dock6's own commits are recognised by the netlink port id of the socket
/// that committed (the NEWGEN message's header), not by a pid: here the
/// commit is made on a thread of its own (as dock6's kernel thread does),
/// and a commit by `nft` right after it is not taken for dock6's.
#[test]
fn own_commits_are_recognised_by_their_socket() {
    if !require_root("own_commits_are_recognised_by_their_socket") {
        return;
    }
    in_fresh_netns(|| {
        block_on(async {
            let mut monitor = subscribe().expect("subscribe");
            // A new thread shares the namespace of the thread that starts it.
            let kernel = dock6::reconcile::KernelThread::start().expect("kernel thread");
            kernel
                .call(|k| {
                    use dock6::apply::Kernel as _;
                    k.replace_table(&common::bootstrap_table())
                })
                .await
                .expect("replace_table through dock6's kernel thread");
            let (changes, generation) = transaction(&mut monitor).await;
            assert!(
                touched_ours(&changes).contains(&ours(NftObject::Table, NftOp::New)),
                "{changes:?}"
            );
            assert!(generation.is_from_this_process(), "{generation:?}");
            assert!(generation.by_dock6, "{generation:?}");
            assert_eq!(generation.comm, "dock6-kernel", "{generation:?}");

            let pid = run_nft(&["flush", "ruleset"], None);
            let (_, generation) = transaction(&mut monitor).await;
            assert_eq!(generation.pid, pid);
            assert!(!generation.is_from_this_process(), "{generation:?}");

            // The same socket again, from the test thread's own apply call.
            dock6::apply::nftables::replace_table(&common::bootstrap_table())
                .expect("replace_table");
            let (_, generation) = transaction(&mut monitor).await;
            assert!(generation.is_from_this_process(), "{generation:?}");
        })
    });
}

/// A reader that falls behind gets one `Overrun`, and the subscription
/// survives it.
#[test]
fn overrun_is_reported_and_the_subscription_survives() {
    if !require_root("overrun_is_reported_and_the_subscription_survives") {
        return;
    }
    in_fresh_netns(|| {
        block_on(async {
            let mut monitor = subscribe().expect("subscribe");
            let granted = monitor.set_receive_buffer(1).expect("shrink SO_RCVBUF");
            assert!(granted < 16 * 1024, "receive buffer still {granted} bytes");

            // Many transactions, each at least one datagram, none read yet.
            let script: String = (0..200).map(|i| format!("add table inet t{i}\n")).collect();
            let mut batches = script.clone();
            batches.push_str("flush ruleset\n");
            for _ in 0..5 {
                run_nft(&["-f", "-"], Some(&batches));
            }
            // Drain: an overrun must show up, then the queue runs dry.
            let mut overruns = 0;
            while let Ok(change) =
                tokio::time::timeout(Duration::from_millis(300), monitor.next()).await
            {
                if change.expect("read") == NftChange::Overrun {
                    overruns += 1;
                }
            }
            assert!(overruns >= 1, "no overrun reported");

            monitor.set_receive_buffer(1 << 20).expect("grow SO_RCVBUF");
            let pid = run_nft(&["add", "table", "inet", TABLE_NAME], None);
            let (changes, generation) = transaction(&mut monitor).await;
            assert_eq!(
                touched_ours(&changes),
                vec![ours(NftObject::Table, NftOp::New)],
                "{changes:?}"
            );
            assert_eq!(generation.pid, pid);
        })
    });
}

#[test]
fn subscribe_outside_a_runtime_is_an_error() {
    assert!(matches!(
        subscribe(),
        Err(dock6::apply::nftables::changes::NftMonitorError::NoRuntime)
    ));
}
