//! One backend's side of the export task: its pending buffer, its one
//! request in flight, its retries and backoff, and its own counters. Each
//! backend (OTLP, Zipkin) gets its own, so one that is slow or down never
//! holds up another.
use std::{future::Future, pin::Pin, sync::atomic::AtomicU64};

use tokio::time::{Instant, timeout_at};

use super::{
    batch::{self, Attempt, Batch, GroupExporter},
    pending::PendingBuffer,
    retry::{Backoff, MAX_ATTEMPTS, WarnLimiter},
};
use crate::{spans::record::SpanRecord, stats::Stats};

/// Which backend a sender serves: names it in the log and picks its
/// counters, so every backend accounts for every span on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Otlp,
    Zipkin,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Otlp => "OTLP",
            Self::Zipkin => "Zipkin",
        }
    }

    /// Spans the backend accepted.
    pub fn exported(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Self::Otlp => &stats.spans_exported,
            Self::Zipkin => &stats.zipkin_spans_exported,
        }
    }

    /// Spans given up on: refused after every attempt, or unsent at shutdown.
    pub fn failed(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Self::Otlp => &stats.drop_export_failed,
            Self::Zipkin => &stats.drop_zipkin_export_failed,
        }
    }

    /// Spans pushed out of the pending buffer while the backend lagged.
    pub fn buffer_full(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Self::Otlp => &stats.drop_export_buffer_full,
            Self::Zipkin => &stats.drop_zipkin_buffer_full,
        }
    }

    /// Failed attempts (each may be retried).
    pub fn errors(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Self::Otlp => &stats.export_errors,
            Self::Zipkin => &stats.zipkin_export_errors,
        }
    }
}

type InFlight<E> = Pin<Box<dyn Future<Output = (E, Batch, Attempt)> + Send>>;

/// The pending buffer and the one request in flight of one backend.
pub struct Sender<E> {
    backend: Backend,
    /// Endpoint (and protocol), for log lines.
    target: String,
    pending: PendingBuffer<SpanRecord>,
    /// The exporter while no request is in flight; the in-flight future
    /// owns it otherwise and hands it back when done.
    idle: Option<E>,
    in_flight: Option<InFlight<E>>,
    in_flight_len: usize,
    /// A failed batch waiting for its next attempt; goes before new spans.
    retry: Option<Batch>,
    /// Backoff: no attempt before this.
    pub not_before: Option<Instant>,
    backoff: Backoff,
    warn: WarnLimiter,
    /// The flush interval passed: send a partial batch too.
    flush_due: bool,
}

impl<E: GroupExporter> Sender<E> {
    pub fn new(
        backend: Backend,
        exporter: E,
        target: String,
        max_pending: usize,
        max_batch: usize,
    ) -> Self {
        Self {
            backend,
            target,
            pending: PendingBuffer::new(max_pending, max_batch),
            idle: Some(exporter),
            in_flight: None,
            in_flight_len: 0,
            retry: None,
            not_before: None,
            backoff: Backoff::default(),
            warn: WarnLimiter::default(),
            flush_due: false,
        }
    }

    /// Takes a span; counts the old ones a full buffer pushes out.
    pub fn push(&mut self, span: SpanRecord, stats: &Stats) {
        Stats::add(self.backend.buffer_full(stats), self.pending.push(span));
    }

    /// The flush interval passed. Only with something waiting: a flag left
    /// set would send the next lone span on its own.
    pub fn flush_interval_passed(&mut self) {
        self.flush_due = !self.pending.is_empty();
    }

    /// Resolves when the request in flight completes; never when there is
    /// none.
    pub async fn in_flight(&mut self) -> (E, Batch, Attempt) {
        match self.in_flight.as_mut() {
            Some(request) => request.await,
            None => std::future::pending().await,
        }
    }

