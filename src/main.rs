use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use dock6::apply::{
    LinuxKernel, apply_plan, cleanup, forwarding_enabled_by_dock6, read_sysctl,
    sysctls_left_by_dock6,
};
use dock6::cli::{Cli, Command};
use dock6::config::Config;
use dock6::firewall_role::FirewallRole;
use dock6::plan;
use dock6::reconcile::RunOptions;
use dock6::source::live::live_snapshot as live_snapshot_of;
use dock6::source::load_snapshot;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Under systemd stderr goes to the journal, which stamps each line itself.
    match std::env::var_os("JOURNAL_STREAM").is_some() {
        true => logs.without_time().init(),
        false => logs.init(),
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dock6: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = |()| ExitCode::SUCCESS;
    match cli.command {
        Command::Check {
            json,
            config,
            docker_host,
            daemon_json,
        } => check(
            json,
            config,
            dock6::check::CheckOptions {
                docker_host,
                daemon_json,
            },
        ),
        Command::Render {
            diff: true,
            snapshot,
            config,
            docker_host,
            ..
        } => render_diff(snapshot, config, docker_host),
        Command::Render {
            snapshot,
            config,
            bootstrap,
            ..
        } => render(snapshot, config, bootstrap).map(done),
        Command::Snapshot { docker_host } => print_live_snapshot(docker_host).map(done),
        Command::Run {
            config,
            docker_host,
            status_socket,
            metrics,
        } => agent(RunOptions {
            config_path: config,
            docker_host,
            status_socket,
            metrics_address: metrics,
        })
        .map(done),
        Command::Status {
            json,
            socket,
            config,
        } => show_status(json, socket, config),
        Command::Apply {
            snapshot,
            config,
            once: _,
        } => apply_once(&snapshot, config).map(done),
        Command::Cleanup => remove_everything().map(done),
    }
}

fn render(
    snapshot: Option<PathBuf>,
    config: Option<PathBuf>,
    bootstrap: bool,
) -> anyhow::Result<()> {
    let config = Config::load(config.as_deref())?;
    if bootstrap {
        // The host's interfaces decide which `br-…` names are not Docker's.
        let host = match snapshot {
            Some(path) => load_snapshot(&path)?.host,
            None => dock6::snapshot::HostFacts::default(),
        };
        print!("{}", plan::bootstrap_table(&host).replace_script());
        return Ok(());
    }
    let snapshot = load_snapshot(&snapshot.context("--snapshot is required")?)?;
    print!("{}", plan::plan(&config.policy, &snapshot));
    Ok(())
}

/// A runtime for the one-shot commands that talk to Docker.
fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn live_snapshot(docker_host: Option<String>) -> anyhow::Result<dock6::snapshot::Snapshot> {
    let snapshot = small_runtime()?.block_on(live_snapshot_of(docker_host.as_deref()))?;
    Ok(snapshot)
}

fn print_live_snapshot(docker_host: Option<String>) -> anyhow::Result<()> {
    let snapshot = live_snapshot(docker_host)?;
    println!("{}", serde_json::to_string_pretty(&snapshot)?);
    Ok(())
}

