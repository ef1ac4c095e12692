//! Frame reading, header blocks and stream life cycles.
use super::testing::*;
use super::*;

/// One connection seen from the traced process, with implicit times: the
/// n-th chunk (from 1) runs from 1000 n to 1000 n + 10.
struct Conv {
    conn: Http2Connection,
    out: Output,
    client: Direction,
    chunks: u64,
}

impl Conv {
    /// The traced process is the client.
    fn client() -> Self {
        Self::new(Direction::Egress)
    }

    /// The traced process is the server.
    fn server() -> Self {
        Self::new(Direction::Ingress)
    }

    fn new(client: Direction) -> Self {
        Self::with_limits(client, Limits::default())
    }

    fn with_limits(client: Direction, limits: Limits) -> Self {
        Self {
            conn: Http2Connection::new(client, limits),
            out: Output::default(),
            client,
            chunks: 0,
        }
    }

    fn next_times(&mut self) -> (u64, u64) {
        self.chunks += 1;
        (1000 * self.chunks, 1000 * self.chunks + 10)
    }

    /// A chunk the client sent, captured whole.
    fn c(&mut self, bytes: &[u8]) {
        self.feed(self.client, bytes, 0, &[]);
    }

    /// A chunk the server sent, captured whole.
    fn s(&mut self, bytes: &[u8]) {
        self.feed(self.client.opposite(), bytes, 0, &[]);
    }

    /// A chunk of which only `cap` bytes and the last `tail` were captured.
    fn cut(&mut self, from_client: bool, bytes: &[u8], cap: usize, tail: usize) {
        let dir = if from_client {
            self.client
        } else {
            self.client.opposite()
        };
        let tail = &bytes[bytes.len() - tail..];
        self.feed(dir, &bytes[..cap], (bytes.len() - cap) as u64, tail);
    }

    fn feed(&mut self, dir: Direction, data: &[u8], uncaptured: u64, tail: &[u8]) {
        let (ts_start, ts_end) = self.next_times();
        let chunk = Chunk {
            data,
            total_len: data.len() as u64 + uncaptured,
            tail,
            ts_start,
            ts_end,
        };
        self.conn.feed(dir, &chunk, &mut self.out);
    }

    fn open(&mut self) {
        let mut first = PREFACE.to_vec();
        first.extend(settings(&[]));
        self.c(&first);
        self.s(&settings(&[(4, 65_535)]));
    }

