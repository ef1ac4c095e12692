//! Collecting a message head across chunks and parsing it with httparse.

use super::ParseError;
use super::message::{RequestHead, ResponseHead, Version};

/// Bytes of a head received so far. Kept per direction and reused, so a
/// connection allocates it once; it never holds more than the head limit.
#[derive(Debug, Default)]
pub(super) struct HeadBuffer {
    buf: Vec<u8>,
    /// Where the search for the blank line resumes, so that a head arriving
    /// a byte at a time is still scanned once.
    scanned: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Push {
    /// The head ends after `used` bytes of the input.
    Complete { used: usize },
    /// All `used` input bytes were taken and the head goes on.
    Partial { used: usize },
    /// The head reached `max` bytes without ending; `used` bytes were taken.
    TooLarge { used: usize },
}

impl Push {
    pub(super) const fn used(self) -> usize {
        match self {
            Self::Complete { used } | Self::Partial { used } | Self::TooLarge { used } => used,
        }
    }
}

/// Allocations above this are released after each head: a single huge head
/// should not pin memory for the connection's lifetime.
const KEEP_CAPACITY: usize = 4 * 1024;

impl HeadBuffer {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }

    /// Appends input up to the end of the head, or up to `max` bytes in all.
    pub(super) fn push(&mut self, input: &[u8], max: usize) -> Push {
        let old_len = self.buf.len();
        let take = input.len().min(max.saturating_sub(old_len));
        // Exact reservations keep the buffer within the limit, not within
        // twice the limit as doubling growth would.
        self.buf.reserve_exact(take);
        self.buf.extend_from_slice(&input[..take]);
        if let Some(end) = head_end(&self.buf, self.scanned) {
            self.buf.truncate(end);
            self.scanned = end;
            return Push::Complete {
                used: end - old_len,
            };
        }
        self.scanned = self.buf.len();
        if self.buf.len() >= max {
            Push::TooLarge { used: take }
        } else {
            Push::Partial { used: take }
        }
    }
}

/// The length of the head: through the first empty line, CRLF or bare LF
/// (httparse accepts both), looking for a `\n` at or after `from`. Line
/// ends are found with memchr's vectorised search rather than byte by byte.
pub(super) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf.get(from..)?)
        .map(|i| from + i)
        .find(|&i| match i {
            0 => true,
            1 => buf[0] == b'\n' || buf[0] == b'\r',
            _ => buf[i - 1] == b'\n' || (buf[i - 1] == b'\r' && buf[i - 2] == b'\n'),
        })
        .map(|i| i + 1)
}

/// Most header fields one head may have; `Limits::max_headers` may lower it.
pub(super) const MAX_HEADERS: usize = 256;

/// Header slots on the stack, left uninitialised: a zeroed (or heap)
/// array per parsed head cost more than the parse.
fn header_slots() -> [std::mem::MaybeUninit<httparse::Header<'static>>; MAX_HEADERS] {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS]
}

pub(super) fn parse_request(buf: &[u8], max_headers: usize) -> Result<RequestHead, ParseError> {
    let mut slots = header_slots();
    let slots = &mut slots[..max_headers.min(MAX_HEADERS)];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ParseError::Malformed),
        Err(e) => return Err(map_error(e)),
    }
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(ParseError::Malformed);
    };
    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version_of(version)?,
        headers: owned_headers(request.headers),
    })
}

pub(super) fn parse_response(buf: &[u8], max_headers: usize) -> Result<ResponseHead, ParseError> {
    let mut slots = header_slots();
    let slots = &mut slots[..max_headers.min(MAX_HEADERS)];
    let mut response = httparse::Response::new(&mut []);
    // Servers in the wild fold lines and put spaces before colons; clients
    // tolerate both, so the tracer does too.
    let parsed = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .parse_response_with_uninit_headers(&mut response, buf, slots);
    match parsed {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ParseError::Malformed),
        Err(e) => return Err(map_error(e)),
    }
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(ParseError::Malformed);
    };
    Ok(ResponseHead {
        status,
        version: version_of(version)?,
        headers: owned_headers(response.headers),
    })
}

/// The status line alone, for a response whose head cannot be parsed whole.
pub(super) fn parse_status_line(buf: &[u8]) -> Option<ResponseHead> {
    let rest = buf.strip_prefix(b"HTTP/1.")?;
    let version = version_of(rest.first()?.wrapping_sub(b'0')).ok()?;
    let digits = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    Some(ResponseHead {
        status,
        version,
        headers: Vec::new(),
    })
}