/// Exit 0 when the kernel's table is what the plan says, 1 when not.
fn render_diff(
    snapshot: Option<PathBuf>,
    config: Option<PathBuf>,
    docker_host: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config.as_deref())?;
    let snapshot = match snapshot {
        Some(path) => load_snapshot(&path)?,
        None => live_snapshot(docker_host.clone())?,
    };
    let plan = plan::plan(&config.policy, &snapshot);
    let kernel = dock6::apply::listing::kernel_listing()?;
    // As a companion of Docker's own IPv6 firewall, dock6 keeps no table at all.
    let role = firewall_role_now(docker_host.as_deref(), &config)?;
    let planned = match &role {
        FirewallRole::Companion { .. } => {
            eprintln!("dock6: {}: it keeps no table", role.log_line().1);
            String::new()
        }
        FirewallRole::Owner(_) => dock6::apply::listing::planned_listing(&plan.ruleset)?,
    };
    match dock6::nft::listing_diff(&kernel, &planned) {
        None => {
            println!("table inet dock6 in the kernel is what the plan says: nothing to change");
            Ok(ExitCode::SUCCESS)
        }
        Some(diff) => {
            print!("{diff}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Who filters IPv6 for Docker's bridges, decided as the agent decides it: Docker's word
/// (`/info` and daemon.json; not known when Docker does not answer) and its rules in the kernel.
fn firewall_role_now(docker_host: Option<&str>, config: &Config) -> anyhow::Result<FirewallRole> {
    use dock6::firewall_role::{DockerIp6tables, decide, docker_ip6tables};
    let engine = small_runtime()?.block_on(async {
        let client = dock6::source::docker::connect(docker_host).await.ok()?;
        dock6::source::docker::engine(&client).await.ok()
    });
    let docker = match engine {
        Some(engine) => docker_ip6tables(
            Some(&engine.version),
            engine.experimental,
            &dock6::source::daemon_json::read_daemon_json(&config.docker_daemon_json),
        ),
        None => DockerIp6tables::Unknown("Docker does not answer".into()),
    };
    Ok(decide(
        &docker,
        &dock6::apply::nftables::docker_ip6_firewall()?,
    ))
}

/// Exit 0 without errors, 1 with.
fn check(
    json: bool,
    config: Option<PathBuf>,
    options: dock6::check::CheckOptions,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config.as_deref())?;
    let facts = small_runtime()?.block_on(dock6::check::gather(config, &options));
    let report = dock6::check::Report::new(dock6::check::findings(&facts));
    match json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!("{report}"),
    }
    Ok(match report.errors {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// What `dock6 status` exits with when no agent answers.
const NO_AGENT: u8 = 3;

fn show_status(
    json: bool,
    socket: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let socket = match socket {
        Some(path) => path,
        None => Config::load(config.as_deref())?.status_socket,
    };
    match dock6::status::query(&socket) {
        Ok((raw, status)) => {
            match json {
                true => println!("{}", raw.trim_end()),
                false => print!("{status}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ dock6::status::StatusQueryError::NoAgent { .. }) => {
            eprintln!("dock6: {e}: no agent is running (start it with `systemctl start dock6`)");
            Ok(ExitCode::from(NO_AGENT))
        }
        Err(e) => Err(e.into()),
    }
}

fn agent(options: RunOptions) -> anyhow::Result<()> {
    // Before anything is changed, and while a throwaway namespace may still be made.
    kernel_takes_the_table()?;
    // Before the runtime's threads exist: capabilities are per thread.
    if dock6::privileges::drop_to_network_admin()? {
        tracing::info!("capabilities dropped to CAP_NET_ADMIN and CAP_NET_RAW");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(dock6::reconcile::run(options))?;
    Ok(())
}

/// The kernel probe `dock6 check` has: a kernel that refuses dock6's table
/// stops the agent here, naming the kernel and what it refused.
fn kernel_takes_the_table() -> anyhow::Result<()> {
    use dock6::apply::probe::{StartVerdict, kernel_release, kernel_takes, start_verdict};
    let release = kernel_release();
    match start_verdict(kernel_takes(&plan::probe_table()), &release)? {
        StartVerdict::Takes(how) => tracing::info!("kernel {release} takes dock6's table ({how})"),
        StartVerdict::Unknown(why) => tracing::warn!("kernel {release}: {why}"),
    }
    Ok(())
}

fn apply_once(snapshot: &Path, config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config.as_deref())?;
    let mut snapshot = load_snapshot(snapshot)?;
    // Whether forwarding is Docker-only depends on the live host, whatever
    // the snapshot file says of it.
    if snapshot.host.forwarding.is_none() {
        snapshot.host.forwarding = read_sysctl("all", "forwarding").ok();
    }
    snapshot.host.forwarding_enabled_by_dock6 = forwarding_enabled_by_dock6()?;
    let plan = plan::plan(&config.policy, &snapshot);
    for note in &plan.notes {
        match note.level {
            plan::Level::Info => tracing::info!("{}", note.text),
            plan::Level::Warn => tracing::warn!("{}", note.text),
        }
    }
    let mut kernel = LinuxKernel::new()?;
    let previous = dock6::apply::Previous {
        replace: true,
        ..Default::default()
    };
    let failures = apply_plan(&mut kernel, &plan, previous).failures();
    for failure in &failures {
        tracing::error!("{failure}");
    }
    if !failures.is_empty() {
        anyhow::bail!(
            "{} parts of the plan could not be applied (see the log)",
            failures.len()
        );
    }
    Ok(())
}

fn remove_everything() -> anyhow::Result<()> {
    dock6::agent_lock::ensure_no_agent()
        .context("cleanup refused: stop the agent first (it would put its rules back)")?;
    let mut kernel = LinuxKernel::new()?;
    let by_dock6 = forwarding_enabled_by_dock6()?;
    let report = cleanup(&mut kernel)?;
    print_cleanup(&report, by_dock6);
    println!("sysctls left as they are (turning forwarding off could cut this host off):");
    for line in sysctls_left_by_dock6() {
        println!("  {line}");
    }
    Ok(())
}

fn print_cleanup(report: &dock6::apply::CleanupReport, forwarding_by_dock6: bool) {
    match report.table_existed {
        true => println!("removed table inet dock6"),
        false => println!("no table inet dock6 to remove"),
    }
    println!(
        "removed {} proxy-NDP entries tagged as dock6's",
        report.removed_proxies.len()
    );
    for entry in &report.removed_proxies {
        println!("  {entry}");
    }
    println!(
        "removed {} host routes tagged as dock6's",
        report.removed_routes.len()
    );
    for route in &report.removed_routes {
        println!("  {}/128 (ifindex {})", route.address, route.ifindex);
    }
    match (forwarding_by_dock6, report.table_existed) {
        (true, _) => println!(
            "forwarding: dock6 turned it on (it was 0) and forwarded Docker traffic only; \
             it is left on and now forwards everything: `sysctl -w net.ipv6.conf.all.forwarding=0` if nothing else needs it"
        ),
        (false, true) => println!("forwarding: it was already on before dock6; left as it was"),
        (false, false) => {}
    }
}
