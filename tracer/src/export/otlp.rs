//! Building the opentelemetry-otlp exporter (batches are sent by
//! [`super::batch::export_attempt`], one resource at a time).
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};

use super::config::{OtlpConfig, Protocol};

#[derive(Debug, thiserror::Error)]
#[error("cannot build the OTLP {protocol} exporter for {endpoint}")]
pub struct BuildError {
    protocol: Protocol,
    endpoint: String,
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Builds the exporter; must run inside a tokio runtime (the gRPC channel is
/// created lazily on it). Headers from OTEL_EXPORTER_OTLP_(TRACES_)HEADERS
/// are added by the builder itself.
pub fn build_exporter(config: &OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, BuildError> {
    let endpoint = config.resolved_endpoint();
    let timeout = config.effective_timeout();
    // Retries are ours (they must not hold up the batch loop, and they are
    // counted), so the crate's own retry loop is switched off.
    let built = match config.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(timeout)
            .with_retry_policy(RetryPolicy::disabled())
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            // Explicit, or OTEL_EXPORTER_OTLP_PROTOCOL=grpc would make the
            // HTTP builder refuse to build.
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(timeout)
            .with_retry_policy(RetryPolicy::disabled())
            .build(),
    };
    built.map_err(|source| BuildError {
        protocol: config.protocol,
        endpoint,
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::export::{
        batch::{Batch, export_attempt},
        convert::{self, tests::record},
        tests::collector,
    };

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// set_resource really controls the resource of the OTLP request: two
    /// processes in one batch give two requests, each with its own
    /// service.name (protobuf strings are stored verbatim, so a byte search
    /// is enough without decoding).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_requests_carry_the_resource_of_their_process() {
        let (url, server) = collector(
            "/v1/traces",
            2,
            "200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
        let config = OtlpConfig {
            endpoint: Some(url),
            protocol: Protocol::HttpProtobuf,
            timeout: Duration::from_secs(5),
        };
        let mut exporter = build_exporter(&config).unwrap();
        let mut batch = Batch::new(vec![record(11), record(22), record(11)]);
        let attempt = export_attempt(&mut exporter, &mut batch).await;
        assert!(attempt.error.is_none(), "{:?}", attempt.error);
        assert_eq!(attempt.exported, 3);

        let bodies: Vec<Vec<u8>> = server.join().unwrap().into_iter().map(|s| s.body).collect();
        assert!(contains(&bodies[0], "svc-11") && !contains(&bodies[0], "svc-22"));
        assert!(contains(&bodies[1], "svc-22") && !contains(&bodies[1], "svc-11"));
        assert!(contains(&bodies[0], "GET /users/{id}"));
        assert!(contains(&bodies[0], convert::SCOPE_NAME));
    }

    #[tokio::test]
    async fn both_transports_build_without_a_collector() {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let config = OtlpConfig {
                endpoint: Some("http://127.0.0.1:9".to_owned()),
                protocol,
                timeout: Duration::from_secs(1),
            };
            build_exporter(&config).unwrap();
        }
    }
}
