//! Same-host stitching of HTTP/2 streams whose HEADERS frame carries no
//! `traceparent` (injection off, the socket connected before the agent, or
//! a frame the kernel could not grow): the agent remembers each client
//! stream's span ids by (connection, stream id) when it reads the client's
//! request HEADERS, and the server end of the same connection on this host
//! looks them up when it reads the same HEADERS.
//!
//! # Order
//! Both ends' events come through one ring buffer, in the order they were
//! reserved, at each syscall's exit. The client's write exits before the
//! server's read of those bytes nearly always, but not surely: the bytes are
//! in the server's socket before the client's write returns, and a server
//! already waiting on another CPU may return first. So a server stream whose
//! lookup misses at its start looks again when it ends (its response is
//! written long after the client's write exited); client streams that ended
//! are kept a grace period for that. A lookup that still misses links
//! nothing.
//!
//! # Never a wrong link
//! The server's request must be the client's: same connection (4-tuple,
//! reversed) and stream id, the same decoded request fields, and times that
//! agree (the client started writing it before the server read it, and the
//! server read it before the client's stream ended, which rules out an
//! ended stream of an earlier connection on the same 4-tuple). A match is
//! taken: one client span has at most one server child this way.
use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
    net::IpAddr,
};

use crate::{
    context::parent::{ParentSource, SpanIdentity},
    protocols::http2::Request,
    spans::http::Endpoints,
};

/// How long an ended client stream is kept for a server lookup that lost
/// the race (kernel ns, measured against the newest event seen).
pub const GRACE_NS: u64 = 5_000_000_000;
/// Client streams remembered at most (the kernel's HTTP/1 table holds as
/// many).
pub const CAPACITY: usize = 16_384;

/// One stream of one connection, named from the client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub stream_id: u32,
}

impl StreamKey {
    /// The stream `stream_id` of a connection with `ends`, seen by its
    /// client (`client`) or its server; `None` when the kernel did not
    /// know the connection's endpoints (all such connections would look
    /// alike).
    pub fn new(ends: &Endpoints, client: bool, stream_id: u32) -> Option<Self> {
        let known = |(addr, port): (IpAddr, u16)| port != 0 && !addr.is_unspecified();
        if !known(ends.local) || !known(ends.remote) {
            return None;
        }
        let (c, s) = if client {
            (ends.local, ends.remote)
        } else {
            (ends.remote, ends.local)
        };
        Some(Self {
            client: c,
            server: s,
            stream_id,
        })
    }
}

/// What the server end needs of a client stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientStream {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
    /// [`fingerprint`] of its request.
    pub fingerprint: u64,
    /// When the client started writing the request (kernel ns).
    pub request_start: u64,
}

/// A hash of the request fields the parser kept: both ends decode the same
/// header block into the same fields.
pub fn fingerprint(request: &Request) -> u64 {
    let mut h = DefaultHasher::new();
    request.headers.hash(&mut h);
    h.finish()
}

/// The identity of the server span whose parent is `client`: its trace, its
/// sampling decision (taken once, where the trace entered this host).
pub fn child_of(client: &ClientStream, span_id: [u8; 8]) -> SpanIdentity {
    SpanIdentity {
        trace_id: client.trace_id,
        span_id,
        parent_span_id: Some(client.span_id),
        parent_is_remote: true,
        sampled: client.sampled,
        trace_state: None,
        source: ParentSource::Connection,
        injected: false,
    }
}

struct Entry {
    client: ClientStream,
    /// Insertion number: its key in `by_age`.
    generation: u64,
    /// The client stream ended at this time (kernel ns), and may be dropped
    /// at the deadline: its key in `by_deadline`.
    ended: Option<(u64, u64)>,
}

/// Client streams by (connection, stream id), bounded; see the module docs.
pub struct Stitch {
    entries: HashMap<StreamKey, Entry>,
    /// generation → key, oldest first: who goes when full.
    by_age: BTreeMap<u64, StreamKey>,
    /// (deadline, generation) → key of ended streams.
    by_deadline: BTreeMap<(u64, u64), StreamKey>,
    next_generation: u64,
    capacity: usize,
}

