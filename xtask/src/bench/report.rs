//! From raw phases to the markdown report: medians over rounds, the budget
//! with ✓/✗, where the kernel-side time goes, and every round's raw figures.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    phase::{Floor, Mode, Traced, Untraced},
    workload::Workload,
    wrk::{Load, Report},
};

/// The budget: throughput within 10% of the hooks' own floor (the agent's
/// tracepoints with empty programs, measured in the same rounds), p99 at
/// most twice untraced, the agent's CPU and the kernel-side time per
/// request.
const MIN_FLOOR_RATIO: f64 = 0.90;
const MAX_P99: f64 = 2.0;
const MAX_KERNEL_FLOOR_RATIO: f64 = 1.5;
const MAX_AGENT_US: f64 = 1.5;
const MAX_RSS_STEADY_MIB: f64 = 64.0;
const MAX_RSS_PEAK_MIB: f64 = 128.0;

pub struct Round {
    pub untraced: Untraced,
    /// The agent's tracepoints with empty programs.
    pub floor: Floor,
    pub traced: Vec<(Mode, Traced)>,
}

pub struct Overload {
    pub mode: Mode,
    pub untraced: Untraced,
    /// An error if the agent failed (died, did not exit cleanly).
    pub traced: Result<Traced, String>,
}

pub struct WorkloadResults {
    pub workload: Workload,
    pub rounds: Vec<Round>,
    pub overload: Option<Overload>,
}

/// What the report says about the run itself.
pub struct Header {
    pub date: String,
    pub machine: String,
    pub revision: String,
    pub command: String,
    pub rounds: u32,
    pub duration_s: u64,
}

/// The figures of one workload in one mode, over all rounds.
struct Figures {
    rps_untraced: f64,
    rps_floor: f64,
    rps_traced: f64,
    rps_ratio: f64,
    /// Traced / floor throughput, per round.
    floor_ratio: f64,
    /// The floor's kernel-side time per request, and traced / it.
    kernel_floor_us: f64,
    kernel_floor_ratio: f64,
    p50_ratio: f64,
    p99_ratio: f64,
    agent_us: f64,
    kernel_us: f64,
    probe_hits: f64,
    /// Go client calls per request (the workload's).
    client_calls: u64,
    /// Uprobe hits a request should cost (`Workload::probe_hits`).
    expected_hits: u64,
    /// Of which OpenSSL's: the server's and wrk's (`Workload::tls_hits`).
    tls_hits: (u64, u64),
    /// Probe hits are exactly one per client call, one per request of a
    /// Go gRPC middle tier, and a TLS request's OpenSSL calls (none on
    /// other server paths), give or take the requests in flight when the
    /// load stops and TLS connections' opening and closing.
    probes_ok: bool,
    rss_steady_mib: f64,
    rss_peak_mib: f64,
    spans_created: u64,
    spans_expected: u64,
    /// Spans may legitimately differ by those in flight when wrk stops.
    spans_tolerance: u64,
    spans_exported: Option<u64>,
    /// OTLP requests the sink received.
    export_requests: u64,
    drops: BTreeMap<String, u64>,
    wrk_errors: u64,
}