    fn exchanges(&mut self) -> Vec<Exchange> {
        std::mem::take(&mut self.out.exchanges)
    }
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn unary(client: &mut Hpack, server: &mut Hpack, stream: u32) -> (Vec<u8>, Vec<u8>) {
    let req = cat(&[
        client.headers(
            stream,
            &grpc_request(
                "/grpc.health.v1.Health/Check",
                &[(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )],
            ),
            false,
        ),
        grpc_message(stream, 2, true),
    ]);
    let resp = cat(&[
        server.headers(
            stream,
            &[(":status", "200"), ("content-type", "application/grpc")],
            false,
        ),
        grpc_message(stream, 2, false),
        server.headers(stream, &[("grpc-status", "0"), ("grpc-message", "")], true),
    ]);
    (req, resp)
}

#[test]
fn grpc_unary_call() {
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    let (req, resp) = unary(&mut ch, &mut sh, 1);
    conv.c(&req);
    conv.s(&resp);
    let ex = conv.exchanges();
    assert_eq!(ex.len(), 1, "{:?}", conv.out);
    let e = &ex[0];
    assert_eq!(e.stream_id, 1);
    assert_eq!(e.request_direction, Direction::Egress);
    assert_eq!(e.request.method(), "POST");
    assert_eq!(e.request.path(), "/grpc.health.v1.Health/Check");
    assert_eq!(e.request.header(":authority"), Some("svc.test:50051"));
    assert_eq!(e.request.header("te"), None, "not kept");
    assert!(e.request.header("traceparent").is_some());
    let r = e.response.as_ref().unwrap();
    assert_eq!(r.status, Some(200));
    assert_eq!(r.field("grpc-status"), Some("0"));
    assert_eq!(r.field("content-type"), Some("application/grpc"));
    assert_eq!((e.request_body_bytes, e.response_body_bytes), (7, 7));
    // Written at 3000 (egress: entry), read at 4010 (ingress: exit).
    assert_eq!(
        (
            e.request_start,
            e.request_end,
            e.response_start,
            e.response_end
        ),
        (3000, 3010, 4010, 4010)
    );
    assert_eq!(e.outcome, Outcome::Complete);
    assert!(conv.out.errors.is_empty());
}

#[test]
fn the_server_sees_the_same_call_from_its_side() {
    let mut conv = Conv::server();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    let (req, resp) = unary(&mut ch, &mut sh, 1);
    conv.c(&req);
    conv.s(&resp);
    let e = &conv.exchanges()[0];
    assert_eq!(e.request_direction, Direction::Ingress);
    assert_eq!((e.request_start, e.response_start), (3010, 4000));
}

#[test]
fn frames_split_anywhere_give_the_same_result() {
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    let mut c = PREFACE.to_vec();
    c.extend(settings(&[]));
    let mut s = settings(&[]);
    for id in [1, 3, 5] {
        let (req, resp) = unary(&mut ch, &mut sh, id);
        c.extend(req);
        s.extend(resp);
    }
    for split in [1, 2, 5, 9, 10, 17, 64] {
        let mut conv = Conv::client();
        for piece in c.chunks(split) {
            conv.c(piece);
        }
        for piece in s.chunks(split) {
            conv.s(piece);
        }
        let ex = conv.exchanges();
        assert_eq!(ex.len(), 3, "split {split}: {:?}", conv.out.errors);
        assert!(
            ex.iter()
                .all(|e| e.response.as_ref().unwrap().field("grpc-status") == Some("0"))
        );
        assert_eq!(ex.iter().map(|e| e.response_body_bytes).sum::<u64>(), 21);
    }
}

#[test]
fn many_frames_and_interleaved_streams_in_one_event() {
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    let mut c = Vec::new();
    for id in [1, 3, 5] {
        c.extend(ch.headers(id, &grpc_request("/demo.Echo/Count", &[]), false));
    }
    for id in [1, 3, 5] {
        c.extend(grpc_message(id, 1, true));
    }
    conv.c(&c);
    let s = cat(&[
        sh.headers(5, &[(":status", "200")], false),
        sh.headers(1, &[(":status", "200")], false),
        grpc_message(5, 3, false),
        sh.headers(5, &[("grpc-status", "0")], true),
        grpc_message(1, 3, false),
        grpc_message(1, 3, false),
        sh.headers(1, &[("grpc-status", "0")], true),
        sh.headers(3, &[(":status", "200"), ("grpc-status", "5")], true),
    ]);
    conv.s(&s);
    let ex = conv.exchanges();
    let ids: Vec<u32> = ex.iter().map(|e| e.stream_id).collect();
    assert_eq!(ids, vec![5, 1, 3], "in the order they finished");
    assert_eq!(ex[1].response_body_bytes, 16);
    assert_eq!(
        ex[2].response.as_ref().unwrap().field("grpc-status"),
        Some("5")
    );
}

#[test]
fn continuation_frames_assemble_one_block() {
    let mut conv = Conv::client();
    conv.open();
    let mut ch = Hpack::default();
    let block = ch.block(&grpc_request("/a.B/C", &[("user-agent", "x")]));
    let (a, rest) = block.split_at(5);
    let (b, c) = rest.split_at(7);
    conv.c(&frame(HEADERS, END_STREAM, 1, a));
    conv.c(&frame(CONTINUATION, 0, 1, b));
    // The last CONTINUATION arrives split over two chunks.
    let last = frame(CONTINUATION, END_HEADERS, 1, c);
    conv.c(&last[..4]);
    conv.c(&last[4..]);
    let mut sh = Hpack::default();
    conv.s(&sh.headers(1, &[(":status", "200"), ("grpc-status", "0")], true));
    let ex = conv.exchanges();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request.path(), "/a.B/C");
    assert_eq!(ex[0].request_start, 3000, "the first HEADERS frame's chunk");
    assert!(conv.out.errors.is_empty());
}

