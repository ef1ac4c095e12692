//! One TCP connection: two directions of chunks in, exchanges out.

use std::collections::VecDeque;

use super::body::{Body, Progress};
use super::framing::{self, Framing, Method};
use super::head::{self, HeadBuffer, Push};
use super::message::{Exchange, Outcome, RequestHead, ResponseHead};
use super::start_line::{self, Role, Start};
use super::{Chunk, Direction, Limits, Output, ParseError};

/// While a head holds up to this many bytes, the start line is checked on
/// every chunk so that non-HTTP bytes are rejected at once; past it, only
/// when a line ends,
/// so that a long request line arriving in small pieces is not rescanned
/// each time.
const EAGER_CLASSIFY_BYTES: usize = 64;

/// Parses the HTTP/1 traffic of one connection. See the module docs for the
/// input model, the timestamps and the fallbacks.
#[derive(Debug)]
pub struct Http1Connection {
    limits: Limits,
    verdict: Verdict,
    /// Chunks seen while undecided that did not start a message: tracing
    /// may have begun in the middle of a body, so a few are waited out
    /// before the connection is written off as not HTTP/1.
    undecided_misses: u32,
    /// A tunnel was established or the connection closed: nothing further
    /// is HTTP/1.
    finished: bool,
    /// Indexed by [`Direction::index`].
    streams: [Stream; 2],
    /// Requests (and placeholders for lost ones) awaiting a final response,
    /// oldest first.
    pending: VecDeque<Pending>,
    /// The request whose body the request direction is reading.
    receiving: Option<u64>,
    /// The response whose body the response direction is reading.
    answering: Option<Answer>,
    next_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Undecided,
    NotHttp,
    Http { request_dir: Direction },
}

/// A chunk's syscall entry and exit.
#[derive(Debug, Clone, Copy, Default)]
struct Times {
    start: u64,
    end: u64,
}

impl Times {
    /// When the process saw the chunk's first byte: on return from a read,
    /// on entry to a write.
    const fn first_byte(self, dir: Direction) -> u64 {
        match dir {
            Direction::Ingress => self.end,
            Direction::Egress => self.start,
        }
    }
}

#[derive(Debug, Default)]
struct Stream {
    state: State,
    buf: HeadBuffer,
    /// The first and the latest chunk holding bytes of the current message.
    first: Times,
    last: Times,
}

#[derive(Debug)]
enum State {
    Head {
        /// The start line was recognised.
        start_ok: bool,
        /// Began at a resync point on too few bytes to be sure it is a
        /// message: failing is then silent.
        tentative: bool,
    },
    Body(Body),
    /// Skipping until a chunk starts like a message.
    Resync,
    /// The request direction after CONNECT: what follows is tunnel data if
    /// the response accepts it, else another request.
    Paused,
}

impl Default for State {
    fn default() -> Self {
        Self::Head {
            start_ok: false,
            tentative: false,
        }
    }
}

#[derive(Debug)]
struct Pending {
    id: u64,
    dir: Direction,
    /// `None` for a request that surely existed but whose head was lost: its
    /// response is read past and dropped, keeping later pairs in step.
    head: Option<RequestHead>,
    method: Method,
    start: u64,
    end: u64,
    body_bytes: u64,
}

#[derive(Debug)]
struct Answer {
    /// `None` when nothing waits for this response: it is read past and
    /// dropped.
    request: Option<Pending>,
    head: ResponseHead,
    start: u64,
    end: u64,
    body_bytes: u64,
}

/// Chunks without a message start after which an undecided connection is
/// taken for another protocol (see `undecided_misses`).
const UNDECIDED_LIMIT: u32 = 8;