impl Figures {
    fn new(rounds: &[Round], workload: Workload, mode: Mode, load: Load) -> Option<Self> {
        let pairs: Vec<(&Report, &Traced)> = rounds
            .iter()
            .filter_map(|round| {
                let traced = round.traced.iter().find(|(m, _)| *m == mode)?;
                Some((&round.untraced.wrk, &traced.1))
            })
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let per_round = |f: &dyn Fn(&Report, &Traced) -> f64| {
            median(pairs.iter().map(|(u, t)| f(u, t)).collect())
        };
        let floors: Vec<(&Floor, &Traced)> = rounds
            .iter()
            .filter_map(|round| {
                let traced = round.traced.iter().find(|(m, _)| *m == mode)?;
                Some((&round.floor, &traced.1))
            })
            .collect();
        let per_floor = |f: &dyn Fn(&Floor, &Traced) -> f64| {
            median(floors.iter().map(|(fl, t)| f(fl, t)).collect())
        };
        let floor_kernel_us = |fl: &Floor| {
            per_request_us(
                fl.programs.iter().map(|p| p.run_time_ns).sum(),
                fl.wrk.requests,
            )
        };
        let mut figures = Self {
            rps_untraced: per_round(&|u, _| u.requests_per_sec),
            rps_floor: per_floor(&|fl, _| fl.wrk.requests_per_sec),
            rps_traced: per_round(&|_, t| t.wrk.requests_per_sec),
            rps_ratio: per_round(&|u, t| t.wrk.requests_per_sec / u.requests_per_sec),
            floor_ratio: per_floor(&|fl, t| t.wrk.requests_per_sec / fl.wrk.requests_per_sec),
            kernel_floor_us: per_floor(&|fl, _| floor_kernel_us(fl)),
            kernel_floor_ratio: per_floor(&|fl, t| kernel_us_per_request(t) / floor_kernel_us(fl)),
            p50_ratio: per_round(&|u, t| t.wrk.p50_us / u.p50_us),
            p99_ratio: per_round(&|u, t| t.wrk.p99_us / u.p99_us),
            agent_us: per_round(&|_, t| agent_us_per_request(t)),
            kernel_us: per_round(&|_, t| kernel_us_per_request(t)),
            probe_hits: 0.0,
            client_calls: workload.client_calls(),
            expected_hits: workload.probe_hits(),
            tls_hits: workload.tls_hits(),
            probes_ok: false,
            rss_steady_mib: per_round(&|_, t| mib(t.memory.rss_kib)),
            rss_peak_mib: 0.0,
            spans_created: 0,
            spans_expected: 0,
            spans_tolerance: 0,
            spans_exported: mode.exports().then_some(0),
            export_requests: 0,
            drops: BTreeMap::new(),
            wrk_errors: 0,
        };
        let mut measured_requests = 0;
        let mut probe_hits = 0;
        for (untraced, traced) in &pairs {
            figures.add_counts(traced, workload, mode, load);
            figures.wrk_errors += untraced.errors;
            measured_requests += traced.wrk.requests;
            probe_hits += probe_runs(traced);
        }
        figures.probe_hits = probe_hits as f64 / measured_requests.max(1) as f64;
        let hits = figures.expected_hits;
        // A request in flight when the load stops has made its calls, but
        // the load generator does not count it: at most one per connection
        // per phase; so do a TLS connection's opening and closing.
        let in_flight =
            (hits + workload.connection_hits()) * u64::from(load.connections) * pairs.len() as u64;
        figures.probes_ok = probe_hits.abs_diff(hits * measured_requests) <= in_flight;
        Some(figures)
    }

    fn overload(traced: &Traced, workload: Workload, mode: Mode, load: Load) -> Self {
        let mut figures = Self {
            rps_untraced: 0.0,
            rps_floor: 0.0,
            rps_traced: traced.wrk.requests_per_sec,
            rps_ratio: 0.0,
            floor_ratio: 0.0,
            kernel_floor_us: 0.0,
            kernel_floor_ratio: 0.0,
            p50_ratio: 0.0,
            p99_ratio: 0.0,
            agent_us: agent_us_per_request(traced),
            kernel_us: kernel_us_per_request(traced),
            probe_hits: probe_runs(traced) as f64 / traced.wrk.requests.max(1) as f64,
            client_calls: workload.client_calls(),
            expected_hits: workload.probe_hits(),
            tls_hits: workload.tls_hits(),
            // The overload table shows no probe hits.
            probes_ok: true,
            rss_steady_mib: mib(traced.memory.rss_kib),
            rss_peak_mib: 0.0,
            spans_created: 0,
            spans_expected: 0,
            spans_tolerance: 0,
            spans_exported: mode.exports().then_some(0),
            export_requests: 0,
            drops: BTreeMap::new(),
            wrk_errors: 0,
        };
        figures.add_counts(traced, workload, mode, load);
        figures
    }

    fn add_counts(&mut self, traced: &Traced, workload: Workload, mode: Mode, load: Load) {
        let counter = |name: &str| traced.stats.get(name).copied().unwrap_or(0);
        self.rss_peak_mib = self.rss_peak_mib.max(mib(traced.memory.hwm_kib));
        self.spans_created += counter("spans_created");
        let per_request = mode.spans_per_request(workload);
        self.spans_expected += per_request * traced.requests_seen;
        // Two wrk runs (warm-up, measured) per phase.
        self.spans_tolerance += per_request * 2 * u64::from(load.connections);
        if let Some(exported) = &mut self.spans_exported {
            *exported += counter("spans_exported");
        }
        self.export_requests += traced.export_requests;
        for (name, value) in &traced.stats {
            if name.starts_with("drop_") && *value > 0 {
                *self.drops.entry(name.clone()).or_default() += value;
            }
        }
        self.wrk_errors += traced.wrk.errors;
    }

