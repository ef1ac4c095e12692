//! The end of every test: wait for the spans it expects, stop the agent
//! (which flushes), and hand back everything that arrived plus how the agent
//! exited, so exact counts are checked on the final set.
use std::time::{Duration, Instant};

use crate::{
    agent::{Agent, AgentExit},
    otlp_receiver::{ReceivedSpan, Receiver},
    spans,
};

/// How long spans may take to arrive after the traffic that makes them.
pub const SPAN_TIMEOUT: Duration = Duration::from_secs(30);

/// Spans of one process and kind that a test waits for.
#[derive(Clone, Copy, Debug)]
pub struct Want {
    pub pid: u32,
    pub kind: &'static str,
    pub count: usize,
}

pub fn server(pid: u32, count: usize) -> Want {
    Want {
        pid,
        kind: "SERVER",
        count,
    }
}

pub fn client(pid: u32, count: usize) -> Want {
    Want {
        pid,
        kind: "CLIENT",
        count,
    }
}

/// Everything received once the agent has stopped.
pub struct Outcome {
    pub spans: Vec<ReceivedSpan>,
    pub exit: AgentExit,
}

impl Outcome {
    /// Exactly `want.count` spans of that process and kind, sorted by start.
    pub fn exact(&self, want: Want) -> Vec<ReceivedSpan> {
        spans::assert_count(&self.spans, want.pid, want.kind, want.count, "final spans");
        let mut found = spans::of(&self.spans, want.pid, want.kind);
        found.sort_by_key(|s| s.start_ns);
        found
    }

    /// The only span of that process and kind.
    pub fn one(&self, pid: u32, kind: &'static str) -> ReceivedSpan {
        self.exact(Want {
            pid,
            kind,
            count: 1,
        })
        .remove(0)
    }

    /// Panics unless every span came from one of `pids`.
    pub fn only_from(&self, pids: &[u32]) {
        let others = spans::others(&self.spans, pids);
        assert!(
            others.is_empty(),
            "spans from processes other than {pids:?}:\n{}",
            crate::otlp_receiver::dump(&others)
        );
    }

    /// Panics unless the agent exited 0 with a summary and no drops.
    pub fn assert_clean(&self) {
        if let Err(e) = self.exit.check_clean() {
            panic!("{e:#}");
        }
    }
}

/// Waits until every `want` has at least its count of spans, then stops
/// the agent. A timeout still stops the agent first, so the failure shows
/// what it printed.
pub fn finish(receiver: &Receiver, agent: Agent, wants: &[Want]) -> Outcome {
    finish_when(receiver, agent, |spans| {
        wants
            .iter()
            .all(|w| spans::count(spans, w.pid, w.kind) >= w.count)
    })
}

/// Like [`finish`] with any condition on the spans.
pub fn finish_when(
    receiver: &Receiver,
    agent: Agent,
    predicate: impl FnMut(&[ReceivedSpan]) -> bool,
) -> Outcome {
    let waited = receiver.wait_for(SPAN_TIMEOUT, predicate);
    let exit = match agent.stop() {
        Ok(exit) => exit,
        Err(e) => panic!("stopping the agent: {e:#}"),
    };
    if let Err(e) = waited {
        panic!(
            "{e:#}\nagent exit: {}\nagent stderr:\n{}",
            exit.status, exit.stderr
        );
    }
    Outcome {
        spans: receiver.spans(),
        exit,
    }
}

/// Waits until `predicate` holds, or until no span has arrived for `quiet`
/// (then the caller's checks say what is missing), and stops the agent.
pub fn finish_when_or_quiet(
    receiver: &Receiver,
    agent: Agent,
    mut predicate: impl FnMut(&[ReceivedSpan]) -> bool,
    quiet: Duration,
) -> Outcome {
    let mut last = (usize::MAX, Instant::now());
    finish_when(receiver, agent, move |spans| {
        if spans.len() != last.0 {
            last = (spans.len(), Instant::now());
        }
        predicate(spans) || last.1.elapsed() >= quiet
    })
}

/// Waits until `want` spans arrived (or none for 10 s) and stops the agent.
pub fn finish_at(receiver: &Receiver, agent: Agent, want: usize) -> Outcome {
    finish_when_or_quiet(
        receiver,
        agent,
        |spans| spans.len() >= want,
        Duration::from_secs(10),
    )
}
