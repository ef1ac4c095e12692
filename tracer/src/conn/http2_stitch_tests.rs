//! Same-host stitching of HTTP/2 and gRPC: both ends of one connection
//! traced by one agent, their events interleaved as the ring buffer hands
//! them over. Each server stream must be the child of its client stream,
//! whichever end's event comes first, and never of another stream.
use std::{collections::HashSet, path::PathBuf, sync::Arc, time::UNIX_EPOCH};

use tracer_common::{ConnTuple, TraceCtx};

use super::{
    http2_golden_tests::fixture_dir,
    pipeline::{NoKernel, Pipeline, PipelineConfig},
    table::ConnTable,
};
use crate::{
    events::{DataHeader, Event, reader::EventHandler},
    process::ProcessTable,
    protocols::{
        fixture::{self, Event as Step},
        http1::{Direction, Limits},
        http2::testing::{Hpack, PREFACE, grpc_message, grpc_request, settings},
    },
    sampling::Sampler,
    spans::{clock::Clock, record::SpanRecord},
    stats::Stats,
};

const CAPTURE: usize = 1024;
const TAIL: usize = 8;
const SERVER_PORT: u16 = 50_051;

/// One end of a connection: a traced process's socket.
#[derive(Clone, Copy)]
struct End {
    pid: u32,
    fd: u32,
    sock_id: u64,
    /// The client's port (the server's is `SERVER_PORT`).
    client_port: u16,
    client: bool,
}

impl End {
    /// The client and server ends of the connection from `client_port`.
    fn pair(client_port: u16) -> (Self, Self) {
        let n = u32::from(client_port);
        // Each client is a process of its own, named by its port.
        let client = Self {
            pid: n,
            fd: n,
            sock_id: u64::from(n),
            client_port,
            client: true,
        };
        let server = Self {
            pid: 8,
            fd: n,
            sock_id: 100_000 + u64::from(n),
            client_port,
            client: false,
        };
        (client, server)
    }

    fn tuple(self) -> ConnTuple {
        let (local, remote) = if self.client {
            (self.client_port, SERVER_PORT)
        } else {
            (SERVER_PORT, self.client_port)
        };
        let mut t = ConnTuple {
            family: 2,
            local_port: local,
            remote_port: remote,
            ..ConnTuple::default()
        };
        t.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        t.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        t
    }
}

struct Host {
    pipeline: Pipeline<Vec<SpanRecord>, NoKernel>,
    stats: Arc<Stats>,
}

impl Host {
    fn new(sampler: Sampler) -> Self {
        let stats = Arc::new(Stats::default());
        let mut pipeline = Pipeline::new(
            ConnTable::new(64, Limits::default()),
            ProcessTable::new(PathBuf::from("/nonexistent"), "host".to_owned()),
            NoKernel,
            Vec::new(),
            stats.clone(),
            PipelineConfig::replay(sampler, None),
        );
        pipeline.set_clock(Clock::identity());
        Self { pipeline, stats }
    }

    fn always_on() -> Self {
        Self::new(Sampler::ParentBased {
            root: Box::new(Sampler::AlwaysOn),
        })
    }

    /// `end` moved `data` (read when `ingress`) between `ts_enter` and
    /// `ts_exit`, of which the kernel captured `capture` bytes.
    fn data(
        &mut self,
        end: End,
        ingress: bool,
        (ts_enter, ts_exit): (u64, u64),
        data: &[u8],
        capture: Option<usize>,
    ) {
        let cap = capture.unwrap_or(data.len()).min(data.len());
        let tail = if cap < data.len() {
            &data[data.len() - TAIL.min(data.len() - cap)..]
        } else {
            &[]
        };
        self.pipeline.handle(Event::Data {
            header: DataHeader {
                ingress,
                pid: end.pid,
                tid: end.pid,
                fd: end.fd,
                sock_id: end.sock_id,
                ts_enter,
                ts_exit,
                total_len: data.len() as u64,
                tuple: end.tuple(),
                ctx: TraceCtx::default(),
                tls: false,
            },
            payload: &data[..cap],
            tail,
        });
    }