    fn spans_ok(&self) -> bool {
        self.spans_created.abs_diff(self.spans_expected) <= self.spans_tolerance
            && self.spans_exported.is_none_or(|e| e == self.spans_created)
    }

    fn spans_text(&self) -> String {
        let mut text = format!(
            "{} / {} ({:.4})",
            self.spans_created,
            self.spans_expected,
            self.spans_created as f64 / self.spans_expected.max(1) as f64
        );
        if let Some(exported) = self.spans_exported {
            let _ = write!(
                text,
                ", {exported} exported in {} requests",
                self.export_requests
            );
        }
        text
    }

    /// Per request; per client call too where the workload makes any.
    fn probes_text(&self) -> String {
        let (server_tls, client_tls) = self.tls_hits;
        if server_tls + client_tls > 0 {
            return format!(
                "{:.2} (expected {}: OpenSSL calls, {server_tls} server + {client_tls} wrk)",
                self.probe_hits, self.expected_hits
            );
        }
        match self.client_calls {
            _ if self.expected_hits > self.client_calls => format!(
                "{:.2} (expected {}: {} server handler + {} client call)",
                self.probe_hits,
                self.expected_hits,
                self.expected_hits - self.client_calls,
                self.client_calls
            ),
            0 => format!("{:.2}", self.probe_hits),
            calls => format!(
                "{:.2} ({:.2}/client call)",
                self.probe_hits,
                self.probe_hits / calls as f64
            ),
        }
    }

    fn drops_text(&self) -> String {
        if self.drops.is_empty() {
            return "0".to_owned();
        }
        let parts: Vec<String> = self.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join(" ")
    }
}

fn agent_us_per_request(traced: &Traced) -> f64 {
    traced.agent_cpu.total_ms() * 1000.0 / traced.wrk.requests.max(1) as f64
}

fn kernel_us_per_request(traced: &Traced) -> f64 {
    let ns: u64 = traced.programs.iter().map(|p| p.run_time_ns).sum();
    per_request_us(ns, traced.wrk.requests)
}

fn per_request_us(ns: u64, requests: u64) -> f64 {
    ns as f64 / 1000.0 / requests.max(1) as f64
}

fn probe_runs(traced: &Traced) -> u64 {
    traced
        .programs
        .iter()
        .filter(|p| p.is_probe())
        .map(|p| p.run_count)
        .sum()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

/// The whole report, in markdown.
pub fn markdown(header: &Header, results: &[WorkloadResults], modes: &[Mode]) -> String {
    let mut out = String::new();
    let load = Load::NORMAL;
    let _ = writeln!(out, "## Overhead benchmark ({})\n", header.date);
    let _ = writeln!(
        out,
        "{}; agent at {}; `{}`: {} rounds of {} s per phase, wrk -t{} -c{} keep-alive on \
         127.0.0.1, medians of per-round figures.\n",
        header.machine,
        header.revision,
        header.command,
        header.rounds,
        header.duration_s,
        load.threads,
        load.connections
    );

    let _ = writeln!(
        out,
        "| workload | agent traces | req/s untraced | req/s floor | req/s traced | throughput \
         | traced / floor | p50 | p99 | agent CPU µs/req | kernel µs/req (floor) \
         | uprobe hits/req | agent RSS MiB steady / peak | spans / expected | drops |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
         | --- | --- |"
    );
    for result in results {
        for &mode in modes {
            let Some(f) = Figures::new(&result.rounds, result.workload, mode, load) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.3}× | {:.3}× | {:.2}× | {:.2}× | {:.2} \
                 | {:.2} ({:.2}, {:.2}×) | {} | {:.1} / {:.1} | {} | {} |",
                result.workload.label(),
                mode.label(),
                f.rps_untraced,
                f.rps_floor,
                f.rps_traced,
                f.rps_ratio,
                f.floor_ratio,
                f.p50_ratio,
                f.p99_ratio,
                f.agent_us,
                f.kernel_us,
                f.kernel_floor_us,
                f.kernel_floor_ratio,
                f.probes_text(),
                f.rss_steady_mib,
                f.rss_peak_mib,
                f.spans_text(),
                f.drops_text(),
            );
        }
    }

    if let Some(&primary) = modes.first() {
        budget(&mut out, results, primary, load);
        kernel_breakdown(&mut out, results, primary);
    }
    overload(&mut out, results);
    rounds(&mut out, results);
    method(&mut out, modes);
    out
}

