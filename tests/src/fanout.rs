//! Checking fan-out trees: a front server span whose handler made several
//! client calls (from goroutines), each answered by a downstream server
//! span. Calls carry no unique path, so the check goes by parent ids: every
//! client span must be the child of a front server span of its own trace,
//! and every downstream server span the child of a front client span.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use crate::otlp_receiver::ReceivedSpan;

/// What [`check`] counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FanoutStats {
    /// Front server spans (incoming requests).
    pub requests: usize,
    /// Distinct traces among the front server spans.
    pub traces: usize,
    /// Every span looked at: front servers, their client calls, the
    /// downstream servers.
    pub spans: usize,
    /// Client and downstream spans whose parent is exactly right.
    pub correctly_parented: usize,
    /// Client and downstream spans with another parent (or none).
    pub wrongly_parented: usize,
    /// Spans whose parent is not a span of their own trace: another trace
    /// or no span at all.
    pub cross_linked: usize,
    /// Front requests without exactly `fan` client children, or client
    /// spans without exactly one downstream child.
    pub incomplete: usize,
}

impl fmt::Display for FanoutStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests={} traces={} spans={} correctly_parented={} wrongly_parented={} \
             cross_linked={} incomplete={}",
            self.requests,
            self.traces,
            self.spans,
            self.correctly_parented,
            self.wrongly_parented,
            self.cross_linked,
            self.incomplete
        )
    }
}

/// The spans of one fan-out setup.
pub struct Fanout<'a> {
    pub front_pid: u32,
    pub leaf_pid: u32,
    /// `url.path` of the incoming requests (e.g. `/fanout`).
    pub front_path: &'a str,
    /// `url.path` of the calls (e.g. `/leaf`), or for RPC spans (no
    /// `url.path`) their name (e.g. `grpc.health.v1.Health/Check`).
    pub call_path: &'a str,
    /// Calls per incoming request.
    pub fan: usize,
}

/// Counts and problems (one line each).
pub fn check(spans: &[ReceivedSpan], f: &Fanout) -> (FanoutStats, Vec<String>) {
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let is = |s: &ReceivedSpan, pid: u32, kind: &str, path: &str| {
        let called = match s.attr_str("url.path") {
            Some(p) => p == path,
            None => s.name == path,
        };
        s.pid() == Some(pid) && s.kind == kind && called
    };
    let fronts: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| is(s, f.front_pid, "SERVER", f.front_path))
        .collect();
    let calls: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| is(s, f.front_pid, "CLIENT", f.call_path))
        .collect();
    let leaves: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| is(s, f.leaf_pid, "SERVER", f.call_path))
        .collect();
    let mut stats = FanoutStats {
        requests: fronts.len(),
        traces: fronts
            .iter()
            .map(|s| s.trace_id.as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        spans: fronts.len() + calls.len() + leaves.len(),
        ..FanoutStats::default()
    };
    let mut problems = Vec::new();
    let mut children: BTreeMap<&str, usize> = BTreeMap::new();
    // Each call: the child of a front server span, in its trace.
    for (group, parent_pid, parent_kind, parent_path) in [
        (&calls, f.front_pid, "SERVER", f.front_path),
        (&leaves, f.front_pid, "CLIENT", f.call_path),
    ] {
        for span in group.iter() {
            let parent = span.parent_span_id.as_deref().and_then(|p| by_id.get(p));
            match parent {
                Some(p) if p.trace_id != span.trace_id => {
                    stats.wrongly_parented += 1;
                    stats.cross_linked += 1;
                    problems.push(format!("{span}: parent in another trace: {p}"));
                }
                Some(p) if is(p, parent_pid, parent_kind, parent_path) => {
                    stats.correctly_parented += 1;
                    *children.entry(p.span_id.as_str()).or_default() += 1;
                }
                Some(p) => {
                    stats.wrongly_parented += 1;
                    problems.push(format!("{span}: wrong parent {p}"));
                }
                None => {
                    stats.wrongly_parented += 1;
                    if span.parent_span_id.is_some() {
                        stats.cross_linked += 1;
                    }
                    problems.push(format!("{span}: parent not among the spans"));
                }
            }
        }
    }
    for front in &fronts {
        let n = children.get(front.span_id.as_str()).copied().unwrap_or(0);
        if n != f.fan {
            stats.incomplete += 1;
            problems.push(format!("{front}: {n} client children, expected {}", f.fan));
        }
    }
    for call in &calls {
        let n = children.get(call.span_id.as_str()).copied().unwrap_or(0);
        if n != 1 {
            stats.incomplete += 1;
            problems.push(format!("{call}: {n} downstream children, expected 1"));
        }
    }
    (stats, problems)
}

/// A failure message: how many problems, the first 30, and every span.
pub fn report(
    what: &str,
    stats: &dyn fmt::Display,
    problems: &[String],
    spans: &[ReceivedSpan],
) -> String {
    format!(
        "{what}: {} problem(s) ({stats}):\n  {}\nall spans:\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  "),
        crate::otlp_receiver::dump(spans)
    )
}
