//! Where Zipkin spans go: `--zipkin-endpoint`, else the variables of the
//! OpenTelemetry environment specification.
use std::time::Duration;

pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_ZIPKIN_ENDPOINT";
/// Milliseconds.
pub const ENV_TIMEOUT: &str = "OTEL_EXPORTER_ZIPKIN_TIMEOUT";

/// The specification's defaults.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to send Zipkin v2 JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipkinConfig {
    /// Full URL of the collector's span endpoint.
    pub endpoint: String,
    /// Time allowed to one request.
    pub timeout: Duration,
}

impl Default for ZipkinConfig {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The OTEL_EXPORTER_ZIPKIN_* values, kept apart from the process
/// environment so precedence is testable.
#[derive(Clone, Debug, Default)]
pub struct ZipkinEnv {
    pub endpoint: Option<String>,
    pub timeout: Option<String>,
}

impl ZipkinEnv {
    pub fn from_process_env() -> Self {
        // An empty variable counts as unset, as in the other SDKs.
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            endpoint: var(ENV_ENDPOINT),
            timeout: var(ENV_TIMEOUT),
        }
    }
}

impl ZipkinConfig {
    /// The flag, then the variable, then the default; the URL is used as
    /// given (Zipkin has no conventional path to append). A timeout that is
    /// not a number of milliseconds is skipped with a warning, as the OTLP
    /// variables are, rather than failing start-up.
    pub fn resolve(endpoint_flag: Option<&str>, env: &ZipkinEnv) -> Self {
        let endpoint = non_empty(endpoint_flag)
            .or_else(|| non_empty(env.endpoint.as_deref()))
            .unwrap_or(DEFAULT_ENDPOINT)
            .to_owned();
        let timeout = match non_empty(env.timeout.as_deref()).map(str::parse::<u64>) {
            None => DEFAULT_TIMEOUT,
            Some(Ok(0)) | Some(Err(_)) => {
                log::warn!(
                    "ignoring {ENV_TIMEOUT}={:?}: not a positive number of milliseconds",
                    env.timeout.as_deref().unwrap_or_default()
                );
                DEFAULT_TIMEOUT
            }
            Some(Ok(ms)) => Duration::from_millis(ms),
        };
        Self { endpoint, timeout }
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(endpoint: Option<&str>, timeout: Option<&str>) -> ZipkinEnv {
        ZipkinEnv {
            endpoint: endpoint.map(Into::into),
            timeout: timeout.map(Into::into),
        }
    }

    #[test]
    fn flag_then_env_then_default() {
        let e = env(Some("http://env:9411/api/v2/spans"), None);
        let c = ZipkinConfig::resolve(Some("http://flag:1/spans"), &e);
        assert_eq!(c.endpoint, "http://flag:1/spans");
        assert_eq!(
            ZipkinConfig::resolve(None, &e).endpoint,
            "http://env:9411/api/v2/spans"
        );
        assert_eq!(
            ZipkinConfig::resolve(Some("  "), &ZipkinEnv::default()),
            ZipkinConfig::default()
        );
        assert_eq!(ZipkinConfig::default().endpoint, DEFAULT_ENDPOINT);
    }

    #[test]
    fn timeout_in_milliseconds_and_bad_values_skipped() {
        let c = ZipkinConfig::resolve(None, &env(None, Some("2500")));
        assert_eq!(c.timeout, Duration::from_millis(2500));
        for bad in ["ten", "-1", "0", "1.5"] {
            let c = ZipkinConfig::resolve(None, &env(None, Some(bad)));
            assert_eq!(c.timeout, DEFAULT_TIMEOUT, "{bad}");
        }
    }
}
