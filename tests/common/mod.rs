//! Helpers shared by the integration tests that need root.
#![allow(dead_code)]

use std::io::Write as _;
use std::process::{Command, Stdio};

/// True if the test may run (we are root). Otherwise prints why it is
/// skipped and returns false — unless `CI=true`, where a skipped root test
/// would hide a regression: then it panics ("cannot run: not root").
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run: not root (CI=true)");
    }
    eprintln!("skipping {test}: needs root (euid {euid}); run the tests as root");
    false
}

/// Runs `f` on a new thread that first moves into a fresh, empty network
/// namespace of its own (`unshare(CLONE_NEWNET)` affects only the calling
/// thread). Netlink sockets opened and processes spawned from that thread
/// live in that namespace; it disappears when the thread ends, so there is
/// nothing to clean up and the host's namespace is never touched.
pub fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare with CLONE_NEWNET only changes this thread's
        // network namespace; no memory is involved.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Runs `nft ARGS` (in the calling thread's network namespace), with
/// optional stdin; panics with its stderr on failure.
pub fn nft(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nft");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to nft");
    }
    let out = child.wait_with_output().expect("wait for nft");
    assert!(
        out.status.success(),
        "nft {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("nft output is UTF-8")
}

/// Inode of the calling thread's network namespace (to check isolation).
pub fn netns_id() -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/thread-self/ns/net").expect("netns").ino()
}
