//! A fixed-bucket histogram: what every duration and size instrument
//! aggregates into. Recording is a bucket search and four additions, with no
//! allocation; the buckets are those of the OpenTelemetry explicit-bucket
//! aggregation (upper bounds inclusive, one overflow bucket).

/// The HTTP and RPC semantic conventions' advisory buckets for durations,
/// in seconds.
pub const DURATION_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Body sizes in bytes. The conventions give no advice here, and the SDK
/// default (0 … 10,000) would put every body over 10 kB in one bucket:
/// powers of four from 64 B to 16 MiB instead.
pub const SIZE_BOUNDS: &[f64] = &[
    0.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bucket: `counts[i]` holds values in
    /// (`bounds[i-1]`, `bounds[i]`], the last one values above every bound.
    counts: Box<[u64]>,
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1].into_boxed_slice(),
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    pub fn record(&mut self, value: f64) {
        let value = if value.is_finite() { value } else { 0.0 };
        let bucket = self.bounds.partition_point(|b| *b < value);
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Per-bucket counts (not cumulative), one more than [`Self::bounds`].
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// (min, max) of the values recorded; None before the first.
    pub fn min_max(&self) -> Option<(f64, f64)> {
        (self.count > 0 && self.min <= self.max).then_some((self.min, self.max))
    }

    /// What was recorded since `earlier`, a copy of this histogram taken
    /// before (delta temporality). Min and max cannot be told apart from a
    /// cumulative pair, so the delta has none.
    pub fn since(&self, earlier: &Self) -> Self {
        let counts = self
            .counts
            .iter()
            .zip(earlier.counts.iter())
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        Self {
            bounds: self.bounds,
            counts,
            sum: self.sum - earlier.sum,
            count: self.count.saturating_sub(earlier.count),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// `(upper bound, count)` for each bounded bucket, as the Prometheus
    /// encoder takes them (it adds `+Inf` from the total).
    pub fn prometheus_buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds_are_inclusive() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 3.0, f64::NAN] {
            h.record(v);
        }
        // NaN counts as 0: a broken clock must not poison the sum.
        assert_eq!(h.counts(), &[3, 2, 1]);
        assert_eq!(h.count(), 6);
        assert!((h.sum() - 8.0).abs() < 1e-9);
        assert_eq!(h.min_max(), Some((0.0, 3.0)));
        assert_eq!(h.prometheus_buckets(), vec![(1.0, 3), (2.0, 2)]);
    }

    #[test]
    fn delta_is_the_difference() {
        let mut h = Histogram::new(DURATION_BOUNDS);
        h.record(0.001);
        let before = h.clone();
        h.record(0.2);
        h.record(20.0);
        let d = h.since(&before);
        assert_eq!(d.count(), 2);
        assert_eq!(d.counts().iter().sum::<u64>(), 2);
        assert_eq!(d.counts()[DURATION_BOUNDS.len()], 1);
        assert!((d.sum() - 20.2).abs() < 1e-9);
        assert_eq!(d.min_max(), None);
        assert_eq!(Histogram::new(SIZE_BOUNDS).min_max(), None);
    }
}
