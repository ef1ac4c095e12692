//! The agent's own CPU per HTTP/1 exchange, in process and repeatable.
//!
//! A keep-alive server's request and response events, over 32 connections,
//! go through the pipeline as the ring-buffer reader hands them over
//! (HTTP/1 parsing, trace context, RED metrics and the service graph, span
//! building), and every 2,048 spans are encoded as one OTLP request, as the
//! exporter does. There is no kernel, ring buffer or network here: the
//! figure is the part of `cargo xtask bench`'s "agent CPU µs/req" that the
//! agent's own code decides, measured without that benchmark's noise (the
//! whole machine's load moves it by ±15% from run to run).
//!
//! `cargo bench -p tracer --bench agent_cost` prints the best and the median
//! of 25 rounds of 20,000 exchanges, in ns per exchange.
use std::{hint::black_box, path::PathBuf, sync::Arc, time::Instant};

use tracer::{
    conn::{
        pipeline::{NoKernel, Pipeline, PipelineConfig},
        table::ConnTable,
    },
    events::{DataHeader, Event, reader::EventHandler},
    export,
    metrics::Shared,
    process::ProcessTable,
    protocols::http1::Limits,
    sampling::Sampler,
    spans::record::SpanRecord,
    stats::Stats,
};
use tracer_common::{ConnTuple, TraceCtx};

const REQUEST: &[u8] = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Dec 2026 19:00:00 GMT\r\n\
Content-Length: 13\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, world!";
const CONNECTIONS: u16 = 32;
const BATCH: usize = 2048;
const ROUNDS: usize = 25;
const EXCHANGES: u64 = 20_000;

fn tuple(remote_port: u16) -> ConnTuple {
    let mut t = ConnTuple {
        family: 2,
        local_port: 18080,
        remote_port,
        ..ConnTuple::default()
    };
    t.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    t.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    t
}

fn main() {
    let stats = Arc::new(Stats::default());
    let metrics = Shared::new(1000, stats.clone());
    let mut pipeline = Pipeline::new(
        ConnTable::new(1024, Limits::default()),
        ProcessTable::new(PathBuf::from("/nonexistent"), "host".to_owned()),
        NoKernel,
        Vec::<SpanRecord>::with_capacity(BATCH),
        stats.clone(),
        PipelineConfig::replay(
            Sampler::ParentBased {
                root: Box::new(Sampler::AlwaysOn),
            },
            Some(metrics.recorder()),
        ),
    );
    let scope = export::scope();
    let mut ts = 1_000_u64;
    let mut spans = 0_u64;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for i in 0..EXCHANGES {
            let c = (i % u64::from(CONNECTIONS)) as u16;
            for (ingress, data) in [(true, REQUEST), (false, RESPONSE)] {
                ts += 1_000;
                pipeline.handle(Event::Data {
                    header: DataHeader {
                        ingress,
                        pid: 7,
                        tid: 7,
                        fd: 10 + u32::from(c),
                        sock_id: 100 + u64::from(c),
                        ts_enter: ts,
                        ts_exit: ts + 10,
                        total_len: data.len() as u64,
                        tuple: tuple(40_000 + c),
                        ctx: TraceCtx::default(),
                        tls: false,
                    },
                    payload: data,
                    tail: &[],
                });
            }
            let sink = pipeline.sink_mut();
            if sink.len() >= BATCH {
                spans += sink.len() as u64;
                let resource = sink[0].resource.clone();
                black_box(export::otlp_request(&resource, &scope, sink));
                sink.clear();
            }
        }
        rounds.push(started.elapsed().as_nanos() as f64 / EXCHANGES as f64);
    }
    rounds.sort_by(f64::total_cmp);
    let dropped: u64 = stats
        .snapshot()
        .into_iter()
        .filter(|(name, _)| name.starts_with("drop"))
        .map(|(_, n)| n)
        .sum();
    println!(
        "agent_cost: {:.0} ns per HTTP/1 exchange (best of {ROUNDS} rounds of {EXCHANGES}), median {:.0}; {spans} spans encoded, {dropped} dropped",
        rounds[0],
        rounds[ROUNDS / 2],
    );
    assert!(
        spans >= (ROUNDS as u64 * EXCHANGES) / 2 && dropped == 0,
        "the pipeline lost exchanges: the figure would not be the agent's cost"
    );
}
