//! A finished span as the agent hands it to the exporter.
use std::time::SystemTime;

use opentelemetry::{
    KeyValue,
    trace::{SpanKind, Status},
};
use opentelemetry_sdk::Resource;

use super::clock::Clock;
use crate::{context::parent::SpanIdentity, process::ProcessInfo};

/// One finished span with the resource of the process it describes.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// None for a root span.
    pub parent_span_id: Option<[u8; 8]>,
    /// The parent came from another process (a header, or a stitched hop).
    pub parent_is_remote: bool,
    pub sampled: bool,
    /// W3C tracestate carried along from the incoming request, verbatim.
    pub trace_state: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub status: Status,
    pub process: ProcessKey,
    pub resource: Resource,
}

impl SpanRecord {
    /// A span of `process` with the ids `identity` chose; `times` is the
    /// clock and the start and end in kernel ns.
    pub fn new(
        identity: SpanIdentity,
        name: String,
        kind: SpanKind,
        times: (Clock, u64, u64),
        attributes: Vec<KeyValue>,
        status: Status,
        process: &ProcessInfo,
    ) -> Self {
        let (clock, start, end) = times;
        Self {
            trace_id: identity.trace_id,
            span_id: identity.span_id,
            parent_span_id: identity.parent_span_id,
            parent_is_remote: identity.parent_is_remote,
            sampled: identity.sampled,
            trace_state: identity.trace_state,
            name,
            kind,
            start: clock.to_system_time(start),
            end: clock.to_system_time(end),
            attributes,
            status,
            process: process.key,
            resource: process.resource.clone(),
        }
    }
}

/// Identifies the process (and so the resource) a span belongs to: a pid
/// alone is not enough once pids are reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessKey {
    pub pid: u32,
    /// Process start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_ticks: u64,
}
