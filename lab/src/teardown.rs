//! `down`: removes everything a lab made, in an order that lets each step succeed (containers
//! before dockerd, processes before mounts, mounts before the directory). Safe on a partial lab
//! and when nothing is left; what cannot be removed is reported, not hidden.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::dockerd::{DOCKERD_STOP_TIMEOUT, SHARED_OUTSIDE, terminate};
use crate::sys::{
    SIGKILL, all_pids, is_alive, is_root, mounts_under, output, run, signal, wait_gone,
};
use crate::topology::netns_exists;
use crate::{BASE_DIR, Lab};

impl Lab {
    /// Removes everything the lab made. Safe on a partial lab, and when nothing is left.
    pub fn down(&mut self) -> Result<()> {
        if !is_root() {
            bail!("the lab needs root");
        }
        let mut problems = Vec::new();
        let shim_sockets = self.shim_sockets();
        self.kill_containers();
        self.stop_dockerd_for_good();
        self.kill_leftovers(&mut problems);
        let mounts = self.unmount_all();
        if !mounts.is_empty() {
            problems.push(format!("still mounted: {mounts:?}"));
        }
        self.delete_namespaces(&mut problems);
        // The cgroup parent, in every hierarchy (rmdir only removes empty cgroups).
        remove_cgroups(&self.cgroup_parent());
        self.remove_shim_sockets(&shim_sockets);
        self.remove_outside_dirs();
        // The directory, only when nothing is mounted below it any more.
        if mounts.is_empty()
            && self.dir.exists()
            && let Err(e) = fs::remove_dir_all(&self.dir)
        {
            problems.push(format!("remove {}: {e}", self.dir.display()));
        }
        let _ = fs::remove_dir(BASE_DIR); // only when no other lab is left
        if !problems.is_empty() {
            bail!(
                "lab {} not completely removed:\n  {}",
                self.name,
                problems.join("\n  ")
            );
        }
        Ok(())
    }

    /// containerd 1.6 puts shim sockets in /run/containerd/s/ whatever its state directory: note
    /// the lab's while its processes still live (unix sockets are listed per netns).
    fn shim_sockets(&self) -> Vec<PathBuf> {
        self.processes()
            .first()
            .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/net/unix")).ok())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(7))
            .filter(|p| p.starts_with("/run/containerd/s/"))
            .map(PathBuf::from)
            .collect()
    }