#[test]
fn a_frame_inside_a_header_block_is_malformed() {
    let mut conv = Conv::client();
    conv.open();
    let mut ch = Hpack::default();
    let block = ch.block(&grpc_request("/a.B/C", &[]));
    conv.c(&frame(HEADERS, 0, 1, &block[..3]));
    conv.c(&frame(PING, 0, 0, &[0; 8]));
    assert_eq!(conv.out.errors, vec![Http2Error::Malformed]);
    assert!(conv.conn.is_finished());
}

#[test]
fn padding_and_priority_are_skipped() {
    let mut conv = Conv::client();
    conv.open();
    let mut ch = Hpack::default();
    let block = ch.block(&[(":method", "GET"), (":path", "/p"), (":scheme", "http")]);
    let mut payload = vec![3]; // pad length
    payload.extend([0x80, 0, 0, 1, 200]); // exclusive dependency on 1, weight
    payload.extend(&block);
    payload.extend([0; 3]);
    conv.c(&frame(
        HEADERS,
        END_HEADERS | PADDED | PRIORITY_FLAG,
        1,
        &payload,
    ));
    let mut sh = Hpack::default();
    let mut data = vec![4];
    data.extend(b"hello");
    data.extend([0; 4]);
    conv.s(&cat(&[
        sh.headers(1, &[(":status", "200")], false),
        frame(DATA, PADDED, 1, &data),
        frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 16]),
        frame(DATA, PADDED | END_STREAM, 1, &[0]),
    ]));
    let ex = conv.exchanges();
    assert_eq!(ex.len(), 1, "{:?}", conv.out.errors);
    assert_eq!(ex[0].request.path(), "/p");
    assert_eq!(ex[0].response_body_bytes, 5);
}

#[test]
fn padding_longer_than_the_frame_is_malformed() {
    let mut conv = Conv::client();
    conv.open();
    conv.c(&frame(HEADERS, END_HEADERS | PADDED, 1, &[9, 0x82]));
    assert_eq!(conv.out.errors, vec![Http2Error::Malformed]);
}

#[test]
fn uncaptured_data_is_counted_by_length() {
    let mut conv = Conv::client();
    conv.open();
    let mut ch = Hpack::default();
    let mut sh = Hpack::default();
    let req = cat(&[
        ch.headers(1, &[(":method", "POST"), (":path", "/upload")], false),
        data(1, 16_000, true),
    ]);
    // Only the first 1 KiB and the last 8 bytes were captured.
    conv.cut(true, &req, 1024, 8);
    // A read of a whole DATA frame then one of a small one: the gap stays
    // inside the first frame's payload.
    let resp = cat(&[
        sh.headers(1, &[(":status", "200")], false),
        data(1, 16_384, false),
    ]);
    conv.cut(false, &resp, 1024, 8);
    conv.s(&data(1, 100, true));
    let ex = conv.exchanges();
    assert_eq!(ex.len(), 1, "{:?}", conv.out.errors);
    assert_eq!(ex[0].request_body_bytes, 16_000);
    assert_eq!(ex[0].response_body_bytes, 16_484);
}

