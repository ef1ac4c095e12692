//! Which metrics exporters run and where they send, from the flags and the
//! standard OTEL_* variables (the flags win).
use std::{net::SocketAddr, time::Duration};

use crate::export::{DEFAULT_GRPC_ENDPOINT, Protocol, has_path};

pub const ENV_METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
pub const ENV_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
pub const ENV_EXPORT_TIMEOUT: &str = "OTEL_METRIC_EXPORT_TIMEOUT";
pub const ENV_TEMPORALITY: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
pub const ENV_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const ENV_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
pub const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const ENV_PROMETHEUS_HOST: &str = "OTEL_EXPORTER_PROMETHEUS_HOST";
pub const ENV_PROMETHEUS_PORT: &str = "OTEL_EXPORTER_PROMETHEUS_PORT";

/// The specification's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_PROMETHEUS_HOST: &str = "localhost";
const DEFAULT_PROMETHEUS_PORT: u16 = 9464;
const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/metrics";
const HTTP_METRICS_PATH: &str = "/v1/metrics";
const HTTP_TRACES_PATH: &str = "/v1/traces";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temporality {
    Cumulative,
    Delta,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpMetricsConfig {
    pub endpoint: String,
    pub protocol: Protocol,
    pub interval: Duration,
    pub timeout: Duration,
    pub temporality: Temporality,
}

/// What the metrics stage does; `None` exporters mean metrics are off and
/// nothing is aggregated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub otlp: Option<OtlpMetricsConfig>,
    /// Host and port of the Prometheus endpoint (resolved when bound).
    pub prometheus: Option<(String, u16)>,
    pub cardinality_limit: usize,
}

impl MetricsConfig {
    pub fn enabled(&self) -> bool {
        self.otlp.is_some() || self.prometheus.is_some()
    }
}

