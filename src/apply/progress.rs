//! A heartbeat for long kernel work. The thread that makes the kernel calls
//! marks each kernel operation it finishes (a netlink exchange, a proxy
//! entry, a route, a sysctl), so that whoever waits on it can tell a call
//! that is slow but moving — a first pass adding thousands of proxy entries
//! — from one operation that does not return.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// When the thread it belongs to last finished a kernel operation.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Nanoseconds from `origin` to the last beat.
    last: AtomicU64,
    beats: AtomicU64,
}

impl Heartbeat {
    pub fn new() -> Arc<Heartbeat> {
        Arc::new(Heartbeat {
            origin: Instant::now(),
            last: AtomicU64::new(0),
            beats: AtomicU64::new(0),
        })
    }

    /// Marks progress now.
    pub fn beat(&self) {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.fetch_max(nanos, Ordering::Relaxed);
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times progress was marked.
    pub fn beats(&self) -> u64 {
        self.beats.load(Ordering::Relaxed)
    }

    /// When progress was last marked (its creation, if never).
    pub fn last(&self) -> Instant {
        self.origin + std::time::Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

thread_local! {
    static HEARTBEAT: RefCell<Option<Arc<Heartbeat>>> = const { RefCell::new(None) };
}

/// Makes `heartbeat` the calling thread's: [`beat`] on this thread marks it.
pub fn install(heartbeat: Arc<Heartbeat>) {
    HEARTBEAT.with(|h| *h.borrow_mut() = Some(heartbeat));
}

/// Marks progress on the calling thread's heartbeat, if it has one (the
/// agent's kernel threads do; other callers have none, and this does
/// nothing).
pub fn beat() {
    HEARTBEAT.with(|h| {
        if let Some(heartbeat) = h.borrow().as_ref() {
            heartbeat.beat();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_mark_only_the_heartbeat_of_their_thread() {
        let heartbeat = Heartbeat::new();
        let before = heartbeat.last();
        let theirs = Arc::clone(&heartbeat);
        std::thread::spawn(move || {
            install(theirs);
            beat();
            beat();
        })
        .join()
        .expect("the beating thread");
        assert_eq!(heartbeat.beats(), 2);
        assert!(heartbeat.last() >= before);
        // This thread has none installed: nothing to mark, nothing marked.
        beat();
        assert_eq!(heartbeat.beats(), 2);
    }
}
