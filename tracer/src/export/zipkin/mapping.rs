//! SpanData → Zipkin's v2 JSON span, following OpenTelemetry's "OpenTelemetry
//! to Zipkin Transformation" (specification/trace/sdk_exporters/zipkin.md)
//! and its generic rules for non-OTLP formats.
//!
//! Written here rather than taken from opentelemetry-zipkin 0.33, which was
//! the first choice: that crate never sends `localEndpoint.serviceName` (its
//! exporter ignores `set_resource` and its endpoint model has no service
//! name), never fills `remoteEndpoint`, and sends an all-zero `parentId` for
//! root spans. Zipkin groups and searches spans by service name, so without
//! it every span of every process would be nameless. (The crate is also
//! deprecated upstream.)
//!
//! Not mapped: events (annotations) and links, which our spans never carry,
//! and tracestate, for which the specification has no mapping.
use std::{
    net::IpAddr,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    Key, KeyValue, Value,
    trace::{SpanKind, Status},
};
use opentelemetry_sdk::{Resource, trace::SpanData};
use serde_json::{Map, Value as Json, json};

use crate::export::json::value_json;

/// Used when a resource has no service.name (the SDK's default resource
/// says the same); ours always have one.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

const STATUS_CODE_TAG: &str = "otel.status_code";
/// Zipkin marks a span failed by the presence of this tag, whatever its value.
const ERROR_TAG: &str = "error";

/// The Zipkin service name of every span of this resource.
pub fn service_name(resource: &Resource) -> String {
    resource
        .get(&Key::from_static_str("service.name"))
        .map_or_else(|| UNKNOWN_SERVICE.to_owned(), |v| v.as_str().into_owned())
}

/// The request body: a JSON array of spans, all of one service.
pub fn spans_json(spans: &[SpanData], service_name: &str) -> Json {
    Json::Array(spans.iter().map(|s| span_json(s, service_name)).collect())
}

pub fn span_json(span: &SpanData, service_name: &str) -> Json {
    let mut out = Map::new();
    out.insert(
        "traceId".into(),
        span.span_context.trace_id().to_string().into(),
    );
    out.insert("id".into(), span.span_context.span_id().to_string().into());
    // A root has no parentId at all (an all-zero one is not "no parent").
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        out.insert("parentId".into(), span.parent_span_id.to_string().into());
    }
    if let Some(kind) = kind(&span.span_kind) {
        out.insert("kind".into(), kind.into());
    }
    out.insert("name".into(), span.name.as_ref().into());
    out.insert(
        "timestamp".into(),
        micros_since_epoch(span.start_time).into(),
    );
    out.insert(
        "duration".into(),
        duration_micros(span.start_time, span.end_time).into(),
    );
    out.insert(
        "localEndpoint".into(),
        json!({ "serviceName": service_name }),
    );
    if let Some(remote) = remote_endpoint(&span.span_kind, &span.attributes) {
        out.insert("remoteEndpoint".into(), remote);
    }
    out.insert("tags".into(), Json::Object(tags(span)));
    Json::Object(out)
}

/// INTERNAL has no Zipkin kind: the field is left out.
fn kind(kind: &SpanKind) -> Option<&'static str> {
    match kind {
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Server => Some("SERVER"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    }
}

