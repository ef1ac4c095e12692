//! Head sampling: whether a new span's trace is recorded, decided once where
//! the trace enters this host and then carried in the sampled flag of the
//! context we propagate (an unsampled request still propagates its context,
//! so downstream services agree).
//!
//! Strategies (see [`Sampler`]): always on/off, parent-based, trace-id ratio
//! (the same decision for the same trace id on every host, as the
//! OpenTelemetry SDKs make it), and a rate limit in traces per second that
//! also estimates the ratio the kernel side should apply under load.

mod config;
mod rate_limit;
mod ratio;

use std::{fmt, time::Instant};

pub use config::{
    DEFAULT_RATIO, DEFAULT_TRACES_PER_SECOND, ENV_SAMPLER, ENV_SAMPLER_ARG, SAMPLER_NAMES,
    SamplerConfig, SamplerError, from_env_and_flags,
};
pub use ratio::{ratio_threshold, trace_id_below};

use rate_limit::RateLimiter;

#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    /// Keeps this fraction of trace ids, see [`ratio_threshold`]. Values
    /// outside [0, 1] are clamped (NaN counts as 0).
    TraceIdRatio(f64),
    /// Follows the parent's sampled flag when there is a parent, remote or
    /// local (the OpenTelemetry default delegates); asks `root` otherwise.
    ParentBased {
        root: Box<Sampler>,
    },
    /// At most `per_second` traces per second on average, bursts of up to
    /// `max(1, per_second)`. Counts every decision it is asked for, so it
    /// limits root traces when used as the root of `ParentBased`.
    RateLimited {
        per_second: f64,
    },
}

impl fmt::Display for Sampler {
    /// The configuration name, with the argument: `parentbased_traceidratio(0.25)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sampler::AlwaysOn => f.write_str("always_on"),
            Sampler::AlwaysOff => f.write_str("always_off"),
            Sampler::TraceIdRatio(ratio) => write!(f, "traceidratio({ratio})"),
            Sampler::ParentBased { root } => write!(f, "parentbased_{root}"),
            Sampler::RateLimited { per_second } => write!(f, "ratelimited({per_second})"),
        }
    }
}

/// What is known of the parent of the span being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentInfo {
    pub sampled: bool,
    /// From an incoming header (or another process), rather than a span of
    /// this process. The default parent-based rules treat both alike; kept so
    /// that callers state it and a finer policy can be added without changing
    /// them.
    pub remote: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub sampled: bool,
}

/// A sampler with its mutable state (the rate limiter's bucket and load
/// estimate). One per agent: rate limits are per host.
#[derive(Debug, Clone)]
pub struct SamplingState {
    sampler: Sampler,
    /// Present exactly when `sampler` contains `RateLimited`.
    limiter: Option<RateLimiter>,
}

impl SamplingState {
    pub fn new(sampler: Sampler) -> Self {
        let limiter = rate_limit_of(&sampler).map(RateLimiter::new);
        Self { sampler, limiter }
    }

    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    /// Decides a span of trace `trace_id` with the given parent (`None` for a
    /// root span) at time `now` (used only by rate limiting).
    pub fn decide(
        &mut self,
        parent: Option<ParentInfo>,
        trace_id: &[u8; 16],
        now: Instant,
    ) -> Decision {
        Decision {
            sampled: decide(&self.sampler, &mut self.limiter, parent, trace_id, now),
        }
    }

    /// [`Self::decide`], as a bool.
    pub fn should_sample(
        &mut self,
        parent: Option<ParentInfo>,
        trace_id: &[u8; 16],
        now: Instant,
    ) -> bool {
        self.decide(parent, trace_id, now).sampled
    }

