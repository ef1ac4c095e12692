//! When to try the backend again after a failure, and how often to say so in
//! the log. Both are pure (time is passed in) so they are tested without
//! sleeping.
use std::time::{Duration, Instant};

/// Attempts per batch, the first included, before it is abandoned.
pub const MAX_ATTEMPTS: u32 = 3;
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Exponential backoff that keeps growing across batches while the backend
/// keeps failing, so a dead collector is asked at most every few seconds
/// instead of three times per batch; one success resets it.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: INITIAL_BACKOFF,
        }
    }
}

impl Backoff {
    /// Records a failure; returns how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }

    pub fn succeeded(&mut self) {
        self.next = INITIAL_BACKOFF;
    }
}

/// At most one warning per interval; the ones skipped are counted so the
/// next line can say how many there were.
#[derive(Debug)]
pub struct WarnLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for WarnLimiter {
    fn default() -> Self {
        Self::new(WARN_INTERVAL)
    }
}

impl WarnLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Some(number suppressed since the last line) when a line may be
    /// logged now.
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..7).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        b.succeeded();
        assert_eq!(b.failed(), INITIAL_BACKOFF);
    }

    #[test]
    fn warnings_are_rate_limited() {
        let mut w = WarnLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.check(t0), Some(0));
        assert_eq!(w.check(t0 + Duration::from_secs(1)), None);
        assert_eq!(w.check(t0 + Duration::from_secs(9)), None);
        assert_eq!(w.check(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(w.check(t0 + Duration::from_secs(11)), None);
    }
}
