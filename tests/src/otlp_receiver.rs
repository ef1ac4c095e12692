//! An OTLP receiver for traces and metrics on 127.0.0.1, speaking both
//! transports the agent can export with: gRPC (`TraceService/Export` and
//! `MetricsService/Export` on one port) and HTTP/protobuf (`POST` of an
//! `ExportMetricsServiceRequest` to `/v1/metrics`, of an
//! `ExportTraceServiceRequest` to any other path). Every span it receives is
//! flattened into a [`ReceivedSpan`], every metric data point into a
//! [`ReceivedPoint`] (otlp_metrics.rs), and kept in a shared store the tests
//! wait on and inspect.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::SocketAddr,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Response, StatusCode, body::Incoming};
use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{AnyValue, KeyValue, any_value},
    metrics::v1::ResourceMetrics,
    trace::v1::{span::SpanKind, status::StatusCode as OtlpStatusCode},
};
use prost::Message as _;
use tokio::{net::TcpListener, runtime::Runtime};

use crate::{
    http_serve,
    otlp_metrics::{ReceivedPoint, dump_points, flatten_metrics},
};

/// Largest HTTP/protobuf body accepted; the agent's batches are far smaller.
const MAX_HTTP_BODY: usize = 64 << 20;

/// The OTLP/HTTP path of metrics; traces are accepted on any other.
pub const HTTP_METRICS_PATH: &str = "/v1/metrics";

/// How the agent sends spans and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// The value of the agent's `--otlp-protocol` flag.
    pub fn flag_value(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// An attribute value, as OTLP `AnyValue` carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    Map(BTreeMap<String, AttrValue>),
    Empty,
}

impl AttrValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => write!(f, "{s:?}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Double(d) => write!(f, "{d}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Bytes(b) => write!(f, "bytes[{}]", b.len()),
            AttrValue::Array(a) => write!(f, "{a:?}"),
            AttrValue::Map(m) => write!(f, "{m:?}"),
            AttrValue::Empty => write!(f, "<empty>"),
        }
    }
}

/// One received span with its resource, flattened for easy assertions.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// Lower-case hex.
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a root span (empty in OTLP).
    pub parent_span_id: Option<String>,
    pub name: String,
    /// "SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER" or "UNSPECIFIED".
    pub kind: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: BTreeMap<String, AttrValue>,
    /// "UNSET", "OK" or "ERROR".
    pub status_code: String,
    pub status_message: String,
    pub resource: BTreeMap<String, AttrValue>,
    pub scope_name: String,
    /// The transport it arrived on.
    pub transport: Protocol,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    pub fn attr_int(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_int)
    }

    pub fn res_str(&self, key: &str) -> Option<&str> {
        self.resource.get(key).and_then(AttrValue::as_str)
    }

    pub fn res_int(&self, key: &str) -> Option<i64> {
        self.resource.get(key).and_then(AttrValue::as_int)
    }

    /// `process.pid` of the resource.
    pub fn pid(&self) -> Option<u32> {
        self.res_int("process.pid")
            .and_then(|p| u32::try_from(p).ok())
    }

    pub fn is_server(&self) -> bool {
        self.kind == "SERVER"
    }

    pub fn is_client(&self) -> bool {
        self.kind == "CLIENT"
    }
}

