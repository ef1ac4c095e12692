//! The stage after the ring buffer: events → connections → HTTP/1 exchanges
//! and HTTP/2 streams → spans, handed to the exporter without ever blocking.
use std::{collections::HashSet, sync::Arc, time::Instant};

use tracer_common::TraceCtx;

use super::{
    protocol::Outputs,
    recent::RecentIds,
    stitch::{self, ClientStream, Stitch, StreamKey},
    table::{Conn, ConnKey, ConnTable, OpenStream, Slot},
    tls_unseen::{TlsUnseen, Unseen},
};
use crate::{
    context::{
        forwarded::{Forwarded, Served},
        parent::{self, ParentSource, SpanIdentity},
    },
    events::{DataHeader, Event, reader::EventHandler},
    golang::patterns::Patterns,
    metrics::Recorder,
    process::{ProcessTable, selection::Selection},
    protocols::{
        http1::{self, Chunk, Direction, ParseError},
        http2::{self, Exchange as Http2Exchange, Http2Error, Started},
    },
    sampling::{ParentInfo, Sampler, SamplingState, ratio_threshold},
    spans::{
        clock::Clock,
        http::{self, HttpSpanOptions},
        http2 as http2_spans,
        ids::IdGenerator,
        record::SpanRecord,
    },
    stats::Stats,
};

/// Where finished spans go; `false` means the span was dropped.
pub trait SpanSink {
    fn send(&mut self, span: SpanRecord) -> bool;
}

/// Spans kept in memory: a pipeline fed recorded events (the golden tests,
/// the `agent_cost` bench) collects what it makes here.
impl SpanSink for Vec<SpanRecord> {
    fn send(&mut self, span: SpanRecord) -> bool {
        self.push(span);
        true
    }
}

/// What the pipeline changes in the kernel programs while running.
pub trait KernelControl {
    /// Trace this process too (a later exec matched --exe).
    fn select(&mut self, pid: u32);
    /// Root traces the kernel starts are sampled below this threshold.
    fn set_sample_threshold(&mut self, threshold: u64);
    /// A process exec'd: instrument it if it is Go.
    fn process_started(&mut self, pid: u32);
    /// A process exited.
    fn process_exited(&mut self, pid: u32);
    /// A process was seen making an outgoing call for the first time (a
    /// Go middle tier then gets its server handler probe).
    fn makes_calls(&mut self, pid: u32);
}

/// No kernel programs to steer: for a pipeline fed recorded events.
pub struct NoKernel;

impl KernelControl for NoKernel {
    fn select(&mut self, _: u32) {}
    fn set_sample_threshold(&mut self, _: u64) {}
    fn process_started(&mut self, _: u32) {}
    fn process_exited(&mut self, _: u32) {}
    fn makes_calls(&mut self, _: u32) {}
}

/// The pipeline's settings.
pub struct PipelineConfig {
    pub selection: Selection,
    pub span_options: HttpSpanOptions,
    pub sampling: SamplingState,
    /// RED metrics and the service graph from every exchange; None when
    /// no metrics exporter runs.
    pub metrics: Option<Recorder>,
    /// Where Go middle tiers keep their requests' ServeMux patterns.
    pub patterns: Patterns,
}

impl PipelineConfig {
    /// Settings for replaying recorded events (`NoKernel`): every process
    /// selected, default span options, `sampler`, and `metrics` if given.
    pub fn replay(sampler: Sampler, metrics: Option<Recorder>) -> Self {
        Self {
            selection: Selection::default(),
            span_options: HttpSpanOptions::default(),
            sampling: SamplingState::new(sampler),
            metrics,
            patterns: Patterns::default(),
        }
    }
}

/// Keep the kernel's context for an HTTP/2 stream of `conn` until its
/// request is read, counting the waiting ones dropped to make room.
fn remember_http2_context(stats: &Stats, conn: &mut Conn, stream_id: u32, ctx: TraceCtx) {
    let dropped = conn.remember_http2_context(stream_id, ctx);
    Stats::add(&stats.drop_http2_contexts_unclaimed, dropped as u64);
}

