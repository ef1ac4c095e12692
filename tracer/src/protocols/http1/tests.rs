//! Connection-level behaviour: pairing, framing, timestamps, losses.

use super::*;

const IN: Direction = Direction::Ingress;
const OUT: Direction = Direction::Egress;

/// (method, target, status, request body, response body, outcome) of an
/// exchange.
type Row = (String, String, Option<u16>, u64, u64, Outcome);

/// Feeds chunks with predictable timestamps: the n-th chunk (from 0) enters
/// its syscall at `1000 * (n + 1)` and leaves it 10 ns later.
struct Harness {
    conn: Http1Connection,
    out: Output,
    chunks: u64,
}

impl Harness {
    fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Self {
        Self {
            conn: Http1Connection::new(limits),
            out: Output::default(),
            chunks: 0,
        }
    }

    fn next_ts(&mut self) -> (u64, u64) {
        self.chunks += 1;
        (1000 * self.chunks, 1000 * self.chunks + 10)
    }

    fn send(&mut self, dir: Direction, bytes: &[u8]) -> &mut Self {
        let (ts_start, ts_end) = self.next_ts();
        self.conn.feed(
            dir,
            &Chunk::complete(bytes, ts_start, ts_end),
            &mut self.out,
        );
        self
    }

    /// One syscall that moved `bytes`, of which only the first `captured`
    /// and the last `tail` were seen.
    fn send_partial(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        captured: usize,
        tail: usize,
    ) -> &mut Self {
        let (ts_start, ts_end) = self.next_ts();
        let chunk = Chunk {
            data: &bytes[..captured],
            total_len: bytes.len() as u64,
            tail: &bytes[bytes.len() - tail..],
            ts_start,
            ts_end,
        };
        self.conn.feed(dir, &chunk, &mut self.out);
        self
    }

    fn close(&mut self) -> &mut Self {
        let (ts, _) = self.next_ts();
        self.conn.close(ts, &mut self.out);
        self
    }

    fn exchanges(&mut self) -> Vec<Exchange> {
        std::mem::take(&mut self.out.exchanges)
    }

    fn errors(&mut self) -> Vec<ParseError> {
        std::mem::take(&mut self.out.errors)
    }

    /// (method, target, status, request body, response body, outcome) of
    /// each exchange, and the errors.
    fn summary(&mut self) -> (Vec<Row>, Vec<ParseError>) {
        let exchanges = self
            .exchanges()
            .into_iter()
            .map(|e| {
                (
                    e.request.method,
                    e.request.target,
                    e.response.map(|r| r.status),
                    e.request_body_bytes,
                    e.response_body_bytes,
                    e.outcome,
                )
            })
            .collect();
        (exchanges, self.errors())
    }
}

fn row(
    method: &str,
    target: &str,
    status: Option<u16>,
    request_body: u64,
    response_body: u64,
    outcome: Outcome,
) -> Row {
    (
        method.to_owned(),
        target.to_owned(),
        status,
        request_body,
        response_body,
        outcome,
    )
}

fn ok(method: &str, target: &str, status: u16, response_body: u64) -> Row {
    row(
        method,
        target,
        Some(status),
        0,
        response_body,
        Outcome::Complete,
    )
}

const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn server_side_exchange_fields_and_timestamps() {
    let mut h = Harness::new();
    h.send(IN, GET).send(OUT, OK_5);
    assert_eq!(h.conn.is_http(), Some(true));
    assert_eq!(h.conn.request_direction(), Some(IN));
    let exchanges = h.exchanges();
    assert_eq!(exchanges.len(), 1);
    let e = &exchanges[0];
    assert_eq!(e.request_direction, IN);
    assert_eq!(e.request.method, "GET");
    assert_eq!(e.request.target, "/index.html");
    assert_eq!(e.request.version, Version::Http11);
    assert_eq!(e.request.header("user-agent"), Some("curl/8.5.0"));
    // Only the fields the agent uses are kept (Host, User-Agent here).
    assert_eq!(e.request.headers.len(), 2);
    let response = e.response.as_ref().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("5"));
    // Read: seen at the read's return. Written: from the write's entry.
    assert_eq!((e.request_start, e.request_end), (1010, 1010));
    assert_eq!((e.response_start, e.response_end), (2000, 2010));
    assert_eq!((e.request_body_bytes, e.response_body_bytes), (0, 5));
    assert_eq!(e.outcome, Outcome::Complete);
    assert!(h.errors().is_empty());
}

