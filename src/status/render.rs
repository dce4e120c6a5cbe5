//! `dock6 status` as a person reads it.

use std::fmt::{self, Display, Formatter};

use super::Status;

impl Display for Status {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dock6 {} (pid {}), running since {}",
            self.version, self.pid, self.started
        )?;
        let docker = match &self.docker.since {
            Some(since) => format!("{} since {since}", self.docker.state),
            None => self.docker.state.clone(),
        };
        writeln!(f, "docker:    {docker}")?;
        writeln!(f, "mode:      {} ({})", self.mode, self.mode_reason)?;
        writeln!(
            f,
            "uplink:    {}",
            self.uplink.as_deref().unwrap_or("(none)")
        )?;
        match &self.last_pass {
            Some(p) => writeln!(
                f,
                "last pass: #{} at {}, {:.1} ms, {} (table: {})",
                p.number, p.at, p.duration_ms, p.result, p.table
            )?,
            None => writeln!(f, "last pass: (none yet)")?,
        }
        list(
            f,
            "networks",
            self.networks.iter().map(|n| {
                let mut flags = vec![format!("icc {}", on_off(n.icc))];
                if n.internal {
                    flags.push("internal".into());
                }
                if let Some(m) = &n.nptv6 {
                    flags.push(format!(
                        "mapped to {} since {} (follows {}, moved {} times)",
                        m.prefix.as_deref().unwrap_or("nothing"),
                        m.since,
                        m.follows,
                        m.changes
                    ));
                }
                format!(
                    "{} ({}) {}: {} ({}), {}",
                    n.name,
                    n.bridge,
                    n.subnets.join(" "),
                    n.mode,
                    n.mode_source,
                    flags.join(", ")
                )
            }),
        )?;
        list(
            f,
            "containers",
            self.containers.iter().map(|c| {
                let addresses: Vec<String> = c
                    .addresses
                    .iter()
                    .map(|(n, a)| format!("{n} {a}"))
                    .collect();
                let mut line = format!("{} ({}) {}", c.name, short(&c.id), addresses.join(", "));
                if c.sealed {
                    line.push_str("\n    sealed: nothing inbound on IPv6 (dock6.expose)");
                }
                if !c.published.is_empty() {
                    line.push_str(&format!("\n    published: {}", c.published.join(", ")));
                }
                if !c.open.is_empty() {
                    line.push_str(&format!("\n    open at its address: {}", c.open.join(", ")));
                }
                line
            }),
        )?;
        list(
            f,
            "proxy-ndp entries",
            self.proxy_entries.iter().map(|p| {
                format!(
                    "{} on {} (container {}, network {})",
                    p.address, p.interface, p.container, p.network
                )
            }),
        )?;
        list(
            f,
            "problems",
            self.problems
                .iter()
                .map(|p| format!("{}: {}", p.level, p.text)),
        )?;
        let c = &self.counters;
        writeln!(
            f,
            "\ncounters: passes {} (failed {}), transactions {}, element changes {}, \
             tamper restores {}, docker reconnects {}",
            c.passes,
            c.failed_passes,
            c.transactions,
            c.element_changes,
            c.tamper_restores,
            c.docker_reconnects
        )
    }
}

/// A blank line, `title:` and one indented line per item, or `  (none)`.
fn list(f: &mut Formatter<'_>, title: &str, items: impl Iterator<Item = String>) -> fmt::Result {
    writeln!(f, "\n{title}:")?;
    let mut any = false;
    for item in items {
        any = true;
        writeln!(f, "  {item}")?;
    }
    if !any {
        writeln!(f, "  (none)")?;
    }
    Ok(())
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}