/// How long a connection may stay silent before its state is dropped.
const IDLE_NS: u64 = 15 * 60 * 1_000_000_000;
/// How often idle connections are looked for.
const SWEEP_EVERY_NS: u64 = 10 * 1_000_000_000;

pub struct Pipeline<S, P> {
    pub conns: ConnTable,
    pub processes: ProcessTable,
    selection: Selection,
    kernel: P,
    /// The threshold last given to the kernel.
    threshold: u64,
    out: Outputs,
    spans: SpanMaker<S>,
    /// Newest kernel timestamp seen: the agent's notion of "now".
    now: u64,
    last_sweep: u64,
    /// Processes seen making outgoing calls (told to the kernel side once).
    callers: HashSet<u32>,
    /// Processes whose exit came in the burst being drained: handled at
    /// its end. Where the kernel reports a process's end at its main
    /// thread's exit (no `group_dead`), another thread's last write can
    /// follow the exit in the buffer; it still finds its connection.
    exited: Vec<u32>,
    /// TLS connections whose plaintext has not come (yet).
    tls_unseen: TlsUnseen,
}

/// Everything that turns a finished exchange into an exported span; apart
/// from the connection table so both can be borrowed at once.
struct SpanMaker<S> {
    sampling: SamplingState,
    sink: S,
    stats: Arc<Stats>,
    ids: IdGenerator,
    clock: Clock,
    opts: HttpSpanOptions,
    /// Span ids the kernel recently wrote into outgoing requests.
    injected: RecentIds,
    /// HTTP/2 client streams, for the server end on this host.
    stitch: Stitch,
    /// HTTP/2 server requests by the caller their header named, for the
    /// client requests of proxies that forward that header.
    forwarded: Forwarded,
    /// The pipeline's "now" (newest kernel timestamp seen).
    now: u64,
    metrics: Option<Recorder>,
    patterns: Patterns,
}

impl<S: SpanSink, P: KernelControl> Pipeline<S, P> {
    pub fn new(
        conns: ConnTable,
        processes: ProcessTable,
        mut kernel: P,
        sink: S,
        stats: Arc<Stats>,
        config: PipelineConfig,
    ) -> Self {
        let threshold = ratio_threshold(config.sampling.adaptive_ratio());
        kernel.set_sample_threshold(threshold);
        Self {
            conns,
            processes,
            selection: config.selection,
            kernel,
            threshold,
            out: Outputs::default(),
            spans: SpanMaker {
                sampling: config.sampling,
                sink,
                stats,
                ids: IdGenerator::new(),
                clock: Clock::new(),
                opts: config.span_options,
                injected: RecentIds::new(8192),
                stitch: Stitch::new(stitch::CAPACITY),
                forwarded: Forwarded::new(stitch::CAPACITY),
                now: 0,
                metrics: config.metrics,
                patterns: config.patterns,
            },
            now: 0,
            last_sweep: 0,
            callers: HashSet::new(),
            exited: Vec::new(),
            tls_unseen: TlsUnseen::default(),
        }
    }

    /// `pid` makes outgoing calls: say so once.
    fn caller(&mut self, pid: u32) {
        if self.callers.insert(pid) {
            self.kernel.makes_calls(pid);
        }
    }

    /// Replaces the clock (tests read kernel times back from spans).
    #[cfg(test)]
    pub fn set_clock(&mut self, clock: Clock) {
        self.spans.clock = clock;
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.spans.sink
    }