    fn close(&mut self, end: End, ts: u64) {
        self.pipeline.handle(Event::Close {
            pid: end.pid,
            fd: end.fd,
            sock_id: end.sock_id,
            ts,
        });
    }

    fn spans(&mut self) -> Vec<SpanRecord> {
        self.pipeline.finish_all();
        std::mem::take(self.pipeline.sink_mut())
    }

    fn counter(&self, name: &str) -> u64 {
        self.stats
            .snapshot()
            .into_iter()
            .find(|&(n, _)| n == name)
            .map_or(0, |(_, v)| v)
    }
}

/// Which end's event the ring buffer hands over first for a chunk: the
/// writer's (its write exited first, the usual case) or the reader's (a
/// reader already waiting on another CPU returned first).
#[derive(Clone, Copy, Debug)]
enum Order {
    WriterFirst,
    ReaderFirst,
    /// Either, by a fixed pseudo-random sequence from this seed.
    Mixed(u64),
}

/// Times of the n-th chunk (from 1): the writer's syscall runs from
/// 1000 n to 1000 n + 10, the reader's returns at 1000 n + 20.
const fn writer_times(n: u64) -> (u64, u64) {
    (1000 * n, 1000 * n + 10)
}

const fn reader_times(n: u64) -> (u64, u64) {
    (1000 * n + 5, 1000 * n + 20)
}

/// Plays a conversation recorded from the client (`Egress`: it wrote) as
/// both ends' events, in `order`.
fn play(
    host: &mut Host,
    (client, server): (End, End),
    steps: &[Step],
    order: Order,
    capture: Option<usize>,
    first_chunk: u64,
) -> u64 {
    let mut n = first_chunk;
    let mut rng = match order {
        Order::Mixed(seed) => seed | 1,
        _ => 1,
    };
    for step in steps {
        match step {
            Step::Chunk { dir, data, .. } => {
                n += 1;
                let (writer, reader) = if *dir == Direction::Egress {
                    (client, server)
                } else {
                    (server, client)
                };
                let writer_first = match order {
                    Order::WriterFirst => true,
                    Order::ReaderFirst => false,
                    Order::Mixed(_) => {
                        // xorshift64
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng & 1 == 0
                    }
                };
                if writer_first {
                    host.data(writer, false, writer_times(n), data, capture);
                    host.data(reader, true, reader_times(n), data, capture);
                } else {
                    host.data(reader, true, reader_times(n), data, capture);
                    host.data(writer, false, writer_times(n), data, capture);
                }
            }
            Step::Close => {
                n += 1;
                host.close(client, 1000 * n);
                host.close(server, 1000 * n + 20);
            }
        }
    }
    n
}

/// [`play`] with the writer first, handing `event` to the pipeline just
/// before step `at`.
fn play_with_event(host: &mut Host, ends: (End, End), steps: &[Step], at: usize, event: Event) {
    let n = play(host, ends, &steps[..at], Order::WriterFirst, None, 0);
    host.pipeline.handle(event);
    play(host, ends, &steps[at..], Order::WriterFirst, None, n);
}

fn ns(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn source(s: &SpanRecord) -> String {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "tracer.parent.source")
        .map(|kv| kv.value.as_str().into_owned())
        .unwrap_or_default()
}

