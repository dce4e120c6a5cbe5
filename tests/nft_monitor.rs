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
                    k.replace_table(&common::bootstrap_table(), None)
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

/// The real kernel, except that the first sysctl of a pass first runs
/// `nft ARGS` as someone else would (an `nft -f` reload, configuration
/// management): after dock6 committed its table, before the pass ends.
struct CommitsDuringSysctls {
    inner: dock6::apply::LinuxKernel,
    nft: Option<Vec<String>>,
}

mod delegate {
    use super::CommitsDuringSysctls;
    use dock6::apply::ndp::{ProxyNeighbour, ProxySyncReport};
    use dock6::apply::routes::{Dock6Route, RouteSyncReport};
    use dock6::apply::{ApplyError, DnatTarget, DockerFirewall, Kernel, SysctlOutcome};
    use dock6::nft::{ElementChange, Table};
    use dock6::plan::{HostRoute, NaSource, ProxyEntry, SysctlSetting};

    impl Kernel for CommitsDuringSysctls {
        fn apply_sysctl(&mut self, s: &SysctlSetting) -> Result<SysctlOutcome, ApplyError> {
            if let Some(args) = self.nft.take() {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                crate::common::nft(&args, None);
            }
            self.inner.apply_sysctl(s)
        }
        fn replace_table(
            &mut self,
            t: &Table,
            since: Option<&[ElementChange]>,
        ) -> Result<(), ApplyError> {
            self.inner.replace_table(t, since)
        }
        fn update_elements(&mut self, t: &str, c: &[ElementChange]) -> Result<(), ApplyError> {
            self.inner.update_elements(t, c)
        }
        fn table_exists(&mut self, name: &str) -> Result<bool, ApplyError> {
            self.inner.table_exists(name)
        }
        fn docker_ip6_firewall(&mut self) -> Result<DockerFirewall, ApplyError> {
            self.inner.docker_ip6_firewall()
        }
        fn delete_table(&mut self, name: &str) -> Result<bool, ApplyError> {
            self.inner.delete_table(name)
        }
        fn sync_proxy_entries(
            &mut self,
            d: &[ProxyEntry],
            n: NaSource,
        ) -> Result<ProxySyncReport, ApplyError> {
            self.inner.sync_proxy_entries(d, n)
        }
        fn remove_proxy_entries(&mut self) -> Result<Vec<ProxyNeighbour>, ApplyError> {
            self.inner.remove_proxy_entries()
        }
        fn sync_host_routes(&mut self, d: &[HostRoute]) -> Result<RouteSyncReport, ApplyError> {
            self.inner.sync_host_routes(d)
        }
        fn remove_host_routes(&mut self) -> Result<Vec<Dock6Route>, ApplyError> {
            self.inner.remove_host_routes()
        }
        fn delete_dnat_flows(&mut self, t: &[DnatTarget]) -> Result<usize, ApplyError> {
            self.inner.delete_dnat_flows(t)
        }
        fn delete_prefix_flows(&mut self, p: &[ipnet::Ipv6Net]) -> Result<usize, ApplyError> {
            self.inner.delete_prefix_flows(p)
        }
        fn solicit_router(&mut self, interface: &str) -> Result<(), ApplyError> {
            self.inner.solicit_router(interface)
        }
        fn remember_forwarding_by_dock6(&mut self) -> Result<(), ApplyError> {
            self.inner.remember_forwarding_by_dock6()
        }
        fn forget_forwarding_by_dock6(&mut self) -> Result<bool, ApplyError> {
            self.inner.forget_forwarding_by_dock6()
        }
    }
}