    pub fn start_if_ready(&mut self, now: Instant) {
        if let Some(t) = self.not_before {
            if now < t {
                return;
            }
            self.not_before = None;
        }
        if self.in_flight.is_some() {
            return;
        }
        let batch = match self.retry.take() {
            Some(batch) => batch,
            None => match self.pending.take_batch(self.flush_due) {
                Some(records) => {
                    if self.pending.is_empty() {
                        self.flush_due = false;
                    }
                    Batch::new(records)
                }
                None => return,
            },
        };
        let Some(mut exporter) = self.idle.take() else {
            return;
        };
        self.in_flight_len = batch.len();
        let mut batch = batch;
        self.in_flight = Some(Box::pin(async move {
            let attempt = batch::export_attempt(&mut exporter, &mut batch).await;
            (exporter, batch, attempt)
        }));
    }

    pub fn finished(
        &mut self,
        exporter: E,
        batch: Batch,
        attempt: Attempt,
        stats: &Stats,
        now: Instant,
    ) {
        self.in_flight = None;
        self.in_flight_len = 0;
        self.idle = Some(exporter);
        Stats::add(self.backend.exported(stats), attempt.exported as u64);
        let Some(error) = attempt.error else {
            self.backoff.succeeded();
            return;
        };
        Stats::inc(self.backend.errors(stats));
        let wait = self.backoff.failed();
        self.not_before = Some(now + wait);
        let attempts = batch.attempts;
        let left = batch.len();
        let outcome = if attempts >= MAX_ATTEMPTS {
            Stats::add(self.backend.failed(stats), left as u64);
            format!("dropped {left} spans after {attempts} attempts")
        } else {
            self.retry = Some(batch);
            format!("will retry {left} spans in {wait:?}")
        };
        self.warn_failure(&error, &outcome, now);
    }

    fn warn_failure(&mut self, error: &dyn std::fmt::Display, outcome: &str, now: Instant) {
        if let Some(suppressed) = self.warn.check(now.into_std()) {
            let suppressed = if suppressed > 0 {
                format!(" ({suppressed} more failures since the last message)")
            } else {
                String::new()
            };
            log::warn!(
                "{} export to {} failed: {error}; {outcome}{suppressed}",
                self.backend.name(),
                self.target
            );
        }
    }

    /// Final flush: what is in flight, then the retry batch, then the
    /// pending buffer, one attempt per batch and no backoff, until the first
    /// failure or the deadline; whatever is left then counts as failed.
    pub async fn drain(mut self, deadline: Instant, stats: &Stats) {
        let backend = self.backend;
        let held =
            self.in_flight_len + self.retry.as_ref().map_or(0, Batch::len) + self.pending.len();
        let mut settled = 0;
        let flushed = timeout_at(deadline, async {
            if let Some(request) = self.in_flight.take() {
                let (exporter, batch, attempt) = request.await;
                self.idle = Some(exporter);
                settled += attempt.exported;
                Stats::add(backend.exported(stats), attempt.exported as u64);
                if let Some(error) = attempt.error {
                    Stats::inc(backend.errors(stats));
                    self.warn_failure(&error, "giving up at shutdown", Instant::now());
                    return;
                }
                debug_assert!(batch.is_empty());
            }
            let Some(exporter) = self.idle.as_mut() else {
                return;
            };
            loop {
                let mut batch = match self.retry.take() {
                    Some(batch) => batch,
                    None => match self.pending.take_batch(true) {
                        Some(records) => Batch::new(records),
                        None => return,
                    },
                };
                let attempt = batch::export_attempt(exporter, &mut batch).await;
                settled += attempt.exported;
                Stats::add(backend.exported(stats), attempt.exported as u64);
                if let Some(error) = attempt.error {
                    Stats::inc(backend.errors(stats));
                    // Not rate-limited: this is the last word on lost spans.
                    log::warn!(
                        "{} export to {} failed at shutdown: {error}",
                        backend.name(),
                        self.target
                    );
                    return;
                }
            }
        })
        .await;
        if flushed.is_err() {
            log::warn!(
                "{} export to {} timed out at shutdown",
                backend.name(),
                self.target
            );
        }
        let lost = held.saturating_sub(settled);
        if lost > 0 {
            Stats::add(backend.failed(stats), lost as u64);
            log::warn!(
                "{lost} spans were not exported to {} before shutdown",
                backend.name()
            );
        }
        if let Some(exporter) = self.idle.take()
            && let Err(e) = exporter.shutdown()
        {
            log::debug!("{} exporter shutdown: {e}", backend.name());
        }
    }
}
