//! `cargo xtask bench`: what the agent costs a saturated HTTP server (issue
//! 5's overhead budget). Each workload is measured untraced and traced in
//! one run, alternating, for several rounds; the report (markdown) goes to
//! stdout and to target/bench/latest.md. A missed budget is reported, not
//! an error.

mod agent;
mod grpc_load;
mod kernel;
mod phase;
mod procs;
mod report;
mod sink;
mod workload;
mod wrk;

use std::{
    fs,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use self::{
    phase::{Clock, Context, Mode},
    report::{Header, Overload, Round, WorkloadResults},
    sink::Sink,
    workload::Workload,
    wrk::Load,
};
use crate::{
    build,
    cmd::{self, Paths},
};

/// `--traced`'s default, which `command_line` leaves out.
const DEFAULT_TRACED: [Mode; 4] = [Mode::Server, Mode::ServerNoMetrics, Mode::Export, Mode::All];

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Rounds of (untraced, traced...) phases per workload; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,

    /// Seconds of measured load per phase (after a 1 s warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,

    /// Which servers to load.
    #[arg(long, value_enum, default_value = "all")]
    pub workload: WorkloadChoice,

    /// How the agent runs in traced phases, comma separated; the first one is
    /// checked against the budget (by default `server`: only the server
    /// process is traced, wrk is the load generator).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "server,server-no-metrics,export,all"
    )]
    pub traced: Vec<Mode>,

    /// Also push each server with wrk -t4 -c256, untraced then traced.
    #[arg(long)]
    pub overload: bool,

    /// Use this agent binary instead of building target/release/tracer.
    #[arg(long, value_name = "PATH")]
    pub agent: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadChoice {
    Go,
    Nginx,
    // nginx with `ssl`, wrk over https: the OpenSSL uprobes.
    NginxTls,
    // The Go hello server over https (crypto/tls): Go's TLS uprobes.
    GoTls,
    // Two Go servers: each request to the front makes one net/http client
    // call to the leaf.
    GoFanout,
    // Go gRPC (grpc-go): a leaf alone, then a middle tier that makes one
    // gRPC call to a leaf per request; load from a Go gRPC client.
    GoGrpc,
    All,
}

impl WorkloadChoice {
    fn workloads(self) -> Vec<Workload> {
        match self {
            Self::Go => vec![Workload::Go],
            Self::Nginx => vec![Workload::Nginx],
            Self::NginxTls => vec![Workload::NginxTls],
            Self::GoTls => vec![Workload::GoTls],
            Self::GoFanout => vec![Workload::GoFanout],
            Self::GoGrpc => vec![Workload::GoGrpc, Workload::GoGrpcMiddle],
            Self::All => vec![
                Workload::Go,
                Workload::Nginx,
                Workload::NginxTls,
                Workload::GoTls,
                Workload::GoFanout,
                Workload::GoGrpc,
                Workload::GoGrpcMiddle,
            ],
        }
    }
}

