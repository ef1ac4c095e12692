//! Per-connection state: which socket a (pid, fd) is, its two endpoints, and
//! the parser of its byte streams. Bounded in size; idle entries age out.
use std::{
    collections::VecDeque,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

// hashbrown: foldhash by default, a fraction of SipHash's cost for a lookup per
// event (keys are ours, not an attacker's to choose).
use hashbrown::HashMap;
use tracer_common::{ConnTuple, TraceCtx};

use super::protocol::Protocol;
use crate::{
    context::parent::SpanIdentity, process::ProcessInfo, protocols::http1::Limits,
    spans::http::Endpoints,
};

const AF_INET: u16 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub pid: u32,
    pub fd: u32,
}

pub struct Conn {
    pub sock_id: u64,
    pub ends: Endpoints,
    pub process: Arc<ProcessInfo>,
    pub protocol: Protocol,
    /// Monotonic ns of the last event.
    pub last_seen: u64,
    /// Trace contexts the kernel chose for requests on this connection, by
    /// the timestamp their exchange will start at; oldest first.
    pub contexts: VecDeque<(u64, TraceCtx)>,
    /// HTTP/2 streams open on this connection, by stream id: the identity
    /// chosen for their span when their request headers were read (as many
    /// as the parser follows).
    pub http2_streams: HashMap<u32, OpenStream>,
    /// Trace contexts the kernel chose (and wrote into the HEADERS frame)
    /// for client streams whose request has not been read yet, by stream id.
    pub http2_contexts: HashMap<u32, TraceCtx>,
}

/// The span of an HTTP/2 stream whose request was read and that has not
/// ended.
#[derive(Clone, Debug)]
pub struct OpenStream {
    pub identity: SpanIdentity,
    /// The process sent the request.
    pub client: bool,
    /// The identity is final. A server stream without a context header
    /// whose client end was not found (yet) looks again when it ends, and
    /// is otherwise this root.
    pub decided: bool,
    /// A server stream whose parent came from its header: should a client
    /// on this host turn out to have forwarded that header (a proxy), its
    /// own span, found when the stream ends, is the parent instead.
    pub recheck_forwarder: bool,
    /// Server streams of Go middle tiers: the handler's `*http.Request`,
    /// whose ServeMux pattern is read when the stream ends (0: none).
    pub go_request: u64,
}

/// Contexts kept per connection for exchanges not finished yet (pipelining
/// depth); older ones are dropped.
const MAX_CONTEXTS: usize = 64;
/// Kernel contexts of HTTP/2 client streams kept per connection until
/// their HEADERS are read: normally one write's worth (a write holds up to
/// `http2::MAX_HEADS`), read just after; more only when requests were never
/// read.
const MAX_HTTP2_CONTEXTS: usize = 4 * tracer_common::http2::MAX_HEADS;

impl Conn {
    pub fn remember_context(&mut self, request_start: u64, ctx: TraceCtx) {
        if self.contexts.len() == MAX_CONTEXTS {
            self.contexts.pop_front();
        }
        self.contexts.push_back((request_start, ctx));
    }

    /// The kernel's context for client stream `stream_id`, whose HEADERS
    /// frame starts a write of this connection. Returns how many contexts
    /// waiting were dropped to make room.
    pub fn remember_http2_context(&mut self, stream_id: u32, ctx: TraceCtx) -> usize {
        let mut dropped = 0;
        if self.http2_contexts.len() >= MAX_HTTP2_CONTEXTS {
            // Streams whose request was never read: nothing will take them.
            dropped = self.http2_contexts.len();
            self.http2_contexts.clear();
        }
        self.http2_contexts.insert(stream_id, ctx);
        dropped
    }

    /// The context of the exchange that started at `request_start`; older
    /// ones can no longer match and are dropped.
    pub fn take_context(&mut self, request_start: u64) -> Option<TraceCtx> {
        while let Some(&(ts, ctx)) = self.contexts.front() {
            if ts > request_start {
                return None;
            }
            self.contexts.pop_front();
            if ts == request_start {
                return Some(ctx);
            }
        }
        None
    }
}

pub struct ConnTable {
    conns: HashMap<ConnKey, Conn>,
    max: usize,
    limits: Limits,
}

/// What `ConnTable::entry` found.
pub enum Slot<'a> {
    /// The connection, as it was or newly made.
    Live(&'a mut Conn),
    /// The table is full: the event is dropped.
    Full,
}

impl ConnTable {
    pub fn new(max: usize, limits: Limits) -> Self {
        Self {
            conns: HashMap::new(),
            max,
            limits,
        }
    }

    /// The connection for `key`. A different socket under the same fd (the
    /// close was missed) replaces the old one, which is returned for the
    /// caller to finish.
    pub fn entry(
        &mut self,
        key: ConnKey,
        sock_id: u64,
        tuple: &ConnTuple,
        process: impl FnOnce() -> Arc<ProcessInfo>,
        now: u64,
    ) -> (Slot<'_>, Option<Conn>) {
        let replaced = match self.conns.get(&key) {
            Some(c) if c.sock_id == sock_id => None,
            Some(_) => self.conns.remove(&key),
            None => None,
        };
        if !self.conns.contains_key(&key) && self.conns.len() >= self.max {
            return (Slot::Full, replaced);
        }
        let limits = self.limits;
        let conn = self.conns.entry(key).or_insert_with(|| Conn {
            sock_id,
            ends: endpoints(tuple),
            process: process(),
            protocol: Protocol::new(limits),
            last_seen: now,
            contexts: VecDeque::new(),
            http2_streams: HashMap::new(),
            http2_contexts: HashMap::new(),
        });
        conn.last_seen = now;
        (Slot::Live(conn), replaced)
    }

