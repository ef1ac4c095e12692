//! The service graph: one edge per (client service, server service), with
//! request and failure counts and both sides' durations, named as Tempo's
//! metrics generator names them so Grafana's service map reads them as is.
//!
//! An edge is a client exchange and the server exchange it caused, paired
//! by span ids: the server's parent is the client's span (injected header,
//! or stitched by connection on this host). Whichever side finishes first
//! waits for the other up to [`PAIR_WAIT`]. A client that finds no server
//! becomes an edge to its `server.address` (a virtual node, as Tempo's
//! `virtual_node` connections); a root server exchange is an edge from
//! `user`. Names are interned: after the first request of an edge, pairing
//! allocates nothing.
use std::{collections::VecDeque, hash::BuildHasher, sync::Arc};

// hashbrown's maps hash with foldhash, cheaper than std's SipHash.
use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};

use super::histogram::{DURATION_BOUNDS, Histogram};
use crate::stats::Stats;

/// How long one side of an edge waits for the other, in kernel ns.
pub const PAIR_WAIT_NS: u64 = 5_000_000_000;
/// Sides waiting at once; beyond this new ones are dropped (counted).
const MAX_PENDING: usize = 65536;
/// Distinct names kept; beyond this, new ones are reported as `other`.
const MAX_NAMES: usize = 10_000;
/// Edges kept; beyond this, new ones are dropped (counted).
const MAX_EDGES: usize = 10_000;

/// The client of root server exchanges (Tempo's name for it).
pub const USER: &str = "user";

/// One side of a possible edge.
#[derive(Clone, Debug)]
pub struct Side {
    /// The service of this side.
    pub service: Arc<str>,
    /// Seconds.
    pub duration: f64,
    pub failed: bool,
}

#[derive(Clone, Debug)]
struct Waiting {
    side: Side,
    /// For a client: where it called (a virtual node when unpaired).
    peer: Option<Arc<str>>,
    since: u64,
}

/// `connection_type`: a pair both traced here, or a side alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Connection {
    Paired,
    VirtualNode,
}

impl Connection {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Paired => "",
            Self::VirtualNode => "virtual_node",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Edge {
    pub client: Arc<str>,
    pub server: Arc<str>,
    pub connection: Connection,
    /// When the edge was first seen (cumulative series' start).
    pub start: std::time::SystemTime,
    pub total: u64,
    pub failed: u64,
    pub server_seconds: Histogram,
    pub client_seconds: Histogram,
    /// What the OTLP exporter sent last, for delta temporality.
    pub exported: Option<Box<Exported>>,
}

/// An edge's values as last exported.
#[derive(Clone, Debug)]
pub struct Exported {
    pub total: u64,
    pub failed: u64,
    pub server_seconds: Histogram,
    pub client_seconds: Histogram,
}

#[derive(Debug)]
pub struct ServiceGraph {
    hasher: DefaultHashBuilder,
    names: HashSet<Arc<str>>,
    /// Client sides by their span id.
    clients: HashMap<[u8; 8], Waiting>,
    /// Server sides by their parent span id.
    servers: HashMap<[u8; 8], Waiting>,
    /// (span id, is client, since) in arrival order, for expiry.
    order: VecDeque<([u8; 8], bool, u64)>,
    edges: HashTable<Edge>,
    /// [`USER`], interned once.
    user: Arc<str>,
    stats: Arc<Stats>,
}

impl ServiceGraph {
    pub fn new(stats: Arc<Stats>) -> Self {
        let user: Arc<str> = USER.into();
        Self {
            hasher: DefaultHashBuilder::default(),
            names: HashSet::from_iter([Arc::clone(&user)]),
            user,
            clients: HashMap::new(),
            servers: HashMap::new(),
            order: VecDeque::new(),
            edges: HashTable::new(),
            stats,
        }
    }

