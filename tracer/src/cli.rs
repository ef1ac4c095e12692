//! Command line of the agent. Other tooling relies on these exact flags.
use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    #[value(name = "grpc")]
    Grpc,
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// eBPF zero-instrumentation tracer: the HTTP/1.x, HTTP/2 and gRPC requests
/// of unmodified processes become OpenTelemetry spans, exported over OTLP.
/// Runs as root.
#[derive(Clone, Debug, Parser)]
#[command(name = "tracer", version)]
pub struct Args {
    /// OTLP endpoint. Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
    /// OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4317 (grpc) or
    /// http://localhost:4318 (http/protobuf).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// OTLP transport. Default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc.
    #[arg(long, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<OtlpProtocol>,

    /// Also print every finished span as one JSON object per line on stdout.
    #[arg(long)]
    pub stdout: bool,

    /// Do not export over OTLP.
    #[arg(long)]
    pub no_otlp: bool,

    /// Also send spans to Zipkin (v2 JSON) at this URL, e.g.
    /// http://localhost:9411/api/v2/spans. Without it, Zipkin export is on
    /// when OTEL_TRACES_EXPORTER lists zipkin (with OTLP: otlp,zipkin), to
    /// OTEL_EXPORTER_ZIPKIN_ENDPOINT or that default.
    #[arg(long, value_name = "URL")]
    pub zipkin_endpoint: Option<String>,

    /// Trace this process (and the children it forks). Repeatable.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Trace processes running this executable: a file name (`nginx`) or a
    /// full path (`/usr/sbin/nginx`). Repeatable; matches processes started
    /// later too, from their first instruction: by the path they were
    /// executed by (a symlink's too) or the executable it resolves to.
    #[arg(long = "exe", value_name = "NAME")]
    pub exes: Vec<String>,

    /// Trace connections whose local or remote port is PORT (the servers
    /// listening on it and the clients connecting to it). Repeatable.
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,

    /// Bytes of each read/write copied from the kernel for parsing (request
    /// and response heads must fit; bodies are never exported).
    #[arg(long, value_name = "BYTES", default_value_t = tracer_common::DEFAULT_CAPTURE,
          value_parser = clap::value_parser!(u32).range(64..=tracer_common::MAX_CAPTURE as i64))]
    pub capture_bytes: u32,

    /// Kernel ring buffer size in MiB (a power of two). It is mapped twice
    /// into the agent, so it counts double in its RSS.
    #[arg(long, value_name = "MIB", default_value_t = 8, value_parser = parse_ring_mib)]
    pub ring_buffer_mib: u32,

    /// Do not write `traceparent` into outgoing HTTP/1 and HTTP/2 (gRPC)
    /// requests (then hops between processes on this host are still linked
    /// by their connection).
    #[arg(long)]
    pub no_inject: bool,

    /// Head sampler: always_on, always_off, traceidratio,
    /// parentbased_always_on (default), parentbased_always_off,
    /// parentbased_traceidratio, ratelimited, parentbased_ratelimited.
    /// Default: OTEL_TRACES_SAMPLER.
    #[arg(long, value_name = "NAME")]
    pub sampler: Option<String>,

    /// The sampler's argument: a ratio in [0, 1] for *traceidratio, traces
    /// per second for *ratelimited. Default: OTEL_TRACES_SAMPLER_ARG.
    #[arg(long, value_name = "ARG")]
    pub sampler_arg: Option<String>,

    /// Export query strings in url.query / url.full (secrets still redacted).
    #[arg(long)]
    pub capture_query: bool,

    /// Aggregate no metrics at all (no RED metrics, no service graph, no
    /// Prometheus endpoint), whatever OTEL_METRICS_EXPORTER says.
    #[arg(long)]
    pub no_metrics: bool,

    /// Serve metrics for Prometheus on this port (path /metrics): RED
    /// metrics, the service graph, and the agent's own counters. Default:
    /// off, unless OTEL_METRICS_EXPORTER names prometheus (then
    /// OTEL_EXPORTER_PROMETHEUS_PORT, else 9464).
    #[arg(long, value_name = "PORT")]
    pub prometheus_port: Option<u16>,

    /// Address the Prometheus endpoint listens on. Default:
    /// OTEL_EXPORTER_PROMETHEUS_HOST, else localhost.
    #[arg(long, value_name = "ADDRESS")]
    pub prometheus_address: Option<String>,

    /// OTLP metrics endpoint. Default: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    /// else --otlp-endpoint (for http/protobuf with /v1/metrics), else
    /// OTEL_EXPORTER_OTLP_ENDPOINT, else localhost's 4317 or 4318.
    #[arg(long, value_name = "URL")]
    pub otlp_metrics_endpoint: Option<String>,

    /// Metric series (distinct instrument and attribute sets) per process;
    /// beyond this, new ones fold into one overflow series per instrument
    /// (`otel.metric.overflow`), and every fold is counted.
    #[arg(long, value_name = "N", default_value_t = crate::metrics::store::DEFAULT_CARDINALITY_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub metrics_cardinality_limit: usize,

    /// Seconds between counter summaries on stderr (0: only at exit).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub stats_interval: u64,

    /// Host name reported as host.name (default: the kernel's hostname).
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,

    /// Stop (exit code 1) when an optional part fails to load, instead of
    /// turning off its feature with a warning.
    #[arg(long)]
    pub require_all: bool,

    /// Treat this kernel program as refused by the kernel (tests of how the
    /// agent starts without it). Repeatable.
    #[arg(long = "fail-program", value_name = "PROGRAM", hide = true)]
    pub fail_programs: Vec<String>,

    /// Root of the /proc file system to read process details from.
    #[arg(long, value_name = "DIR", default_value = "/proc", hide = true)]
    pub proc_root: PathBuf,

    /// A tool of the project's own build instead of the agent.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools the project's build runs through the release binary (xtask cannot
