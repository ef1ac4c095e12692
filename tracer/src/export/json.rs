//! The `--stdout` line format: one JSON object per span, close to OTLP/JSON
//! but flat and with the resource inline so each line stands alone.
use opentelemetry::{
    Array, Value,
    trace::{SpanKind, Status},
};
use opentelemetry_sdk::Resource;
use serde_json::{Map, Value as Json, json};

use crate::spans::record::SpanRecord;

pub fn span_json(record: &SpanRecord) -> Json {
    json!({
        "trace_id": hex(&record.trace_id),
        "span_id": hex(&record.span_id),
        "parent_span_id": record.parent_span_id.as_ref().map(|p| hex(p)),
        "name": record.name,
        "kind": kind_name(&record.kind),
        "start_time_unix_nano": unix_nanos(record.start),
        "end_time_unix_nano": unix_nanos(record.end),
        "attributes": Json::Object(
            record.attributes.iter().map(|kv| (kv.key.to_string(), value_json(&kv.value))).collect()
        ),
        "status": status_json(&record.status),
        "resource": resource_json(&record.resource),
        "trace_state": record.trace_state,
    })
}

/// Appends `record` as one line (with its newline) to `out`.
pub fn write_line(out: &mut Vec<u8>, record: &SpanRecord) {
    // Serialising a serde_json::Value into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &span_json(record)).is_ok() {
        out.push(b'\n');
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "CLIENT",
        SpanKind::Server => "SERVER",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

/// Nanoseconds fit in u64 until 2554; a time before the epoch is a bug
/// upstream and shows as 0 rather than aborting the line.
fn unix_nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn status_json(status: &Status) -> Json {
    match status {
        Status::Unset => json!({"code": "UNSET", "message": null}),
        Status::Ok => json!({"code": "OK", "message": null}),
        Status::Error { description } => json!({"code": "ERROR", "message": description}),
    }
}

fn resource_json(resource: &Resource) -> Json {
    let attributes: Map<String, Json> = resource
        .iter()
        .map(|(k, v)| (k.to_string(), value_json(v)))
        .collect();
    Json::Object(attributes)
}

pub(super) fn value_json(value: &Value) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(i) => Json::from(*i),
        // NaN and infinities have no JSON number: they become null.
        Value::F64(f) => Json::from(*f),
        Value::String(s) => Json::String(s.as_str().to_owned()),
        Value::Array(Array::Bool(v)) => Json::from(v.clone()),
        Value::Array(Array::I64(v)) => Json::from(v.clone()),
        Value::Array(Array::F64(v)) => Json::Array(v.iter().map(|f| Json::from(*f)).collect()),
        Value::Array(Array::String(v)) => Json::Array(
            v.iter()
                .map(|s| Json::String(s.as_str().to_owned()))
                .collect(),
        ),
        // Both enums are non-exhaustive; a new kind still prints as text.
        other => Json::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::KeyValue;

    use super::*;
    use crate::export::convert::tests::record;

    #[test]
    fn line_shape() {
        let mut r = record(9);
        r.attributes
            .push(KeyValue::new("list", Value::Array(Array::I64(vec![1, 2]))));
        r.attributes.push(KeyValue::new("ratio", 0.5));
        let mut out = Vec::new();
        write_line(&mut out, &r);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(out.last(), Some(&b'\n'));

        let v: Json = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["trace_id"], "4b".repeat(16));
        assert_eq!(v["span_id"], "0001020304050607");
        assert_eq!(v["parent_span_id"], "a0a1a2a3a4a5a6a7");
        assert_eq!(v["name"], "GET /users/{id}");
        assert_eq!(v["kind"], "SERVER");
        assert_eq!(v["start_time_unix_nano"], 1_700_000_000_123_456_789_u64);
        assert_eq!(v["end_time_unix_nano"], 1_700_000_000_135_456_789_u64);
        assert_eq!(v["attributes"]["http.request.method"], "GET");
        assert_eq!(v["attributes"]["http.response.status_code"], 200);
        assert!(v["attributes"]["http.response.status_code"].is_i64());
        assert_eq!(v["attributes"]["tracer.test"], true);
        assert_eq!(v["attributes"]["list"], json!([1, 2]));
        assert_eq!(v["attributes"]["ratio"], 0.5);
        assert_eq!(v["status"], json!({"code": "UNSET", "message": null}));
        assert_eq!(v["resource"]["service.name"], "svc-9");
        assert_eq!(v["resource"]["process.pid"], 9);
        assert_eq!(v["trace_state"], "vendor=abc,other=1");
    }

    #[test]
    fn root_and_error() {
        let mut r = record(9);
        r.parent_span_id = None;
        r.trace_state = None;
        r.kind = SpanKind::Client;
        r.status = Status::error("connection reset");
        let v = span_json(&r);
        assert!(v["parent_span_id"].is_null());
        assert!(v["trace_state"].is_null());
        assert_eq!(v["kind"], "CLIENT");
        assert_eq!(
            v["status"],
            json!({"code": "ERROR", "message": "connection reset"})
        );
    }
}
