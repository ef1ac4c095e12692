//! Where a message body ends (RFC 9112 section 6).

use super::ParseError;
use super::message::{RequestHead, ResponseHead};

/// The parts of a request method that change how its response is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Head,
    Connect,
    Other,
}

impl Method {
    /// Methods are case-sensitive: `head` is not HEAD.
    pub(super) fn of(method: &[u8]) -> Self {
        match method {
            b"HEAD" => Self::Head,
            b"CONNECT" => Self::Connect,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body follows the head.
    Empty,
    Length(u64),
    Chunked,
    /// The body runs until the connection closes.
    UntilClose,
    /// A 1xx other than 101: the final response is still to come.
    Interim,
    /// The connection stops carrying HTTP/1 after this response (CONNECT
    /// accepted, or 101 Switching Protocols).
    Tunnel,
}

pub(super) fn request_framing(head: &RequestHead) -> Result<Framing, ParseError> {
    if let Some(chunked) = final_coding_is_chunked(&head.headers) {
        // A request body must be self-delimiting: without chunked last the
        // server cannot find its end either (RFC 9112 6.3 item 4).
        return if chunked {
            Ok(Framing::Chunked)
        } else {
            Err(ParseError::Malformed)
        };
    }
    Ok(match content_length(&head.headers)? {
        None | Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

pub(super) fn response_framing(
    head: &ResponseHead,
    request: Method,
) -> Result<Framing, ParseError> {
    match head.status {
        101 => return Ok(Framing::Tunnel),
        100..=199 => return Ok(Framing::Interim),
        200..=299 if request == Method::Connect => return Ok(Framing::Tunnel),
        204 | 304 => return Ok(Framing::Empty),
        _ if request == Method::Head => return Ok(Framing::Empty),
        _ => {}
    }
    if let Some(chunked) = final_coding_is_chunked(&head.headers) {
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(match content_length(&head.headers)? {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// `None` without Transfer-Encoding; else whether its last coding is chunked.
fn final_coding_is_chunked(headers: &[(&'static str, String)]) -> Option<bool> {
    headers
        .iter()
        .filter(|(name, _)| *name == "transfer-encoding")
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .rfind(|coding| !coding.is_empty())
        .map(|coding| coding.eq_ignore_ascii_case("chunked"))
}

/// Repeated fields and lists are accepted only when every value agrees
/// (RFC 9110 8.6); anything else could be a smuggling attempt, so the
/// message is not trusted.
fn content_length(headers: &[(&'static str, String)]) -> Result<Option<u64>, ParseError> {
    let mut length = None;
    for value in headers
        .iter()
        .filter(|(name, _)| *name == "content-length")
        .flat_map(|(_, value)| value.split(','))
    {
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::Malformed);
        }
        let n: u64 = value.parse().map_err(|_| ParseError::Malformed)?;
        match length {
            Some(previous) if previous != n => return Err(ParseError::Malformed),
            _ => length = Some(n),
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::super::Version;
    use super::*;

    fn headers(list: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        list.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    }

    fn request(list: &[(&'static str, &str)]) -> RequestHead {
        RequestHead {
            method: "POST".into(),
            target: "/".into(),
            version: Version::Http11,
            headers: headers(list),
        }
    }

    fn response(status: u16, list: &[(&'static str, &str)]) -> ResponseHead {
        ResponseHead {
            status,
            version: Version::Http11,
            headers: headers(list),
        }
    }

    #[test]
    fn request_bodies() {
        assert_eq!(request_framing(&request(&[])), Ok(Framing::Empty));
        assert_eq!(
            request_framing(&request(&[("content-length", "12")])),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            request_framing(&request(&[("content-length", "0")])),
            Ok(Framing::Empty)
        );
        assert_eq!(
            request_framing(&request(&[("transfer-encoding", "gzip, Chunked")])),
            Ok(Framing::Chunked)
        );
        // Transfer-Encoding overrides Content-Length.
        assert_eq!(
            request_framing(&request(&[
                ("content-length", "5"),
                ("transfer-encoding", "chunked")
            ])),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            request_framing(&request(&[("transfer-encoding", "chunked, gzip")])),
            Err(ParseError::Malformed)
        );
    }

    #[test]
    fn content_length_values() {
        let cl = |v: &str| content_length(&headers(&[("content-length", v)]));
        assert_eq!(cl("42"), Ok(Some(42)));
        assert_eq!(cl(" 42 "), Ok(Some(42)));
        assert_eq!(cl("42, 42"), Ok(Some(42)));
        assert_eq!(cl("18446744073709551615"), Ok(Some(u64::MAX)));
        for bad in [
            "",
            "-1",
            "+1",
            "0x10",
            "4 2",
            "42, 43",
            "18446744073709551616",
            "99999999999999999999999999",
        ] {
            assert_eq!(cl(bad), Err(ParseError::Malformed), "{bad:?}");
        }
        assert_eq!(
            content_length(&headers(&[
                ("content-length", "1"),
                ("content-length", "2")
            ])),
            Err(ParseError::Malformed)
        );
    }

    #[test]
    fn response_bodies() {
        let cl = [("content-length", "10")];
        assert_eq!(
            response_framing(&response(200, &cl), Method::Other),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            response_framing(&response(200, &cl), Method::Head),
            Ok(Framing::Empty)
        );
        assert_eq!(
            response_framing(&response(204, &cl), Method::Other),
            Ok(Framing::Empty)
        );
        assert_eq!(
            response_framing(&response(304, &cl), Method::Other),
            Ok(Framing::Empty)
        );
        assert_eq!(
            response_framing(&response(100, &[]), Method::Other),
            Ok(Framing::Interim)
        );
        assert_eq!(
            response_framing(&response(103, &cl), Method::Other),
            Ok(Framing::Interim)
        );
        assert_eq!(
            response_framing(&response(101, &[]), Method::Other),
            Ok(Framing::Tunnel)
        );
        assert_eq!(
            response_framing(&response(200, &[]), Method::Connect),
            Ok(Framing::Tunnel)
        );
        assert_eq!(
            response_framing(&response(407, &cl), Method::Connect),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            response_framing(&response(200, &[]), Method::Other),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            response_framing(
                &response(200, &[("transfer-encoding", "chunked")]),
                Method::Other
            ),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            response_framing(
                &response(200, &[("transfer-encoding", "gzip")]),
                Method::Other
            ),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            response_framing(&response(200, &[("content-length", "x")]), Method::Other),
            Err(ParseError::Malformed)
        );
    }

    #[test]
    fn methods() {
        assert_eq!(Method::of(b"HEAD"), Method::Head);
        assert_eq!(Method::of(b"head"), Method::Other);
        assert_eq!(Method::of(b"CONNECT"), Method::Connect);
        assert_eq!(Method::of(b"GET"), Method::Other);
    }
}