fn attr(s: &SpanRecord, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// Checks every server span against the client span of the same stream
/// (same name, read 20 ns after it was written, ended within 10 ns of it):
/// a child of it (`connection`) when the client's span was a root, else
/// the same header parent. Returns how many were linked by connection.
fn check_links(spans: &[SpanRecord], label: &str) -> usize {
    use opentelemetry::trace::SpanKind;
    let clients: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect();
    let servers: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .collect();
    assert_eq!(clients.len(), servers.len(), "{label}: one span per end");
    let mut parents = HashSet::new();
    let mut linked = 0;
    for s in &servers {
        let peers: Vec<&&SpanRecord> = clients
            .iter()
            .filter(|c| {
                c.name == s.name
                    && ns(c.start) + 20 == ns(s.start)
                    && ns(c.end).abs_diff(ns(s.end)) <= 10
            })
            .collect();
        assert!(!peers.is_empty(), "{label}: no client span for {s:?}");
        assert!(
            clients.iter().all(|c| s.parent_span_id != Some(c.span_id))
                || source(s) == "connection",
            "{label}: a client span's child must say so"
        );
        match source(s).as_str() {
            "connection" => {
                assert_eq!(peers.len(), 1, "{label}: {} ambiguous", s.name);
                let c = peers[0];
                assert_eq!(source(c), "none", "{label}: {}", s.name);
                assert_eq!(s.trace_id, c.trace_id, "{label}: {}", s.name);
                assert_eq!(s.parent_span_id, Some(c.span_id), "{label}: {}", s.name);
                assert!(s.parent_is_remote && s.sampled == c.sampled);
                assert_ne!(s.span_id, c.span_id);
                assert!(parents.insert(c.span_id), "{label}: two children");
                linked += 1;
            }
            "header" => assert!(
                peers.iter().any(|c| source(c) == "header"
                    && c.trace_id == s.trace_id
                    && c.parent_span_id == s.parent_span_id),
                "{label}: {} keeps its header's parent",
                s.name
            ),
            other => panic!("{label}: {} has parent source {other}", s.name),
        }
        if attr(s, "rpc.system").is_some() {
            let code = attr(s, "rpc.grpc.status_code");
            assert!(code.is_some(), "{label}: {} has a status code", s.name);
            assert_eq!(code, attr(peers[0], "rpc.grpc.status_code"), "{label}");
        }
    }
    let roots = clients.iter().filter(|c| source(c) == "none").count();
    assert_eq!(linked, roots, "{label}: every client root has its child");
    linked
}

fn fixture(name: &str) -> Vec<Step> {
    let path = fixture_dir().join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    fixture::parse(&text).expect("fixture parses")
}

#[test]
fn recorded_connections_link_every_stream_whichever_end_comes_first() {
    // (fixture, streams linked by connection, by header); at the default
    // capture, h2c loses the connection at its 100 KiB response.
    let cases = [
        ("grpc_health_and_streams", None, 5, 3),
        ("grpc_health_and_streams", Some(CAPTURE), 5, 3),
        ("h2c_net_http", None, 5, 1),
        ("h2c_net_http", Some(CAPTURE), 3, 1),
    ];
    for (name, capture, want_linked, want_header) in cases {
        let steps = fixture(name);
        for order in [
            Order::WriterFirst,
            Order::ReaderFirst,
            Order::Mixed(0x9e37_79b9),
            Order::Mixed(12_345),
        ] {
            let label = format!("{name} capture={capture:?} {order:?}");
            let mut host = Host::always_on();
            play(&mut host, End::pair(40_000), &steps, order, capture, 0);
            let spans = host.spans();
            let linked = check_links(&spans, &label);
            assert_eq!(linked, want_linked, "{label}");
            let header = spans.iter().filter(|s| source(s) == "header").count();
            assert_eq!(header, 2 * want_header, "{label}");
            assert_eq!(host.counter("http2_stitched"), linked as u64, "{label}");
            let late = host.counter("http2_stitched_late");
            match order {
                Order::WriterFirst => assert_eq!(late, 0, "{label}"),
                Order::ReaderFirst => assert_eq!(late, linked as u64, "{label}"),
                Order::Mixed(_) => {}
            }
            assert_eq!(host.counter("http2_stitch_evicted"), 0);
            assert_eq!(host.counter("context_invalid_header"), 0);
        }
    }
}

/// A grpc-go style client: preface and SETTINGS, then requests.
fn grpc_conversation(paths: &[(u32, &str)], response_order: &[u32]) -> Vec<Step> {
    let mut ch = Hpack::default();
    let mut sh = Hpack::default();
    let mut first = PREFACE.to_vec();
    first.extend(settings(&[]));
    let mut steps = vec![
        Step::Chunk {
            dir: Direction::Egress,
            data: first,
            uncaptured: 0,
            tail: Vec::new(),
        },
        Step::Chunk {
            dir: Direction::Ingress,
            data: settings(&[]),
            uncaptured: 0,
            tail: Vec::new(),
        },
    ];
    // Every request in one write, as concurrent calls on one connection.
    let mut requests = Vec::new();
    for (id, path) in paths {
        requests.extend(ch.headers(*id, &grpc_request(path, &[]), false));
        requests.extend(grpc_message(*id, 3, true));
    }
    steps.push(Step::Chunk {
        dir: Direction::Egress,
        data: requests,
        uncaptured: 0,
        tail: Vec::new(),
    });
    for id in response_order {
        let mut resp = sh.headers(
            *id,
            &[(":status", "200"), ("content-type", "application/grpc")],
            false,
        );
        resp.extend(grpc_message(*id, 2, false));
        resp.extend(sh.headers(*id, &[("grpc-status", "0")], true));
        steps.push(Step::Chunk {
            dir: Direction::Ingress,
            data: resp,
            uncaptured: 0,
            tail: Vec::new(),
        });
    }
    steps
}

/// Plays two step lists as two connections, chunk by chunk in turn.
fn interleave<'a>(a: &'a [Step], b: &'a [Step]) -> Vec<(usize, &'a Step)> {
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        if let Some(s) = a.get(i) {
            out.push((0, s));
        }
        if let Some(s) = b.get(i) {
            out.push((1, s));
        }
    }
    out
}

