use thiserror::Error;

/// Why some of a connection's HTTP/2 traffic did not become exchanges.
///
/// Fieldless so that callers can keep one counter per variant. Every
/// variant but `TooManyStreams` and `StreamAbandoned` ends the parsing of
/// its connection: the
/// HPACK state of a direction depends on every header block before, so
/// once one is lost nothing later can be decoded with confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum Http2Error {
    /// A frame header fell into bytes that were not captured: where the
    /// following frames start is unknown.
    #[error("HTTP/2 framing lost in uncaptured bytes")]
    Desync,
    /// A header block was not captured in full, was larger than the limit,
    /// or did not decode: the header compression state is unknown.
    #[error("HTTP/2 header block lost or undecodable")]
    HeaderBlock,
    /// Bytes a conforming peer would not send (a bad frame header, a
    /// CONTINUATION out of place, padding longer than its frame).
    #[error("malformed HTTP/2 frame")]
    Malformed,
    /// HTTP/2 frames on a connection whose start was not seen: the header
    /// compression state is unknown, so it is ignored.
    #[error("HTTP/2 connection already running when tracing began")]
    MidConnection,
    /// More open streams than the limit: the new stream is not followed.
    #[error("too many open HTTP/2 streams on one connection")]
    TooManyStreams,
    /// A stream whose request was seen but whose end will not be, because
    /// its connection was given up.
    #[error("HTTP/2 stream lost with its connection")]
    StreamAbandoned,
}
