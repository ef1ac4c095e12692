//! OTLP metrics as the receiver (otlp_receiver.rs) keeps them: every data
//! point of an `ExportMetricsServiceRequest` flattened into a
//! [`ReceivedPoint`] with its metric, resource and attributes, so a test
//! asserts on one value instead of walking resource → scope → metric →
//! point.
use std::{collections::BTreeMap, fmt};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    metrics::v1::{
        AggregationTemporality, HistogramDataPoint, NumberDataPoint, metric::Data,
        number_data_point,
    },
};

use crate::otlp_receiver::{AttrValue, Protocol, attributes};

/// Which OTLP data type a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// How successive points of a sum or histogram relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temporality {
    /// Each point covers only its own interval.
    Delta,
    /// Each point covers everything since `start_ns`.
    Cumulative,
    /// Not set (invalid in OTLP, kept so a test can see it).
    Unspecified,
}

impl Temporality {
    fn from_proto(value: i32) -> Temporality {
        match AggregationTemporality::try_from(value) {
            Ok(AggregationTemporality::Delta) => Temporality::Delta,
            Ok(AggregationTemporality::Cumulative) => Temporality::Cumulative,
            Ok(AggregationTemporality::Unspecified) | Err(_) => Temporality::Unspecified,
        }
    }
}

/// An explicit-bucket histogram point.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramValue {
    pub count: u64,
    pub sum: Option<f64>,
    /// One more than `explicit_bounds`: bucket i counts values in
    /// (bounds[i-1], bounds[i]], the last one everything above.
    pub bucket_counts: Vec<u64>,
    pub explicit_bounds: Vec<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The value of one data point.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// A gauge or sum point.
    Int(i64),
    Double(f64),
    Histogram(HistogramValue),
    /// Only the totals: the tracer exports no exponential histograms, a
    /// test needs no more than to see one arrived.
    ExponentialHistogram {
        count: u64,
        sum: Option<f64>,
    },
    Summary {
        count: u64,
        sum: f64,
    },
    /// A number point with no value (invalid in OTLP).
    Empty,
}

/// One received data point with its metric and resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedPoint {
    /// The metric's name, e.g. `http.server.request.duration`.
    pub name: String,
    pub description: String,
    pub unit: String,
    pub kind: MetricKind,
    /// Sums and histograms; `None` for gauges and summaries.
    pub temporality: Option<Temporality>,
    /// Sums only.
    pub monotonic: Option<bool>,
    pub resource: BTreeMap<String, AttrValue>,
    pub scope_name: String,
    pub attributes: BTreeMap<String, AttrValue>,
    pub start_ns: u64,
    pub time_ns: u64,
    pub flags: u32,
    pub value: PointValue,
    /// The transport it arrived on.
    pub transport: Protocol,
}

impl ReceivedPoint {
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

    /// A gauge's or sum's value, integers widened.
    pub fn number(&self) -> Option<f64> {
        match self.value {
            PointValue::Int(i) => Some(i as f64),
            PointValue::Double(d) => Some(d),
            _ => None,
        }
    }

    pub fn histogram(&self) -> Option<&HistogramValue> {
        match &self.value {
            PointValue::Histogram(h) => Some(h),
            _ => None,
        }
    }

    /// What tells one series from another: the resource and the point's
    /// attributes (rendered, since attribute values may be floats).
    pub fn series_key(&self) -> String {
        format!("{:?} {:?}", self.resource, self.attributes)
    }
}

