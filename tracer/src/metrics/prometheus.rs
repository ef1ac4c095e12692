//! The Prometheus view of the aggregation: names and labels translated as
//! the OpenTelemetry Prometheus exporters translate them (dots become
//! underscores, the unit a suffix, `_total` on counters, the resource in
//! `target_info`), encoded in the Prometheus text format by
//! prometheus-client. The agent's own counters go out beside them as
//! `tracer_*`.
use std::{fmt, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet},
    metrics::MetricType,
    registry::{Registry, Unit},
};

use super::{
    Shared, attributes::Instrument, histogram::Histogram, service_graph::Edge, store::Series,
};
use crate::{process::ProcessInfo, stats::Stats};

/// Labels of one series.
type Labels = Vec<(String, String)>;

/// Fetches counters kept elsewhere (the kernel's) into the stats before a
/// scrape reads them.
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

/// A registry that encodes the shared aggregation and the agent's counters
/// on every scrape.
pub fn registry(shared: Shared, stats: Arc<Stats>, refresh: Option<Refresh>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(AgentCollector {
        shared,
        stats,
        refresh,
    }));
    registry
}

/// The text of one scrape.
pub fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

struct AgentCollector {
    shared: Shared,
    stats: Arc<Stats>,
    refresh: Option<Refresh>,
}

impl fmt::Debug for AgentCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCollector").finish_non_exhaustive()
    }
}

impl Collector for AgentCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        // A copy taken under the lock and encoded after it: the pipeline
        // records into the same aggregation and must not wait for a scrape.
        let (processes, edges) = {
            let mut state = self.shared.lock();
            state.store.prune(std::time::SystemTime::now());
            let processes: Vec<Snapshot> = state
                .store
                .processes()
                .map(|p| Snapshot {
                    process: Arc::clone(&p.process),
                    series: p.series().cloned().collect(),
                })
                .collect();
            let edges: Vec<Edge> = state.graph.edges().cloned().collect();
            (processes, edges)
        };
        encode_targets(&mut encoder, &processes)?;
        for instrument in Instrument::ALL {
            encode_instrument(&mut encoder, &processes, instrument)?;
        }
        encode_graph(&mut encoder, &edges)?;
        if let Some(refresh) = &self.refresh {
            refresh();
        }
        let held = processes
            .iter()
            .flat_map(|p| &p.series)
            .filter(|s| s.attrs.is_some())
            .count();
        encode_agent(&mut encoder, &self.stats, held)
    }
}

/// One process's series, copied out of the aggregation for a scrape.
struct Snapshot {
    process: Arc<ProcessInfo>,
    series: Vec<Series>,
}

/// A semantic-convention attribute or instrument name as a Prometheus
/// name (`http.server.request.duration` → `http_server_request_duration`;
/// the encoder adds the unit suffix).
pub fn label_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The labels every series of a process carries, joining it to its
/// `target_info`.
fn process_labels(p: &Snapshot) -> Labels {
    vec![
        ("service_name".to_owned(), p.process.service_name.clone()),
        (
            "service_instance_id".to_owned(),
            p.process.instance_id.clone(),
        ),
    ]
}

fn encode_targets(encoder: &mut DescriptorEncoder<'_>, processes: &[Snapshot]) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        "target",
        "Target metadata: the resource of each traced process",
        None,
        MetricType::Info,
    )?;
    for p in processes {
        let mut labels = process_labels(p);
        for (key, value) in p.process.resource.iter() {
            let name = label_name(key.as_str());
            if !labels.iter().any(|(k, _)| *k == name) {
                labels.push((name, value.to_string()));
            }
        }
        family.encode_info(&labels)?;
    }
    Ok(())
}

fn series_labels(p: &Snapshot, s: &Series) -> Labels {
    let mut labels = process_labels(p);
    match &s.attrs {
        Some(attrs) => labels.extend(
            attrs
                .view()
                .pairs()
                .into_iter()
                .map(|(k, v)| (label_name(k), v.to_string())),
        ),
        None => labels.push(("otel_metric_overflow".to_owned(), "true".to_owned())),
    }
    labels
}

fn encode_instrument(
    encoder: &mut DescriptorEncoder<'_>,
    processes: &[Snapshot],
    instrument: Instrument,
) -> fmt::Result {
    let series: Vec<(Labels, &Series)> = processes
        .iter()
        .flat_map(|p| {
            p.series
                .iter()
                .filter(move |s| s.instrument == instrument)
                .map(move |s| (series_labels(p, s), s))
        })
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    let name = label_name(instrument.duration_name());
    histogram_family(
        encoder,
        &name,
        "Duration of requests, from the request's first byte to the response's last",
        &Unit::Seconds,
        series.iter().map(|(l, s)| (l, &s.duration)),
    )?;
    if let Some((request, response)) = instrument.size_names() {
        histogram_family(
            encoder,
            &label_name(request),
            "Size of request bodies",
            &Unit::Bytes,
            series.iter().map(|(l, s)| (l, &s.request_size)),
        )?;
        histogram_family(
            encoder,
            &label_name(response),
            "Size of response bodies",
            &Unit::Bytes,
            series.iter().map(|(l, s)| (l, &s.response_size)),
        )?;
    }
    Ok(())
}

fn histogram_family<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: &Unit,
    series: impl Iterator<Item = (&'a Labels, &'a Histogram)>,
) -> fmt::Result {
    // The unit is a suffix the encoder adds; names from the conventions
    // carry none (`..._duration` + seconds, `..._size` + bytes).
    let mut family = encoder.encode_descriptor(name, help, Some(unit), MetricType::Histogram)?;
    for (labels, h) in series {
        family
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(h.sum(), h.count(), &h.prometheus_buckets(), None)?;
    }
    Ok(())
}

