//! One direction's byte stream → whole frames, across syscall boundaries and
//! through bytes that were not captured.
//!
//! A frame may span several chunks and a chunk may hold several frames; the
//! reader keeps what it needs of the current frame (see [`keep`]) and hands
//! each frame over once its last byte has passed. Uncaptured bytes inside a
//! payload are skipped by count; a frame header inside them cannot be read,
//! so the reader stops there ([`Http2Error::Desync`]).
use super::{
    Times,
    error::Http2Error,
    frame::{self, FrameHeader, HEADER_LEN, Kind, PREFACE},
};

/// A whole frame, as far as it was captured.
#[derive(Debug)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    /// The payload bytes the parser reads (see [`keep`]).
    pub payload: &'a [u8],
    /// Some of those bytes were not captured: `payload` is incomplete.
    pub lost: bool,
    /// The chunk holding the frame's first byte, and its last.
    pub first: Times,
    pub last: Times,
}

/// What the reader found.
#[derive(Debug)]
pub enum Read<'a> {
    Frame(Frame<'a>),
    /// The reader stopped: nothing more will come from it.
    Error(Http2Error),
    /// The direction that should start with the client preface did not (the
    /// reader stopped).
    NoPreface,
}

/// Buffers grown past this by a large frame are freed once it is handled,
/// so idle connections do not keep them.
pub const RETAINED_BYTES: usize = 4096;

/// SETTINGS entries read beyond this many bytes are ignored (a peer sends a
/// handful).
const MAX_SETTINGS_BYTES: u32 = 6 * 32;

/// How many leading payload bytes of a frame the parser reads; the rest is
/// only counted. Header blocks are read whole (bounded by the caller's
/// `max_block`).
fn keep(h: &FrameHeader) -> u32 {
    match h.kind {
        Kind::Headers | Kind::PushPromise | Kind::Continuation => h.len,
        Kind::Settings => h.len.min(MAX_SETTINGS_BYTES),
        Kind::RstStream => 4,
        Kind::GoAway => 8,
        Kind::Data if h.has(frame::flags::PADDED) => 1,
        _ => 0,
    }
}

#[derive(Debug)]
enum State {
    /// Matching the client preface (client-to-server direction only).
    Preface {
        matched: usize,
    },
    Header {
        buf: [u8; HEADER_LEN],
        have: usize,
        first: Times,
    },
    Payload {
        header: FrameHeader,
        remaining: u32,
        keep: u32,
        lost: bool,
        first: Times,
    },
    Stopped,
}

#[derive(Debug)]
pub struct FrameReader {
    state: State,
    /// Kept payload bytes of the current frame.
    buf: Vec<u8>,
}

impl FrameReader {
    /// A reader for the direction that starts with the client preface.
    pub fn after_preface() -> Self {
        Self {
            state: State::Preface { matched: 0 },
            buf: Vec::new(),
        }
    }

    /// A reader for the direction that starts with a frame.
    pub fn at_frame() -> Self {
        Self {
            state: State::Header {
                buf: [0; HEADER_LEN],
                have: 0,
                first: Times::default(),
            },
            buf: Vec::new(),
        }
    }

    /// Payload bytes held for the current frame.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    pub fn stop(&mut self) {
        self.state = State::Stopped;
        self.buf = Vec::new();
    }

    /// Captured bytes. `max_frame_size` is what the receiving end accepts;
    /// `max_block` bounds the kept payload of one frame.
    pub fn known(
        &mut self,
        mut bytes: &[u8],
        times: Times,
        max_frame_size: u32,
        max_block: usize,
        out: &mut impl FnMut(Read<'_>),
    ) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Stopped => return,
                State::Preface { matched } => {
                    let n = (PREFACE.len() - *matched).min(bytes.len());
                    if bytes[..n] != PREFACE[*matched..*matched + n] {
                        self.stop();
                        return out(Read::NoPreface);
                    }
                    *matched += n;
                    bytes = &bytes[n..];
                    if *matched == PREFACE.len() {
                        *self = Self::at_frame();
                    }
                }
                State::Header { buf, have, first } => {
                    if *have == 0 {
                        *first = times;
                    }
                    let n = (HEADER_LEN - *have).min(bytes.len());
                    buf[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have < HEADER_LEN {
                        continue;
                    }
                    let header = FrameHeader::parse(buf);
                    let first = *first;
                    if let Err(e) = header.check(max_frame_size) {
                        return self.fail(e, out);
                    }
                    let keep = keep(&header);
                    if keep as usize > max_block {
                        return self.fail(Http2Error::HeaderBlock, out);
                    }
                    self.state = State::Payload {
                        header,
                        remaining: header.len,
                        keep,
                        lost: false,
                        first,
                    };
                    self.finish_if_done(times, out);
                }
                State::Payload {
                    remaining, keep, ..
                } => {
                    let n = (*remaining as usize).min(bytes.len());
                    let wanted = (*keep as usize).saturating_sub(self.buf.len()).min(n);
                    // Only bytes at the payload's start are kept: `wanted`
                    // is zero once past them (or once bytes were lost).
                    self.buf.extend_from_slice(&bytes[..wanted]);
                    *remaining -= n as u32;
                    bytes = &bytes[n..];
                    self.finish_if_done(times, out);
                }
            }
        }
    }

    /// `n` bytes that were not captured.
    pub fn unknown(&mut self, n: u64, times: Times, out: &mut impl FnMut(Read<'_>)) {
        if n == 0 {
            return;
        }
        match &mut self.state {
            State::Stopped => {}
            State::Payload {
                header,
                remaining,
                keep,
                lost,
                ..
            } if n <= u64::from(*remaining) => {
                let done = header.len - *remaining;
                if done < *keep {
                    *lost = true;
                    // Later bytes are no longer the payload's prefix.
                    *keep = self.buf.len() as u32;
                }
                *remaining -= n as u32;
                self.finish_if_done(times, out);
            }
            State::Preface { .. } | State::Header { .. } | State::Payload { .. } => {
                self.fail(Http2Error::Desync, out);
            }
        }
    }

    fn finish_if_done(&mut self, times: Times, out: &mut impl FnMut(Read<'_>)) {
        let State::Payload {
            header,
            remaining: 0,
            lost,
            first,
            ..
        } = self.state
        else {
            return;
        };
        out(Read::Frame(Frame {
            header,
            payload: &self.buf,
            lost,
            first,
            last: times,
        }));
        self.buf.clear();
        if self.buf.capacity() > RETAINED_BYTES {
            self.buf = Vec::new();
        }
        self.state = State::Header {
            buf: [0; HEADER_LEN],
            have: 0,
            first: times,
        };
    }

    fn fail(&mut self, e: Http2Error, out: &mut impl FnMut(Read<'_>)) {
        self.stop();
        out(Read::Error(e));
    }
}