pub fn run(paths: &Paths, args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    let workloads = args.workload.workloads();
    let mut modes = args.traced.clone();
    modes.dedup();
    preflight()?;

    let mut time: Vec<(String, Duration)> = Vec::new();
    let step = Instant::now();
    let agent_bin = match &args.agent {
        Some(bin) if bin.is_file() => bin.clone(),
        Some(bin) => bail!("no agent binary at {}", bin.display()),
        None => build::run(paths)?,
    };
    let dir = paths.target.join("bench");
    let scratch = dir.join("run");
    fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    // Every phase runs the same agent, even if target/release/tracer is
    // rebuilt meanwhile.
    let agent_copy = scratch.join("tracer");
    // Unlinked first: a copy still running elsewhere must not block the write.
    let _ = fs::remove_file(&agent_copy);
    fs::copy(&agent_bin, &agent_copy).with_context(|| {
        format!(
            "cannot copy {} to {}",
            agent_bin.display(),
            agent_copy.display()
        )
    })?;
    let agent_bin = agent_copy;
    let mut prepared = Vec::new();
    for &workload in &workloads {
        prepared.push((workload, workload.prepare(paths, &scratch)?));
    }
    time.push(("build agent and servers".to_owned(), step.elapsed()));

    let sink = if modes.iter().any(|m| m.exports()) {
        Some(Sink::start()?)
    } else {
        None
    };
    let ctx = Context {
        agent_bin: &agent_bin,
        logs: scratch.clone(),
        sink: sink.as_ref(),
        duration: Duration::from_secs(args.duration),
    };
    let _stats_on = kernel::stats_on()?;
    let mut clock = Clock::default();
    let mut results = Vec::new();
    for (workload, prepared) in &prepared {
        let step = Instant::now();
        let result = bench_workload(*workload, prepared, &modes, args, &ctx, &mut clock)
            .with_context(|| format!("benchmark of {} failed", workload.label()))?;
        results.push(result);
        time.push((workload.label().to_owned(), step.elapsed()));
    }
    drop(_stats_on);

    let header = Header {
        date: cmd::output(cmd::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
            .map(|d| d.trim().to_owned())
            .unwrap_or_else(|_| "date unknown".to_owned()),
        machine: machine(),
        revision: revision(paths),
        command: command_line(args),
        rounds: args.rounds,
        duration_s: args.duration,
    };
    let mut text = report::markdown(&header, &results, &modes);
    text.push_str(&time_summary(&time, &clock, started.elapsed()));
    println!("\n{text}");
    let latest = dir.join("latest.md");
    fs::write(&latest, &text).with_context(|| format!("cannot write {}", latest.display()))?;
    println!("bench: report written to {}", latest.display());
    Ok(())
}

/// Root and the tools, before anything is built or started.
fn preflight() -> Result<()> {
    if !cmd::is_root() {
        bail!(
            "`cargo xtask bench` must run as root: it runs the agent (which loads eBPF \
             programs) and reads its kernel statistics; try `sudo -E cargo xtask bench`"
        );
    }
    if !cmd::on_path("wrk") {
        bail!("wrk is not installed: run `cargo xtask setup`");
    }
    Ok(())
}

fn bench_workload(
    workload: Workload,
    prepared: &workload::Prepared,
    modes: &[Mode],
    args: &BenchArgs,
    ctx: &Context,
    clock: &mut Clock,
) -> Result<WorkloadResults> {
    println!("\n==> bench: {}", workload.label());
    let mut server = prepared.start()?;
    let target = server.target();
    let name = format!("{workload:?}").to_lowercase();
    let load = Load::NORMAL;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let untraced = phase::untraced(target, load, ctx, clock)?;
        println!(
            "bench: {name} round {round}/{}: untraced: {:.0} req/s, p99 {:.0} µs",
            args.rounds, untraced.wrk.requests_per_sec, untraced.wrk.p99_us
        );
        let floor = phase::floor(target, load, &format!("floor-{name}-{round}"), ctx, clock)?;
        println!(
            "bench: {name} round {round}/{}: floor (empty programs): {:.0} req/s, p99 {:.0} µs",
            args.rounds, floor.wrk.requests_per_sec, floor.wrk.p99_us
        );
        let mut traced = Vec::new();
        for &mode in modes {
            let log = format!("agent-{name}-{}-{round}", mode.name());
            let t = phase::traced(target, load, mode, &log, ctx, clock)?;
            println!(
                "bench: {name} round {round}/{}: {}: {:.0} req/s, p99 {:.0} µs, \
                 agent {:.0} ms CPU, spans {}",
                args.rounds,
                mode.label(),
                t.wrk.requests_per_sec,
                t.wrk.p99_us,
                t.agent_cpu.total_ms(),
                t.stats.get("spans_created").copied().unwrap_or(0),
            );
            traced.push((mode, t));
        }
        server.ensure_running()?;
        rounds.push(Round {
            untraced,
            floor,
            traced,
        });
    }
    let overload = match modes.first() {
        Some(&mode) if args.overload => {
            let load = Load::OVERLOAD;
            let untraced = phase::untraced(target, load, ctx, clock)?;
            let log = format!("agent-{name}-overload");
            let traced =
                phase::traced(target, load, mode, &log, ctx, clock).map_err(|e| format!("{e:#}"));
            if let Err(e) = &traced {
                eprintln!("bench: {name}: overload: the agent failed: {e}");
            }
            server.ensure_running()?;
            println!("bench: {name}: overload phases done");
            Some(Overload {
                mode,
                untraced,
                traced,
            })
        }
        _ => None,
    };
    Ok(WorkloadResults {
        workload,
        rounds,
        overload,
    })
}

