//! OTLP metrics: every interval, the aggregation becomes one
//! `ExportMetricsServiceRequest` (one ResourceMetrics per traced process,
//! plus the agent's own resource for the service graph), sent over gRPC or
//! HTTP/protobuf. Built straight from our histograms with the
//! opentelemetry-proto types: the SDK's metric data types cannot be built
//! outside the SDK, and its instruments would aggregate everything twice.
//!
//! Cumulative temporality sends totals since each series began; delta sends
//! what changed since the last export. A failed export is not retried:
//! cumulative totals catch up at the next one, and the data points of a
//! failed delta export are counted as dropped.
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use opentelemetry_proto::tonic::{
    collector::metrics::v1::{
        ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient,
    },
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, Histogram as PbHistogram, HistogramDataPoint, Metric,
        NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
    },
    resource::v1::Resource,
};
use prost::Message as _;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

use super::{
    Shared, State,
    attributes::{AttrValue, Instrument},
    config::{OtlpMetricsConfig, Temporality},
    histogram::Histogram,
    store::Series,
};
use crate::{export::Protocol, stats::Stats};

const SCOPE: &str = "tracer";

/// Stops the exporter after one last export.
#[derive(Debug)]
pub struct ExportHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ExportHandle {
    /// Sends what was aggregated since the last export, waiting at most
    /// `limit`.
    pub async fn shutdown(self, limit: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(limit, self.task).await.is_err() {
            log::warn!("the last metrics export did not finish within {limit:?}");
        }
    }
}

enum Transport {
    Grpc(MetricsServiceClient<Channel>),
    Http(reqwest::Client),
}

/// Starts the exporter; must run inside a tokio runtime. An unreachable
/// backend is not an error here, only a reason to count failed exports.
pub fn spawn(
    config: OtlpMetricsConfig,
    shared: Shared,
    stats: Arc<Stats>,
    host_name: String,
) -> anyhow::Result<ExportHandle> {
    // Neither transport is built with TLS (as for spans): say so now rather
    // than fail every export.
    if config
        .endpoint
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("https://")
    {
        anyhow::bail!(
            "OTLP metrics endpoint {:?}: https is not supported (the agent is built without TLS)",
            config.endpoint
        );
    }
    let transport = match config.protocol {
        Protocol::Grpc => {
            let channel = Channel::from_shared(config.endpoint.clone())
                .with_context(|| format!("bad OTLP metrics endpoint {:?}", config.endpoint))?
                .timeout(config.timeout)
                .connect_lazy();
            Transport::Grpc(MetricsServiceClient::new(channel))
        }
        Protocol::HttpProtobuf => {
            let _: reqwest::Url = config
                .endpoint
                .parse()
                .with_context(|| format!("bad OTLP metrics endpoint {:?}", config.endpoint))?;
            Transport::Http(
                reqwest::Client::builder()
                    .timeout(config.timeout)
                    .build()
                    .context("cannot build the HTTP client for OTLP metrics")?,
            )
        }
    };
    log::info!(
        "exporting metrics over OTLP/{} {} every {:?} ({:?} temporality)",
        config.protocol,
        config.endpoint,
        config.interval,
        config.temporality
    );
    let (stop, mut stopped) = oneshot::channel();
    let mut exporter = Exporter {
        config,
        transport,
        shared,
        stats,
        host_name,
        last: SystemTime::now(),
    };
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(exporter.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => exporter.export().await,
                _ = &mut stopped => {
                    exporter.export().await;
                    return;
                }
            }
        }
    });
    Ok(ExportHandle { stop, task })
}

struct Exporter {
    config: OtlpMetricsConfig,
    transport: Transport,
    shared: Shared,
    stats: Arc<Stats>,
    host_name: String,
    /// When the previous export was built (a delta's start).
    last: SystemTime,
}

