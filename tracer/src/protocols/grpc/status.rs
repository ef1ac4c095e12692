//! gRPC status codes and how a call's status is read from what the wire
//! showed (see grpc's doc/statuscodes.md and doc/http-grpc-status-mapping.md).

/// A gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(pub u32);

const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl Code {
    pub const OK: Self = Self(0);
    pub const CANCELLED: Self = Self(1);
    pub const UNKNOWN: Self = Self(2);
    pub const PERMISSION_DENIED: Self = Self(7);
    pub const RESOURCE_EXHAUSTED: Self = Self(8);
    pub const UNIMPLEMENTED: Self = Self(12);
    pub const INTERNAL: Self = Self(13);
    pub const UNAVAILABLE: Self = Self(14);
    pub const UNAUTHENTICATED: Self = Self(16);

    /// `UNAVAILABLE`; None for codes outside the standard set.
    #[must_use]
    pub fn static_name(self) -> Option<&'static str> {
        NAMES.get(self.0 as usize).copied()
    }

    /// `UNAVAILABLE`, or the number for codes outside the standard set.
    #[must_use]
    pub fn name(self) -> String {
        NAMES
            .get(self.0 as usize)
            .map_or_else(|| self.0.to_string(), |n| (*n).to_owned())
    }
}

/// Whether a server span with this status is an error: the codes that say
/// the server failed, not the caller (OpenTelemetry RPC semantic
/// conventions for gRPC).
#[must_use]
pub const fn is_server_error(code: Code) -> bool {
    matches!(code.0, 2 | 4 | 12 | 13 | 14 | 15)
}

/// A call's status from its `grpc-status` (trailers, or the headers of a
/// trailers-only response), else from the HTTP status of a response that
/// is not gRPC's, else from the RST_STREAM error code that ended it.
/// `None` when none of these is known.
#[must_use]
pub fn status_of(
    grpc_status: Option<&str>,
    http_status: Option<u16>,
    rst: Option<u32>,
) -> Option<Code> {
    if let Some(v) = grpc_status {
        return Some(v.trim().parse().map_or(Code::UNKNOWN, Code));
    }
    match http_status {
        Some(200) | None => {}
        Some(s) => return Some(from_http(s)),
    }
    rst.map(from_rst)
}

fn from_http(status: u16) -> Code {
    match status {
        400 => Code::INTERNAL,
        401 => Code::UNAUTHENTICATED,
        403 => Code::PERMISSION_DENIED,
        404 => Code::UNIMPLEMENTED,
        429 | 502..=504 => Code::UNAVAILABLE,
        _ => Code::UNKNOWN,
    }
}

/// As grpc-go maps a stream reset by the peer.
fn from_rst(error_code: u32) -> Code {
    match error_code {
        0x7 => Code::UNAVAILABLE,        // REFUSED_STREAM
        0x8 => Code::CANCELLED,          // CANCEL
        0xb => Code::RESOURCE_EXHAUSTED, // ENHANCE_YOUR_CALM
        0xc => Code::PERMISSION_DENIED,  // INADEQUATE_SECURITY
        _ => Code::INTERNAL,
    }
}

/// `grpc-message` is percent-encoded (grpc's PROTOCOL-HTTP2.md).
#[must_use]
pub fn decode_message(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_of(Some("0"), Some(200), None), Some(Code::OK));
        assert_eq!(status_of(Some("14"), Some(200), Some(8)), Some(Code(14)));
        assert_eq!(status_of(Some("x"), None, None), Some(Code::UNKNOWN));
        assert_eq!(status_of(None, Some(404), None), Some(Code::UNIMPLEMENTED));
        assert_eq!(status_of(None, Some(503), None), Some(Code::UNAVAILABLE));
        assert_eq!(status_of(None, Some(200), Some(8)), Some(Code::CANCELLED));
        assert_eq!(status_of(None, None, Some(2)), Some(Code::INTERNAL));
        assert_eq!(status_of(None, Some(200), None), None);
        assert_eq!(Code(4).name(), "DEADLINE_EXCEEDED");
        assert_eq!(Code(99).name(), "99");
        assert!(is_server_error(Code::UNKNOWN) && is_server_error(Code(15)));
        assert!(!is_server_error(Code(5)) && !is_server_error(Code::OK));
    }

    #[test]
    fn messages() {
        assert_eq!(decode_message("backend%20down%"), "backend down%");
        assert_eq!(decode_message("caf%C3%A9 %zz"), "café %zz");
    }
}
