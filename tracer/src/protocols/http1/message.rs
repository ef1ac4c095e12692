use super::Direction;

/// HTTP/1 minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl Version {
    /// The version as written on the wire, e.g. `HTTP/1.1`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

/// A request line and its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// As sent (methods are case-sensitive).
    pub method: String,
    /// The raw request-target, query included.
    pub target: String,
    pub version: Version,
    /// In order; only the fields the agent uses, named as in
    /// `head::KEPT_HEADERS` (lowercase), values trimmed and decoded as lossy
    /// UTF-8.
    pub headers: Vec<(&'static str, String)>,
}

impl RequestHead {
    /// The first value of a header field; `name` must be lowercase.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A status line and its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub version: Version,
    /// In order; only the fields the agent uses, named as in
    /// `head::KEPT_HEADERS`, values trimmed and decoded as lossy UTF-8.
    /// Empty when only the status line could be read
    /// ([`Outcome::ResponseLost`]).
    pub headers: Vec<(&'static str, String)>,
}

impl ResponseHead {
    /// The first value of a header field; `name` must be lowercase.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The final response was read to its end (or to the end the fallbacks
    /// described in the module docs chose).
    Complete,
    /// The connection closed before the response was complete: `response` is
    /// `None` if its head had not been read, else the body was cut short.
    ConnectionClosed,
    /// The response started but its head could not be read (cut by the
    /// capture limit, too large, malformed): `response` holds the status line
    /// alone when that much was read, else `None`. Its body was not followed.
    ResponseLost,
}

/// A request and what answered it.
///
/// Timestamps are ns as the traced process saw the bytes (see the module
/// docs): a message starts at its first chunk's `ts_end` if read and
/// `ts_start` if written, and ends at its last chunk's `ts_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Which way the request travelled: [`Direction::Ingress`] means the
    /// process served it, [`Direction::Egress`] that it sent it.
    pub request_direction: Direction,
    pub request: RequestHead,
    /// The final response (interim 1xx responses are skipped).
    pub response: Option<ResponseHead>,
    /// First byte of the request.
    pub request_start: u64,
    /// Last byte of the request seen by the time the exchange finished.
    pub request_end: u64,
    /// First byte of the final response; the close time when there was none.
    pub response_start: u64,
    /// Last byte of the final response; the close time when there was none.
    pub response_end: u64,
    /// Body bytes after transfer decoding (see the module docs for chunked
    /// bodies whose framing was lost).
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    pub outcome: Outcome,
}
