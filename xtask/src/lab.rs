//! `cargo xtask lab up|down|status [NAME]`: the command line over the `dock6-lab` crate
//! (`lab/`), which does the work and which the Docker tests use too.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Result, bail};
use dock6_lab::{DEFAULT_NAME, Docker, IMAGE, Lab, Options};

const USAGE: &str = "usage: cargo xtask lab up [NAME] [--docker 20|26|28] [--no-userland-proxy] [--no-iptables] [--ip6tables]\n       \
                     cargo xtask lab down [NAME]\n       cargo xtask lab status [NAME]\n\
                     NAME defaults to dock6-lab; `eval \"$(cargo xtask lab up)\"` sets DOCKER_HOST";

/// `cargo xtask lab ARGS`.
pub fn cli(args: &[String]) -> Result<()> {
    let Some((options, name)) = parse(args.get(1..).unwrap_or(&[]))? else {
        eprintln!("{USAGE}");
        return Ok(());
    };
    let mut lab = Lab::new(name.unwrap_or(DEFAULT_NAME))?;
    match args.first().map(String::as_str) {
        Some("up") => up(&mut lab, &options),
        Some("down") => {
            let started = Instant::now();
            lab.down()?;
            eprintln!("lab {} is down ({:.1?})", lab.name, started.elapsed());
            Ok(())
        }
        Some("status") => {
            for line in lab.status() {
                println!("{line}");
            }
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// The options and the lab's name after the subcommand; `None` for `--help`.
fn parse(args: &[String]) -> Result<Option<(Options, Option<&str>)>> {
    let mut options = Options::default();
    let mut name = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--docker" => {
                let Some(version) = args.next() else {
                    bail!("--docker needs a version (20, 26 or 28)\n{USAGE}");
                };
                options.docker = Docker::parse(version)?;
            }
            "--no-userland-proxy" => options.userland_proxy = false,
            "--no-iptables" => options.iptables = false,
            "--ip6tables" => options.ip6tables = true,
            "-h" | "--help" => return Ok(None),
            a if a.starts_with('-') => bail!("unknown option {a}\n{USAGE}"),
            a if name.is_none() => name = Some(a),
            a => bail!("unexpected argument {a}\n{USAGE}"),
        }
    }
    Ok(Some((options, name)))
}

/// `lab up`: the `export` lines on stdout (for `eval`), everything else on stderr.
fn up(lab: &mut Lab, options: &Options) -> Result<()> {
    let started = Instant::now();
    if let Err(e) = lab.up(options) {
        bail!(
            "{e:#}\nthe partial lab is left for inspection; remove it with `cargo xtask lab down {}`",
            lab.name
        );
    }
    eprintln!(
        "lab {} is up after {:.1?}; {} holds:",
        lab.name,
        started.elapsed(),
        lab.dir.join("env").display()
    );
    let mut stdout = std::io::stdout().lock();
    for (key, value) in lab.env() {
        writeln!(stdout, "export {key}={value}")?;
    }
    eprintln!(
        "try: docker run --rm {IMAGE} ip -6 addr; nsenter --net=/run/netns/{} ip -6 route",
        lab.host_ns
    );
    Ok(())
}
