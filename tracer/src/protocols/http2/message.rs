//! What the parser produces: one exchange per stream.
use super::{Direction, headers};

/// A request's pseudo-header fields and the few regular fields kept (see
/// [`headers::KEPT_REQUEST`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Names lowercase, pseudo-headers (`:method`, `:path`, ...) included.
    /// Shared: the stream's start and its exchange both carry them.
    pub headers: std::sync::Arc<headers::Fields>,
}

impl Request {
    /// The first value of a field; `name` must be lowercase.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        headers::get(&self.headers, name)
    }

    #[must_use]
    pub fn method(&self) -> &str {
        self.header(":method").unwrap_or("")
    }

    /// The `:path`, query included; empty when absent (CONNECT).
    #[must_use]
    pub fn path(&self) -> &str {
        self.header(":path").unwrap_or("")
    }
}

/// The final response's header fields, and its trailers when it had any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `:status`; `None` when it was missing or not a number.
    pub status: Option<u16>,
    pub headers: headers::Fields,
    pub trailers: headers::Fields,
}

impl Response {
    /// A field from the trailers, else from the headers (gRPC puts
    /// `grpc-status` in the trailers, or in the headers of a response that
    /// has no body).
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        headers::get(&self.trailers, name).or_else(|| headers::get(&self.headers, name))
    }
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The response ended its stream.
    Complete,
    /// RST_STREAM ended it, from either end, with this error code (`None`
    /// when the code was not captured).
    Reset { error_code: Option<u32> },
    /// The server's GOAWAY said it never processed the stream.
    Refused,
    /// The connection closed before the stream ended.
    ConnectionClosed,
}

/// A stream whose request headers were just read, reported before the
/// stream ends: the moment its span's identity can be chosen, while the
/// other end of a connection on this host has yet to see the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub stream_id: u32,
    /// As in [`Exchange::request_direction`].
    pub request_direction: Direction,
    /// The request as the stream's [`Exchange`] will carry it.
    pub request: Request,
    /// As in [`Exchange::request_start`].
    pub request_start: u64,
}

/// One stream: a request and what answered it.
///
/// Timestamps are ns as the traced process saw the bytes: a frame starts at
/// its first chunk's `ts_end` if read and `ts_start` if written, and ends at
/// its last chunk's `ts_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub stream_id: u32,
    /// Which way the request travelled: [`Direction::Ingress`] means the
    /// process served it, [`Direction::Egress`] that it sent it.
    pub request_direction: Direction,
    pub request: Request,
    /// The final response (interim 1xx responses are skipped).
    pub response: Option<Response>,
    /// The request's first HEADERS frame.
    pub request_start: u64,
    /// The last request frame seen.
    pub request_end: u64,
    /// The final response's HEADERS frame; the end time when there was none.
    pub response_start: u64,
    /// The frame that ended the stream (END_STREAM or RST_STREAM), or the
    /// close.
    pub response_end: u64,
    /// DATA bytes less padding.
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    pub outcome: Outcome,
}
