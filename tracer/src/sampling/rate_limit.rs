//! Rate-limited root sampling: a token bucket for the decisions made here,
//! plus an estimate of the ratio that would hold the same limit, for the
//! kernel side, which starts traces without asking userspace.
//!
//! Time comes from the caller (`Instant`s), so tests can simulate a clock and
//! the limiter never reads one itself.

use std::time::{Duration, Instant};

/// Length of the windows over which the offered rate is measured.
const WINDOW: Duration = Duration::from_secs(1);

/// Weight of one full window of new observations in the moving average: the
/// estimate's half-life is one window, so it follows a load change within a
/// few seconds without swinging on every burst.
const WINDOW_WEIGHT: f64 = 0.5;

/// After this many empty windows the estimate is zero for any purpose, so
/// there is no point stepping through more of them.
const FORGET_AFTER: u32 = 64;

#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` before the first
    /// decision.
    refilled_at: Option<Instant>,
    window_start: Option<Instant>,
    /// Root traces offered since `window_start`.
    window_offered: u64,
    /// Moving average of offered root traces per second; `None` until the
    /// first window closes.
    offered_rate: Option<f64>,
}

impl RateLimiter {
    /// `per_second` traces per second, with a burst of `max(1, per_second)`.
    /// A rate that is negative or not finite is treated as 0 (one trace, then
    /// nothing), never as unlimited.
    pub(crate) fn new(per_second: f64) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            0.0
        };
        Self {
            per_second,
            capacity: per_second.max(1.0),
            tokens: 0.0,
            refilled_at: None,
            window_start: None,
            window_offered: 0,
            offered_rate: None,
        }
    }

    /// Decides one root trace offered at `now`.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> bool {
        self.tick(now);
        self.window_offered += 1;
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Counts a root trace that was decided elsewhere (by the kernel, with the
    /// threshold derived from [`Self::adaptive_ratio`]) in the offered rate,
    /// without spending a token: the estimate must see all root traces, or it
    /// would read the kernel's own dropping as falling load and oscillate.
    pub(crate) fn observe(&mut self, now: Instant) {
        self.tick(now);
        self.window_offered += 1;
    }

    /// Closes the measuring window if it is over. Called on every decision,
    /// and should be called periodically too so that the estimate decays when
    /// root traces stop arriving.
    ///
    /// Windows are fixed one-second slots from the first observation, so a
    /// closed window's rate is exactly its count per second, and the slots
    /// that passed with no call at all are known to have been empty.
    pub(crate) fn tick(&mut self, now: Instant) {
        let Some(start) = self.window_start else {
            self.window_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        let windows = elapsed.as_nanos() / WINDOW.as_nanos();
        if windows == 0 {
            return;
        }
        let rate = self.window_offered as f64 / WINDOW.as_secs_f64();
        let average = match self.offered_rate {
            None => rate,
            Some(previous) => previous + WINDOW_WEIGHT * (rate - previous),
        };
        let empty = u32::try_from(windows - 1)
            .unwrap_or(u32::MAX)
            .min(FORGET_AFTER);
        // `empty` is at most FORGET_AFTER, so the cast is exact.
        self.offered_rate = Some(average * (1.0 - WINDOW_WEIGHT).powi(empty as i32));
        self.window_start = Some(if empty < FORGET_AFTER {
            start + WINDOW * (empty + 1)
        } else {
            // Long idle: realign the slots on now rather than step through.
            now
        });
        self.window_offered = 0;
    }

    /// The ratio of root traces to keep so that the recent offered rate comes
    /// down to the limit: `min(1, per_second / offered_rate)`, 1 while nothing
    /// has been measured yet.
    pub(crate) fn adaptive_ratio(&self) -> f64 {
        match self.offered_rate {
            Some(offered) if offered > self.per_second => self.per_second / offered,
            _ => 1.0,
        }
    }

    fn refill(&mut self, now: Instant) {
        match self.refilled_at {
            // The bucket starts with one token, not full: the first trace is
            // always kept, but a fresh agent facing a flood admits about
            // `per_second` in its first second rather than twice that.
            None => {
                self.tokens = 1.0;
                self.refilled_at = Some(now);
            }
            Some(last) => {
                let elapsed = now.saturating_duration_since(last).as_secs_f64();
                self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
                // An `Instant` older than the last one (callers on other
                // threads) must not make time run twice.
                self.refilled_at = Some(last.max(now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offers `count` root traces evenly over `duration` from `start`; returns
    /// how many were kept.
    fn offer(limiter: &mut RateLimiter, start: Instant, duration: Duration, count: u32) -> u32 {
        (0..count)
            .map(|i| start + duration * i / count)
            .filter(|&at| limiter.try_acquire(at))
            .map(|_| 1)
            .sum()
    }

    #[test]
    fn first_trace_is_kept() {
        let mut limiter = RateLimiter::new(100.0);
        assert!(limiter.try_acquire(Instant::now()));
    }

    #[test]
    fn flood_in_the_first_second_is_held_near_the_limit() {
        let mut limiter = RateLimiter::new(100.0);
        let kept = offer(&mut limiter, Instant::now(), WINDOW, 1000);
        assert!((90..=110).contains(&kept), "kept {kept}");
    }

    #[test]
    fn steady_overload_is_held_at_the_limit() {
        let mut limiter = RateLimiter::new(100.0);
        let start = Instant::now();
        let kept = offer(&mut limiter, start, Duration::from_secs(10), 10_000);
        assert!((990..=1010).contains(&kept), "kept {kept}");
    }

    #[test]
    fn load_under_the_limit_is_all_kept() {
        let mut limiter = RateLimiter::new(100.0);
        let start = Instant::now();
        // 50 per second for 5 seconds; the first one consumes the initial token.
        let kept = offer(&mut limiter, start, Duration::from_secs(5), 250);
        assert_eq!(kept, 250);
        assert_eq!(limiter.adaptive_ratio(), 1.0);
    }

    #[test]
    fn burst_after_a_quiet_period() {
        let mut limiter = RateLimiter::new(100.0);
        let start = Instant::now();
        assert!(limiter.try_acquire(start));
        // Ten quiet seconds fill the bucket to its burst of 100; a flood then
        // gets that burst plus the second's refill.
        let flood = start + Duration::from_secs(10);
        let kept = offer(&mut limiter, flood, WINDOW, 1000);
        assert!((190..=201).contains(&kept), "kept {kept}");
        // Back-to-back requests at one instant: exactly the burst.
        let mut limiter = RateLimiter::new(100.0);
        assert!(limiter.try_acquire(start));
        let at = start + Duration::from_secs(10);
        let kept = (0..1000).filter(|_| limiter.try_acquire(at)).count();
        assert_eq!(kept, 100);
    }

    #[test]
    fn burst_is_at_least_one() {
        // Half a trace per second: one every two seconds, never two at once.
        let mut limiter = RateLimiter::new(0.5);
        let start = Instant::now();
        assert!(limiter.try_acquire(start));
        assert!(!limiter.try_acquire(start + Duration::from_secs(1)));
        let later = start + Duration::from_secs(60);
        assert!(limiter.try_acquire(later));
        assert!(!limiter.try_acquire(later));
        let kept = offer(&mut limiter, later, Duration::from_secs(20), 2000);
        assert!((9..=11).contains(&kept), "kept {kept}");
    }

    #[test]
    fn nonsense_rates_admit_no_more_than_one() {
        for rate in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            let mut limiter = RateLimiter::new(rate);
            let kept = offer(&mut limiter, Instant::now(), Duration::from_secs(5), 1000);
            assert_eq!(kept, 1, "rate {rate}");
        }
    }

    #[test]
    fn time_going_backwards_adds_no_tokens() {
        let mut limiter = RateLimiter::new(10.0);
        let start = Instant::now();
        let late = start + Duration::from_secs(5);
        assert!(limiter.try_acquire(start));
        // Bucket full (10) at `late`.
        let kept = (0..20).filter(|_| limiter.try_acquire(late)).count();
        assert_eq!(kept, 10);
        // Stale instants from before `late` must not refill it again.
        let kept = (0..20)
            .filter(|&i| limiter.try_acquire(start + Duration::from_millis(100 * i)))
            .count();
        assert_eq!(kept, 0);
    }

    #[test]
    fn roots_decided_elsewhere_count_as_offered_but_spend_nothing() {
        let mut limiter = RateLimiter::new(100.0);
        let start = Instant::now();
        // 900/s decided by the kernel, 100/s here: 1000/s offered in all.
        for i in 0..3000u32 {
            let at = start + Duration::from_millis(u64::from(i));
            if i % 10 == 0 {
                assert!(limiter.try_acquire(at), "{i}");
            } else {
                limiter.observe(at);
            }
        }
        let ratio = limiter.adaptive_ratio();
        assert!((0.09..=0.11).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn adaptive_ratio_is_one_before_any_measurement() {
        let mut limiter = RateLimiter::new(100.0);
        assert_eq!(limiter.adaptive_ratio(), 1.0);
        // A flood within the first window is not measured yet.
        offer(
            &mut limiter,
            Instant::now(),
            Duration::from_millis(900),
            1000,
        );
        assert_eq!(limiter.adaptive_ratio(), 1.0);
    }

    #[test]
    fn adaptive_ratio_converges_to_the_limit() {
        let mut limiter = RateLimiter::new(100.0);
        let start = Instant::now();
        offer(&mut limiter, start, Duration::from_secs(5), 5000);
        let ratio = limiter.adaptive_ratio();
        assert!((0.09..=0.11).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn adaptive_ratio_follows_a_load_change() {
        let mut limiter = RateLimiter::new(100.0);
        let start = Instant::now();
        // 1000/s for 3 s, then 400/s for 8 s.
        offer(&mut limiter, start, Duration::from_secs(3), 3000);
        let ratio = limiter.adaptive_ratio();
        assert!((0.09..=0.11).contains(&ratio), "ratio {ratio}");
        let later = start + Duration::from_secs(3);
        offer(&mut limiter, later, Duration::from_secs(8), 3200);
        let ratio = limiter.adaptive_ratio();
        assert!((0.24..=0.26).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn adaptive_ratio_recovers_when_traffic_stops() {
        let mut limiter = RateLimiter::new(100.0);
        let start = Instant::now();
        offer(&mut limiter, start, Duration::from_secs(3), 3000);
        assert!(limiter.adaptive_ratio() < 0.2);
        // Periodic ticks with no traffic: the estimate halves every second,
        // so 1000/s falls under the limit within four seconds.
        let quiet = start + Duration::from_secs(3);
        let mut ratios = Vec::new();
        for second in 1..=5 {
            limiter.tick(quiet + Duration::from_secs(second));
            ratios.push(limiter.adaptive_ratio());
        }
        assert!(ratios.windows(2).all(|w| w[0] <= w[1]), "{ratios:?}");
        assert_eq!(ratios.last(), Some(&1.0), "{ratios:?}");
        // One late tick covering the whole quiet period does the same.
        let mut limiter = RateLimiter::new(100.0);
        offer(&mut limiter, start, Duration::from_secs(3), 3000);
        limiter.tick(quiet + Duration::from_secs(5));
        assert_eq!(limiter.adaptive_ratio(), 1.0);
    }
}
