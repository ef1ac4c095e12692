//! Spans: what one process saw of one request, with semantic-convention
//! attributes and the process's resource.
pub mod bounded;
pub mod clock;
pub mod http;
pub mod http2;
pub mod ids;
pub mod record;
pub mod redact;
pub mod route;
pub mod rpc;
