//! Warnings about Docker's data (a network without a name, an address that
//! does not parse), logged once per change. Every full snapshot (each
//! resync, each reconnect) sees the same odd data again; a warning that was
//! already logged for the previous snapshot or this one goes to debug, and
//! one that went away and comes back is logged again.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tracing::{debug, warn};

/// The warnings of the last full snapshot and of the one being taken.
#[derive(Debug, Default)]
pub(super) struct Generations {
    previous: BTreeSet<String>,
    current: BTreeSet<String>,
}

impl Generations {
    const fn new() -> Generations {
        Generations {
            previous: BTreeSet::new(),
            current: BTreeSet::new(),
        }
    }

    /// Records `text`; true when it is news (to be logged as a warning).
    pub fn note(&mut self, text: &str) -> bool {
        let news = !self.previous.contains(text) && !self.current.contains(text);
        self.current.insert(text.to_string());
        news
    }

    /// A full snapshot begins: what the last one warned about is "seen".
    pub fn next_snapshot(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}

static GENERATIONS: Mutex<Generations> = Mutex::new(Generations::new());

fn with<T>(f: impl FnOnce(&mut Generations) -> T) -> T {
    // A panic while holding the lock loses at most a log line's dedup.
    let mut g = GENERATIONS.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut g)
}

pub(super) fn data_warning(text: String) {
    if with(|g| g.note(&text)) {
        warn!("{text}");
    } else {
        debug!("{text}");
    }
}

pub(super) fn next_snapshot() {
    with(Generations::next_snapshot);
}

/// `warn!` for Docker's data, through [`data_warning`].
macro_rules! data_warn {
    ($($arg:tt)*) => {
        $crate::source::docker::data_warnings::data_warning(format!($($arg)*))
    };
}
pub(super) use data_warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_warning_is_news_once_per_change() {
        let mut g = Generations::default();
        assert!(g.note("network x: no Name"));
        assert!(!g.note("network x: no Name"), "twice in one snapshot");
        g.next_snapshot();
        assert!(!g.note("network x: no Name"), "again in the next snapshot");
        g.next_snapshot();
        g.next_snapshot();
        assert!(
            g.note("network x: no Name"),
            "gone for a snapshot, then back"
        );
    }
}