fn time_summary(time: &[(String, Duration)], clock: &Clock, total: Duration) -> String {
    let mut text = String::from("\n### Where the benchmark's time went\n\n");
    for (what, took) in time {
        text.push_str(&format!("- {what}: {:.1} s\n", took.as_secs_f64()));
    }
    text.push_str(&format!(
        "- of which: measured load {:.1} s, warm-ups {:.1} s, agent start {:.1} s, \
         waiting for the agent to go idle {:.1} s, agent stop {:.1} s\n- total: {:.1} s\n",
        clock.measured.as_secs_f64(),
        clock.warm_up.as_secs_f64(),
        clock.agent_start.as_secs_f64(),
        clock.settle.as_secs_f64(),
        clock.agent_stop.as_secs_f64(),
        total.as_secs_f64()
    ));
    text
}

/// `Linux 6.18.0, 2 × Intel ...` for the report's header.
fn machine() -> String {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("Linux {}, {cpus} × {model}", kernel.trim())
}

/// The workspace's commit, `+dirty` when it has local changes.
fn revision(paths: &Paths) -> String {
    let git = |args: &[&str]| {
        // No optional index refresh: this must not write to the repository.
        cmd::output(
            cmd::new("git")
                .args(args)
                .env("GIT_OPTIONAL_LOCKS", "0")
                .current_dir(&paths.root),
        )
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Ok(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_ok_and(|s| !s.trim().is_empty());
            format!("{}{}", rev.trim(), if dirty { "+dirty" } else { "" })
        }
        Err(_) => "unknown revision".to_owned(),
    }
}

fn command_line(args: &BenchArgs) -> String {
    let mut line = format!(
        "cargo xtask bench --rounds {} --duration {}",
        args.rounds, args.duration
    );
    if args.workload != WorkloadChoice::All {
        let name = match args.workload {
            WorkloadChoice::Go => "go",
            WorkloadChoice::Nginx => "nginx",
            WorkloadChoice::NginxTls => "nginx-tls",
            WorkloadChoice::GoTls => "go-tls",
            WorkloadChoice::GoFanout => "go-fanout",
            WorkloadChoice::GoGrpc => "go-grpc",
            WorkloadChoice::All => "all",
        };
        line.push_str(&format!(" --workload {name}"));
    }
    if args.traced != DEFAULT_TRACED {
        let modes: Vec<&str> = args.traced.iter().map(|m| m.name()).collect();
        line.push_str(&format!(" --traced {}", modes.join(",")));
    }
    if args.overload {
        line.push_str(" --overload");
    }
    line
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{BenchArgs, DEFAULT_TRACED, Mode, Workload, WorkloadChoice, command_line};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn server_mode_first_by_default() {
        let cli = Cli::try_parse_from(["bench"]).unwrap();
        assert_eq!(cli.bench.traced, DEFAULT_TRACED);
        assert_eq!(cli.bench.traced[0], Mode::Server);
        assert_eq!(
            command_line(&cli.bench),
            "cargo xtask bench --rounds 3 --duration 10"
        );
        let cli = Cli::try_parse_from(["bench", "--traced", "no-export,server"]).unwrap();
        assert_eq!(
            command_line(&cli.bench),
            "cargo xtask bench --rounds 3 --duration 10 --traced no-export,server"
        );
    }

    #[test]
    fn nginx_tls_alone_and_in_all() {
        let cli = Cli::try_parse_from(["bench", "--workload", "nginx-tls"]).unwrap();
        assert!(cli.bench.workload == WorkloadChoice::NginxTls);
        assert_eq!(cli.bench.workload.workloads(), [Workload::NginxTls]);
        assert_eq!(
            command_line(&cli.bench),
            "cargo xtask bench --rounds 3 --duration 10 --workload nginx-tls"
        );
        assert!(
            WorkloadChoice::All
                .workloads()
                .contains(&Workload::NginxTls)
        );
    }
}