    /// The fraction of root traces to keep, for whoever decides without
    /// asking this state (the kernel, when it starts a trace for an outgoing
    /// request): hand it `ratio_threshold(adaptive_ratio())`, refreshed
    /// periodically after a [`Self::tick`].
    ///
    /// For rate limiting, an estimate of the ratio that would keep root traces
    /// at the limit: `min(1, per_second / offered_rate)`, where offered_rate
    /// is an exponentially weighted moving average (half-life about one
    /// second) of the root traces per second offered to this state (decided
    /// here, or reported through [`Self::observe_root`]), measured over
    /// one-second windows; 1 until a window has been measured.
    /// For the other samplers, their fixed root ratio (1 for always_on, 0 for
    /// always_off, the ratio for traceidratio; parent-based: its root's).
    pub fn adaptive_ratio(&self) -> f64 {
        root_ratio(&self.sampler, self.limiter.as_ref())
    }

    /// Counts a root trace decided without asking this state (by the kernel,
    /// with `ratio_threshold(adaptive_ratio())`), so the load estimate sees
    /// every root trace. Spends no rate-limit token; no-op for samplers
    /// without rate limiting.
    pub fn observe_root(&mut self, now: Instant) {
        if let Some(limiter) = &mut self.limiter {
            limiter.observe(now);
        }
    }

    /// Lets the rate estimate see time pass without decisions, so that it
    /// decays when root traces stop arriving. Harmless for other samplers.
    pub fn tick(&mut self, now: Instant) {
        if let Some(limiter) = &mut self.limiter {
            limiter.tick(now);
        }
    }
}

fn decide(
    sampler: &Sampler,
    limiter: &mut Option<RateLimiter>,
    parent: Option<ParentInfo>,
    trace_id: &[u8; 16],
    now: Instant,
) -> bool {
    match sampler {
        Sampler::AlwaysOn => true,
        Sampler::AlwaysOff => false,
        Sampler::TraceIdRatio(ratio) => trace_id_below(trace_id, ratio_threshold(*ratio)),
        Sampler::ParentBased { root } => match parent {
            Some(parent) => parent.sampled,
            None => decide(root, limiter, None, trace_id, now),
        },
        Sampler::RateLimited { .. } => limiter
            .as_mut()
            .is_some_and(|limiter| limiter.try_acquire(now)),
    }
}

fn root_ratio(sampler: &Sampler, limiter: Option<&RateLimiter>) -> f64 {
    match sampler {
        Sampler::AlwaysOn => 1.0,
        Sampler::AlwaysOff => 0.0,
        Sampler::TraceIdRatio(ratio) if ratio.is_nan() => 0.0,
        Sampler::TraceIdRatio(ratio) => ratio.clamp(0.0, 1.0),
        Sampler::ParentBased { root } => root_ratio(root, limiter),
        Sampler::RateLimited { .. } => limiter.map_or(1.0, RateLimiter::adaptive_ratio),
    }
}

