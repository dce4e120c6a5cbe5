/// Whether this test can run: it needs root. Not root → prints why it is
/// skipped and returns false; under `CI=true` a skip would hide a failure, so
/// it panics instead.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs root, and CI=true forbids skipping");
    }
    eprintln!("skipping {test}: needs root (network namespaces, sysctls, netlink)");
    false
}
