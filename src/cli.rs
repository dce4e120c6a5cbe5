//! The command line: its commands and options, and dock6(8) made from them
//! (`cargo xtask man` writes it to `dist/dock6.8`), so the manual page and
//! `--help` cannot say different things.

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser, Subcommand};

/// dock6 gives Docker containers real IPv6: forwarding sysctls, NAT66, NDP
/// proxying, routed prefixes and its own nftables table, `table inet dock6`,
/// kept in step with Docker.
///
/// Start with `dock6 check` (what is wrong with this host, and the fix for
/// each), then run the agent as the systemd unit (`systemctl enable --now
/// dock6`) and ask it what it did with `dock6 status`.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Preflight the host as it is: Docker, daemon.json, the uplink, other firewalls, the kernel.
    /// Each finding says what was seen, why it matters and the fix. Exit 1 with errors.
    Check {
        /// Print the findings as JSON (stable; documented in docs/operations.md).
        #[arg(long)]
        json: bool,
        /// Config file (default: /etc/dock6/dock6.toml if it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Docker endpoint (default: $DOCKER_HOST, else unix:///var/run/docker.sock).
        #[arg(long)]
        docker_host: Option<String>,
        /// Docker's daemon.json (default: the config's docker_daemon_json, /etc/docker/daemon.json).
        #[arg(long)]
        daemon_json: Option<PathBuf>,
    },
    /// Print the plan (ruleset, proxy-NDP entries, sysctls) for a snapshot; touches nothing.
    Render {
        /// Snapshot JSON (schema in docs/development.md); with --diff the default is the live view.
        #[arg(long, required_unless_present_any = ["bootstrap", "diff"])]
        snapshot: Option<PathBuf>,
        /// Config file (default: /etc/dock6/dock6.toml if it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the fail-closed table installed before the first Docker snapshot instead
        /// (for the host of --snapshot, when given).
        #[arg(long, conflicts_with = "diff")]
        bootstrap: bool,
        /// Compare the plan with the table in the kernel: `+`/`-` lines, exit 1 when they differ.
        #[arg(long)]
        diff: bool,
        /// Docker endpoint for the live view of --diff (default: $DOCKER_HOST, else the default socket).
        #[arg(long, requires = "diff", conflicts_with = "snapshot")]
        docker_host: Option<String>,
    },
    /// Print the live Docker view and host facts as the snapshot JSON `render --snapshot` reads.
    Snapshot {
        /// Docker endpoint (default: $DOCKER_HOST, else unix:///var/run/docker.sock).
        #[arg(long)]
        docker_host: Option<String>,
    },
    /// Plan a snapshot and program the kernel: the table, the sysctls, the proxy-NDP entries.
    Apply {
        /// Snapshot JSON (schema in docs/development.md).
        #[arg(long)]
        snapshot: PathBuf,
        /// Config file (default: /etc/dock6/dock6.toml if it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Accepted for older scripts: `apply` always applies once and exits
        /// (`dock6 run` is the agent that keeps applying).
        #[arg(long, hide = true)]
        once: bool,
    },
    /// Run the agent: watch Docker and the host, keep the kernel in step.
    Run {
        /// Config file (default: /etc/dock6/dock6.toml if it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Docker endpoint, e.g. unix:///run/docker.sock (default: $DOCKER_HOST, else the default socket).
        #[arg(long)]
        docker_host: Option<String>,
        /// Where to serve `dock6 status` (default: config `status_socket`, else /run/dock6/dock6.sock).
        #[arg(long)]
        status_socket: Option<PathBuf>,
        /// Serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9586 (default: config
        /// `metrics_address`, else off). Loopback only unless the config allows remote.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
    /// Ask the running agent what it did: Docker, mode, networks, containers, last pass, problems.
    /// Exit 3 when no agent answers.
    Status {
        /// Print the agent's JSON as it is (stable; documented in docs/operations.md).
        #[arg(long)]
        json: bool,
        /// The agent's socket (default: config `status_socket`, else /run/dock6/dock6.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Config file naming `status_socket` (default: /etc/dock6/dock6.toml if it exists).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove everything dock6 made: its table and its proxy-NDP entries (sysctls are left as they are).
    Cleanup,
}

/// Section 8: system administration commands.
const MAN_SECTION: &str = "8";

/// dock6(8) in roff: the name, synopsis and description of `dock6`, then each
/// command with its own synopsis, description and options (what its `--help`
/// says), then the files and the environment dock6 reads.
pub fn man_page() -> String {
    let mut cli = Cli::command();
    cli.build();
    let man = clap_mangen::Man::new(cli.clone());
    let mut page = Vec::new();
    for render in [
        clap_mangen::Man::render_name_section,
        clap_mangen::Man::render_synopsis_section,
        clap_mangen::Man::render_description_section,
        clap_mangen::Man::render_options_section,
    ] {
        render(&man, &mut page).expect("writing to a Vec cannot fail");
    }
    let mut body = String::from_utf8(page).expect("roff from UTF-8 help texts is UTF-8");
    body.push_str(".SH COMMANDS\n");
    // clap's own `help` command is `--help` again.
    for command in cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
    {
        body.push_str(&command_section(command));
    }
    body.push_str(TRAILER);
    // Each rendered section repeats the definition of the quote string: once is enough. The
    // title is written here because clap_mangen drops an empty date, which shifts the
    // fields after it.
    let version = cli.get_version().unwrap_or_default();
    let mut page = format!(
        "{QUOTE_DEFINITION}.TH DOCK6 {MAN_SECTION} \"\" \"dock6 {version}\" \"System Administration\"\n"
    );
    page.push_str(&body.replace(QUOTE_DEFINITION, ""));
    page
}

/// What roff (the crate) puts before every piece it writes.
const QUOTE_DEFINITION: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// One command as a subsection: `.SS "dock6 NAME"`, its synopsis, its
/// description and its options (their `.SH` headings made paragraphs).
fn command_section(command: &clap::Command) -> String {
    let man = clap_mangen::Man::new(command.clone());
    let mut roff = Vec::new();
    man.render_synopsis_section(&mut roff)
        .and_then(|()| man.render_description_section(&mut roff))
        .and_then(|()| man.render_options_section(&mut roff))
        .expect("writing to a Vec cannot fail");
    let roff = String::from_utf8(roff).expect("roff from UTF-8 help texts is UTF-8");
    let mut section = format!(".SS \"dock6 {}\"\n", command.get_name());
    for line in roff.lines() {
        match line.strip_prefix(".SH ") {
            Some(_) => section.push_str(".PP\n"),
            None => {
                section.push_str(line);
                section.push('\n');
            }
        }
    }
    section
}

/// What the command line does not say: files, environment, where to read on.
const TRAILER: &str = r#".SH EXIT STATUS
0 on success and 1 on an error;
\fBdock6 check\fR exits 1 when it has errors to report,
\fBdock6 render \-\-diff\fR 1 when the kernel differs from the plan,
\fBdock6 status\fR 3 when no agent answers.
.SH ENVIRONMENT
.TP
\fBDOCKER_HOST\fR
the Docker endpoint when \fB\-\-docker\-host\fR is not given (else unix:///var/run/docker.sock)
.TP
\fBRUST_LOG\fR
the log filter (default \fBinfo\fR; \fBdebug\fR for more)
.SH FILES
.TP
/etc/dock6/dock6.toml
the optional configuration (every key commented, with its default)
.TP
/run/dock6/dock6.sock
the running agent's status socket (root only)
.TP
/lib/systemd/system/dock6.service
the unit (Type=notify, watchdog); \fBsystemctl reload dock6\fR re\-reads the configuration
.SH SEE ALSO
.BR nft (8),
.BR systemctl (1),
.BR journalctl (1);
/usr/share/doc/dock6/README.md
"#;
