//! Following a message body to its end, through captured bytes and through
//! runs of bytes known only by their count.

/// A body being read. Holds no buffers: chunked framing is decoded a byte
/// at a time, so hostile input cannot make it grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Body {
    Length {
        remaining: u64,
    },
    Chunked(Chunked),
    UntilClose,
    /// Chunked framing that can no longer be followed (see the module docs).
    Lost(LastBytes),
}

/// What one call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Progress {
    /// Input bytes (or skipped bytes) that belonged to this body.
    pub(super) used: u64,
    /// Body bytes among them, after transfer decoding.
    pub(super) payload: u64,
    pub(super) done: bool,
    /// The chunked framing was malformed; the body is now [`Body::Lost`].
    pub(super) malformed: bool,
}

impl Body {
    pub(super) fn chunked(max_line: usize) -> Self {
        Self::Chunked(Chunked {
            state: ChunkState::Size {
                value: 0,
                digits: 0,
            },
            line_len: 0,
            max_line,
        })
    }

    pub(super) fn consume(&mut self, input: &[u8]) -> Progress {
        match self {
            Self::Length { remaining } => {
                let n = (*remaining).min(input.len() as u64);
                *remaining -= n;
                Progress {
                    used: n,
                    payload: n,
                    done: *remaining == 0,
                    malformed: false,
                }
            }
            Self::Chunked(chunked) => {
                let progress = chunked.consume(input);
                if progress.malformed {
                    let mut last = LastBytes::default();
                    last.push(&input[progress.used as usize..]);
                    *self = Self::Lost(last);
                    let rest = (input.len() as u64) - progress.used;
                    return Progress {
                        used: input.len() as u64,
                        payload: progress.payload + rest,
                        ..progress
                    };
                }
                progress
            }
            Self::UntilClose => Progress {
                used: input.len() as u64,
                payload: input.len() as u64,
                ..Progress::default()
            },
            Self::Lost(last) => {
                last.push(input);
                Progress {
                    used: input.len() as u64,
                    payload: input.len() as u64,
                    ..Progress::default()
                }
            }
        }
    }

    /// Passes over `n` bytes that were moved but not captured.
    pub(super) fn skip(&mut self, n: u64) -> Progress {
        match self {
            Self::Length { remaining } => {
                let used = (*remaining).min(n);
                *remaining -= used;
                Progress {
                    used,
                    payload: used,
                    done: *remaining == 0,
                    malformed: false,
                }
            }
            Self::Chunked(chunked) => {
                let mut payload = 0;
                if let ChunkState::Data { remaining } = &mut chunked.state {
                    payload = (*remaining).min(n);
                    *remaining -= payload;
                    if *remaining == 0 {
                        chunked.state = ChunkState::DataCr;
                    }
                }
                if payload < n {
                    // The framing after the chunk data was not captured.
                    *self = Self::Lost(LastBytes::default());
                }
                Progress {
                    used: n,
                    payload: n,
                    ..Progress::default()
                }
            }
            Self::UntilClose => Progress {
                used: n,
                payload: n,
                ..Progress::default()
            },
            Self::Lost(last) => {
                *last = LastBytes::default();
                Progress {
                    used: n,
                    payload: n,
                    ..Progress::default()
                }
            }
        }
    }