#[test]
fn concurrent_streams_and_connections_never_cross_link() {
    // The same call on every stream: only the connection and the stream id
    // tell them apart. Answered in another order than asked.
    let same = "/pkg.Svc/Same";
    let a = grpc_conversation(&[(1, same), (3, same), (5, same)], &[5, 1, 3]);
    let b = grpc_conversation(&[(1, same), (3, same)], &[3, 1]);
    for order in [Order::WriterFirst, Order::ReaderFirst, Order::Mixed(7)] {
        let label = format!("{order:?}");
        let mut host = Host::always_on();
        let conns = [End::pair(40_000), End::pair(40_001)];
        for (n, (which, step)) in interleave(&a, &b).into_iter().enumerate() {
            play(
                &mut host,
                conns[which],
                std::slice::from_ref(step),
                order,
                None,
                n as u64,
            );
        }
        let spans = host.spans();
        assert_eq!(spans.len(), 10, "{label}");
        assert_eq!(check_links(&spans, &label), 5, "{label}");
        // The parent of each server span is a client span of the same
        // connection: its process (pid = port) is the server's peer.
        for s in spans.iter().filter(|s| source(s) == "connection") {
            let c = spans
                .iter()
                .find(|c| Some(c.span_id) == s.parent_span_id)
                .expect("parent exported");
            let peer_port = s
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == "network.peer.port");
            assert_eq!(
                peer_port.map(|kv| kv.value.clone()),
                Some(opentelemetry::Value::I64(i64::from(c.process.pid))),
                "{label}"
            );
        }
    }
}

/// One gRPC call on a new connection whose request carries `traceparent`
/// `00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01`: preface and
/// SETTINGS, the request, then the response with its trailers.
fn traced_call(path: &str) -> [Step; 4] {
    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut ch = Hpack::default();
    let mut sh = Hpack::default();
    let mut first = PREFACE.to_vec();
    first.extend(settings(&[]));
    let mut request = ch.headers(1, &grpc_request(path, &[("traceparent", TP)]), false);
    request.extend(grpc_message(1, 3, true));
    let mut response = sh.headers(
        1,
        &[(":status", "200"), ("content-type", "application/grpc")],
        false,
    );
    response.extend(sh.headers(1, &[("grpc-status", "0")], true));
    let chunk = |dir, data| Step::Chunk {
        dir,
        data,
        uncaptured: 0,
        tail: Vec::new(),
    };
    [
        chunk(Direction::Egress, first),
        chunk(Direction::Ingress, settings(&[])),
        chunk(Direction::Egress, request),
        chunk(Direction::Ingress, response),
    ]
}

