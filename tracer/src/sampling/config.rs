//! Choosing the sampler from command-line flags and the OpenTelemetry
//! environment variables `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
//!
//! Flags win over the environment. Flags are checked strictly (a mistake is
//! an error the user sees at start-up); the environment follows the
//! OpenTelemetry SDK configuration spec: names are case-insensitive, an empty
//! value counts as unset, and an unknown name or invalid argument is logged as
//! a warning and replaced by the default.

use std::fmt;

use log::warn;
use thiserror::Error;

use super::Sampler;

pub const ENV_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const ENV_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// `traceidratio` argument when none is given (the OpenTelemetry default).
pub const DEFAULT_RATIO: f64 = 1.0;
/// `ratelimited` argument when none is given, in traces per second.
pub const DEFAULT_TRACES_PER_SECOND: f64 = 100.0;

/// The sampler names we accept, the OpenTelemetry ones first.
pub const SAMPLER_NAMES: [&str; 8] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "ratelimited",
    "parentbased_ratelimited",
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SamplerError {
    #[error("unknown sampler {name:?}; expected one of {}", SAMPLER_NAMES.join(", "))]
    UnknownSampler { name: String },
    #[error("sampler {sampler} takes a probability between 0 and 1 as its argument, not {arg:?}")]
    InvalidRatio { sampler: &'static str, arg: String },
    #[error(
        "sampler {sampler} takes a positive number of traces per second as its argument, not {arg:?}"
    )]
    InvalidRate { sampler: &'static str, arg: String },
    #[error("sampler {sampler} takes no argument, but {arg:?} was given")]
    UnexpectedArg { sampler: &'static str, arg: String },
}

/// The raw sampler settings, as read by the command line (flags) and from the
/// process environment (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SamplerConfig {
    pub flag_sampler: Option<String>,
    pub flag_arg: Option<String>,
    pub env_sampler: Option<String>,
    pub env_arg: Option<String>,
}

impl SamplerConfig {
    /// See [`from_env_and_flags`].
    pub fn sampler(&self) -> Result<Sampler, SamplerError> {
        from_env_and_flags(
            self.flag_sampler.as_deref(),
            self.flag_arg.as_deref(),
            self.env_sampler.as_deref(),
            self.env_arg.as_deref(),
        )
    }
}

/// Chooses the sampler.
///
/// - The name comes from the flag, else the environment, else
///   `parentbased_always_on` (the OpenTelemetry default).
/// - A flag argument applies to whichever sampler was chosen, and is an
///   error if that sampler takes none or the value is invalid.
/// - The environment argument applies only to a sampler named in the
///   environment (one named by a flag was not chosen with it in mind); when
///   invalid, a warning is logged and the sampler's default used.
pub fn from_env_and_flags(
    flag_sampler: Option<&str>,
    flag_arg: Option<&str>,
    env_sampler: Option<&str>,
    env_arg: Option<&str>,
) -> Result<Sampler, SamplerError> {
    let (flag_sampler, flag_arg) = (non_empty(flag_sampler), non_empty(flag_arg));
    let (env_sampler, env_arg) = (non_empty(env_sampler), non_empty(env_arg));

    let (kind, env_arg) = match (flag_sampler, env_sampler) {
        (Some(name), _) => {
            let kind = Kind::parse(name).ok_or_else(|| SamplerError::UnknownSampler {
                name: name.to_owned(),
            })?;
            (kind, None)
        }
        (None, Some(name)) => match Kind::parse(name) {
            Some(kind) => (kind, env_arg),
            None => {
                warn!(
                    "{ENV_SAMPLER}={name:?} is not a sampler we know (expected one of {}); using {}",
                    SAMPLER_NAMES.join(", "),
                    Kind::DEFAULT
                );
                (Kind::DEFAULT, None)
            }
        },
        (None, None) => (Kind::DEFAULT, None),
    };

    let arg = match (flag_arg, env_arg) {
        (Some(arg), _) => Some(kind.parse_arg(arg)?),
        (None, Some(arg)) => match kind.parse_arg(arg) {
            Ok(value) => Some(value),
            // The spec says to ignore an argument the sampler does not take.
            Err(SamplerError::UnexpectedArg { .. }) => None,
            Err(error) => {
                warn!("{ENV_SAMPLER_ARG}: {error}; using the default");
                None
            }
        },
        (None, None) => None,
    };
    Ok(kind.build(arg))
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio,
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio,
    RateLimited,
    ParentBasedRateLimited,
}