fn budget(out: &mut String, results: &[WorkloadResults], mode: Mode, load: Load) {
    let figures: Vec<(Workload, Figures)> = results
        .iter()
        .filter_map(|r| Some((r.workload, Figures::new(&r.rounds, r.workload, mode, load)?)))
        .collect();
    if figures.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Budget (agent traces: {})\n", mode.label());
    let _ = write!(out, "| budget |");
    for (workload, _) in &figures {
        let _ = write!(out, " {} |", workload.label());
    }
    let _ = write!(out, "\n| --- |");
    for _ in &figures {
        let _ = write!(out, " --- |");
    }
    out.push('\n');
    type Line<'a> = (&'a str, fn(&Figures) -> (String, bool));
    let spans = format!("every request its spans ({})", mode.span_kinds());
    let lines: [Line<'_>; 8] = [
        ("throughput ≥ 0.90× the floor", |f| {
            (
                format!("{:.3}× ({:.3}× untraced)", f.floor_ratio, f.rps_ratio),
                f.floor_ratio >= MIN_FLOOR_RATIO,
            )
        }),
        ("p99 latency ≤ 2× untraced", |f| {
            (format!("{:.2}×", f.p99_ratio), f.p99_ratio <= MAX_P99)
        }),
        ("kernel-side time ≤ 1.5× the floor's", |f| {
            (
                format!(
                    "{:.2} µs ({:.2}× {:.2} µs)",
                    f.kernel_us, f.kernel_floor_ratio, f.kernel_floor_us
                ),
                f.kernel_floor_ratio <= MAX_KERNEL_FLOOR_RATIO,
            )
        }),
        ("agent CPU ≤ 1.5 µs/request", |f| {
            (format!("{:.2} µs", f.agent_us), f.agent_us <= MAX_AGENT_US)
        }),
        ("agent RSS ≤ 64 MiB steady", |f| {
            (
                format!("{:.1} MiB", f.rss_steady_mib),
                f.rss_steady_mib <= MAX_RSS_STEADY_MIB,
            )
        }),
        ("agent RSS ≤ 128 MiB peak", |f| {
            (
                format!("{:.1} MiB", f.rss_peak_mib),
                f.rss_peak_mib <= MAX_RSS_PEAK_MIB,
            )
        }),
        (&spans, |f| (f.spans_text(), f.spans_ok())),
        ("drops = 0", |f| (f.drops_text(), f.drops.is_empty())),
    ];
    for (name, check) in lines {
        let _ = write!(out, "| {name} |");
        for (_, f) in &figures {
            let (value, ok) = check(f);
            let _ = write!(out, " {value} {} |", mark(ok));
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "| uprobe hits: 0/request on leaf server paths, 1 per Go client call, 1 per request of a Go gRPC middle tier, 8 per TLS request (OpenSSL calls: nginx's 5, wrk's 3) |"
    );
    for (_, f) in &figures {
        let _ = write!(out, " {} {} |", f.probes_text(), mark(f.probes_ok));
    }
    out.push('\n');
}

fn kernel_breakdown(out: &mut String, results: &[WorkloadResults], mode: Mode) {
    let _ = writeln!(
        out,
        "\n### Where the kernel-side time goes (agent traces: {}, all rounds)\n",
        mode.label()
    );
    let _ = writeln!(
        out,
        "| workload | program | type | attached to | runs/req | ns/run | ns/req | share |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |");
    for result in results {
        // Program ids change with every agent start: group by name and hook.
        let mut programs: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
        let mut requests = 0;
        for round in &result.rounds {
            for (_, traced) in round.traced.iter().filter(|(m, _)| *m == mode) {
                requests += traced.wrk.requests;
                for p in &traced.programs {
                    let key = (p.name.clone(), p.kind.clone(), p.attached_to.join(" "));
                    let entry = programs.entry(key).or_default();
                    entry.0 += p.run_time_ns;
                    entry.1 += p.run_count;
                }
            }
        }
        let total: u64 = programs.values().map(|(ns, _)| ns).sum();
        let mut rows: Vec<_> = programs.into_iter().filter(|(_, (_, n))| *n > 0).collect();
        rows.sort_by_key(|(_, (ns, _))| std::cmp::Reverse(*ns));
        let requests = requests.max(1) as f64;
        for ((name, kind, attached), (ns, count)) in rows {
            let _ = writeln!(
                out,
                "| {} | {name} | {kind} | {} | {:.2} | {:.0} | {:.0} | {:.0}% |",
                result.workload.label(),
                if attached.is_empty() { "-" } else { &attached },
                count as f64 / requests,
                ns as f64 / count.max(1) as f64,
                ns as f64 / requests,
                ns as f64 * 100.0 / total.max(1) as f64,
            );
        }
    }
}

