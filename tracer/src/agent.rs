//! Wires the stages together and runs until SIGINT/SIGTERM.
use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use log::{info, warn};
use tracer_common::{Config, counter};

use crate::{
    cli::{Args, OtlpProtocol},
    conn::{
        pipeline::{KernelControl, Pipeline, PipelineConfig, SpanSink},
        table::ConnTable,
    },
    events::reader,
    export::{self, ExportEnv, ExportFlags, ExportHandle, Protocol},
    golang::patterns::Patterns,
    metrics::{self, config::MetricsFlags},
    probes::{
        ProbeOptions, Probes,
        go::{self, GoCommand, GoTracing},
    },
    process::{ProcessTable, info::host_name, selection::Selection},
    protocols::http1::Limits,
    sampling::{self, SamplingState},
    spans::{http::HttpSpanOptions, record::SpanRecord},
    stats::Stats,
};

/// Connections tracked at once; beyond this new ones are dropped (counted).
const MAX_CONNECTIONS: usize = 65536;

impl SpanSink for ExportHandle {
    fn send(&mut self, span: SpanRecord) -> bool {
        self.try_send(span)
    }
}

/// Writes selected pids and the sampling threshold into the kernel's maps,
/// and tells the Go thread about processes.
struct Kernel {
    traced_pids: BpfHashMap<MapData, u32, u8>,
    config: Array<MapData, Config>,
    go: GoTracing,
    /// Processes are selected by pid or executable only (no --port): a new
    /// process not selected (by exec, or as a child of a selected one,
    /// which the kernel added when it forked) gets no uprobes.
    only_selected: bool,
}

impl KernelControl for Kernel {
    fn select(&mut self, pid: u32) {
        if let Err(e) = self.traced_pids.insert(pid, 1, 0) {
            warn!("cannot select pid {pid}: {e}");
        }
    }

    fn set_sample_threshold(&mut self, threshold: u64) {
        let result = self.config.get(&0, 0).and_then(|mut config| {
            config.sample_threshold = threshold;
            self.config.set(0, config, 0)
        });
        if let Err(e) = result {
            warn!("cannot update the sampling threshold: {e}");
        }
    }

    fn process_started(&mut self, pid: u32) {
        if self.only_selected && self.traced_pids.get(&pid, 0).is_err() {
            return;
        }
        self.go.send(GoCommand::Process(pid));
    }

    fn process_exited(&mut self, pid: u32) {
        self.go.send(GoCommand::Exited(pid));
    }