    /// Whether a body whose framing was lost ends with the last chunk.
    pub(super) fn lost_and_ended(&self) -> bool {
        matches!(self, Self::Lost(last) if last.ends_chunked_body())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chunked {
    state: ChunkState,
    /// Bytes in the current extension or trailer line, capped by `max_line`
    /// so that garbage is rejected rather than skipped forever.
    line_len: usize,
    max_line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size {
        value: u64,
        digits: u8,
    },
    /// After the size: extensions, whitespace, the CR, up to the LF.
    SizeLine {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer field line or of the final empty line.
    TrailerStart,
    TrailerLine,
    FinalLf,
}

/// More hex digits than this cannot fit in a u64.
const MAX_SIZE_DIGITS: u8 = 16;

impl Chunked {
    fn consume(&mut self, input: &[u8]) -> Progress {
        let mut progress = Progress::default();
        let mut i = 0;
        while i < input.len() {
            if let ChunkState::Data { remaining } = &mut self.state {
                let n = (*remaining).min((input.len() - i) as u64);
                *remaining -= n;
                if *remaining == 0 {
                    self.state = ChunkState::DataCr;
                }
                progress.payload += n;
                // n <= input.len() - i, so it fits in usize.
                i += n as usize;
                continue;
            }
            let b = input[i];
            i += 1;
            match self.step(b) {
                Step::Continue => {}
                Step::Done => {
                    progress.done = true;
                    break;
                }
                Step::Malformed => {
                    progress.malformed = true;
                    break;
                }
            }
        }
        progress.used = i as u64;
        progress
    }

    fn step(&mut self, b: u8) -> Step {
        self.state = match self.state {
            ChunkState::Size { value, digits } => match hex_value(b) {
                Some(d) if digits < MAX_SIZE_DIGITS => ChunkState::Size {
                    value: value << 4 | u64::from(d),
                    digits: digits + 1,
                },
                Some(_) => return Step::Malformed,
                None if digits == 0 => return Step::Malformed,
                None if b == b'\n' => self.after_size_line(value),
                None if matches!(b, b';' | b' ' | b'\t' | b'\r') => {
                    self.line_len = 1;
                    ChunkState::SizeLine { value }
                }
                None => return Step::Malformed,
            },
            ChunkState::SizeLine { value } => {
                if b == b'\n' {
                    self.after_size_line(value)
                } else if self.long_line() {
                    return Step::Malformed;
                } else {
                    ChunkState::SizeLine { value }
                }
            }
            ChunkState::Data { .. } => return Step::Malformed,
            ChunkState::DataCr => match b {
                b'\r' => ChunkState::DataLf,
                // Bare LF line ends are tolerated, as httparse does in heads.
                b'\n' => ChunkState::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Step::Malformed,
            },
            ChunkState::DataLf => match b {
                b'\n' => ChunkState::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Step::Malformed,
            },
            ChunkState::TrailerStart => match b {
                b'\r' => ChunkState::FinalLf,
                b'\n' => return Step::Done,
                _ => {
                    self.line_len = 1;
                    ChunkState::TrailerLine
                }
            },
            ChunkState::TrailerLine => {
                if b == b'\n' {
                    ChunkState::TrailerStart
                } else if self.long_line() {
                    return Step::Malformed;
                } else {
                    ChunkState::TrailerLine
                }
            }
            ChunkState::FinalLf => match b {
                b'\n' => return Step::Done,
                _ => return Step::Malformed,
            },
        };
        Step::Continue
    }

    fn after_size_line(&self, value: u64) -> ChunkState {
        if value == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data { remaining: value }
        }
    }

    fn long_line(&mut self) -> bool {
        self.line_len += 1;
        self.line_len > self.max_line
    }
}

enum Step {
    Continue,
    Done,
    Malformed,
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The last few known bytes of a body whose framing was lost, forgotten at
/// every uncaptured run (what preceded it is no longer adjacent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LastBytes {
    /// Right-aligned: the newest byte is at the end.
    bytes: [u8; 8],
    len: usize,
}

impl LastBytes {
    fn push(&mut self, input: &[u8]) {
        let n = input.len().min(self.bytes.len());
        self.bytes.rotate_left(n);
        let start = self.bytes.len() - n;
        self.bytes[start..].copy_from_slice(&input[input.len() - n..]);
        self.len = (self.len + n).min(self.bytes.len());
    }

    /// A last-chunk with no trailers, `0\r\n\r\n`, closing the body. The
    /// byte before it must end the previous chunk's CRLF (so that `10\r\n\r\n`
    /// is not taken for it), unless it was not captured.
    fn ends_chunked_body(&self) -> bool {
        const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
        let known = &self.bytes[self.bytes.len() - self.len..];
        known.ends_with(LAST_CHUNK)
            && (known.len() == LAST_CHUNK.len()
                || known[known.len() - LAST_CHUNK.len() - 1] == b'\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns (used, payload, done).
    fn feed(body: &mut Body, input: &[u8], step: usize) -> (u64, u64, bool) {
        let (mut used, mut payload) = (0, 0);
        for piece in input.chunks(step) {
            let p = body.consume(piece);
            used += p.used;
            payload += p.payload;
            assert!(!p.malformed, "malformed at {used}");
            if p.done {
                return (used, payload, true);
            }
            assert_eq!(p.used, piece.len() as u64);
        }
        (used, payload, false)
    }

    const CHUNKED: &[u8] =
        b"7\r\nMozilla\r\n11;name=val\r\nDeveloper Network\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\nNEXT";

    #[test]
    fn chunked_with_extensions_and_trailers_any_split() {
        for step in 1..=CHUNKED.len() {
            let mut body = Body::chunked(1024);
            let (used, payload, done) = feed(&mut body, CHUNKED, step);
            assert!(done, "step {step}");
            assert_eq!(used as usize, CHUNKED.len() - 4, "step {step}");
            assert_eq!(payload, 24, "step {step}");
        }
    }

    #[test]
    fn chunked_bare_lf_and_uppercase_hex() {
        let mut body = Body::chunked(1024);
        assert_eq!(
            feed(&mut body, b"A\nabcdefghij\n0\n\n", 100),
            (16, 10, true)
        );
    }

    #[test]
    fn chunked_malformed_becomes_lost() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nabcdeXY",
            b"5 \r\nabcde\r\n0\r\n\rX",
        ] {
            let mut body = Body::chunked(1024);
            let p = body.consume(bad);
            assert!(p.malformed, "{bad:?}");
            assert_eq!(p.used, bad.len() as u64);
            assert!(matches!(body, Body::Lost(_)));
        }
    }

    #[test]
    fn chunk_size_overflow_is_malformed() {
        let mut body = Body::chunked(1024);
        assert!(!body.consume(b"FFFFFFFFFFFFFFFF").malformed);
        assert!(body.consume(b"F").malformed);
    }

    #[test]
    fn overlong_extension_is_malformed() {
        let mut body = Body::chunked(16);
        let p = body.consume(b"5;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        assert!(p.malformed);
    }

    #[test]
    fn skip_inside_chunk_data_stays_in_sync() {
        let mut body = Body::chunked(1024);
        body.consume(b"1000\r\nabc");
        let p = body.skip(0x1000 - 3 - 1);
        assert_eq!((p.used, p.payload, p.done), (0x1000 - 4, 0x1000 - 4, false));
        let (used, payload, done) = feed(&mut body, b"z\r\n0\r\n\r\n", 100);
        assert_eq!((used, payload, done), (8, 1, true));
    }

    #[test]
    fn skip_past_chunk_data_loses_framing() {
        let mut body = Body::chunked(1024);
        body.consume(b"10\r\n");
        body.skip(100);
        assert!(matches!(body, Body::Lost(_)));
        assert!(!body.lost_and_ended());
        body.consume(b"\r\n0\r\n\r\n");
        assert!(body.lost_and_ended());
    }

    #[test]
    fn last_chunk_detection() {
        let ended = |parts: &[&[u8]]| {
            let mut body = Body::Lost(LastBytes::default());
            for part in parts {
                if part.is_empty() {
                    body.skip(10);
                } else {
                    body.consume(part);
                }
            }
            body.lost_and_ended()
        };
        assert!(ended(&[b"abc\r\n0\r\n\r\n"]));
        assert!(ended(&[b"abc\r\n", b"0\r\n", b"\r\n"]));
        assert!(ended(&[b"0\r\n\r\n"]));
        assert!(ended(&[b"abc", b"", b"0\r\n\r\n"]));
        assert!(!ended(&[b"abc\r\n10\r\n\r\n"]));
        assert!(!ended(&[b"abc\r\n0\r\n\r\n", b""]));
        assert!(!ended(&[b"abc\r\n0\r\n\r\nx"]));
    }

    #[test]
    fn length_body() {
        let mut body = Body::Length { remaining: 10 };
        assert_eq!(body.consume(b"12345").used, 5);
        assert_eq!(body.skip(3).used, 3);
        let p = body.consume(b"67890");
        assert_eq!((p.used, p.payload, p.done), (2, 2, true));

        let mut body = Body::Length {
            remaining: u64::MAX,
        };
        assert!(!body.skip(u64::MAX - 1).done);
        assert!(body.skip(5).done);
    }
}
