//! One process's spans as the protobuf bytes of an OTLP
//! `ExportTraceServiceRequest`, written straight from the agent's own span
//! records: no intermediate opentelemetry-proto structs, so no copy of
//! every name, key and value into Strings that are dropped right after
//! (that took about two fifths of the agent's CPU under load), and no SDK
//! SpanData either (moving each record into one, a few hundred bytes, and
//! dropping it was about a tenth of the exporter's work).
//!
//! The result decodes to exactly what opentelemetry-proto's own transform
//! gives for the same spans made SpanData by `convert::to_span_data`
//! (tested below). Span events and links are not written: the agent's
//! spans have none.
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value, trace::SpanKind, trace::Status};
use opentelemetry_sdk::Resource;
use prost::encoding::{
    WireType::{self, LengthDelimited, SixtyFourBit, ThirtyTwoBit, Varint},
    encoded_len_varint, key_len,
};

use super::convert;
use crate::spans::record::SpanRecord;

/// `Span.flags`: the span's trace flags, plus "whether the parent is
/// remote is known", plus "it is" (as the SDK's transform sets them).
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// The request for `spans`, all of the process `resource` describes and of
/// the instrumentation scope `scope`.
pub fn request(resource: &Resource, scope: &InstrumentationScope, spans: &[SpanRecord]) -> Bytes {
    let resource_len = resource_len(resource);
    let scope_len = scope_len(scope);
    // What precedes the spans holds lengths that depend on them, so room
    // is left for it, its two unknown lengths at their widest.
    let room =
        2 * (key_len(1) + MAX_LEN_VARINT) + field_len(1, resource_len) + field_len(1, scope_len);
    let mut buf = Vec::with_capacity(room + spans.len() * SPAN_BYTES_GUESS);
    buf.resize(room, 0);
    // Each span is written once, in place: its length prefix is given the
    // width most spans need and moved in the rare case it needs another.
    // Measuring a span before writing it walked its attributes twice.
    for span in spans {
        // None for most spans: no allocation. One that does not parse is
        // left out, as the SDK's conversion leaves it.
        let trace_state = span
            .trace_state
            .as_deref()
            .map(|raw| convert::trace_state(Some(raw)).header())
            .unwrap_or_default();
        key(&mut buf, 2, LengthDelimited);
        let prefix = buf.len();
        buf.extend_from_slice(&[0; SPAN_LEN_WIDTH]);
        write_span(&mut buf, span, &trace_state);
        let len = buf.len() - prefix - SPAN_LEN_WIDTH;
        set_length(&mut buf, prefix, len);
    }
    let spans_len = buf.len() - room;
    let scope_schema_url = scope.schema_url().unwrap_or_default();
    string_field(&mut buf, 3, scope_schema_url);
    let schema_url = resource.schema_url().unwrap_or_default();
    string_field(&mut buf, 3, schema_url);

    let scope_spans_len =
        field_len(1, scope_len) + spans_len + string_field_len(3, scope_schema_url);
    let resource_spans_len = field_len(1, resource_len)
        + field_len(2, scope_spans_len)
        + string_field_len(3, schema_url);
    let mut head = Vec::with_capacity(room);
    len_key(&mut head, 1, resource_spans_len);
    len_key(&mut head, 1, resource_len);
    for kv in resource.iter() {
        key_value(&mut head, 1, kv.0.as_str(), kv.1);
    }
    len_key(&mut head, 2, scope_spans_len);
    len_key(&mut head, 1, scope_len);
    write_scope(&mut head, scope);
    let start = room - head.len();
    buf[start..room].copy_from_slice(&head);
    Bytes::from(buf).slice(start..)
}

/// About what one of the agent's HTTP spans takes, encoded.
const SPAN_BYTES_GUESS: usize = 512;

/// The width of a span's length prefix before the span is written: spans
/// of 128 bytes to 16 KiB, which the agent's are.
const SPAN_LEN_WIDTH: usize = 2;