    fn makes_calls(&mut self, pid: u32) {
        self.go.send(GoCommand::MakesCalls(pid));
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let stats = Arc::new(Stats::default());
    Stats::add(
        &stats.ringbuf_size_bytes,
        u64::from(args.ring_buffer_mib) << 20,
    );
    let env = |name| std::env::var(name).ok();
    let sampler = sampling::from_env_and_flags(
        args.sampler.as_deref(),
        args.sampler_arg.as_deref(),
        env(sampling::ENV_SAMPLER).as_deref(),
        env(sampling::ENV_SAMPLER_ARG).as_deref(),
    )
    .context("choosing the sampler (--sampler / --sampler-arg)")?;
    info!("sampler: {sampler}");
    let sampling = SamplingState::new(sampler);
    let export_flags = ExportFlags {
        otlp_endpoint: args.otlp_endpoint.clone(),
        otlp_protocol: args.otlp_protocol.map(|p| match p {
            OtlpProtocol::Grpc => Protocol::Grpc,
            OtlpProtocol::HttpProtobuf => Protocol::HttpProtobuf,
        }),
        no_otlp: args.no_otlp,
        stdout: args.stdout,
        zipkin_endpoint: args.zipkin_endpoint.clone(),
    };
    let export_config = export::resolve(&export_flags, &ExportEnv::from_process_env())
        .context("choosing the span exporters (OTEL_TRACES_EXPORTER, --zipkin-endpoint)")?;
    let (exporter, export_task) = export::spawn(export_config, stats.clone())?;
    let metrics_config = metrics::config::resolve(
        &MetricsFlags {
            no_metrics: args.no_metrics,
            no_otlp: args.no_otlp,
            otlp_endpoint: args.otlp_endpoint.clone(),
            otlp_metrics_endpoint: args.otlp_metrics_endpoint.clone(),
            otlp_protocol: args.otlp_protocol.map(|p| match p {
                OtlpProtocol::Grpc => Protocol::Grpc,
                OtlpProtocol::HttpProtobuf => Protocol::HttpProtobuf,
            }),
            prometheus_port: args.prometheus_port,
            prometheus_address: args.prometheus_address.clone(),
            cardinality_limit: args.metrics_cardinality_limit,
        },
        |name| std::env::var(name).ok(),
    )
    .context("choosing the metrics exporters")?;

    let mut probes = Probes::load(&ProbeOptions {
        capture_len: args.capture_bytes,
        ring_bytes: args.ring_buffer_mib * 1024 * 1024,
        selective: args.selective(),
        ports: args.ports.clone(),
        exes: args.exes.clone(),
        inject: !args.no_inject,
        sample_threshold: sampling::ratio_threshold(sampling.adaptive_ratio()),
        require_all: args.require_all,
        fail_programs: args.fail_programs.clone(),
    })?;
    let selection = Selection {
        pids: args.pids.clone(),
        exes: args.exes.clone(),
    };
    let patterns = Patterns::default();
    let mut kernel = Kernel {
        traced_pids: probes
            .traced_pids
            .take()
            .context("TRACED_PIDS already taken")?,
        config: probes.config.take().context("CONFIG already taken")?,
        go: go::spawn(
            probes.ebpf.take().context("programs already taken")?,
            &probes.features,
            args.proc_root.clone(),
            stats.clone(),
            patterns.clone(),
        )?,
        only_selected: args.selective() && args.ports.is_empty(),
    };
    if args.selective() {
        let chosen = selection.scan(&args.proc_root);
        info!("selected {} running processes", chosen.len());
        for &pid in &chosen {
            kernel.select(pid);
        }
    }
    // With --port any process may own a selected connection: every one is
    // looked at (only Go executables are kept, once per executable).
    let running = if args.selective() && args.ports.is_empty() {
        selection.scan(&args.proc_root)
    } else {
        all_processes(&args.proc_root)
    };
    // Go processes already running are instrumented like new ones.
    for pid in running {
        kernel.process_started(pid);
    }
    kernel.go.sync();
    let ring = probes.events.take().context("ring buffer already taken")?;
    // Loading parsed the kernel's BTF (tens of MiB, freed by now): give that
    // memory back instead of keeping it in the allocator for the agent's
    // lifetime.
    // SAFETY: no preconditions.
    unsafe { libc::malloc_trim(0) };

    let host = args.host_name.clone().unwrap_or_else(host_name);
    let probes = Arc::new(probes);
    let metrics = start_metrics(&metrics_config, &stats, &probes, &host).await;
    let mut pipeline = Pipeline::new(
        ConnTable::new(MAX_CONNECTIONS, Limits::default()),
        ProcessTable::new(args.proc_root.clone(), host.clone()),
        kernel,
        exporter,
        stats.clone(),
        PipelineConfig {
            selection,
            span_options: HttpSpanOptions {
                capture_query: args.capture_query,
            },
            sampling,
            metrics: metrics.as_ref().map(|m| m.shared.recorder()),
            patterns,
        },
    );

    let reporter = tokio::spawn(report_periodically(
        args.stats_interval(),
        stats.clone(),
        probes.clone(),
    ));
    let shutdown = shutdown_signal();
    eprintln!("tracer: ready");
    info!("ready: tracing {}", describe_selection(&args));

    reader::run(ring, stats.clone(), &mut pipeline, shutdown).await?;
    info!("shutting down: flushing spans");
    pipeline.finish_all();
    reporter.abort();
    let exporter = pipeline.sink_mut().clone();
    drop(pipeline);
    exporter.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(6), export_task).await;
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    pull_kernel_counters(&probes, &stats);
    eprintln!("tracer: stats: {}", stats.summary());
    // Dropping the probes detaches every program.
    drop(probes);
    Ok(())
}

/// The metrics stage while it runs.
struct RunningMetrics {
    shared: metrics::Shared,
    otlp: Option<metrics::otlp::ExportHandle>,
    prometheus: Option<tokio::task::JoinHandle<()>>,
}

impl RunningMetrics {
    async fn stop(self) {
        if let Some(otlp) = self.otlp {
            otlp.shutdown(export::SHUTDOWN_TIMEOUT).await;
        }
        if let Some(server) = self.prometheus {
            server.abort();
        }
    }
}

