//! Byte-exact checks of what the kernel wrote into a request stream: the
//! bytes a client sent against the bytes the server received, which may
//! differ only by whole `traceparent: 00-<trace>-<span>-<flags>\r\n` lines
//! right after request lines.
use std::fmt::Write as _;

const HEADER_PREFIX: &[u8] = b"traceparent: ";
/// `00-` + 32 + `-` + 16 + `-` + 2.
const VALUE_LEN: usize = 55;

/// A version-00 W3C `traceparent` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traceparent {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits.
    pub span_id: String,
    /// 2 lower-case hex digits.
    pub flags: String,
}

impl Traceparent {
    /// Parses a version-00 value with lower-case hex only (what this agent
    /// writes; what the SDKs write).
    pub fn parse(value: &str) -> Option<Traceparent> {
        let v = value.as_bytes();
        let hex = |s: &[u8]| {
            s.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        };
        let ok = v.len() == VALUE_LEN
            && v.starts_with(b"00-")
            && v[35] == b'-'
            && v[52] == b'-'
            && hex(&v[3..35])
            && hex(&v[36..52])
            && hex(&v[53..55]);
        ok.then(|| Traceparent {
            trace_id: value[3..35].to_owned(),
            span_id: value[36..52].to_owned(),
            flags: value[53..55].to_owned(),
        })
    }

    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.flags, 16).is_ok_and(|f| f & 1 == 1)
    }
}

/// Offsets just past the request line of each HTTP/1 request in a client's
/// byte stream (heads, then Content-Length bodies, back to back); stops at
/// the first bytes that do not start a request.
pub fn request_line_ends(stream: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut pos = 0;
    while pos < stream.len() && starts_request(&stream[pos..]) {
        let Some(line) = find(&stream[pos..], b"\r\n") else {
            break;
        };
        ends.push(pos + line + 2);
        let Some(head) = find(&stream[pos..], b"\r\n\r\n") else {
            break;
        };
        let head_bytes = &stream[pos..pos + head];
        pos += head + 4 + content_length(head_bytes);
    }
    ends
}

fn starts_request(bytes: &[u8]) -> bool {
    let method_len = bytes.iter().take_while(|c| c.is_ascii_uppercase()).count();
    method_len > 0 && bytes.get(method_len) == Some(&b' ')
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `traceparent` line at the start of `bytes`: its length and value.
fn inserted_line(bytes: &[u8]) -> Option<(usize, String)> {
    let rest = bytes.strip_prefix(HEADER_PREFIX)?;
    let value = rest.get(..VALUE_LEN)?;
    if rest.get(VALUE_LEN..VALUE_LEN + 2)? != b"\r\n" {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    Traceparent::parse(value)?;
    Some((HEADER_PREFIX.len() + VALUE_LEN + 2, value.to_owned()))
}

/// Compares what a client sent with what the server received. `Ok` gives,
/// for each request of `sent` (see [`request_line_ends`]), the value of the
/// `traceparent` line inserted right after its request line, or `None` if
/// nothing was inserted there. Any other difference is an `Err` that shows
/// where the streams part.
pub fn compare(sent: &[u8], received: &[u8]) -> Result<Vec<Option<String>>, String> {
    let ends = request_line_ends(sent);
    let mut inserted = Vec::with_capacity(ends.len());
    let (mut s, mut r) = (0, 0);
    for (i, &end) in ends.iter().enumerate() {
        let segment = &sent[s..end];
        if !received[r..].starts_with(segment) {
            return Err(mismatch(
                sent,
                received,
                s,
                r,
                "before a request line's end",
            ));
        }
        s = end;
        r += segment.len();
        let next = ends.get(i + 1).copied().unwrap_or(sent.len());
        let rest = &sent[s..next];
        match inserted_line(&received[r..]) {
            Some((len, value)) if received[r + len..].starts_with(rest) => {
                inserted.push(Some(value));
                r += len;
            }
            _ => inserted.push(None),
        }
    }
    if received[r..] != sent[s..] {
        return Err(mismatch(
            sent,
            received,
            s,
            r,
            "after the last request line",
        ));
    }
    Ok(inserted)
}

fn mismatch(sent: &[u8], received: &[u8], s: usize, r: usize, when: &str) -> String {
    let common = sent[s..]
        .iter()
        .zip(&received[r..])
        .take_while(|(a, b)| a == b)
        .count();
    let (s, r) = (s + common, r + common);
    let mut message = format!(
        "streams differ {when}: sent {} bytes, received {}; first difference at sent \
         offset {s} / received offset {r}\n",
        sent.len(),
        received.len()
    );
    let _ = writeln!(
        message,
        "  sent:     ...{}",
        escape(&sent[s.saturating_sub(40)..(s + 80).min(sent.len())])
    );
    let _ = writeln!(
        message,
        "  received: ...{}",
        escape(&received[r.saturating_sub(40)..(r + 80).min(received.len())])
    );
    message
}

/// Bytes as a Rust-like escaped string.
pub fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn line() -> String {
        format!("traceparent: {TP}\r\n")
    }

    #[test]
    fn parses_traceparent() {
        let tp = Traceparent::parse(TP).unwrap();
        assert_eq!(tp.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(tp.span_id, "b7ad6b7169203331");
        assert!(tp.sampled());
        assert!(Traceparent::parse(&TP.to_uppercase()).is_none());
        assert!(Traceparent::parse("garbage").is_none());
        assert!(
            !Traceparent::parse(&TP.replace("-01", "-00"))
                .unwrap()
                .sampled()
        );
    }

    #[test]
    fn finds_requests_with_bodies() {
        let s = b"GET /a HTTP/1.1\r\nH: 1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\n\r\n";
        let ends = request_line_ends(s);
        assert_eq!(ends.len(), 3);
        assert_eq!(&s[ends[1] - 18..ends[1]], b"POST /b HTTP/1.1\r\n");
        assert!(request_line_ends(b"\x16\x03\x01 GET / HTTP/1.1\r\n\r\n").is_empty());
    }

    #[test]
    fn compare_accepts_insertions_and_reports_corruption() {
        let sent = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut received = b"GET /a HTTP/1.1\r\n".to_vec();
        received.extend(line().as_bytes());
        received.extend(b"Host: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            compare(sent, &received).unwrap(),
            vec![Some(TP.to_owned()), None]
        );
        assert_eq!(compare(sent, sent).unwrap(), vec![None, None]);
        let mut two = received.clone();
        two.splice(17..17, line().bytes());
        assert!(compare(sent, &two).is_err(), "two lines are corruption");
        let mut cut = received.clone();
        cut.pop();
        assert!(compare(sent, &cut).is_err());
        let own = format!("GET /o HTTP/1.1\r\n{}Host: x\r\n\r\n", line());
        assert_eq!(compare(own.as_bytes(), own.as_bytes()).unwrap(), vec![None]);
        assert!(compare(b"\x01\x02", b"\x01\x03").is_err());
    }
}