/// The rate of the (one) `RateLimited` in a sampler tree.
fn rate_limit_of(sampler: &Sampler) -> Option<f64> {
    match sampler {
        Sampler::RateLimited { per_second } => Some(*per_second),
        Sampler::ParentBased { root } => rate_limit_of(root),
        Sampler::AlwaysOn | Sampler::AlwaysOff | Sampler::TraceIdRatio(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ROOT: Option<ParentInfo> = None;

    fn parent_based(root: Sampler) -> Sampler {
        Sampler::ParentBased {
            root: Box::new(root),
        }
    }

    fn parents() -> [ParentInfo; 4] {
        [
            ParentInfo {
                sampled: true,
                remote: true,
            },
            ParentInfo {
                sampled: true,
                remote: false,
            },
            ParentInfo {
                sampled: false,
                remote: true,
            },
            ParentInfo {
                sampled: false,
                remote: false,
            },
        ]
    }

    /// Trace ids sampled / not sampled at ratio 0.5 (top bit of the low half).
    const LOW_ID: [u8; 16] = [0xff, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 1];
    const HIGH_ID: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn always_on_and_off_ignore_the_parent() {
        let now = Instant::now();
        let mut on = SamplingState::new(Sampler::AlwaysOn);
        let mut off = SamplingState::new(Sampler::AlwaysOff);
        for parent in parents().into_iter().map(Some).chain([ROOT]) {
            assert!(on.should_sample(parent, &HIGH_ID, now));
            assert!(!off.should_sample(parent, &LOW_ID, now));
        }
    }

    #[test]
    fn parent_based_follows_the_parent() {
        let now = Instant::now();
        for root in [
            Sampler::AlwaysOn,
            Sampler::AlwaysOff,
            Sampler::TraceIdRatio(0.5),
            Sampler::RateLimited { per_second: 0.0 },
        ] {
            let mut state = SamplingState::new(parent_based(root.clone()));
            for parent in parents() {
                for id in [LOW_ID, HIGH_ID] {
                    assert_eq!(
                        state.decide(Some(parent), &id, now),
                        Decision {
                            sampled: parent.sampled
                        },
                        "{root} {parent:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn parent_based_asks_the_root_without_a_parent() {
        let now = Instant::now();
        let mut on = SamplingState::new(parent_based(Sampler::AlwaysOn));
        let mut off = SamplingState::new(parent_based(Sampler::AlwaysOff));
        let mut half = SamplingState::new(parent_based(Sampler::TraceIdRatio(0.5)));
        assert!(on.should_sample(ROOT, &HIGH_ID, now));
        assert!(!off.should_sample(ROOT, &LOW_ID, now));
        assert!(half.should_sample(ROOT, &LOW_ID, now));
        assert!(!half.should_sample(ROOT, &HIGH_ID, now));
    }

    #[test]
    fn trace_id_ratio_is_by_trace_id_alone() {
        let now = Instant::now();
        let mut half = SamplingState::new(Sampler::TraceIdRatio(0.5));
        for parent in parents().into_iter().map(Some).chain([ROOT]) {
            assert!(half.should_sample(parent, &LOW_ID, now));
            assert!(!half.should_sample(parent, &HIGH_ID, now));
        }
        // Same answer every time, on every "host".
        let mut other_host = SamplingState::new(Sampler::TraceIdRatio(0.5));
        for _ in 0..10 {
            assert!(other_host.should_sample(ROOT, &LOW_ID, now));
        }
        let mut none = SamplingState::new(Sampler::TraceIdRatio(0.0));
        let mut all = SamplingState::new(Sampler::TraceIdRatio(1.0));
        for id in [LOW_ID, HIGH_ID, [0xff; 16], [1; 16]] {
            assert!(!none.should_sample(ROOT, &id, now));
            assert!(all.should_sample(ROOT, &id, now));
        }
    }

    #[test]
    fn parent_based_rate_limit_spends_tokens_on_roots_only() {
        let start = Instant::now();
        let mut state = SamplingState::new(parent_based(Sampler::RateLimited { per_second: 10.0 }));
        // Children of sampled parents are all kept and cost nothing.
        for i in 0..1000 {
            let parent = ParentInfo {
                sampled: true,
                remote: i % 2 == 0,
            };
            assert!(state.should_sample(Some(parent), &LOW_ID, start));
        }
        // So the one initial token is still there for a root.
        assert!(state.should_sample(ROOT, &LOW_ID, start));
        assert!(!state.should_sample(ROOT, &LOW_ID, start));
        // 100 roots over one second at 10 per second.
        let kept = (0..100)
            .filter(|&i| state.should_sample(ROOT, &LOW_ID, start + Duration::from_millis(10 * i)))
            .count();
        assert!((9..=11).contains(&kept), "kept {kept}");
    }

    #[test]
    fn rate_limited_flood_through_the_state() {
        let start = Instant::now();
        let mut state = SamplingState::new(Sampler::RateLimited { per_second: 100.0 });
        let kept = (0..1000u32)
            .filter(|&i| state.should_sample(ROOT, &HIGH_ID, start + WINDOW_MS * i))
            .count();
        assert!((90..=110).contains(&kept), "kept {kept}");
        for i in 1000..5000u32 {
            state.should_sample(ROOT, &HIGH_ID, start + WINDOW_MS * i);
        }
        let ratio = state.adaptive_ratio();
        assert!((0.09..=0.11).contains(&ratio), "ratio {ratio}");
        // The kernel side gets this threshold.
        let threshold = ratio_threshold(ratio);
        assert!(threshold > ratio_threshold(0.09) && threshold < ratio_threshold(0.11));
        // Traffic stops; periodic ticks bring the ratio back to 1.
        for second in 6..=12 {
            state.tick(start + Duration::from_secs(second));
        }
        assert_eq!(state.adaptive_ratio(), 1.0);
    }

    const WINDOW_MS: Duration = Duration::from_millis(1);

    #[test]
    fn roots_observed_from_the_kernel_lower_the_ratio() {
        let start = Instant::now();
        let mut state = SamplingState::new(parent_based(Sampler::RateLimited { per_second: 50.0 }));
        for i in 0..3000u32 {
            state.observe_root(start + WINDOW_MS * i);
        }
        state.tick(start + Duration::from_secs(3));
        let ratio = state.adaptive_ratio();
        assert!((0.045..=0.055).contains(&ratio), "ratio {ratio}");
        // Observing spent no token: the first root decided here is kept.
        assert!(state.should_sample(ROOT, &HIGH_ID, start + Duration::from_secs(3)));
        // Without rate limiting there is nothing to observe.
        let mut fixed = SamplingState::new(Sampler::TraceIdRatio(0.3));
        for i in 0..3000u32 {
            fixed.observe_root(start + WINDOW_MS * i);
        }
        assert_eq!(fixed.adaptive_ratio(), 0.3);
    }

    #[test]
    fn adaptive_ratio_of_fixed_samplers() {
        let cases = [
            (Sampler::AlwaysOn, 1.0),
            (Sampler::AlwaysOff, 0.0),
            (Sampler::TraceIdRatio(0.25), 0.25),
            (Sampler::TraceIdRatio(3.0), 1.0),
            (Sampler::TraceIdRatio(-1.0), 0.0),
            (Sampler::TraceIdRatio(f64::NAN), 0.0),
            (parent_based(Sampler::AlwaysOn), 1.0),
            (parent_based(Sampler::AlwaysOff), 0.0),
            (parent_based(Sampler::TraceIdRatio(0.1)), 0.1),
            (Sampler::RateLimited { per_second: 5.0 }, 1.0),
            (parent_based(Sampler::RateLimited { per_second: 5.0 }), 1.0),
        ];
        for (sampler, ratio) in cases {
            let mut state = SamplingState::new(sampler.clone());
            state.tick(Instant::now());
            assert_eq!(state.adaptive_ratio(), ratio, "{sampler}");
            // By name: NaN is not equal to itself.
            assert_eq!(state.sampler().to_string(), sampler.to_string());
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(
            parent_based(Sampler::AlwaysOn).to_string(),
            "parentbased_always_on"
        );
        assert_eq!(
            parent_based(Sampler::TraceIdRatio(0.25)).to_string(),
            "parentbased_traceidratio(0.25)"
        );
        assert_eq!(
            Sampler::RateLimited { per_second: 100.0 }.to_string(),
            "ratelimited(100)"
        );
        assert_eq!(Sampler::AlwaysOff.to_string(), "always_off");
    }

    #[test]
    fn configured_sampler_end_to_end() {
        let sampler = from_env_and_flags(None, None, Some("parentbased_traceidratio"), Some("0.5"))
            .expect("valid");
        let mut state = SamplingState::new(sampler);
        let now = Instant::now();
        assert!(state.should_sample(ROOT, &LOW_ID, now));
        assert!(!state.should_sample(ROOT, &HIGH_ID, now));
        let unsampled_parent = ParentInfo {
            sampled: false,
            remote: true,
        };
        assert!(!state.should_sample(Some(unsampled_parent), &LOW_ID, now));
        assert_eq!(state.adaptive_ratio(), 0.5);
    }
}
