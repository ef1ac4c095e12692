//! One measured phase: a warm-up, then wrk for the configured duration,
//! against a server with or without the agent.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{
    agent::Agent,
    kernel::{self, Program},
    procs::{self, Cpu, Memory},
    sink::Sink,
    wrk::{self, Load, Report},
};

/// wrk's run before each measured one: connections set up, caches and the
/// agent's tables warm.
pub const WARM_UP: Duration = Duration::from_secs(1);
/// Longest wait for the agent to finish what the load queued for it.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// How the agent is run in a traced phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `--port <server port>` (the server and wrk's connections), spans
    /// exported over OTLP/HTTP to a local sink that discards them.
    Export,
    /// `--port <server port>`, `--no-otlp`: tracing without export.
    NoExport,
    /// No selection (every process), `--no-otlp`.
    All,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Self::Export => "--port, OTLP export",
            Self::NoExport => "--port, --no-otlp",
            Self::All => "everything, --no-otlp",
        }
    }

    fn agent_args(self, server_port: u16, sink: Option<&Sink>) -> Vec<String> {
        let mut args = vec!["--stats-interval".to_owned(), "0".to_owned()];
        if self != Self::All {
            args.extend(["--port".to_owned(), server_port.to_string()]);
        }
        match (self, sink) {
            (Self::Export, Some(sink)) => args.extend([
                "--otlp-protocol".to_owned(),
                "http/protobuf".to_owned(),
                "--otlp-endpoint".to_owned(),
                sink.endpoint(),
            ]),
            // Tracing everything would trace the sink too, whose spans
            // would be exported to it in turn.
            _ => args.push("--no-otlp".to_owned()),
        }
        args
    }
}

/// What a traced phase measured.
pub struct Traced {
    /// The measured wrk run.
    pub wrk: Report,
    /// Requests served while the agent was attached (warm-up included).
    pub requests_seen: u64,
    /// Agent CPU over the measured run and the settling after it.
    pub agent_cpu: Cpu,
    /// The agent's context switches over the same interval.
    pub agent_context_switches: u64,
    /// The agent's programs over the same interval.
    pub programs: Vec<Program>,
    /// At the end of the measured run (steady state), and the peak so far.
    pub memory: Memory,
    /// The agent's final counters.
    pub stats: BTreeMap<String, u64>,
    /// OTLP export requests the sink received.
    pub export_requests: u64,
    /// Run time of eBPF programs not the agent's over the same interval.
    pub other_bpf_ns: u64,
}

/// What an untraced phase measured.
pub struct Untraced {
    pub wrk: Report,
    /// Run time of eBPF programs loaded by others over the measured run.
    pub other_bpf_ns: u64,
}

/// Where the time of the phases went, for the log.
#[derive(Default)]
pub struct Clock {
    pub agent_start: Duration,
    pub warm_up: Duration,
    pub measured: Duration,
    pub settle: Duration,
    pub agent_stop: Duration,
}

/// What every phase needs.
pub struct Context<'a> {
    pub agent_bin: &'a Path,
    pub logs: PathBuf,
    pub sink: Option<&'a Sink>,
    pub duration: Duration,
}

fn timed<T>(slot: &mut Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    *slot += start.elapsed();
    out
}

pub fn untraced(url: &str, load: Load, ctx: &Context, clock: &mut Clock) -> Result<Untraced> {
    timed(&mut clock.warm_up, || wrk::run(url, load, WARM_UP))?;
    let bpf_before = kernel::total_run_time_ns();
    let wrk = timed(&mut clock.measured, || wrk::run(url, load, ctx.duration))?;
    Ok(Untraced {
        wrk,
        other_bpf_ns: kernel::total_run_time_ns().saturating_sub(bpf_before),
    })
}

/// Starts a fresh agent, warms up, measures, waits until the agent has
/// caught up, then stops it and reads its counters.
pub fn traced(
    url: &str,
    port: u16,
    load: Load,
    mode: Mode,
    log_name: &str,
    ctx: &Context,
    clock: &mut Clock,
) -> Result<Traced> {
    let args = mode.agent_args(port, ctx.sink);
    let log = ctx.logs.join(format!("{log_name}.log"));
    let mut agent = timed(&mut clock.agent_start, || {
        Agent::start(ctx.agent_bin, &args, &log)
    })?;
    let pid = agent.pid();
    let sink_before = ctx.sink.map_or(0, Sink::requests);

    let warm = timed(&mut clock.warm_up, || wrk::run(url, load, WARM_UP))?;
    timed(&mut clock.settle, || procs::wait_idle(pid, SETTLE_LIMIT))?;
    let cpu_before = procs::cpu(pid)?;
    let switches_before = procs::context_switches(pid)?;
    let programs_before = kernel::snapshot(pid)?;
    let bpf_before = kernel::total_run_time_ns();

    let measured = timed(&mut clock.measured, || wrk::run(url, load, ctx.duration))?;
    let memory = procs::memory(pid)?;
    timed(&mut clock.settle, || procs::wait_idle(pid, SETTLE_LIMIT))?;
    let cpu_after = procs::cpu(pid)?;
    let switches_after = procs::context_switches(pid)?;
    let programs_after = kernel::snapshot(pid)?;
    let bpf_all = kernel::total_run_time_ns().saturating_sub(bpf_before);
    agent.ensure_running()?;
    let memory = Memory {
        hwm_kib: procs::memory(pid)?.hwm_kib,
        ..memory
    };

    let programs = kernel::delta(&programs_before, &programs_after);
    let stats = timed(&mut clock.agent_stop, || agent.stop())?;
    let agent_ns: u64 = programs.iter().map(|p| p.run_time_ns).sum();
    Ok(Traced {
        other_bpf_ns: bpf_all.saturating_sub(agent_ns),
        requests_seen: warm.requests + measured.requests,
        wrk: measured,
        agent_cpu: cpu_after.since(cpu_before),
        agent_context_switches: switches_after.saturating_sub(switches_before),
        programs,
        memory,
        stats,
        export_requests: ctx.sink.map_or(0, Sink::requests) - sink_before,
    })
}