/// link the tracer crate: its build script needs what xtask installs).
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print the Go struct offsets table (JSON) read from the DWARF of
    /// these Go binaries, one per Go release (`cargo xtask go-offsets`).
    #[command(hide = true)]
    GoOffsets {
        #[arg(required = true, value_name = "BINARY")]
        binaries: Vec<PathBuf>,
    },
    /// Load every kernel program (none attached) and print the instructions
    /// the verifier processed for each and its load time; exit 1 when one
    /// is refused or over the budget (`cargo xtask verifier-report`).
    #[command(hide = true)]
    VerifierReport {
        /// Verified instructions allowed per program.
        #[arg(long, value_name = "INSNS")]
        budget: Option<u32>,
    },
    /// Attach programs that return at once to every tracepoint the agent
    /// uses, until SIGINT or SIGTERM: what the hooks alone cost (`cargo
    /// xtask bench`'s floor phase).
    #[command(hide = true)]
    Floor,
}

impl Args {
    pub fn stats_interval(&self) -> Option<Duration> {
        (self.stats_interval > 0).then(|| Duration::from_secs(self.stats_interval))
    }

    /// Whether any selection flag narrows what is traced.
    pub fn selective(&self) -> bool {
        !self.pids.is_empty() || !self.exes.is_empty() || !self.ports.is_empty()
    }
}

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let mib: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(1..=1024).contains(&mib) || !mib.is_power_of_two() {
        return Err("must be a power of two between 1 and 1024".into());
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_flags() {
        let a = Args::try_parse_from([
            "tracer",
            "--otlp-endpoint",
            "http://h:4317",
            "--otlp-protocol",
            "http/protobuf",
            "--stdout",
            "--no-otlp",
            "--pid",
            "1",
            "--pid",
            "2",
            "--exe",
            "nginx",
            "--port",
            "8080",
            "--zipkin-endpoint",
            "http://z:9411/api/v2/spans",
        ])
        .unwrap();
        assert_eq!(
            a.zipkin_endpoint.as_deref(),
            Some("http://z:9411/api/v2/spans")
        );
        assert_eq!(a.otlp_protocol, Some(OtlpProtocol::HttpProtobuf));
        assert_eq!(a.pids, vec![1, 2]);
        assert_eq!(a.exes, vec!["nginx"]);
        assert_eq!(a.ports, vec![8080]);
        assert!(a.stdout && a.no_otlp && a.selective());
    }

    #[test]
    fn go_offsets_is_a_hidden_subcommand() {
        let a = Args::try_parse_from(["tracer", "go-offsets", "a", "b"]).unwrap();
        assert_eq!(
            a.command,
            Some(Command::GoOffsets {
                binaries: vec!["a".into(), "b".into()]
            })
        );
        assert_eq!(Args::try_parse_from(["tracer"]).unwrap().command, None);
        assert!(Args::try_parse_from(["tracer", "go-offsets"]).is_err());
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(!help.contains("go-offsets"), "{help}");
        assert!(!help.contains("verifier-report"), "{help}");
        assert!(!help.contains("fail-program"), "{help}");
    }

    #[test]
    fn verifier_report_takes_a_budget() {
        let a = Args::try_parse_from(["tracer", "verifier-report", "--budget", "5"]).unwrap();
        assert_eq!(a.command, Some(Command::VerifierReport { budget: Some(5) }));
        let a = Args::try_parse_from(["tracer", "--require-all", "--fail-program", "x"]).unwrap();
        assert!(a.require_all);
        assert_eq!(a.fail_programs, vec!["x"]);
    }

    #[test]
    fn rejects_bad_flags() {
        for bad in [
            &["tracer", "--otlp-protocol", "foo"][..],
            &["tracer", "--port", "0"],
            &["tracer", "--pid", "x"],
            &["tracer", "--ring-buffer-mib", "3"],
            &["tracer", "--bogus"],
            &["tracer", "--zipkin-endpoint"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
