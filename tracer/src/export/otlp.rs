//! The OTLP span exporter: each process's spans encoded straight to
//! protobuf (`otlp_encode`) and sent over gRPC (tonic, the bytes passed
//! through as they are) or HTTP/protobuf (reqwest), one request per process
//! with that process's resource ([`super::batch::export_attempt`]).
//!
//! The batching, retries and counters around it are the same as for
//! Zipkin; the encoding and the transport are ours, as they took most of
//! the agent's CPU when the SDK's exporter did them.
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    metadata::{MetadataKey, MetadataValue},
    transport::Channel,
};

use super::{
    batch::GroupExporter,
    config::{OtlpConfig, Protocol},
    convert, otlp_encode,
};
use crate::spans::record::SpanRecord;

/// The variables naming extra headers (gRPC metadata), as in the SDKs: the
/// signal's own wins over the general one.
const ENV_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const ENV_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";

const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("OTLP endpoint {0:?}: https is not supported (the agent is built without TLS)")]
    Https(String),
    #[error("bad OTLP endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot build the HTTP client for OTLP")]
    Client(#[source] reqwest::Error),
}

#[derive(Clone, Debug)]
enum Transport {
    Grpc(Channel),
    Http {
        client: reqwest::Client,
        url: String,
    },
}

/// Sends one process's spans per `export` call, with the resource last set.
#[derive(Debug)]
pub struct OtlpExporter {
    transport: Transport,
    headers: Vec<(String, String)>,
    timeout: Duration,
    scope: InstrumentationScope,
    resource: Resource,
}

/// Builds the exporter; must run inside a tokio runtime (the gRPC channel is
/// created lazily on it).
pub fn build_exporter(config: &OtlpConfig) -> Result<OtlpExporter, BuildError> {
    let endpoint = config.resolved_endpoint();
    let timeout = config.effective_timeout();
    if endpoint
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("https://")
    {
        return Err(BuildError::Https(endpoint));
    }
    let bad = |reason: String| BuildError::Endpoint {
        endpoint: endpoint.clone(),
        reason,
    };
    let transport = match config.protocol {
        Protocol::Grpc => Transport::Grpc(
            Channel::from_shared(endpoint.clone())
                .map_err(|e| bad(e.to_string()))?
                .timeout(timeout)
                .connect_lazy(),
        ),
        Protocol::HttpProtobuf => {
            let parsed: Result<reqwest::Url, _> = endpoint.parse();
            parsed.map_err(|e| bad(e.to_string()))?;
            Transport::Http {
                client: reqwest::Client::builder()
                    .timeout(timeout)
                    .build()
                    .map_err(BuildError::Client)?,
                url: endpoint.clone(),
            }
        }
    };
    let headers = headers_from(
        std::env::var(ENV_TRACES_HEADERS)
            .or_else(|_| std::env::var(ENV_HEADERS))
            .ok()
            .as_deref(),
    );
    Ok(OtlpExporter {
        transport,
        headers,
        timeout,
        scope: convert::scope(),
        resource: Resource::builder_empty().build(),
    })
}

impl GroupExporter for OtlpExporter {
    async fn export(&self, batch: &[SpanRecord]) -> OTelSdkResult {
        let body = otlp_encode::request(&self.resource, &self.scope, batch);
        let sent = match &self.transport {
            Transport::Grpc(channel) => self.send_grpc(channel.clone(), body).await,
            Transport::Http { client, url } => self.send_http(client, url, body).await,
        };
        sent.map_err(OTelSdkError::InternalFailure)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}

impl OtlpExporter {
    async fn send_http(
        &self,
        client: &reqwest::Client,
        url: &str,
        body: Bytes,
    ) -> Result<(), String> {
        let mut request = client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(body);
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status()))
        }
    }

    async fn send_grpc(&self, channel: Channel, body: Bytes) -> Result<(), String> {
        let mut grpc = tonic::client::Grpc::new(channel);
        let call = async {
            grpc.ready().await.map_err(|e| format!("not ready: {e}"))?;
            let mut request = tonic::Request::new(body);
            for (k, v) in &self.headers {
                match (
                    MetadataKey::from_bytes(k.as_bytes()),
                    MetadataValue::try_from(v.as_str()),
                ) {
                    (Ok(k), Ok(v)) => {
                        request.metadata_mut().insert(k, v);
                    }
                    _ => log::debug!("OTLP header {k:?} is not valid gRPC metadata: left out"),
                }
            }
            grpc.unary(request, PathAndQuery::from_static(GRPC_EXPORT), RawCodec)
                .await
                .map(|_| ())
                .map_err(|status| format!("{}: {}", status.code(), status.message()))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

/// `key=value` pairs separated by commas, values percent-decoded (the
/// OpenTelemetry header format); malformed pairs are left out.
fn headers_from(value: Option<&str>) -> Vec<(String, String)> {
    value
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_or_else(|_| v.to_owned(), |d| d.into_owned());
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_ascii_lowercase(), v))
        })
        .collect()
}

/// gRPC messages passed through as bytes already encoded; the answer
/// (an `ExportTraceServiceResponse`) is not looked at.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

#[derive(Clone, Copy, Debug, Default)]
struct RawEncoder;

#[derive(Clone, Copy, Debug, Default)]
struct IgnoreDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = IgnoreDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> IgnoreDecoder {
        IgnoreDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for IgnoreDecoder {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
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

    #[test]
    fn headers_are_parsed_as_the_sdks_do() {
        assert_eq!(
            headers_from(Some(" api-key = a%20b%2Cc ,X-Tenant=t1,,=v,k=,bad")),
            [
                ("api-key".to_owned(), "a b,c".to_owned()),
                ("x-tenant".to_owned(), "t1".to_owned()),
            ]
        );
        assert!(headers_from(None).is_empty());
    }

    #[test]
    fn https_and_bad_endpoints_are_refused_at_start() {
        for (endpoint, protocol) in [
            ("https://collector:4317", Protocol::Grpc),
            ("https://collector:4318/v1/traces", Protocol::HttpProtobuf),
            ("http://[::1", Protocol::HttpProtobuf),
            ("not a url", Protocol::Grpc),
        ] {
            let config = OtlpConfig {
                endpoint: Some(endpoint.to_owned()),
                protocol,
                timeout: Duration::from_secs(1),
            };
            let err = build_exporter(&config).unwrap_err().to_string();
            assert!(err.contains(endpoint), "{err}");
        }
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