impl Http1Connection {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            verdict: Verdict::Undecided,
            undecided_misses: 0,
            finished: false,
            streams: Default::default(),
            pending: VecDeque::new(),
            receiving: None,
            answering: None,
            next_id: 0,
        }
    }

    /// The direction carrying requests, once the first bytes decided it.
    #[must_use]
    pub const fn request_direction(&self) -> Option<Direction> {
        match self.verdict {
            Verdict::Http { request_dir } => Some(request_dir),
            Verdict::Undecided | Verdict::NotHttp => None,
        }
    }

    /// `None` until the first bytes decide; `Some(false)` means the rest of
    /// the connection is ignored.
    #[must_use]
    pub const fn is_http(&self) -> Option<bool> {
        match self.verdict {
            Verdict::Undecided => None,
            Verdict::NotHttp => Some(false),
            Verdict::Http { .. } => Some(true),
        }
    }

    /// Feeds one syscall's worth of bytes moved in `dir`. Chunks of one
    /// direction must come in order; the two directions should be
    /// interleaved in time order.
    pub fn feed(&mut self, dir: Direction, chunk: &Chunk<'_>, out: &mut Output) {
        if !self.active() {
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

        self.at_chunk_start(dir, chunk.data, out);
        self.known(dir, chunk.data, times, out);
        if unknown > 0 {
            self.unknown(dir, unknown, times, out);
        }
        self.known(dir, tail, times, out);
        self.at_chunk_end(dir, out);
    }

    /// The connection closed at `ts`: a response delimited by the close is
    /// complete, one cut short and every request still waiting end as
    /// [`Outcome::ConnectionClosed`]. Later input is ignored.
    pub fn close(&mut self, ts: u64, out: &mut Output) {
        if self.finished {
            // A tunnel's exchange was reported when it opened.
            self.release();
            return;
        }
        self.finished = true;
        if let Verdict::Http { request_dir } = self.verdict
            && let State::Body(body) = &self.streams[request_dir.opposite().index()].state
        {
            let outcome = match body {
                Body::UntilClose | Body::Lost(_) => Outcome::Complete,
                Body::Length { .. } | Body::Chunked(_) => Outcome::ConnectionClosed,
            };
            self.finish_answer(outcome, out);
        }
        for request in std::mem::take(&mut self.pending) {
            out.exchanges.extend(exchange(
                request,
                None,
                ts,
                ts,
                0,
                Outcome::ConnectionClosed,
            ));
        }
        self.release();
    }

    /// Buffers and heads held, for tests that bound memory.
    #[cfg(test)]
    pub(super) fn footprint(&self) -> (usize, usize, usize) {
        let head_len = self.streams.iter().map(|s| s.buf.len()).max().unwrap_or(0);
        let head_capacity = self
            .streams
            .iter()
            .map(|s| s.buf.capacity())
            .max()
            .unwrap_or(0);
        (head_len, head_capacity, self.pending.len())
    }

    fn release(&mut self) {
        self.streams = Default::default();
        self.pending = VecDeque::new();
        self.answering = None;
    }

    fn active(&self) -> bool {
        !self.finished && self.verdict != Verdict::NotHttp
    }

    fn role(&self, dir: Direction) -> Option<Role> {
        match self.verdict {
            Verdict::Http { request_dir } if request_dir == dir => Some(Role::Request),
            Verdict::Http { .. } => Some(Role::Response),
            Verdict::Undecided | Verdict::NotHttp => None,
        }
    }

    /// An undecided connection's chunk did not start a message; after
    /// UNDECIDED_LIMIT of them it is taken for another protocol.
    fn undecided_miss(&mut self) {
        self.undecided_misses += 1;
        if self.undecided_misses >= UNDECIDED_LIMIT {
            self.verdict = Verdict::NotHttp;
            self.release();
        }
    }

    fn decide(&mut self, dir: Direction, role: Role) {
        let request_dir = match role {
            Role::Request => dir,
            Role::Response => dir.opposite(),
        };
        self.verdict = Verdict::Http { request_dir };
    }

    /// Message boundaries can only be trusted at chunk starts: that is where
    /// resync looks, and where a body of unknown end gives way to the next
    /// message.
    fn at_chunk_start(&mut self, dir: Direction, data: &[u8], out: &mut Output) {
        if data.is_empty() {
            return;
        }
        let role = self.role(dir);
        let stream = &mut self.streams[dir.index()];
        match &stream.state {
            State::Resync => match start_line::classify(data) {
                Start::Message(found) if role.is_none_or(|r| r == found) => {
                    stream.state = State::default();
                }
                Start::NeedMore => {
                    stream.state = State::Head {
                        start_ok: false,
                        tentative: true,
                    };
                }
                Start::NotHttp if role.is_none() => self.undecided_miss(),
                Start::Message(_) | Start::NotHttp => {}
            },
            State::Body(Body::Lost(_)) => {
                if let Start::Message(found) = start_line::classify(data)
                    && Some(found) == role
                {
                    self.message_done(dir, out);
                }
            }
            State::Head { .. } | State::Body(_) | State::Paused => {}
        }
    }

    fn at_chunk_end(&mut self, dir: Direction, out: &mut Output) {
        if let State::Body(body) = &self.streams[dir.index()].state
            && body.lost_and_ended()
        {
            self.message_done(dir, out);
        }
    }

    fn known(&mut self, dir: Direction, mut bytes: &[u8], times: Times, out: &mut Output) {
        while !bytes.is_empty() && self.active() {
            // Each step consumes input or leaves a state that takes none.
            let used = match self.streams[dir.index()].state {
                State::Resync | State::Paused => return,
                State::Head { .. } => self.head_bytes(dir, bytes, times, out),
                State::Body(_) => self.body_bytes(dir, bytes, times, out),
            };
            bytes = &bytes[used..];
        }
    }

    /// `n` bytes moved in `dir` were not captured.
    fn unknown(&mut self, dir: Direction, n: u64, times: Times, out: &mut Output) {
        if !self.active() {
            return;
        }
        let stream = &mut self.streams[dir.index()];
        match &mut stream.state {
            State::Resync | State::Paused => {}
            State::Head { .. } => {
                if stream.buf.is_empty() {
                    stream.first = times;
                }
                stream.last = times;
                self.head_failed(dir, ParseError::HeadTruncated, out);
            }
            State::Body(body) => {
                let progress = body.skip(n);
                stream.last = times;
                self.account(dir, progress, times, out);
                let rest = n - progress.used;
                if rest > 0 {
                    // The rest began the next message, whose head is lost.
                    self.unknown(dir, rest, times, out);
                }
            }
        }
    }

    fn head_bytes(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        times: Times,
        out: &mut Output,
    ) -> usize {
        let role = self.role(dir);
        let max = self.limits.max_head_bytes;
        let stream = &mut self.streams[dir.index()];
        if !matches!(stream.state, State::Head { .. }) {
            return bytes.len();
        }
        let mut skipped = 0;
        if stream.buf.is_empty() {
            // Stray line ends between messages are allowed (RFC 9112 2.2).
            skipped = bytes
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if skipped == bytes.len() {
                return skipped;
            }
            stream.first = times;
        }
        stream.last = times;
        let input = &bytes[skipped..];
        if stream.buf.is_empty()
            && let Some(used) = self.whole_head(dir, role, input, out)
        {
            return skipped + used;
        }
        let stream = &mut self.streams[dir.index()];
        let State::Head { start_ok, .. } = &mut stream.state else {
            return bytes.len();
        };
        let push = stream.buf.push(input, max);
        let used = skipped + push.used();
        let partial = matches!(push, Push::Partial { .. });

        let held_before = stream.buf.len() - push.used();
        if !*start_ok
            && (held_before <= EAGER_CLASSIFY_BYTES
                || !partial
                || input[..push.used()].contains(&b'\n'))
        {
            match start_line::classify(stream.buf.bytes()) {
                Start::Message(found) if role.is_none_or(|r| r == found) => {
                    *start_ok = true;
                    if role.is_none() {
                        self.decide(dir, found);
                    }
                }
                Start::NeedMore if partial => {}
                Start::NeedMore | Start::NotHttp | Start::Message(_) => {
                    let error = if matches!(push, Push::TooLarge { .. }) {
                        ParseError::HeadTooLarge
                    } else {
                        ParseError::Malformed
                    };
                    self.head_failed(dir, error, out);
                    return used;
                }
            }
        }
        match push {
            Push::Partial { .. } => {}
            Push::TooLarge { .. } => self.head_failed(dir, ParseError::HeadTooLarge, out),
            Push::Complete { .. } => match self.role(dir) {
                Some(Role::Request) => self.request_head(dir, out),
                Some(Role::Response) => self.response_head(dir, out),
                // A complete head always has a recognised start line, which
                // decided the roles.
                None => self.head_failed(dir, ParseError::Malformed, out),
            },
        }
        used
    }

    /// The message whose head `dir` was reading is lost: count it, keep the
    /// pairing of later messages right, and resync.
    fn head_failed(&mut self, dir: Direction, error: ParseError, out: &mut Output) {
        let role = self.role(dir);
        let stream = &mut self.streams[dir.index()];
        let (start_ok, tentative) = match stream.state {
            State::Head {
                start_ok,
                tentative,
            } => (start_ok, tentative),
            State::Body(_) | State::Resync | State::Paused => (false, false),
        };
        stream.state = State::Resync;
        if tentative {
            stream.buf.clear();
            return;
        }
        // Bytes cut off by the capture limit were surely a message; garbage
        // that never looked like one was probably not.
        let was_message = start_ok || error == ParseError::HeadTruncated;
        let role = match role {
            Some(role) => role,
            None if error == ParseError::HeadTruncated && stream.buf.is_empty() => return,
            // A request line longer than the captured prefix.
            None if error == ParseError::HeadTruncated
                && start_line::starts_with_known_method(stream.buf.bytes()) =>
            {
                self.decide(dir, Role::Request);
                Role::Request
            }
            None => {
                // Look again at the start of the next chunk (Resync).
                self.streams[dir.index()].buf.clear();
                self.undecided_miss();
                return;
            }
        };
        out.errors.push(error);
        let stream = &mut self.streams[dir.index()];
        let buf = stream.buf.bytes();
        match role {
            Role::Request if was_message => {
                let method = buf
                    .split(|&b| b == b' ')
                    .next()
                    .map_or(Method::Other, Method::of);
                let placeholder = Pending {
                    id: 0,
                    dir,
                    head: None,
                    method,
                    start: stream.first.first_byte(dir),
                    end: stream.last.end,
                    body_bytes: 0,
                };
                self.push_pending(placeholder, out);
            }
            Role::Response if was_message => {
                let status = head::parse_status_line(buf);
                let (start, end) = (stream.first.first_byte(dir), stream.last.end);
                let interim = status
                    .as_ref()
                    .is_some_and(|s| (100..200).contains(&s.status) && s.status != 101);
                if !interim && let Some(request) = self.take_answered(false) {
                    out.exchanges.extend(exchange(
                        request,
                        status,
                        start,
                        end,
                        0,
                        Outcome::ResponseLost,
                    ));
                }
            }
            Role::Request | Role::Response => {}
        }
        self.streams[dir.index()].buf.clear();
    }

    /// The common case, a head that arrives whole at the start of a chunk:
    /// parsed where it lies, without copying it into the head buffer.
    /// Returns the bytes it took, or None to leave the input to the general
    /// path (which also reports whatever is wrong with it).
    fn whole_head(
        &mut self,
        dir: Direction,
        role: Option<Role>,
        input: &[u8],
        out: &mut Output,
    ) -> Option<usize> {
        let end = head::head_end(input, 0).filter(|&end| end <= self.limits.max_head_bytes)?;
        let head = &input[..end];
        let Start::Message(found) = start_line::classify(head) else {
            return None;
        };
        if role.is_some_and(|r| r != found) {
            return None;
        }
        let max_headers = self.limits.max_headers;
        match found {
            Role::Request => {
                let parsed = parse_request(head, max_headers).ok()?;
                if role.is_none() {
                    self.decide(dir, found);
                }
                self.request_parsed(dir, parsed, out);
            }
            Role::Response => {
                let parsed = head::parse_response(head, max_headers).ok()?;
                if role.is_none() {
                    self.decide(dir, found);
                }
                self.response_parsed(dir, parsed, out);
            }
        }
        Some(end)
    }

    fn request_head(&mut self, dir: Direction, out: &mut Output) {
        let stream = &self.streams[dir.index()];
        let parsed = parse_request(stream.buf.bytes(), self.limits.max_headers);
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return self.head_failed(dir, error, out),
        };
        self.request_parsed(dir, parsed, out);
    }

    /// A request head was read whole: it waits for its response, and its
    /// body (if any) comes next.
    fn request_parsed(
        &mut self,
        dir: Direction,
        (head, framing): (RequestHead, Framing),
        out: &mut Output,
    ) {
        let stream = &self.streams[dir.index()];
        let (start, end) = (stream.first.first_byte(dir), stream.last.end);
        // A new request means the response before it is over, when its end
        // could not be seen.
        self.end_lost_body(dir.opposite(), out);
        let method = Method::of(head.method.as_bytes());
        let id = self.push_pending(
            Pending {
                id: 0,
                dir,
                head: Some(head),
                method,
                start,
                end,
                body_bytes: 0,
            },
            out,
        );
        self.receiving = Some(id);
        let max_line = self.limits.max_head_bytes;
        let stream = &mut self.streams[dir.index()];
        stream.buf.clear();
        stream.state = match framing {
            Framing::Length(remaining) => State::Body(Body::Length { remaining }),
            Framing::Chunked => State::Body(Body::chunked(max_line)),
            _ if method == Method::Connect => State::Paused,
            _ => State::default(),
        };
    }

    fn response_head(&mut self, dir: Direction, out: &mut Output) {
        let stream = &self.streams[dir.index()];
        let head = match head::parse_response(stream.buf.bytes(), self.limits.max_headers) {
            Ok(head) => head,
            Err(error) => return self.head_failed(dir, error, out),
        };
        self.response_parsed(dir, head, out);
    }

    /// A response head was read whole: it answers the oldest request
    /// waiting, and its body (if any) comes next.
    fn response_parsed(&mut self, dir: Direction, head: ResponseHead, out: &mut Output) {
        let stream = &self.streams[dir.index()];
        let (start, end) = (stream.first.first_byte(dir), stream.last.end);
        self.end_lost_body(dir.opposite(), out);
        let method = self.pending.front().map_or(Method::Other, |p| p.method);
        let framing = framing::response_framing(&head, method);
        let stream = &mut self.streams[dir.index()];
        stream.buf.clear();
        stream.state = State::default();
        let framing = match framing {
            Ok(Framing::Interim) => {
                if self.pending.is_empty() {
                    out.errors.push(ParseError::UnexpectedResponse);
                }
                return;
            }
            Ok(framing) => framing,
            Err(error) => {
                // The head is sound enough to report; where its body ends is
                // not known.
                out.errors.push(error);
                stream.state = State::Resync;
                Framing::Empty
            }
        };
        if self.pending.is_empty() {
            out.errors.push(ParseError::UnexpectedResponse);
        }
        let request = self.take_answered(framing == Framing::Tunnel);
        self.answering = Some(Answer {
            request,
            head,
            start,
            end,
            body_bytes: 0,
        });
        let max_line = self.limits.max_head_bytes;
        let body = match framing {
            Framing::Length(remaining) => Body::Length { remaining },
            Framing::Chunked => Body::chunked(max_line),
            Framing::UntilClose => Body::UntilClose,
            Framing::Empty | Framing::Interim => return self.finish_answer(Outcome::Complete, out),
            Framing::Tunnel => {
                self.finish_answer(Outcome::Complete, out);
                self.finished = true;
                return self.release();
            }
        };
        self.streams[dir.index()].state = State::Body(body);
    }

    fn body_bytes(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        times: Times,
        out: &mut Output,
    ) -> usize {
        let stream = &mut self.streams[dir.index()];
        let State::Body(body) = &mut stream.state else {
            return bytes.len();
        };
        let progress = body.consume(bytes);
        stream.last = times;
        self.account(dir, progress, times, out);
        // Never more than `bytes.len()`.
        progress.used as usize
    }

    /// Credits body bytes to the message they belong to and moves on when
    /// the body is over.
    fn account(&mut self, dir: Direction, progress: Progress, times: Times, out: &mut Output) {
        match self.role(dir) {
            Some(Role::Request) => {
                if let Some(request) = self.receiving_mut() {
                    request.body_bytes = request.body_bytes.saturating_add(progress.payload);
                    request.end = times.end;
                }
            }
            Some(Role::Response) => {
                if let Some(answer) = &mut self.answering {
                    answer.body_bytes = answer.body_bytes.saturating_add(progress.payload);
                    answer.end = times.end;
                }
            }
            None => {}
        }
        if progress.malformed {
            out.errors.push(ParseError::Malformed);
        }
        if progress.done {
            self.message_done(dir, out);
        }
    }

    /// The request still receiving its body: the newest pending one, or the
    /// one already answered early.
    fn receiving_mut(&mut self) -> Option<&mut Pending> {
        let id = self.receiving?;
        if let Some(request) = self.pending.back_mut()
            && request.id == id
        {
            return Some(request);
        }
        self.answering
            .as_mut()?
            .request
            .as_mut()
            .filter(|request| request.id == id)
    }

    fn message_done(&mut self, dir: Direction, out: &mut Output) {
        self.streams[dir.index()].state = State::default();
        if self.role(dir) == Some(Role::Response) {
            self.finish_answer(Outcome::Complete, out);
        }
    }

    fn end_lost_body(&mut self, dir: Direction, out: &mut Output) {
        if let State::Body(Body::Lost(_)) = self.streams[dir.index()].state {
            self.message_done(dir, out);
        }
    }

    /// Queues a request; returns its id.
    fn push_pending(&mut self, mut request: Pending, out: &mut Output) -> u64 {
        if self.pending.len() >= self.limits.max_pending.max(1) {
            self.pending.pop_front();
            out.errors.push(ParseError::PipelineOverflow);
        }
        request.id = self.next_id;
        self.next_id += 1;
        let id = request.id;
        self.pending.push_back(request);
        id
    }

    /// The request a final response answers, if it is to be reported.
    fn take_answered(&mut self, tunnel: bool) -> Option<Pending> {
        let request = self.pending.pop_front()?;
        if request.method == Method::Connect
            && !tunnel
            && let Verdict::Http { request_dir } = self.verdict
        {
            let stream = &mut self.streams[request_dir.index()];
            if let State::Paused = stream.state {
                // Refused: the client goes on with ordinary requests.
                stream.state = State::Resync;
            }
        }
        request.head.is_some().then_some(request)
    }

    fn finish_answer(&mut self, outcome: Outcome, out: &mut Output) {
        if let Some(answer) = self.answering.take()
            && let Some(request) = answer.request
        {
            out.exchanges.extend(exchange(
                request,
                Some(answer.head),
                answer.start,
                answer.end,
                answer.body_bytes,
                outcome,
            ));
        }
    }
}

/// A request head and how its body is framed.
fn parse_request(bytes: &[u8], max_headers: usize) -> Result<(RequestHead, Framing), ParseError> {
    head::parse_request(bytes, max_headers)
        .and_then(|head| framing::request_framing(&head).map(|framing| (head, framing)))
}

/// `None` for a placeholder request.
fn exchange(
    request: Pending,
    response: Option<ResponseHead>,
    response_start: u64,
    response_end: u64,
    response_body_bytes: u64,
    outcome: Outcome,
) -> Option<Exchange> {
    Some(Exchange {
        request_direction: request.dir,
        request: request.head?,
        response,
        request_start: request.start,
        request_end: request.end,
        response_start,
        response_end,
        request_body_bytes: request.body_bytes,
        response_body_bytes,
        outcome,
    })
}