fn overload(out: &mut String, results: &[WorkloadResults]) {
    let load = Load::OVERLOAD;
    let with: Vec<(&WorkloadResults, &Overload)> = results
        .iter()
        .filter_map(|r| Some((r, r.overload.as_ref()?)))
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Overload (wrk -t{} -c{}, one phase each)\n",
        load.threads, load.connections
    );
    let _ = writeln!(
        out,
        "| workload | agent traces | req/s untraced | req/s traced | throughput | p99 | agent \
         | agent CPU µs/req | agent RSS MiB steady / peak | spans / expected | drops |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | --- |"
    );
    for (result, o) in with {
        match &o.traced {
            Ok(traced) => {
                let f = Figures::overload(traced, result.workload, o.mode, load);
                let untraced = &o.untraced.wrk;
                let ratio = traced.wrk.requests_per_sec / untraced.requests_per_sec;
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.0} | {:.3}× | {:.2}× | kept running, exit 0 ✓ \
                     | {:.2} | {:.1} / {:.1} {} | {} | {} |",
                    result.workload.label(),
                    o.mode.label(),
                    untraced.requests_per_sec,
                    f.rps_traced,
                    ratio,
                    traced.wrk.p99_us / untraced.p99_us,
                    f.agent_us,
                    f.rss_steady_mib,
                    f.rss_peak_mib,
                    mark(f.rss_peak_mib <= MAX_RSS_PEAK_MIB),
                    f.spans_text(),
                    f.drops_text(),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | - | - | - | FAILED ✗: {} | - | - | - | - |",
                    result.workload.label(),
                    o.mode.label(),
                    o.untraced.wrk.requests_per_sec,
                    e.replace(['\n', '|'], " ")
                );
            }
        }
    }
}

fn rounds(out: &mut String, results: &[WorkloadResults]) {
    let _ = writeln!(out, "\n### Every phase\n");
    let _ = writeln!(
        out,
        "| workload | round | agent traces | req/s | p50 µs | p99 µs | requests | wrk errors \
         | agent CPU µs/req | agent system CPU | agent context switches/req | kernel µs/req \
         | others' eBPF µs/req |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for result in results {
        for (i, round) in result.rounds.iter().enumerate() {
            let u = &round.untraced.wrk;
            let _ = writeln!(
                out,
                "| {} | {} | (untraced) | {:.0} | {:.0} | {:.0} | {} | {} | - | - | - | - | {:.2} |",
                result.workload.label(),
                i + 1,
                u.requests_per_sec,
                u.p50_us,
                u.p99_us,
                u.requests,
                u.errors,
                per_request_us(round.untraced.other_bpf_ns, u.requests),
            );
            for (mode, t) in &round.traced {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {:.2} | {:.0}% | {:.2} | {:.2} \
                 | {:.2} |",
                    result.workload.label(),
                    i + 1,
                    mode.label(),
                    t.wrk.requests_per_sec,
                    t.wrk.p50_us,
                    t.wrk.p99_us,
                    t.wrk.requests,
                    t.wrk.errors,
                    agent_us_per_request(t),
                    t.agent_cpu.system_ms * 100.0 / t.agent_cpu.total_ms().max(f64::MIN_POSITIVE),
                    t.agent_context_switches as f64 / t.wrk.requests.max(1) as f64,
                    kernel_us_per_request(t),
                    per_request_us(t.other_bpf_ns, t.wrk.requests),
                );
            }
        }
    }
}

