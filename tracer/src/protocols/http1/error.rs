use thiserror::Error;

/// Why some of a connection's traffic did not become an [`Exchange`].
///
/// Fieldless so that callers can keep one counter per variant.
///
/// [`Exchange`]: super::Exchange
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum ParseError {
    /// A message head continued into bytes that were not captured.
    #[error("HTTP/1 message head cut off by the capture limit")]
    HeadTruncated,
    /// Bytes that should have been a message head, a chunk-size line or a
    /// header value that HTTP/1 does not allow.
    #[error("malformed HTTP/1 message")]
    Malformed,
    /// More header fields than [`Limits::max_headers`](super::Limits).
    #[error("HTTP/1 message head has too many header fields")]
    TooManyHeaders,
    /// A head longer than [`Limits::max_head_bytes`](super::Limits).
    #[error("HTTP/1 message head larger than the limit")]
    HeadTooLarge,
    /// More requests awaiting a response than
    /// [`Limits::max_pending`](super::Limits); the oldest was dropped.
    #[error("too many HTTP/1 requests awaiting a response, oldest dropped")]
    PipelineOverflow,
    /// A response arrived with no request waiting for it (tracing started
    /// mid-connection, or its request was lost); it was dropped.
    #[error("HTTP/1 response with no request to answer")]
    UnexpectedResponse,
}

impl ParseError {
    /// Every variant, for callers that pre-register one counter each.
    pub const ALL: [Self; 6] = [
        Self::HeadTruncated,
        Self::Malformed,
        Self::TooManyHeaders,
        Self::HeadTooLarge,
        Self::PipelineOverflow,
        Self::UnexpectedResponse,
    ];

    /// A stable snake_case name, usable as a metric label.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::HeadTruncated => "head_truncated",
            Self::Malformed => "malformed",
            Self::TooManyHeaders => "too_many_headers",
            Self::HeadTooLarge => "head_too_large",
            Self::PipelineOverflow => "pipeline_overflow",
            Self::UnexpectedResponse => "unexpected_response",
        }
    }
}
