//! When the next pass runs: a pass that did not converge is retried on its
//! own, without waiting for an event, after a capped exponential backoff
//! (reset by a pass that converged).

use std::time::Duration;

use tokio::time::Instant;

pub const BACKOFF_START: Duration = Duration::from_millis(250);
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Capped exponential backoff: 250 ms doubling to 10 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_CAP);
        delay
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

/// The next pass's time after a pass that `converged` (or not) at `now`,
/// given the time `due` already set by events (if any): a failed pass
/// brings it forward to the retry time.
pub fn after_pass(
    converged: bool,
    backoff: &mut Backoff,
    now: Instant,
    due: Option<Instant>,
) -> Option<Instant> {
    if converged {
        backoff.reset();
        return due;
    }
    let retry = now + backoff.next_delay();
    Some(due.map_or(retry, |d| d.min(retry)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], BACKOFF_START);
        assert_eq!(delays[1], BACKOFF_START * 2);
        assert_eq!(delays.last().copied(), Some(BACKOFF_CAP));
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_START);
    }

    #[test]
    fn a_failed_pass_is_retried_without_an_event() {
        let mut b = Backoff::default();
        let now = Instant::now();
        assert_eq!(
            after_pass(false, &mut b, now, None),
            Some(now + Duration::from_millis(250))
        );
        assert_eq!(
            after_pass(false, &mut b, now, None),
            Some(now + Duration::from_millis(500))
        );
        // An event due sooner keeps its time; the backoff still grows.
        let soon = now + Duration::from_millis(10);
        assert_eq!(after_pass(false, &mut b, now, Some(soon)), Some(soon));
        assert_eq!(
            after_pass(false, &mut b, now, None),
            Some(now + Duration::from_secs(2))
        );
        // Success: nothing more to do unless an event asks, and the backoff restarts.
        assert_eq!(after_pass(true, &mut b, now, None), None);
        assert_eq!(
            after_pass(false, &mut b, now, None),
            Some(now + BACKOFF_START)
        );
        for _ in 0..10 {
            after_pass(false, &mut b, now, None);
        }
        assert_eq!(
            after_pass(false, &mut b, now, None),
            Some(now + BACKOFF_CAP)
        );
    }
}