#[test]
fn a_frame_header_in_uncaptured_bytes_loses_the_connection() {
    let mut conv = Conv::client();
    conv.open();
    let mut ch = Hpack::default();
    let mut sh = Hpack::default();
    conv.c(&ch.headers(1, &[(":method", "GET"), (":path", "/a")], true));
    conv.c(&ch.headers(3, &[(":method", "GET"), (":path", "/b")], true));
    let resp = cat(&[
        sh.headers(1, &[(":status", "200")], false),
        data(1, 5000, true),
        sh.headers(3, &[(":status", "200")], true),
    ]);
    conv.cut(false, &resp, 1024, 8);
    assert_eq!(
        conv.out.errors,
        vec![
            Http2Error::Desync,
            Http2Error::StreamAbandoned,
            Http2Error::StreamAbandoned
        ]
    );
    assert!(conv.exchanges().is_empty());
    // Later input is ignored.
    conv.s(&sh.headers(5, &[(":status", "200")], true));
    assert_eq!(conv.out.errors.len(), 3);
}

#[test]
fn a_header_block_not_captured_in_full_loses_the_connection() {
    let mut conv = Conv::client();
    conv.open();
    let mut ch = Hpack::default();
    let long = "x".repeat(3000);
    let req = ch.headers(1, &[(":method", "GET"), (":path", &long)], true);
    conv.cut(true, &req, 1024, 8);
    assert_eq!(conv.out.errors, vec![Http2Error::HeaderBlock]);
}

#[test]
fn hpack_dynamic_table_spans_streams() {
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    let (r1, s1) = unary(&mut ch, &mut sh, 1);
    let (r2, s2) = unary(&mut ch, &mut sh, 3);
    assert!(r2.len() < r1.len() && s2.len() < s1.len(), "indexed");
    conv.c(&r1);
    conv.s(&s1);
    conv.c(&r2);
    conv.s(&s2);
    let ex = conv.exchanges();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].request, ex[1].request);
    assert_eq!(
        ex[1].response.as_ref().unwrap().field("grpc-status"),
        Some("0")
    );
}

#[test]
fn hpack_state_missed_is_an_error_not_a_guess() {
    // The first request's block was never seen (as if captured before the
    // agent): the second refers to table entries the decoder lacks.
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    let _ = unary(&mut ch, &mut sh, 1);
    let (r2, _) = unary(&mut ch, &mut sh, 3);
    conv.c(&r2);
    assert_eq!(conv.out.errors, vec![Http2Error::HeaderBlock]);
}