impl Exporter {
    async fn export(&mut self) {
        let now = SystemTime::now();
        let request = {
            let mut state = self.shared.lock();
            state.store.prune(now);
            build_request(
                &mut state,
                self.config.temporality,
                self.last,
                now,
                &self.host_name,
            )
        };
        self.last = now;
        let points = count_points(&request);
        if points == 0 {
            return;
        }
        let result = match &mut self.transport {
            Transport::Grpc(client) => client
                .export(request)
                .await
                .map(|_| ())
                .map_err(|status| format!("{}: {}", status.code(), status.message())),
            Transport::Http(client) => send_http(client, &self.config.endpoint, &request).await,
        };
        match result {
            Ok(()) => Stats::add(&self.stats.metric_points_exported, points),
            Err(e) => {
                Stats::inc(&self.stats.metrics_export_errors);
                if self.config.temporality == Temporality::Delta {
                    Stats::add(&self.stats.drop_metric_points_export_failed, points);
                }
                log::warn!(
                    "OTLP metrics export to {} failed: {e}",
                    self.config.endpoint
                );
            }
        }
    }
}

async fn send_http(
    client: &reqwest::Client,
    endpoint: &str,
    request: &ExportMetricsServiceRequest,
) -> Result<(), String> {
    let response = client
        .post(endpoint)
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.status()))
    }
}

fn count_points(request: &ExportMetricsServiceRequest) -> u64 {
    let points = |m: &Metric| match &m.data {
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        _ => 0,
    };
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(points)
        .sum::<usize>() as u64
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn any(value: &opentelemetry::Value) -> any_value::Value {
    match value {
        opentelemetry::Value::Bool(b) => any_value::Value::BoolValue(*b),
        opentelemetry::Value::I64(i) => any_value::Value::IntValue(*i),
        opentelemetry::Value::F64(f) => any_value::Value::DoubleValue(*f),
        other => any_value::Value::StringValue(other.to_string()),
    }
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: SCOPE.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    })
}

