//! `status`: what exists of a lab, read without changing anything.

use std::fs;

use crate::Lab;
use crate::sys::{cmdline, is_alive, mounts_under, output};
use crate::topology::netns_exists;

fn presence(present: bool) -> &'static str {
    if present { "present" } else { "absent" }
}

impl Lab {
    /// What exists of the lab, one line per item.
    pub fn status(&self) -> Vec<String> {
        let mut lines = vec![format!("lab {} ({})", self.name, self.dir.display())];
        lines.push(format!("  directory: {}", presence(self.dir.exists())));
        for ns in self.own_namespaces() {
            lines.push(format!("  netns {ns}: {}", presence(netns_exists(ns))));
        }
        let pid = fs::read_to_string(self.pidfile())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        lines.push(match pid {
            Some(pid) if is_alive(pid) => format!("  dockerd: pid {pid}"),
            Some(pid) => format!("  dockerd: pid {pid} is gone"),
            None => "  dockerd: no pidfile".into(),
        });
        if self.socket().exists() {
            lines.extend(self.docker_status());
        }
        lines.extend(
            mounts_under(&self.dir)
                .iter()
                .map(|m| format!("  mount {}", m.display())),
        );
        lines.extend(
            self.processes()
                .iter()
                .map(|p| format!("  process {p}: {}", cmdline(*p))),
        );
        lines
    }

    /// Whether dockerd answers on the socket, and its containers.
    fn docker_status(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match output(
            self.docker()
                .args(["version", "--format", "{{.Server.Version}}"]),
        ) {
            Ok(v) => lines.push(format!("  docker: answers, server {}", v.trim())),
            Err(_) => lines.push("  docker: socket does not answer".into()),
        }
        if let Ok(ps) = output(self.docker().args([
            "ps",
            "--format",
            "{{.ID}} {{.Image}} {{.Status}} {{.Names}}",
        ])) {
            lines.extend(ps.lines().map(|l| format!("  container {l}")));
        }
        lines
    }
}