impl Kind {
    const DEFAULT: Kind = Kind::ParentBasedAlwaysOn;
    const ALL: [Kind; 8] = [
        Kind::AlwaysOn,
        Kind::AlwaysOff,
        Kind::TraceIdRatio,
        Kind::ParentBasedAlwaysOn,
        Kind::ParentBasedAlwaysOff,
        Kind::ParentBasedTraceIdRatio,
        Kind::RateLimited,
        Kind::ParentBasedRateLimited,
    ];

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name.trim()))
    }

    fn name(self) -> &'static str {
        // Same order as ALL.
        SAMPLER_NAMES[self as usize]
    }

    /// The argument as a number, checked for this sampler.
    fn parse_arg(self, arg: &str) -> Result<f64, SamplerError> {
        let sampler = self.name();
        let number = arg.trim().parse::<f64>().ok().filter(|n| n.is_finite());
        match self {
            Kind::TraceIdRatio | Kind::ParentBasedTraceIdRatio => number
                .filter(|n| (0.0..=1.0).contains(n))
                .ok_or_else(|| SamplerError::InvalidRatio {
                    sampler,
                    arg: arg.to_owned(),
                }),
            Kind::RateLimited | Kind::ParentBasedRateLimited => number
                .filter(|n| *n > 0.0)
                .ok_or_else(|| SamplerError::InvalidRate {
                    sampler,
                    arg: arg.to_owned(),
                }),
            Kind::AlwaysOn
            | Kind::AlwaysOff
            | Kind::ParentBasedAlwaysOn
            | Kind::ParentBasedAlwaysOff => Err(SamplerError::UnexpectedArg {
                sampler,
                arg: arg.to_owned(),
            }),
        }
    }

    fn build(self, arg: Option<f64>) -> Sampler {
        let ratio = arg.unwrap_or(DEFAULT_RATIO);
        let per_second = arg.unwrap_or(DEFAULT_TRACES_PER_SECOND);
        let parent_based = |root| Sampler::ParentBased {
            root: Box::new(root),
        };
        match self {
            Kind::AlwaysOn => Sampler::AlwaysOn,
            Kind::AlwaysOff => Sampler::AlwaysOff,
            Kind::TraceIdRatio => Sampler::TraceIdRatio(ratio),
            Kind::ParentBasedAlwaysOn => parent_based(Sampler::AlwaysOn),
            Kind::ParentBasedAlwaysOff => parent_based(Sampler::AlwaysOff),
            Kind::ParentBasedTraceIdRatio => parent_based(Sampler::TraceIdRatio(ratio)),
            Kind::RateLimited => Sampler::RateLimited { per_second },
            Kind::ParentBasedRateLimited => parent_based(Sampler::RateLimited { per_second }),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent_based(root: Sampler) -> Sampler {
        Sampler::ParentBased {
            root: Box::new(root),
        }
    }

    fn flags(sampler: Option<&str>, arg: Option<&str>) -> Result<Sampler, SamplerError> {
        from_env_and_flags(sampler, arg, None, None)
    }

    fn env(sampler: Option<&str>, arg: Option<&str>) -> Sampler {
        from_env_and_flags(None, None, sampler, arg).expect("the environment never fails")
    }

    #[test]
    fn default_is_parentbased_always_on() {
        assert_eq!(flags(None, None), Ok(parent_based(Sampler::AlwaysOn)));
        assert_eq!(env(Some(""), Some("")), parent_based(Sampler::AlwaysOn));
        assert_eq!(
            SamplerConfig::default().sampler(),
            Ok(parent_based(Sampler::AlwaysOn))
        );
    }

    #[test]
    fn every_name_without_argument() {
        let expected = [
            Sampler::AlwaysOn,
            Sampler::AlwaysOff,
            Sampler::TraceIdRatio(1.0),
            parent_based(Sampler::AlwaysOn),
            parent_based(Sampler::AlwaysOff),
            parent_based(Sampler::TraceIdRatio(1.0)),
            Sampler::RateLimited { per_second: 100.0 },
            parent_based(Sampler::RateLimited { per_second: 100.0 }),
        ];
        for (name, expected) in SAMPLER_NAMES.into_iter().zip(expected) {
            assert_eq!(flags(Some(name), None).as_ref(), Ok(&expected), "{name}");
            assert_eq!(env(Some(name), None), expected, "{name}");
        }
    }

    #[test]
    fn names_are_case_insensitive_and_trimmed() {
        assert_eq!(flags(Some("AlwaysOff"), None).ok(), None);
        assert_eq!(flags(Some("ALWAYS_OFF"), None), Ok(Sampler::AlwaysOff));
        assert_eq!(
            env(Some(" TraceIdRatio "), Some(" 0.5 ")),
            Sampler::TraceIdRatio(0.5)
        );
    }

    #[test]
    fn ratio_arguments() {
        for (arg, ratio) in [
            ("0", 0.0),
            ("1", 1.0),
            ("0.25", 0.25),
            ("1e-3", 0.001),
            (".5", 0.5),
        ] {
            assert_eq!(
                flags(Some("traceidratio"), Some(arg)),
                Ok(Sampler::TraceIdRatio(ratio)),
                "{arg}"
            );
            assert_eq!(
                flags(Some("parentbased_traceidratio"), Some(arg)),
                Ok(parent_based(Sampler::TraceIdRatio(ratio))),
                "{arg}"
            );
            assert_eq!(
                env(Some("traceidratio"), Some(arg)),
                Sampler::TraceIdRatio(ratio)
            );
        }
    }

    #[test]
    fn rate_arguments() {
        for (arg, per_second) in [("100", 100.0), ("1", 1.0), ("0.5", 0.5), ("2500", 2500.0)] {
            assert_eq!(
                flags(Some("ratelimited"), Some(arg)),
                Ok(Sampler::RateLimited { per_second }),
                "{arg}"
            );
            assert_eq!(
                env(Some("parentbased_ratelimited"), Some(arg)),
                parent_based(Sampler::RateLimited { per_second })
            );
        }
    }

    #[test]
    fn bad_flag_arguments_are_errors() {
        for arg in ["1.5", "-0.1", "abc", "NaN", "inf", "50%", "0,5"] {
            for sampler in ["traceidratio", "parentbased_traceidratio"] {
                let error = flags(Some(sampler), Some(arg)).expect_err(arg);
                assert!(
                    matches!(&error, SamplerError::InvalidRatio { arg: a, .. } if a == arg),
                    "{error:?}"
                );
            }
        }
        for arg in ["0", "-5", "fast", "inf", "NaN"] {
            for sampler in ["ratelimited", "parentbased_ratelimited"] {
                let error = flags(Some(sampler), Some(arg)).expect_err(arg);
                assert!(
                    matches!(&error, SamplerError::InvalidRate { arg: a, .. } if a == arg),
                    "{error:?}"
                );
            }
        }
        for sampler in [
            "always_on",
            "always_off",
            "parentbased_always_on",
            "parentbased_always_off",
        ] {
            assert_eq!(
                flags(Some(sampler), Some("0.5")),
                Err(SamplerError::UnexpectedArg {
                    sampler: Kind::parse(sampler).map(Kind::name).unwrap_or_default(),
                    arg: "0.5".to_owned()
                })
            );
        }
        // An argument with no sampler named anywhere goes to the default,
        // which takes none.
        assert!(matches!(
            flags(None, Some("0.5")),
            Err(SamplerError::UnexpectedArg { .. })
        ));
    }

    #[test]
    fn unknown_flag_name_is_an_error() {
        for name in [
            "jaeger_remote",
            "parentbased_jaeger_remote",
            "xray",
            "sometimes",
        ] {
            assert_eq!(
                flags(Some(name), None),
                Err(SamplerError::UnknownSampler {
                    name: name.to_owned()
                })
            );
        }
    }

    #[test]
    fn bad_env_values_fall_back_to_defaults() {
        assert_eq!(
            env(Some("traceidratio"), Some("1.5")),
            Sampler::TraceIdRatio(1.0)
        );
        assert_eq!(
            env(Some("traceidratio"), Some("half")),
            Sampler::TraceIdRatio(1.0)
        );
        assert_eq!(
            env(Some("parentbased_traceidratio"), Some("-1")),
            parent_based(Sampler::TraceIdRatio(1.0))
        );
        assert_eq!(
            env(Some("ratelimited"), Some("0")),
            Sampler::RateLimited { per_second: 100.0 }
        );
        // An unknown name: the default sampler, and its argument is moot.
        assert_eq!(
            env(Some("xray"), Some("0.5")),
            parent_based(Sampler::AlwaysOn)
        );
        // An argument the sampler does not take is ignored.
        assert_eq!(env(Some("always_off"), Some("0.5")), Sampler::AlwaysOff);
        assert_eq!(env(None, Some("0.5")), parent_based(Sampler::AlwaysOn));
    }

    #[test]
    fn flags_win_over_env() {
        assert_eq!(
            from_env_and_flags(Some("always_off"), None, Some("always_on"), None),
            Ok(Sampler::AlwaysOff)
        );
        // The environment argument belonged to the environment's sampler.
        assert_eq!(
            from_env_and_flags(Some("ratelimited"), None, Some("traceidratio"), Some("0.1")),
            Ok(Sampler::RateLimited { per_second: 100.0 })
        );
        assert_eq!(
            from_env_and_flags(
                Some("traceidratio"),
                Some("0.2"),
                Some("traceidratio"),
                Some("0.1")
            ),
            Ok(Sampler::TraceIdRatio(0.2))
        );
        // A flag argument alone refines the environment's sampler.
        assert_eq!(
            from_env_and_flags(None, Some("0.2"), Some("traceidratio"), Some("0.1")),
            Ok(Sampler::TraceIdRatio(0.2))
        );
        assert_eq!(
            from_env_and_flags(None, Some("50"), Some("parentbased_ratelimited"), None),
            Ok(parent_based(Sampler::RateLimited { per_second: 50.0 }))
        );
        // ... and is checked strictly even then.
        assert!(matches!(
            from_env_and_flags(None, Some("2"), Some("traceidratio"), None),
            Err(SamplerError::InvalidRatio { .. })
        ));
        // A bad environment does not matter when flags decide.
        assert_eq!(
            from_env_and_flags(Some("always_on"), None, Some("bogus"), Some("bogus")),
            Ok(Sampler::AlwaysOn)
        );
        // Empty flags count as unset.
        assert_eq!(
            from_env_and_flags(Some(""), Some(" "), Some("always_off"), None),
            Ok(Sampler::AlwaysOff)
        );
    }

    #[test]
    fn config_struct_delegates() {
        let config = SamplerConfig {
            flag_sampler: None,
            flag_arg: None,
            env_sampler: Some("parentbased_traceidratio".to_owned()),
            env_arg: Some("0.25".to_owned()),
        };
        assert_eq!(
            config.sampler(),
            Ok(parent_based(Sampler::TraceIdRatio(0.25)))
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            flags(Some("traceidratio"), Some("1.5"))
                .expect_err("out of range")
                .to_string(),
            "sampler traceidratio takes a probability between 0 and 1 as its argument, not \"1.5\""
        );
        let unknown = flags(Some("xray"), None).expect_err("unknown").to_string();
        assert!(unknown.contains("\"xray\"") && unknown.contains("parentbased_ratelimited"));
    }
}