/// Tempo's service graph metrics.
fn encode_graph(encoder: &mut DescriptorEncoder<'_>, edges: &[Edge]) -> fmt::Result {
    let edges: Vec<(Labels, &Edge)> = edges
        .iter()
        .map(|e| {
            let mut labels = vec![
                ("client".to_owned(), e.client.to_string()),
                ("server".to_owned(), e.server.to_string()),
            ];
            if !e.connection.label().is_empty() {
                labels.push((
                    "connection_type".to_owned(),
                    e.connection.label().to_owned(),
                ));
            }
            (labels, e)
        })
        .collect();
    if edges.is_empty() {
        return Ok(());
    }
    for (name, help, failed) in [
        (
            "traces_service_graph_request",
            "Requests between two services (client and server seen on this host)",
            false,
        ),
        (
            "traces_service_graph_request_failed",
            "Failed requests between two services",
            true,
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, e) in &edges {
            let value = if failed { e.failed } else { e.total };
            family
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
    }
    histogram_family(
        encoder,
        "traces_service_graph_request_server",
        "Duration of requests between two services, as the server saw them",
        &Unit::Seconds,
        edges
            .iter()
            .filter(|(_, e)| e.server_seconds.count() > 0)
            .map(|(l, e)| (l, &e.server_seconds)),
    )?;
    histogram_family(
        encoder,
        "traces_service_graph_request_client",
        "Duration of requests between two services, as the client saw them",
        &Unit::Seconds,
        edges
            .iter()
            .filter(|(_, e)| e.client_seconds.count() > 0)
            .map(|(l, e)| (l, &e.client_seconds)),
    )
}

/// The agent's own counters: `tracer_dropped_total{reason}` for every
/// `drop_*`, `tracer_<name>_total` for the rest.
fn encode_agent(encoder: &mut DescriptorEncoder<'_>, stats: &Stats, held: usize) -> fmt::Result {
    let snapshot = stats.snapshot();
    {
        let mut family = encoder.encode_descriptor(
            "tracer_dropped",
            "Everything the agent dropped, by reason (see the README's counters)",
            None,
            MetricType::Counter,
        )?;
        for (name, value) in &snapshot {
            if let Some(reason) = name.strip_prefix("drop_") {
                let labels = [("reason", reason)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(value, None)?;
            }
        }
    }
    for (name, value) in &snapshot {
        if name.starts_with("drop_") {
            continue;
        }
        let full = format!("tracer_{name}");
        if crate::stats::GAUGES.contains(name) {
            let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
            gauge.set(i64::try_from(*value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(&full, name, None, MetricType::Gauge)?)?;
        } else {
            encoder
                .encode_descriptor(&full, name, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(value, None)?;
        }
    }
    let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    gauge.set(i64::try_from(held).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(
        "tracer_metric_series",
        "Metric series the agent holds now",
        None,
        MetricType::Gauge,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        metrics::fixtures::{ends, exchange, identity, service},
        protocols::http1::Direction,
    };

    #[test]
    fn scrape_has_translated_names_labels_graph_and_agent_counters() {
        let stats = Arc::new(Stats::default());
        let shared = Shared::new(100, stats.clone());
        let mut rec = shared.recorder();
        let ends = ends();
        let back = service(7, "back");
        let front = service(8, "front");
        for (i, status) in [200u16, 200, 500].into_iter().enumerate() {
            let span = i as u64 + 10;
            let client = exchange(Direction::Egress, "/users/1", status);
            rec.http1(&client, &ends, &front, &identity(span, None), 0);
            let server = exchange(Direction::Ingress, &format!("/users/{i}"), status);
            rec.http1(&server, &ends, &back, &identity(span + 100, Some(span)), 0);
        }
        Stats::inc(&stats.drop_ringbuf_full);
        let text = encode(&registry(shared, stats, None)).unwrap();
        for want in [
            "# TYPE http_server_request_duration_seconds histogram",
            "http_server_request_duration_seconds_count{service_name=\"back\",service_instance_id=\"host-a:7\",http_request_method=\"GET\",http_route=\"/users/{id}\",url_scheme=\"http\",network_protocol_version=\"1.1\",http_response_status_code=\"500\",error_type=\"500\"} 1",
            "http_server_request_duration_seconds_bucket{service_name=\"back\",service_instance_id=\"host-a:7\",http_request_method=\"GET\",http_route=\"/users/{id}\",url_scheme=\"http\",network_protocol_version=\"1.1\",http_response_status_code=\"200\",le=\"0.05\"} 2",
            "http_client_request_duration_seconds_count{service_name=\"front\",service_instance_id=\"host-a:8\",http_request_method=\"GET\",url_scheme=\"http\",network_protocol_version=\"1.1\",http_response_status_code=\"200\",server_address=\"back\",server_port=\"8080\"} 2",
            "http_server_response_body_size_bytes_sum{",
            "target_info{service_name=\"back\",service_instance_id=\"host-a:7\",",
            "traces_service_graph_request_total{client=\"front\",server=\"back\"} 3",
            "traces_service_graph_request_failed_total{client=\"front\",server=\"back\"} 1",
            "traces_service_graph_request_server_seconds_count{client=\"front\",server=\"back\"} 3",
            "tracer_dropped_total{reason=\"ringbuf_full\"} 1",
            "tracer_metrics_series_created_total 4",
            "tracer_metric_series 4",
        ] {
            assert!(text.contains(want), "missing {want}\n{text}");
        }
    }
}
