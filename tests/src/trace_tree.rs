//! Checking trace trees: for each request (told apart by its unique
//! `url.path`), the spans of every hop it crossed, each the child of the hop
//! before it, all in one trace; and, over many requests, how many spans are
//! parented correctly, wrongly, or across traces.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use crate::otlp_receiver::{ReceivedSpan, dump};

/// One hop of a request's path: the spans of `kind` from any of `pids`.
#[derive(Clone, Debug)]
pub struct Hop {
    pub name: String,
    pub pids: Vec<u32>,
    pub kind: &'static str,
}

impl Hop {
    pub fn new(name: &str, pids: &[u32], kind: &'static str) -> Hop {
        Hop {
            name: name.to_owned(),
            pids: pids.to_vec(),
            kind,
        }
    }

    pub fn matches(&self, span: &ReceivedSpan) -> bool {
        span.kind == self.kind && span.pid().is_some_and(|p| self.pids.contains(&p))
    }
}

/// The spans of `hop` for the request with `url.path` == `path`.
pub fn spans_of<'a>(spans: &'a [ReceivedSpan], hop: &Hop, path: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| hop.matches(s) && s.attr_str("url.path") == Some(path))
        .collect()
}

/// What [`check_chains`] counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    pub requests: usize,
    /// Distinct trace ids among the spans found.
    pub traces: usize,
    /// Spans found (one per hop per request when nothing is missing).
    pub spans: usize,
    /// Spans whose parent is exactly the span of the hop before (or, for the
    /// first hop, the expected root parent), in the same trace.
    pub correctly_parented: usize,
    pub wrongly_parented: usize,
    /// Spans whose parent is not a span of their own trace among everything
    /// received (in another trace, or missing). The first hop counts only
    /// when it was expected to be a root and has a parent.
    pub cross_linked: usize,
    /// Requests whose spans are not all in one trace, or that share a trace
    /// with another request.
    pub traces_not_separate: usize,
    /// Hops with no span, or with more than one, summed over requests.
    pub missing_spans: usize,
    pub extra_spans: usize,
}

impl fmt::Display for TreeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests={} traces={} spans={} correctly_parented={} wrongly_parented={} \
             cross_linked={} traces_not_separate={} missing_spans={} extra_spans={}",
            self.requests,
            self.traces,
            self.spans,
            self.correctly_parented,
            self.wrongly_parented,
            self.cross_linked,
            self.traces_not_separate,
            self.missing_spans,
            self.extra_spans
        )
    }
}

/// The outcome of [`check_chains`]: the counts, each request's spans in hop
/// order (`None` for a missing hop), and a line per problem.
pub struct ChainCheck {
    pub stats: TreeStats,
    pub chains: BTreeMap<String, Vec<Option<ReceivedSpan>>>,
    pub problems: Vec<String>,
}

impl ChainCheck {
    /// Panics with every problem (and the spans) unless there is none.
    pub fn assert_ok(&self, all: &[ReceivedSpan]) {
        if self.problems.is_empty() {
            return;
        }
        let shown: Vec<&String> = self.problems.iter().take(40).collect();
        panic!(
            "{} problem(s) in the trace trees ({}):\n  {}\nall spans:\n{}",
            self.problems.len(),
            self.stats,
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            dump(all)
        );
    }

    /// The span of hop `index` for `path` (panics if missing).
    pub fn span(&self, path: &str, index: usize) -> &ReceivedSpan {
        self.chains
            .get(path)
            .and_then(|c| c.get(index))
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("no span of hop {index} for {path}"))
    }
}