    fn on_data(&mut self, h: &DataHeader, payload: &[u8], tail: &[u8]) {
        Stats::inc(&self.spans.stats.data_events);
        self.now = self.now.max(h.ts_exit);
        self.spans.now = self.now;
        let key = ConnKey {
            pid: h.pid,
            fd: h.fd,
        };
        let processes = &mut self.processes;
        let (slot, replaced) =
            self.conns
                .entry(key, h.sock_id, &h.tuple, || processes.get(h.pid), h.ts_exit);
        let conn = match slot {
            Slot::Live(conn) => conn,
            Slot::Full => {
                Stats::inc(&self.spans.stats.drop_conn_table_full);
                if let Some(old) = replaced {
                    self.finish(old, h.ts_enter);
                }
                return;
            }
        };
        // A connection's first plaintext is all the unseen-TLS tracker
        // needs: no per-event work after it.
        if h.tls && !conn.ends.tls {
            conn.ends.tls = true;
            self.tls_unseen.plaintext(key, h.sock_id);
        }
        let dir = if h.ingress {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        // The kernel chooses contexts for HTTP/1 requests (HTTP/2 ones come
        // in an event of their own, `on_http2_heads`).
        let calls = !h.ingress && h.ctx.valid != 0;
        if h.ctx.valid != 0 && conn.protocol.is_http1() {
            let starts_at = if h.ingress { h.ts_exit } else { h.ts_enter };
            conn.remember_context(starts_at, h.ctx);
            if h.ctx.injected != 0 {
                self.spans.injected.insert(h.ctx.span_id);
            }
        }
        let chunk = Chunk {
            data: payload,
            total_len: h.total_len,
            tail,
            ts_start: h.ts_enter,
            ts_end: h.ts_exit,
        };
        conn.protocol.feed(dir, &chunk, &mut self.out);
        self.spans.emit(&mut self.out, conn);
        if let Some(old) = replaced {
            self.finish(old, h.ts_enter);
        }
        if calls {
            self.caller(h.pid);
        }
    }

    /// The connection is gone: let the parser finish what it can.
    fn finish(&mut self, mut conn: Conn, ts: u64) {
        conn.protocol.close(ts, &mut self.out);
        self.spans.emit(&mut self.out, &mut conn);
    }

    /// The contexts the kernel chose for the HTTP/2 requests a write
    /// starts (and added `traceparent` with), ahead of that write's data.
    fn on_http2_heads(
        &mut self,
        key: ConnKey,
        sock_id: u64,
        heads: &[(u32, tracer_common::TraceCtx)],
    ) {
        let Some(conn) = self.conns.get_mut(key, sock_id) else {
            // Its preface went by before; only a connection the table had
            // no room for is missing (counted there too).
            Stats::inc(&self.spans.stats.drop_http2_heads_orphaned);
            return;
        };
        for &(stream_id, ctx) in heads.iter().filter(|(_, ctx)| ctx.valid != 0) {
            remember_http2_context(&self.spans.stats, conn, stream_id, ctx);
            if ctx.injected != 0 {
                self.spans.injected.insert(ctx.span_id);
            }
        }
        if !heads.is_empty() {
            self.caller(key.pid);
        }
    }

    /// The context a Go server's handler probe chose for a stream: the
    /// stream's server span takes it (its request was read just before,
    /// so the stream is normally open already).
    fn on_go_server_stream(
        &mut self,
        key: ConnKey,
        sock_id: u64,
        stream_id: u32,
        ctx: TraceCtx,
        request: u64,
    ) {
        Stats::inc(&self.spans.stats.go_server_streams);
        let Some(conn) = self.conns.get_mut(key, sock_id) else {
            Stats::inc(&self.spans.stats.drop_http2_heads_orphaned);
            return;
        };
        match conn.http2_streams.get_mut(&stream_id) {
            Some(open) if !open.client => {
                open.go_request = request;
                self.spans.adopt_server_context(key.pid, open, &ctx);
            }
            _ => remember_http2_context(&self.spans.stats, conn, stream_id, ctx),
        }
    }

    fn on_exec(&mut self, pid: u32, comm: &[u8; tracer_common::TASK_COMM_LEN]) {
        // A pid reused at once: the old process's end comes first.
        self.flush_exits();
        // Another program: its first outgoing call is told again, and so
        // is TLS the agent cannot see.
        self.callers.remove(&pid);
        self.tls_unseen.exec(pid);
        let comm_len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        let comm = String::from_utf8_lossy(&comm[..comm_len]);
        if let (Some(old), Some(metrics)) = (self.processes.peek(pid), &mut self.spans.metrics) {
            // Another program from now on: its series start afresh.
            metrics.retire(old.key);
        }
        let info = self.processes.refresh_with_comm(pid, &comm);
        if !self.selection.exes.is_empty()
            && let Some(path) = &info.exe_path
            && self.selection.exe_matches(path)
        {
            self.kernel.select(pid);
        }
        self.kernel.process_started(pid);
    }

    /// Handles the exits the burst so far reported.
    fn flush_exits(&mut self) {
        for pid in std::mem::take(&mut self.exited) {
            self.on_exit(pid);
        }
    }

    fn on_exit(&mut self, pid: u32) {
        self.callers.remove(&pid);
        for unseen in self.tls_unseen.exited(pid) {
            self.unseen_tls(&unseen);
        }
        for conn in self.conns.remove_pid(pid) {
            self.finish(conn, self.now);
        }
        if let (Some(gone), Some(metrics)) = (self.processes.remove(pid), &mut self.spans.metrics) {
            metrics.retire(gone.key);
        }
        self.kernel.process_exited(pid);
    }

    /// A TLS connection ended with none of its plaintext seen: counted;
    /// the first of a process that never gave plaintext is told of, as
    /// its HTTPS yields no span at all.
    fn unseen_tls(&mut self, unseen: &Unseen) {
        Stats::inc(&self.spans.stats.tls_connections_unseen);
        if !unseen.tell {
            return;
        }
        // Read from /proc if no data event brought it in (its bytes were
        // all ciphertext); once per process.
        let info = self.processes.get(unseen.pid);
        let name = info.exe_path.as_deref().unwrap_or(&info.exe_name);
        log::warn!(
            "tls: pid {} ({name}): a TLS connection ended with none of its plaintext seen: \
             its TLS library is not one the agent probes (OpenSSL's API in a shared libssl or \
             exported by the executable, and Go's crypto/tls are; a library linked in and \
             stripped, such as the BoringSSL of grpcio's PyPI wheels, is not): its requests \
             over TLS are not traced",
            unseen.pid
        );
    }

    /// Finish every connection (at shutdown).
    pub fn finish_all(&mut self) {
        self.flush_exits();
        for conn in self.conns.drain() {
            self.finish(conn, self.now);
        }
    }
}

/// Which connection a parse error dropped data of, at debug level, for
/// whoever reads a drop counter and wants to know where it came from.
fn log_drop(protocol: &str, conn: &Conn, err: &impl std::fmt::Debug) {
    log::debug!(
        "{protocol}: pid {} connection {} {:?} -> {:?}: dropped, {err:?}",
        conn.process.key.pid,
        conn.sock_id,
        conn.ends.local,
        conn.ends.remote,
    );
}

impl<S: SpanSink> SpanMaker<S> {
    /// Turn what the parsers produced into spans and counters.
    fn emit(&mut self, out: &mut Outputs, conn: &mut Conn) {
        self.emit_http1(&mut out.http1, conn);
        self.emit_http2(&mut out.http2, conn);
    }