/// The command line's part.
#[derive(Clone, Debug, Default)]
pub struct MetricsFlags {
    pub no_metrics: bool,
    pub no_otlp: bool,
    pub otlp_endpoint: Option<String>,
    pub otlp_metrics_endpoint: Option<String>,
    pub otlp_protocol: Option<Protocol>,
    pub prometheus_port: Option<u16>,
    pub prometheus_address: Option<String>,
    pub cardinality_limit: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{ENV_METRICS_EXPORTER}: unknown exporter {0:?} (expected otlp, prometheus or none)")]
    UnknownExporter(String),
    #[error("{0}: {1:?} is not a number of milliseconds")]
    BadDuration(&'static str, String),
    #[error("{ENV_TEMPORALITY}: unknown value {0:?} (expected cumulative, delta or lowmemory)")]
    BadTemporality(String),
    #[error("{ENV_PROMETHEUS_PORT}: {0:?} is not a port")]
    BadPort(String),
    #[error("{0}: {1}")]
    BadProtocol(&'static str, String),
}

/// Resolves the configuration; `env` looks a variable up (empty = unset).
pub fn resolve(
    flags: &MetricsFlags,
    env: impl Fn(&str) -> Option<String>,
) -> Result<MetricsConfig, ConfigError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let (mut otlp, mut prometheus) = (true, false);
    if let Some(list) = var(ENV_METRICS_EXPORTER) {
        (otlp, prometheus) = (false, false);
        for name in list.split(',').map(|n| n.trim().to_ascii_lowercase()) {
            match name.as_str() {
                "otlp" => otlp = true,
                "prometheus" => prometheus = true,
                "none" | "" => {}
                _ => return Err(ConfigError::UnknownExporter(name)),
            }
        }
    }
    let prometheus = match (flags.prometheus_port, prometheus) {
        (None, false) => None,
        (port, _) => {
            let port = match port {
                Some(p) => p,
                None => match var(ENV_PROMETHEUS_PORT) {
                    Some(p) => p.parse().map_err(|_| ConfigError::BadPort(p))?,
                    None => DEFAULT_PROMETHEUS_PORT,
                },
            };
            let host = flags
                .prometheus_address
                .clone()
                .or_else(|| var(ENV_PROMETHEUS_HOST))
                .unwrap_or_else(|| DEFAULT_PROMETHEUS_HOST.to_owned());
            Some((host, port))
        }
    };
    let otlp = if otlp && !flags.no_otlp {
        Some(otlp_config(flags, &var)?)
    } else {
        None
    };
    Ok(MetricsConfig {
        otlp,
        prometheus,
        cardinality_limit: flags.cardinality_limit,
    })
}

fn otlp_config(
    flags: &MetricsFlags,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<OtlpMetricsConfig, ConfigError> {
    let protocol = match var(ENV_METRICS_PROTOCOL) {
        Some(p) => p.parse().map_err(|e: crate::export::ParseProtocolError| {
            ConfigError::BadProtocol(ENV_METRICS_PROTOCOL, e.to_string())
        })?,
        None => match (flags.otlp_protocol, var(ENV_PROTOCOL)) {
            (Some(p), _) => p,
            (None, Some(p)) => p.parse().map_err(|e: crate::export::ParseProtocolError| {
                ConfigError::BadProtocol(ENV_PROTOCOL, e.to_string())
            })?,
            (None, None) => Protocol::Grpc,
        },
    };
    let endpoint = endpoint(flags, var, protocol);
    let millis = |name: &'static str, default: Duration| match var(name) {
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .ok_or(ConfigError::BadDuration(name, v)),
        None => Ok(default),
    };
    let temporality = match var(ENV_TEMPORALITY).map(|t| t.to_ascii_lowercase()) {
        None => Temporality::Cumulative,
        Some(t) if t == "cumulative" => Temporality::Cumulative,
        // Every instrument here is a histogram or a counter: lowmemory
        // makes them delta too.
        Some(t) if t == "delta" || t == "lowmemory" => Temporality::Delta,
        Some(t) => return Err(ConfigError::BadTemporality(t)),
    };
    Ok(OtlpMetricsConfig {
        endpoint,
        protocol,
        interval: millis(ENV_EXPORT_INTERVAL, DEFAULT_INTERVAL)?,
        timeout: millis(ENV_EXPORT_TIMEOUT, DEFAULT_TIMEOUT)?,
        temporality,
    })
}

/// `--otlp-metrics-endpoint`, then the metrics variable, then
/// `--otlp-endpoint` (for HTTP, its `/v1/traces` becomes `/v1/metrics`),
/// then the generic variable, then the default.
fn endpoint(
    flags: &MetricsFlags,
    var: &impl Fn(&str) -> Option<String>,
    protocol: Protocol,
) -> String {
    let with_path = |base: &str| match protocol {
        Protocol::Grpc => base.to_owned(),
        Protocol::HttpProtobuf => {
            let base = base.trim_end_matches('/');
            let base = base.strip_suffix(HTTP_TRACES_PATH).unwrap_or(base);
            format!("{base}{HTTP_METRICS_PATH}")
        }
    };
    let flag = |f: &Option<String>| {
        f.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if let Some(url) = flag(&flags.otlp_metrics_endpoint) {
        return if protocol == Protocol::HttpProtobuf && !has_path(&url) {
            with_path(&url)
        } else {
            url
        };
    }
    if let Some(url) = var(ENV_METRICS_ENDPOINT) {
        return url;
    }
    if let Some(url) = flag(&flags.otlp_endpoint).or_else(|| var(ENV_ENDPOINT)) {
        return with_path(&url);
    }
    match protocol {
        Protocol::Grpc => DEFAULT_GRPC_ENDPOINT,
        Protocol::HttpProtobuf => DEFAULT_HTTP_ENDPOINT,
    }
    .to_owned()
}

/// The Prometheus endpoint's socket address (`localhost` → 127.0.0.1).
pub fn prometheus_addr(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    use std::net::ToSocketAddrs as _;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn flags() -> MetricsFlags {
        MetricsFlags {
            cardinality_limit: 1000,
            ..MetricsFlags::default()
        }
    }

    #[test]
    fn otlp_by_default_at_the_spec_defaults() {
        let c = resolve(&flags(), env(&[])).unwrap();
        let otlp = c.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://localhost:4317");
        assert_eq!(otlp.interval, Duration::from_secs(60));
        assert_eq!(otlp.temporality, Temporality::Cumulative);
        assert_eq!(c.prometheus, None);
    }

    #[test]
    fn exporter_list_and_prometheus_port() {
        let c = resolve(&flags(), env(&[(ENV_METRICS_EXPORTER, "prometheus")])).unwrap();
        assert_eq!(c.otlp, None);
        assert_eq!(c.prometheus, Some(("localhost".to_owned(), 9464)));
        let f = MetricsFlags {
            prometheus_port: Some(9999),
            prometheus_address: Some("0.0.0.0".into()),
            ..flags()
        };
        let c = resolve(&f, env(&[(ENV_METRICS_EXPORTER, "none")])).unwrap();
        assert_eq!(c.prometheus, Some(("0.0.0.0".to_owned(), 9999)));
        assert!(c.otlp.is_none());
        let c = resolve(&flags(), env(&[(ENV_METRICS_EXPORTER, "none")])).unwrap();
        assert!(!c.enabled());
        let c = resolve(&flags(), env(&[(ENV_METRICS_EXPORTER, "otlp, prometheus")])).unwrap();
        assert!(c.otlp.is_some() && c.prometheus.is_some());
        assert_eq!(
            resolve(&flags(), env(&[(ENV_METRICS_EXPORTER, "statsd")])),
            Err(ConfigError::UnknownExporter("statsd".into()))
        );
        let f = MetricsFlags {
            no_otlp: true,
            ..flags()
        };
        assert!(resolve(&f, env(&[])).unwrap().otlp.is_none());
    }

    #[test]
    fn http_endpoints_get_the_metrics_path() {
        let http = |vars: &[(&str, &str)], f: MetricsFlags| {
            let f = MetricsFlags {
                otlp_protocol: Some(Protocol::HttpProtobuf),
                ..f
            };
            resolve(&f, env(vars)).unwrap().otlp.unwrap().endpoint
        };
        assert_eq!(http(&[], flags()), "http://localhost:4318/v1/metrics");
        let f = MetricsFlags {
            otlp_endpoint: Some("http://c:4318/v1/traces".into()),
            ..flags()
        };
        assert_eq!(http(&[], f), "http://c:4318/v1/metrics");
        assert_eq!(
            http(&[(ENV_ENDPOINT, "http://c:4318/")], flags()),
            "http://c:4318/v1/metrics"
        );
        assert_eq!(
            http(&[(ENV_METRICS_ENDPOINT, "http://m/x")], flags()),
            "http://m/x"
        );
        let f = MetricsFlags {
            otlp_metrics_endpoint: Some("http://m:1".into()),
            otlp_endpoint: Some("http://c:4318".into()),
            ..flags()
        };
        assert_eq!(
            http(&[(ENV_METRICS_ENDPOINT, "http://e")], f),
            "http://m:1/v1/metrics"
        );
        let c = resolve(
            &flags(),
            env(&[
                (ENV_METRICS_PROTOCOL, "http/protobuf"),
                (ENV_ENDPOINT, "http://c:4318"),
            ]),
        )
        .unwrap();
        assert_eq!(c.otlp.unwrap().endpoint, "http://c:4318/v1/metrics");
    }

    #[test]
    fn interval_and_temporality() {
        let c = resolve(
            &flags(),
            env(&[(ENV_EXPORT_INTERVAL, "1000"), (ENV_TEMPORALITY, "Delta")]),
        )
        .unwrap()
        .otlp
        .unwrap();
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.temporality, Temporality::Delta);
        for bad in [
            (ENV_EXPORT_INTERVAL, "soon"),
            (ENV_EXPORT_INTERVAL, "0"),
            (ENV_TEMPORALITY, "sometimes"),
            (ENV_METRICS_PROTOCOL, "carrier-pigeon"),
        ] {
            assert!(resolve(&flags(), env(&[bad])).is_err(), "{bad:?}");
        }
    }
}