/// Checks that each request of `paths` crossed `hops` in order: one span per
/// hop, the first one's parent `root_parent` (None: a root), every other the
/// child of the previous hop's span, all in one trace of their own.
pub fn check_chains(
    spans: &[ReceivedSpan],
    hops: &[Hop],
    paths: &[String],
    root_parent: Option<&str>,
) -> ChainCheck {
    let mut stats = TreeStats {
        requests: paths.len(),
        ..TreeStats::default()
    };
    let mut problems = Vec::new();
    let mut chains = BTreeMap::new();
    let trace_of_span: BTreeMap<&str, &str> = spans
        .iter()
        .map(|s| (s.span_id.as_str(), s.trace_id.as_str()))
        .collect();
    let mut traces_by_request: Vec<BTreeSet<String>> = Vec::new();
    for path in paths {
        let mut chain: Vec<Option<ReceivedSpan>> = Vec::new();
        for hop in hops {
            let found = spans_of(spans, hop, path);
            match found.len() {
                0 => {
                    stats.missing_spans += 1;
                    problems.push(format!("{path}: no {} {} span", hop.name, hop.kind));
                }
                1 => {}
                n => {
                    stats.extra_spans += n - 1;
                    problems.push(format!(
                        "{path}: {n} {} {} spans:\n{}",
                        hop.name,
                        hop.kind,
                        found
                            .iter()
                            .map(|s| format!("    {s}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ));
                }
            }
            chain.push(found.first().map(|s| (*s).clone()));
        }
        let mut traces = BTreeSet::new();
        for (i, span) in chain.iter().enumerate() {
            let Some(span) = span else { continue };
            stats.spans += 1;
            traces.insert(span.trace_id.clone());
            let (want_parent, want_trace) = if i == 0 {
                (root_parent.map(str::to_owned), None)
            } else {
                match &chain[i - 1] {
                    Some(p) => (Some(p.span_id.clone()), Some(p.trace_id.clone())),
                    None => {
                        // The parent hop is missing: this one cannot be right.
                        stats.wrongly_parented += 1;
                        continue;
                    }
                }
            };
            let parent_ok = span.parent_span_id == want_parent
                && want_trace.as_ref().is_none_or(|t| *t == span.trace_id);
            if parent_ok {
                stats.correctly_parented += 1;
            } else {
                stats.wrongly_parented += 1;
                problems.push(format!(
                    "{path}: {} {} has parent {} in trace {}, expected {} in trace {}",
                    hops[i].name,
                    hops[i].kind,
                    span.parent_span_id.as_deref().unwrap_or("-"),
                    span.trace_id,
                    want_parent.as_deref().unwrap_or("- (a root)"),
                    want_trace.as_deref().unwrap_or("(any)")
                ));
            }
            let cross = match &span.parent_span_id {
                None => false,
                Some(_) if i == 0 && root_parent.is_some() => false,
                Some(p) => trace_of_span.get(p.as_str()) != Some(&span.trace_id.as_str()),
            };
            if cross {
                stats.cross_linked += 1;
                problems.push(format!(
                    "{path}: {} {} is cross-linked: its parent {} is not a span of trace {}",
                    hops[i].name,
                    hops[i].kind,
                    span.parent_span_id.as_deref().unwrap_or("-"),
                    span.trace_id
                ));
            }
        }
        if traces.len() > 1 {
            problems.push(format!(
                "{path}: spans in {} traces: {traces:?}",
                traces.len()
            ));
        }
        traces_by_request.push(traces);
        chains.insert(path.clone(), chain);
    }
    let mut requests_per_trace: BTreeMap<&String, usize> = BTreeMap::new();
    for traces in &traces_by_request {
        for t in traces {
            *requests_per_trace.entry(t).or_default() += 1;
        }
    }
    stats.traces = requests_per_trace.len();
    for (path, traces) in paths.iter().zip(&traces_by_request) {
        let shared = traces.iter().any(|t| requests_per_trace[t] > 1);
        if traces.len() != 1 || shared {
            stats.traces_not_separate += 1;
            if shared {
                problems.push(format!("{path}: shares a trace with another request"));
            }
        }
    }
    ChainCheck {
        stats,
        chains,
        problems,
    }
}
