//! Which application protocol a connection speaks, decided by its first
//! bytes, and the parser that follows it.
use crate::protocols::{
    http1::{self, Chunk, Direction, Http1Connection},
    http2::{self, Http2Connection, Http2Error, frame::PREFACE},
};

/// What the parsers produced; the caller drains every list.
#[derive(Debug, Default)]
pub struct Outputs {
    pub http1: http1::Output,
    pub http2: http2::Output,
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "HTTP/1 is the common case: boxing it would cost an allocation per connection, and the table holds Conns by value anyway"
)]
pub enum Protocol {
    /// HTTP/1, or not decided yet: the HTTP/1 parser waits out a few chunks
    /// before it decides (tracing may have begun in the middle of a body),
    /// and HTTP/2 is looked for first on each of them.
    Http1(Http1Connection),
    Http2(Box<Http2Connection>),
    /// Neither, or HTTP/2 whose start was not seen: ignored.
    Other,
}

/// Bytes of the preface that must be seen to call a connection HTTP/2
/// (`PRI `: no HTTP/1 method starts so).
const PREFACE_MIN: usize = 4;

impl Protocol {
    pub fn new(limits: http1::Limits) -> Self {
        Self::Http1(Http1Connection::new(limits))
    }

    /// Whether the kernel's HTTP/1 trace contexts apply to this connection.
    pub const fn is_http1(&self) -> bool {
        matches!(self, Self::Http1(_))
    }

    /// Whether an HTTP/2 parser follows the connection.
    pub const fn is_http2(&self) -> bool {
        matches!(self, Self::Http2(_))
    }

    pub fn feed(&mut self, dir: Direction, chunk: &Chunk<'_>, out: &mut Outputs) {
        match self {
            Self::Http1(p) if p.is_http().is_none() => {
                if starts_with_preface(chunk.data) {
                    let mut h2 = Http2Connection::new(dir, http2::Limits::default());
                    h2.feed(dir, chunk, &mut out.http2);
                    *self = Self::Http2(Box::new(h2));
                    return;
                }
                if http2::looks_like_server_preface(chunk.data, chunk.total_len) {
                    let mut h2 =
                        Http2Connection::server_first(dir.opposite(), http2::Limits::default());
                    h2.feed(dir, chunk, &mut out.http2);
                    *self = Self::Http2(Box::new(h2));
                    return;
                }
                if http2::looks_like_frames(chunk.data, chunk.total_len) {
                    out.http2.errors.push(Http2Error::MidConnection);
                    *self = Self::Other;
                    return;
                }
                p.feed(dir, chunk, &mut out.http1);
                if p.is_http() == Some(false) {
                    *self = Self::Other;
                }
            }
            Self::Http1(p) => p.feed(dir, chunk, &mut out.http1),
            Self::Http2(p) => {
                p.feed(dir, chunk, &mut out.http2);
                if p.is_finished() {
                    // Given up: free its state.
                    *self = Self::Other;
                }
            }
            Self::Other => {}
        }
    }

    /// The connection closed at `ts`.
    pub fn close(&mut self, ts: u64, out: &mut Outputs) {
        match self {
            Self::Http1(p) => p.close(ts, &mut out.http1),
            Self::Http2(p) => p.close(ts, &mut out.http2),
            Self::Other => {}
        }
    }
}

fn starts_with_preface(data: &[u8]) -> bool {
    let n = data.len().min(PREFACE.len());
    n >= PREFACE_MIN && data[..n] == PREFACE[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut Protocol, dir: Direction, data: &[u8], out: &mut Outputs) {
        p.feed(dir, &Chunk::complete(data, 1, 2), out);
    }

    #[test]
    fn preface_makes_http2_with_the_client_direction() {
        let mut out = Outputs::default();
        let mut p = Protocol::new(http1::Limits::default());
        feed(&mut p, Direction::Ingress, PREFACE, &mut out);
        match &p {
            Protocol::Http2(h2) => assert_eq!(h2.client_direction(), Direction::Ingress),
            other => panic!("{other:?}"),
        }
        let mut p = Protocol::new(http1::Limits::default());
        feed(&mut p, Direction::Egress, b"PRI * HT", &mut out);
        assert!(matches!(p, Protocol::Http2(_)));
        assert!(out.http2.errors.is_empty());
    }

    #[test]
    fn http1_and_other_protocols() {
        let mut out = Outputs::default();
        let mut p = Protocol::new(http1::Limits::default());
        feed(
            &mut p,
            Direction::Egress,
            b"GET / HTTP/1.1\r\n\r\n",
            &mut out,
        );
        assert!(p.is_http1());
        feed(&mut p, Direction::Ingress, PREFACE, &mut out);
        assert!(p.is_http1(), "decided connections stay HTTP/1");
        let mut p = Protocol::new(http1::Limits::default());
        // HTTP/1 waits out a few chunks (tracing may begin mid-body).
        for _ in 0..9 {
            feed(
                &mut p,
                Direction::Egress,
                b"SSH-2.0-OpenSSH_9.6\r\n",
                &mut out,
            );
        }
        assert!(matches!(p, Protocol::Other));
    }

    #[test]
    fn the_server_may_speak_first() {
        use crate::protocols::http2::testing::{Hpack, settings};
        let mut out = Outputs::default();
        let mut p = Protocol::new(http1::Limits::default());
        // A traced Go server writes its SETTINGS before reading the preface.
        feed(
            &mut p,
            Direction::Egress,
            &settings(&[(5, 16_384)]),
            &mut out,
        );
        let mut request = PREFACE.to_vec();
        request.extend(settings(&[]));
        request.extend(Hpack::default().headers(1, &[(":method", "GET"), (":path", "/")], true));
        feed(&mut p, Direction::Ingress, &request, &mut out);
        let response = Hpack::default().headers(1, &[(":status", "200")], true);
        feed(&mut p, Direction::Egress, &response, &mut out);
        assert_eq!(out.http2.exchanges.len(), 1, "{:?}", out.http2.errors);
        assert_eq!(out.http2.exchanges[0].request_direction, Direction::Ingress);

        // Without the preface next, it was a connection already running.
        let mut out = Outputs::default();
        let mut p = Protocol::new(http1::Limits::default());
        feed(&mut p, Direction::Egress, &settings(&[]), &mut out);
        feed(&mut p, Direction::Ingress, &settings(&[]), &mut out);
        assert_eq!(out.http2.errors, vec![Http2Error::MidConnection]);
        assert!(matches!(p, Protocol::Other));
    }

    #[test]
    fn frames_without_a_preface_are_counted_and_ignored() {
        let mut out = Outputs::default();
        let mut p = Protocol::new(http1::Limits::default());
        // PING, then a WINDOW_UPDATE: a connection already running.
        let mut bytes = vec![0, 0, 8, 6, 0, 0, 0, 0, 0];
        bytes.extend([7; 8]);
        bytes.extend([0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        feed(&mut p, Direction::Ingress, &bytes, &mut out);
        assert!(matches!(p, Protocol::Other));
        assert_eq!(out.http2.errors, vec![Http2Error::MidConnection]);
    }
}
