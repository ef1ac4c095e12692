//! What the export stage is told to do, and where the OTLP endpoint comes
//! from (flags first, then the standard OTEL_EXPORTER_OTLP_* variables).
use std::{fmt, str::FromStr, time::Duration};

use super::zipkin::ZipkinConfig;

/// Signal-specific variables win over the generic ones, as in every SDK.
pub const ENV_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const ENV_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
/// Appended to OTEL_EXPORTER_OTLP_ENDPOINT for http/protobuf, per the OTLP
/// exporter spec (the per-signal variable is a full URL and is not touched).
const HTTP_TRACES_PATH: &str = "/v1/traces";

/// One request to the backend may take this long before it counts as failed.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the export stage needs; filled in by the command line code.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// None when OTLP export is disabled (`--no-otlp`).
    pub otlp: Option<OtlpConfig>,
    /// Some when spans also (or only) go to Zipkin.
    pub zipkin: Option<ZipkinConfig>,
    /// Also print every span as one JSON line on stdout.
    pub stdout: bool,
    /// Capacity, in spans, of the channel from the span stage.
    pub queue_capacity: usize,
    /// Spans per export request.
    pub max_batch: usize,
    /// A partial batch is sent after this long.
    pub flush_interval: Duration,
    /// Spans held per backend while it is slow or down; beyond this the
    /// oldest go.
    pub max_pending: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            otlp: Some(OtlpConfig::default()),
            zipkin: None,
            stdout: false,
            queue_capacity: 65536,
            max_batch: 2048,
            flush_interval: Duration::from_secs(1),
            max_pending: 65536,
        }
    }
}

/// Where and how to send OTLP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Full URL of the traces endpoint; None means: resolve from the
    /// environment (or the default) when the exporter is built.
    pub endpoint: Option<String>,
    pub protocol: Protocol,
    /// Time allowed to one export request; defaults to
    /// [`DEFAULT_EXPORT_TIMEOUT`] when zero.
    pub timeout: Duration,
}

/// OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OTLP/gRPC; the default, as collectors and agents listen on 4317.
    #[default]
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies.
    HttpProtobuf,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }

    fn default_endpoint(self) -> &'static str {
        match self {
            Self::Grpc => DEFAULT_GRPC_ENDPOINT,
            Self::HttpProtobuf => DEFAULT_HTTP_ENDPOINT,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unsupported OTLP protocol {0:?} (expected \"grpc\" or \"http/protobuf\")")]
pub struct ParseProtocolError(String);

impl FromStr for Protocol {
    type Err = ParseProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Other SDKs accept any case here; so do we, to take the same env.
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            _ => Err(ParseProtocolError(s.to_owned())),
        }
    }
}

/// The OTEL_EXPORTER_OTLP_* values that matter for endpoint and protocol,
/// kept apart from the process environment so precedence is testable.
#[derive(Clone, Debug, Default)]
pub struct OtlpEnv {
    pub traces_protocol: Option<String>,
    pub protocol: Option<String>,
    pub traces_endpoint: Option<String>,
    pub endpoint: Option<String>,
}

impl OtlpEnv {
    pub fn from_process_env() -> Self {
        // An empty variable counts as unset, as in the other SDKs.
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            traces_protocol: var(ENV_TRACES_PROTOCOL),
            protocol: var(ENV_PROTOCOL),
            traces_endpoint: var(ENV_TRACES_ENDPOINT),
            endpoint: var(ENV_ENDPOINT),
        }
    }

    /// Flag, then the signal-specific variable, then the generic one; an
    /// unknown value is skipped with a warning rather than failing start-up.
    fn protocol(&self, flag: Option<Protocol>) -> Protocol {
        if let Some(protocol) = flag {
            return protocol;
        }
        let candidates = [
            (ENV_TRACES_PROTOCOL, &self.traces_protocol),
            (ENV_PROTOCOL, &self.protocol),
        ];
        for (name, value) in candidates {
            let Some(value) = value.as_deref() else {
                continue;
            };
            match value.parse() {
                Ok(protocol) => return protocol,
                Err(e) => log::warn!("ignoring {name}: {e}"),
            }
        }
        Protocol::default()
    }

    fn endpoint(&self, flag: Option<&str>, protocol: Protocol) -> String {
        if let Some(endpoint) = non_empty(flag) {
            // A flag with no path (`http://host:4318`) names the collector,
            // as users write it; one with a path is used as given.
            return match protocol {
                Protocol::HttpProtobuf if !has_path(endpoint) => {
                    format!("{}{HTTP_TRACES_PATH}", endpoint.trim_end_matches('/'))
                }
                _ => endpoint.to_owned(),
            };
        }
        if let Some(endpoint) = non_empty(self.traces_endpoint.as_deref()) {
            return endpoint.to_owned();
        }
        if let Some(base) = non_empty(self.endpoint.as_deref()) {
            return match protocol {
                // gRPC has no path: the service name is the route.
                Protocol::Grpc => base.to_owned(),
                Protocol::HttpProtobuf => {
                    format!("{}{HTTP_TRACES_PATH}", base.trim_end_matches('/'))
                }
            };
        }
        protocol.default_endpoint().to_owned()
    }
}