    fn emit_http1(&mut self, out: &mut http1::Output, conn: &mut Conn) {
        let stats = Arc::clone(&self.stats);
        for err in out.errors.drain(..) {
            log_drop("http1", conn, &err);
            let counter = match err {
                ParseError::HeadTruncated => &stats.drop_http_head_truncated,
                ParseError::PipelineOverflow => &stats.drop_http_pipeline_overflow,
                ParseError::Malformed
                | ParseError::TooManyHeaders
                | ParseError::HeadTooLarge
                | ParseError::UnexpectedResponse => &stats.drop_http_parse_error,
            };
            Stats::inc(counter);
        }
        for ex in out.exchanges.drain(..) {
            Stats::inc(&stats.http_exchanges);
            let kernel = conn.take_context(ex.request_start);
            let injected = &self.injected;
            let (mut identity, notes) =
                parent::choose(kernel.as_ref(), &ex.request.headers, &mut self.ids, |id| {
                    injected.contains(id)
                });
            if notes.invalid_header.is_some() {
                Stats::inc(&stats.context_invalid_header);
            }
            identity.sampled = sample(&mut self.sampling, &identity, kernel.is_some());
            if let Some(metrics) = &mut self.metrics {
                metrics.http1(&ex, &conn.ends, &conn.process, &identity, self.now);
            }
            if identity.sampled {
                let span = http::build(
                    &ex,
                    &conn.ends,
                    &conn.process,
                    self.clock,
                    identity,
                    self.opts,
                );
                self.send(span);
            } else {
                Stats::inc(&stats.spans_unsampled);
            }
        }
    }

