//! Giving freed heap back to the kernel after a big, short-lived
//! allocation: a whole-table replace at 10,000 containers builds and
//! encodes a few hundred thousand elements for one commit, and a full
//! Docker snapshot holds a second copy of every container for a moment.
//! glibc keeps such memory in its arenas (the agent's threads each have
//! one) and rarely returns memory from the middle of a heap, so the
//! agent's resident size would stay at that peak for good.

/// Makes the allocator hand every block of 256 KiB or more straight back
/// to the kernel when it is freed, and keep at most 512 KiB of free memory
/// at the top of a heap (glibc's `mallopt`); a no-op elsewhere. The agent's
/// large blocks are short-lived (a batch, a whole table, a snapshot), and
/// glibc otherwise raises both thresholds after each large free, up to
/// tens of megabytes, which it then keeps for good in each arena. Call it
/// once, at start.
pub fn give_large_frees_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only changes glibc's own
    // tuning parameters (under its lock); it touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 * 1024);
    }
}

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

/// The bytes the allocator has handed out and not yet taken back, over all
/// of its arenas (glibc's `mallinfo2`); `None` elsewhere. For tests and the
/// bench: what a structure kept between calls costs.
pub fn heap_in_use() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no pointers and returns a plain struct of
        // counters, summed over glibc's arenas under their locks.
        let info = unsafe { libc::mallinfo2() };
        Some(info.uordblks)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}