/// Whole microseconds, rounded down as the specification says; a time
/// before the epoch is a bug upstream and shows as 0.
fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Whole microseconds, but at least 1: Zipkin's API requires a duration of
/// one or more, and rounds shorter ones up itself.
fn duration_micros(start: SystemTime, end: SystemTime) -> u64 {
    let d = end.duration_since(start).unwrap_or(Duration::ZERO);
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The other end of the span's connection.
///
/// The specification ranks peer.service, then server.address, then
/// network.peer.address(+port) for choosing the remote endpoint of CLIENT
/// and PRODUCER spans. Zipkin's endpoint has room for a name and an address
/// at once, so the best-ranked name goes into serviceName and the socket
/// address the kernel saw (network.peer.*) into ipv4/ipv6 and port, or
/// server.address/port when it is an IP and no socket address is known.
///
/// For SERVER and CONSUMER spans server.* names this very process, so only
/// peer.service and network.peer.* (the client's socket) describe the
/// remote end; Zipkin shows that as the caller.
fn remote_endpoint(kind: &SpanKind, attributes: &[KeyValue]) -> Option<Json> {
    let outgoing = match kind {
        SpanKind::Client | SpanKind::Producer => true,
        SpanKind::Server | SpanKind::Consumer => false,
        SpanKind::Internal => return None,
    };
    let attr = |key: &str| attributes.iter().find(|kv| kv.key.as_str() == key);
    let text = |key: &str| attr(key).map(|kv| kv.value.as_str().into_owned());
    let port = |key: &str| match attr(key).map(|kv| &kv.value) {
        Some(Value::I64(p)) => u16::try_from(*p).ok(),
        Some(Value::String(s)) => s.as_str().parse().ok(),
        _ => None,
    };

    let mut endpoint = Map::new();
    let server_address = text("server.address").filter(|_| outgoing);
    let name = text("peer.service").or_else(|| {
        server_address
            .clone()
            .filter(|a| a.parse::<IpAddr>().is_err())
    });
    if let Some(name) = name {
        endpoint.insert("serviceName".into(), name.into());
    }
    let socket = text("network.peer.address")
        .and_then(|a| Some((a.parse::<IpAddr>().ok()?, port("network.peer.port"))));
    let socket = socket.or_else(|| {
        let ip = server_address?.parse::<IpAddr>().ok()?;
        Some((ip, port("server.port")))
    });
    if let Some((ip, port)) = socket {
        let family = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
        endpoint.insert(family.into(), ip.to_string().into());
        if let Some(port) = port {
            endpoint.insert("port".into(), port.into());
        }
    }
    (!endpoint.is_empty()).then_some(Json::Object(endpoint))
}

/// Attributes as strings, then scope and status.
fn tags(span: &SpanData) -> Map<String, Json> {
    let mut tags: Map<String, Json> = span
        .attributes
        .iter()
        // Zipkin takes any `error` tag as "failed": only the status decides.
        .filter(|kv| kv.key.as_str() != ERROR_TAG)
        .map(|kv| (kv.key.to_string(), Json::String(tag_value(&kv.value))))
        .collect();
    let scope = &span.instrumentation_scope;
    // The deprecated otel.library.* keys are still required alongside.
    for key in ["otel.scope.name", "otel.library.name"] {
        tags.insert(key.into(), scope.name().into());
    }
    if let Some(version) = scope.version() {
        for key in ["otel.scope.version", "otel.library.version"] {
            tags.insert(key.into(), version.into());
        }
    }
    if span.dropped_attributes_count > 0 {
        tags.insert(
            "otel.dropped_attributes_count".into(),
            span.dropped_attributes_count.to_string().into(),
        );
    }
    match &span.status {
        Status::Unset => {}
        Status::Ok => {
            tags.insert(STATUS_CODE_TAG.into(), "OK".into());
        }
        Status::Error { description } => {
            tags.insert(STATUS_CODE_TAG.into(), "ERROR".into());
            tags.insert(ERROR_TAG.into(), description.as_ref().into());
        }
    }
    tags
}

/// Zipkin tags are strings: scalars as text (booleans lower case), arrays
/// as a JSON list, as the specification says.
fn tag_value(value: &Value) -> String {
    match value {
        Value::Array(_) => value_json(value).to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use opentelemetry::{
        Array, InstrumentationScope,
        trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState},
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;
    use crate::export::convert::{self, tests::record};

    fn span(kind: SpanKind, attributes: Vec<KeyValue>) -> SpanData {
        let mut r = record(7);
        r.kind = kind;
        r.attributes = attributes;
        convert::to_span_data(r, &convert::scope())
    }

    #[test]
    fn ids_times_kind_and_service() {
        let d = convert::to_span_data(record(7), &convert::scope());
        let v = span_json(&d, "svc-7");
        assert_eq!(v["traceId"], "4b".repeat(16));
        assert_eq!(v["id"], "0001020304050607");
        assert_eq!(v["parentId"], "a0a1a2a3a4a5a6a7");
        assert_eq!(v["kind"], "SERVER");
        assert_eq!(v["name"], "GET /users/{id}");
        // 1_700_000_000_123_456_789 ns, 12 ms long.
        assert_eq!(v["timestamp"], 1_700_000_000_123_456_u64);
        assert_eq!(v["duration"], 12_000);
        assert_eq!(v["localEndpoint"], json!({"serviceName": "svc-7"}));
        assert_eq!(v["tags"]["http.request.method"], "GET");
        assert_eq!(v["tags"]["http.response.status_code"], "200");
        assert_eq!(v["tags"]["tracer.test"], "true");
        assert_eq!(v["tags"]["otel.scope.name"], "tracer");
        assert_eq!(v["tags"]["otel.library.name"], "tracer");
        assert_eq!(v["tags"]["otel.scope.version"], env!("CARGO_PKG_VERSION"));
        assert!(v["tags"].get(STATUS_CODE_TAG).is_none());
        assert!(v["tags"].get(ERROR_TAG).is_none());
        // Nothing Zipkin would default anyway.
        for absent in ["debug", "shared", "annotations"] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn root_internal_and_short_spans() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let d = SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(2),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("work"),
            start_time: start,
            end_time: start + Duration::from_nanos(400),
            attributes: vec![KeyValue::new("error", false)],
            dropped_attributes_count: 3,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Ok,
            instrumentation_scope: InstrumentationScope::builder("x").build(),
        };
        let v = span_json(&d, UNKNOWN_SERVICE);
        assert_eq!(v["traceId"], "00000000000000000000000000000001");
        assert_eq!(v["id"], "0000000000000002");
        assert!(v.get("parentId").is_none());
        assert!(v.get("kind").is_none());
        assert!(v.get("remoteEndpoint").is_none());
        assert_eq!(v["timestamp"], 10_000_000);
        assert_eq!(v["duration"], 1);
        assert_eq!(v["tags"][STATUS_CODE_TAG], "OK");
        // A boolean `error` attribute would mark the span failed in Zipkin.
        assert!(v["tags"].get(ERROR_TAG).is_none());
        assert!(v["tags"].get("otel.scope.version").is_none());
        assert_eq!(v["tags"]["otel.dropped_attributes_count"], "3");
    }

    #[test]
    fn error_status_sets_both_tags() {
        let mut d = span(SpanKind::Server, vec![]);
        d.status = Status::error("HTTP 500");
        let v = span_json(&d, "s");
        assert_eq!(v["tags"][STATUS_CODE_TAG], "ERROR");
        assert_eq!(v["tags"][ERROR_TAG], "HTTP 500");

        d.status = Status::error("");
        let v = span_json(&d, "s");
        assert_eq!(v["tags"][ERROR_TAG], "");
    }

    #[test]
    fn tag_values_are_strings() {
        let d = span(
            SpanKind::Client,
            vec![
                KeyValue::new("f", 0.5),
                KeyValue::new("b", false),
                KeyValue::new("i", -3_i64),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec!["a\"b".into(), "c".into()])),
                ),
                KeyValue::new("ints", Value::Array(Array::I64(vec![1, 2]))),
            ],
        );
        let tags = &span_json(&d, "s")["tags"];
        assert_eq!(tags["f"], "0.5");
        assert_eq!(tags["b"], "false");
        assert_eq!(tags["i"], "-3");
        assert_eq!(tags["list"], r#"["a\"b","c"]"#);
        assert_eq!(tags["ints"], "[1,2]");
    }

    #[test]
    fn client_remote_is_the_server() {
        let socket = vec![
            KeyValue::new("server.address", "api.example.com"),
            KeyValue::new("server.port", 443_i64),
            KeyValue::new("network.peer.address", "10.0.0.5"),
            KeyValue::new("network.peer.port", 8443_i64),
        ];
        let v = span_json(&span(SpanKind::Client, socket.clone()), "s");
        assert_eq!(
            v["remoteEndpoint"],
            json!({"serviceName": "api.example.com", "ipv4": "10.0.0.5", "port": 8443})
        );

        let mut with_peer = socket;
        with_peer.push(KeyValue::new("peer.service", "billing"));
        let v = span_json(&span(SpanKind::Producer, with_peer), "s");
        assert_eq!(v["remoteEndpoint"]["serviceName"], "billing");

        // An IP in server.address is an address, not a name.
        let ip_only = vec![
            KeyValue::new("server.address", "::1"),
            KeyValue::new("server.port", 8080_i64),
        ];
        let v = span_json(&span(SpanKind::Client, ip_only), "s");
        assert_eq!(v["remoteEndpoint"], json!({"ipv6": "::1", "port": 8080}));
    }

    #[test]
    fn server_remote_is_the_client_socket() {
        let attrs = vec![
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", 8080_i64),
            KeyValue::new("network.peer.address", "127.0.0.1"),
            KeyValue::new("network.peer.port", 51000_i64),
        ];
        let v = span_json(&span(SpanKind::Server, attrs), "s");
        assert_eq!(
            v["remoteEndpoint"],
            json!({"ipv4": "127.0.0.1", "port": 51000})
        );
        // Only its own address known: no remote endpoint.
        let own = vec![KeyValue::new("server.address", "localhost")];
        let v = span_json(&span(SpanKind::Server, own), "s");
        assert!(v.get("remoteEndpoint").is_none());
    }

    #[test]
    fn service_name_from_the_resource() {
        let r = record(3);
        assert_eq!(service_name(&r.resource), "svc-3");
        assert_eq!(
            service_name(&Resource::builder_empty().build()),
            UNKNOWN_SERVICE
        );
        let d = convert::to_span_data(r, &convert::scope());
        let body = spans_json(std::slice::from_ref(&d), "svc-3");
        assert_eq!(body.as_array().map(Vec::len), Some(1));
        assert_eq!(body[0]["localEndpoint"]["serviceName"], "svc-3");
    }
}