/// Writes `len` as the varint at `buf[at..at + SPAN_LEN_WIDTH]`, moving what
/// follows when it takes another width.
fn set_length(buf: &mut Vec<u8>, at: usize, len: usize) {
    let mut bytes = [0u8; 10];
    let mut v = len as u64;
    let mut n = 0;
    while v >= 0x80 {
        bytes[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    bytes[n] = v as u8;
    let bytes = &bytes[..=n];
    if bytes.len() == SPAN_LEN_WIDTH {
        buf[at..at + SPAN_LEN_WIDTH].copy_from_slice(bytes);
    } else {
        buf.splice(at..at + SPAN_LEN_WIDTH, bytes.iter().copied());
    }
}

/// The widest varint a length can take here: a request stays far below
/// 4 GiB (its spans are bounded by the batch size).
const MAX_LEN_VARINT: usize = 5;

fn resource_len(resource: &Resource) -> usize {
    resource
        .iter()
        .map(|(k, v)| field_len(1, key_value_len(k.as_str(), v)))
        .sum()
}

fn scope_len(scope: &InstrumentationScope) -> usize {
    string_field_len(1, scope.name())
        + string_field_len(2, scope.version().unwrap_or_default())
        + scope
            .attributes()
            .map(|kv| field_len(3, kv_len(kv)))
            .sum::<usize>()
}

fn write_scope(buf: &mut Vec<u8>, scope: &InstrumentationScope) {
    string_field(buf, 1, scope.name());
    string_field(buf, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        key_value(buf, 3, kv.key.as_str(), &kv.value);
    }
}

fn write_span(buf: &mut Vec<u8>, span: &SpanRecord, trace_state: &str) {
    bytes_field(buf, 1, &span.trace_id);
    bytes_field(buf, 2, &span.span_id);
    string_field(buf, 3, trace_state);
    // An all-zero parent is none, as the SDK's SpanId::INVALID.
    let parent = span.parent_span_id.filter(|p| *p != [0; 8]);
    if let Some(parent) = &parent {
        bytes_field(buf, 4, parent);
    }
    let mut flags = u32::from(span.sampled) | FLAG_HAS_IS_REMOTE;
    if span.parent_span_id.is_some() && span.parent_is_remote {
        flags |= FLAG_IS_REMOTE;
    }
    key(buf, 16, ThirtyTwoBit);
    buf.extend_from_slice(&flags.to_le_bytes());
    string_field(buf, 5, &span.name);
    key(buf, 6, Varint);
    varint(kind(&span.kind), buf);
    key(buf, 7, SixtyFourBit);
    buf.extend_from_slice(&nanos(span.start).to_le_bytes());
    key(buf, 8, SixtyFourBit);
    buf.extend_from_slice(&nanos(span.end).to_le_bytes());
    for kv in &span.attributes {
        key_value(buf, 9, kv.key.as_str(), &kv.value);
    }
    len_key(buf, 15, status_len(&span.status));
    let (code, message) = status(&span.status);
    string_field(buf, 2, message);
    if code != 0 {
        key(buf, 3, Varint);
        varint(code, buf);
    }
}

/// `Status.code` and `Status.message`.
fn status(status: &Status) -> (u64, &str) {
    match status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description),
    }
}

fn status_len(s: &Status) -> usize {
    let (code, message) = status(s);
    string_field_len(2, message) + if code != 0 { key_len(3) + 1 } else { 0 }
}

/// `Span.SpanKind`.
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn kv_len(kv: &KeyValue) -> usize {
    key_value_len(kv.key.as_str(), &kv.value)
}

fn key_value_len(k: &str, v: &Value) -> usize {
    string_field_len(1, k) + field_len(2, any_value_len(v))
}

fn key_value(buf: &mut Vec<u8>, tag: u32, k: &str, v: &Value) {
    let value_len = any_value_len(v);
    len_key(buf, tag, string_field_len(1, k) + field_len(2, value_len));
    string_field(buf, 1, k);
    len_key(buf, 2, value_len);
    any_value(buf, v);
}

/// The body of an `AnyValue`: its oneof is written even when it holds a
/// default value.
fn any_value_len(v: &Value) -> usize {
    match v {
        Value::Bool(_) => key_len(2) + 1,
        Value::I64(i) => key_len(3) + encoded_len_varint(*i as u64),
        Value::F64(_) => key_len(4) + 8,
        Value::String(s) => field_len(1, s.as_str().len()),
        Value::Array(a) => field_len(5, array_len(a)),
        // A kind of value added to the API after this was written: sent as
        // its string form rather than lost.
        other => field_len(1, other.as_str().len()),
    }
}