    /// Keep a client stream's ids for the server end on this host to find
    /// (see `stitch`).
    fn remember_client(
        &mut self,
        key: Option<StreamKey>,
        identity: &SpanIdentity,
        started: &Started,
    ) {
        let Some(key) = key else { return };
        let remembered = ClientStream {
            trace_id: identity.trace_id,
            span_id: identity.span_id,
            sampled: identity.sampled,
            fingerprint: stitch::fingerprint(&started.request),
            request_start: started.request_start,
        };
        if self.stitch.insert(key, remembered, self.now) {
            Stats::inc(&self.stats.http2_stitch_evicted);
        }
    }

    /// Hand a built span to the exporter (counted either way).
    fn send(&mut self, span: SpanRecord) {
        Stats::inc(&self.stats.spans_created);
        if !self.sink.send(span) {
            Stats::inc(&self.stats.drop_export_queue_full);
        }
    }
}

impl<S: SpanSink> SpanMaker<S> {
    /// A span's identity is chosen when its request headers are read. A
    /// client stream whose HEADERS frame the kernel added `traceparent` to
    /// has the ids the kernel chose (and wrote). Else the parent is the
    /// request's own header; else, for a server stream, the client stream at
    /// the other end of the connection when that end is traced on this host
    /// (see `stitch`); else none.
    fn emit_http2(&mut self, out: &mut http2::Output, conn: &mut Conn) {
        let stats = &self.stats;
        for err in out.errors.drain(..) {
            log_drop("http2", conn, &err);
            let counter = match err {
                Http2Error::Desync => &stats.drop_http2_desync,
                Http2Error::HeaderBlock => &stats.drop_http2_header_block,
                Http2Error::Malformed => &stats.drop_http2_malformed,
                Http2Error::MidConnection => &stats.drop_http2_mid_connection,
                Http2Error::TooManyStreams => &stats.drop_http2_stream_overflow,
                Http2Error::StreamAbandoned => &stats.drop_http2_stream_abandoned,
            };
            Stats::inc(counter);
        }
        for started in out.started.drain(..) {
            self.http2_started(started, conn);
        }
        for ex in out.exchanges.drain(..) {
            self.http2_ended(ex, conn);
        }
        if !conn.protocol.is_http2() && !conn.http2_streams.is_empty() {
            // The parser gave up: the open streams will never end (they
            // were counted as abandoned).
            for (id, open) in std::mem::take(&mut conn.http2_streams) {
                if open.client
                    && let Some(key) = StreamKey::new(&conn.ends, true, id)
                {
                    self.stitch.end(&key, self.now, self.now);
                }
            }
        }
    }

