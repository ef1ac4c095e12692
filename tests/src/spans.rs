//! Picking spans out of what the receiver got, and checking them with
//! messages that list every mismatch and the span itself.
use std::fmt::Write as _;

use crate::otlp_receiver::{AttrValue, ReceivedSpan, dump};

/// Spans whose resource `process.pid` is `pid`.
pub fn of_pid(spans: &[ReceivedSpan], pid: u32) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.pid() == Some(pid))
        .cloned()
        .collect()
}

/// Spans of `pid` of `kind` ("SERVER" / "CLIENT").
pub fn of(spans: &[ReceivedSpan], pid: u32, kind: &str) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.pid() == Some(pid) && s.kind == kind)
        .cloned()
        .collect()
}

pub fn count(spans: &[ReceivedSpan], pid: u32, kind: &str) -> usize {
    spans
        .iter()
        .filter(|s| s.pid() == Some(pid) && s.kind == kind)
        .count()
}

/// Spans from processes other than `pids`.
pub fn others(spans: &[ReceivedSpan], pids: &[u32]) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| !s.pid().is_some_and(|p| pids.contains(&p)))
        .cloned()
        .collect()
}

/// Panics unless there are exactly `n` spans of `pid` and `kind`, listing
/// every span received.
pub fn assert_count(spans: &[ReceivedSpan], pid: u32, kind: &str, n: usize, what: &str) {
    let got = count(spans, pid, kind);
    assert_eq!(
        got,
        n,
        "{what}: expected {n} {kind} span(s) from pid {pid}, got {got}; all spans:\n{}",
        dump(spans)
    );
}

/// Collects mismatches of one span, then panics with all of them at once.
pub struct Check<'a> {
    span: &'a ReceivedSpan,
    what: String,
    errors: Vec<String>,
}

impl<'a> Check<'a> {
    pub fn new(span: &'a ReceivedSpan, what: impl Into<String>) -> Check<'a> {
        Check {
            span,
            what: what.into(),
            errors: Vec::new(),
        }
    }

    fn attr_of(&self, key: &str, resource: bool) -> Option<&'a AttrValue> {
        if resource {
            self.span.resource.get(key)
        } else {
            self.span.attributes.get(key)
        }
    }

    fn expect(&mut self, key: &str, resource: bool, want: AttrValue) {
        let got = self.attr_of(key, resource);
        if got != Some(&want) {
            let place = if resource { "resource " } else { "" };
            self.errors.push(format!(
                "{place}{key}: expected {want}, got {}",
                got.map_or("<missing>".to_owned(), ToString::to_string)
            ));
        }
    }

    pub fn name(mut self, name: &str) -> Self {
        if self.span.name != name {
            self.errors
                .push(format!("name: expected {name:?}, got {:?}", self.span.name));
        }
        self
    }

    pub fn kind(mut self, kind: &str) -> Self {
        if self.span.kind != kind {
            self.errors
                .push(format!("kind: expected {kind}, got {}", self.span.kind));
        }
        self
    }

    /// "UNSET", "OK" or "ERROR".
    pub fn status(mut self, code: &str) -> Self {
        if self.span.status_code != code {
            self.errors.push(format!(
                "status: expected {code}, got {} ({:?})",
                self.span.status_code, self.span.status_message
            ));
        }
        self
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.expect(key, false, AttrValue::Str(value.to_owned()));
        self
    }

    pub fn int(mut self, key: &str, value: i64) -> Self {
        self.expect(key, false, AttrValue::Int(value));
        self
    }

    pub fn absent(mut self, key: &str) -> Self {
        if let Some(got) = self.span.attributes.get(key) {
            self.errors
                .push(format!("{key}: expected no such attribute, got {got}"));
        }
        self
    }

    pub fn str_prefix(mut self, key: &str, prefix: &str) -> Self {
        match self.span.attr_str(key) {
            Some(v) if v.starts_with(prefix) => {}
            other => self.errors.push(format!(
                "{key}: expected a string starting with {prefix:?}, got {other:?}"
            )),
        }
        self
    }

    /// An integer attribute that is a valid TCP port.
    pub fn port(mut self, key: &str) -> Self {
        match self.span.attr_int(key) {
            Some(p) if (1..=65535).contains(&p) => {}
            other => self
                .errors
                .push(format!("{key}: expected a port number, got {other:?}")),
        }
        self
    }

    pub fn res_str(mut self, key: &str, value: &str) -> Self {
        self.expect(key, true, AttrValue::Str(value.to_owned()));
        self
    }

    pub fn res_int(mut self, key: &str, value: i64) -> Self {
        self.expect(key, true, AttrValue::Int(value));
        self
    }

    pub fn res_present(mut self, key: &str) -> Self {
        if !self.span.resource.contains_key(key) {
            self.errors.push(format!("resource {key}: missing"));
        }
        self
    }

    /// Start and end are set and in order.
    pub fn timed(mut self) -> Self {
        if self.span.start_ns == 0 || self.span.end_ns < self.span.start_ns {
            self.errors.push(format!(
                "times: start {} end {}",
                self.span.start_ns, self.span.end_ns
            ));
        }
        self
    }

    /// Any other condition.
    pub fn that(mut self, ok: bool, message: &str) -> Self {
        if !ok {
            self.errors.push(message.to_owned());
        }
        self
    }

    /// Panics with every mismatch found.
    pub fn done(self) {
        if self.errors.is_empty() {
            return;
        }
        let mut message = format!("{}: {} mismatch(es)\n", self.what, self.errors.len());
        for e in &self.errors {
            let _ = writeln!(message, "  - {e}");
        }
        let _ = writeln!(message, "span:\n  {}", self.span);
        let _ = writeln!(message, "resource: {:?}", self.span.resource);
        panic!("{message}");
    }
}
