//! One HTTP/2 connection: two directions of chunks in, one exchange per
//! stream out.
use std::collections::HashMap;

use super::{
    Chunk, Direction, Limits, Output, Times,
    error::Http2Error,
    frame::{self, FrameHeader, HEADER_LEN, Kind, flags},
    headers::{self, Fields, HeaderDecoder, KEPT_REQUEST, KEPT_RESPONSE},
    message::{Exchange, Outcome, Request, Response, Started},
    reader::{Frame, FrameReader, RETAINED_BYTES, Read},
};

const fn idx(dir: Direction) -> usize {
    match dir {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// Parses the HTTP/2 traffic of one connection whose start (the client
/// preface) was seen. See the module docs.
#[derive(Debug)]
pub struct Http2Connection {
    /// By [`idx`] of the direction they read.
    readers: [FrameReader; 2],
    core: Core,
}

/// Everything but the frame readers, so that frames a reader hands over can
/// be applied while it is borrowed.
#[derive(Debug)]
struct Core {
    limits: Limits,
    client_dir: Direction,
    /// Given up (or closed): input is ignored.
    dead: bool,
    /// The server's SETTINGS came before the client preface was seen: if the
    /// preface does not follow, the connection was already running.
    server_first: bool,
    /// By [`idx`] of the direction whose header blocks they decode.
    decoders: [HeaderDecoder; 2],
    /// The receiving end's SETTINGS_MAX_FRAME_SIZE, by the direction the
    /// frames travel.
    max_frame_size: [u32; 2],
    /// A header block still waiting for CONTINUATION frames, by direction.
    open_block: [Option<OpenBlock>; 2],
    block_buf: [Vec<u8>; 2],
    streams: HashMap<u32, Stream>,
    /// The highest stream id a request was seen on: a lower one not in
    /// `streams` is finished or was dropped.
    last_stream: u32,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    stream: u32,
    /// A PUSH_PROMISE's block: decoded for the table's sake, then dropped.
    push: bool,
    end_stream: bool,
    first: Times,
}

#[derive(Debug)]
struct Stream {
    request: Request,
    response: Option<Response>,
    request_start: u64,
    request_end: u64,
    response_start: u64,
    request_body: u64,
    response_body: u64,
}

impl Http2Connection {
    /// A connection whose client writes in `client_dir`; the preface is
    /// expected first in that direction.
    #[must_use]
    pub fn new(client_dir: Direction, limits: Limits) -> Self {
        let mut readers = [FrameReader::at_frame(), FrameReader::at_frame()];
        readers[idx(client_dir)] = FrameReader::after_preface();
        Self {
            readers,
            core: Core {
                limits,
                client_dir,
                dead: false,
                server_first: false,
                decoders: [
                    HeaderDecoder::new(limits.max_table_size),
                    HeaderDecoder::new(limits.max_table_size),
                ],
                max_frame_size: [frame::DEFAULT_MAX_FRAME_SIZE; 2],
                open_block: [None, None],
                block_buf: [Vec::new(), Vec::new()],
                streams: HashMap::new(),
                last_stream: 0,
            },
        }
    }

    /// A connection whose first bytes seen are the server's SETTINGS (its
    /// connection preface, which servers may send before reading the
    /// client's): the client preface is expected next in `client_dir`.
    #[must_use]
    pub fn server_first(client_dir: Direction, limits: Limits) -> Self {
        let mut conn = Self::new(client_dir, limits);
        conn.core.server_first = true;
        conn
    }

    /// The direction requests travel in.
    #[must_use]
    pub const fn client_direction(&self) -> Direction {
        self.core.client_dir
    }

    /// The parser gave up on the connection (or it closed).
    #[must_use]
    pub const fn is_finished(&self) -> bool {
        self.core.dead
    }

    /// (open streams, bytes held in header block and frame buffers), for
    /// tests of the bounds.
    #[cfg(test)]
    pub fn footprint(&self) -> (usize, usize) {
        let blocks: usize = self.core.block_buf.iter().map(Vec::len).sum();
        let frames: usize = self.readers.iter().map(FrameReader::held).sum();
        (self.core.streams.len(), blocks.max(frames))
    }

    /// Feeds one syscall's worth of bytes moved in `dir`. Chunks of one
    /// direction must come in order; the two directions should be
    /// interleaved in time order.
    pub fn feed(&mut self, dir: Direction, chunk: &Chunk<'_>, out: &mut Output) {
        if self.core.dead {
            return;
        }
        let times = Times {
            start: chunk.ts_start,
            end: chunk.ts_end,
        };
        let missed = chunk.total_len.saturating_sub(chunk.data.len() as u64);
        // The tail may reach back into the captured prefix; only its part
        // beyond the prefix is news.
        let tail_len =
            usize::try_from(missed).map_or(chunk.tail.len(), |m| m.min(chunk.tail.len()));
        let tail = &chunk.tail[chunk.tail.len() - tail_len..];
        let unknown = missed - tail_len as u64;

        let i = idx(dir);
        let max_frame = self.core.max_frame_size[i];
        let max_block = self.core.limits.max_header_block;
        let core = &mut self.core;
        let reader = &mut self.readers[i];
        let mut sink = |read: Read<'_>| core.on_read(dir, read, out);
        reader.known(chunk.data, times, max_frame, max_block, &mut sink);
        reader.unknown(unknown, times, &mut sink);
        reader.known(tail, times, max_frame, max_block, &mut sink);
        if self.core.dead {
            self.readers.iter_mut().for_each(FrameReader::stop);
        }
    }

    /// The connection closed at `ts`: streams still open end as
    /// [`Outcome::ConnectionClosed`]. Later input is ignored.
    pub fn close(&mut self, ts: u64, out: &mut Output) {
        if self.core.dead {
            return;
        }
        let mut ids: Vec<u32> = self.core.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.core.finish(id, Outcome::ConnectionClosed, ts, out);
        }
        self.core.dead = true;
        self.readers.iter_mut().for_each(FrameReader::stop);
    }
}

impl Core {
    fn server_dir(&self) -> Direction {
        self.client_dir.opposite()
    }

    fn on_read(&mut self, dir: Direction, read: Read<'_>, out: &mut Output) {
        if self.dead {
            return;
        }
        match read {
            Read::Error(e) => self.fail(e, out),
            Read::NoPreface if self.server_first => self.fail(Http2Error::MidConnection, out),
            Read::NoPreface => self.fail(Http2Error::Malformed, out),
            Read::Frame(f) => {
                if let Err(e) = self.on_frame(dir, &f, out) {
                    self.fail(e, out);
                }
            }
        }
    }

    fn on_frame(
        &mut self,
        dir: Direction,
        f: &Frame<'_>,
        out: &mut Output,
    ) -> Result<(), Http2Error> {
        let h = &f.header;
        let i = idx(dir);
        if let Some(open) = self.open_block[i]
            && (h.kind != Kind::Continuation || h.stream != open.stream)
        {
            // Header blocks are contiguous (RFC 9113 §6.10).
            return Err(Http2Error::Malformed);
        }
        if h.kind.carries_header_block() && f.lost {
            return Err(Http2Error::HeaderBlock);
        }
        match h.kind {
            Kind::Headers => {
                let fragment = frame::headers_fragment(h, f.payload)?;
                self.open_block[i] = Some(OpenBlock {
                    stream: h.stream,
                    push: false,
                    end_stream: h.has(flags::END_STREAM),
                    first: f.first,
                });
                self.block_fragment(dir, h, fragment, f.last, out)?;
            }
            Kind::PushPromise => {
                let fragment = frame::push_promise_fragment(h, f.payload)?;
                self.open_block[i] = Some(OpenBlock {
                    stream: h.stream,
                    push: true,
                    end_stream: false,
                    first: f.first,
                });
                self.block_fragment(dir, h, fragment, f.last, out)?;
            }
            Kind::Continuation => {
                if self.open_block[i].is_none() {
                    return Err(Http2Error::Malformed);
                }
                self.block_fragment(dir, h, f.payload, f.last, out)?;
            }
            Kind::Data => self.on_data(dir, f, out),
            Kind::RstStream => {
                let code = (!f.lost).then(|| frame::u32_at(f.payload, 0)).flatten();
                self.finish(
                    h.stream,
                    Outcome::Reset { error_code: code },
                    f.last.end,
                    out,
                );
            }
            Kind::Settings if !h.has(flags::ACK) => self.on_settings(dir, f)?,
            Kind::GoAway if dir == self.server_dir() && !f.lost => {
                if let Some(last) = frame::u32_at(f.payload, 0) {
                    self.refuse_after(last & 0x7fff_ffff, f.last.end, out);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn block_fragment(
        &mut self,
        dir: Direction,
        h: &FrameHeader,
        fragment: &[u8],
        last: Times,
        out: &mut Output,
    ) -> Result<(), Http2Error> {
        let i = idx(dir);
        if self.block_buf[i].len() + fragment.len() > self.limits.max_header_block {
            return Err(Http2Error::HeaderBlock);
        }
        self.block_buf[i].extend_from_slice(fragment);
        if !h.has(flags::END_HEADERS) {
            return Ok(());
        }
        let Some(open) = self.open_block[i].take() else {
            return Err(Http2Error::Malformed);
        };
        let kept = if dir == self.client_dir {
            KEPT_REQUEST
        } else {
            KEPT_RESPONSE
        };
        let fields = self.decoders[i].decode(&self.block_buf[i], kept);
        self.block_buf[i].clear();
        if self.block_buf[i].capacity() > RETAINED_BYTES {
            self.block_buf[i] = Vec::new();
        }
        let fields = fields?;
        if open.push {
            return Ok(());
        }
        if dir == self.client_dir {
            self.on_request_headers(open, fields, last, out);
        } else {
            self.on_response_headers(open, fields, last, out);
        }
        Ok(())
    }

    fn on_request_headers(
        &mut self,
        open: OpenBlock,
        fields: Fields,
        last: Times,
        out: &mut Output,
    ) {
        let id = open.stream;
        if let Some(s) = self.streams.get_mut(&id) {
            // Request trailers.
            s.request_end = last.end;
            return;
        }
        if id <= self.last_stream || id.is_multiple_of(2) {
            // A stream already finished or dropped, or not a client's.
            return;
        }
        self.last_stream = id;
        if self.streams.len() >= self.limits.max_streams {
            out.errors.push(Http2Error::TooManyStreams);
            return;
        }
        let request = Request {
            headers: fields.into(),
        };
        let request_start = open.first.first_byte(self.client_dir);
        out.started.push(Started {
            stream_id: id,
            request_direction: self.client_dir,
            request: request.clone(),
            request_start,
        });
        self.streams.insert(
            id,
            Stream {
                request,
                response: None,
                request_start,
                request_end: last.end,
                response_start: 0,
                request_body: 0,
                response_body: 0,
            },
        );
    }

    fn on_response_headers(
        &mut self,
        open: OpenBlock,
        fields: Fields,
        last: Times,
        out: &mut Output,
    ) {
        let server_dir = self.server_dir();
        let Some(s) = self.streams.get_mut(&open.stream) else {
            return;
        };
        match &mut s.response {
            Some(r) => r.trailers = fields,
            None => {
                let status = headers::get(&fields, ":status").and_then(|v| v.parse::<u16>().ok());
                if status.is_some_and(|c| (100..200).contains(&c)) && !open.end_stream {
                    // Interim (1xx): the final response follows.
                    return;
                }
                s.response = Some(Response {
                    status,
                    headers: fields,
                    trailers: Vec::new(),
                });
                s.response_start = open.first.first_byte(server_dir);
            }
        }
        if open.end_stream {
            self.finish(open.stream, Outcome::Complete, last.end, out);
        }
    }

    fn on_data(&mut self, dir: Direction, f: &Frame<'_>, out: &mut Output) {
        let h = &f.header;
        let Some(s) = self.streams.get_mut(&h.stream) else {
            return;
        };
        let first = if f.lost {
            None
        } else {
            f.payload.first().copied()
        };
        let n = frame::data_len(h, first);
        if dir == self.client_dir {
            s.request_body += n;
            s.request_end = f.last.end;
        } else {
            s.response_body += n;
            if h.has(flags::END_STREAM) {
                self.finish(h.stream, Outcome::Complete, f.last.end, out);
            }
        }
    }

    /// SETTINGS written in `dir` govern what the writer receives: the other
    /// direction.
    fn on_settings(&mut self, dir: Direction, f: &Frame<'_>) -> Result<(), Http2Error> {
        let other = idx(dir.opposite());
        if f.lost {
            // Some values were not captured: allow what they could have said.
            self.decoders[other].allow_table_size(None);
            self.max_frame_size[other] = frame::MAX_MAX_FRAME_SIZE;
        }
        for (id, value) in frame::settings(f.payload) {
            match id {
                frame::settings::HEADER_TABLE_SIZE => {
                    self.decoders[other].allow_table_size(Some(value));
                }
                frame::settings::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&value)
                    {
                        return Err(Http2Error::Malformed);
                    }
                    self.max_frame_size[other] = value;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The server will not process streams above `last`.
    fn refuse_after(&mut self, last: u32, ts: u64, out: &mut Output) {
        let mut ids: Vec<u32> = self
            .streams
            .keys()
            .copied()
            .filter(|&id| id > last)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.finish(id, Outcome::Refused, ts, out);
        }
    }

    fn finish(&mut self, id: u32, outcome: Outcome, end: u64, out: &mut Output) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        let response_start = if s.response.is_some() {
            s.response_start
        } else {
            end
        };
        out.exchanges.push(Exchange {
            stream_id: id,
            request_direction: self.client_dir,
            request: s.request,
            response: s.response,
            request_start: s.request_start,
            request_end: s.request_end,
            response_start,
            response_end: end,
            request_body_bytes: s.request_body,
            response_body_bytes: s.response_body,
            outcome,
        });
    }

    /// Gives up on the connection.
    fn fail(&mut self, e: Http2Error, out: &mut Output) {
        if self.dead {
            return;
        }
        self.dead = true;
        out.errors.push(e);
        out.errors.extend(std::iter::repeat_n(
            Http2Error::StreamAbandoned,
            self.streams.len(),
        ));
        self.streams = HashMap::new();
        self.block_buf = [Vec::new(), Vec::new()];
        self.open_block = [None, None];
    }
}

/// Whether a chunk starts as a server's connection preface does: a run of
/// frames (see [`looks_like_frames`]) whose first is a SETTINGS frame that
/// is not an acknowledgement.
#[must_use]
pub fn looks_like_server_preface(data: &[u8], total_len: u64) -> bool {
    let Some(first) = data.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    let h = FrameHeader::parse(first);
    h.kind == Kind::Settings && !h.has(flags::ACK) && looks_like_frames(data, total_len)
}

/// Whether a chunk's captured bytes read as a run of HTTP/2 frames that ends
/// exactly where the chunk does: how a connection already running when
/// tracing began is recognised.
#[must_use]
pub fn looks_like_frames(data: &[u8], total_len: u64) -> bool {
    let mut at = 0u64;
    let mut frames = 0;
    while let Some(bytes) = usize::try_from(at)
        .ok()
        .and_then(|a| data.get(a..a + HEADER_LEN))
    {
        let mut b = [0; HEADER_LEN];
        b.copy_from_slice(bytes);
        let h = FrameHeader::parse(&b);
        if matches!(h.kind, Kind::Unknown(_)) || h.check(frame::DEFAULT_MAX_FRAME_SIZE).is_err() {
            return false;
        }
        frames += 1;
        at += (HEADER_LEN as u64) + u64::from(h.len);
        if at >= total_len {
            break;
        }
    }
    frames > 0 && at == total_len
}
