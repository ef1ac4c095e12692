//! Zipkin export: spans as Zipkin v2 JSON, POSTed to the collector, one
//! request per process (the export task sets each process's resource before
//! its spans, as for OTLP). Our own mapping (see [`mapping`] for why not
//! opentelemetry-zipkin) behind the export task's `GroupExporter`, so batching,
//! retries and counting are the export task's, shared with OTLP.
pub mod config;
mod mapping;

use std::{error::Error as _, str::FromStr};

use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::SpanData,
};
use reqwest::{Client, Url, header::CONTENT_TYPE};

pub use self::config::{ZipkinConfig, ZipkinEnv};
use super::{batch::GroupExporter, convert};
use crate::spans::record::SpanRecord;

/// url's ParseError, named through reqwest's re-export of Url rather than a
/// dependency on url of our own.
type UrlError = <Url as FromStr>::Err;

/// Longest piece of an error response quoted in the log.
const MAX_ERROR_BODY: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid Zipkin endpoint {endpoint:?}")]
    Url {
        endpoint: String,
        #[source]
        source: UrlError,
    },
    /// reqwest is built without TLS here (as for OTLP/HTTP), so only
    /// plain HTTP can work; say so now rather than on every export.
    #[error("Zipkin endpoint {0:?}: only http:// is supported")]
    Scheme(String),
    #[error("cannot build the HTTP client for Zipkin")]
    Client(#[source] reqwest::Error),
}

/// Sends spans to one Zipkin collector.
#[derive(Debug)]
pub struct ZipkinExporter {
    client: Client,
    endpoint: Url,
    /// localEndpoint.serviceName of the spans exported next: the
    /// service.name of the resource last set.
    service_name: String,
}

impl ZipkinExporter {
    /// Checks the endpoint and builds the client; connects only when the
    /// first batch goes out.
    pub fn new(config: &ZipkinConfig) -> Result<Self, BuildError> {
        let endpoint = Url::parse(&config.endpoint).map_err(|source| BuildError::Url {
            endpoint: config.endpoint.clone(),
            source,
        })?;
        if endpoint.scheme() != "http" {
            return Err(BuildError::Scheme(config.endpoint.clone()));
        }
        let client = Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(BuildError::Client)?;
        Ok(Self {
            client,
            endpoint,
            service_name: mapping::UNKNOWN_SERVICE.to_owned(),
        })
    }
}

impl GroupExporter for ZipkinExporter {
    async fn export(&self, batch: &[SpanRecord]) -> OTelSdkResult {
        // The mapping reads the SDK's SpanData. The records are kept for a
        // retry, so they are copied: Zipkin is the second backend, and OTLP
        // encodes straight from them.
        let scope = convert::scope();
        let data: Vec<SpanData> = batch
            .iter()
            .map(|r| convert::to_span_data(r.clone(), &scope))
            .collect();
        // Serialising a serde_json::Value cannot fail.
        let body = mapping::spans_json(&data, &self.service_name).to_string();
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| OTelSdkError::InternalFailure(with_sources(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Zipkin says what it did not like in the body (e.g. a bad field).
        let body = response.bytes().await.unwrap_or_default();
        let body = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]);
        Err(OTelSdkError::InternalFailure(format!(
            "HTTP {status}: {}",
            body.trim()
        )))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service_name = mapping::service_name(resource);
    }
}

/// reqwest's own message ("error sending request") hides the cause
/// (connection refused, timed out) in its sources.
fn with_sources(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::{net::TcpListener, time::Duration};

    use super::*;
    use crate::export::{
        batch::{Batch, export_attempt},
        convert::tests::record,
        tests::collector,
    };

    fn config(endpoint: &str) -> ZipkinConfig {
        ZipkinConfig {
            endpoint: endpoint.to_owned(),
            timeout: Duration::from_secs(5),
        }
    }

    const PATH: &str = "/api/v2/spans";
    /// Zipkin's answers, each with a reason the exporter may quote.
    const ACCEPTED: &str = "202 Accepted\r\ncontent-length: 8\r\n\r\nbad span";
    const BAD_REQUEST: &str = "400 Bad Request\r\ncontent-length: 8\r\n\r\nbad span";

    /// Two processes in one batch: two POSTs, each with its own
    /// localEndpoint.serviceName.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_request_per_process_with_its_service_name() {
        let (url, server) = collector(PATH, 2, ACCEPTED);
        let mut exporter = ZipkinExporter::new(&config(&url)).unwrap();
        let mut batch = Batch::new(vec![record(11), record(22), record(11)]);
        let attempt = export_attempt(&mut exporter, &mut batch).await;
        assert!(attempt.error.is_none(), "{:?}", attempt.error);
        assert_eq!(attempt.exported, 3);

        let seen = server.join().unwrap();
        assert_eq!(seen[0].request_line, "POST /api/v2/spans HTTP/1.1");
        assert!(seen.iter().all(|s| s.content_type == "application/json"));
        let services: Vec<Vec<String>> = seen
            .iter()
            .map(|s| {
                let spans: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
                spans
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["localEndpoint"]["serviceName"].as_str().unwrap().into())
                    .collect()
            })
            .collect();
        assert_eq!(services, [vec!["svc-11", "svc-11"], vec!["svc-22"]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_status_fails_the_attempt_with_the_reason() {
        let (url, server) = collector(PATH, 1, BAD_REQUEST);
        let mut exporter = ZipkinExporter::new(&config(&url)).unwrap();
        let mut batch = Batch::new(vec![record(1)]);
        let attempt = export_attempt(&mut exporter, &mut batch).await;
        let error = attempt.error.expect("a failure").to_string();
        assert!(
            error.contains("400") && error.contains("bad span"),
            "{error}"
        );
        assert_eq!((attempt.exported, batch.len()), (0, 1));
        assert_eq!(server.join().unwrap()[0].content_type, "application/json");
    }

    #[tokio::test]
    async fn a_refused_connection_says_why() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/api/v2/spans");
        let mut exporter = ZipkinExporter::new(&config(&url)).unwrap();
        let mut batch = Batch::new(vec![record(1)]);
        let error = export_attempt(&mut exporter, &mut batch)
            .await
            .error
            .expect("a failure")
            .to_string();
        assert!(error.to_ascii_lowercase().contains("refused"), "{error}");
    }

    #[test]
    fn only_plain_http_endpoints() {
        assert!(ZipkinExporter::new(&config("http://localhost:9411/api/v2/spans")).is_ok());
        assert!(matches!(
            ZipkinExporter::new(&config("https://zipkin:9411/api/v2/spans")),
            Err(BuildError::Scheme(_))
        ));
        assert!(matches!(
            ZipkinExporter::new(&config("not a url")),
            Err(BuildError::Url { .. })
        ));
    }
}
