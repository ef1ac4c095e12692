//! RED metrics and the service graph, from every finished exchange before
//! sampling (so sampling never skews them): the pipeline records through a
//! [`Recorder`]; the Prometheus endpoint and the OTLP metrics exporter read
//! the same [`Shared`] aggregation.
pub mod attributes;
pub mod config;
pub mod histogram;
pub mod observe;
pub mod otlp;
pub mod prometheus;
pub mod server;
pub mod service_graph;
pub mod store;

#[cfg(test)]
mod alloc_tests;
#[cfg(test)]
mod fixtures;

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex, MutexGuard},
};

use crate::{
    context::parent::SpanIdentity,
    process::ProcessInfo,
    protocols::{http1, http2},
    spans::{
        http::{Endpoints, ServerAddress},
        record::ProcessKey,
    },
    stats::Stats,
};
use observe::Observation;
use service_graph::{ServiceGraph, Side};
use store::Store;

/// The aggregation, shared by the recorder and the readers.
#[derive(Debug)]
pub struct State {
    pub store: Store,
    pub graph: ServiceGraph,
}

#[derive(Clone, Debug)]
pub struct Shared(Arc<Mutex<State>>);

impl Shared {
    pub fn new(cardinality_limit: usize, stats: Arc<Stats>) -> Self {
        Self(Arc::new(Mutex::new(State {
            store: Store::new(cardinality_limit, stats.clone()),
            graph: ServiceGraph::new(stats),
        })))
    }

    /// A poisoned lock only means a reader panicked mid-encode: the
    /// aggregation itself is whole, so go on with it.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn recorder(&self) -> Recorder {
        Recorder {
            shared: self.clone(),
            route: String::new(),
            peer: String::new(),
        }
    }
}

/// The pipeline's end: one call per finished exchange, whatever its
/// sampling decision. Its buffers make recording into an existing series
/// allocation-free.
#[derive(Debug)]
pub struct Recorder {
    shared: Shared,
    route: String,
    peer: String,
}

impl Recorder {
    pub fn http1(
        &mut self,
        ex: &http1::Exchange,
        ends: &Endpoints,
        process: &Arc<ProcessInfo>,
        identity: &SpanIdentity,
        now: u64,
    ) {
        let obs = observe::http1(ex, ends, &mut self.route);
        record(&self.shared, &mut self.peer, &obs, process, identity, now);
    }

    pub fn http2(
        &mut self,
        ex: &http2::Exchange,
        ends: &Endpoints,
        process: &Arc<ProcessInfo>,
        identity: &SpanIdentity,
        now: u64,
        route: Option<&str>,
    ) {
        let obs = observe::http2(ex, ends, &mut self.route, route);
        record(&self.shared, &mut self.peer, &obs, process, identity, now);
    }

    /// The process exited or exec'd another program.
    pub fn retire(&mut self, key: ProcessKey) {
        self.shared.lock().store.retire(key);
    }
}

fn record(
    shared: &Shared,
    peer: &mut String,
    obs: &Observation<'_>,
    process: &Arc<ProcessInfo>,
    identity: &SpanIdentity,
    now: u64,
) {
    let mut state = shared.lock();
    let State { store, graph } = &mut *state;
    let name = store.record(process, obs);
    let service = match name {
        Some(name) => Arc::clone(name),
        None => Arc::clone(name.insert(graph.intern(&process.service_name))),
    };
    let side = Side {
        service,
        duration: obs.duration,
        failed: obs.failed,
    };
    if obs.instrument.is_server() {
        graph.server(identity.parent_span_id, side, now);
        return;
    }
    peer.clear();
    let name = match obs.attrs.server {
        Some((ServerAddress::Name(name), _)) => name,
        Some((ServerAddress::Ip(ip), _)) => {
            let _ = write!(peer, "{ip}");
            peer.as_str()
        }
        None => "unknown",
    };
    let peer = graph.intern(name);
    graph.client(identity.span_id, side, peer, now);
}