impl Stitch {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            by_deadline: BTreeMap::new(),
            next_generation: 0,
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remember a client stream whose request HEADERS were just written.
    /// Returns whether another was dropped before its time to make room.
    pub fn insert(&mut self, key: StreamKey, client: ClientStream, now: u64) -> bool {
        self.expire(now);
        // The same key again: a later connection on the same 4-tuple.
        self.remove(&key);
        let mut evicted = false;
        if self.entries.len() >= self.capacity {
            // Ended streams first (the sooner due, the sooner gone), then
            // the oldest.
            let victim = self
                .by_deadline
                .first_key_value()
                .map(|(_, k)| *k)
                .or_else(|| self.by_age.first_key_value().map(|(_, k)| *k));
            if let Some(victim) = victim {
                self.remove(&victim);
                evicted = true;
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.by_age.insert(generation, key);
        self.entries.insert(
            key,
            Entry {
                client,
                generation,
                ended: None,
            },
        );
        evicted
    }

    /// The client stream ended at `end` (kernel ns): keep it `GRACE_NS`
    /// past `now` for a server end that has not looked yet.
    pub fn end(&mut self, key: &StreamKey, end: u64, now: u64) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        if e.ended.is_some() {
            return;
        }
        let deadline = now.saturating_add(GRACE_NS);
        e.ended = Some((end, deadline));
        self.by_deadline.insert((deadline, e.generation), *key);
        self.expire(now);
    }

    /// The client stream that the server stream `key`, whose request has
    /// `fingerprint` and was read at `server_start`, is the other end of;
    /// taken, so it is found once.
    pub fn take(
        &mut self,
        key: &StreamKey,
        fingerprint: u64,
        server_start: u64,
        now: u64,
    ) -> Option<ClientStream> {
        self.expire(now);
        let e = self.entries.get(key)?;
        let c = e.client;
        let same = c.fingerprint == fingerprint
            && c.request_start <= server_start
            && e.ended.is_none_or(|(end, _)| server_start <= end);
        if !same {
            return None;
        }
        self.remove(key);
        Some(c)
    }

    fn expire(&mut self, now: u64) {
        while let Some(((deadline, _), key)) = self.by_deadline.first_key_value() {
            if *deadline > now {
                break;
            }
            let key = *key;
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &StreamKey) {
        if let Some(e) = self.entries.remove(key) {
            self.by_age.remove(&e.generation);
            if let Some((_, deadline)) = e.ended {
                self.by_deadline.remove(&(deadline, e.generation));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn key(port: u16, stream_id: u32) -> StreamKey {
        let ends = Endpoints {
            local: (Ipv4Addr::LOCALHOST.into(), port),
            remote: (Ipv4Addr::LOCALHOST.into(), 50_051),
            tls: false,
        };
        StreamKey::new(&ends, true, stream_id).expect("known ends")
    }

    fn client(n: u8, start: u64) -> ClientStream {
        ClientStream {
            trace_id: [n; 16],
            span_id: [n; 8],
            sampled: true,
            fingerprint: u64::from(n),
            request_start: start,
        }
    }

    #[test]
    fn the_server_sees_the_reversed_tuple() {
        let client_ends = Endpoints {
            local: (Ipv4Addr::LOCALHOST.into(), 40_000),
            remote: (Ipv4Addr::new(127, 0, 0, 2).into(), 50_051),
            tls: false,
        };
        let server_ends = Endpoints {
            local: client_ends.remote,
            tls: false,
            remote: client_ends.local,
        };
        assert_eq!(
            StreamKey::new(&client_ends, true, 3),
            StreamKey::new(&server_ends, false, 3)
        );
        assert!(StreamKey::new(&client_ends, true, 3).is_some());
        assert_ne!(
            StreamKey::new(&client_ends, true, 3),
            StreamKey::new(&server_ends, false, 5)
        );
        let unknown = Endpoints {
            local: (Ipv4Addr::UNSPECIFIED.into(), 0),
            remote: (Ipv4Addr::UNSPECIFIED.into(), 0),
            tls: false,
        };
        assert_eq!(StreamKey::new(&unknown, true, 3), None, "never stitched");
    }

    #[test]
    fn found_once_and_only_if_it_is_the_same_request() {
        let mut s = Stitch::new(8);
        assert!(!s.insert(key(1, 1), client(1, 100), 100));
        assert_eq!(s.take(&key(1, 1), 2, 110, 110), None, "other fields");
        assert_eq!(s.take(&key(1, 1), 1, 90, 110), None, "read before written");
        assert_eq!(s.take(&key(1, 3), 1, 110, 110), None, "other stream");
        assert_eq!(s.take(&key(1, 1), 1, 110, 110), Some(client(1, 100)));
        assert_eq!(s.take(&key(1, 1), 1, 110, 110), None, "taken");
        assert!(s.is_empty());
    }

    #[test]
    fn ended_streams_wait_out_the_grace_period() {
        let mut s = Stitch::new(8);
        s.insert(key(1, 1), client(1, 100), 100);
        s.end(&key(1, 1), 200, 200);
        // The server read it before the client's stream ended: found.
        assert_eq!(s.take(&key(1, 1), 1, 150, 300), Some(client(1, 100)));
        s.insert(key(1, 3), client(3, 400), 400);
        s.end(&key(1, 3), 500, 500);
        // Read after the client's stream ended: another connection's.
        assert_eq!(s.take(&key(1, 3), 3, 600, 600), None);
        assert_eq!(s.len(), 1);
        s.insert(key(1, 5), client(5, 700), 700);
        assert_eq!(s.len(), 2);
        s.insert(key(1, 7), client(7, 800), 500 + GRACE_NS);
        assert_eq!(s.len(), 2, "stream 3 expired");
        assert_eq!(
            s.take(&key(1, 5), 5, 800, 500 + GRACE_NS),
            Some(client(5, 700))
        );
    }

    #[test]
    fn bounded_ended_streams_go_first() {
        let mut s = Stitch::new(2);
        assert!(!s.insert(key(1, 1), client(1, 100), 100));
        assert!(!s.insert(key(1, 3), client(3, 100), 100));
        s.end(&key(1, 3), 150, 150);
        assert!(s.insert(key(1, 5), client(5, 200), 200));
        assert!(s.take(&key(1, 3), 3, 120, 200).is_none(), "evicted");
        assert!(s.insert(key(1, 7), client(7, 300), 300));
        assert!(s.take(&key(1, 1), 1, 120, 300).is_none(), "the oldest");
        assert_eq!(s.len(), 2);
        // A later connection on the same tuple replaces the entry.
        assert!(!s.insert(key(1, 7), client(9, 400), 400));
        assert_eq!(s.take(&key(1, 7), 9, 410, 410), Some(client(9, 400)));
    }
}
