//! HTTP/2 frame headers and the payload layouts the parser reads (RFC 9113
//! §4 and §6). Pure functions on bytes.
use super::error::Http2Error;

/// What a client sends first on every HTTP/2 connection (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE until a peer says otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE a peer may announce.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

pub mod settings {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    /// Extension frames, which receivers ignore (RFC 9113 §5.5).
    Unknown(u8),
}

impl Kind {
    const fn from_u8(t: u8) -> Self {
        match t {
            0 => Self::Data,
            1 => Self::Headers,
            2 => Self::Priority,
            3 => Self::RstStream,
            4 => Self::Settings,
            5 => Self::PushPromise,
            6 => Self::Ping,
            7 => Self::GoAway,
            8 => Self::WindowUpdate,
            9 => Self::Continuation,
            other => Self::Unknown(other),
        }
    }

    /// Frames that carry an HPACK header block fragment.
    pub const fn carries_header_block(self) -> bool {
        matches!(self, Self::Headers | Self::PushPromise | Self::Continuation)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: u32,
    pub kind: Kind,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    pub fn parse(b: &[u8; HEADER_LEN]) -> Self {
        Self {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: Kind::from_u8(b[3]),
            flags: b[4],
            // The reserved top bit is ignored on receipt (RFC 9113 §4.1).
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether a conforming peer could have sent this header. Catches lost
    /// framing (bytes that are not a frame header) early, so the connection
    /// is given up instead of misreading what follows.
    pub fn check(&self, max_frame_size: u32) -> Result<(), Http2Error> {
        let on_stream = self.stream != 0;
        let ok = self.len <= max_frame_size
            && match self.kind {
                Kind::Data | Kind::Headers | Kind::Continuation | Kind::PushPromise => on_stream,
                Kind::Priority => on_stream && self.len == 5,
                Kind::RstStream => on_stream && self.len == 4,
                Kind::Settings => !on_stream && self.len.is_multiple_of(6),
                Kind::Ping => !on_stream && self.len == 8,
                Kind::GoAway => !on_stream && self.len >= 8,
                Kind::WindowUpdate => self.len == 4,
                Kind::Unknown(_) => true,
            };
        if ok {
            Ok(())
        } else {
            Err(Http2Error::Malformed)
        }
    }
}

/// The header block fragment of a HEADERS frame: the payload less its pad
/// length, priority fields and padding.
pub fn headers_fragment<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<&'a [u8], Http2Error> {
    let (rest, pad) = unpad(h, payload)?;
    let skip = if h.has(flags::PRIORITY) { 5 } else { 0 };
    if rest.len() < skip + pad {
        return Err(Http2Error::Malformed);
    }
    Ok(&rest[skip..rest.len() - pad])
}

/// The header block fragment of a PUSH_PROMISE frame (after the promised
/// stream id).
pub fn push_promise_fragment<'a>(
    h: &FrameHeader,
    payload: &'a [u8],
) -> Result<&'a [u8], Http2Error> {
    let (rest, pad) = unpad(h, payload)?;
    if rest.len() < 4 + pad {
        return Err(Http2Error::Malformed);
    }
    Ok(&rest[4..rest.len() - pad])
}

/// Application bytes of a DATA frame of `len` bytes whose payload starts
/// with `first` (the pad length when PADDED; `None` if not captured, when
/// the frame length is the best estimate).
pub fn data_len(h: &FrameHeader, first: Option<u8>) -> u64 {
    let len = u64::from(h.len);
    match (h.has(flags::PADDED), first) {
        (true, Some(pad)) => len.saturating_sub(1 + u64::from(pad)),
        _ => len,
    }
}

/// (payload after the pad length byte, padding length).
fn unpad<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<(&'a [u8], usize), Http2Error> {
    if !h.has(flags::PADDED) {
        return Ok((payload, 0));
    }
    let (&pad, rest) = payload.split_first().ok_or(Http2Error::Malformed)?;
    Ok((rest, usize::from(pad)))
}

/// (identifier, value) of each setting in a SETTINGS payload.
pub fn settings(payload: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    payload.chunks_exact(6).map(|s| {
        (
            u16::from_be_bytes([s[0], s[1]]),
            u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
        )
    })
}

/// A 32-bit big-endian value at `at` (RST_STREAM's error code at 0,
/// GOAWAY's last stream id at 0).
pub fn u32_at(payload: &[u8], at: usize) -> Option<u32> {
    let b = payload.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, kind: u8, fl: u8, stream: u32) -> FrameHeader {
        let l = len.to_be_bytes();
        let s = stream.to_be_bytes();
        FrameHeader::parse(&[l[1], l[2], l[3], kind, fl, s[0], s[1], s[2], s[3]])
    }

    #[test]
    fn parses_and_checks_headers() {
        let h = header(5, 1, 0x25, 0x8000_0003);
        assert_eq!(
            (h.len, h.kind, h.stream),
            (5, Kind::Headers, 3),
            "reserved bit ignored"
        );
        assert!(h.has(flags::END_STREAM) && h.has(flags::PRIORITY));
        assert!(h.check(DEFAULT_MAX_FRAME_SIZE).is_ok());
        assert!(
            header(1, 0, 0, 0).check(16_384).is_err(),
            "DATA on stream 0"
        );
        assert!(header(20_000, 0, 0, 1).check(16_384).is_err(), "too long");
        assert!(header(20_000, 0, 0, 1).check(32_768).is_ok());
        assert!(header(7, 6, 0, 0).check(16_384).is_err(), "PING of 7");
        assert!(header(12, 4, 0, 0).check(16_384).is_ok());
        assert!(header(3, 0xfa, 0, 9).check(16_384).is_ok(), "extension");
    }

    #[test]
    fn strips_padding_and_priority() {
        let h = header(0, 1, flags::PADDED | flags::PRIORITY, 1);
        let payload = [2, 0, 0, 0, 0, 16, 0x82, 0x84, 0, 0];
        assert_eq!(headers_fragment(&h, &payload).unwrap(), &[0x82, 0x84]);
        assert!(headers_fragment(&h, &[9, 0, 0, 0, 0, 16, 0x82]).is_err());
        assert!(headers_fragment(&h, &[]).is_err());
        let plain = header(0, 1, 0, 1);
        assert_eq!(headers_fragment(&plain, &[0x82]).unwrap(), &[0x82]);
        let pp = header(0, 5, flags::PADDED, 1);
        assert_eq!(
            push_promise_fragment(&pp, &[1, 0, 0, 0, 2, 0x82, 0]).unwrap(),
            &[0x82]
        );
        assert!(push_promise_fragment(&pp, &[1, 0, 0, 0]).is_err());
        let data = header(10, 0, flags::PADDED, 1);
        assert_eq!(data_len(&data, Some(4)), 5);
        assert_eq!(data_len(&data, None), 10);
        assert_eq!(data_len(&data, Some(200)), 0);
    }

    #[test]
    fn reads_settings_and_codes() {
        let p = [0, 1, 0, 0, 0x10, 0, 0, 5, 0, 0, 0x40, 0];
        let s: Vec<_> = settings(&p).collect();
        assert_eq!(s, vec![(1, 4096), (5, 16_384)]);
        assert_eq!(u32_at(&[0, 0, 0, 8], 0), Some(8));
        assert_eq!(u32_at(&[0, 0, 8], 0), None);
    }
}
