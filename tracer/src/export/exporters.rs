//! Which exporters run and where they send: OTEL_TRACES_EXPORTER and the
//! export flags of the command line, resolved into an [`ExportConfig`].
use super::{
    config::{ExportConfig, OtlpConfig, OtlpEnv, Protocol},
    zipkin::{ZipkinConfig, ZipkinEnv},
};

pub const ENV_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";

/// The export flags of the command line.
#[derive(Clone, Debug, Default)]
pub struct ExportFlags {
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<Protocol>,
    pub no_otlp: bool,
    pub stdout: bool,
    pub zipkin_endpoint: Option<String>,
}

/// The variables export reads, kept apart from the process environment so
/// precedence is testable.
#[derive(Clone, Debug, Default)]
pub struct ExportEnv {
    pub traces_exporter: Option<String>,
    pub otlp: OtlpEnv,
    pub zipkin: ZipkinEnv,
}

impl ExportEnv {
    pub fn from_process_env() -> Self {
        Self {
            traces_exporter: std::env::var(ENV_TRACES_EXPORTER).ok(),
            otlp: OtlpEnv::from_process_env(),
            zipkin: ZipkinEnv::from_process_env(),
        }
    }
}

/// The exporters OTEL_TRACES_EXPORTER names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    pub otlp: bool,
    pub zipkin: bool,
    /// `console`: the `--stdout` JSON lines.
    pub console: bool,
}

/// Unlike an odd OTLP protocol value, which is skipped with a warning, a
/// wrong exporter name stops start-up: running without the exporter the
/// operator asked for would lose every span without a sound.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error(
        "{ENV_TRACES_EXPORTER}: unknown exporter {0:?} (expected a comma-separated list of \
         otlp, zipkin and console, or none)"
    )]
    Unknown(String),
    #[error("{ENV_TRACES_EXPORTER}: \"none\" cannot be combined with other exporters ({0:?})")]
    NoneWithOthers(String),
}

impl Selected {
    /// OTLP alone when unset or empty, as the specification says. Names are
    /// case-insensitive and may carry blanks; empty list items are ignored.
    pub fn parse(value: Option<&str>) -> Result<Self, SelectError> {
        let names: Vec<&str> = value
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let mut selected = Self {
            otlp: names.is_empty(),
            zipkin: false,
            console: false,
        };
        let mut none = false;
        for name in &names {
            match name.to_ascii_lowercase().as_str() {
                "otlp" => selected.otlp = true,
                "zipkin" => selected.zipkin = true,
                "console" => selected.console = true,
                "none" => none = true,
                _ => return Err(SelectError::Unknown((*name).to_owned())),
            }
        }
        if none && names.len() > 1 {
            return Err(SelectError::NoneWithOthers(
                value.unwrap_or_default().to_owned(),
            ));
        }
        Ok(selected)
    }
}

