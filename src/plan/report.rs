//! The plan as an operator reads it: decisions as `#` comments, then the
//! ruleset as an `nft -f` script that replaces the table atomically. The
//! whole text is valid input for `nft -c -f`.

use std::fmt::{self, Display, Formatter};

use super::{Level, NaSource, NetworkPlan, Note, Plan, SysctlSetting};

impl Display for Plan {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "# dock6 plan")?;
        writeln!(
            f,
            "# uplink: {}",
            self.uplink.as_deref().unwrap_or("(none)")
        )?;
        writeln!(f, "#")?;
        section(f, "networks:", self.networks.iter().map(network_line))?;
        section(
            f,
            "sysctls, in order:",
            self.sysctls.iter().map(sysctl_line),
        )?;
        if self.na_source == NaSource::Target {
            writeln!(
                f,
                "# na_source: target (dock6 answers for the proxied addresses, from each address)"
            )?;
        }
        section(
            f,
            "proxy-ndp entries:",
            self.proxy_entries.iter().map(|p| {
                format!(
                    "{} on {} (container {}, network {})",
                    p.address, p.interface, p.container, p.network
                )
            }),
        )?;
        section(
            f,
            "host routes:",
            self.host_routes.iter().map(|r| {
                format!(
                    "{}/128 dev {} (container {})",
                    r.address, r.interface, r.container
                )
            }),
        )?;
        section(f, "notes:", self.notes.iter().map(note_line))?;
        writeln!(f)?;
        f.write_str(&self.ruleset.replace_script())
    }
}

/// `# title` and one `#   line` per item, or `#   (none)`.
fn section(f: &mut Formatter<'_>, title: &str, lines: impl Iterator<Item = String>) -> fmt::Result {
    writeln!(f, "# {title}")?;
    let mut any = false;
    for line in lines {
        any = true;
        writeln!(f, "#   {line}")?;
    }
    if !any {
        writeln!(f, "#   (none)")?;
    }
    Ok(())
}

fn network_line(n: &NetworkPlan) -> String {
    // With their length, even /128: this is the operator's view of Docker's data.
    let subnets: Vec<String> = n.subnets.iter().map(|s| s.to_string()).collect();
    let mut flags = vec![format!("icc={}", on_off(n.icc))];
    if n.mode == super::Mode::Nat66 {
        flags.push(format!("masquerade={}", on_off(n.masquerade)));
    }
    if n.internal {
        flags.push("internal".into());
    }
    if n.unprotected {
        flags.push("unprotected".into());
    }
    match (n.nptv6, n.nptv6_source.filter(|s| s.follows_host())) {
        (Some(prefix), Some(source)) => {
            flags.push(format!("mapped to {prefix} (follows the {source} prefix)"))
        }
        (Some(prefix), None) => flags.push(format!("mapped to {prefix}")),
        (None, Some(source)) => flags.push(format!("waiting for the {source} prefix")),
        (None, None) => {}
    }
    format!(
        "{} ({}) {}: {} ({}), {}",
        n.name,
        n.bridge,
        subnets.join(" "),
        n.mode.name(),
        n.mode_source.name(),
        flags.join(" ")
    )
}

fn note_line(n: &Note) -> String {
    let level = match n.level {
        Level::Info => "info",
        Level::Warn => "warn",
    };
    format!("{level}: {}", n.text)
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn sysctl_line(s: &SysctlSetting) -> String {
    let mut line = format!("{} = {}", s.key(), s.value);
    match (s.current, s.keep_if) {
        (Some(c), _) => line.push_str(&format!(" (now {c})")),
        (None, Some(k)) => line.push_str(&format!(" (unless it is {k})")),
        (None, None) => {}
    }
    line.push_str(&format!(": {}", s.reason));
    line
}
