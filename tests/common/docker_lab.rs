//! The Docker lab (the `dock6-lab` crate: a private dockerd in namespaces of
//! its own, also behind `cargo xtask lab`) for tests: up on creation, down on
//! drop — also when the test fails.

pub use dock6_lab as lab;

use std::process::Command;

use super::netns::Netns;

pub struct DockerLab {
    pub lab: lab::Lab,
    pub options: lab::Options,
}

impl DockerLab {
    /// A lab named `TAG-PID`, with dockerd running.
    pub fn up(tag: &str, options: lab::Options) -> DockerLab {
        let mut lab = DockerLab::network_only(tag, options);
        let options = lab.options.clone();
        lab.lab
            .start_docker(&options)
            .unwrap_or_else(|e| panic!("lab {}: {e:#}", lab.lab.name));
        lab
    }

    /// The namespaces only; Docker not started.
    pub fn network_only(tag: &str, options: lab::Options) -> DockerLab {
        let name = format!("{tag}-{}", std::process::id());
        let lab = lab::Lab::new(&name).unwrap_or_else(|e| panic!("{e:#}"));
        // The guard exists before anything is made, so a failed `up` is cleaned too.
        let mut guard = DockerLab { lab, options };
        guard
            .lab
            .up_network()
            .unwrap_or_else(|e| panic!("lab {name}: {e:#}"));
        guard
    }

    /// Node `node` (2, 3, …) on this lab's link, with a dockerd of its own started with
    /// `options`; down on drop like this one.
    pub fn peer(&self, node: u8, options: lab::Options) -> DockerLab {
        let peer = self
            .lab
            .peer(node)
            .unwrap_or_else(|e| panic!("lab {}: {e:#}", self.lab.name));
        let name = peer.name.clone();
        let mut guard = DockerLab { lab: peer, options };
        guard
            .lab
            .up_network()
            .unwrap_or_else(|e| panic!("lab {name}: {e:#}"));
        let options = guard.options.clone();
        guard
            .lab
            .start_docker(&options)
            .unwrap_or_else(|e| panic!("lab {name}: {e:#}"));
        guard
    }

    /// The host's IPv6 address on the link.
    pub fn host_v6(&self) -> String {
        self.lab.host_v6()
    }

    pub fn host(&self) -> String {
        self.lab.docker_host()
    }

    /// `docker ARGS` against the lab; panics on failure; trimmed stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.lab.docker().args(args).output().expect("run docker");
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The lab's host namespace (not deleted by this handle).
    pub fn host_ns(&self) -> Netns {
        Netns::existing(&self.lab.host_ns)
    }

    pub fn upstream_ns(&self) -> Netns {
        Netns::existing(&self.lab.upstream_ns)
    }

    /// A command run inside the host namespace (`nsenter`, as dockerd is).
    pub fn in_host(&self, program: &str) -> Command {
        self.lab.in_host(program)
    }
}

impl Drop for DockerLab {
    fn drop(&mut self) {
        if let Err(e) = self.lab.down() {
            eprintln!("{e:#}");
        }
    }
}