    /// A stream's request headers were read: choose its span's identity.
    fn http2_started(&mut self, started: Started, conn: &mut Conn) {
        let client = started.request_direction == Direction::Egress;
        // Client streams: the context the kernel wrote. Server streams: the
        // one a Go server's handler probe chose, should it have come first.
        let kernel = conn.http2_contexts.remove(&started.stream_id);
        if client && kernel.is_none() && started.request.header("traceparent").is_none() {
            // Neither the kernel nor the app gave it a context: it starts
            // a new trace (the kernel says why: H2_HEADS_UNTRACED, ...).
            Stats::inc(&self.stats.http2_client_no_context);
        }
        let injected = &self.injected;
        let (mut identity, notes) = parent::choose(
            kernel.as_ref(),
            &started.request.headers,
            &mut self.ids,
            |id| injected.contains(id),
        );
        if notes.invalid_header.is_some() {
            Stats::inc(&self.stats.context_invalid_header);
        }
        let key = StreamKey::new(&conn.ends, client, started.stream_id);
        let pid = conn.process.key.pid;
        let mut decided = true;
        let mut recheck_forwarder = false;
        let from_header = matches!(
            identity.source,
            ParentSource::Header | ParentSource::Injected
        );
        let forwarding = match identity.parent_span_id {
            Some(caller) if client && kernel.is_none() && from_header => {
                self.forwarded
                    .forwarding(pid, caller, identity.trace_id, started.request_start)
            }
            _ => None,
        };
        if kernel.is_some() && !client {
            // The handler's calls already carry these ids.
            identity.sampled = sample(&mut self.sampling, &identity, true);
            self.served_by(pid, &identity, started.request_start);
        } else if kernel.is_some() {
            // The kernel's ids, already sent: its sampling decision stands
            // for its roots. Remembered for stitching too, should the
            // server end not see the header (injection failed).
            identity.sampled = sample(&mut self.sampling, &identity, true);
            self.remember_client(key, &identity, &started);
        } else if let Some(served) = forwarding {
            // A proxy passing on the header of the request it serves: the
            // call of that request. Its server end on this host takes this
            // span as its parent (by the connection), not the header.
            identity.parent_span_id = Some(served.span_id);
            identity.parent_is_remote = false;
            identity.source = ParentSource::Forwarded;
            identity.sampled = served.sampled;
            self.remember_client(key, &identity, &started);
        } else if identity.source != ParentSource::None {
            // The request's own context (the server will read the same).
            identity.sampled = sample(&mut self.sampling, &identity, false);
            if !client && identity.parent_span_id.is_some() {
                self.served_by(pid, &identity, started.request_start);
                if let Some(key) = key {
                    let fingerprint = stitch::fingerprint(&started.request);
                    match self
                        .stitch
                        .take(&key, fingerprint, started.request_start, self.now)
                    {
                        Some(c) => identity = by_forwarder(identity, &c),
                        None => recheck_forwarder = true,
                    }
                }
            }
        } else if client {
            identity.sampled = sample(&mut self.sampling, &identity, false);
            self.remember_client(key, &identity, &started);
        } else if let Some(key) = key {
            let fingerprint = stitch::fingerprint(&started.request);
            match self
                .stitch
                .take(&key, fingerprint, started.request_start, self.now)
            {
                Some(c) => identity = stitch::child_of(&c, identity.span_id),
                None => decided = false,
            }
        } else {
            identity.sampled = sample(&mut self.sampling, &identity, false);
        }
        conn.http2_streams.insert(
            started.stream_id,
            OpenStream {
                identity,
                client,
                decided,
                recheck_forwarder,
                go_request: 0,
            },
        );
    }

    /// The ServeMux pattern of a Go server stream's request, as a route.
    fn go_route(&self, pid: u32, request: u64, ex: &Http2Exchange) -> Option<String> {
        let (path, _) = http::split_target(ex.request.path());
        self.patterns.route(pid, request, ex.request.method(), path)
    }

    /// Remember a server request by the caller its header named, for a
    /// proxy that forwards that header.
    fn served_by(&mut self, pid: u32, identity: &SpanIdentity, at: u64) {
        if let Some(caller) = identity.parent_span_id {
            self.forwarded.served(
                pid,
                caller,
                Served {
                    trace_id: identity.trace_id,
                    span_id: identity.span_id,
                    sampled: identity.sampled,
                    at,
                },
            );
        }
    }