#[test]
fn settings_header_table_size_is_honoured() {
    // :method GET after a table size update to 8192.
    let block = [0x3f, 0xe1, 0x3f, 0x82, 0x84];
    let mut conv = Conv::client();
    conv.c(PREFACE);
    // The server (the receiver of requests) allows a larger table.
    conv.s(&settings(&[(1, 8192)]));
    conv.c(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    assert!(conv.out.errors.is_empty(), "{:?}", conv.out.errors);
    let mut conv = Conv::client();
    conv.c(PREFACE);
    // The client's own SETTINGS do not govern what it sends.
    conv.c(&settings(&[(1, 8192)]));
    conv.c(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    assert_eq!(conv.out.errors, vec![Http2Error::HeaderBlock]);
}

#[test]
fn max_frame_size_is_honoured() {
    let mut conv = Conv::client();
    conv.open();
    let mut ch = Hpack::default();
    conv.c(&ch.headers(1, &[(":method", "POST"), (":path", "/u")], false));
    conv.c(&data(1, 20_000, true));
    assert_eq!(
        conv.out.errors,
        vec![Http2Error::Malformed, Http2Error::StreamAbandoned]
    );
    let mut conv = Conv::client();
    conv.open();
    conv.s(&settings(&[(5, 32_768)]));
    let mut ch = Hpack::default();
    conv.c(&ch.headers(1, &[(":method", "POST"), (":path", "/u")], false));
    conv.c(&data(1, 20_000, true));
    assert!(conv.out.errors.is_empty());
}

#[test]
fn trailers_only_response() {
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    conv.c(&cat(&[
        ch.headers(1, &grpc_request("/demo.Echo/Missing", &[]), false),
        grpc_message(1, 0, true),
    ]));
    conv.s(&sh.headers(
        1,
        &[
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "12"),
            ("grpc-message", "unknown method Missing"),
        ],
        true,
    ));
    let ex = conv.exchanges();
    let r = ex[0].response.as_ref().unwrap();
    assert_eq!(r.field("grpc-status"), Some("12"));
    assert!(r.trailers.is_empty());
    assert_eq!(ex[0].response_body_bytes, 0);
}

#[test]
fn server_streaming_ends_with_its_trailers() {
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    conv.c(&cat(&[
        ch.headers(1, &grpc_request("/demo.Echo/Count", &[]), false),
        grpc_message(1, 6, true),
    ]));
    conv.s(&sh.headers(1, &[(":status", "200")], false));
    for _ in 0..3 {
        conv.s(&grpc_message(1, 6, false));
        assert!(conv.out.exchanges.is_empty());
    }
    conv.s(&sh.headers(
        1,
        &[("grpc-status", "14"), ("grpc-message", "backend%20down")],
        true,
    ));
    let ex = conv.exchanges();
    assert_eq!(ex[0].response_body_bytes, 33);
    assert_eq!(ex[0].response_end, 8010);
    assert_eq!(
        ex[0].response.as_ref().unwrap().field("grpc-message"),
        Some("backend%20down")
    );
}

#[test]
fn rst_stream_ends_a_stream() {
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    conv.c(&cat(&[
        ch.headers(1, &grpc_request("/grpc.health.v1.Health/Watch", &[]), false),
        grpc_message(1, 0, true),
    ]));
    conv.s(&cat(&[
        sh.headers(1, &[(":status", "200")], false),
        grpc_message(1, 2, false),
    ]));
    conv.c(&rst(1, 8));
    let ex = conv.exchanges();
    assert_eq!(
        ex[0].outcome,
        Outcome::Reset {
            error_code: Some(8)
        }
    );
    assert_eq!(ex[0].response_end, 5010);
    // Frames for the reset stream later are ignored.
    conv.s(&grpc_message(1, 2, true));
    assert!(conv.exchanges().is_empty() && conv.out.errors.is_empty());
}

#[test]
fn goaway_refuses_later_streams_and_close_ends_the_rest() {
    let mut conv = Conv::client();
    conv.open();
    let mut ch = Hpack::default();
    for id in [1, 3, 5] {
        conv.c(&ch.headers(id, &[(":method", "GET"), (":path", "/")], true));
    }
    conv.s(&goaway(1, 0));
    let ex = conv.exchanges();
    assert_eq!(
        ex.iter()
            .map(|e| (e.stream_id, e.outcome))
            .collect::<Vec<_>>(),
        vec![(3, Outcome::Refused), (5, Outcome::Refused)]
    );
    conv.conn.close(99_000, &mut conv.out);
    let ex = conv.exchanges();
    assert_eq!(ex[0].stream_id, 1);
    assert_eq!(ex[0].outcome, Outcome::ConnectionClosed);
    assert_eq!((ex[0].response_start, ex[0].response_end), (99_000, 99_000));
}

#[test]
fn interim_responses_are_skipped() {
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    conv.c(&ch.headers(
        1,
        &[
            (":method", "POST"),
            (":path", "/"),
            ("expect", "100-continue"),
        ],
        false,
    ));
    conv.s(&sh.headers(1, &[(":status", "100")], false));
    conv.c(&data(1, 10, true));
    conv.s(&sh.headers(1, &[(":status", "204")], true));
    let ex = conv.exchanges();
    assert_eq!(ex[0].response.as_ref().unwrap().status, Some(204));
    assert_eq!(ex[0].response_start, 6010);
}

#[test]
fn push_promises_keep_the_table_in_step() {
    let mut conv = Conv::client();
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    conv.c(&ch.headers(1, &[(":method", "GET"), (":path", "/")], true));
    let mut pp = 2u32.to_be_bytes().to_vec();
    pp.extend(sh.block(&[
        (":method", "GET"),
        (":path", "/style.css"),
        ("x-pushed", "1"),
    ]));
    conv.s(&frame(PUSH_PROMISE, END_HEADERS, 1, &pp));
    // Uses the entry the push promise added.
    conv.s(&sh.headers(1, &[(":status", "200"), ("x-pushed", "1")], true));
    conv.s(&sh.headers(2, &[(":status", "200")], true));
    let ex = conv.exchanges();
    assert_eq!(
        ex.len(),
        1,
        "pushed streams are not requests: {:?}",
        conv.out.errors
    );
    assert!(conv.out.errors.is_empty());
}

#[test]
fn streams_are_bounded() {
    let limits = Limits {
        max_streams: 2,
        ..Limits::default()
    };
    let mut conv = Conv::with_limits(Direction::Egress, limits);
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    for id in [1, 3, 5] {
        conv.c(&ch.headers(id, &[(":method", "GET"), (":path", "/")], true));
    }
    assert_eq!(conv.out.errors, vec![Http2Error::TooManyStreams]);
    for id in [1, 3, 5] {
        conv.s(&sh.headers(id, &[(":status", "200")], true));
    }
    assert_eq!(conv.exchanges().len(), 2);
    conv.c(&ch.headers(7, &[(":method", "GET"), (":path", "/")], true));
    conv.s(&sh.headers(7, &[(":status", "200")], true));
    assert_eq!(conv.exchanges().len(), 1, "room again");
}

#[test]
fn a_bad_preface_is_malformed() {
    let mut conv = Conv::client();
    conv.c(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n");
    assert_eq!(conv.out.errors, vec![Http2Error::Malformed]);
}

#[test]
fn frames_are_recognised_mid_connection() {
    let mut sh = Hpack::default();
    let bytes = cat(&[
        sh.headers(1, &[(":status", "200")], false),
        data(1, 100, true),
    ]);
    assert!(looks_like_frames(&bytes, bytes.len() as u64));
    assert!(
        looks_like_frames(&bytes[..20], bytes.len() as u64),
        "the rest uncaptured"
    );
    assert!(!looks_like_frames(&bytes, bytes.len() as u64 + 1));
    assert!(!looks_like_frames(&bytes[1..], bytes.len() as u64 - 1));
    assert!(!looks_like_frames(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27));
    assert!(!looks_like_frames(b"", 0));
}

#[test]
fn each_stream_is_reported_once_when_its_request_headers_are_read() {
    let limits = Limits {
        max_streams: 2,
        ..Limits::default()
    };
    let mut conv = Conv::with_limits(Direction::Ingress, limits);
    conv.open();
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    let (req, resp) = unary(&mut ch, &mut sh, 1);
    conv.c(&req);
    let started = std::mem::take(&mut conv.out.started);
    assert_eq!(started.len(), 1);
    let s = &started[0];
    assert_eq!((s.stream_id, s.request_direction), (1, Direction::Ingress));
    assert_eq!(s.request_start, 3010, "read: the read's return");
    assert!(conv.exchanges().is_empty(), "not ended yet");
    conv.s(&resp);
    let ex = conv.exchanges();
    assert_eq!(ex[0].request, s.request);
    assert_eq!(ex[0].request_start, s.request_start);
    // Request trailers are no new stream; streams over the bound are not
    // reported (they never end).
    conv.c(&ch.headers(3, &[(":method", "POST"), (":path", "/a")], false));
    conv.c(&ch.headers(3, &[("x", "y")], true));
    conv.c(&ch.headers(5, &[(":method", "GET"), (":path", "/b")], true));
    conv.c(&ch.headers(7, &[(":method", "GET"), (":path", "/c")], true));
    let ids: Vec<u32> = conv.out.started.iter().map(|s| s.stream_id).collect();
    assert_eq!(ids, [3, 5]);
    assert_eq!(conv.out.errors, vec![Http2Error::TooManyStreams]);
}
