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
    grpc_load,
    kernel::{self, Program},
    procs::{self, Cpu, Memory},
    sink::Sink,
    workload::Workload,
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
    /// `--pid <server pid>` (the Go process; nginx's master, whose worker the
    /// agent selects as its descendant; both fan-out processes): only the
    /// servers are traced, not wrk; spans exported over OTLP/HTTP to a local
    /// sink that discards them.
    Server,
    /// As `server`, with `--no-metrics`: what the RED metrics and service
    /// graph cost, by difference.
    ServerNoMetrics,
    /// As `server`, with the kernel's trace context turned off
    /// (`--fail-program classify`: the programs after the capture are
    /// refused, as a kernel that refused them would): what capturing the
    /// bytes alone costs, the least any payload-capturing design pays on
    /// these hooks.
    CaptureOnly,
    /// `--port <server port>` (the servers and wrk's connections; fan-out:
    /// both servers' ports), spans exported over OTLP/HTTP to a local sink
    /// that discards them.
    Export,
    /// `--port <server port>`, `--no-otlp`: tracing without export.
    NoExport,
    /// No selection (every process), `--no-otlp`.
    All,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Self::Server => "--pid server, OTLP export",
            Self::ServerNoMetrics => "--pid server, OTLP export, --no-metrics",
            Self::CaptureOnly => "--pid server, OTLP export, capture only",
            Self::Export => "--port, OTLP export",
            Self::NoExport => "--port, --no-otlp",
            Self::All => "everything, --no-otlp",
        }
    }

    /// Its name on the command line (`no-export`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::ServerNoMetrics => "server-no-metrics",
            Self::CaptureOnly => "capture-only",
            Self::Export => "export",
            Self::NoExport => "no-export",
            Self::All => "all",
        }
    }

    /// Whether spans go to the OTLP sink (otherwise `--no-otlp`).
    pub fn exports(self) -> bool {
        matches!(
            self,
            Self::Server | Self::ServerNoMetrics | Self::CaptureOnly | Self::Export
        )
    }

    /// The spans each request makes: the servers' side (see
    /// `Workload::spans_per_request`), and wrk's CLIENT span unless only
    /// the servers are selected.
    pub fn spans_per_request(self, workload: Workload) -> u64 {
        match self {
            Self::Server | Self::ServerNoMetrics | Self::CaptureOnly => {
                workload.spans_per_request()
            }
            Self::Export | Self::NoExport | Self::All => workload.spans_per_request() + 1,
        }
    }

    /// Which spans `spans_per_request` counts, for the report.
    pub fn span_kinds(self) -> &'static str {
        match self {
            Self::Server | Self::ServerNoMetrics | Self::CaptureOnly => "servers' side",
            Self::Export | Self::NoExport | Self::All => "servers' side + wrk's client",
        }
    }

    fn agent_args(self, server: Target, sink: Option<&Sink>) -> Vec<String> {
        let mut args = vec!["--stats-interval".to_owned(), "0".to_owned()];
        let (ports, pids) = match server.downstream {
            Some((port, pid)) => (vec![server.port, port], vec![server.pid, pid]),
            None => (vec![server.port], vec![server.pid]),
        };
        match self {
            Self::Server | Self::ServerNoMetrics | Self::CaptureOnly => {
                for pid in pids {
                    args.extend(["--pid".to_owned(), pid.to_string()]);
                }
            }
            Self::Export | Self::NoExport => {
                for port in ports {
                    args.extend(["--port".to_owned(), port.to_string()]);
                }
            }
            Self::All => {}
        }
        if self == Self::ServerNoMetrics {
            args.push("--no-metrics".to_owned());
        }
        if self == Self::CaptureOnly {
            args.extend(["--fail-program".to_owned(), "classify".to_owned()]);
        }
        match sink {
            Some(sink) if self.exports() => args.extend([
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

/// The server under load, as the agent selects it.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// It listens on 127.0.0.1:`port`.
    pub port: u16,
    /// The server process (nginx: the master).
    pub pid: u32,
    /// What wrk asks for (`/`, or `/fanout?n=1`).
    pub path: &'static str,
    /// The server it calls, if any (port, pid): selected like it.
    pub downstream: Option<(u16, u32)>,
    /// gRPC workloads: the load generator (else wrk loads `url`).
    pub grpc_load: Option<&'static Path>,
    /// A gRPC middle tier: told (SIGHUP) to dial its leaf again once an
    /// agent has started, which must see that connection from its preface.
    pub redial: bool,
    /// nginx-tls: wrk speaks https (it does not check the certificate).
    pub https: bool,
}

impl Target {
    pub fn url(self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{}", self.port, self.path)
    }

    /// Loads the server for `duration`.
    fn load(self, load: Load, duration: Duration) -> Result<Report> {
        match self.grpc_load {
            Some(bin) => grpc_load::run(bin, self.port, load, duration),
            None => wrk::run(&self.url(), load, duration),
        }
    }

    /// A middle tier dials its leaf again (for an agent just started).
    fn redial(self) -> Result<()> {
        if self.redial {
            procs::signal_hup(self.pid)?;
            // A dial to 127.0.0.1 takes a millisecond or so.
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
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

/// What a floor phase measured: `tracer floor`, the agent's tracepoints
/// with programs that return at once.
pub struct Floor {
    pub wrk: Report,
    /// The floor's programs over the measured run.
    pub programs: Vec<Program>,
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

pub fn untraced(target: Target, load: Load, ctx: &Context, clock: &mut Clock) -> Result<Untraced> {
    timed(&mut clock.warm_up, || target.load(load, WARM_UP))?;
    let bpf_before = kernel::total_run_time_ns();
    let wrk = timed(&mut clock.measured, || target.load(load, ctx.duration))?;
    Ok(Untraced {
        wrk,
        other_bpf_ns: kernel::total_run_time_ns().saturating_sub(bpf_before),
    })
}

/// `tracer floor` started fresh, a warm-up, the measured run, its programs'
/// run time over it.
pub fn floor(
    target: Target,
    load: Load,
    name: &str,
    ctx: &Context,
    clock: &mut Clock,
) -> Result<Floor> {
    let log = ctx.logs.join(format!("{name}.log"));
    let floor = timed(&mut clock.agent_start, || {
        Agent::start(ctx.agent_bin, &["floor".to_owned()], &log)
    })?;
    let pid = floor.pid();
    timed(&mut clock.warm_up, || target.load(load, WARM_UP))?;
    let before = kernel::snapshot(pid)?;
    let wrk = timed(&mut clock.measured, || target.load(load, ctx.duration))?;
    let after = kernel::snapshot(pid)?;
    timed(&mut clock.agent_stop, || floor.stop())?;
    Ok(Floor {
        wrk,
        programs: kernel::delta(&before, &after),
    })
}

/// Starts a fresh agent, warms up, measures, waits until the agent has
/// caught up, then stops it and reads its counters.
pub fn traced(
    target: Target,
    load: Load,
    mode: Mode,
    log_name: &str,
    ctx: &Context,
    clock: &mut Clock,
) -> Result<Traced> {
    let args = mode.agent_args(target, ctx.sink);
    let log = ctx.logs.join(format!("{log_name}.log"));
    let mut agent = timed(&mut clock.agent_start, || {
        Agent::start(ctx.agent_bin, &args, &log)
    })?;
    let pid = agent.pid();
    let sink_before = ctx.sink.map_or(0, Sink::requests);
    target.redial()?;

    let warm = timed(&mut clock.warm_up, || target.load(load, WARM_UP))?;
    timed(&mut clock.settle, || procs::wait_idle(pid, SETTLE_LIMIT))?;
    let cpu_before = procs::cpu(pid)?;
    let switches_before = procs::context_switches(pid)?;
    let programs_before = kernel::snapshot(pid)?;
    let bpf_before = kernel::total_run_time_ns();

    let measured = timed(&mut clock.measured, || target.load(load, ctx.duration))?;
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

#[cfg(test)]
mod tests {
    use super::{Mode, Target, Workload};

    const TARGET: Target = Target {
        port: 8080,
        pid: 4242,
        path: "/",
        downstream: None,
        grpc_load: None,
        redial: false,
        https: false,
    };

    #[test]
    fn server_mode_selects_only_the_server_pid_and_exports() {
        let args = Mode::Server.agent_args(TARGET, None);
        assert!(args.windows(2).any(|w| w == ["--pid", "4242"]));
        assert!(!args.iter().any(|a| a == "--port"));
        assert_eq!(Mode::Server.spans_per_request(Workload::Go), 1);
        assert!(Mode::Server.exports());
    }

    #[test]
    fn fanout_selects_front_and_leaf() {
        let fanout = Target {
            path: "/fanout?n=1",
            downstream: Some((8081, 4343)),
            ..TARGET
        };
        assert_eq!(fanout.url(), "http://127.0.0.1:8080/fanout?n=1");
        let args = Mode::Server.agent_args(fanout, None);
        assert!(args.windows(2).any(|w| w == ["--pid", "4242"]));
        assert!(args.windows(2).any(|w| w == ["--pid", "4343"]));
        let args = Mode::Export.agent_args(fanout, None);
        assert!(args.windows(2).any(|w| w == ["--port", "8080"]));
        assert!(args.windows(2).any(|w| w == ["--port", "8081"]));
        assert_eq!(Mode::Server.spans_per_request(Workload::GoFanout), 3);
        assert_eq!(Mode::All.spans_per_request(Workload::GoFanout), 4);
    }

    #[test]
    fn port_and_all_modes() {
        let export = Mode::Export.agent_args(TARGET, None);
        assert!(export.windows(2).any(|w| w == ["--port", "8080"]));
        assert!(!export.iter().any(|a| a == "--pid"));
        let all = Mode::All.agent_args(TARGET, None);
        assert!(!all.iter().any(|a| a == "--pid" || a == "--port"));
        assert!(all.iter().any(|a| a == "--no-otlp"));
        for mode in [Mode::Export, Mode::NoExport, Mode::All] {
            assert_eq!(mode.spans_per_request(Workload::Nginx), 2, "{mode:?}");
        }
        assert!(!Mode::NoExport.exports() && !Mode::All.exports());
    }

    #[test]
    fn nginx_tls_is_https_with_the_spans_of_nginx() {
        let tls = Target {
            https: true,
            ..TARGET
        };
        assert_eq!(tls.url(), "https://127.0.0.1:8080/");
        assert_eq!(TARGET.url(), "http://127.0.0.1:8080/");
        // Selected like nginx: the master's pid, or the port.
        let args = Mode::Server.agent_args(tls, None);
        assert!(args.windows(2).any(|w| w == ["--pid", "4242"]));
        let args = Mode::Export.agent_args(tls, None);
        assert!(args.windows(2).any(|w| w == ["--port", "8080"]));
        for mode in [Mode::Server, Mode::ServerNoMetrics, Mode::CaptureOnly] {
            assert_eq!(mode.spans_per_request(Workload::NginxTls), 1, "{mode:?}");
        }
        let args = Mode::CaptureOnly.agent_args(tls, None);
        assert!(args.windows(2).any(|w| w == ["--pid", "4242"]));
        assert!(args.windows(2).any(|w| w == ["--fail-program", "classify"]));
        // wrk's CLIENT span, from its own OpenSSL calls, where wrk is traced.
        for mode in [Mode::Export, Mode::NoExport, Mode::All] {
            assert_eq!(
                mode.spans_per_request(Workload::NginxTls),
                mode.spans_per_request(Workload::Nginx),
                "{mode:?}"
            );
            assert_eq!(mode.spans_per_request(Workload::NginxTls), 2, "{mode:?}");
        }
    }

    #[test]
    fn names_are_the_command_line_values() {
        use clap::ValueEnum as _;
        for mode in Mode::value_variants() {
            let value = mode.to_possible_value().unwrap();
            assert_eq!(value.get_name(), mode.name());
        }
    }
}
