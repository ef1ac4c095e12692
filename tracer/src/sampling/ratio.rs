//! Trace-id ratio sampling, the same way the OpenTelemetry SDKs for Go, Rust
//! and (up to rounding) Python do it: the low 64 bits of the trace id,
//! big-endian, shifted right by one, compared with `ratio * 2^63`. Every host
//! given the same trace id and ratio then makes the same decision, with no
//! coordination, and so does an SDK-instrumented process in the same trace.
//!
//! Split into a threshold and a comparison so that the kernel side, which
//! starts traces itself, can be handed the threshold as a plain integer and
//! decide exactly as userspace does.
//!
//! (The Java SDK compares `abs(low 64 bits as i64)` instead, which disagrees
//! for about half of all trace ids; we follow Go, Rust and Python.)

/// The threshold for [`trace_id_below`]: `ratio * 2^63`, with ratio 1 (or
/// more) sampling everything and ratio 0 (or less, or NaN) nothing.
pub fn ratio_threshold(ratio: f64) -> u64 {
    const TWO_POW_63: f64 = (1u64 << 63) as f64;
    if ratio.is_nan() || ratio <= 0.0 {
        0
    } else if ratio >= 1.0 {
        // (x >> 1) < 2^63 holds for every x.
        1 << 63
    } else {
        // Truncation toward zero, as the SDKs do; 0 < ratio < 1 keeps it in range.
        (ratio * TWO_POW_63) as u64
    }
}

/// Whether a trace id is sampled under a threshold from [`ratio_threshold`].
pub fn trace_id_below(trace_id: &[u8; 16], threshold: u64) -> bool {
    let mut low = [0; 8];
    low.copy_from_slice(&trace_id[8..]);
    (u64::from_be_bytes(low) >> 1) < threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanKind, TraceId};
    use opentelemetry_sdk::trace::{Sampler as SdkSampler, SamplingDecision, ShouldSample};
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    fn id_with_low(low: u64) -> [u8; 16] {
        let mut id = [0x11; 16];
        id[8..].copy_from_slice(&low.to_be_bytes());
        id
    }

    fn sdk_samples(ratio: f64, trace_id: [u8; 16]) -> bool {
        let result = SdkSampler::TraceIdRatioBased(ratio).should_sample(
            None,
            TraceId::from_bytes(trace_id),
            "span",
            &SpanKind::Server,
            &[],
            &[],
        );
        result.decision == SamplingDecision::RecordAndSample
    }

    #[test]
    fn thresholds() {
        assert_eq!(ratio_threshold(0.0), 0);
        assert_eq!(ratio_threshold(-0.5), 0);
        assert_eq!(ratio_threshold(f64::NAN), 0);
        assert_eq!(ratio_threshold(1.0), 1 << 63);
        assert_eq!(ratio_threshold(7.0), 1 << 63);
        assert_eq!(ratio_threshold(f64::INFINITY), 1 << 63);
        assert_eq!(ratio_threshold(0.5), 1 << 62);
        assert_eq!(ratio_threshold(0.25), 1 << 61);
        assert_eq!(ratio_threshold(0.7), 6_456_360_425_798_342_656);
    }

    #[test]
    fn known_outcomes_at_one_half() {
        // At 0.5 the threshold is 2^62: sampled exactly when the top bit of
        // the low half is clear.
        let threshold = ratio_threshold(0.5);
        for (low, sampled) in [
            (0, true),
            (1, true),
            (0x7fff_ffff_ffff_ffff, true),
            (0x8000_0000_0000_0000, false),
            (0x8000_0000_0000_0001, false),
            (u64::MAX, false),
        ] {
            assert_eq!(
                trace_id_below(&id_with_low(low), threshold),
                sampled,
                "{low:#x}"
            );
        }
        // The high half of the trace id plays no part.
        let mut id = id_with_low(5);
        id[..8].copy_from_slice(&[0xff; 8]);
        assert!(trace_id_below(&id, threshold));
    }

    #[test]
    fn w3c_example_trace_id() {
        // 4bf92f3577b34da6a3ce929d0e0e4736: low half a3ce929d0e0e4736, and
        // (low >> 1) / 2^63 = 0.6399, so it is sampled from ratio 0.64 up.
        let id = [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36,
        ];
        assert!(!trace_id_below(&id, ratio_threshold(0.5)));
        assert!(!trace_id_below(&id, ratio_threshold(0.63)));
        assert!(trace_id_below(&id, ratio_threshold(0.64)));
        assert!(trace_id_below(&id, ratio_threshold(0.7)));
    }

    #[test]
    fn ratio_edges() {
        for low in [0, 1, 1 << 62, 1 << 63, u64::MAX] {
            let id = id_with_low(low);
            assert!(trace_id_below(&id, ratio_threshold(1.0)), "{low:#x}");
            assert!(!trace_id_below(&id, ratio_threshold(0.0)), "{low:#x}");
        }
    }

    #[test]
    fn agrees_with_the_opentelemetry_sdk() {
        let mut rng = SmallRng::seed_from_u64(11);
        for ratio in [0.0, 0.001, 0.1, 0.25, 0.5, 0.64, 0.9, 0.999_999, 1.0] {
            let threshold = ratio_threshold(ratio);
            for _ in 0..2000 {
                let id: [u8; 16] = rng.random();
                assert_eq!(
                    trace_id_below(&id, threshold),
                    sdk_samples(ratio, id),
                    "ratio {ratio}, id {id:02x?}"
                );
            }
            for low in [
                0,
                1,
                threshold.wrapping_sub(1) << 1,
                threshold << 1,
                u64::MAX,
            ] {
                let id = id_with_low(low);
                assert_eq!(
                    trace_id_below(&id, threshold),
                    sdk_samples(ratio, id),
                    "ratio {ratio}, low {low:#x}"
                );
            }
        }
    }

    #[test]
    fn sampled_fraction_matches_the_ratio() {
        let mut rng = SmallRng::seed_from_u64(42);
        let threshold = ratio_threshold(0.25);
        let total = 20_000;
        let sampled = (0..total)
            .filter(|_| trace_id_below(&rng.random(), threshold))
            .count();
        let fraction = sampled as f64 / f64::from(total);
        assert!((0.23..=0.27).contains(&fraction), "fraction {fraction}");
    }
}