/// Whether a URL has a path beyond `/`.
pub fn has_path(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .split_once('/')
        .is_some_and(|(_, path)| !path.is_empty())
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl OtlpConfig {
    /// Resolves protocol and endpoint from the command line and `env` (the
    /// process environment's OTEL_EXPORTER_OTLP_* values). The endpoint
    /// flag is a full URL for both protocols.
    ///
    /// OTEL_EXPORTER_OTLP_(TRACES_)HEADERS are read when the exporter is
    /// built (`otlp::build_exporter`: gRPC metadata or HTTP headers).
    /// Requests are not compressed, and there is no TLS to make insecure.
    pub fn resolve(
        endpoint_flag: Option<String>,
        protocol_flag: Option<Protocol>,
        env: &OtlpEnv,
    ) -> Self {
        let protocol = env.protocol(protocol_flag);
        Self {
            endpoint: Some(env.endpoint(endpoint_flag.as_deref(), protocol)),
            protocol,
            timeout: DEFAULT_EXPORT_TIMEOUT,
        }
    }

    /// The endpoint to connect to, filling in what the CLI left open.
    pub fn resolved_endpoint(&self) -> String {
        match &self.endpoint {
            Some(endpoint) if !endpoint.trim().is_empty() => endpoint.trim().to_owned(),
            _ => OtlpEnv::from_process_env().endpoint(None, self.protocol),
        }
    }

    pub fn effective_timeout(&self) -> Duration {
        if self.timeout.is_zero() {
            DEFAULT_EXPORT_TIMEOUT
        } else {
            self.timeout
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(
        traces_protocol: Option<&str>,
        protocol: Option<&str>,
        traces_endpoint: Option<&str>,
        endpoint: Option<&str>,
    ) -> OtlpEnv {
        OtlpEnv {
            traces_protocol: traces_protocol.map(Into::into),
            protocol: protocol.map(Into::into),
            traces_endpoint: traces_endpoint.map(Into::into),
            endpoint: endpoint.map(Into::into),
        }
    }

    fn resolve(flag_ep: Option<&str>, flag_proto: Option<Protocol>, env: &OtlpEnv) -> OtlpConfig {
        OtlpConfig::resolve(flag_ep.map(Into::into), flag_proto, env)
    }

    #[test]
    fn defaults_per_protocol() {
        let c = resolve(None, None, &OtlpEnv::default());
        assert_eq!(c.protocol, Protocol::Grpc);
        assert_eq!(c.endpoint.as_deref(), Some("http://localhost:4317"));
        assert_eq!(c.timeout, DEFAULT_EXPORT_TIMEOUT);

        let c = resolve(None, Some(Protocol::HttpProtobuf), &OtlpEnv::default());
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://localhost:4318/v1/traces")
        );
    }

    #[test]
    fn protocol_flag_wins_over_env() {
        let e = env(None, Some("http/protobuf"), None, None);
        assert_eq!(
            resolve(None, Some(Protocol::Grpc), &e).protocol,
            Protocol::Grpc
        );
        assert_eq!(resolve(None, None, &e).protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn protocol_signal_env_wins_and_invalid_is_skipped() {
        let e = env(Some("grpc"), Some("http/protobuf"), None, None);
        assert_eq!(resolve(None, None, &e).protocol, Protocol::Grpc);

        let e = env(Some("http/json"), Some("HTTP/PROTOBUF"), None, None);
        assert_eq!(resolve(None, None, &e).protocol, Protocol::HttpProtobuf);

        let e = env(None, Some("carrier-pigeon"), None, None);
        assert_eq!(resolve(None, None, &e).protocol, Protocol::Grpc);
    }

    #[test]
    fn endpoint_precedence() {
        let all = env(
            None,
            None,
            Some("http://traces:9999/custom"),
            Some("http://generic:4317"),
        );
        let c = resolve(Some("http://flag:1234"), None, &all);
        assert_eq!(c.endpoint.as_deref(), Some("http://flag:1234"));
        // An HTTP flag naming only the collector gets the traces path.
        let http = Some(Protocol::HttpProtobuf);
        let c = resolve(Some("http://flag:4318/"), http, &all);
        assert_eq!(c.endpoint.as_deref(), Some("http://flag:4318/v1/traces"));
        let c = resolve(Some("http://flag:4318/otlp/v1/traces"), http, &all);
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://flag:4318/otlp/v1/traces")
        );

        // The per-signal variable is used as-is, even for HTTP.
        let c = resolve(None, Some(Protocol::HttpProtobuf), &all);
        assert_eq!(c.endpoint.as_deref(), Some("http://traces:9999/custom"));

        let generic = env(None, None, None, Some("http://generic:4318/"));
        let c = resolve(None, Some(Protocol::HttpProtobuf), &generic);
        assert_eq!(c.endpoint.as_deref(), Some("http://generic:4318/v1/traces"));
        let c = resolve(None, Some(Protocol::Grpc), &generic);
        assert_eq!(c.endpoint.as_deref(), Some("http://generic:4318/"));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let e = env(None, None, Some("  "), Some(""));
        let c = resolve(Some(""), None, &e);
        assert_eq!(c.endpoint.as_deref(), Some(DEFAULT_GRPC_ENDPOINT));
    }

    #[test]
    fn protocol_round_trips_through_strings() {
        for p in [Protocol::Grpc, Protocol::HttpProtobuf] {
            assert_eq!(p.to_string().parse::<Protocol>().unwrap(), p);
        }
        assert!("http/json".parse::<Protocol>().is_err());
    }
}