#[test]
fn a_server_stream_with_its_own_traceparent_keeps_the_header_parent() {
    let steps = traced_call("/pkg.Svc/Traced");
    for order in [Order::WriterFirst, Order::ReaderFirst] {
        let mut host = Host::always_on();
        play(&mut host, End::pair(40_000), &steps, order, None, 0);
        let spans = host.spans();
        assert_eq!(spans.len(), 2);
        let parent = Some([0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]);
        for s in &spans {
            assert_eq!(source(s), "header", "{order:?}");
            assert_eq!(s.parent_span_id, parent);
            assert_eq!(s.trace_id[..2], [0x0a, 0xf7]);
        }
        assert_ne!(spans[0].span_id, spans[1].span_id);
        assert_eq!(host.counter("http2_stitched"), 0);
    }
}

#[test]
fn an_untraced_client_on_a_reused_tuple_gets_no_parent() {
    let steps = grpc_conversation(&[(1, "/pkg.Svc/Do")], &[1]);
    let (client, server) = End::pair(40_000);
    let mut host = Host::always_on();
    // First connection: only its client is traced; it ends and closes.
    let mut n = 0;
    for step in &steps {
        n += 1;
        if let Step::Chunk { dir, data, .. } = step {
            let (ingress, times) = if *dir == Direction::Egress {
                (false, writer_times(n))
            } else {
                (true, reader_times(n))
            };
            host.data(client, ingress, times, data, None);
        }
    }
    host.close(client, 1000 * (n + 1));
    // Then the same 4-tuple again, the same request, only the server
    // traced (within the grace period of the first client stream).
    for step in &steps {
        n += 1;
        if let Step::Chunk { dir, data, .. } = step {
            let (ingress, times) = if *dir == Direction::Egress {
                (true, reader_times(n))
            } else {
                (false, writer_times(n))
            };
            host.data(server, ingress, times, data, None);
        }
    }
    let spans = host.spans();
    assert_eq!(spans.len(), 2);
    assert!(
        spans
            .iter()
            .all(|s| source(s) == "none" && s.parent_span_id.is_none())
    );
    assert_eq!(host.counter("http2_stitched"), 0);
}

#[test]
fn the_server_follows_the_client_sampling_decision() {
    let paths: Vec<(u32, String)> = (0..40)
        .map(|i| (2 * i + 1, format!("/pkg.Svc/M{i}")))
        .collect();
    let paths: Vec<(u32, &str)> = paths.iter().map(|(id, p)| (*id, p.as_str())).collect();
    let ids: Vec<u32> = paths.iter().map(|(id, _)| *id).collect();
    let steps = grpc_conversation(&paths, &ids);
    for sampler in [
        Sampler::ParentBased {
            root: Box::new(Sampler::AlwaysOff),
        },
        Sampler::TraceIdRatio(0.5),
        // Not parent-based, and stateful: the server must not ask it again.
        Sampler::RateLimited { per_second: 10.0 },
    ] {
        let label = format!("{sampler}");
        let mut host = Host::new(sampler);
        play(
            &mut host,
            End::pair(40_000),
            &steps,
            Order::Mixed(99),
            None,
            0,
        );
        let spans = host.spans();
        assert_eq!(host.counter("http2_stitched"), 40, "{label}");
        assert_eq!(
            spans.len() as u64 + host.counter("spans_unsampled"),
            80,
            "{label}"
        );
        // Exported in pairs: a server span exactly when its client's.
        check_links(&spans, &label);
    }
}

/// A kernel context for a client request: child of `parent` in `trace`.
fn kernel_ctx(trace: u8, span: u8, parent: u8) -> TraceCtx {
    TraceCtx {
        trace_id: [trace; 16],
        span_id: [span; 8],
        parent_span_id: [parent; 8],
        flags: 1,
        source: tracer_common::ctx_source::GOROUTINE,
        valid: 1,
        injected: 1,
        _pad: [0; 4],
    }
}