impl fmt::Display for ReceivedSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} status={} trace={} span={} parent={} pid={:?} service={:?}",
            self.kind,
            self.name,
            self.status_code,
            self.trace_id,
            self.span_id,
            self.parent_span_id.as_deref().unwrap_or("-"),
            self.pid(),
            self.res_str("service.name"),
        )?;
        for (k, v) in &self.attributes {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// Renders spans one a line, for failure messages.
pub fn dump(spans: &[ReceivedSpan]) -> String {
    if spans.is_empty() {
        return "  (no spans)".to_owned();
    }
    spans.iter().map(|s| format!("  {s}\n")).collect()
}

/// What the receiver saw besides spans and points.
#[derive(Clone, Debug, Default)]
pub struct RequestStats {
    /// Trace export requests.
    pub grpc_requests: u64,
    pub http_requests: u64,
    /// Metrics export requests.
    pub grpc_metrics_requests: u64,
    pub http_metrics_requests: u64,
    /// Paths of the HTTP/protobuf requests, in arrival order.
    pub http_paths: Vec<String>,
    /// Requests that could not be decoded.
    pub errors: Vec<String>,
}

#[derive(Default)]
struct StoreInner {
    spans: Vec<ReceivedSpan>,
    /// Every ResourceMetrics as it came, for what the points leave out
    /// (exemplars, scope versions, metadata).
    resource_metrics: Vec<ResourceMetrics>,
    points: Vec<ReceivedPoint>,
    stats: RequestStats,
}

impl StoreInner {
    fn describe_metrics(&self, name: &str) -> String {
        let names: BTreeSet<&str> = self.points.iter().map(|p| p.name.as_str()).collect();
        let points: Vec<ReceivedPoint> = self
            .points
            .iter()
            .filter(|p| p.name == name)
            .cloned()
            .collect();
        format!(
            "received {} point(s) in {} gRPC + {} HTTP metrics request(s), decode errors {:?}; \
             metrics: {names:?}; points of {name}:\n{}",
            self.points.len(),
            self.stats.grpc_metrics_requests,
            self.stats.http_metrics_requests,
            self.stats.errors,
            dump_points(&points)
        )
    }
}

#[derive(Default)]
struct Store {
    inner: Mutex<StoreInner>,
    changed: Condvar,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        // A panicking test thread must not hide the spans from the others.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, request: &ExportTraceServiceRequest, transport: Protocol) {
        let spans = flatten(request, transport);
        let mut inner = self.lock();
        match transport {
            Protocol::Grpc => inner.stats.grpc_requests += 1,
            Protocol::HttpProtobuf => inner.stats.http_requests += 1,
        }
        inner.spans.extend(spans);
        drop(inner);
        self.changed.notify_all();
    }

    fn add_metrics(&self, request: ExportMetricsServiceRequest, transport: Protocol) {
        let points = flatten_metrics(&request, transport);
        let mut inner = self.lock();
        match transport {
            Protocol::Grpc => inner.stats.grpc_metrics_requests += 1,
            Protocol::HttpProtobuf => inner.stats.http_metrics_requests += 1,
        }
        inner.points.extend(points);
        inner.resource_metrics.extend(request.resource_metrics);
        drop(inner);
        self.changed.notify_all();
    }

    /// Waits until `check` gives a value; on timeout, an error saying what
    /// was awaited and what `describe` makes of the store.
    fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&StoreInner) -> Option<T>,
        describe: impl FnOnce(&StoreInner) -> String,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            if let Some(found) = check(&inner) {
                return Ok(found);
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; {}",
                    describe(&inner)
                );
            }
            let wait = (deadline - now).min(Duration::from_millis(200));
            inner = self
                .changed
                .wait_timeout(inner, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn error(&self, message: String) {
        self.lock().stats.errors.push(message);
        self.changed.notify_all();
    }
}

/// The receiver: both servers run on a runtime of their own, so tests stay
/// plain synchronous functions.
pub struct Receiver {
    store: Arc<Store>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    runtime: Option<Runtime>,
}

