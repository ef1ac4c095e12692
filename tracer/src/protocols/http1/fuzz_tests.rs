//! Property-style tests: pseudo-random and mangled traffic, split at random,
//! must never panic nor grow the parser beyond its limits.

use super::*;

/// xorshift64: deterministic, so a failure names the seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        // n is small; the modulo bias is irrelevant here.
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const REQUESTS: [&[u8]; 8] = [
    b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /h HTTP/1.1\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"PUT /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"CONNECT h:443 HTTP/1.1\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    b"GET /old HTTP/1.0\r\n\r\n",
];

const RESPONSES: [&[u8]; 9] = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
];

/// A byte stream for one direction: well-formed messages, mangled ones and
/// noise.
fn stream(rng: &mut Rng, messages: &[&[u8]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..rng.below(8) {
        let mut message = messages[rng.below(messages.len())].to_vec();
        match rng.below(10) {
            0 => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(message.len());
                    message[i] = rng.next() as u8;
                }
            }
            1 => message.truncate(rng.below(message.len())),
            2 => {
                let at = rng.below(message.len());
                let noise: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                message.splice(at..at, noise);
            }
            3 => message = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            4 => {
                // A long header, to push heads past small limits.
                let at = message
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let mut header = b"X-Long: ".to_vec();
                header.extend(std::iter::repeat_n(b'z', rng.below(3000)));
                header.extend_from_slice(b"\r\n");
                message.splice(at..at, header);
            }
            _ => {}
        }
        bytes.extend_from_slice(&message);
    }
    bytes
}

/// Splits a stream into chunks, some captured only in part.
fn chunks(rng: &mut Rng, bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let longest = if rng.chance(30) { 8 } else { 600 };
        let len = 1 + rng.below(longest).min(bytes.len() - at - 1);
        let captured = if rng.chance(25) {
            rng.below(len + 1)
        } else {
            len
        };
        out.push((at, len, captured));
        at += len;
    }
    out
}

fn check_bounds(conn: &Http1Connection, limits: Limits, seed: u64) {
    let (head_len, head_capacity, pending) = conn.footprint();
    assert!(
        head_len <= limits.max_head_bytes,
        "seed {seed}: head {head_len}"
    );
    assert!(
        head_capacity <= limits.max_head_bytes.max(4096),
        "seed {seed}: capacity {head_capacity}"
    );
    assert!(
        pending <= limits.max_pending.max(1),
        "seed {seed}: pending {pending}"
    );
}

/// Returns what the connection produced, so the test can check that the
/// generator reaches the interesting paths.
fn run(seed: u64, limits: Limits) -> Output {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let request_dir = if rng.chance(50) {
        Direction::Ingress
    } else {
        Direction::Egress
    };
    let requests = stream(&mut rng, &REQUESTS);
    let responses = stream(&mut rng, &RESPONSES);
    let mut queues = [
        (
            request_dir,
            requests.as_slice(),
            chunks(&mut rng, &requests),
        ),
        (
            request_dir.opposite(),
            responses.as_slice(),
            chunks(&mut rng, &responses),
        ),
    ];
    for (_, _, list) in &mut queues {
        list.reverse();
    }
    let mut conn = Http1Connection::new(limits);
    let mut out = Output::default();
    let mut ts = 0;
    loop {
        let pick = match (queues[0].2.is_empty(), queues[1].2.is_empty()) {
            (true, true) => break,
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => rng.below(2),
        };
        let (dir, bytes, list) = &mut queues[pick];
        let Some((at, len, captured)) = list.pop() else {
            continue;
        };
        let moved = &bytes[at..at + len];
        let tail_len = if captured < len {
            rng.below(9).min(len)
        } else {
            0
        };
        ts += 1 + rng.below(1000) as u64;
        let chunk = Chunk {
            data: &moved[..captured],
            // Now and then the kernel reports far more than was captured.
            total_len: if rng.chance(2) {
                rng.next()
            } else {
                len as u64
            },
            tail: &moved[len - tail_len..],
            ts_start: ts,
            ts_end: ts + 5,
        };
        conn.feed(*dir, &chunk, &mut out);
        check_bounds(&conn, limits, seed);
    }
    conn.close(ts + 10, &mut out);
    check_bounds(&conn, limits, seed);
    for exchange in &out.exchanges {
        assert!(
            exchange.request_start <= exchange.request_end,
            "seed {seed}"
        );
        assert!(
            exchange.response_start <= exchange.response_end,
            "seed {seed}"
        );
    }
    out
}

#[test]
fn random_traffic_never_panics_and_stays_bounded() {
    let small = Limits {
        max_pending: 3,
        max_head_bytes: 256,
        max_headers: 4,
    };
    let mut exchanges = 0;
    let mut outcomes = std::collections::HashSet::new();
    let mut errors = std::collections::HashSet::new();
    for seed in 0..5000 {
        for limits in [Limits::default(), small] {
            let out = run(seed, limits);
            exchanges += out.exchanges.len();
            outcomes.extend(out.exchanges.iter().map(|e| e.outcome));
            errors.extend(out.errors);
        }
    }
    assert!(exchanges > 3_000, "only {exchanges} exchanges");
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_eq!(errors.len(), ParseError::ALL.len(), "{errors:?}");
}

#[test]
fn pure_noise_is_cheap() {
    let mut rng = Rng(0x1234_5678);
    for seed in 0..500 {
        let mut conn = Http1Connection::new(Limits::default());
        let mut out = Output::default();
        for i in 0..20 {
            let noise: Vec<u8> = (0..rng.below(2048)).map(|_| rng.next() as u8).collect();
            let dir = if rng.chance(50) {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            conn.feed(dir, &Chunk::complete(&noise, i, i + 1), &mut out);
            check_bounds(&conn, Limits::default(), seed);
        }
        conn.close(100, &mut out);
        assert!(out.exchanges.is_empty());
    }
}