    /// The shared copy of `name` (`other` once too many are known).
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return Arc::clone(n);
        }
        if self.names.len() >= MAX_NAMES {
            Stats::inc(&self.stats.metrics_graph_names_folded);
            return self.intern_unbounded("other");
        }
        self.intern_unbounded(name)
    }

    fn intern_unbounded(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return Arc::clone(n);
        }
        let n: Arc<str> = name.into();
        self.names.insert(Arc::clone(&n));
        n
    }

    /// A client exchange with span id `span_id` that called `peer`.
    pub fn client(&mut self, span_id: [u8; 8], side: Side, peer: Arc<str>, now: u64) {
        self.expire(now);
        if let Some(server) = self.servers.remove(&span_id) {
            self.add_edge(&side, &server.side, Connection::Paired);
            return;
        }
        self.wait(
            span_id,
            true,
            Waiting {
                side,
                peer: Some(peer),
                since: now,
            },
        );
    }

    /// A server exchange whose parent span is `parent` (None: a root).
    pub fn server(&mut self, parent: Option<[u8; 8]>, side: Side, now: u64) {
        self.expire(now);
        let Some(parent) = parent else {
            let client = Side {
                service: Arc::clone(&self.user),
                duration: 0.0,
                failed: false,
            };
            self.add_edge(&client, &side, Connection::VirtualNode);
            return;
        };
        if let Some(client) = self.clients.remove(&parent) {
            self.add_edge(&client.side, &side, Connection::Paired);
            return;
        }
        self.wait(
            parent,
            false,
            Waiting {
                side,
                peer: None,
                since: now,
            },
        );
    }

    fn wait(&mut self, id: [u8; 8], client: bool, waiting: Waiting) {
        let map = if client {
            &mut self.clients
        } else {
            &mut self.servers
        };
        if map.len() >= MAX_PENDING {
            Stats::inc(&self.stats.drop_metrics_graph_pending_full);
            return;
        }
        let since = waiting.since;
        map.insert(id, waiting);
        self.order.push_back((id, client, since));
    }

    /// Sides that waited [`PAIR_WAIT_NS`] in vain: a client becomes an edge
    /// to its peer, a server is counted unpaired.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(id, client, since)) = self.order.front() {
            if now.saturating_sub(since) < PAIR_WAIT_NS {
                break;
            }
            self.order.pop_front();
            let map = if client {
                &mut self.clients
            } else {
                &mut self.servers
            };
            // Gone already when it was paired, or replaced by a later side
            // with the same id.
            let Some(waiting) = map.remove(&id).filter(|w| w.since == since) else {
                continue;
            };
            match waiting.peer {
                Some(peer) if client => {
                    let server = Side {
                        service: peer,
                        duration: 0.0,
                        failed: false,
                    };
                    self.add_edge(&waiting.side, &server, Connection::VirtualNode);
                }
                _ => Stats::inc(&self.stats.metrics_graph_unpaired),
            }
        }
    }

    fn add_edge(&mut self, client: &Side, server: &Side, connection: Connection) {
        let hash = self
            .hasher
            .hash_one((&*client.service, &*server.service, connection));
        let full = self.edges.len() >= MAX_EDGES;
        let found = self.edges.find_mut(hash, |e| {
            e.connection == connection
                && *e.client == *client.service
                && *e.server == *server.service
        });
        let edge = match found {
            Some(edge) => edge,
            None if full => {
                Stats::inc(&self.stats.drop_metrics_graph_edges_full);
                return;
            }
            None => {
                let hasher = &self.hasher;
                let edge = Edge {
                    client: Arc::clone(&client.service),
                    server: Arc::clone(&server.service),
                    connection,
                    start: std::time::SystemTime::now(),
                    total: 0,
                    failed: 0,
                    server_seconds: Histogram::new(DURATION_BOUNDS),
                    client_seconds: Histogram::new(DURATION_BOUNDS),
                    exported: None,
                };
                self.edges
                    .insert_unique(hash, edge, |e| {
                        hasher.hash_one((&*e.client, &*e.server, e.connection))
                    })
                    .into_mut()
            }
        };
        edge.total += 1;
        if client.failed || server.failed {
            edge.failed += 1;
        }
        // A virtual side has no duration of its own.
        if connection == Connection::Paired || server.duration > 0.0 {
            edge.server_seconds.record(server.duration);
        }
        if connection == Connection::Paired || client.duration > 0.0 {
            edge.client_seconds.record(client.duration);
        }
    }

    pub fn edges(&self) -> impl Iterator<Item = &Edge> {
        self.edges.iter()
    }

    pub fn edges_mut(&mut self) -> impl Iterator<Item = &mut Edge> {
        self.edges.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> (ServiceGraph, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        (ServiceGraph::new(stats.clone()), stats)
    }

    fn side(g: &mut ServiceGraph, name: &str, duration: f64, failed: bool) -> Side {
        Side {
            service: g.intern(name),
            duration,
            failed,
        }
    }

    fn edge<'a>(g: &'a ServiceGraph, client: &str, server: &str) -> Option<&'a Edge> {
        g.edges()
            .find(|e| &*e.client == client && &*e.server == server)
    }

    #[test]
    fn pairs_either_order() {
        let (mut g, _) = graph();
        let front = side(&mut g, "front", 0.2, false);
        let back = side(&mut g, "back", 0.1, true);
        let peer = g.intern("10.0.0.1");
        g.client([1; 8], front.clone(), peer.clone(), 0);
        g.server(Some([1; 8]), back.clone(), 1);
        g.server(Some([2; 8]), back, 2);
        g.client([2; 8], front, peer, 3);
        let e = edge(&g, "front", "back").unwrap();
        assert_eq!((e.total, e.failed), (2, 2));
        assert_eq!(e.connection, Connection::Paired);
        assert_eq!(e.client_seconds.count(), 2);
        assert!((e.server_seconds.sum() - 0.2).abs() < 1e-9);
        assert_eq!(g.edges().count(), 1);
    }

    #[test]
    fn unpaired_sides_become_virtual_nodes_or_are_counted() {
        let (mut g, stats) = graph();
        let front = side(&mut g, "front", 0.2, false);
        let back = side(&mut g, "back", 0.1, false);
        let peer = g.intern("api.example.com");
        g.client([1; 8], front, peer, 0);
        g.server(Some([9; 8]), back.clone(), 0);
        g.server(None, back, 0);
        assert!(edge(&g, "user", "back").is_some());
        assert!(edge(&g, "front", "api.example.com").is_none());
        g.expire(PAIR_WAIT_NS);
        let e = edge(&g, "front", "api.example.com").unwrap();
        assert_eq!(e.connection, Connection::VirtualNode);
        assert_eq!(
            (e.total, e.client_seconds.count(), e.server_seconds.count()),
            (1, 1, 0)
        );
        assert_eq!(
            stats
                .metrics_graph_unpaired
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