impl Receiver {
    /// Starts both servers on ephemeral ports of 127.0.0.1.
    pub fn start() -> anyhow::Result<Receiver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("otlp-receiver")
            .enable_all()
            .build()
            .context("building the receiver's runtime")?;
        let store = Arc::new(Store::default());
        let (grpc_listener, http_listener) = runtime.block_on(async {
            let grpc = TcpListener::bind("127.0.0.1:0").await?;
            let http = TcpListener::bind("127.0.0.1:0").await?;
            anyhow::Ok((grpc, http))
        })?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let traces = TraceServiceServer::new(GrpcService {
            store: store.clone(),
        })
        .max_decoding_message_size(MAX_HTTP_BODY);
        let metrics = MetricsServiceServer::new(GrpcService {
            store: store.clone(),
        })
        .max_decoding_message_size(MAX_HTTP_BODY);
        runtime.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(grpc_listener);
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(traces)
                .add_service(metrics)
                .serve_with_incoming(incoming)
                .await
            {
                eprintln!("[otlp-receiver] gRPC server stopped: {e}");
            }
        });
        let served = store.clone();
        runtime.spawn(http_serve::serve(
            http_listener,
            "otlp-receiver",
            move |req| handle_http(req, served.clone()),
        ));

        Ok(Receiver {
            store,
            grpc_addr,
            http_addr,
            runtime: Some(runtime),
        })
    }

    /// The URL to give the agent's `--otlp-endpoint` for `protocol`.
    pub fn endpoint(&self, protocol: Protocol) -> String {
        match protocol {
            Protocol::Grpc => format!("http://{}", self.grpc_addr),
            Protocol::HttpProtobuf => format!("http://{}/v1/traces", self.http_addr),
        }
    }

    /// The URL of the metrics endpoint for `protocol` (the gRPC one is the
    /// same as for traces).
    pub fn metrics_endpoint(&self, protocol: Protocol) -> String {
        match protocol {
            Protocol::Grpc => format!("http://{}", self.grpc_addr),
            Protocol::HttpProtobuf => format!("http://{}{HTTP_METRICS_PATH}", self.http_addr),
        }
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.lock().spans.clone()
    }

    pub fn stats(&self) -> RequestStats {
        self.store.lock().stats.clone()
    }

    /// Forgets every span, metric and request seen so far.
    pub fn clear(&self) {
        let mut inner = self.store.lock();
        inner.spans.clear();
        inner.resource_metrics.clear();
        inner.points.clear();
        inner.stats = RequestStats::default();
    }

    /// Every ResourceMetrics received so far, as it came.
    pub fn resource_metrics(&self) -> Vec<ResourceMetrics> {
        self.store.lock().resource_metrics.clone()
    }

    /// Every metric data point received so far, in arrival order.
    pub fn all_metric_points(&self) -> Vec<ReceivedPoint> {
        self.store.lock().points.clone()
    }

    /// The data points of the metric `name`, in arrival order (with
    /// cumulative temporality, one per series per export).
    pub fn metric_points(&self, name: &str) -> Vec<ReceivedPoint> {
        points_named(&self.store.lock().points, name)
    }

    /// The last point of each series of the metric `name` (a series: the
    /// resource and the point's attributes), in order of first arrival:
    /// with cumulative temporality, the totals so far.
    pub fn latest_metric_points(&self, name: &str) -> Vec<ReceivedPoint> {
        latest_per_series(&points_named(&self.store.lock().points, name))
    }

    /// The names of the metrics received so far.
    pub fn metric_names(&self) -> BTreeSet<String> {
        self.store
            .lock()
            .points
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// Waits until `predicate` holds for the points of the metric `name`
    /// received so far (in arrival order) and returns them; on timeout, an
    /// error listing the metrics and the points of `name` that did arrive.
    pub fn wait_for_metric(
        &self,
        name: &str,
        timeout: Duration,
        mut predicate: impl FnMut(&[ReceivedPoint]) -> bool,
    ) -> anyhow::Result<Vec<ReceivedPoint>> {
        self.store.wait_until(
            timeout,
            &format!("metric {name}"),
            |inner| {
                let points = points_named(&inner.points, name);
                predicate(&points).then_some(points)
            },
            |inner| inner.describe_metrics(name),
        )
    }

    /// Waits until `predicate` holds for the received spans and returns
    /// them; on timeout, an error that lists what did arrive.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&[ReceivedSpan]) -> bool,
    ) -> anyhow::Result<Vec<ReceivedSpan>> {
        self.store.wait_until(
            timeout,
            "spans",
            |inner| predicate(&inner.spans).then(|| inner.spans.clone()),
            |inner| {
                format!(
                    "received {} span(s) in {} gRPC + {} HTTP request(s), decode errors {:?}:\n{}",
                    inner.spans.len(),
                    inner.stats.grpc_requests,
                    inner.stats.http_requests,
                    inner.stats.errors,
                    dump(&inner.spans)
                )
            },
        )
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct GrpcService {
    store: Arc<Store>,
}

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.store.add(request.get_ref(), Protocol::Grpc);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.store.add_metrics(request.into_inner(), Protocol::Grpc);
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn points_named(points: &[ReceivedPoint], name: &str) -> Vec<ReceivedPoint> {
    points.iter().filter(|p| p.name == name).cloned().collect()
}

fn latest_per_series(points: &[ReceivedPoint]) -> Vec<ReceivedPoint> {
    let mut latest: Vec<ReceivedPoint> = Vec::new();
    for point in points {
        let key = point.series_key();
        match latest.iter_mut().find(|p| p.series_key() == key) {
            Some(slot) => *slot = point.clone(),
            None => latest.push(point.clone()),
        }
    }
    latest
}

async fn handle_http(
    req: Request<Incoming>,
    store: Arc<Store>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, value);
        }
        Ok(response)
    };
    let path = req.uri().path().to_owned();
    if req.method() != hyper::Method::POST {
        store.error(format!("HTTP {} {path}: not a POST", req.method()));
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", Vec::new());
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let content_type = header("content-type");
    let encoding = header("content-encoding");
    if !encoding.is_empty() && encoding != "identity" {
        store.error(format!(
            "HTTP POST {path}: unsupported content-encoding {encoding}"
        ));
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain", Vec::new());
    }
    if !content_type.starts_with("application/x-protobuf") {
        store.error(format!(
            "HTTP POST {path}: unsupported content-type {content_type:?}"
        ));
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain", Vec::new());
    }
    let body = match Limited::new(req.into_body(), MAX_HTTP_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            store.error(format!("HTTP POST {path}: reading the body: {e}"));
            return reply(StatusCode::BAD_REQUEST, "text/plain", Vec::new());
        }
    };
    // Each signal's request is decoded, stored (its path first, so that a
    // test woken by the data finds the path too), and answered with its
    // (empty) response; a body that does not decode is a 400.
    let stored_path = |path| store.lock().stats.http_paths.push(path);
    let metrics = path == HTTP_METRICS_PATH;
    let stored = if metrics {
        ExportMetricsServiceRequest::decode(body).map(|request| {
            stored_path(path.clone());
            store.add_metrics(request, Protocol::HttpProtobuf);
            ExportMetricsServiceResponse {
                partial_success: None,
            }
            .encode_to_vec()
        })
    } else {
        ExportTraceServiceRequest::decode(body).map(|request| {
            stored_path(path.clone());
            store.add(&request, Protocol::HttpProtobuf);
            ExportTraceServiceResponse {
                partial_success: None,
            }
            .encode_to_vec()
        })
    };
    match stored {
        Ok(response) => reply(StatusCode::OK, "application/x-protobuf", response),
        Err(e) => {
            let what = if metrics {
                "decoding metrics"
            } else {
                "decoding"
            };
            store.error(format!("HTTP POST {path}: {what}: {e}"));
            reply(StatusCode::BAD_REQUEST, "text/plain", Vec::new())
        }
    }
}