    /// The connection at `key` if it is still the socket `sock_id`.
    pub fn get_mut(&mut self, key: ConnKey, sock_id: u64) -> Option<&mut Conn> {
        self.conns.get_mut(&key).filter(|c| c.sock_id == sock_id)
    }

    /// Remove `key` if it is still the socket `sock_id`.
    pub fn remove_socket(&mut self, key: ConnKey, sock_id: u64) -> Option<Conn> {
        match self.conns.get(&key) {
            Some(c) if c.sock_id == sock_id => self.conns.remove(&key),
            _ => None,
        }
    }

    /// Every connection of `pid` (the process exited).
    pub fn remove_pid(&mut self, pid: u32) -> Vec<Conn> {
        let keys: Vec<ConnKey> = self
            .conns
            .keys()
            .filter(|k| k.pid == pid)
            .copied()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.conns.remove(&k))
            .collect()
    }

    /// Connections with no event since `before` (monotonic ns).
    pub fn remove_idle(&mut self, before: u64) -> Vec<Conn> {
        let keys: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.last_seen < before)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.conns.remove(&k))
            .collect()
    }

    pub fn drain(&mut self) -> Vec<Conn> {
        self.conns.drain().map(|(_, c)| c).collect()
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

/// The kernel's tuple as socket addresses; IPv4-mapped IPv6 addresses (a
/// dual-stack socket talking IPv4) are shown as IPv4.
pub fn endpoints(t: &ConnTuple) -> Endpoints {
    let addr = |b: &[u8; 16]| -> IpAddr {
        if t.family == AF_INET {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(*b)).to_canonical()
        }
    };
    Endpoints {
        local: (addr(&t.local_addr), t.local_port),
        remote: (addr(&t.remote_addr), t.remote_port),
        tls: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::info::ProcDetails;

    fn tuple(family: u16) -> ConnTuple {
        let mut t = ConnTuple {
            family,
            local_port: 80,
            remote_port: 5555,
            ..ConnTuple::default()
        };
        if family == AF_INET {
            t.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
            t.remote_addr[..4].copy_from_slice(&[10, 1, 2, 3]);
        } else {
            t.local_addr = Ipv6Addr::LOCALHOST.octets();
            t.remote_addr = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets();
        }
        t
    }

    #[test]
    fn endpoints_of_v4_v6_and_mapped() {
        let e = endpoints(&tuple(2));
        assert_eq!(e.local, ("127.0.0.1".parse().unwrap(), 80));
        assert_eq!(e.remote, ("10.1.2.3".parse().unwrap(), 5555));
        let e = endpoints(&tuple(10));
        assert_eq!(e.local, ("::1".parse().unwrap(), 80));
        assert_eq!(e.remote, ("10.1.2.3".parse().unwrap(), 5555));
    }

    #[test]
    fn bounded_and_replaces_reused_fds() {
        let p = || Arc::new(ProcessInfo::new(1, ProcDetails::default(), "h"));
        let mut t = ConnTable::new(2, Limits::default());
        let k = |fd| ConnKey { pid: 1, fd };
        assert!(matches!(
            t.entry(k(3), 100, &tuple(2), p, 1),
            (Slot::Live(_), None)
        ));
        assert!(matches!(
            t.entry(k(4), 101, &tuple(2), p, 1),
            (Slot::Live(_), None)
        ));
        assert!(matches!(
            t.entry(k(5), 102, &tuple(2), p, 1),
            (Slot::Full, None)
        ));
        // Same fd, another socket: the old one comes back to be finished.
        let (slot, old) = t.entry(k(3), 200, &tuple(2), p, 2);
        assert!(matches!(slot, Slot::Live(c) if c.sock_id == 200));
        assert_eq!(old.map(|c| c.sock_id), Some(100));
        assert_eq!(t.remove_idle(2).len(), 1);
        assert_eq!(t.remove_pid(1).len(), 1);
        assert!(t.is_empty());
    }

    /// A whole write's worth of HTTP/2 contexts (and a few writes more)
    /// waits for its requests; beyond that, the unclaimed ones go, counted.
    #[test]
    fn http2_contexts_wait_for_several_full_writes() {
        let p = || Arc::new(ProcessInfo::new(1, ProcDetails::default(), "h"));
        let mut t = ConnTable::new(2, Limits::default());
        let (Slot::Live(conn), _) = t.entry(ConnKey { pid: 1, fd: 3 }, 100, &tuple(2), p, 1) else {
            panic!("no slot");
        };
        let ctx = TraceCtx {
            valid: 1,
            ..TraceCtx::default()
        };
        let mut dropped = 0;
        for i in 0..MAX_HTTP2_CONTEXTS as u32 {
            dropped += conn.remember_http2_context(2 * i + 1, ctx);
        }
        assert_eq!(dropped, 0);
        assert!(conn.http2_contexts.contains_key(&1));
        assert_eq!(
            conn.remember_http2_context(u32::MAX, ctx),
            MAX_HTTP2_CONTEXTS
        );
        assert_eq!(conn.http2_contexts.len(), 1);
    }
}