#[test]
fn client_side_exchange_timestamps() {
    let mut h = Harness::new();
    h.send(OUT, GET).send(IN, &OK_5[..20]).send(IN, &OK_5[20..]);
    assert_eq!(h.conn.request_direction(), Some(OUT));
    let e = h.exchanges().pop().unwrap();
    assert_eq!(e.request_direction, OUT);
    assert_eq!((e.request_start, e.request_end), (1000, 1010));
    assert_eq!((e.response_start, e.response_end), (2010, 3010));
}

#[test]
fn heads_one_byte_per_chunk() {
    let mut h = Harness::new();
    for b in GET {
        h.send(IN, std::slice::from_ref(b));
    }
    assert!(h.exchanges().is_empty());
    for b in OK_5 {
        h.send(OUT, std::slice::from_ref(b));
    }
    let e = h.exchanges().pop().unwrap();
    let n = GET.len() as u64;
    assert_eq!(e.request.header("user-agent"), Some("curl/8.5.0"));
    assert_eq!((e.request_start, e.request_end), (1010, n * 1000 + 10));
    assert_eq!(e.response_start, (n + 1) * 1000);
    assert_eq!(e.response_end, (n + OK_5.len() as u64) * 1000 + 10);
    assert_eq!(e.response_body_bytes, 5);
    assert!(h.errors().is_empty());
}

#[test]
fn every_split_point_gives_the_same_exchange() {
    let requests = [GET, b"POST /api HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"].concat();
    let responses = [
        OK_5,
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ]
    .concat();
    for split in 1..requests.len() {
        for rsplit in [1, 17, 40, responses.len() - 1] {
            let mut h = Harness::new();
            h.send(IN, &requests[..split]).send(IN, &requests[split..]);
            h.send(OUT, &responses[..rsplit])
                .send(OUT, &responses[rsplit..]);
            let (exchanges, errors) = h.summary();
            assert_eq!(
                exchanges,
                [
                    ok("GET", "/index.html", 200, 5),
                    row("POST", "/api", Some(201), 3, 2, Outcome::Complete)
                ],
                "split {split}/{rsplit}"
            );
            assert!(errors.is_empty());
        }
    }
}