/// Starts the Prometheus endpoint and the OTLP metrics exporter that the
/// configuration asks for. Metrics are optional: an exporter that cannot
/// start is left out with a warning, and the agent goes on.
async fn start_metrics(
    config: &metrics::config::MetricsConfig,
    stats: &Arc<Stats>,
    probes: &Arc<Probes>,
    host: &str,
) -> Option<RunningMetrics> {
    if !config.enabled() {
        info!(
            "metrics: none aggregated: --no-metrics, or OTEL_METRICS_EXPORTER=none without --prometheus-port"
        );
        return None;
    }
    let shared = metrics::Shared::new(config.cardinality_limit, stats.clone());
    let prometheus = match &config.prometheus {
        Some((address, port)) => {
            let probes = probes.clone();
            let counters = stats.clone();
            let refresh: metrics::prometheus::Refresh =
                Arc::new(move || pull_kernel_counters(&probes, &counters));
            let registry =
                metrics::prometheus::registry(shared.clone(), stats.clone(), Some(refresh));
            let bound = match metrics::config::prometheus_addr(address, *port) {
                Ok(addr) => metrics::server::spawn(addr, registry).await,
                Err(e) => Err(anyhow::anyhow!("cannot resolve {address}: {e}")),
            };
            match bound {
                Ok((addr, task)) => {
                    info!("serving Prometheus metrics on http://{addr}/metrics");
                    Some(task)
                }
                Err(e) => {
                    warn!("Prometheus endpoint off: {e:#}");
                    None
                }
            }
        }
        None => None,
    };
    let otlp = match &config.otlp {
        Some(otlp) => {
            match metrics::otlp::spawn(otlp.clone(), shared.clone(), stats.clone(), host.to_owned())
            {
                Ok(handle) => Some(handle),
                Err(e) => {
                    warn!("OTLP metrics export off: {e:#}");
                    None
                }
            }
        }
        None => None,
    };
    Some(RunningMetrics {
        shared,
        otlp,
        prometheus,
    })
}

/// Every process id under `proc_root`.
fn all_processes(proc_root: &std::path::Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != std::process::id())
        .collect()
}

fn describe_selection(args: &Args) -> String {
    if !args.selective() {
        return "every process but this agent".to_owned();
    }
    let mut parts = Vec::new();
    if !args.pids.is_empty() {
        parts.push(format!("pids {:?}", args.pids));
    }
    if !args.exes.is_empty() {
        parts.push(format!("executables {:?}", args.exes));
    }
    if !args.ports.is_empty() {
        parts.push(format!("ports {:?}", args.ports));
    }
    parts.join(", ")
}

/// Copy the kernel programs' per-CPU counters into the shared stats.
fn pull_kernel_counters(probes: &Probes, stats: &Stats) {
    let k = probes.kernel_counters();
    for (index, into) in [
        (counter::RINGBUF_FULL, &stats.drop_ringbuf_full),
        (counter::ARGS_FULL, &stats.drop_args_full),
        (counter::PIDS_FULL, &stats.drop_pids_full),
        (counter::GO_NO_GOROUTINE, &stats.go_no_goroutine),
        (counter::GO_G_FROM_TLS, &stats.go_goroutine_from_tls),
        (counter::GO_HANDOFF_FAILED, &stats.go_handoff_failed),
        (counter::H2_HEADS_UNTRACED, &stats.http2_heads_untraced),
        (counter::H2_INJECT_SYNC_LOST, &stats.http2_inject_sync_lost),
        (counter::GO_GRPC_STREAM_FAILED, &stats.go_grpc_stream_failed),
        (counter::GO_GRPC_STREAM_LATE, &stats.go_grpc_stream_late),
        (
            counter::GO_GRPC_STREAM_NO_CALLER,
            &stats.go_grpc_stream_no_caller,
        ),
        (counter::GO_SERVER_STREAMS, &stats.go_server_probe_hits),
        (
            counter::GO_SERVER_STREAM_FAILED,
            &stats.go_server_stream_failed,
        ),
        (
            counter::GO_SERVER_STREAM_HEADER,
            &stats.go_server_stream_header,
        ),
        (counter::TLS_PLAINTEXT, &stats.tls_plaintext_events),
        (counter::TLS_PROBE_HITS, &stats.tls_probe_hits),
        (counter::TLS_UNTIED, &stats.drop_tls_untied),
        (counter::TLS_WRITE_UNSENT, &stats.drop_tls_write_unsent),
        (
            counter::TLS_CIPHERTEXT_SKIPPED,
            &stats.tls_ciphertext_skipped,
        ),
        (counter::READ_FAILED, &stats.kernel_read_failed),
        (counter::INJECTED, &stats.context_injected),
        (counter::INJECT_FAILED, &stats.context_inject_failed),
        (
            counter::INJECT_SKIPPED_HAS_HEADER,
            &stats.context_own_header,
        ),
    ] {
        into.store(k[index as usize], std::sync::atomic::Ordering::Relaxed);
    }
}

async fn report_periodically(every: Option<Duration>, stats: Arc<Stats>, probes: Arc<Probes>) {
    let Some(every) = every else { return };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        pull_kernel_counters(&probes, &stats);
        eprintln!("tracer: stats: {}", stats.summary());
    }
}

/// SIGTERM or SIGINT, with their handlers installed now (before the agent
/// says it is ready: a signal sent as soon as it is must not kill it).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => {
            warn!("cannot install signal handlers; stop the agent with SIGKILL");
            None
        }
    };
    async move {
        let Some((mut term, mut int)) = handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
