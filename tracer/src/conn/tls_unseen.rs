//! TLS connections whose ClientHello the kernel saw but whose plaintext
//! never came: the process's TLS library is not one the agent probes (one
//! linked in and stripped, such as the BoringSSL in grpcio's PyPI wheels,
//! or rustls, Java's, GnuTLS). Counted per connection when it closes or
//! its process ends, and told once per process that never gave plaintext,
//! so that a service with no spans says why.
use std::collections::{HashMap, HashSet};

use super::table::ConnKey;

/// TLS connections waiting for their first plaintext; past this, new ones
/// are not followed (the word is best-effort, the spans are unaffected).
const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct TlsUnseen {
    /// Connections whose hello came and no plaintext yet, by socket.
    waiting: HashMap<ConnKey, u64>,
    /// Processes that gave plaintext on some connection: their library is
    /// probed, and a connection of theirs with none only carried no data.
    seen: HashSet<u32>,
    /// Processes already told of.
    told: HashSet<u32>,
}

/// A connection that ended with no plaintext.
#[derive(Debug, PartialEq, Eq)]
pub struct Unseen {
    pub pid: u32,
    /// Its process gave no plaintext yet and was not told of: say so now.
    pub tell: bool,
}

impl TlsUnseen {
    /// A ClientHello went by on `key`'s socket `sock_id`.
    pub fn hello(&mut self, key: ConnKey, sock_id: u64) {
        if self.waiting.len() < CAPACITY || self.waiting.contains_key(&key) {
            self.waiting.insert(key, sock_id);
        }
    }

    /// Plaintext came for `key`'s socket `sock_id`.
    pub fn plaintext(&mut self, key: ConnKey, sock_id: u64) {
        self.seen.insert(key.pid);
        if self.waiting.get(&key) == Some(&sock_id) {
            self.waiting.remove(&key);
        }
    }

    /// `key`'s socket `sock_id` closed.
    pub fn closed(&mut self, key: ConnKey, sock_id: u64) -> Option<Unseen> {
        if self.waiting.get(&key) != Some(&sock_id) {
            return None;
        }
        self.waiting.remove(&key);
        Some(self.unseen(key.pid))
    }

    /// Process `pid` ended: its connections still waiting end with it.
    pub fn exited(&mut self, pid: u32) -> Vec<Unseen> {
        let before = self.waiting.len();
        self.waiting.retain(|k, _| k.pid != pid);
        let out = (0..before - self.waiting.len())
            .map(|_| self.unseen(pid))
            .collect();
        self.seen.remove(&pid);
        self.told.remove(&pid);
        out
    }

    /// Process `pid` runs another program: it is told of afresh (its
    /// sockets may outlive the exec, and stay followed).
    pub fn exec(&mut self, pid: u32) {
        self.seen.remove(&pid);
        self.told.remove(&pid);
    }

    fn unseen(&mut self, pid: u32) -> Unseen {
        let tell = !self.seen.contains(&pid) && self.told.insert(pid);
        Unseen { pid, tell }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32, fd: u32) -> ConnKey {
        ConnKey { pid, fd }
    }

    #[test]
    fn a_connection_with_plaintext_is_not_unseen() {
        let mut t = TlsUnseen::default();
        t.hello(key(1, 5), 10);
        t.plaintext(key(1, 5), 10);
        assert_eq!(t.closed(key(1, 5), 10), None);
        assert!(t.exited(1).is_empty());
    }

    #[test]
    fn a_process_with_no_plaintext_is_told_of_once() {
        let mut t = TlsUnseen::default();
        t.hello(key(1, 5), 10);
        t.hello(key(1, 6), 11);
        assert_eq!(t.closed(key(1, 5), 10), Some(Unseen { pid: 1, tell: true }));
        assert_eq!(
            t.closed(key(1, 6), 11),
            Some(Unseen {
                pid: 1,
                tell: false
            })
        );
    }

    #[test]
    fn a_probed_process_is_counted_but_not_told_of() {
        // A handshake-only connection in a process whose library gave
        // plaintext elsewhere.
        let mut t = TlsUnseen::default();
        t.hello(key(1, 5), 10);
        t.plaintext(key(1, 5), 10);
        t.hello(key(1, 6), 11);
        assert_eq!(
            t.closed(key(1, 6), 11),
            Some(Unseen {
                pid: 1,
                tell: false
            })
        );
    }

    #[test]
    fn another_socket_under_the_fd_is_not_ours() {
        // Plaintext on another socket under the same fd leaves ours
        // waiting (and shows the process's library is probed).
        let mut t = TlsUnseen::default();
        t.hello(key(1, 5), 10);
        t.plaintext(key(1, 5), 99);
        assert_eq!(t.closed(key(1, 5), 99), None);
        assert_eq!(
            t.closed(key(1, 5), 10),
            Some(Unseen {
                pid: 1,
                tell: false
            })
        );
    }

    #[test]
    fn an_exit_ends_what_waits_and_forgets_the_pid() {
        let mut t = TlsUnseen::default();
        t.hello(key(1, 5), 10);
        t.hello(key(2, 5), 20);
        assert_eq!(t.exited(1), vec![Unseen { pid: 1, tell: true }]);
        // The pid reused by another program is told of again.
        t.hello(key(1, 7), 30);
        assert_eq!(t.closed(key(1, 7), 30), Some(Unseen { pid: 1, tell: true }));
        assert_eq!(t.closed(key(2, 5), 20), Some(Unseen { pid: 2, tell: true }));
    }

    #[test]
    fn past_capacity_new_connections_are_not_followed() {
        let mut t = TlsUnseen::default();
        for fd in 0..CAPACITY as u32 {
            t.hello(key(1, fd), u64::from(fd));
        }
        t.hello(key(2, 1), 1);
        assert_eq!(t.closed(key(2, 1), 1), None);
    }
}