/// A gRPC client's writer batches several calls' HEADERS frames into one
/// write; the kernel sends a context per stream ahead of that write (each
/// call's own caller: different traces), except for one it had no room
/// for, which starts a new trace and is counted.
#[test]
fn each_stream_of_a_batched_write_gets_its_own_kernel_context() {
    let call = "/pkg.Svc/Call";
    let steps = grpc_conversation(&[(1, call), (3, call), (5, call)], &[3, 5, 1]);
    let mut host = Host::always_on();
    let (client, server) = End::pair(40_100);
    // Before the write with the three requests.
    let heads = Event::Http2Heads {
        pid: client.pid,
        fd: client.fd,
        sock_id: client.sock_id,
        heads: vec![
            (1, kernel_ctx(0x11, 0x12, 0x13)),
            (5, kernel_ctx(0x51, 0x52, 0x53)),
        ],
    };
    play_with_event(&mut host, (client, server), &steps, 2, heads);
    let spans = host.spans();
    let client_span = |trace: u8| {
        spans
            .iter()
            .find(|s| s.trace_id == [trace; 16] && s.process.pid == client.pid)
    };
    for (trace, span, parent) in [(0x11, 0x12, 0x13), (0x51, 0x52, 0x53)] {
        let s = client_span(trace).expect("client span in the caller's trace");
        assert_eq!(
            (s.span_id, s.parent_span_id),
            ([span; 8], Some([parent; 8]))
        );
        let child = spans
            .iter()
            .find(|c| c.parent_span_id == Some([span; 8]))
            .expect("server span under it");
        assert_eq!(child.trace_id, [trace; 16]);
    }
    let rest: Vec<_> = spans
        .iter()
        .filter(|s| s.process.pid == client.pid)
        .filter(|s| s.trace_id != [0x11; 16] && s.trace_id != [0x51; 16])
        .collect();
    assert_eq!(rest.len(), 1, "stream 3: a new trace");
    assert_eq!(rest[0].parent_span_id, None);
    assert_eq!(host.counter("http2_client_no_context"), 1);
    assert_eq!(host.counter("drop_http2_heads_orphaned"), 0);
}

/// Contexts for a connection the agent does not have are counted, and
/// nothing else happens.
#[test]
fn kernel_contexts_for_an_unknown_connection_are_counted() {
    let mut host = Host::always_on();
    host.pipeline.handle(Event::Http2Heads {
        pid: 9,
        fd: 9,
        sock_id: 9,
        heads: vec![(1, kernel_ctx(1, 2, 3))],
    });
    assert_eq!(host.counter("drop_http2_heads_orphaned"), 1);
    assert!(host.spans().is_empty());
}

/// A proxy (nginx `grpc_pass`) forwards the `traceparent` of the request it
/// serves: its call is that request's child (`forwarded`), and the server
/// at the other end of the proxy's connection, on this host, is the child of
/// the proxy's call (`connection`), not of the header's caller, whichever
/// end of the proxy's connection the ring buffer hands over first.
#[test]
fn a_proxy_forwarding_the_header_it_serves_is_nested_both_ways() {
    use opentelemetry::trace::SpanKind;
    const CALLER: [u8; 8] = [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];
    let conversation = || traced_call("/pkg.Svc/Proxied");
    // The caller (its own process) calls the proxy (pid 8), which calls the
    // back end (pid 9) on a connection of its own.
    let (caller, proxy_server) = End::pair(40_000);
    let proxy_client = End {
        pid: proxy_server.pid,
        fd: 9_000,
        sock_id: 9_000,
        client_port: 41_000,
        client: true,
    };
    let back = End {
        pid: 9,
        fd: 9_001,
        sock_id: 9_001,
        client_port: 41_000,
        client: false,
    };
    for order in [Order::WriterFirst, Order::ReaderFirst] {
        let mut host = Host::always_on();
        let inbound = conversation();
        let outbound = conversation();
        let n = play(
            &mut host,
            (caller, proxy_server),
            &inbound[..3],
            Order::WriterFirst,
            None,
            0,
        );
        let n = play(&mut host, (proxy_client, back), &outbound, order, None, n);
        play(
            &mut host,
            (caller, proxy_server),
            &inbound[3..],
            Order::WriterFirst,
            None,
            n,
        );
        let spans = host.spans();
        assert_eq!(spans.len(), 4, "{order:?}");
        let find = |pid: u32, kind: SpanKind| {
            spans
                .iter()
                .find(|s| s.process.pid == pid && s.kind == kind)
                .unwrap_or_else(|| panic!("{order:?}: no {kind:?} span of {pid}"))
        };
        let served = find(proxy_server.pid, SpanKind::Server);
        let call = find(proxy_client.pid, SpanKind::Client);
        let downstream = find(back.pid, SpanKind::Server);
        assert_eq!(
            (source(served).as_str(), served.parent_span_id),
            ("header", Some(CALLER))
        );
        assert_eq!(source(call), "forwarded", "{order:?}");
        assert_eq!(call.parent_span_id, Some(served.span_id), "{order:?}");
        assert!(!call.parent_is_remote);
        assert_eq!(source(downstream), "connection", "{order:?}");
        assert_eq!(downstream.parent_span_id, Some(call.span_id), "{order:?}");
        for s in [served, call, downstream] {
            assert_eq!(s.trace_id[..2], [0x0a, 0xf7], "{order:?}: one trace");
        }
    }
}

