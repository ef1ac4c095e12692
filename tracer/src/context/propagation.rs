//! Incoming trace context: the W3C `traceparent`/`tracestate` headers and
//! Zipkin B3 (single `b3` header and the multi-header `x-b3-*` form) of a
//! parsed HTTP/1 request, and the `traceparent` value we write ourselves.
//!
//! Pure functions over the header list: no I/O. The caller passes header names
//! already lowercased and values already trimmed of surrounding whitespace.
//!
//! Precedence when several formats are present: the first *valid* context in
//! the order W3C, B3 single, B3 multi wins (W3C is what we propagate, and the
//! B3 specification gives the single header priority over the multi-header
//! form). Only when none is valid does an unusable header make the result
//! [`Extracted::Invalid`] (reporting the first problem in that same order), so
//! the caller counts it and starts a new trace.

use thiserror::Error;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const B3: &str = "b3";
pub const X_B3_TRACE_ID: &str = "x-b3-traceid";
pub const X_B3_SPAN_ID: &str = "x-b3-spanid";
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
pub const X_B3_FLAGS: &str = "x-b3-flags";

/// Longest `tracestate` we keep. W3C requires vendors to propagate at least
/// 512 characters; beyond that they may truncate by dropping whole entries.
pub const TRACESTATE_MAX_LEN: usize = 512;

/// W3C: when truncating `tracestate`, entries longer than this are dropped
/// first, since one oversized entry would otherwise push out many small ones.
const TRACESTATE_LARGE_ENTRY: usize = 128;

/// Length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
const TRACEPARENT_LEN: usize = 55;

/// Where an adopted context came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    W3c,
    B3Single,
    B3Multi,
}

/// The caller's trace context, i.e. the parent of the span we are about to
/// create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The caller's span, which becomes our parent.
    pub span_id: [u8; 8],
    /// The caller's sampling decision. B3 without a sampling state ("defer")
    /// counts as sampled: the caller chose to propagate and the parent-based
    /// sampler would otherwise have nothing to follow.
    pub sampled: bool,
    /// `tracestate`, verbatim (joined with "," across several headers), only
    /// for W3C and capped at [`TRACESTATE_MAX_LEN`].
    pub trace_state: Option<String>,
    pub format: Format,
}

/// The outcome of [`extract`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    /// No context header, or only a sampling-only B3 value (`b3: 0`).
    None,
    Valid(TraceContext),
    /// A context header was present but unusable: a new trace starts, and the
    /// caller counts it.
    Invalid(InvalidReason),
}