fn version_of(minor: u8) -> Result<Version, ParseError> {
    match minor {
        0 => Ok(Version::Http10),
        1 => Ok(Version::Http11),
        _ => Err(ParseError::Malformed),
    }
}

fn map_error(e: httparse::Error) -> ParseError {
    match e {
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        _ => ParseError::Malformed,
    }
}

/// Header fields the agent uses: message framing, span attributes and trace
/// context. Everything else (Authorization, cookies, ...) is dropped here,
/// so it is never held, let alone exported, and costs no allocation.
const KEPT_HEADERS: &[&str] = &[
    "host",
    "user-agent",
    "content-length",
    "transfer-encoding",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
];

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(&'static str, String)> {
    headers
        .iter()
        .take_while(|h| !h.name.is_empty())
        .filter_map(|h| {
            // The name is the table's own: no copy to lowercase it.
            let &name = KEPT_HEADERS
                .iter()
                .find(|k| h.name.eq_ignore_ascii_case(k))?;
            Some((name, String::from_utf8_lossy(h.value).trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_head_end_crlf_and_lf() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\nA: b\n\nbody", 0), Some(21));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
    }

    #[test]
    fn push_byte_by_byte() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut buf = HeadBuffer::default();
        for (i, b) in head.iter().enumerate() {
            match buf.push(std::slice::from_ref(b), 1024) {
                Push::Partial { used: 1 } => {}
                Push::Complete { used: 1 } => {
                    assert_eq!(i, head.len() - 3);
                    assert_eq!(buf.bytes(), &head[..head.len() - 2]);
                    return;
                }
                other => panic!("{other:?} at {i}"),
            }
        }
        panic!("head never completed");
    }

    #[test]
    fn push_stops_at_head_end_and_limit() {
        let mut buf = HeadBuffer::default();
        assert_eq!(
            buf.push(b"GET / HTTP/1.1\r\n\r\nGET /next", 1024),
            Push::Complete { used: 18 }
        );
        let mut buf = HeadBuffer::default();
        assert_eq!(
            buf.push(b"GET / HTTP/1.1\r\nX: 1234567890\r\n", 20),
            Push::TooLarge { used: 20 }
        );
        assert_eq!(buf.len(), 20);
        assert!(buf.capacity() <= 20);
    }

    #[test]
    fn parses_request_head() {
        let head = parse_request(
            b"GET /search?q=a%20b HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nTracestate: caf\xe9 \r\nAuthorization: Bearer x\r\n\r\n",
            8,
        )
        .unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/search?q=a%20b");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.header("host"), Some("example.com"));
        assert_eq!(head.header("user-agent"), Some("curl/8.5.0"));
        assert_eq!(head.header("tracestate"), Some("caf\u{fffd}"));
        assert_eq!(
            head.header("authorization"),
            None,
            "credentials are never kept"
        );
        assert_eq!(head.headers.len(), 3);
    }

    #[test]
    fn parses_response_head() {
        let head = parse_response(
            b"HTTP/1.0 404 Not Found\r\nServer: SimpleHTTP/0.6 Python/3.12.3\r\nContent-Length: 3\r\n\r\n",
            8,
        )
        .unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(head.version, Version::Http10);
        assert_eq!(head.header("content-length"), Some("3"));
        assert_eq!(head.header("server"), None);
    }

    #[test]
    fn header_count_limit() {
        let head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(parse_request(head, 2), Err(ParseError::TooManyHeaders));
        assert!(parse_request(head, 3).is_ok());
        let head = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(parse_response(head, 1), Err(ParseError::TooManyHeaders));
    }

    #[test]
    fn malformed_heads() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 8),
            Err(ParseError::Malformed)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/2.0\r\n\r\n", 8),
            Err(ParseError::Malformed)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 20 OK\r\n\r\n", 8),
            Err(ParseError::Malformed)
        );
    }

    #[test]
    fn status_line_alone() {
        let head = parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\nSet-Cookie: a").unwrap();
        assert_eq!((head.status, head.version), (503, Version::Http11));
        assert!(head.headers.is_empty());
        assert_eq!(parse_status_line(b"HTTP/1.1 50"), None);
        assert_eq!(parse_status_line(b"HTTP/1.2 500"), None);
    }
}
