//! dock6(8), made from the binary's own `--help` texts, so it never says
//! something the command line does not.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::sys::output;

const COMMANDS: &[&str] = &[
    "check", "status", "run", "render", "snapshot", "apply", "cleanup",
];

/// The page in roff.
pub(crate) fn man_page(binary: &Path, version: &str) -> Result<String> {
    let mut page = format!(
        ".TH DOCK6 8 \"\" \"dock6 {version}\" \"System Administration\"\n\
         .SH NAME\ndock6 \\- IPv6 for Docker containers: NAT66, NDP proxying, routed prefixes, its own nftables table\n\
         .SH SYNOPSIS\n.B dock6\n.I COMMAND\n[\\fIOPTIONS\\fR]\n.SH DESCRIPTION\n"
    );
    page.push_str(&literal(&output(Command::new(binary).arg("--help"))?));
    page.push_str(".SH COMMANDS\n");
    for command in COMMANDS {
        // A command this binary does not have yet is left out.
        let Ok(help) = output(Command::new(binary).args([command, "--help"])) else {
            continue;
        };
        page.push_str(&format!(".SS {command}\n"));
        page.push_str(&literal(&help));
    }
    page.push_str(
        ".SH FILES\n.TP\n/etc/dock6/dock6.toml\nthe optional configuration (every key commented, with its default)\n\
         .TP\n/run/dock6/dock6.sock\nthe running agent's status socket (root only)\n\
         .SH SEE ALSO\n.BR systemctl (1),\n.BR nft (8)\n",
    );
    Ok(page)
}

/// Text shown as it is (no filling), with roff's special characters escaped.
fn literal(text: &str) -> String {
    let mut out = String::from(".nf\n");
    for line in text.lines() {
        let line = line.replace('\\', "\\e");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}
