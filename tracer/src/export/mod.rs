//! Span export: the last stage. Finished spans arrive over a bounded queue
//! ([`ExportHandle::try_send`]), are optionally printed as JSON lines
//! (`--stdout`), and are sent over OTLP (gRPC or HTTP/protobuf) and/or to
//! Zipkin (v2 JSON) in batches, one request per process so each carries
//! that process's resource.
//!
//! Every span that does not make it is counted: the caller counts a full
//! queue (`drop_export_queue_full`); this stage counts, per backend, a full
//! pending buffer (`drop_export_buffer_full`, `drop_zipkin_buffer_full`) and
//! batches the backend refused after retries or that were still unsent at
//! shutdown (`drop_export_failed`, `drop_zipkin_export_failed`).
//!
//! Memory stays bounded whatever the backends do: queue_capacity spans in
//! the channel, and per backend max_pending in its buffer and one batch in
//! flight. Each backend has its own buffer, request and retries, so a dead
//! Zipkin never holds up OTLP, nor the other way round.
mod batch;
mod config;
mod convert;
mod exporters;
mod json;
mod otlp;
mod otlp_encode;
mod pending;
mod retry;
mod sender;
mod stdout;
mod task;
mod zipkin;

pub use config::{
    DEFAULT_EXPORT_TIMEOUT, DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT, ExportConfig, OtlpConfig,
    OtlpEnv, ParseProtocolError, Protocol, has_path,
};
pub use convert::scope;
pub use exporters::{ENV_TRACES_EXPORTER, ExportEnv, ExportFlags, SelectError, resolve};
pub use json::span_json;
/// The OTLP request body for one process's spans (also used by the
/// `agent_cost` benchmark).
pub use otlp_encode::request as otlp_request;
pub use task::{ExportHandle, SHUTDOWN_TIMEOUT, spawn};
pub use zipkin::{ZipkinConfig, ZipkinEnv};

#[cfg(test)]
mod tests;