impl fmt::Display for ReceivedPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.name, self.kind)?;
        if let Some(t) = self.temporality {
            write!(f, " {t:?}")?;
        }
        match &self.value {
            PointValue::Int(i) => write!(f, " value={i}")?,
            PointValue::Double(d) => write!(f, " value={d}")?,
            PointValue::Histogram(h) => write!(
                f,
                " count={} sum={:?} buckets={:?} bounds={:?}",
                h.count, h.sum, h.bucket_counts, h.explicit_bounds
            )?,
            PointValue::ExponentialHistogram { count, sum } => {
                write!(f, " count={count} sum={sum:?}")?
            }
            PointValue::Summary { count, sum } => write!(f, " count={count} sum={sum}")?,
            PointValue::Empty => write!(f, " (no value)")?,
        }
        write!(f, " service={:?}", self.res_str("service.name"))?;
        for (k, v) in &self.attributes {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// Renders points one a line, for failure messages.
pub fn dump_points(points: &[ReceivedPoint]) -> String {
    if points.is_empty() {
        return "  (no points)".to_owned();
    }
    points.iter().map(|p| format!("  {p}\n")).collect()
}

/// Every data point of `request`, in order.
pub(crate) fn flatten_metrics(
    request: &ExportMetricsServiceRequest,
    transport: Protocol,
) -> Vec<ReceivedPoint> {
    let mut out = Vec::new();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_metrics
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope_metrics in &resource_metrics.scope_metrics {
            let scope_name = scope_metrics
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for metric in &scope_metrics.metrics {
                let point =
                    |kind, temporality, monotonic, attrs, start_ns, time_ns, flags, value| {
                        ReceivedPoint {
                            name: metric.name.clone(),
                            description: metric.description.clone(),
                            unit: metric.unit.clone(),
                            kind,
                            temporality,
                            monotonic,
                            resource: resource.clone(),
                            scope_name: scope_name.clone(),
                            attributes: attrs,
                            start_ns,
                            time_ns,
                            flags,
                            value,
                            transport,
                        }
                    };
                let number = |p: &NumberDataPoint, kind, temporality, monotonic| {
                    point(
                        kind,
                        temporality,
                        monotonic,
                        attributes(&p.attributes),
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.flags,
                        number_value(p),
                    )
                };
                match &metric.data {
                    Some(Data::Gauge(g)) => out.extend(
                        g.data_points
                            .iter()
                            .map(|p| number(p, MetricKind::Gauge, None, None)),
                    ),
                    Some(Data::Sum(s)) => {
                        let temporality = Temporality::from_proto(s.aggregation_temporality);
                        out.extend(s.data_points.iter().map(|p| {
                            number(p, MetricKind::Sum, Some(temporality), Some(s.is_monotonic))
                        }));
                    }
                    Some(Data::Histogram(h)) => {
                        let temporality = Temporality::from_proto(h.aggregation_temporality);
                        out.extend(h.data_points.iter().map(|p| {
                            point(
                                MetricKind::Histogram,
                                Some(temporality),
                                None,
                                attributes(&p.attributes),
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                p.flags,
                                histogram_value(p),
                            )
                        }));
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        let temporality = Temporality::from_proto(h.aggregation_temporality);
                        out.extend(h.data_points.iter().map(|p| {
                            point(
                                MetricKind::ExponentialHistogram,
                                Some(temporality),
                                None,
                                attributes(&p.attributes),
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                p.flags,
                                PointValue::ExponentialHistogram {
                                    count: p.count,
                                    sum: p.sum,
                                },
                            )
                        }));
                    }
                    Some(Data::Summary(s)) => out.extend(s.data_points.iter().map(|p| {
                        point(
                            MetricKind::Summary,
                            None,
                            None,
                            attributes(&p.attributes),
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                            p.flags,
                            PointValue::Summary {
                                count: p.count,
                                sum: p.sum,
                            },
                        )
                    })),
                    // A metric without data has no points to keep; the raw
                    // ResourceMetrics still has it.
                    None => {}
                }
            }
        }
    }
    out
}

fn number_value(p: &NumberDataPoint) -> PointValue {
    match p.value {
        Some(number_data_point::Value::AsInt(i)) => PointValue::Int(i),
        Some(number_data_point::Value::AsDouble(d)) => PointValue::Double(d),
        None => PointValue::Empty,
    }
}

fn histogram_value(p: &HistogramDataPoint) -> PointValue {
    PointValue::Histogram(HistogramValue {
        count: p.count,
        sum: p.sum,
        bucket_counts: p.bucket_counts.clone(),
        explicit_bounds: p.explicit_bounds.clone(),
        min: p.min,
        max: p.max,
    })
}
