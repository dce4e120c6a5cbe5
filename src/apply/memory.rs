//! Giving freed heap back to the kernel after a big, short-lived
//! allocation: a whole-table replace at 10,000 containers builds and
//! encodes a few hundred thousand elements for one commit, and a full
//! Docker snapshot holds a second copy of every container for a moment.
//! glibc keeps such memory in its arenas (the agent's threads each have
//! one) and rarely returns memory from the middle of a heap, so the
//! agent's resident size would stay at that peak for good.

/// Returns free heap pages to the kernel (glibc's `malloc_trim`); a no-op
/// elsewhere. Walks the heap: call it after rare, large frees only.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only rearranges glibc's own
    // free lists; it is thread-safe (each arena is locked while trimmed).
    unsafe {
        libc::malloc_trim(0);
    }
}