/// Why a present context header could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum InvalidReason {
    /// Several headers that must appear once (W3C: a new trace must start).
    #[error("several {0} headers")]
    Duplicate(&'static str),
    #[error("traceparent has the wrong length for its version")]
    Length,
    /// `ff`, or a version that is not two lowercase hex digits.
    #[error("traceparent version is invalid")]
    Version,
    #[error("{0} fields are not separated by '-' where expected")]
    Delimiter(&'static str),
    /// A field is not hex of the right length (W3C: lowercase only).
    #[error("{0} is not hex of the expected length")]
    Hex(&'static str),
    #[error("trace id is all zeros")]
    ZeroTraceId,
    #[error("span id is all zeros")]
    ZeroSpanId,
    #[error("B3 sampling state is not one of 0, 1, d (or true/false in x-b3-sampled)")]
    B3Sampling,
    /// One of the two B3 multi-header ids without the other.
    #[error("{present} without {missing}")]
    Missing {
        present: &'static str,
        missing: &'static str,
    },
}

/// Extracts the caller's trace context from a request's headers (names
/// lowercased, values trimmed; HTTP/1 and HTTP/2 both name the fields they
/// keep with their tables' static strings).
pub fn extract(headers: &[(&str, String)]) -> Extracted {
    type Extractor = fn(&[(&str, String)]) -> Option<Result<TraceContext, InvalidReason>>;
    // In order of precedence; later ones are not even parsed once one is valid.
    const EXTRACTORS: [Extractor; 3] = [extract_w3c, extract_b3_single, extract_b3_multi];
    let mut first_invalid = None;
    for extractor in EXTRACTORS {
        match extractor(headers) {
            Some(Ok(context)) => return Extracted::Valid(context),
            Some(Err(reason)) => {
                first_invalid.get_or_insert(reason);
            }
            None => {}
        }
    }
    first_invalid.map_or(Extracted::None, Extracted::Invalid)
}

/// Formats a version-00 `traceparent` value:
/// `00-<32 hex trace id>-<16 hex span id>-01` (or `-00` when not sampled).
pub fn format_traceparent(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> String {
    let mut out = String::with_capacity(TRACEPARENT_LEN);
    out.push_str("00-");
    push_hex(&mut out, trace_id);
    out.push('-');
    push_hex(&mut out, span_id);
    out.push_str(if sampled { "-01" } else { "-00" });
    out
}

/// Parses a `traceparent` value into (trace id, parent span id, flags).
///
/// Version 00 must be exactly 55 characters. A higher version (forward
/// compatibility, W3C §3.2.4) is accepted when its first four fields parse and
/// it either ends there or continues with '-'; whatever follows is ignored.
/// Version `ff` is invalid, hex must be lowercase, and all-zero ids are
/// invalid.
pub fn parse_traceparent(value: &str) -> Result<([u8; 16], [u8; 8], u8), InvalidReason> {
    // Bytes, not str slices: a non-ASCII character must fail the hex check,
    // not panic on a char boundary.
    let v = value.as_bytes();
    if v.len() < TRACEPARENT_LEN {
        return Err(InvalidReason::Length);
    }
    let [version] = decode_hex::<1>(&v[0..2], false).ok_or(InvalidReason::Version)?;
    if version == 0xff {
        return Err(InvalidReason::Version);
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(InvalidReason::Delimiter(TRACEPARENT));
    }
    if version == 0 && v.len() != TRACEPARENT_LEN {
        return Err(InvalidReason::Length);
    }
    if v.len() > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != b'-' {
        return Err(InvalidReason::Delimiter(TRACEPARENT));
    }
    let trace_id = decode_hex::<16>(&v[3..35], false).ok_or(InvalidReason::Hex("trace id"))?;
    let span_id = decode_hex::<8>(&v[36..52], false).ok_or(InvalidReason::Hex("parent id"))?;
    let [flags] = decode_hex::<1>(&v[53..55], false).ok_or(InvalidReason::Hex("trace flags"))?;
    check_ids(&trace_id, &span_id)?;
    Ok((trace_id, span_id, flags))
}

/// `None` when the header is absent.
fn extract_w3c(headers: &[(&str, String)]) -> Option<Result<TraceContext, InvalidReason>> {
    let value = match single(headers, TRACEPARENT) {
        Ok(value) => value?,
        Err(reason) => return Some(Err(reason)),
    };
    Some(
        parse_traceparent(value).map(|(trace_id, span_id, flags)| TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            trace_state: trace_state(headers),
            format: Format::W3c,
        }),
    )
}

/// All `tracestate` headers combined as one list (RFC 9110 allows splitting a
/// list header over several lines), capped at [`TRACESTATE_MAX_LEN`].
fn trace_state(headers: &[(&str, String)]) -> Option<String> {
    let joined = values(headers, TRACESTATE)
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    truncate_trace_state(&joined)
}

/// Keeps `tracestate` verbatim when it fits; otherwise drops whole entries as
/// W3C prescribes for truncation: entries over 128 characters first (from the
/// end), then entries from the end, so no entry is ever cut in the middle.
fn truncate_trace_state(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.len() <= TRACESTATE_MAX_LEN {
        return Some(value.to_owned());
    }
    let mut entries: Vec<&str> = value
        .split(',')
        .map(|e| e.trim_matches([' ', '\t']))
        .filter(|e| !e.is_empty())
        .collect();
    let joined_len = |entries: &[&str]| {
        entries.iter().map(|e| e.len()).sum::<usize>() + entries.len().saturating_sub(1)
    };
    while joined_len(&entries) > TRACESTATE_MAX_LEN {
        match entries
            .iter()
            .rposition(|e| e.len() > TRACESTATE_LARGE_ENTRY)
        {
            Some(large) => entries.remove(large),
            None => break,
        };
    }
    while joined_len(&entries) > TRACESTATE_MAX_LEN {
        entries.pop();
    }
    (!entries.is_empty()).then(|| entries.join(","))
}

/// `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`; `None` when absent
/// or when it only carries a sampling decision (`0`, `1`, `d`), since there is
/// then no context to adopt.
fn extract_b3_single(headers: &[(&str, String)]) -> Option<Result<TraceContext, InvalidReason>> {
    let value = match single(headers, B3) {
        Ok(value) => value?,
        Err(reason) => return Some(Err(reason)),
    };
    if matches!(value, "0" | "1" | "d") {
        return None;
    }
    Some(parse_b3_single(value))
}

fn parse_b3_single(value: &str) -> Result<TraceContext, InvalidReason> {
    let mut fields = value.split('-');
    let (Some(trace), Some(span)) = (fields.next(), fields.next()) else {
        return Err(InvalidReason::Delimiter(B3));
    };
    let sampling = fields.next();
    let parent = fields.next();
    if fields.next().is_some() {
        return Err(InvalidReason::Delimiter(B3));
    }
    let trace_id = b3_trace_id(trace)?;
    let span_id = decode_hex::<8>(span.as_bytes(), true).ok_or(InvalidReason::Hex("b3 span id"))?;
    let sampled = match sampling {
        None | Some("1" | "d") => true,
        Some("0") => false,
        Some(_) => return Err(InvalidReason::B3Sampling),
    };
    // Not used (we take the caller's span as our parent), but a malformed one
    // means the header as a whole is not trustworthy.
    if let Some(parent) = parent {
        decode_hex::<8>(parent.as_bytes(), true).ok_or(InvalidReason::Hex("b3 parent span id"))?;
    }
    check_ids(&trace_id, &span_id)?;
    Ok(TraceContext {
        trace_id,
        span_id,
        sampled,
        trace_state: None,
        format: Format::B3Single,
    })
}

/// `x-b3-traceid` + `x-b3-spanid` (+ `x-b3-sampled`, `x-b3-flags`);
/// `x-b3-parentspanid` is ignored. `None` when neither id header is present
/// (e.g. only `x-b3-sampled`).
fn extract_b3_multi(headers: &[(&str, String)]) -> Option<Result<TraceContext, InvalidReason>> {
    let ids = (
        single(headers, X_B3_TRACE_ID),
        single(headers, X_B3_SPAN_ID),
    );
    let (trace, span) = match ids {
        (Ok(None), Ok(None)) => return None,
        (Err(reason), _) | (_, Err(reason)) => return Some(Err(reason)),
        (Ok(Some(_)), Ok(None)) => {
            return Some(Err(InvalidReason::Missing {
                present: X_B3_TRACE_ID,
                missing: X_B3_SPAN_ID,
            }));
        }
        (Ok(None), Ok(Some(_))) => {
            return Some(Err(InvalidReason::Missing {
                present: X_B3_SPAN_ID,
                missing: X_B3_TRACE_ID,
            }));
        }
        (Ok(Some(trace)), Ok(Some(span))) => (trace, span),
    };
    Some(parse_b3_multi(headers, trace, span))
}

fn parse_b3_multi(
    headers: &[(&str, String)],
    trace: &str,
    span: &str,
) -> Result<TraceContext, InvalidReason> {
    let trace_id = b3_trace_id(trace)?;
    let span_id = decode_hex::<8>(span.as_bytes(), true).ok_or(InvalidReason::Hex(X_B3_SPAN_ID))?;
    check_ids(&trace_id, &span_id)?;
    // Debug ("x-b3-flags: 1") implies sampled; B3 says x-b3-sampled is then
    // not sent, and if it is, debug still wins.
    let debug = single(headers, X_B3_FLAGS)? == Some("1");
    let sampled = match single(headers, X_B3_SAMPLED)? {
        None => true,
        Some(v) if v == "1" || v.eq_ignore_ascii_case("true") => true,
        Some(v) if v == "0" || v.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(InvalidReason::B3Sampling),
    };
    Ok(TraceContext {
        trace_id,
        span_id,
        sampled: sampled || debug,
        trace_state: None,
        format: Format::B3Multi,
    })
}

/// B3 trace ids are 64 or 128 bit; a 64-bit one is left-padded with zeros, as
/// Zipkin and the OpenTelemetry B3 propagators do.
fn b3_trace_id(value: &str) -> Result<[u8; 16], InvalidReason> {
    let bytes = value.as_bytes();
    if bytes.len() == 16 {
        let low = decode_hex::<8>(bytes, true).ok_or(InvalidReason::Hex("b3 trace id"))?;
        let mut id = [0; 16];
        id[8..].copy_from_slice(&low);
        Ok(id)
    } else {
        decode_hex::<16>(bytes, true).ok_or(InvalidReason::Hex("b3 trace id"))
    }
}

fn check_ids(trace_id: &[u8; 16], span_id: &[u8; 8]) -> Result<(), InvalidReason> {
    if trace_id.iter().all(|&b| b == 0) {
        return Err(InvalidReason::ZeroTraceId);
    }
    if span_id.iter().all(|&b| b == 0) {
        return Err(InvalidReason::ZeroSpanId);
    }
    Ok(())
}

fn values<'a>(headers: &'a [(&str, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| *n == name)
        // The caller trims already; trimming optional whitespace (RFC 9110
        // OWS) again costs nothing and keeps a sloppy caller from turning
        // valid headers into invalid ones.
        .map(|(_, v)| v.trim_matches([' ', '\t']))
}

/// The value of a header that must appear at most once.
fn single<'a>(
    headers: &'a [(&str, String)],
    name: &'static str,
) -> Result<Option<&'a str>, InvalidReason> {
    let mut found = values(headers, name);
    let first = found.next();
    if found.next().is_some() {
        return Err(InvalidReason::Duplicate(name));
    }
    Ok(first)
}

