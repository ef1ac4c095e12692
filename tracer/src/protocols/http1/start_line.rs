//! Recognising the start of a message from its first bytes, before (or
//! without) a full head: to decide a connection's roles, to reject non-HTTP
//! traffic early, and to resynchronise at chunk starts.

/// Which kind of message a start line begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Request,
    Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// A whole request line, or a status line up to its status code.
    Message(Role),
    /// Consistent with a start line so far.
    NeedMore,
    NotHttp,
}

/// Longer methods exist only in hostile input; capping keeps rejection quick.
const MAX_METHOD_LEN: usize = 24;

/// Methods trusted to mean HTTP even when the rest of the request line was
/// not captured (a target longer than the captured prefix).
const KNOWN_METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
];

const VERSION_PREFIX: &[u8] = b"HTTP/1.";

pub(super) fn classify(buf: &[u8]) -> Start {
    match (status_line(buf), request_line(buf)) {
        (Start::Message(role), _) | (_, Start::Message(role)) => Start::Message(role),
        (Start::NeedMore, _) | (_, Start::NeedMore) => Start::NeedMore,
        _ => Start::NotHttp,
    }
}

/// Whether `buf` begins with a well-known method and a space.
pub(super) fn starts_with_known_method(buf: &[u8]) -> bool {
    KNOWN_METHODS
        .iter()
        .any(|m| buf.len() > m.len() && buf.starts_with(m) && buf[m.len()] == b' ')
}

/// `HTTP/1.` [01] SP 3DIGIT
fn status_line(buf: &[u8]) -> Start {
    let Some(rest) = buf.strip_prefix(VERSION_PREFIX) else {
        return if VERSION_PREFIX.starts_with(buf) {
            Start::NeedMore
        } else {
            Start::NotHttp
        };
    };
    let checks: [fn(u8) -> bool; 5] = [
        |b| matches!(b, b'0' | b'1'),
        |b| b == b' ',
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
    ];
    for (i, check) in checks.iter().enumerate() {
        match rest.get(i) {
            None => return Start::NeedMore,
            Some(&b) if !check(b) => return Start::NotHttp,
            Some(_) => {}
        }
    }
    Start::Message(Role::Response)
}

/// method SP request-target SP `HTTP/1.` [01] (CRLF | LF)
fn request_line(buf: &[u8]) -> Start {
    let method_len = buf.iter().take_while(|&&b| is_tchar(b)).count();
    if method_len > MAX_METHOD_LEN {
        return Start::NotHttp;
    }
    let Some(&sp) = buf.get(method_len) else {
        return Start::NeedMore;
    };
    if method_len == 0 || sp != b' ' {
        return Start::NotHttp;
    }
    let rest = &buf[method_len + 1..];
    let target_len = rest.iter().take_while(|&&b| is_target_byte(b)).count();
    let Some(&sp) = rest.get(target_len) else {
        return Start::NeedMore;
    };
    if target_len == 0 || sp != b' ' {
        return Start::NotHttp;
    }
    let rest = &rest[target_len + 1..];
    let Some(rest) = rest.strip_prefix(VERSION_PREFIX) else {
        return if VERSION_PREFIX.starts_with(rest) {
            Start::NeedMore
        } else {
            Start::NotHttp
        };
    };
    match rest {
        [] | [b'0' | b'1'] | [b'0' | b'1', b'\r'] => Start::NeedMore,
        [b'0' | b'1', b'\n', ..] | [b'0' | b'1', b'\r', b'\n', ..] => Start::Message(Role::Request),
        _ => Start::NotHttp,
    }
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Visible characters; obs-text allowed since some clients send raw UTF-8.
fn is_target_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        for line in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"GET /a?b=c HTTP/1.0\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n",
            b"M-SEARCH * HTTP/1.1\r\n",
        ] {
            assert_eq!(classify(line), Start::Message(Role::Request), "{line:?}");
        }
    }

    #[test]
    fn status_lines() {
        for line in [
            &b"HTTP/1.1 200"[..],
            b"HTTP/1.0 404 Not Found\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ] {
            assert_eq!(classify(line), Start::Message(Role::Response), "{line:?}");
        }
    }

    #[test]
    fn prefixes_need_more() {
        let full = b"GET /index.html HTTP/1.1\r\n";
        for n in 0..full.len() {
            assert_eq!(classify(&full[..n]), Start::NeedMore, "{:?}", &full[..n]);
        }
        let full = b"HTTP/1.1 200";
        for n in 0..full.len() {
            assert_eq!(classify(&full[..n]), Start::NeedMore, "{:?}", &full[..n]);
        }
    }

    #[test]
    fn not_http() {
        for bytes in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"HTTP/2 200\r\n",
            b"HTTP/1.1 2x0",
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/1.1x",
            b"GET / HTTP/1.1\rx",
            b"*1\r\n$4\r\nPING\r\n",
            b"\x00\x00\x00\x01",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n",
        ] {
            assert_eq!(classify(bytes), Start::NotHttp, "{bytes:?}");
        }
    }

    #[test]
    fn known_methods() {
        assert!(starts_with_known_method(b"GET /very-long"));
        assert!(starts_with_known_method(b"DELETE /"));
        assert!(!starts_with_known_method(b"GET"));
        assert!(!starts_with_known_method(b"GETX /"));
        assert!(!starts_with_known_method(b"FOO /"));
    }
}