/// Flags win over the environment: an endpoint flag turns its exporter on
/// whatever OTEL_TRACES_EXPORTER says, and `--no-otlp` turns OTLP off
/// whatever else does.
pub fn resolve(flags: &ExportFlags, env: &ExportEnv) -> Result<ExportConfig, SelectError> {
    let selected = Selected::parse(env.traces_exporter.as_deref())?;
    let otlp = !flags.no_otlp && (selected.otlp || flags.otlp_endpoint.is_some());
    let zipkin = selected.zipkin || flags.zipkin_endpoint.is_some();
    Ok(ExportConfig {
        otlp: otlp.then(|| {
            OtlpConfig::resolve(flags.otlp_endpoint.clone(), flags.otlp_protocol, &env.otlp)
        }),
        zipkin: zipkin
            .then(|| ZipkinConfig::resolve(flags.zipkin_endpoint.as_deref(), &env.zipkin)),
        stdout: flags.stdout || selected.console,
        ..ExportConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{DEFAULT_GRPC_ENDPOINT, zipkin::config::DEFAULT_ENDPOINT};

    fn selected(value: &str) -> Result<(bool, bool, bool), SelectError> {
        Selected::parse(Some(value)).map(|s| (s.otlp, s.zipkin, s.console))
    }

    fn env(traces_exporter: Option<&str>) -> ExportEnv {
        ExportEnv {
            traces_exporter: traces_exporter.map(Into::into),
            ..ExportEnv::default()
        }
    }

    /// (OTLP endpoint, Zipkin endpoint, stdout) of the resolved config.
    fn outcome(
        flags: &ExportFlags,
        env: &ExportEnv,
    ) -> Result<(Option<String>, Option<String>, bool), SelectError> {
        resolve(flags, env).map(|c| {
            (
                c.otlp.and_then(|o| o.endpoint),
                c.zipkin.map(|z| z.endpoint),
                c.stdout,
            )
        })
    }

    #[test]
    fn lists_of_exporters() {
        assert_eq!(Selected::parse(None), Selected::parse(Some("otlp")));
        assert_eq!(selected(""), Ok((true, false, false)));
        assert_eq!(selected("  "), Ok((true, false, false)));
        assert_eq!(selected("otlp"), Ok((true, false, false)));
        assert_eq!(selected("zipkin"), Ok((false, true, false)));
        assert_eq!(selected("otlp,zipkin"), Ok((true, true, false)));
        assert_eq!(selected(" Zipkin , OTLP ,"), Ok((true, true, false)));
        assert_eq!(selected("zipkin,zipkin"), Ok((false, true, false)));
        assert_eq!(selected("console"), Ok((false, false, true)));
        assert_eq!(selected("none"), Ok((false, false, false)));
        assert_eq!(selected("NONE"), Ok((false, false, false)));
    }

    #[test]
    fn bad_values_name_the_culprit() {
        assert_eq!(
            selected("otlp,jaeger"),
            Err(SelectError::Unknown("jaeger".into()))
        );
        assert_eq!(
            selected("otlp/http"),
            Err(SelectError::Unknown("otlp/http".into()))
        );
        assert_eq!(
            selected("none,zipkin"),
            Err(SelectError::NoneWithOthers("none,zipkin".into()))
        );
        let message = resolve(&ExportFlags::default(), &env(Some("zipkn")))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(ENV_TRACES_EXPORTER) && message.contains("\"zipkn\""),
            "{message}"
        );
    }

    #[test]
    fn environment_alone() {
        let none = ExportFlags::default();
        let otlp = Some(DEFAULT_GRPC_ENDPOINT.to_owned());
        let zipkin = Some(DEFAULT_ENDPOINT.to_owned());
        assert_eq!(outcome(&none, &env(None)), Ok((otlp.clone(), None, false)));
        assert_eq!(
            outcome(&none, &env(Some("zipkin"))),
            Ok((None, zipkin.clone(), false))
        );
        assert_eq!(
            outcome(&none, &env(Some("otlp,zipkin"))),
            Ok((otlp, zipkin, false))
        );
        assert_eq!(outcome(&none, &env(Some("none"))), Ok((None, None, false)));
        assert_eq!(
            outcome(&none, &env(Some("console"))),
            Ok((None, None, true))
        );

        let mut e = env(Some("zipkin"));
        e.zipkin.endpoint = Some("http://zipkin:9411/api/v2/spans".into());
        let c = resolve(&none, &e).unwrap();
        assert_eq!(
            c.zipkin.map(|z| z.endpoint).as_deref(),
            Some("http://zipkin:9411/api/v2/spans")
        );
    }

    #[test]
    fn flags_win() {
        let zipkin_flag = ExportFlags {
            zipkin_endpoint: Some("http://flag:9411/api/v2/spans".into()),
            ..ExportFlags::default()
        };
        let mut e = env(None);
        e.zipkin.endpoint = Some("http://env:9411/api/v2/spans".into());
        // --zipkin-endpoint adds Zipkin to the default OTLP, and its URL
        // beats the variable.
        let (otlp, zipkin, _) = outcome(&zipkin_flag, &e).unwrap();
        assert!(otlp.is_some());
        assert_eq!(zipkin.as_deref(), Some("http://flag:9411/api/v2/spans"));
        // ... and to nothing at all.
        let (otlp, zipkin, _) = outcome(&zipkin_flag, &env(Some("none"))).unwrap();
        assert_eq!((otlp, zipkin.is_some()), (None, true));

        // --no-otlp beats the variable and the endpoint flag.
        let no_otlp = ExportFlags {
            no_otlp: true,
            otlp_endpoint: Some("http://collector:4317".into()),
            ..ExportFlags::default()
        };
        assert_eq!(
            outcome(&no_otlp, &env(Some("otlp,zipkin"))),
            Ok((None, Some(DEFAULT_ENDPOINT.to_owned()), false))
        );

        // --otlp-endpoint asks for OTLP even when the variable does not.
        let otlp_flag = ExportFlags {
            otlp_endpoint: Some("http://collector:4317".into()),
            otlp_protocol: Some(Protocol::Grpc),
            stdout: true,
            ..ExportFlags::default()
        };
        assert_eq!(
            outcome(&otlp_flag, &env(Some("zipkin"))),
            Ok((
                Some("http://collector:4317".into()),
                Some(DEFAULT_ENDPOINT.to_owned()),
                true
            ))
        );
        // A bad variable is an error even with flags.
        assert!(resolve(&otlp_flag, &env(Some("bogus"))).is_err());
    }
}