fn hex_digit(c: u8, allow_upper: bool) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if allow_upper => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly `2 * N` hex digits; uppercase only when `allow_upper` (B3
/// implementations vary, W3C requires lowercase).
fn decode_hex<const N: usize>(digits: &[u8], allow_upper: bool) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_digit(pair[0], allow_upper)? << 4) | hex_digit(pair[1], allow_upper)?;
    }
    Some(out)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    // The W3C specification's own example ids.
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";
    const TRACE_ID: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN_ID: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    // Zipkin's B3 documentation example ids.
    const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const B3_SPAN: &str = "e457b5a2e4d86bd1";
    const B3_PARENT: &str = "05e3ac9a4f6e3b90";
    const B3_TRACE_ID: [u8; 16] = [
        0x80, 0xf1, 0x98, 0xee, 0x56, 0x34, 0x3b, 0xa8, 0x64, 0xfe, 0x8b, 0x2a, 0x57, 0xd3, 0xef,
        0xf7,
    ];
    const B3_SPAN_ID: [u8; 8] = [0xe4, 0x57, 0xb5, 0xa2, 0xe4, 0xd8, 0x6b, 0xd1];

    fn headers<'a>(pairs: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
        pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    }

    fn tp(version: &str, trace: &str, span: &str, flags: &str) -> String {
        format!("{version}-{trace}-{span}-{flags}")
    }

    fn valid(pairs: &[(&str, &str)]) -> TraceContext {
        match extract(&headers(pairs)) {
            Extracted::Valid(context) => context,
            other => panic!("expected a valid context for {pairs:?}, got {other:?}"),
        }
    }

    fn invalid(pairs: &[(&str, &str)]) -> InvalidReason {
        match extract(&headers(pairs)) {
            Extracted::Invalid(reason) => reason,
            other => panic!("expected an invalid context for {pairs:?}, got {other:?}"),
        }
    }

    #[test]
    fn w3c_valid_sampled_and_not() {
        let c = valid(&[("traceparent", &tp("00", TRACE, SPAN, "01"))]);
        assert_eq!(
            c,
            TraceContext {
                trace_id: TRACE_ID,
                span_id: SPAN_ID,
                sampled: true,
                trace_state: None,
                format: Format::W3c,
            }
        );
        let c = valid(&[("traceparent", &tp("00", TRACE, SPAN, "00"))]);
        assert!(!c.sampled);
    }

    #[test]
    fn w3c_only_the_sampled_bit_of_flags_matters() {
        for (flags, sampled) in [
            ("01", true),
            ("03", true),
            ("09", true),
            ("ff", true),
            ("02", false),
            ("08", false),
            ("fe", false),
        ] {
            let c = valid(&[("traceparent", &tp("00", TRACE, SPAN, flags))]);
            assert_eq!(c.sampled, sampled, "flags {flags}");
        }
    }

    #[test]
    fn w3c_parse_returns_raw_flags() {
        assert_eq!(
            parse_traceparent(&tp("00", TRACE, SPAN, "09")),
            Ok((TRACE_ID, SPAN_ID, 0x09))
        );
    }

    #[test]
    fn w3c_future_versions() {
        // Same length as version 00.
        let c = valid(&[("traceparent", &tp("01", TRACE, SPAN, "01"))]);
        assert_eq!(
            (c.trace_id, c.span_id, c.sampled),
            (TRACE_ID, SPAN_ID, true)
        );
        // Extra fields after '-' are ignored.
        for extra in ["-", "-what-the-future-will-be-like", "-XYZxsf09"] {
            let value = format!("{}{extra}", tp("cc", TRACE, SPAN, "01"));
            let c = valid(&[("traceparent", &value)]);
            assert_eq!((c.trace_id, c.span_id), (TRACE_ID, SPAN_ID), "{value}");
        }
        // Unknown flag bits of a future version are ignored too.
        assert!(!valid(&[("traceparent", &tp("fe", TRACE, SPAN, "02"))]).sampled);
    }

    #[test]
    fn w3c_future_version_needs_a_dash_after_flags() {
        let value = format!("{}0", tp("01", TRACE, SPAN, "01"));
        assert_eq!(
            parse_traceparent(&value),
            Err(InvalidReason::Delimiter(TRACEPARENT))
        );
        let value = format!("{}.x", tp("01", TRACE, SPAN, "01"));
        assert_eq!(
            parse_traceparent(&value),
            Err(InvalidReason::Delimiter(TRACEPARENT))
        );
    }

    #[test]
    fn w3c_version_ff_and_bad_versions() {
        for version in ["ff", "0g", "0A", "FF", "-0", " 0", "zz"] {
            let value = tp(version, TRACE, SPAN, "01");
            assert_eq!(
                parse_traceparent(&value),
                Err(InvalidReason::Version),
                "{value}"
            );
        }
        // A three-digit version shifts everything: rejected, whatever the reason.
        assert!(parse_traceparent(&tp("000", TRACE, SPAN, "01")).is_err());
    }

    #[test]
    fn w3c_version_00_must_be_exactly_55_chars() {
        for value in [
            format!("{}-", tp("00", TRACE, SPAN, "01")),
            format!("{}-extra", tp("00", TRACE, SPAN, "01")),
            format!("{}0", tp("00", TRACE, SPAN, "01")),
            tp("00", TRACE, SPAN, "1"),
            tp("00", &TRACE[1..], SPAN, "01"),
            tp("00", TRACE, &SPAN[1..], "01"),
            String::new(),
            "00".to_owned(),
        ] {
            assert_eq!(
                parse_traceparent(&value),
                Err(InvalidReason::Length),
                "{value}"
            );
        }
    }

    #[test]
    fn w3c_misplaced_fields() {
        // Right total length, wrong field lengths.
        let longer_trace_shorter_span = tp("00", &format!("{TRACE}0"), &SPAN[1..], "01");
        let shorter_trace_longer_span = tp("00", &TRACE[1..], &format!("{SPAN}0"), "01");
        let longer_span_shorter_flags = tp("00", TRACE, &format!("{SPAN}0"), "1");
        for value in [
            longer_trace_shorter_span,
            shorter_trace_longer_span,
            longer_span_shorter_flags,
            format!("00_{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}_{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}_01"),
        ] {
            assert_eq!(value.len(), 55, "{value}");
            assert_eq!(
                parse_traceparent(&value),
                Err(InvalidReason::Delimiter(TRACEPARENT)),
                "{value}"
            );
        }
    }

    #[test]
    fn w3c_requires_lowercase_hex() {
        let upper_trace = TRACE.to_uppercase();
        let upper_span = "00F067AA0BA902B7";
        assert_eq!(
            parse_traceparent(&tp("00", &upper_trace, SPAN, "01")),
            Err(InvalidReason::Hex("trace id"))
        );
        assert_eq!(
            parse_traceparent(&tp("00", TRACE, upper_span, "01")),
            Err(InvalidReason::Hex("parent id"))
        );
        assert_eq!(
            parse_traceparent(&tp("00", TRACE, SPAN, "0A")),
            Err(InvalidReason::Hex("trace flags"))
        );
    }

    #[test]
    fn w3c_non_hex() {
        let bad_trace = format!("{}g", &TRACE[..31]);
        let bad_span = format!("{}x", &SPAN[..15]);
        assert_eq!(
            parse_traceparent(&tp("00", &bad_trace, SPAN, "01")),
            Err(InvalidReason::Hex("trace id"))
        );
        assert_eq!(
            parse_traceparent(&tp("00", TRACE, &bad_span, "01")),
            Err(InvalidReason::Hex("parent id"))
        );
        assert_eq!(
            parse_traceparent(&tp("00", TRACE, SPAN, "0z")),
            Err(InvalidReason::Hex("trace flags"))
        );
        // Signs and "0x" prefixes that a lax integer parser would accept.
        assert!(parse_traceparent(&tp("00", TRACE, "+0f067aa0ba902b7", "01")).is_err());
        assert!(parse_traceparent(&tp("00", TRACE, "0x0f067aa0ba902b", "01")).is_err());
    }

    #[test]
    fn w3c_non_ascii_does_not_panic() {
        // 'é' is two bytes: same byte length as a valid value, and slicing
        // a str inside it would panic.
        let value = format!("00-{}é-{SPAN}-01", &TRACE[..30]);
        assert_eq!(value.len(), 55);
        assert!(parse_traceparent(&value).is_err());
        let value = format!("0é{}", &tp("00", TRACE, SPAN, "01")[2..]);
        assert!(parse_traceparent(&value).is_err());
    }

    #[test]
    fn w3c_zero_ids() {
        let zero_trace = "0".repeat(32);
        let zero_span = "0".repeat(16);
        assert_eq!(
            invalid(&[("traceparent", &tp("00", &zero_trace, SPAN, "01"))]),
            InvalidReason::ZeroTraceId
        );
        assert_eq!(
            invalid(&[("traceparent", &tp("00", TRACE, &zero_span, "01"))]),
            InvalidReason::ZeroSpanId
        );
        // Zero ids are invalid in future versions too.
        assert_eq!(
            invalid(&[("traceparent", &tp("01", &zero_trace, SPAN, "01"))]),
            InvalidReason::ZeroTraceId
        );
        // One non-zero bit anywhere is enough.
        let low_bit = format!("{}1", "0".repeat(31));
        valid(&[("traceparent", &tp("00", &low_bit, SPAN, "01"))]);
    }

    #[test]
    fn w3c_whitespace() {
        // Inside the value: invalid.
        let inner = format!("00-{TRACE} -{SPAN}-01");
        assert!(matches!(
            extract(&headers(&[("traceparent", &inner)])),
            Extracted::Invalid(_)
        ));
        let inner = format!("00 -{TRACE}-{SPAN}-01");
        assert!(matches!(
            extract(&headers(&[("traceparent", &inner)])),
            Extracted::Invalid(_)
        ));
        // Around the value (optional whitespace in HTTP): tolerated even if the
        // caller forgot to trim.
        let around = format!(" \t{} ", tp("00", TRACE, SPAN, "01"));
        assert_eq!(valid(&[("traceparent", &around)]).trace_id, TRACE_ID);
        // parse_traceparent itself is strict.
        assert!(parse_traceparent(&around).is_err());
    }

    #[test]
    fn w3c_duplicated_traceparent_is_invalid() {
        let a = tp("00", TRACE, SPAN, "01");
        let b = tp(
            "00",
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            "01",
        );
        assert_eq!(
            invalid(&[("traceparent", &a), ("traceparent", &b)]),
            InvalidReason::Duplicate(TRACEPARENT)
        );
        // Even identical copies: two headers is not a valid request.
        assert_eq!(
            invalid(&[("traceparent", &a), ("traceparent", &a)]),
            InvalidReason::Duplicate(TRACEPARENT)
        );
        // Folded into one line by a proxy: not a single traceparent either.
        let folded = format!("{a},{b}");
        assert!(matches!(
            extract(&headers(&[("traceparent", &folded)])),
            Extracted::Invalid(_)
        ));
    }

    #[test]
    fn w3c_empty_value_is_invalid() {
        assert_eq!(invalid(&[("traceparent", "")]), InvalidReason::Length);
    }

    #[test]
    fn tracestate_kept_verbatim() {
        let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
        let c = valid(&[
            ("traceparent", &tp("00", TRACE, SPAN, "01")),
            ("tracestate", state),
        ]);
        assert_eq!(c.trace_state.as_deref(), Some(state));
        // Odd spacing and empty members are not ours to normalise.
        let state = "rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE";
        let c = valid(&[
            ("tracestate", state),
            ("traceparent", &tp("00", TRACE, SPAN, "01")),
        ]);
        assert_eq!(c.trace_state.as_deref(), Some(state));
    }

    #[test]
    fn tracestate_headers_are_joined() {
        let c = valid(&[
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("traceparent", &tp("00", TRACE, SPAN, "01")),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("tracestate", ""),
        ]);
        assert_eq!(
            c.trace_state.as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
    }

    #[test]
    fn tracestate_empty_is_none() {
        let c = valid(&[
            ("traceparent", &tp("00", TRACE, SPAN, "01")),
            ("tracestate", ""),
        ]);
        assert_eq!(c.trace_state, None);
    }

    #[test]
    fn tracestate_ignored_without_a_valid_traceparent() {
        assert_eq!(
            extract(&headers(&[("tracestate", "rojo=1")])),
            Extracted::None
        );
        let zero_span = "0".repeat(16);
        assert_eq!(
            invalid(&[
                ("traceparent", &tp("00", TRACE, &zero_span, "01")),
                ("tracestate", "rojo=1")
            ]),
            InvalidReason::ZeroSpanId
        );
        // Falling back to B3 does not carry the W3C tracestate along.
        let b3 = format!("{B3_TRACE}-{B3_SPAN}-1");
        let c = valid(&[
            ("traceparent", "garbage"),
            ("tracestate", "rojo=1"),
            ("b3", &b3),
        ]);
        assert_eq!((c.format, c.trace_state), (Format::B3Single, None));
    }

    /// `count` entries `kNN=<pad>` of `len` characters each.
    fn entries(count: usize, len: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                let key = format!("k{i:02}=");
                format!("{key}{}", "v".repeat(len - key.len()))
            })
            .collect()
    }

    fn with_state(state: &str) -> Option<String> {
        valid(&[
            ("traceparent", &tp("00", TRACE, SPAN, "01")),
            ("tracestate", state),
        ])
        .trace_state
    }

    #[test]
    fn tracestate_exactly_512_is_kept() {
        // 32 entries of 15 characters + 31 commas = 511; one more char = 512.
        let mut list = entries(32, 15);
        list[0].push('x');
        let state = list.join(",");
        assert_eq!(state.len(), 512);
        assert_eq!(with_state(&state).as_deref(), Some(state.as_str()));
    }

    #[test]
    fn tracestate_truncated_by_dropping_trailing_entries() {
        let list = entries(40, 15);
        let state = list.join(",");
        assert!(state.len() > 512);
        let kept = with_state(&state).expect("some entries fit");
        assert!(kept.len() <= 512);
        // 32 entries fit exactly (511 chars); whole entries, in order.
        assert_eq!(kept, list[..32].join(","));
    }

    #[test]
    fn tracestate_truncation_drops_large_entries_first() {
        let mut list = entries(30, 15);
        list.insert(3, format!("big={}", "x".repeat(200)));
        let state = list.join(",");
        assert!(state.len() > 512);
        let kept = with_state(&state).expect("some entries fit");
        // Dropping the one large entry is enough: all 30 small ones stay.
        list.remove(3);
        assert_eq!(kept, list.join(","));
    }

    #[test]
    fn tracestate_truncation_of_several_headers() {
        // Each header alone fits; joined they do not.
        let first = entries(20, 15).join(",");
        let second = entries(20, 15)
            .into_iter()
            .map(|e| e.replace('k', "j"))
            .collect::<Vec<_>>()
            .join(",");
        let c = valid(&[
            ("traceparent", &tp("00", TRACE, SPAN, "01")),
            ("tracestate", &first),
            ("tracestate", &second),
        ]);
        let kept = c.trace_state.expect("some entries fit");
        assert!(kept.len() <= 512);
        assert!(kept.starts_with(&first));
        assert_eq!(kept.split(',').count(), 32);
    }

    #[test]
    fn tracestate_single_huge_entry_is_dropped() {
        let state = format!("huge={}", "x".repeat(600));
        assert_eq!(with_state(&state), None);
    }

    #[test]
    fn tracestate_truncation_never_cuts_an_entry() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..200 {
            let list: Vec<String> = (0..rng.random_range(1..80))
                .map(|i| format!("k{i}={}", "v".repeat(rng.random_range(1..200))))
                .collect();
            let state = list.join(",");
            // Every entry here is under 512 characters, so one always fits.
            let kept = with_state(&state).expect("an entry fits");
            if state.len() <= 512 {
                assert_eq!(kept, state);
            }
            assert!(kept.len() <= 512);
            for entry in kept.split(',') {
                assert!(list.iter().any(|e| e == entry), "cut entry {entry}");
            }
        }
    }

    #[test]
    fn b3_single_full() {
        let value = format!("{B3_TRACE}-{B3_SPAN}-1-{B3_PARENT}");
        assert_eq!(
            valid(&[("b3", &value)]),
            TraceContext {
                trace_id: B3_TRACE_ID,
                span_id: B3_SPAN_ID,
                sampled: true,
                trace_state: None,
                format: Format::B3Single,
            }
        );
    }

    #[test]
    fn b3_single_sampling_states() {
        for (suffix, sampled) in [
            ("", true), // absent: deferred, treated as sampled
            ("-1", true),
            ("-d", true),
            ("-0", false),
            ("-0-05e3ac9a4f6e3b90", false),
            ("-d-05e3ac9a4f6e3b90", true),
        ] {
            let value = format!("{B3_TRACE}-{B3_SPAN}{suffix}");
            assert_eq!(valid(&[("b3", &value)]).sampled, sampled, "{value}");
        }
    }

    #[test]
    fn b3_single_64_bit_trace_id_is_padded() {
        let value = format!("{}-{B3_SPAN}-1", &B3_TRACE[16..]);
        let mut expected = [0; 16];
        expected[8..].copy_from_slice(&B3_TRACE_ID[8..]);
        assert_eq!(valid(&[("b3", &value)]).trace_id, expected);
    }

    #[test]
    fn b3_single_tolerates_uppercase() {
        let value = format!(
            "{}-{}-1-{}",
            B3_TRACE.to_uppercase(),
            B3_SPAN.to_uppercase(),
            B3_PARENT.to_uppercase()
        );
        let c = valid(&[("b3", &value)]);
        assert_eq!((c.trace_id, c.span_id), (B3_TRACE_ID, B3_SPAN_ID));
    }

    #[test]
    fn b3_single_sampling_only_is_none() {
        for value in ["0", "1", "d"] {
            assert_eq!(
                extract(&headers(&[("b3", value)])),
                Extracted::None,
                "{value}"
            );
        }
    }

    #[test]
    fn b3_single_invalid() {
        let zero_trace = "0".repeat(32);
        let zero_span = "0".repeat(16);
        for (value, reason) in [
            (String::new(), InvalidReason::Delimiter(B3)),
            ("true".to_owned(), InvalidReason::Delimiter(B3)),
            (B3_TRACE.to_owned(), InvalidReason::Delimiter(B3)),
            (
                format!("{B3_TRACE}-{B3_SPAN}-1-{B3_PARENT}-x"),
                InvalidReason::Delimiter(B3),
            ),
            (format!("{B3_TRACE}-{B3_SPAN}-x"), InvalidReason::B3Sampling),
            (
                format!("{B3_TRACE}-{B3_SPAN}-true"),
                InvalidReason::B3Sampling,
            ),
            (format!("{B3_TRACE}-{B3_SPAN}-"), InvalidReason::B3Sampling),
            (
                format!("{B3_TRACE}-{B3_SPAN}-1-05e3"),
                InvalidReason::Hex("b3 parent span id"),
            ),
            (
                format!("{}-{B3_SPAN}", &B3_TRACE[..20]),
                InvalidReason::Hex("b3 trace id"),
            ),
            (
                format!("{}g-{B3_SPAN}", &B3_TRACE[..31]),
                InvalidReason::Hex("b3 trace id"),
            ),
            (
                format!("{B3_TRACE}-{}", &B3_SPAN[..15]),
                InvalidReason::Hex("b3 span id"),
            ),
            (
                format!("{zero_trace}-{B3_SPAN}"),
                InvalidReason::ZeroTraceId,
            ),
            (
                format!("{}-{B3_SPAN}", &zero_trace[..16]),
                InvalidReason::ZeroTraceId,
            ),
            (format!("{B3_TRACE}-{zero_span}"), InvalidReason::ZeroSpanId),
        ] {
            assert_eq!(invalid(&[("b3", &value)]), reason, "{value:?}");
        }
    }

    #[test]
    fn b3_single_duplicated_is_invalid() {
        let value = format!("{B3_TRACE}-{B3_SPAN}-1");
        assert_eq!(
            invalid(&[("b3", &value), ("b3", &value)]),
            InvalidReason::Duplicate(B3)
        );
    }

    #[test]
    fn b3_multi_full() {
        let c = valid(&[
            ("x-b3-traceid", B3_TRACE),
            ("x-b3-spanid", B3_SPAN),
            ("x-b3-parentspanid", B3_PARENT),
            ("x-b3-sampled", "1"),
        ]);
        assert_eq!(
            c,
            TraceContext {
                trace_id: B3_TRACE_ID,
                span_id: B3_SPAN_ID,
                sampled: true,
                trace_state: None,
                format: Format::B3Multi,
            }
        );
    }

    #[test]
    fn b3_multi_sampling_states() {
        for (extra, sampled) in [
            (&[][..], true), // absent: deferred, treated as sampled
            (&[("x-b3-sampled", "1")][..], true),
            (&[("x-b3-sampled", "true")][..], true),
            (&[("x-b3-sampled", "True")][..], true),
            (&[("x-b3-sampled", "0")][..], false),
            (&[("x-b3-sampled", "false")][..], false),
            (&[("x-b3-flags", "1")][..], true),
            (&[("x-b3-flags", "1"), ("x-b3-sampled", "0")][..], true),
            (&[("x-b3-flags", "0"), ("x-b3-sampled", "0")][..], false),
        ] {
            let mut pairs = vec![("x-b3-traceid", B3_TRACE), ("x-b3-spanid", B3_SPAN)];
            pairs.extend_from_slice(extra);
            assert_eq!(valid(&pairs).sampled, sampled, "{extra:?}");
        }
    }

    #[test]
    fn b3_multi_64_bit_and_uppercase() {
        let upper_trace = B3_TRACE[16..].to_uppercase();
        let upper_span = B3_SPAN.to_uppercase();
        let c = valid(&[("x-b3-traceid", &upper_trace), ("x-b3-spanid", &upper_span)]);
        let mut expected = [0; 16];
        expected[8..].copy_from_slice(&B3_TRACE_ID[8..]);
        assert_eq!((c.trace_id, c.span_id), (expected, B3_SPAN_ID));
    }

    #[test]
    fn b3_multi_invalid() {
        assert_eq!(
            invalid(&[("x-b3-traceid", B3_TRACE)]),
            InvalidReason::Missing {
                present: X_B3_TRACE_ID,
                missing: X_B3_SPAN_ID
            }
        );
        assert_eq!(
            invalid(&[("x-b3-spanid", B3_SPAN), ("x-b3-sampled", "1")]),
            InvalidReason::Missing {
                present: X_B3_SPAN_ID,
                missing: X_B3_TRACE_ID
            }
        );
        assert_eq!(
            invalid(&[
                ("x-b3-traceid", B3_TRACE),
                ("x-b3-spanid", B3_SPAN),
                ("x-b3-sampled", "yes"),
            ]),
            InvalidReason::B3Sampling
        );
        assert_eq!(
            invalid(&[("x-b3-traceid", &"0".repeat(32)), ("x-b3-spanid", B3_SPAN)]),
            InvalidReason::ZeroTraceId
        );
        assert_eq!(
            invalid(&[
                ("x-b3-traceid", B3_TRACE),
                ("x-b3-spanid", "e457b5a2e4d86bd")
            ]),
            InvalidReason::Hex(X_B3_SPAN_ID)
        );
        assert_eq!(
            invalid(&[
                ("x-b3-traceid", B3_TRACE),
                ("x-b3-traceid", B3_TRACE),
                ("x-b3-spanid", B3_SPAN),
            ]),
            InvalidReason::Duplicate(X_B3_TRACE_ID)
        );
        assert_eq!(
            invalid(&[
                ("x-b3-traceid", B3_TRACE),
                ("x-b3-spanid", B3_SPAN),
                ("x-b3-sampled", "1"),
                ("x-b3-sampled", "0"),
            ]),
            InvalidReason::Duplicate(X_B3_SAMPLED)
        );
    }

    #[test]
    fn b3_multi_without_ids_is_none() {
        for pairs in [
            &[("x-b3-sampled", "1")][..],
            &[("x-b3-sampled", "0")][..],
            &[("x-b3-flags", "1")][..],
            &[("x-b3-parentspanid", B3_PARENT)][..],
        ] {
            assert_eq!(extract(&headers(pairs)), Extracted::None, "{pairs:?}");
        }
    }

    #[test]
    fn no_context_headers() {
        assert_eq!(extract(&[]), Extracted::None);
        assert_eq!(
            extract(&headers(&[("host", "example.com"), ("accept", "*/*")])),
            Extracted::None
        );
        // Names are expected lowercased by the caller.
        assert_eq!(
            extract(&headers(&[("Traceparent", &tp("00", TRACE, SPAN, "01"))])),
            Extracted::None
        );
    }

    #[test]
    fn w3c_wins_over_b3() {
        let b3 = format!("{B3_TRACE}-{B3_SPAN}-0");
        let c = valid(&[
            ("b3", &b3),
            ("x-b3-traceid", B3_TRACE),
            ("x-b3-spanid", B3_SPAN),
            ("traceparent", &tp("00", TRACE, SPAN, "01")),
        ]);
        assert_eq!(
            (c.format, c.trace_id, c.sampled),
            (Format::W3c, TRACE_ID, true)
        );
    }

    #[test]
    fn b3_single_wins_over_multi() {
        let b3 = format!("{B3_TRACE}-{B3_SPAN}-1");
        let c = valid(&[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("b3", &b3)]);
        assert_eq!((c.format, c.trace_id), (Format::B3Single, B3_TRACE_ID));
    }

    #[test]
    fn a_valid_format_wins_over_an_invalid_one() {
        let b3 = format!("{B3_TRACE}-{B3_SPAN}-1");
        let c = valid(&[("traceparent", "00-bogus"), ("b3", &b3)]);
        assert_eq!(c.format, Format::B3Single);
        let c = valid(&[
            ("b3", "garbage"),
            ("x-b3-traceid", B3_TRACE),
            ("x-b3-spanid", B3_SPAN),
        ]);
        assert_eq!(c.format, Format::B3Multi);
        // A sampling-only b3 does not hide the multi-header form.
        let c = valid(&[
            ("b3", "1"),
            ("x-b3-traceid", B3_TRACE),
            ("x-b3-spanid", B3_SPAN),
        ]);
        assert_eq!(c.format, Format::B3Multi);
    }

    #[test]
    fn all_invalid_reports_the_w3c_problem_first() {
        assert_eq!(
            invalid(&[
                ("x-b3-traceid", B3_TRACE),
                ("b3", "garbage"),
                ("traceparent", &tp("ff", TRACE, SPAN, "01")),
            ]),
            InvalidReason::Version
        );
        assert_eq!(
            invalid(&[("x-b3-traceid", B3_TRACE), ("b3", "garbage")]),
            InvalidReason::Delimiter(B3)
        );
    }

    #[test]
    fn format_traceparent_exact() {
        assert_eq!(
            format_traceparent(&TRACE_ID, &SPAN_ID, true),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(
            format_traceparent(&TRACE_ID, &SPAN_ID, false),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        let ones = format_traceparent(&[0xff; 16], &[0xab; 8], true);
        assert_eq!(ones, format!("00-{}-{}-01", "f".repeat(32), "ab".repeat(8)));
    }

    #[test]
    fn format_then_parse_round_trips() {
        let mut rng = SmallRng::seed_from_u64(3);
        for i in 0..1000 {
            let trace_id: [u8; 16] = rng.random();
            let span_id: [u8; 8] = rng.random();
            let sampled = i % 2 == 0;
            let value = format_traceparent(&trace_id, &span_id, sampled);
            assert_eq!(value.len(), TRACEPARENT_LEN);
            let parsed = parse_traceparent(&value);
            if trace_id == [0; 16] || span_id == [0; 8] {
                assert!(parsed.is_err());
            } else {
                assert_eq!(parsed, Ok((trace_id, span_id, u8::from(sampled))));
            }
        }
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            InvalidReason::Duplicate(TRACEPARENT).to_string(),
            "several traceparent headers"
        );
        assert_eq!(
            InvalidReason::Missing {
                present: X_B3_TRACE_ID,
                missing: X_B3_SPAN_ID
            }
            .to_string(),
            "x-b3-traceid without x-b3-spanid"
        );
    }
}