#[test]
fn keep_alive_and_several_messages_in_one_chunk() {
    let mut h = Harness::new();
    for i in 0..10 {
        h.send(
            IN,
            format!("GET /item/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        );
        h.send(OUT, OK_5);
    }
    assert_eq!(h.exchanges().len(), 10);
    // Two requests and their responses, each pair in a single chunk, with
    // the body of the first response in the same chunk as the next head.
    h.send(IN, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    h.send(OUT, &[OK_5, OK_5].concat());
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [ok("GET", "/a", 200, 5), ok("GET", "/b", 200, 5)]
    );
    assert!(errors.is_empty());
}

#[test]
fn pipelined_requests_pair_fifo_and_head_has_no_body() {
    let mut h = Harness::new();
    h.send(
        OUT,
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    h.send(IN, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    // The HEAD response announces a length but has no body: the next bytes
    // are the third response.
    h.send(IN, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop");
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [
            ok("GET", "/1", 200, 2),
            ok("HEAD", "/2", 200, 0),
            ok("GET", "/3", 404, 3)
        ]
    );
    assert!(errors.is_empty());
}

#[test]
fn responses_without_body() {
    let mut h = Harness::new();
    h.send(IN, b"DELETE /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\nIf-None-Match: \"a\"\r\n\r\nGET /z HTTP/1.1\r\n\r\n");
    h.send(
        OUT,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [
            ok("DELETE", "/x", 204, 0),
            ok("GET", "/y", 304, 0),
            ok("GET", "/z", 200, 0)
        ]
    );
    assert!(errors.is_empty());
}

#[test]
fn chunked_response_any_split() {
    let response = b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: yes\r\n\r\n";
    for split in 1..response.len() {
        let mut h = Harness::new();
        h.send(OUT, b"GET /wiki HTTP/1.1\r\n\r\n");
        h.send(IN, &response[..split]).send(IN, &response[split..]);
        h.send(OUT, b"GET /again HTTP/1.1\r\n\r\n").send(IN, OK_5);
        let (exchanges, errors) = h.summary();
        assert_eq!(
            exchanges,
            [ok("GET", "/wiki", 200, 24), ok("GET", "/again", 200, 5)],
            "split {split}"
        );
        assert!(errors.is_empty());
    }
}

#[test]
fn chunked_request_body() {
    let mut h = Harness::new();
    h.send(
        OUT,
        b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    h.send(OUT, b"5\r\nhello\r\n").send(OUT, b"0\r\n\r\n");
    h.send(IN, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [row("POST", "/upload", Some(201), 5, 0, Outcome::Complete)]
    );
    assert!(errors.is_empty());
}

#[test]
fn body_until_close() {
    let mut h = Harness::new();
    h.send(OUT, b"GET /file HTTP/1.0\r\nUser-Agent: Wget/1.21\r\n\r\n");
    h.send(IN, b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.12.3\r\nContent-type: text/html\r\n\r\n<html>");
    h.send(IN, b"</html>");
    assert!(h.exchanges().is_empty());
    h.close();
    let e = h.exchanges().pop().unwrap();
    assert_eq!(e.outcome, Outcome::Complete);
    assert_eq!(e.response_body_bytes, 13);
    assert_eq!(e.response.unwrap().version, Version::Http10);
    // The body ended with the last bytes read, not at the close.
    assert_eq!(e.response_end, 3010);
}

#[test]
fn expect_100_continue() {
    let mut h = Harness::new();
    h.send(
        IN,
        b"PUT /obj HTTP/1.1\r\nHost: s3\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    h.send(OUT, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(h.exchanges().is_empty());
    h.send(IN, b"data");
    h.send(OUT, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let e = h.exchanges().pop().unwrap();
    assert_eq!(e.response.unwrap().status, 200);
    assert_eq!(e.request_body_bytes, 4);
    // The request ended with its body; the final response is the one timed.
    assert_eq!((e.request_start, e.request_end), (1010, 3010));
    assert_eq!(e.response_start, 4000);
    assert!(h.errors().is_empty());
}

#[test]
fn interim_responses_are_skipped() {
    let mut h = Harness::new();
    h.send(OUT, b"GET / HTTP/1.1\r\n\r\n");
    h.send(IN, b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n");
    h.send(IN, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/", 200, 5)]);
    assert!(errors.is_empty());
}

#[test]
fn early_response_while_request_body_still_arriving() {
    let mut h = Harness::new();
    h.send(IN, b"POST /big HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    h.send(
        OUT,
        b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n",
    );
    let (exchanges, _) = h.summary();
    assert_eq!(
        exchanges,
        [row("POST", "/big", Some(413), 3, 0, Outcome::Complete)]
    );
    // The rest of the body is still read past.
    h.send(IN, b"defghij")
        .send(IN, b"GET / HTTP/1.1\r\n\r\n")
        .send(OUT, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/", 200, 5)]);
    assert!(errors.is_empty());
}

#[test]
fn connect_accepted_becomes_a_tunnel() {
    let mut h = Harness::new();
    h.send(
        OUT,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
    // A client may start its TLS handshake before the proxy answers.
    h.send(OUT, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    h.send(IN, b"HTTP/1.1 200 Connection established\r\n\r\n");
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("CONNECT", "example.com:443", 200, 0)]);
    assert!(errors.is_empty());
    h.send(OUT, b"\x17\x03\x03\x00\x10garbage")
        .send(IN, b"HTTP/1.1 200 OK\r\n\r\n");
    h.close();
    let (exchanges, errors) = h.summary();
    assert!(exchanges.is_empty() && errors.is_empty());
    assert_eq!(h.conn.is_http(), Some(true));
}

#[test]
fn connect_refused_goes_on_with_requests() {
    let mut h = Harness::new();
    h.send(OUT, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    h.send(
        IN,
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
    );
    h.send(
        OUT,
        b"CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic eDp5\r\n\r\n",
    );
    h.send(IN, b"HTTP/1.1 200 OK\r\n\r\n");
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [
            ok("CONNECT", "example.com:443", 407, 0),
            ok("CONNECT", "example.com:443", 200, 0)
        ]
    );
    assert!(errors.is_empty());
}

#[test]
fn switching_protocols_becomes_a_tunnel() {
    let mut h = Harness::new();
    h.send(IN, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    h.send(OUT, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello");
    h.send(IN, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/ws", 101, 0)]);
    assert!(errors.is_empty());
}

#[test]
fn content_length_body_beyond_the_capture() {
    let body = vec![b'x'; 100_000];
    let request = [
        b"POST /upload HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".as_slice(),
        &body,
    ]
    .concat();
    let mut h = Harness::new();
    h.send_partial(IN, &request, 1024, 8);
    // A later write of the same body, captured only in part too.
    let response = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".as_slice(),
        &body,
    ]
    .concat();
    h.send_partial(OUT, &response[..60_000], 1024, 0);
    h.send_partial(OUT, &response[60_000..], 1024, 8);
    h.send(IN, GET).send(OUT, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [
            row(
                "POST",
                "/upload",
                Some(200),
                100_000,
                100_000,
                Outcome::Complete
            ),
            ok("GET", "/index.html", 200, 5)
        ]
    );
    assert!(errors.is_empty());
}

#[test]
fn tail_overlapping_the_captured_prefix() {
    // Only 3 bytes were missed; the 8-byte tail repeats 5 captured ones and
    // completes the head.
    let mut h = Harness::new();
    h.send_partial(OUT, GET, GET.len() - 3, 8).send(IN, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/index.html", 200, 5)]);
    assert!(errors.is_empty());
}

#[test]
fn uncaptured_bytes_past_a_body_lose_the_next_head() {
    // Two pipelined requests in one write; the second lies past the capture.
    let requests = [
        b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".as_slice(),
        GET,
    ]
    .concat();
    let mut h = Harness::new();
    h.send_partial(IN, &requests, 50, 8);
    assert_eq!(h.errors(), [ParseError::HeadTruncated]);
    // Both responses arrive; the second answers the lost request and is
    // dropped without another error.
    h.send(OUT, &[OK_5, OK_5].concat());
    h.send(IN, b"GET /next HTTP/1.1\r\n\r\n").send(OUT, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [
            row("POST", "/a", Some(200), 5, 5, Outcome::Complete),
            ok("GET", "/next", 200, 5)
        ]
    );
    assert!(errors.is_empty());
}

#[test]
fn chunked_body_followed_through_a_gap_into_the_tail() {
    // One write: head, one 4 KiB chunk, last-chunk; the size line was
    // captured and the end is in the tail.
    let data = vec![b'a'; 4096];
    let response = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n".as_slice(),
        &data,
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    let mut h = Harness::new();
    h.send(OUT, b"GET /big HTTP/1.1\r\n\r\n");
    h.send_partial(IN, &response, 1024, 8);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/big", 200, 4096)]);
    assert!(errors.is_empty());
}

/// Two 4 KiB chunks in one write: the second size line is not captured.
fn chunked_lost_response(last_chunk: bool) -> Vec<u8> {
    let data = vec![b'a'; 4096];
    let mut response = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n".as_slice(),
        &data,
        b"\r\n1000\r\n",
        &data,
        b"\r\n",
    ]
    .concat();
    if last_chunk {
        response.extend_from_slice(b"0\r\n\r\n");
    }
    response
}

#[test]
fn chunked_framing_lost_ends_at_last_chunk_in_tail() {
    let mut h = Harness::new();
    h.send(OUT, b"GET /big HTTP/1.1\r\n\r\n");
    let response = chunked_lost_response(false);
    h.send_partial(IN, &response, 1024, 8);
    assert!(h.exchanges().is_empty());
    // The last-chunk comes in a write of its own.
    h.send(IN, b"0\r\n\r\n");
    let e = h.exchanges().pop().unwrap();
    assert_eq!(e.outcome, Outcome::Complete);
    assert_eq!(e.response_end, 3010);
    // From where framing was lost the count is of wire bytes: 4096 payload
    // followed exactly, then 2 + 6 + 4096 + 2 + 5.
    assert_eq!(e.response_body_bytes, 4096 + 4096 + 15);
    assert!(h.errors().is_empty());

    let mut h = Harness::new();
    h.send(OUT, b"GET /big HTTP/1.1\r\n\r\n");
    h.send_partial(IN, &chunked_lost_response(true), 1024, 8);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges.len(), 1);
    assert!(errors.is_empty());
}

#[test]
fn chunked_framing_lost_ends_at_next_request() {
    let mut h = Harness::new();
    h.send(IN, b"GET /big HTTP/1.1\r\n\r\n");
    h.send_partial(OUT, &chunked_lost_response(false), 1024, 4);
    h.send(OUT, b"more bytes of unknown framing");
    assert!(h.exchanges().is_empty());
    h.send(IN, b"GET /next HTTP/1.1\r\n\r\n");
    let e = h.exchanges().pop().unwrap();
    assert_eq!(
        (e.request.target.as_str(), e.outcome),
        ("/big", Outcome::Complete)
    );
    assert_eq!(e.response_end, 3010);
    h.send(OUT, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/next", 200, 5)]);
    assert!(errors.is_empty());
}

#[test]
fn chunked_framing_lost_ends_at_next_status_line_or_close() {
    let mut h = Harness::new();
    h.send(OUT, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    h.send_partial(IN, &chunked_lost_response(false), 1024, 0);
    h.send(IN, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [ok("GET", "/1", 200, 2 * 4096 + 10), ok("GET", "/2", 200, 5)]
    );
    assert!(errors.is_empty());

    let mut h = Harness::new();
    h.send(OUT, b"GET /1 HTTP/1.1\r\n\r\n");
    h.send_partial(IN, &chunked_lost_response(false), 1024, 0);
    h.close();
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/1", 200, 2 * 4096 + 10)]);
    assert!(errors.is_empty());
}

#[test]
fn request_head_beyond_the_capture() {
    let mut request = b"GET /with-cookies HTTP/1.1\r\nCookie: ".to_vec();
    request.extend(std::iter::repeat_n(b'c', 3000));
    request.extend_from_slice(b"\r\n\r\n");
    let mut h = Harness::new();
    h.send_partial(IN, &request, 1024, 8);
    assert_eq!(h.errors(), [ParseError::HeadTruncated]);
    // Its response is dropped silently: the lost request held its place.
    h.send(OUT, OK_5);
    h.send(IN, GET).send(OUT, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/index.html", 200, 5)]);
    assert!(errors.is_empty());
}

#[test]
fn long_request_line_decides_the_connection() {
    let mut request = b"GET /search?q=".to_vec();
    request.extend(std::iter::repeat_n(b'q', 2000));
    request.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let mut h = Harness::new();
    h.send_partial(OUT, &request, 1024, 8);
    assert_eq!(h.conn.request_direction(), Some(OUT));
    assert_eq!(h.errors(), [ParseError::HeadTruncated]);
    h.send(IN, OK_5);
    let (exchanges, errors) = h.summary();
    assert!(exchanges.is_empty() && errors.is_empty());
}

#[test]
fn response_head_beyond_the_capture_keeps_its_status() {
    let mut response = b"HTTP/1.1 302 Found\r\nSet-Cookie: ".to_vec();
    response.extend(std::iter::repeat_n(b's', 3000));
    response.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let mut h = Harness::new();
    h.send(OUT, GET).send_partial(IN, &response, 1024, 8);
    let e = h.exchanges().pop().unwrap();
    assert_eq!(e.outcome, Outcome::ResponseLost);
    let head = e.response.unwrap();
    assert_eq!((head.status, head.headers.len()), (302, 0));
    assert_eq!((e.response_start, e.response_end), (2010, 2010));
    assert_eq!(h.errors(), [ParseError::HeadTruncated]);
    // The next response starts a chunk and is picked up again.
    h.send(OUT, GET).send(IN, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/index.html", 200, 5)]);
    assert!(errors.is_empty());
}

#[test]
fn resync_on_a_message_start_split_across_chunks() {
    let mut h = Harness::new();
    h.send(IN, GET).send(OUT, OK_5);
    h.exchanges();
    let mut long = b"GET /x HTTP/1.1\r\nX: ".to_vec();
    long.extend(std::iter::repeat_n(b'y', 2000));
    long.extend_from_slice(b"\r\n\r\n");
    h.send_partial(IN, &long, 512, 8);
    h.send(OUT, OK_5);
    assert_eq!(h.errors(), [ParseError::HeadTruncated]);
    // Chunks that start mid-message are skipped; a one-byte chunk that may
    // begin a message is tried.
    h.send(IN, b"yyy\r\n\r\n");
    h.send(IN, b"G")
        .send(IN, b"ET /after HTTP/1.1\r\n\r\n")
        .send(OUT, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/after", 200, 5)]);
    assert!(errors.is_empty());
}

#[test]
fn not_http_is_ignored() {
    let mut h = Harness::new();
    // A few chunks are waited out (tracing may have started mid-body).
    for _ in 0..8 {
        h.send(
            OUT,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03rest of a client hello",
        );
    }
    assert_eq!(h.conn.is_http(), Some(false));
    assert_eq!(h.conn.request_direction(), None);
    h.send(IN, OK_5).send(OUT, GET).close();
    let (exchanges, errors) = h.summary();
    assert!(exchanges.is_empty() && errors.is_empty());
    assert_eq!(h.conn.footprint(), (0, 0, 0));

    // Text protocols too: a Redis command, an SMTP greeting.
    for first in [
        &b"*1\r\n$4\r\nPING\r\n"[..],
        b"220 mail.example.com ESMTP\r\n",
    ] {
        let mut h = Harness::new();
        for _ in 0..8 {
            h.send(IN, first);
        }
        assert_eq!(h.conn.is_http(), Some(false), "{first:?}");
    }
}

#[test]
fn undecided_until_the_start_line_is_clear() {
    let mut h = Harness::new();
    h.send(OUT, b"GE");
    assert_eq!(h.conn.is_http(), None);
    h.send(OUT, b"T / HTT");
    assert_eq!(h.conn.is_http(), None);
    h.send(OUT, b"P/1.1\r\n\r\n");
    assert_eq!(h.conn.request_direction(), Some(OUT));
}

#[test]
fn response_first_is_unexpected_and_decides() {
    let mut h = Harness::new();
    h.send(IN, OK_5);
    assert_eq!(h.conn.request_direction(), Some(OUT));
    assert_eq!(h.errors(), [ParseError::UnexpectedResponse]);
    h.send(OUT, GET).send(IN, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/index.html", 200, 5)]);
    assert!(errors.is_empty());
}

#[test]
fn too_many_headers_and_head_too_large() {
    let limits = Limits {
        max_headers: 2,
        max_head_bytes: 64,
        ..Limits::default()
    };
    let mut h = Harness::with_limits(limits);
    h.send(IN, b"GET /a HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    assert_eq!(h.errors(), [ParseError::TooManyHeaders]);
    h.send(OUT, b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n");
    h.send(
        IN,
        b"GET /b HTTP/1.1\r\nX: 01234567890123456789012345678901234567890123456789\r\n\r\n",
    );
    assert_eq!(h.errors(), [ParseError::HeadTooLarge]);
    h.send(OUT, b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n");
    h.send(IN, b"GET /c HTTP/1.1\r\nA: 1\r\n\r\n")
        .send(OUT, b"HTTP/1.1 200 OK\r\n\r\n");
    h.close();
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/c", 200, 0)]);
    assert!(errors.is_empty());
}

#[test]
fn pipeline_overflow_drops_the_oldest() {
    let mut h = Harness::with_limits(Limits {
        max_pending: 2,
        ..Limits::default()
    });
    h.send(
        OUT,
        b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
    );
    assert_eq!(h.errors(), [ParseError::PipelineOverflow]);
    assert_eq!(h.conn.footprint().2, 2);
    h.close();
    let targets: Vec<_> = h
        .exchanges()
        .into_iter()
        .map(|e| e.request.target)
        .collect();
    assert_eq!(targets, ["/2", "/3"]);
}

#[test]
fn malformed_heads_resync() {
    let mut h = Harness::new();
    h.send(IN, GET).send(OUT, OK_5);
    h.exchanges();
    h.send(IN, b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n");
    assert_eq!(h.errors(), [ParseError::Malformed]);
    h.send(
        OUT,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    );
    // While resyncing, chunks that do not start a message pass silently.
    h.send(IN, b"\x00\x01binary junk");
    assert!(h.errors().is_empty());
    h.send(IN, GET).send(OUT, OK_5);
    // Where a message should start, they are malformed.
    h.send(IN, b"\x00\x01binary junk");
    assert_eq!(h.errors(), [ParseError::Malformed]);
    h.send(IN, GET).send(OUT, OK_5);
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [
            ok("GET", "/index.html", 200, 5),
            ok("GET", "/index.html", 200, 5)
        ]
    );
    assert!(errors.is_empty());
}

#[test]
fn absurd_lengths() {
    let mut h = Harness::new();
    h.send(
        IN,
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    );
    assert_eq!(h.errors(), [ParseError::Malformed]);
    h.send(
        OUT,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    );
    h.send(IN, GET);
    h.send(
        OUT,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n",
    );
    assert_eq!(h.errors(), [ParseError::Malformed]);
    h.close();
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/index.html", 200, 2)]);
    assert!(errors.is_empty());

    // The largest length that fits is followed by count, without overflow.
    let mut h = Harness::new();
    h.send(OUT, GET);
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
    let chunk = Chunk {
        data: head,
        total_len: u64::MAX,
        tail: b"xxxxxxxx",
        ts_start: 5,
        ts_end: 6,
    };
    h.conn.feed(IN, &chunk, &mut h.out);
    h.close();
    let e = h.exchanges().pop().unwrap();
    assert_eq!(e.outcome, Outcome::ConnectionClosed);
    assert_eq!(e.response_body_bytes, u64::MAX - head.len() as u64);
}

#[test]
fn close_ends_what_is_waiting() {
    let mut h = Harness::new();
    h.send(OUT, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    h.send(IN, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    h.close();
    let exchanges = h.exchanges();
    assert_eq!(exchanges.len(), 2);
    assert_eq!(exchanges[0].outcome, Outcome::ConnectionClosed);
    assert_eq!(exchanges[0].response.as_ref().unwrap().status, 200);
    assert_eq!(exchanges[0].response_body_bytes, 3);
    assert_eq!(exchanges[1].outcome, Outcome::ConnectionClosed);
    assert_eq!(exchanges[1].response, None);
    assert_eq!(
        (exchanges[1].response_start, exchanges[1].response_end),
        (3000, 3000)
    );
    // Nothing is reported twice, and later input is ignored.
    h.close().send(OUT, GET).send(IN, OK_5);
    assert!(h.exchanges().is_empty());
}

#[test]
fn stray_line_ends_between_messages() {
    let mut h = Harness::new();
    h.send(IN, b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nok\r\n");
    h.send(IN, b"\r\nGET /b HTTP/1.1\r\n\r\n");
    h.send(OUT, &[OK_5, OK_5].concat());
    let (exchanges, errors) = h.summary();
    assert_eq!(
        exchanges,
        [
            row("POST", "/a", Some(200), 2, 5, Outcome::Complete),
            ok("GET", "/b", 200, 5)
        ]
    );
    assert!(errors.is_empty());
}

#[test]
fn smuggling_shapes_are_not_trusted() {
    let mut h = Harness::new();
    h.send(
        IN,
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
    );
    h.send(IN, b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
    let (_, errors) = h.summary();
    assert_eq!(errors, [ParseError::Malformed, ParseError::Malformed]);
    // Transfer-Encoding wins over Content-Length.
    let mut h = Harness::new();
    h.send(
        IN,
        b"POST / HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    h.send(IN, GET).send(OUT, &[OK_5, OK_5].concat());
    let (exchanges, errors) = h.summary();
    assert_eq!(exchanges.len(), 2);
    assert!(errors.is_empty());
}

#[test]
fn tracing_started_mid_body_resyncs_at_the_next_request() {
    let mut h = Harness::new();
    // The end of a body of a request whose head came before the agent.
    h.send(IN, b"{\"items\": [1, 2, 3], \"more\": true}")
        .send(IN, b"trailing body bytes, still not a message start");
    assert_eq!(h.conn.is_http(), None, "undecided, not written off");
    h.send(OUT, OK_5).send(IN, GET).send(OUT, OK_5);
    let (exchanges, _) = h.summary();
    assert_eq!(exchanges, [ok("GET", "/index.html", 200, 5)]);
}

/// A head that arrives whole in one chunk is parsed where it lies; one
/// that arrives in pieces is gathered in the head buffer first. Both must
/// give the same exchanges (heads, bodies, outcomes) and the same errors,
/// whatever the head holds, sound or not.
#[test]
fn a_head_parsed_in_place_reads_as_one_gathered_in_pieces() {
    let cases: &[(&[u8], &[u8])] = &[
        (GET, OK_5),
        (
            b"\r\nPOST /a?b=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTraceparent: x\r\n\r\nabc",
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        (b"GET / HTTP/1.0\n\n", b"HTTP/1.0 204 No Content\n\n"),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", OK_5),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", OK_5),
        (b"GET / HTTP/9.1\r\n\r\n", OK_5),
        (b"HTTP/1.1 200 OK\r\n\r\n", GET),
    ];
    for &(request, response) in cases {
        let mut whole = Harness::new();
        whole.send(IN, request).send(OUT, response).close();
        let mut pieces = Harness::new();
        for b in request {
            pieces.send(IN, std::slice::from_ref(b));
        }
        for b in response {
            pieces.send(OUT, std::slice::from_ref(b));
        }
        pieces.close();
        let (a, b) = (whole.exchanges(), pieces.exchanges());
        assert_eq!(a.len(), b.len(), "{request:?}");
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.request, b.request, "{request:?}");
            assert_eq!(a.response, b.response, "{response:?}");
            assert_eq!(
                (a.request_body_bytes, a.response_body_bytes, a.outcome),
                (b.request_body_bytes, b.response_body_bytes, b.outcome),
                "{request:?}"
            );
        }
        assert_eq!(
            whole.errors(),
            pieces.errors(),
            "{request:?} / {response:?}"
        );
    }
}

/// Heads are parsed in place also when a chunk holds several messages, and
/// a head longer than the limit is refused the same way either path.
#[test]
fn heads_parsed_in_place_in_a_pipelined_chunk_and_over_the_limit() {
    let mut h = Harness::new();
    let two = [GET, GET].concat();
    h.send(IN, &two).send(OUT, &[OK_5, OK_5].concat());
    let (rows, errors) = h.summary();
    assert_eq!(rows, vec![ok("GET", "/index.html", 200, 5); 2]);
    assert!(errors.is_empty());

    let limits = Limits {
        max_head_bytes: 40,
        ..Limits::default()
    };
    let mut whole = Harness::with_limits(limits);
    whole.send(IN, GET).send(OUT, OK_5);
    let mut pieces = Harness::with_limits(limits);
    for part in GET.chunks(7) {
        pieces.send(IN, part);
    }
    pieces.send(OUT, OK_5);
    let (whole_errors, piece_errors) = (whole.summary().1, pieces.summary().1);
    assert_eq!(whole_errors, piece_errors);
    assert!(
        whole_errors.contains(&ParseError::HeadTooLarge),
        "{whole_errors:?}"
    );
}
