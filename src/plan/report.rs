//! The plan as an operator reads it: decisions as `#` comments, then the
//! ruleset as an `nft -f` script that replaces the table atomically. The
//! whole text is valid input for `nft -c -f`.

use std::fmt::{self, Display, Formatter};

use super::{Level, Plan, SysctlSetting};
use crate::nft::render_net;

impl Display for Plan {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "# dock6 plan")?;
        writeln!(
            f,
            "# uplink: {}",
            self.uplink.as_deref().unwrap_or("(none)")
        )?;
        writeln!(f, "#")?;
        writeln!(f, "# networks:")?;
        if self.networks.is_empty() {
            writeln!(f, "#   (none)")?;
        }
        for n in &self.networks {
            let subnets: Vec<String> = n.subnets.iter().map(render_net).collect();
            let mut flags = vec![format!("icc={}", on_off(n.icc))];
            if n.mode == super::Mode::Nat66 {
                flags.push(format!("masquerade={}", on_off(n.masquerade)));
            }
            if n.internal {
                flags.push("internal".into());
            }
            writeln!(
                f,
                "#   {} ({}) {}: {} ({}), {}",
                n.name,
                n.bridge,
                subnets.join(" "),
                n.mode.name(),
                n.mode_source.name(),
                flags.join(" ")
            )?;
        }
        writeln!(f, "# sysctls, in order:")?;
        if self.sysctls.is_empty() {
            writeln!(f, "#   (none)")?;
        }
        for s in &self.sysctls {
            writeln!(f, "#   {}", sysctl_line(s))?;
        }
        writeln!(f, "# proxy-ndp entries:")?;
        if self.proxy_entries.is_empty() {
            writeln!(f, "#   (none)")?;
        }
        for p in &self.proxy_entries {
            writeln!(
                f,
                "#   {} on {} (container {}, network {})",
                p.address, p.interface, p.container, p.network
            )?;
        }
        writeln!(f, "# host routes:")?;
        if self.host_routes.is_empty() {
            writeln!(f, "#   (none)")?;
        }
        for r in &self.host_routes {
            writeln!(
                f,
                "#   {}/128 dev {} (container {})",
                r.address, r.interface, r.container
            )?;
        }
        writeln!(f, "# notes:")?;
        if self.notes.is_empty() {
            writeln!(f, "#   (none)")?;
        }
        for n in &self.notes {
            let level = match n.level {
                Level::Info => "info",
                Level::Warn => "warn",
            };
            writeln!(f, "#   {level}: {}", n.text)?;
        }
        writeln!(f)?;
        f.write_str(&self.ruleset.replace_script())
    }
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
