//! Proxies that forward the context header of the request they serve
//! (nginx `grpc_pass`, Envoy): the server span each caller's span id led
//! to, per process, so a client request of that process carrying the same
//! header is known as that request's call. HTTP/1 does this in the kernel
//! (SERVER_BY_CALLER); HTTP/2 headers are only decoded here.
use std::collections::{HashMap, VecDeque};

/// A server request whose header named a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    pub trace_id: [u8; 16],
    /// The server span's id.
    pub span_id: [u8; 8],
    pub sampled: bool,
    /// Kernel ns when its request was read.
    pub at: u64,
}

/// How long a served request can be forwarded after it was read.
const MAX_AGE_NS: u64 = 60 * 1_000_000_000;

/// (pid, caller's span id) → the server request it led to; bounded,
/// oldest forgotten first.
pub struct Forwarded {
    entries: HashMap<(u32, [u8; 8]), Served>,
    order: VecDeque<(u32, [u8; 8])>,
    capacity: usize,
}

impl Forwarded {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Process `pid` read a request whose header named `caller`.
    pub fn served(&mut self, pid: u32, caller: [u8; 8], served: Served) {
        let key = (pid, caller);
        if self.entries.insert(key, served).is_some() {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.entries.remove(&old);
        }
        self.order.push_back(key);
    }

    /// The request process `pid` is serving that a client request with a
    /// header naming `caller` in `trace_id` forwards, read before `now`.
    pub fn forwarding(
        &self,
        pid: u32,
        caller: [u8; 8],
        trace_id: [u8; 16],
        now: u64,
    ) -> Option<Served> {
        self.entries
            .get(&(pid, caller))
            .filter(|s| s.trace_id == trace_id && now.saturating_sub(s.at) < MAX_AGE_NS)
            .copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(n: u8, at: u64) -> Served {
        Served {
            trace_id: [n; 16],
            span_id: [n; 8],
            sampled: true,
            at,
        }
    }

    #[test]
    fn found_in_the_same_process_and_trace_only() {
        let mut f = Forwarded::new(4);
        f.served(10, [1; 8], served(1, 100));
        assert_eq!(f.forwarding(10, [1; 8], [1; 16], 200), Some(served(1, 100)));
        assert_eq!(
            f.forwarding(11, [1; 8], [1; 16], 200),
            None,
            "another process"
        );
        assert_eq!(
            f.forwarding(10, [1; 8], [2; 16], 200),
            None,
            "another trace"
        );
        assert_eq!(
            f.forwarding(10, [2; 8], [1; 16], 200),
            None,
            "another caller"
        );
        assert_eq!(
            f.forwarding(10, [1; 8], [1; 16], 100 + MAX_AGE_NS),
            None,
            "too old"
        );
    }

    #[test]
    fn bounded_oldest_first() {
        let mut f = Forwarded::new(2);
        for n in 1..=3u8 {
            f.served(1, [n; 8], served(n, 0));
        }
        assert_eq!(f.len(), 2);
        assert!(f.forwarding(1, [1; 8], [1; 16], 1).is_none());
        assert!(f.forwarding(1, [3; 8], [3; 16], 1).is_some());
        // Seen again: replaced, not added twice.
        f.served(1, [3; 8], served(3, 5));
        assert_eq!(f.len(), 2);
        assert_eq!(f.forwarding(1, [3; 8], [3; 16], 6).map(|s| s.at), Some(5));
    }
}