fn method(out: &mut String, modes: &[Mode]) {
    out.push_str(
        "
### How the figures are computed

- Each round runs the untraced phase, the floor phase, then one traced phase per mode,
  against the same server; every phase is a 1 s warm-up, then the measured run. The agent is
  started fresh for each traced phase (`--stats-interval 0`) and stopped with SIGINT after
  it.
- The floor: `tracer floor`, a separate kernel object with a program that returns at once
  on every tracepoint the agent attaches (every syscall and sched hook, so the same runs
  per request), and nothing else: no uprobe, no sk_msg. `traced / floor` is the traced
  throughput over the floor's in the same round (median over rounds); the kernel column
  gives the floor's program time per request in parentheses, and the traced one's ratio
  to it.
- Modes (the \"agent traces\" column); the first is checked against the budget (and used
  for `--overload`):
",
    );
    for &mode in modes {
        let _ = writeln!(out, "  - `{}`: {}", mode.label(), mode_text(mode));
    }
    out.push_str(
        "\
- Throughput, p50 and p99: wrk's `Requests/sec` and `--latency` percentiles; the ratio is
  traced / untraced within a round, and the table shows the median over rounds.
- Agent CPU: utime + stime of the agent (all threads, /proc/PID/stat) from the end of the
  warm-up until the agent is idle again after the measured run (so work it queued is
  counted), divided by the requests of the measured run. µs per request = ms per 1,000.
  The share of it that is system time, and the context switches of all its threads
  (/proc/PID/task/*/status) per request, are in the last table.
- Kernel-side time: run_time_ns of every program the agent holds (found through
  /proc/PID/fdinfo, read with BPF_ENABLE_STATS on) over the same interval, summed, divided
  by the requests. It includes runs triggered by every other process on the machine.
- Uprobe hits: run counts of the agent's kprobe-type programs (uprobes are that type)
  attached to a hook (not those only tail-called: the TLS uprobes' `tls_*` twins of the
  syscall chain, whose runs the kernel counts for their caller) per request; expected 0 on
  server paths and exactly 1 per Go client call (the fan-out workload's one call per
  request, shown per client call too), give or take the calls of requests in flight when
  wrk stops. nginx https: 8, the OpenSSL uprobes on the system's libssl, which trap for
  every process that maps it, so wrk's calls count in every mode, selected or not (its
  program returns at once): nginx's SSL_read entry and return for the request and again
  for the SSL_read after it that returns WANT_READ, and its SSL_write; wrk's SSL_write,
  and its SSL_read's entry and return. Any other process's OpenSSL calls on the machine
  count too. A TLS connection may add 4 (nginx's SSL_read before the first request and
  the one that reads the close), allowed per connection per wrk run.
- RSS: VmRSS at the end of the measured run (steady) and VmHWM (peak) from
  /proc/PID/status; peak is the maximum over rounds.
- Spans: the agent's final `spans_created` against N × the requests wrk completed while the
  agent ran (warm-up included), N being the spans a request makes in that mode: with
  `--pid server`, 1 (the server's SERVER span; wrk is not traced), 3 for the fan-out (front
  SERVER, front CLIENT, leaf SERVER); one more otherwise (wrk's CLIENT span; over https,
  made from wrk's own OpenSSL calls as nginx's SERVER span is from nginx's). A few per
  connection may be in flight when wrk stops, so ✓ allows N × connections per wrk run.
  With export, `spans_exported` must equal `spans_created`.
- Others' eBPF: run time of every loaded eBPF program that is not this agent's (other
  tracers running on the machine) per request: non-zero means the phase was disturbed.
- Drops: every `drop_*` counter of the agent's final stats line, summed over the rounds.
",
    );
}

/// What the agent selects and where its spans go in `mode`.
fn mode_text(mode: Mode) -> &'static str {
    match mode {
        Mode::Server => {
            "`--pid <server pid>`: the Go server's process, or nginx's master (the agent also \
             selects its already-running descendants: the worker). wrk, the load generator, is \
             not traced; the fan-out: `--pid` of the front and of the leaf. Spans are exported \
             over OTLP/HTTP (protobuf) to a local sink that answers 200 and discards them."
        }
        Mode::ServerNoMetrics => {
            "as `server`, with `--no-metrics`: no RED metrics or service graph are aggregated. \
             The agent CPU per request of `server` minus this one is what metrics cost."
        }
        Mode::CaptureOnly => {
            "as `server`, with `--fail-program classify`: the kernel's trace context is off (no \
             incoming header read in the kernel, no parent by thread or goroutine, no stitching, \
             no HTTP/2), the bytes are still captured and the spans still built and exported. \
             What capturing alone costs on these hooks, the least any payload-capturing design \
             pays."
        }
        Mode::Export => {
            "`--port <server port>`: the server's and wrk's ends of every connection (the \
             fan-out: `--port` of the front and of the leaf, so its client calls too). Spans \
             are exported to the local sink as above."
        }
        Mode::NoExport => "`--port <server port>`, `--no-otlp`: the same, without export.",
        Mode::All => "no selection (every process), `--no-otlp`.",
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
