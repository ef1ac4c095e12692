//! Span export: the last stage. Finished spans arrive over a bounded queue
//! ([`ExportHandle::try_send`]), are optionally printed as JSON lines
//! (`--stdout`), and are sent over OTLP (gRPC or HTTP/protobuf) in batches,
//! one request per process so each carries that process's resource.
//!
//! Every span that does not make it is counted: the caller counts a full
//! queue (`drop_export_queue_full`); this stage counts a full pending buffer
//! (`drop_export_buffer_full`) and batches the backend refused after retries
//! or that were still unsent at shutdown (`drop_export_failed`).
//!
//! Memory stays bounded whatever the backend does: queue_capacity spans in
//! the channel, max_pending in the buffer, and one batch in flight.
mod batch;
mod config;
mod convert;
mod json;
mod otlp;
mod pending;
mod retry;
mod sender;
mod stdout;
mod task;

pub use config::{
    DEFAULT_EXPORT_TIMEOUT, DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT, ExportConfig, OtlpConfig,
    OtlpEnv, ParseProtocolError, Protocol,
};
pub use convert::to_span_data;
pub use json::span_json;
pub use task::{ExportHandle, SHUTDOWN_TIMEOUT, spawn};

#[cfg(test)]
mod tests;