fn any_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Bool(b) => {
            key(buf, 2, Varint);
            buf.push(u8::from(*b));
        }
        Value::I64(i) => {
            key(buf, 3, Varint);
            varint(*i as u64, buf);
        }
        Value::F64(f) => {
            key(buf, 4, SixtyFourBit);
            buf.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => string_always(buf, 1, s.as_str()),
        Value::Array(a) => {
            len_key(buf, 5, array_len(a));
            array(buf, a);
        }
        other => string_always(buf, 1, &other.as_str()),
    }
}

/// The body of an `ArrayValue`: each element an `AnyValue` (field 1).
fn array_len(a: &Array) -> usize {
    fn each<T>(items: &[T], f: impl Fn(&T) -> usize) -> usize {
        items.iter().map(|i| field_len(1, f(i))).sum()
    }
    match a {
        Array::Bool(v) => each(v, |_| key_len(2) + 1),
        Array::I64(v) => each(v, |i| key_len(3) + encoded_len_varint(*i as u64)),
        Array::F64(v) => each(v, |_| key_len(4) + 8),
        Array::String(v) => each(v, |s| field_len(1, s.as_str().len())),
        _ => 0,
    }
}

fn array(buf: &mut Vec<u8>, a: &Array) {
    match a {
        Array::Bool(v) => v.iter().for_each(|b| any_value_item(buf, &Value::Bool(*b))),
        Array::I64(v) => v.iter().for_each(|i| any_value_item(buf, &Value::I64(*i))),
        Array::F64(v) => v.iter().for_each(|f| any_value_item(buf, &Value::F64(*f))),
        Array::String(v) => v.iter().for_each(|s| {
            len_key(buf, 1, field_len(1, s.as_str().len()));
            string_always(buf, 1, s.as_str());
        }),
        _ => {}
    }
}

fn any_value_item(buf: &mut Vec<u8>, v: &Value) {
    len_key(buf, 1, any_value_len(v));
    any_value(buf, v);
}

/// A length-delimited field of `n` bytes, key and length included.
fn field_len(tag: u32, n: usize) -> usize {
    key_len(tag) + encoded_len_varint(n as u64) + n
}

/// A string field, left out when empty (proto3).
fn string_field_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        field_len(tag, s.len())
    }
}

fn key(buf: &mut Vec<u8>, tag: u32, wire: WireType) {
    varint(u64::from(tag << 3 | wire as u32), buf);
}

/// A varint, inlined: almost every one written here (keys, lengths of
/// names and values) takes a single byte, and a call to prost's general
/// encoder for each was a sixth of encoding.
#[inline(always)]
fn varint(mut v: u64, buf: &mut Vec<u8>) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn len_key(buf: &mut Vec<u8>, tag: u32, n: usize) {
    key(buf, tag, LengthDelimited);
    varint(n as u64, buf);
}

fn string_field(buf: &mut Vec<u8>, tag: u32, s: &str) {
    if !s.is_empty() {
        string_always(buf, tag, s);
    }
}

fn string_always(buf: &mut Vec<u8>, tag: u32, s: &str) {
    len_key(buf, tag, s.len());
    buf.extend_from_slice(s.as_bytes());
}