/// One whole-table replace pass as the agent runs it (the change monitor
/// muted for the replace), with `nft ARGS` committed during its sysctls;
/// returns whether the agent would restore its table: the pass says a
/// commit went unseen, or the notifications read after it (as the agent's
/// loop reads them) show someone else's commit to the table.
async fn pass_with_commit_during_sysctls(
    kernel: &dock6::reconcile::KernelThread<CommitsDuringSysctls>,
    monitor: &mut NftMonitor,
    nft: Option<&[&str]>,
) -> bool {
    use dock6::apply::{HostState, TableChange};
    use dock6::plan::SysctlSetting;
    use dock6::reconcile::{ChangeWatch, Seen, commit_table};

    let args = nft.map(|a| a.iter().map(|s| s.to_string()).collect());
    kernel
        .call(move |k| {
            k.nft = args;
            Ok(())
        })
        .await
        .expect("arm the hook");
    let host = HostState {
        sysctls: vec![SysctlSetting {
            scope: "all".into(),
            name: "forwarding".into(),
            value: 1,
            current: None,
            keep_if: None,
            reason: "route container traffic".into(),
        }],
        ..Default::default()
    };
    let change = TableChange::Replace {
        table: common::bootstrap_table(),
        since: None,
    };
    let pass = commit_table(kernel, Some(&*monitor), change, host, Vec::new())
        .await
        .expect("the pass");
    assert!(pass.report.is_complete(), "{:?}", pass.report.failures());
    // Everything committed so far is already queued: a quiet second ends it.
    let mut watch = ChangeWatch::default();
    let mut seen = Vec::new();
    while let Ok(change) = tokio::time::timeout(Duration::from_secs(1), monitor.next()).await {
        match watch.see(&change.expect("read a notification")) {
            Seen::Nothing => {}
            other => seen.push(other),
        }
    }
    pass.unseen_commit || !seen.is_empty()
}

/// A commit of someone else's to dock6's table that lands after dock6's own
/// replace but while the rest of the pass (sysctls, routes, proxy entries)
/// runs is noticed, so the agent restores its table at once rather than at
/// the next resync. Controls: dock6's own replace (and the restore itself)
/// calls for no restore, nor does a commit to another table.
#[test]
fn a_commit_during_the_rest_of_a_pass_is_noticed() {
    if !require_root("a_commit_during_the_rest_of_a_pass_is_noticed") {
        return;
    }
    in_fresh_netns(|| {
        block_on(async {
            let mut monitor = subscribe().expect("subscribe");
            let kernel = dock6::reconcile::KernelThread::start_with(
                || {
                    Ok(CommitsDuringSysctls {
                        inner: dock6::apply::LinuxKernel::new()?,
                        nft: None,
                    })
                },
                Duration::from_secs(15),
            )
            .expect("kernel thread");

            assert!(
                !pass_with_commit_during_sysctls(&kernel, &mut monitor, None).await,
                "control: dock6's own replace calls for no restore"
            );
            let intruder = ["add", "chain", "inet", TABLE_NAME, "intruder"];
            assert!(
                pass_with_commit_during_sysctls(&kernel, &mut monitor, Some(&intruder)).await,
                "a chain added to table inet {TABLE_NAME} during the pass's sysctls went unnoticed"
            );
            assert!(
                run_nft_ok(&["list", "chain", "inet", TABLE_NAME, "intruder"]),
                "the foreign chain is in until restored"
            );
            // The restore (a replace) puts the table back and settles.
            assert!(
                !pass_with_commit_during_sysctls(&kernel, &mut monitor, None).await,
                "the restore calls for no further restore"
            );
            assert!(
                !run_nft_ok(&["list", "chain", "inet", TABLE_NAME, "intruder"]),
                "the restore removed the foreign chain"
            );
            let elsewhere = ["add", "table", "ip6", "operators"];
            assert!(
                !pass_with_commit_during_sysctls(&kernel, &mut monitor, Some(&elsewhere)).await,
                "control: a commit to another table during the pass calls for no restore"
            );
        })
    });
}

/// Whether `nft ARGS` succeeds in the calling thread's namespace.
fn run_nft_ok(args: &[&str]) -> bool {
    std::process::Command::new("nft")
        .args(args)
        .output()
        .expect("run nft")
        .status
        .success()
}

#[test]
fn subscribe_outside_a_runtime_is_an_error() {
    assert!(matches!(
        subscribe(),
        Err(dock6::apply::nftables::changes::NftMonitorError::NoRuntime)
    ));
}
