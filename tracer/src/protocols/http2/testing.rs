//! Frame builders for tests (here and in the connection stage's tests).
use loona_hpack::Encoder;

pub use super::frame::PREFACE;

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len())
        .expect("small payload")
        .to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in values {
        p.extend(id.to_be_bytes());
        p.extend(v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

pub fn data(stream: u32, len: usize, end_stream: bool) -> Vec<u8> {
    frame(
        DATA,
        if end_stream { END_STREAM } else { 0 },
        stream,
        &vec![b'd'; len],
    )
}

pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn goaway(last_stream: u32, code: u32) -> Vec<u8> {
    let mut p = last_stream.to_be_bytes().to_vec();
    p.extend(code.to_be_bytes());
    frame(GOAWAY, 0, 0, &p)
}

/// One direction's HPACK encoder.
pub struct Hpack(Encoder<'static>);

impl Default for Hpack {
    fn default() -> Self {
        Self(Encoder::new())
    }
}

impl Hpack {
    pub fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        self.0
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    /// A HEADERS frame with END_HEADERS.
    pub fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
        let block = self.block(fields);
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        frame(HEADERS, flags, stream, &block)
    }
}

/// A gRPC length-prefixed message of `len` payload bytes.
pub fn grpc_message(stream: u32, len: usize, end_stream: bool) -> Vec<u8> {
    let mut p = vec![0];
    p.extend(u32::try_from(len).expect("small").to_be_bytes());
    p.extend(vec![b'm'; len]);
    frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, &p)
}

pub fn grpc_request<'a>(path: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "svc.test:50051"),
        ("content-type", "application/grpc"),
        ("user-agent", "grpc-go/1.33.3"),
        ("te", "trailers"),
    ];
    f.extend_from_slice(extra);
    f
}