fn bytes_field(buf: &mut Vec<u8>, tag: u32, b: &[u8]) {
    len_key(buf, tag, b.len());
    buf.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use opentelemetry::{KeyValue, StringValue};
    use opentelemetry_proto::{
        tonic::collector::trace::v1::ExportTraceServiceRequest,
        transform::trace::tonic::group_spans_by_resource_and_scope,
    };
    use prost::Message as _;

    use super::*;
    use crate::export::convert::{self, tests::record};

    /// What opentelemetry-proto's own transform makes of the same spans,
    /// made the SDK's SpanData as the SDK's exporters would be given them.
    fn reference(resource: &Resource, spans: &[SpanRecord]) -> ExportTraceServiceRequest {
        let scope = convert::scope();
        let data = spans
            .iter()
            .map(|r| convert::to_span_data(r.clone(), &scope))
            .collect();
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(data, &resource.into()),
        }
    }

    fn spans() -> Vec<SpanRecord> {
        let plain = record(7);
        let mut odd = plain.clone();
        odd.trace_id = [0xab; 16];
        odd.span_id = [0xcd; 8];
        odd.sampled = false;
        odd.trace_state = Some("vendor=opaque,other=x".to_owned());
        odd.parent_span_id = None;
        odd.parent_is_remote = false;
        odd.kind = SpanKind::Client;
        odd.status = Status::error("HTTP 503");
        odd.name = String::new();
        odd.start = UNIX_EPOCH;
        odd.attributes = vec![
            KeyValue::new("b", true),
            KeyValue::new("f", false),
            KeyValue::new("i", -1_i64),
            KeyValue::new("z", 0_i64),
            KeyValue::new("big", i64::MAX),
            KeyValue::new("d", 0.25),
            KeyValue::new("empty", ""),
            KeyValue::new("long", "x".repeat(300)),
            KeyValue::new("ints", Value::Array(vec![1_i64, -2, 0].into())),
            KeyValue::new(
                "strs",
                Value::Array(vec![StringValue::from("a"), StringValue::from("")].into()),
            ),
            KeyValue::new("bools", Value::Array(vec![true, false].into())),
            KeyValue::new("dbls", Value::Array(vec![1.5, 0.0].into())),
            KeyValue::new("none", Value::Array(Vec::<i64>::new().into())),
        ];
        let mut ok = plain.clone();
        ok.status = Status::Ok;
        ok.parent_is_remote = false;
        ok.kind = SpanKind::Internal;
        // A tracestate that does not parse is dropped, not sent verbatim;
        // an all-zero parent is no parent, though said remote.
        let mut bad_state = plain.clone();
        bad_state.trace_state = Some("not a tracestate ===".to_owned());
        bad_state.parent_span_id = Some([0; 8]);
        vec![plain, odd, ok, bad_state]
    }

    #[test]
    fn decodes_to_what_the_sdk_transform_makes() {
        let resource = record(7).resource;
        let spans = spans();
        let bytes = request(&resource, &convert::scope(), &spans);
        let ours = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        assert_eq!(ours, reference(&resource, &spans));
        let sent = &ours.resource_spans[0].scope_spans[0].spans;
        assert_eq!(sent[1].trace_state, "vendor=opaque,other=x");
        assert_eq!(sent[3].trace_state, "");
    }

    /// Lengths of every width the room before the spans must hold (a
    /// request of a few bytes up to one over a megabyte), and spans whose
    /// own length prefix is narrower (under 128 bytes) or wider (16 KiB and
    /// more) than the one reserved.
    #[test]
    fn large_requests_decode_too() {
        let resource = record(7).resource;
        let mut tiny = spans().remove(0);
        tiny.attributes.clear();
        tiny.name = String::new();
        tiny.trace_state = None;
        let mut huge = tiny.clone();
        huge.attributes = vec![KeyValue::new("big", "y".repeat(20_000))];
        for n in [1, 100, 3000] {
            let mut spans: Vec<SpanRecord> = spans().into_iter().cycle().take(n).collect();
            spans.insert(n / 2, tiny.clone());
            spans.insert(n / 3, huge.clone());
            let bytes = request(&resource, &convert::scope(), &spans);
            let ours = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
            assert_eq!(ours, reference(&resource, &spans), "{n} spans");
        }
    }

    #[test]
    fn a_resource_with_a_schema_url_and_no_spans() {
        let resource = Resource::builder_empty()
            .with_schema_url([KeyValue::new("service.name", "svc")], "https://s/1.0")
            .build();
        let scope = InstrumentationScope::builder("lib")
            .with_schema_url("https://s/2.0")
            .with_attributes([KeyValue::new("k", 1_i64)])
            .build();
        let bytes = request(&resource, &scope, &[]);
        let ours = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        let rs = &ours.resource_spans[0];
        assert_eq!(rs.schema_url, "https://s/1.0");
        let ss = &rs.scope_spans[0];
        assert!(ss.spans.is_empty());
        assert_eq!(ss.schema_url, "https://s/2.0");
        let decoded_scope = ss.scope.as_ref().unwrap();
        assert_eq!(decoded_scope.name, "lib");
        assert_eq!(decoded_scope.attributes.len(), 1);
    }

    #[test]
    fn requests_do_not_depend_on_earlier_ones() {
        let resource = record(7).resource;
        let all = spans();
        let first = request(&resource, &convert::scope(), &all);
        let second = request(&resource, &convert::scope(), &all[..1]);
        let third = request(&resource, &convert::scope(), &all);
        assert_eq!(first, third);
        let decoded = ExportTraceServiceRequest::decode(&second[..]).unwrap();
        assert_eq!(decoded, reference(&resource, &all[..1]));
    }
}