    /// A Go server's handler probe chose `ctx` for the open server stream
    /// `open` of process `pid`: the calls its handler makes carry those
    /// ids, so its span takes them. The probe read the same header the
    /// agent did; where they disagree (a context the probe does not read,
    /// a stream stitched to its client by connection) the probe's ids win,
    /// for its subtree is already built on them, and that is counted.
    fn adopt_server_context(&mut self, pid: u32, open: &mut OpenStream, ctx: &TraceCtx) {
        let parent = (ctx.parent_span_id != [0; 8]).then_some(ctx.parent_span_id);
        let identity = &mut open.identity;
        if identity.trace_id == ctx.trace_id && identity.parent_span_id == parent {
            identity.span_id = ctx.span_id;
        } else {
            if identity.source != ParentSource::None {
                Stats::inc(&self.stats.go_server_context_conflicts);
            }
            let (kernel, _) = parent::choose(Some(ctx), &[], &mut self.ids, |id| {
                self.injected.contains(id)
            });
            *identity = SpanIdentity {
                sampled: ctx.flags & 1 == 1,
                ..kernel
            };
        }
        open.decided = true;
        open.recheck_forwarder = false;
        let identity = identity.clone();
        self.served_by(pid, &identity, self.now);
    }

    /// A stream ended: its span, with the identity chosen at its start.
    fn http2_ended(&mut self, ex: Http2Exchange, conn: &mut Conn) {
        let stats = Arc::clone(&self.stats);
        Stats::inc(&stats.http2_streams);
        let client = ex.request_direction == Direction::Egress;
        let key = StreamKey::new(&conn.ends, client, ex.stream_id);
        let end = ex.response_end.max(ex.request_end);
        let open = conn.http2_streams.remove(&ex.stream_id);
        let route = match &open {
            Some(o) if o.go_request != 0 => {
                let route = self.go_route(conn.process.key.pid, o.go_request, &ex);
                let counter = match route {
                    Some(_) => &stats.go_routes_read,
                    None => &stats.go_routes_unread,
                };
                Stats::inc(counter);
                route
            }
            _ => None,
        };
        let mut identity = match open {
            Some(open) if open.decided && open.recheck_forwarder => {
                // The client end's events may have come after the request
                // was read: a proxy on this host that forwarded the header
                // is found now or never.
                let fingerprint = stitch::fingerprint(&ex.request);
                let found = key.and_then(|key| {
                    self.stitch
                        .take(&key, fingerprint, ex.request_start, self.now)
                });
                match found {
                    Some(c) => by_forwarder(open.identity, &c),
                    None => open.identity,
                }
            }
            Some(open) if open.decided => open.identity,
            Some(open) => {
                // Looked for the client end at the start, in vain: it may
                // have lost the race to the ring buffer.
                let fingerprint = stitch::fingerprint(&ex.request);
                let found = key.and_then(|key| {
                    self.stitch
                        .take(&key, fingerprint, ex.request_start, self.now)
                });
                match found {
                    Some(c) => {
                        Stats::inc(&stats.http2_stitched_late);
                        stitch::child_of(&c, open.identity.span_id)
                    }
                    None => {
                        let mut identity = open.identity;
                        identity.sampled = sample(&mut self.sampling, &identity, false);
                        identity
                    }
                }
            }
            None => {
                // Every stream is reported started before it ends; should
                // one not be, it is a span of its own header or a root.
                let injected = &self.injected;
                let (mut identity, _) =
                    parent::choose(None, &ex.request.headers, &mut self.ids, |id| {
                        injected.contains(id)
                    });
                identity.sampled = sample(&mut self.sampling, &identity, false);
                identity
            }
        };
        if !client
            && identity.source == ParentSource::Header
            && identity
                .parent_span_id
                .is_some_and(|p| self.injected.contains(&p))
        {
            // The header this agent's kernel wrote, read before the
            // client's own event came through the ring buffer.
            identity.source = ParentSource::Injected;
        }
        if client && let Some(key) = key {
            self.stitch.end(&key, end, self.now);
        } else if identity.source == ParentSource::Connection {
            Stats::inc(&stats.http2_stitched);
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.http2(
                &ex,
                &conn.ends,
                &conn.process,
                &identity,
                self.now,
                route.as_deref(),
            );
        }
        if !identity.sampled {
            Stats::inc(&stats.spans_unsampled);
            return;
        }
        let span = http2_spans::build(
            &ex,
            &conn.ends,
            &conn.process,
            self.clock,
            identity,
            self.opts,
            route.as_deref(),
        );
        self.send(span);
    }
}

/// A server span whose header named its caller, and `client`, the client
/// stream at the other end of its connection on this host: when that
/// client did not write the header itself but forwarded it (a proxy), the
/// client's span is the parent, as HTTP/1 proxies' in-place rewrite makes
/// it. When the client's span is the header's (injected or the app's own),
/// nothing changes.
fn by_forwarder(identity: SpanIdentity, client: &ClientStream) -> SpanIdentity {
    if identity.parent_span_id == Some(client.span_id) || identity.trace_id != client.trace_id {
        return identity;
    }
    let mut stitched = stitch::child_of(client, identity.span_id);
    stitched.trace_state = identity.trace_state;
    stitched
}

/// The sampling decision for a span whose identity is chosen. Roots the
/// kernel started were decided there (with the threshold this agent gave
/// it, so the propagated flag agrees); they feed the load estimate.
fn sample(state: &mut SamplingState, identity: &SpanIdentity, kernel_root: bool) -> bool {
    let now = Instant::now();
    match identity.parent_span_id {
        None if kernel_root => {
            state.observe_root(now);
            identity.sampled
        }
        None => state.should_sample(None, &identity.trace_id, now),
        Some(_) => state.should_sample(
            Some(ParentInfo {
                sampled: identity.sampled,
                remote: identity.parent_is_remote,
            }),
            &identity.trace_id,
            now,
        ),
    }
}

impl<S: SpanSink, P: KernelControl> EventHandler for Pipeline<S, P> {
    fn handle(&mut self, event: Event<'_>) {
        match event {
            Event::Data {
                header,
                payload,
                tail,
            } => self.on_data(&header, payload, tail),
            Event::Close {
                pid,
                fd,
                sock_id,
                ts,
            } => {
                self.now = self.now.max(ts);
                self.spans.now = self.now;
                let key = ConnKey { pid, fd };
                if let Some(unseen) = self.tls_unseen.closed(key, sock_id) {
                    self.unseen_tls(&unseen);
                }
                // A close for another socket under this fd leaves ours be.
                if let Some(conn) = self.conns.remove_socket(key, sock_id) {
                    self.finish(conn, ts);
                }
            }
            Event::Exec { pid, comm } => self.on_exec(pid, &comm),
            Event::Exit { pid } => self.exited.push(pid),
            Event::TlsHello { pid, fd, sock_id } => {
                self.tls_unseen.hello(ConnKey { pid, fd }, sock_id);
            }
            Event::Http2Heads {
                pid,
                fd,
                sock_id,
                heads,
            } => self.on_http2_heads(ConnKey { pid, fd }, sock_id, &heads),
            Event::GoServerStream {
                pid,
                fd,
                sock_id,
                stream_id,
                ctx,
                request,
            } => self.on_go_server_stream(ConnKey { pid, fd }, sock_id, stream_id, ctx, request),
        }
    }

    fn after_burst(&mut self) {
        self.flush_exits();
        self.spans.sampling.tick(Instant::now());
        let threshold = ratio_threshold(self.spans.sampling.adaptive_ratio());
        if threshold != self.threshold {
            self.threshold = threshold;
            self.kernel.set_sample_threshold(threshold);
        }
        if self.now.saturating_sub(self.last_sweep) >= SWEEP_EVERY_NS {
            self.last_sweep = self.now;
            for conn in self.conns.remove_idle(self.now.saturating_sub(IDLE_NS)) {
                self.finish(conn, self.now);
            }
        }
    }
}
