//! SpanRecord → the SDK's SpanData, which the Zipkin mapping reads (OTLP
//! is encoded straight from the records).
//! The ids and timestamps are ours: nothing here generates or samples.
use std::{borrow::Cow, str::FromStr};

use opentelemetry::{
    InstrumentationScope,
    trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::spans::record::SpanRecord;

/// Name of the instrumentation scope every exported span carries.
pub const SCOPE_NAME: &str = "tracer";

pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// A tracestate we cannot parse is dropped rather than failing the span: it
/// came from someone else's request and is only carried along.
pub fn trace_state(raw: Option<&str>) -> TraceState {
    raw.and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default()
}

pub fn to_span_data(record: SpanRecord, scope: &InstrumentationScope) -> SpanData {
    let flags = if record.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let span_context = SpanContext::new(
        TraceId::from_bytes(record.trace_id),
        SpanId::from_bytes(record.span_id),
        flags,
        // The span itself was made here; remoteness is about its parent.
        false,
        trace_state(record.trace_state.as_deref()),
    );
    SpanData {
        span_context,
        parent_span_id: record
            .parent_span_id
            .map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: record.parent_span_id.is_some() && record.parent_is_remote,
        span_kind: record.kind,
        name: Cow::Owned(record.name),
        start_time: record.start,
        end_time: record.end,
        attributes: record.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: record.status,
        instrumentation_scope: scope.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, SystemTime};

    use opentelemetry::{
        KeyValue,
        trace::{SpanKind, Status},
    };
    use opentelemetry_sdk::Resource;

    use super::*;
    use crate::spans::record::ProcessKey;

    /// A span as the span stage would hand it over; tests tweak the fields.
    pub(crate) fn record(pid: u32) -> SpanRecord {
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        SpanRecord {
            trace_id: [0x4b; 16],
            span_id: [0, 1, 2, 3, 4, 5, 6, 7],
            parent_span_id: Some([0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7]),
            parent_is_remote: true,
            sampled: true,
            trace_state: Some("vendor=abc,other=1".to_owned()),
            name: "GET /users/{id}".to_owned(),
            kind: SpanKind::Server,
            start,
            end: start + Duration::from_millis(12),
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", 200_i64),
                KeyValue::new("tracer.test", true),
            ],
            status: Status::Unset,
            process: ProcessKey {
                pid,
                start_ticks: 42,
            },
            resource: Resource::builder_empty()
                .with_service_name(format!("svc-{pid}"))
                .with_attribute(KeyValue::new("process.pid", i64::from(pid)))
                .build(),
        }
    }

    #[test]
    fn ids_parent_and_flags() {
        let r = record(7);
        let d = to_span_data(r.clone(), &scope());
        assert_eq!(d.span_context.trace_id(), TraceId::from_bytes([0x4b; 16]));
        assert_eq!(d.span_context.span_id(), SpanId::from_bytes(r.span_id));
        assert!(d.span_context.is_sampled());
        assert!(!d.span_context.is_remote());
        assert_eq!(d.span_context.trace_state().header(), "vendor=abc,other=1");
        assert_eq!(
            d.parent_span_id,
            SpanId::from_hex("a0a1a2a3a4a5a6a7").unwrap()
        );
        assert!(d.parent_span_is_remote);
        assert_eq!(d.span_kind, SpanKind::Server);
        assert_eq!(d.name, "GET /users/{id}");
        assert_eq!(d.start_time, r.start);
        assert_eq!(d.end_time, r.end);
        assert_eq!(d.attributes, r.attributes);
        assert!(d.events.is_empty() && d.links.is_empty());
        assert_eq!(d.instrumentation_scope.name(), "tracer");
        assert_eq!(
            d.instrumentation_scope.version(),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn root_span_has_invalid_parent_and_is_not_remote() {
        let mut r = record(7);
        r.parent_span_id = None;
        r.sampled = false;
        let d = to_span_data(r, &scope());
        assert_eq!(d.parent_span_id, SpanId::INVALID);
        assert!(!d.parent_span_is_remote);
        assert!(!d.span_context.is_sampled());
    }

    #[test]
    fn status_is_carried() {
        let mut r = record(7);
        r.status = Status::error("HTTP 503");
        let d = to_span_data(r, &scope());
        assert_eq!(d.status, Status::error("HTTP 503"));
    }

    #[test]
    fn invalid_trace_state_is_ignored() {
        let mut r = record(7);
        r.trace_state = Some("not a valid=entry==".to_owned());
        let d = to_span_data(r, &scope());
        assert_eq!(d.span_context.trace_state().header(), "");
        assert_eq!(trace_state(None).header(), "");
    }
}
