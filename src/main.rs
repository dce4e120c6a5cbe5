use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use dock6::config::Config;
use dock6::plan;
use dock6::source::load_snapshot;

/// dock6 gives Docker containers real IPv6: forwarding sysctls, NAT66, NDP
/// proxying, routed prefixes and its own nftables table.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the plan (ruleset, proxy-NDP entries, sysctls) for a snapshot; touches nothing.
    Render {
        /// Snapshot JSON (schema in README.md).
        #[arg(long, required_unless_present = "bootstrap")]
        snapshot: Option<PathBuf>,
        /// Config file (default: /etc/dock6/dock6.toml if it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the fail-closed table installed before the first Docker snapshot instead.
        #[arg(long)]
        bootstrap: bool,
    },
    /// Run the agent: watch Docker and the host, keep the kernel in step. (Not built yet.)
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove everything dock6 made: its table and its proxy-NDP entries. (Not built yet.)
    Cleanup,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dock6: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Render { snapshot, config, bootstrap } => {
            let config = Config::load(config.as_deref())?;
            if bootstrap {
                print!("{}", plan::bootstrap_table().replace_script());
                return Ok(());
            }
            let snapshot = load_snapshot(&snapshot.context("--snapshot is required")?)?;
            print!("{}", plan::plan(&config, &snapshot));
            Ok(())
        }
        Command::Run { config } => {
            Config::load(config.as_deref())?;
            anyhow::bail!("`dock6 run` is not built yet: the Docker watcher and reconcile loop are future work")
        }
        Command::Cleanup => anyhow::bail!("`dock6 cleanup` is not built yet: it comes with the netlink apply layer"),
    }
}
