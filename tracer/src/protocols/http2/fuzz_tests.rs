//! The parser never panics and stays bounded, whatever the bytes, splits and
//! gaps.
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};

use super::headers::{HeaderDecoder, KEPT_REQUEST};
use super::testing::*;
use super::*;

/// A plausible conversation: preface, settings, a few calls.
fn conversation(rng: &mut SmallRng) -> (Vec<u8>, Vec<u8>) {
    let (mut ch, mut sh) = (Hpack::default(), Hpack::default());
    let mut c = PREFACE.to_vec();
    c.extend(settings(&[(1, 8192)]));
    let mut s = settings(&[(1, 4096), (5, 16_384)]);
    for i in 0..rng.random_range(1..6u32) {
        let id = 2 * i + 1;
        let path = format!("/svc.S/M{}", rng.random_range(0..3));
        c.extend(ch.headers(id, &grpc_request(&path, &[("traceparent", "00-x")]), false));
        c.extend(grpc_message(id, rng.random_range(0..300), true));
        s.extend(sh.headers(id, &[(":status", "200")], false));
        s.extend(grpc_message(id, rng.random_range(0..300), false));
        s.extend(sh.headers(id, &[("grpc-status", "0")], true));
    }
    (c, s)
}

fn mutate(rng: &mut SmallRng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.random_range(0..4) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..3) {
            0 => bytes[at] = rng.random(),
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, rng.random()),
        }
    }
}

/// Feeds `bytes` in random pieces, some captured only in part.
fn feed_randomly(
    rng: &mut SmallRng,
    conn: &mut Http2Connection,
    dir: Direction,
    bytes: &[u8],
    ts: &mut u64,
    out: &mut Output,
) {
    let mut at = 0;
    while at < bytes.len() {
        let n = rng.random_range(1..=(bytes.len() - at).min(700));
        let piece = &bytes[at..at + n];
        at += n;
        let cap = if rng.random_ratio(1, 5) {
            rng.random_range(0..=n)
        } else {
            n
        };
        let tail_len = rng.random_range(0..=8usize.min(n));
        *ts += 10;
        let chunk = Chunk {
            data: &piece[..cap],
            total_len: n as u64,
            tail: &piece[n - tail_len..],
            ts_start: *ts,
            ts_end: *ts + 5,
        };
        conn.feed(dir, &chunk, out);
    }
}

#[test]
fn never_panics_and_stays_bounded() {
    let mut rng = SmallRng::seed_from_u64(0x0048_325f_6675_7a7a);
    let limits = Limits {
        max_streams: 4,
        max_header_block: 4096,
        max_table_size: 4096,
    };
    let mut exchanges = 0;
    for round in 0..3000 {
        let (mut c, mut s) = conversation(&mut rng);
        if round % 3 != 0 {
            mutate(&mut rng, &mut c);
            mutate(&mut rng, &mut s);
        }
        if round % 10 == 0 {
            // Pure noise after the preface.
            let n = rng.random_range(0..2000);
            c.truncate(PREFACE.len());
            c.extend((0..n).map(|_| rng.random::<u8>()));
        }
        let mut conn = Http2Connection::new(Direction::Egress, limits);
        let mut out = Output::default();
        let mut ts = 0;
        let (mut ci, mut si) = (0, 0);
        while ci < c.len() || si < s.len() {
            let take = rng.random_range(1..400);
            if rng.random_bool(0.5) && ci < c.len() {
                let end = (ci + take).min(c.len());
                feed_randomly(
                    &mut rng,
                    &mut conn,
                    Direction::Egress,
                    &c[ci..end],
                    &mut ts,
                    &mut out,
                );
                ci = end;
            } else if si < s.len() {
                let end = (si + take).min(s.len());
                feed_randomly(
                    &mut rng,
                    &mut conn,
                    Direction::Ingress,
                    &s[si..end],
                    &mut ts,
                    &mut out,
                );
                si = end;
            }
            let (streams, held) = conn.footprint();
            assert!(streams <= limits.max_streams, "round {round}");
            assert!(held <= 2 * limits.max_header_block, "round {round}: {held}");
        }
        conn.close(ts + 1, &mut out);
        exchanges += out.exchanges.len();
        for e in &out.exchanges {
            assert!(e.request.headers.len() <= KEPT_REQUEST.len());
            assert!(e.request.headers.iter().all(|(_, v)| v.len() <= 2048));
        }
    }
    assert!(exchanges > 500, "the unmutated rounds parse: {exchanges}");
}

#[test]
fn random_bytes_from_the_start() {
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..2000 {
        let mut conn = Http2Connection::new(Direction::Ingress, Limits::default());
        let mut out = Output::default();
        let mut c = PREFACE.to_vec();
        c.extend((0..rng.random_range(0..600)).map(|_| rng.random::<u8>()));
        let mut ts = 0;
        feed_randomly(
            &mut rng,
            &mut conn,
            Direction::Ingress,
            &c,
            &mut ts,
            &mut out,
        );
        let noise: Vec<u8> = (0..rng.random_range(0..600))
            .map(|_| rng.random())
            .collect();
        feed_randomly(
            &mut rng,
            &mut conn,
            Direction::Egress,
            &noise,
            &mut ts,
            &mut out,
        );
        assert!(out.errors.len() <= 1 + Limits::default().max_streams);
        let _ = looks_like_frames(&noise, noise.len() as u64);
    }
}

#[test]
fn hpack_decoding_never_panics() {
    let mut rng = SmallRng::seed_from_u64(0x0068_7061_636b);
    let mut valid = Hpack::default();
    let mut decoder = HeaderDecoder::new(4096);
    for round in 0..20_000 {
        let mut block = if round % 2 == 0 {
            valid.block(&grpc_request("/a.B/C", &[("traceparent", "00-1")]))
        } else {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        };
        mutate(&mut rng, &mut block);
        if decoder.decode(&block, KEPT_REQUEST).is_err() {
            // As the connection would: start again with a fresh state.
            decoder = HeaderDecoder::new(4096);
            valid = Hpack::default();
        }
    }
}