fn flatten(request: &ExportTraceServiceRequest, transport: Protocol) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            let scope_name = scope_spans
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for span in &scope_spans.spans {
                let kind = SpanKind::try_from(span.kind)
                    .map(|k| k.as_str_name().trim_start_matches("SPAN_KIND_").to_owned())
                    .unwrap_or_else(|_| format!("KIND_{}", span.kind));
                let (status_code, status_message) = match &span.status {
                    Some(status) => (
                        OtlpStatusCode::try_from(status.code)
                            .map(|c| {
                                c.as_str_name()
                                    .trim_start_matches("STATUS_CODE_")
                                    .to_owned()
                            })
                            .unwrap_or_else(|_| format!("CODE_{}", status.code)),
                        status.message.clone(),
                    ),
                    None => ("UNSET".to_owned(), String::new()),
                };
                out.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    name: span.name.clone(),
                    kind,
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                    status_code,
                    status_message,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    transport,
                });
            }
        }
    }
    out
}

pub(crate) fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, AttrValue> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
        .collect()
}

fn value(v: Option<&AnyValue>) -> AttrValue {
    use any_value::Value;
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(Value::BoolValue(b)) => AttrValue::Bool(*b),
        Some(Value::IntValue(i)) => AttrValue::Int(*i),
        Some(Value::DoubleValue(d)) => AttrValue::Double(*d),
        Some(Value::BytesValue(b)) => AttrValue::Bytes(b.clone()),
        Some(Value::ArrayValue(a)) => {
            AttrValue::Array(a.values.iter().map(|v| value(Some(v))).collect())
        }
        Some(Value::KvlistValue(l)) => AttrValue::Map(attributes(&l.values)),
        Some(Value::StringValueStrindex(_)) | None => AttrValue::Empty,
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use opentelemetry_proto::tonic::{
        collector::{
            metrics::v1::metrics_service_client::MetricsServiceClient,
            trace::v1::trace_service_client::TraceServiceClient,
        },
        common::v1::{ArrayValue, InstrumentationScope},
        metrics::v1::{
            AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
            ScopeMetrics, Sum, metric::Data, number_data_point,
        },
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status},
    };

    use super::*;
    use crate::otlp_metrics::{HistogramValue, MetricKind, PointValue, Temporality};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn request(name: &str) -> ExportTraceServiceRequest {
        use any_value::Value;
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("svc".into())),
                        kv("process.pid", Value::IntValue(42)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "tracer".into(),
                        ..Default::default()
                    }),
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                        parent_span_id: Vec::new(),
                        name: name.into(),
                        kind: SpanKind::Server as i32,
                        start_time_unix_nano: 10,
                        end_time_unix_nano: 20,
                        attributes: vec![
                            kv("http.request.method", Value::StringValue("GET".into())),
                            kv("http.response.status_code", Value::IntValue(500)),
                            kv("flag", Value::BoolValue(true)),
                            kv(
                                "list",
                                Value::ArrayValue(ArrayValue {
                                    values: vec![AnyValue {
                                        value: Some(Value::IntValue(1)),
                                    }],
                                }),
                            ),
                        ],
                        status: Some(Status {
                            message: "boom".into(),
                            code: OtlpStatusCode::Error as i32,
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn check(span: &ReceivedSpan, name: &str, transport: Protocol) {
        assert_eq!(span.name, name);
        assert_eq!(span.trace_id, "ab".repeat(16));
        assert_eq!(span.span_id, "0102030405060708");
        assert_eq!(span.parent_span_id, None);
        assert_eq!(span.kind, "SERVER");
        assert_eq!((span.start_ns, span.end_ns), (10, 20));
        assert_eq!(span.attr_str("http.request.method"), Some("GET"));
        assert_eq!(span.attr_int("http.response.status_code"), Some(500));
        assert_eq!(span.attr("flag"), Some(&AttrValue::Bool(true)));
        assert_eq!(
            span.attr("list"),
            Some(&AttrValue::Array(vec![AttrValue::Int(1)]))
        );
        assert_eq!(span.status_code, "ERROR");
        assert_eq!(span.status_message, "boom");
        assert_eq!(span.res_str("service.name"), Some("svc"));
        assert_eq!(span.pid(), Some(42));
        assert_eq!(span.scope_name, "tracer");
        assert_eq!(span.transport, transport);
    }

    #[test]
    fn receives_over_grpc() {
        let receiver = Receiver::start().unwrap();
        let endpoint = receiver.endpoint(Protocol::Grpc);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
            client.export(request("over grpc")).await.unwrap();
        });
        let spans = receiver
            .wait_for(Duration::from_secs(10), |s| !s.is_empty())
            .unwrap();
        assert_eq!(spans.len(), 1);
        check(&spans[0], "over grpc", Protocol::Grpc);
        assert_eq!(receiver.stats().grpc_requests, 1);
        receiver.clear();
        assert!(receiver.spans().is_empty());
    }

    fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    #[test]
    fn receives_over_http_protobuf() {
        let receiver = Receiver::start().unwrap();
        let body = request("over http").encode_to_vec();
        let response = post(
            receiver.http_addr(),
            "/v1/traces",
            "application/x-protobuf",
            &body,
        );
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let spans = receiver
            .wait_for(Duration::from_secs(10), |s| !s.is_empty())
            .unwrap();
        assert_eq!(spans.len(), 1);
        check(&spans[0], "over http", Protocol::HttpProtobuf);
        let stats = receiver.stats();
        assert_eq!(stats.http_requests, 1);
        assert_eq!(stats.http_paths, vec!["/v1/traces".to_owned()]);
    }

    #[test]
    fn rejects_what_it_cannot_decode() {
        let receiver = Receiver::start().unwrap();
        let response = post(
            receiver.http_addr(),
            "/v1/traces",
            "application/json",
            b"{}",
        );
        assert!(response.starts_with("HTTP/1.1 415"), "{response}");
        let response = post(
            receiver.http_addr(),
            "/v1/traces",
            "application/x-protobuf",
            b"\xff\xff\xff",
        );
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        assert_eq!(receiver.stats().errors.len(), 2);
        assert!(receiver.spans().is_empty());
    }

    #[test]
    fn wait_for_times_out_with_a_listing() {
        let receiver = Receiver::start().unwrap();
        let err = receiver
            .wait_for(Duration::from_millis(300), |s| !s.is_empty())
            .unwrap_err();
        assert!(err.to_string().contains("no spans"), "{err}");
    }

    const DURATION: &str = "http.server.request.duration";

    /// One export as the agent would send it: a cumulative duration
    /// histogram that has seen `count` requests, a delta counter of drops,
    /// a gauge.
    fn metrics_request(count: u64) -> ExportMetricsServiceRequest {
        use any_value::Value;
        let histogram = Metric {
            name: DURATION.into(),
            description: "Duration of HTTP server requests.".into(),
            unit: "s".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![
                        kv("http.request.method", Value::StringValue("GET".into())),
                        kv("http.response.status_code", Value::IntValue(500)),
                        kv("http.route", Value::StringValue("/a".into())),
                    ],
                    start_time_unix_nano: 10,
                    time_unix_nano: 20 + count,
                    count,
                    sum: Some(0.25 * count as f64),
                    bucket_counts: vec![1, count - 1, 0],
                    explicit_bounds: vec![0.1, 0.5],
                    min: Some(0.05),
                    max: Some(0.3),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        };
        let dropped = Metric {
            name: "tracer.dropped".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    attributes: vec![kv("reason", Value::StringValue("queue_full".into()))],
                    value: Some(number_data_point::Value::AsInt(7)),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let gauge = Metric {
            name: "tracer.queue.fill".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    value: Some(number_data_point::Value::AsDouble(1.5)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("svc".into())),
                        kv("service.instance.id", Value::StringValue("inst-1".into())),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "tracer".into(),
                        ..Default::default()
                    }),
                    metrics: vec![histogram, dropped, gauge],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn check_points(receiver: &Receiver, count: u64, transport: Protocol) {
        let latest = receiver.latest_metric_points(DURATION);
        assert_eq!(latest.len(), 1, "{}", dump_points(&latest));
        let point = &latest[0];
        assert_eq!(point.kind, MetricKind::Histogram);
        assert_eq!(point.temporality, Some(Temporality::Cumulative));
        assert_eq!(point.unit, "s");
        assert_eq!(point.res_str("service.name"), Some("svc"));
        assert_eq!(point.res_str("service.instance.id"), Some("inst-1"));
        assert_eq!(point.scope_name, "tracer");
        assert_eq!(point.attr_str("http.request.method"), Some("GET"));
        assert_eq!(point.attr_int("http.response.status_code"), Some(500));
        assert_eq!(point.attr_str("http.route"), Some("/a"));
        assert_eq!((point.start_ns, point.time_ns), (10, 20 + count));
        assert_eq!(
            point.histogram(),
            Some(&HistogramValue {
                count,
                sum: Some(0.25 * count as f64),
                bucket_counts: vec![1, count - 1, 0],
                explicit_bounds: vec![0.1, 0.5],
                min: Some(0.05),
                max: Some(0.3),
            })
        );
        assert_eq!(point.transport, transport);

        let dropped = receiver.metric_points("tracer.dropped");
        assert!(!dropped.is_empty());
        let dropped = &dropped[0];
        assert_eq!(dropped.kind, MetricKind::Sum);
        assert_eq!(dropped.temporality, Some(Temporality::Delta));
        assert_eq!(dropped.monotonic, Some(true));
        assert_eq!(dropped.value, PointValue::Int(7));
        assert_eq!(dropped.number(), Some(7.0));
        assert_eq!(dropped.attr_str("reason"), Some("queue_full"));

        let gauge = receiver.metric_points("tracer.queue.fill");
        assert!(!gauge.is_empty());
        assert_eq!(gauge[0].kind, MetricKind::Gauge);
        assert_eq!(gauge[0].temporality, None);
        assert_eq!(gauge[0].number(), Some(1.5));
        assert!(gauge[0].attributes.is_empty());

        assert_eq!(
            receiver.metric_names().into_iter().collect::<Vec<_>>(),
            [DURATION, "tracer.dropped", "tracer.queue.fill"]
        );
    }

    #[test]
    fn receives_metrics_over_grpc_beside_traces() {
        let receiver = Receiver::start().unwrap();
        let endpoint = receiver.metrics_endpoint(Protocol::Grpc);
        assert_eq!(endpoint, receiver.endpoint(Protocol::Grpc));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut metrics = MetricsServiceClient::connect(endpoint.clone())
                .await
                .unwrap();
            metrics.export(metrics_request(3)).await.unwrap();
            metrics.export(metrics_request(5)).await.unwrap();
            let mut traces = TraceServiceClient::connect(endpoint).await.unwrap();
            traces.export(request("beside metrics")).await.unwrap();
        });
        let points = receiver
            .wait_for_metric(DURATION, Duration::from_secs(10), |p| p.len() == 2)
            .unwrap();
        let counts: Vec<u64> = points
            .iter()
            .filter_map(|p| p.histogram().map(|h| h.count))
            .collect();
        assert_eq!(counts, [3, 5], "in arrival order");
        check_points(&receiver, 5, Protocol::Grpc);
        assert_eq!(receiver.resource_metrics().len(), 2);
        assert_eq!(receiver.all_metric_points().len(), 6);

        let spans = receiver
            .wait_for(Duration::from_secs(10), |s| !s.is_empty())
            .unwrap();
        check(&spans[0], "beside metrics", Protocol::Grpc);
        let stats = receiver.stats();
        assert_eq!((stats.grpc_metrics_requests, stats.grpc_requests), (2, 1));

        receiver.clear();
        assert!(receiver.all_metric_points().is_empty());
        assert!(receiver.resource_metrics().is_empty());
    }

    #[test]
    fn receives_metrics_over_http_protobuf_beside_traces() {
        let receiver = Receiver::start().unwrap();
        assert_eq!(
            receiver.metrics_endpoint(Protocol::HttpProtobuf),
            format!("http://{}/v1/metrics", receiver.http_addr())
        );
        let response = post(
            receiver.http_addr(),
            "/v1/metrics",
            "application/x-protobuf",
            &metrics_request(4).encode_to_vec(),
        );
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let response = post(
            receiver.http_addr(),
            "/v1/traces",
            "application/x-protobuf",
            &request("beside metrics").encode_to_vec(),
        );
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");

        receiver
            .wait_for_metric(DURATION, Duration::from_secs(10), |p| !p.is_empty())
            .unwrap();
        check_points(&receiver, 4, Protocol::HttpProtobuf);
        let spans = receiver
            .wait_for(Duration::from_secs(10), |s| !s.is_empty())
            .unwrap();
        assert_eq!(spans.len(), 1);
        check(&spans[0], "beside metrics", Protocol::HttpProtobuf);
        let stats = receiver.stats();
        assert_eq!((stats.http_metrics_requests, stats.http_requests), (1, 1));
        assert_eq!(stats.http_paths, ["/v1/metrics", "/v1/traces"]);
        assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    }

    #[test]
    fn rejects_metrics_it_cannot_decode() {
        let receiver = Receiver::start().unwrap();
        let response = post(
            receiver.http_addr(),
            "/v1/metrics",
            "application/x-protobuf",
            b"\xff\xff\xff",
        );
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        let errors = receiver.stats().errors;
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("decoding metrics"), "{errors:?}");
        assert!(receiver.all_metric_points().is_empty());
    }

    #[test]
    fn wait_for_metric_times_out_with_a_listing() {
        let receiver = Receiver::start().unwrap();
        let response = post(
            receiver.http_addr(),
            "/v1/metrics",
            "application/x-protobuf",
            &metrics_request(2).encode_to_vec(),
        );
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let err = receiver
            .wait_for_metric(
                "http.client.request.duration",
                Duration::from_millis(300),
                |p| !p.is_empty(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("no points"), "{err}");
        assert!(err.contains(DURATION), "lists what did arrive: {err}");
    }
}