/// The request for this export; in delta mode it also remembers what it
/// sent, so the next delta starts from here.
pub fn build_request(
    state: &mut State,
    temporality: Temporality,
    last: SystemTime,
    now: SystemTime,
    host_name: &str,
) -> ExportMetricsServiceRequest {
    let mut resource_metrics = Vec::new();
    for p in state.store.processes_mut() {
        let attributes = p
            .process
            .resource
            .iter()
            .map(|(k, v)| kv(k.as_str(), any(v)))
            .collect();
        let mut metrics = Vec::new();
        let mut points: [[Vec<HistogramDataPoint>; 3]; 4] = Default::default();
        for series in p.series_mut() {
            let [duration, request, response] = series_points(series, temporality, last, now);
            let slot = &mut points[series.instrument.index()];
            slot[0].push(duration);
            slot[1].push(request);
            slot[2].push(response);
        }
        for instrument in Instrument::ALL {
            let [duration, request, response] = std::mem::take(&mut points[instrument.index()]);
            if duration.is_empty() {
                continue;
            }
            metrics.push(histogram(
                instrument.duration_name(),
                "Duration of requests, from the request's first byte to the response's last",
                "s",
                duration,
                temporality,
            ));
            if let Some((req_name, resp_name)) = instrument.size_names() {
                metrics.push(histogram(
                    req_name,
                    "Size of request bodies",
                    "By",
                    request,
                    temporality,
                ));
                metrics.push(histogram(
                    resp_name,
                    "Size of response bodies",
                    "By",
                    response,
                    temporality,
                ));
            }
        }
        if metrics.is_empty() {
            continue;
        }
        resource_metrics.push(ResourceMetrics {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    if let Some(graph) = graph_metrics(state, temporality, last, now) {
        resource_metrics.push(ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        any_value::Value::StringValue(SCOPE.to_owned()),
                    ),
                    kv(
                        "host.name",
                        any_value::Value::StringValue(host_name.to_owned()),
                    ),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: graph,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest { resource_metrics }
}

fn series_points(
    series: &mut Series,
    temporality: Temporality,
    last: SystemTime,
    now: SystemTime,
) -> [HistogramDataPoint; 3] {
    let attributes: Vec<KeyValue> = match &series.attrs {
        Some(attrs) => attrs
            .view()
            .pairs()
            .into_iter()
            .map(|(k, v)| match v {
                AttrValue::Str(s) => kv(k, any_value::Value::StringValue(s)),
                AttrValue::Int(i) => kv(k, any_value::Value::IntValue(i)),
            })
            .collect(),
        None => vec![kv(
            "otel.metric.overflow",
            any_value::Value::BoolValue(true),
        )],
    };
    let current = [
        &series.duration,
        &series.request_size,
        &series.response_size,
    ];
    match temporality {
        Temporality::Cumulative => {
            current.map(|h| histogram_point(h, attributes.clone(), series.start, now))
        }
        Temporality::Delta => {
            let start = last.max(series.start);
            let points = match &series.exported {
                Some(before) => [
                    current[0].since(&before[0]),
                    current[1].since(&before[1]),
                    current[2].since(&before[2]),
                ]
                .map(|h| histogram_point(&h, attributes.clone(), start, now)),
                None => current.map(|h| histogram_point(h, attributes.clone(), start, now)),
            };
            series.exported = Some(Box::new(current.map(Histogram::clone)));
            points
        }
    }
}

fn histogram_point(
    h: &Histogram,
    attributes: Vec<KeyValue>,
    start: SystemTime,
    now: SystemTime,
) -> HistogramDataPoint {
    let (min, max) = h.min_max().unzip();
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: nanos(start),
        time_unix_nano: nanos(now),
        count: h.count(),
        sum: Some(h.sum()),
        bucket_counts: h.counts().to_vec(),
        explicit_bounds: h.bounds().to_vec(),
        min,
        max,
        ..Default::default()
    }
}

fn temporality_value(t: Temporality) -> i32 {
    match t {
        Temporality::Cumulative => AggregationTemporality::Cumulative as i32,
        Temporality::Delta => AggregationTemporality::Delta as i32,
    }
}

fn histogram(
    name: &str,
    description: &str,
    unit: &str,
    data_points: Vec<HistogramDataPoint>,
    temporality: Temporality,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(Data::Histogram(PbHistogram {
            data_points,
            aggregation_temporality: temporality_value(temporality),
        })),
        ..Default::default()
    }
}

fn sum(
    name: &str,
    description: &str,
    data_points: Vec<NumberDataPoint>,
    temporality: Temporality,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: "1".to_owned(),
        data: Some(Data::Sum(Sum {
            data_points,
            aggregation_temporality: temporality_value(temporality),
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

/// The service graph under the agent's resource, with Tempo's names.
fn graph_metrics(
    state: &mut State,
    temporality: Temporality,
    last: SystemTime,
    now: SystemTime,
) -> Option<Vec<Metric>> {
    let (mut total, mut failed, mut server, mut client) = (vec![], vec![], vec![], vec![]);
    for edge in state.graph.edges_mut() {
        let mut attributes = vec![
            kv(
                "client",
                any_value::Value::StringValue(edge.client.to_string()),
            ),
            kv(
                "server",
                any_value::Value::StringValue(edge.server.to_string()),
            ),
        ];
        if !edge.connection.label().is_empty() {
            attributes.push(kv(
                "connection_type",
                any_value::Value::StringValue(edge.connection.label().to_owned()),
            ));
        }
        let (start, t, f, s, c) = match (temporality, &edge.exported) {
            (Temporality::Delta, Some(before)) => (
                last.max(edge.start),
                edge.total - before.total,
                edge.failed - before.failed,
                edge.server_seconds.since(&before.server_seconds),
                edge.client_seconds.since(&before.client_seconds),
            ),
            _ => (
                match temporality {
                    Temporality::Delta => last.max(edge.start),
                    Temporality::Cumulative => edge.start,
                },
                edge.total,
                edge.failed,
                edge.server_seconds.clone(),
                edge.client_seconds.clone(),
            ),
        };
        if temporality == Temporality::Delta {
            edge.exported = Some(Box::new(super::service_graph::Exported {
                total: edge.total,
                failed: edge.failed,
                server_seconds: edge.server_seconds.clone(),
                client_seconds: edge.client_seconds.clone(),
            }));
        }
        let number = |value: u64| NumberDataPoint {
            attributes: attributes.clone(),
            start_time_unix_nano: nanos(start),
            time_unix_nano: nanos(now),
            value: Some(number_data_point::Value::AsInt(
                i64::try_from(value).unwrap_or(i64::MAX),
            )),
            ..Default::default()
        };
        total.push(number(t));
        failed.push(number(f));
        server.push(histogram_point(&s, attributes.clone(), start, now));
        client.push(histogram_point(&c, attributes, start, now));
    }
    if total.is_empty() {
        return None;
    }
    Some(vec![
        sum(
            "traces_service_graph_request_total",
            "Requests between two services",
            total,
            temporality,
        ),
        sum(
            "traces_service_graph_request_failed_total",
            "Failed requests between two services",
            failed,
            temporality,
        ),
        histogram(
            "traces_service_graph_request_server_seconds",
            "Duration of requests between two services, as the server saw them",
            "s",
            server,
            temporality,
        ),
        histogram(
            "traces_service_graph_request_client_seconds",
            "Duration of requests between two services, as the client saw them",
            "s",
            client,
            temporality,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        metrics::fixtures::{ends, exchange, identity, service},
        protocols::http1::Direction,
    };

    fn config(endpoint: &str, temporality: Temporality) -> OtlpMetricsConfig {
        OtlpMetricsConfig {
            endpoint: endpoint.to_owned(),
            protocol: Protocol::HttpProtobuf,
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
            temporality,
        }
    }

    #[test]
    fn https_is_refused_at_start() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let shared = Shared::new(10, Arc::new(Stats::default()));
        let _guard = rt.enter();
        let err = spawn(
            config("https://collector:4318/v1/metrics", Temporality::Cumulative),
            shared,
            Arc::new(Stats::default()),
            "h".into(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("https is not supported"), "{err}");
    }

    fn record(shared: &Shared, n: usize) {
        let mut rec = shared.recorder();
        let process = service(3, "api");
        let ex = exchange(Direction::Ingress, "/a/1", 200);
        for _ in 0..n {
            rec.http1(&ex, &ends(), &process, &identity(2, None), 0);
        }
    }

    fn counts(request: &ExportMetricsServiceRequest, name: &str) -> Vec<(u64, i32)> {
        request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter(|m| m.name == name)
            .filter_map(|m| match &m.data {
                Some(Data::Histogram(h)) => Some(
                    h.data_points
                        .iter()
                        .map(|p| (p.count, h.aggregation_temporality))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn delta_sends_what_changed_and_cumulative_the_totals() {
        let (t0, t1, t2) = (
            SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            SystemTime::UNIX_EPOCH + Duration::from_secs(20),
            SystemTime::UNIX_EPOCH + Duration::from_secs(30),
        );
        let name = "http.server.request.duration";
        let delta = AggregationTemporality::Delta as i32;
        let cumulative = AggregationTemporality::Cumulative as i32;
        let shared = Shared::new(10, Arc::new(Stats::default()));
        record(&shared, 3);
        let first = build_request(&mut shared.lock(), Temporality::Delta, t0, t1, "h");
        assert_eq!(counts(&first, name), vec![(3, delta)]);
        record(&shared, 2);
        let second = build_request(&mut shared.lock(), Temporality::Delta, t1, t2, "h");
        assert_eq!(counts(&second, name), vec![(2, delta)]);
        // The agent's own resource carries the service graph (a root
        // request is an edge from `user`).
        let graph = second
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == "traces_service_graph_request_total")
            .expect("the service graph");
        match &graph.data {
            Some(Data::Sum(s)) => {
                assert!(s.is_monotonic);
                assert_eq!(
                    s.data_points[0].value,
                    Some(number_data_point::Value::AsInt(2))
                );
            }
            other => panic!("{other:?}"),
        }

        let shared = Shared::new(10, Arc::new(Stats::default()));
        record(&shared, 3);
        let _ = build_request(&mut shared.lock(), Temporality::Cumulative, t0, t1, "h");
        record(&shared, 2);
        let second = build_request(&mut shared.lock(), Temporality::Cumulative, t1, t2, "h");
        assert_eq!(counts(&second, name), vec![(5, cumulative)]);
    }
}
