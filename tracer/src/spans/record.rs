//! A finished span as the agent hands it to the exporter.
use std::time::SystemTime;

use opentelemetry::{
    KeyValue,
    trace::{SpanKind, Status},
};
use opentelemetry_sdk::Resource;

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

/// Identifies the process (and so the resource) a span belongs to: a pid
/// alone is not enough once pids are reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessKey {
    pub pid: u32,
    /// Process start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_ticks: u64,
}
