//! Talking to the OTLP backend: building the opentelemetry-otlp exporter and
//! sending one batch, one resource (process) at a time.
use std::collections::HashMap;

use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkError,
    trace::{SpanData, SpanExporter},
};

use super::{
    config::{OtlpConfig, Protocol},
    convert,
};
use crate::spans::record::{ProcessKey, SpanRecord};

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

/// The spans of one process, which share a resource.
#[derive(Debug)]
struct ResourceGroup {
    resource: Resource,
    spans: Vec<SpanData>,
}

/// A batch on its way to the backend, split by process. Groups the backend
/// accepted are removed, so a retry only re-sends what failed.
#[derive(Debug)]
pub struct Batch {
    groups: Vec<ResourceGroup>,
    /// Attempts made so far.
    pub attempts: u32,
}

impl Batch {
    pub fn new(records: Vec<SpanRecord>) -> Self {
        let scope = convert::scope();
        let mut index: HashMap<ProcessKey, usize> = HashMap::new();
        let mut groups: Vec<ResourceGroup> = Vec::new();
        for record in records {
            let i = *index.entry(record.process).or_insert_with(|| {
                groups.push(ResourceGroup {
                    resource: record.resource.clone(),
                    spans: Vec::new(),
                });
                groups.len() - 1
            });
            groups[i].spans.push(convert::to_span_data(record, &scope));
        }
        Self {
            groups,
            attempts: 0,
        }
    }

    /// Spans not yet accepted by the backend.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.spans.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// How one attempt went.
#[derive(Debug)]
pub struct Attempt {
    /// Spans the backend accepted during this attempt.
    pub exported: usize,
    pub error: Option<OTelSdkError>,
}

/// One attempt at sending what is left of `batch`: per process, set the
/// resource, then export; stops at the first failure (a backend that just
/// failed will most likely fail the next request too).
///
/// Setting the resource per request is what makes one exporter serve many
/// processes: both the tonic and the HTTP client keep it in a field that the
/// next `export` turns into the request's ResourceSpans.resource.
pub async fn export_attempt<E: SpanExporter>(exporter: &mut E, batch: &mut Batch) -> Attempt {
    batch.attempts += 1;
    let mut exported = 0;
    while let Some(group) = batch.groups.first() {
        exporter.set_resource(&group.resource);
        // The exporter consumes the spans; keep ours for a retry.
        match exporter.export(group.spans.clone()).await {
            Ok(()) => {
                exported += group.spans.len();
                batch.groups.remove(0);
            }
            Err(error) => {
                return Attempt {
                    exported,
                    error: Some(error),
                };
            }
        }
    }
    Attempt {
        exported,
        error: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{
        io::{BufRead, BufReader, Read, Write},
        net::TcpListener,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use opentelemetry::{Key, Value};
    use opentelemetry_sdk::error::OTelSdkResult;

    use super::*;
    use crate::export::convert::tests::record;

    /// service.name of the resource set, and span count, per export call.
    pub(crate) type Calls = Arc<Mutex<Vec<(Option<Value>, usize)>>>;

    /// Records what it was asked to export; fails the first `fail` calls.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct FakeExporter {
        resource: Option<Resource>,
        pub(crate) fail: Arc<Mutex<usize>>,
        pub(crate) calls: Calls,
    }

    impl SpanExporter for FakeExporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let service = self
                .resource
                .as_ref()
                .and_then(|r| r.get(&Key::from_static_str("service.name")));
            self.calls.lock().unwrap().push((service, batch.len()));
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(OTelSdkError::InternalFailure("fake failure".into()));
            }
            Ok(())
        }

        fn set_resource(&mut self, resource: &Resource) {
            self.resource = Some(resource.clone());
        }
    }

    #[test]
    fn batch_groups_by_process_in_arrival_order() {
        let batch = Batch::new(vec![record(2), record(1), record(2), record(3)]);
        assert_eq!(batch.len(), 4);
        let sizes: Vec<_> = batch.groups.iter().map(|g| g.spans.len()).collect();
        assert_eq!(sizes, [2, 1, 1]);
        let names: Vec<_> = batch
            .groups
            .iter()
            .map(|g| g.resource.get(&Key::from_static_str("service.name")))
            .collect();
        assert_eq!(
            names,
            [
                Some(Value::from("svc-2")),
                Some(Value::from("svc-1")),
                Some(Value::from("svc-3"))
            ]
        );
    }

    #[test]
    fn same_pid_new_process_is_a_separate_group() {
        let mut restarted = record(2);
        restarted.process.start_ticks += 1;
        let batch = Batch::new(vec![record(2), restarted]);
        assert_eq!(batch.groups.len(), 2);
    }

    #[tokio::test]
    async fn each_group_is_exported_with_its_resource_and_failures_keep_the_rest() {
        let mut fake = FakeExporter::default();
        *fake.fail.lock().unwrap() = 1;
        let mut batch = Batch::new(vec![record(1), record(2), record(2)]);

        // The first request fails: nothing is removed.
        let a = export_attempt(&mut fake, &mut batch).await;
        assert_eq!((a.exported, a.error.is_some()), (0, true));
        assert_eq!(batch.len(), 3);

        let a = export_attempt(&mut fake, &mut batch).await;
        assert_eq!((a.exported, a.error.is_none()), (3, true));
        assert!(batch.is_empty());
        assert_eq!(batch.attempts, 2);
        assert_eq!(
            *fake.calls.lock().unwrap(),
            [
                (Some(Value::from("svc-1")), 1),
                (Some(Value::from("svc-1")), 1),
                (Some(Value::from("svc-2")), 2),
            ]
        );
    }

    /// A minimal OTLP/HTTP receiver: answers every POST with 200 and hands
    /// the request bodies back.
    fn http_receiver(requests: usize) -> (String, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            while bodies.len() < requests {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end().to_ascii_lowercase();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                bodies.push(body);
                reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
            }
            bodies
        });
        (url, server)
    }

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
        let (url, server) = http_receiver(2);
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

        let bodies = server.join().unwrap();
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