/// A Go middle tier's handler probe chose the server stream's context after
/// the request was read (as in the kernel: the reader reads, then starts the
/// handler): the server span takes the probe's span id, in the header's
/// trace under the header's caller; a root the probe started replaces the
/// agent's own root. Either way before the stream ends, whichever comes.
#[test]
fn a_go_server_stream_takes_the_context_its_handler_probe_chose() {
    let steps = traced_call("/pkg.Svc/Middle");
    let header_trace = [
        0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31,
        0x9c,
    ];
    let caller = [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];
    for (probe, want_trace, want_parent) in [
        // The probe read the same traceparent.
        (
            TraceCtx {
                trace_id: header_trace,
                span_id: [0x42; 8],
                parent_span_id: caller,
                flags: 1,
                source: tracer_common::ctx_source::HEADER,
                valid: 1,
                ..TraceCtx::default()
            },
            header_trace,
            Some(caller),
        ),
        // The probe found no header it reads: its root wins (counted).
        (
            TraceCtx {
                trace_id: [0x77; 16],
                span_id: [0x42; 8],
                flags: 1,
                valid: 1,
                ..TraceCtx::default()
            },
            [0x77; 16],
            None,
        ),
    ] {
        let mut host = Host::always_on();
        let (client, server) = End::pair(40_300);
        // After the request was read, before the response.
        let chosen = Event::GoServerStream {
            pid: server.pid,
            fd: server.fd,
            sock_id: server.sock_id,
            stream_id: 1,
            ctx: probe,
            request: 0,
        };
        play_with_event(&mut host, (client, server), &steps, 3, chosen);
        let spans = host.spans();
        let s = spans
            .iter()
            .find(|s| s.process.pid == server.pid)
            .expect("the server span");
        assert_eq!(s.span_id, [0x42; 8]);
        assert_eq!((s.trace_id, s.parent_span_id), (want_trace, want_parent));
        assert_eq!(host.counter("go_server_streams"), 1);
        let conflicts = u64::from(want_parent.is_none());
        assert_eq!(host.counter("go_server_context_conflicts"), conflicts);
    }
}

/// A kernel that reports a process's end at its main thread's exit
/// (without `group_dead`) can put another thread's last writes after the
/// exit in the buffer: within the burst they still find their connection,
/// which the exit then ends, instead of starting one seen mid-way.
#[test]
fn writes_after_the_exit_in_the_same_burst_keep_their_connection() {
    let steps = traced_call("/pkg.Svc/Late");
    let (client, server) = End::pair(40_000);
    let mut host = Host::always_on();
    let exit = Event::Exit { pid: client.pid };
    play_with_event(&mut host, (client, server), &steps, 2, exit);
    host.pipeline.after_burst();
    assert_eq!(host.counter("drop_http2_mid_connection"), 0);
    // The exit ended the client's connection at the burst's end: its
    // process and connection are gone before the agent stops.
    assert!(
        host.pipeline
            .conns
            .get_mut(
                super::table::ConnKey {
                    pid: client.pid,
                    fd: client.fd
                },
                client.sock_id
            )
            .is_none()
    );
    let spans = host.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert!(spans.iter().all(|s| source(s) == "header"));
}