    /// Containers first, with SIGKILL: dockerd's shutdown would otherwise wait for each
    /// container's stop timeout (busybox as PID 1 ignores SIGTERM).
    fn kill_containers(&self) {
        if self.socket().exists()
            && let Ok(ids) = output(self.docker().args(["ps", "-q"]))
        {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self
                    .docker()
                    .arg("kill")
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// dockerd, by its pidfile (or our child), SIGKILLed if SIGTERM does not end it; our child
    /// is reaped either way.
    fn stop_dockerd_for_good(&mut self) {
        if let Some(pid) = self.dockerd_pid()
            && self.is_lab_dockerd(pid)
            && !terminate(pid)
        {
            eprintln!(
                "lab {}: dockerd {pid} ignored SIGTERM for {DOCKERD_STOP_TIMEOUT:?}: SIGKILL",
                self.name
            );
        }
        if let Some(mut child) = self.dockerd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whatever else lives in the lab: containerd, shims, docker-proxy, container processes.
    fn kill_leftovers(&self, problems: &mut Vec<String>) {
        let leftovers = self.processes();
        if leftovers.is_empty() {
            return;
        }
        eprintln!(
            "lab {}: killing leftover processes {leftovers:?}",
            self.name
        );
        for &pid in &leftovers {
            signal(pid, SIGKILL);
        }
        if !wait_gone(&leftovers, Duration::from_secs(5)) {
            problems.push(format!("processes still alive: {:?}", self.processes()));
        }
    }

    /// Mounts under the lab directory (overlays, shm, netns files), deepest first, a few rounds
    /// (unmounting one can uncover another); returns what is still mounted.
    fn unmount_all(&self) -> Vec<PathBuf> {
        for _ in 0..3 {
            let mounts = mounts_under(&self.dir);
            if mounts.is_empty() {
                break;
            }
            for mount in mounts.iter().rev() {
                let _ = Command::new("umount")
                    .arg("--lazy")
                    .arg(mount)
                    .stderr(Stdio::null())
                    .status();
            }
        }
        mounts_under(&self.dir)
    }

    /// The namespaces (the veth pair goes with them); a peer leaves the upstream to node 1.
    fn delete_namespaces(&self, problems: &mut Vec<String>) {
        for ns in self.own_namespaces() {
            if !netns_exists(ns) {
                continue;
            }
            forget_dock6_forwarding_record(ns);
            if let Err(e) = run(Command::new("ip").args(["netns", "delete", ns])) {
                problems.push(format!("{e:#}"));
            }
        }
    }

    fn remove_shim_sockets(&self, sockets: &[PathBuf]) {
        for socket in sockets.iter().filter(|s| s.exists()) {
            eprintln!(
                "lab {}: removing stale shim socket {}",
                self.name,
                socket.display()
            );
            let _ = fs::remove_file(socket);
        }
    }

    /// Directories outside the lab that did not exist before this lab's `up` or another's (the
    /// shared record), if empty, and only when no other dockerd or containerd (another lab, the
    /// system's) may be using them; the last lab down clears the shared record.
    fn remove_outside_dirs(&self) {
        let others = all_pids().into_iter().filter(|&p| is_alive(p)).any(|p| {
            fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| matches!(c.trim(), "dockerd" | "containerd"))
        });
        if others {
            return;
        }
        let mine = fs::read_to_string(self.dir.join("outside")).unwrap_or_default();
        let shared = fs::read_to_string(SHARED_OUTSIDE).unwrap_or_default();
        let mut dirs: Vec<&str> = mine
            .lines()
            .chain(shared.lines())
            .filter(|l| !l.is_empty())
            .collect();
        // Deepest first: a parent goes once its children are gone.
        dirs.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        dirs.dedup();
        for dir in dirs {
            let _ = fs::remove_dir(dir);
        }
        let _ = fs::remove_file(SHARED_OUTSIDE);
    }

    /// Pids living in the lab: in one of its own namespaces (dockerd, containerd, shims, docker-proxy),
    /// in its cgroup parent (container processes: their root and executable are in a mount
    /// namespace of their own), or with their executable under the lab directory.
    pub fn processes(&self) -> Vec<i32> {
        let namespaces: Vec<String> = self
            .own_namespaces()
            .into_iter()
            .filter_map(|ns| fs::metadata(Path::new("/run/netns").join(ns)).ok())
            .map(|m| format!("net:[{}]", m.ino()))
            .collect();
        let cgroup = format!("/{}/", self.cgroup_parent());
        let me = std::process::id() as i32;
        let mut out = Vec::new();
        for pid in all_pids() {
            if pid == me || pid == 1 || !is_alive(pid) {
                continue;
            }
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let in_ns = fs::read_link(proc.join("ns/net"))
                .is_ok_and(|l| namespaces.iter().any(|n| l.as_os_str() == n.as_str()));
            let in_cgroup =
                fs::read_to_string(proc.join("cgroup")).is_ok_and(|c| c.contains(&cgroup));
            let exe_under = fs::read_link(proc.join("exe")).is_ok_and(|p| p.starts_with(&self.dir));
            if in_ns || in_cgroup || exe_under {
                out.push(pid);
            }
        }
        out
    }
}

/// The cgroup parent is relative: runc puts it under dockerd's own cgroup in each hierarchy, which
/// need not be the root (here the memory hierarchy nests it under the session's cgroup). So look
/// for it a few levels down in every hierarchy.
fn remove_cgroups(parent: &str) {
    fn find(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if entry.file_name() == name {
                out.push(entry.path());
            } else if depth > 0 {
                find(&entry.path(), name, depth - 1, out);
            }
        }
    }
    let mut found = Vec::new();
    find(Path::new("/sys/fs/cgroup"), parent, 4, &mut found);
    for dir in found {
        rmdir_tree(&dir);
    }
}

/// rmdir, children first; cgroup directories cannot be removed any other way.
fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// dock6 records that it turned forwarding on in a file per network namespace, named by the
/// namespace's inode; the file goes with the namespace (it would only say "not this one"
/// afterwards, but need not linger in /run).
fn forget_dock6_forwarding_record(ns: &str) {
    if let Ok(meta) = fs::metadata(format!("/run/netns/{ns}")) {
        let _ = fs::remove_file(format!("/run/dock6/forwarding-netns-{}", meta.ino()));
    }
}
