//! The export task: takes spans off the queue, prints them, batches them,
//! and keeps at most one request to the backend in flight while it goes on
//! taking spans, so a slow or dead backend never backs up into the sender.
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use anyhow::Context as _;
use opentelemetry_sdk::trace::SpanExporter;
use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::JoinHandle,
    time::{Instant, sleep_until, timeout_at},
};

use super::{
    config::ExportConfig,
    otlp::{self, Attempt, Batch},
    pending::PendingBuffer,
    retry::{Backoff, MAX_ATTEMPTS, WarnLimiter},
    stdout::{LockedWrite, StdoutSink},
};
use crate::{spans::record::SpanRecord, stats::Stats};

/// The longest [`ExportHandle::shutdown`] waits for the final flush.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Kept back from the shutdown budget so the task finishes before the
/// caller stops waiting.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(250);

/// The sending side of the export stage; cheap to clone.
#[derive(Clone, Debug)]
pub struct ExportHandle {
    spans: mpsc::Sender<SpanRecord>,
    control: mpsc::Sender<Shutdown>,
}

#[derive(Debug)]
struct Shutdown {
    deadline: Instant,
}

impl ExportHandle {
    /// Queues a span without waiting. Returns false when the queue is full
    /// (or the exporter has shut down): the span is dropped, and the CALLER
    /// counts it in `Stats::drop_export_queue_full`, because the exporter
    /// never saw it.
    pub fn try_send(&self, span: SpanRecord) -> bool {
        match self.spans.try_send(span) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => false,
        }
    }

    /// Stops the exporter: spans queued so far are printed and exported
    /// (the backend gets one attempt per batch, no backoff), then the OTLP
    /// exporter is shut down. Returns after at most [`SHUTDOWN_TIMEOUT`];
    /// whatever could not be sent by then is counted in
    /// `drop_export_failed`.
    pub async fn shutdown(self) {
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        let request = Shutdown {
            deadline: deadline - SHUTDOWN_MARGIN,
        };
        // Full means another clone already asked; either way we wait for
        // the task to end, which drops the receiver.
        if let Err(TrySendError::Closed(_)) = self.control.try_send(request) {
            return;
        }
        if timeout_at(deadline, self.control.closed()).await.is_err() {
            log::warn!("span export did not finish within {SHUTDOWN_TIMEOUT:?}");
        }
    }
}

/// Starts the export task; must be called inside a tokio runtime. Fails
/// only on a configuration the OTLP exporter rejects (e.g. an unparsable
/// endpoint, or https without a TLS feature); an unreachable backend is not
/// an error here, only a reason to count failed exports later.
pub fn spawn(
    config: ExportConfig,
    stats: Arc<Stats>,
) -> anyhow::Result<(ExportHandle, JoinHandle<()>)> {
    let exporter = match &config.otlp {
        Some(otlp_config) => {
            let exporter =
                otlp::build_exporter(otlp_config).context("cannot set up OTLP export")?;
            let target = format!(
                "{} {}",
                otlp_config.protocol,
                otlp_config.resolved_endpoint()
            );
            log::info!("exporting spans over OTLP/{target}");
            Some((exporter, target))
        }
        None => None,
    };
    let stdout = config.stdout.then(StdoutSink::new);
    Ok(spawn_with(&config, stats, exporter, stdout))
}

/// [`spawn`] with the sinks passed in, so tests can use fakes.
pub(crate) fn spawn_with<E, W>(
    config: &ExportConfig,
    stats: Arc<Stats>,
    exporter: Option<(E, String)>,
    stdout: Option<StdoutSink<W>>,
) -> (ExportHandle, JoinHandle<()>)
where
    E: SpanExporter + 'static,
    W: LockedWrite + Send + 'static,
{
    let (spans_tx, spans) = mpsc::channel(config.queue_capacity.max(1));
    let (control_tx, control) = mpsc::channel(1);
    let max_batch = config.max_batch.max(1);
    let worker = Worker {
        spans,
        control,
        stats,
        flush_interval: config.flush_interval.max(Duration::from_millis(1)),
        max_batch,
        stdout,
        otlp: exporter.map(|(exporter, target)| Otlp {
            target,
            pending: PendingBuffer::new(config.max_pending, max_batch),
            idle: Some(exporter),
            in_flight: None,
            in_flight_len: 0,
            retry: None,
            not_before: None,
            backoff: Backoff::default(),
            warn: WarnLimiter::default(),
            flush_due: false,
        }),
    };
    let task = tokio::spawn(worker.run());
    (
        ExportHandle {
            spans: spans_tx,
            control: control_tx,
        },
        task,
    )
}

type InFlight<E> = Pin<Box<dyn Future<Output = (E, Batch, Attempt)> + Send>>;

struct Worker<E, W> {
    spans: mpsc::Receiver<SpanRecord>,
    control: mpsc::Receiver<Shutdown>,
    stats: Arc<Stats>,
    flush_interval: Duration,
    max_batch: usize,
    stdout: Option<StdoutSink<W>>,
    otlp: Option<Otlp<E>>,
}

/// The OTLP side: the pending buffer and the one request in flight.
struct Otlp<E> {
    /// Protocol and endpoint, for log lines.
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
    not_before: Option<Instant>,
    backoff: Backoff,
    warn: WarnLimiter,
    /// The flush interval passed: send a partial batch too.
    flush_due: bool,
}

impl<E, W> Worker<E, W>
where
    E: SpanExporter + 'static,
    W: LockedWrite,
{
    async fn run(mut self) {
        let mut next_flush = Instant::now() + self.flush_interval;
        let mut received = Vec::with_capacity(self.max_batch);
        let shutdown = loop {
            let now = Instant::now();
            let mut wake = next_flush;
            if let Some(otlp) = &mut self.otlp {
                otlp.start_if_ready(now);
                if let Some(t) = otlp.not_before {
                    wake = wake.min(t);
                }
            }
            tokio::select! {
                request = self.control.recv() => break request,
                (exporter, batch, attempt) = in_flight(&mut self.otlp) => {
                    if let Some(otlp) = &mut self.otlp {
                        otlp.finished(exporter, batch, attempt, &self.stats, Instant::now());
                    }
                }
                n = self.spans.recv_many(&mut received, self.max_batch) => {
                    if n == 0 {
                        // Every handle is gone: same as a shutdown request.
                        break None;
                    }
                    for span in received.drain(..) {
                        self.accept(span);
                    }
                }
                () = sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= next_flush {
                        next_flush = now + self.flush_interval;
                        if let Some(stdout) = &mut self.stdout {
                            stdout.flush();
                        }
                        if let Some(otlp) = &mut self.otlp {
                            // Only with something waiting: a flag left set
                            // would send the next lone span on its own.
                            otlp.flush_due = !otlp.pending.is_empty();
                        }
                    }
                }
            }
        };
        self.finish(shutdown).await;
    }

    fn accept(&mut self, span: SpanRecord) {
        if let Some(stdout) = &mut self.stdout {
            stdout.push(&span);
            if stdout.buffered_lines() >= self.max_batch {
                stdout.flush();
            }
        }
        if let Some(otlp) = &mut self.otlp {
            Stats::add(&self.stats.drop_export_buffer_full, otlp.pending.push(span));
        }
    }

    async fn finish(mut self, request: Option<Shutdown>) {
        let deadline = request.map_or_else(
            || Instant::now() + SHUTDOWN_TIMEOUT - SHUTDOWN_MARGIN,
            |r| r.deadline,
        );
        // What is already queued belongs to this run; later senders see a
        // closed channel.
        self.spans.close();
        while let Ok(span) = self.spans.try_recv() {
            self.accept(span);
        }
        if let Some(stdout) = &mut self.stdout {
            stdout.flush();
        }
        if let Some(otlp) = self.otlp.take() {
            otlp.drain(deadline, &self.stats).await;
        }
    }
}

/// Resolves when the request in flight completes; never when there is none.
async fn in_flight<E>(otlp: &mut Option<Otlp<E>>) -> (E, Batch, Attempt) {
    match otlp.as_mut().and_then(|o| o.in_flight.as_mut()) {
        Some(request) => request.await,
        None => std::future::pending().await,
    }
}

impl<E: SpanExporter + 'static> Otlp<E> {
    fn start_if_ready(&mut self, now: Instant) {
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
            let attempt = otlp::export_attempt(&mut exporter, &mut batch).await;
            (exporter, batch, attempt)
        }));
    }

    fn finished(
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
        Stats::add(&stats.spans_exported, attempt.exported as u64);
        let Some(error) = attempt.error else {
            self.backoff.succeeded();
            return;
        };
        Stats::inc(&stats.export_errors);
        let wait = self.backoff.failed();
        self.not_before = Some(now + wait);
        let attempts = batch.attempts;
        let left = batch.len();
        let outcome = if attempts >= MAX_ATTEMPTS {
            Stats::add(&stats.drop_export_failed, left as u64);
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
                "OTLP export to {} failed: {error}; {outcome}{suppressed}",
                self.target
            );
        }
    }

    /// Final flush: what is in flight, then the retry batch, then the
    /// pending buffer, one attempt per batch and no backoff, until the first
    /// failure or the deadline; whatever is left then counts as failed.
    async fn drain(mut self, deadline: Instant, stats: &Stats) {
        let held =
            self.in_flight_len + self.retry.as_ref().map_or(0, Batch::len) + self.pending.len();
        let mut settled = 0;
        let flushed = timeout_at(deadline, async {
            if let Some(request) = self.in_flight.take() {
                let (exporter, batch, attempt) = request.await;
                self.idle = Some(exporter);
                settled += attempt.exported;
                Stats::add(&stats.spans_exported, attempt.exported as u64);
                if let Some(error) = attempt.error {
                    Stats::inc(&stats.export_errors);
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
                let attempt = otlp::export_attempt(exporter, &mut batch).await;
                settled += attempt.exported;
                Stats::add(&stats.spans_exported, attempt.exported as u64);
                if let Some(error) = attempt.error {
                    Stats::inc(&stats.export_errors);
                    // Not rate-limited: this is the last word on lost spans.
                    log::warn!("OTLP export to {} failed at shutdown: {error}", self.target);
                    return;
                }
            }
        })
        .await;
        if flushed.is_err() {
            log::warn!("OTLP export to {} timed out at shutdown", self.target);
        }
        let lost = held.saturating_sub(settled);
        if lost > 0 {
            Stats::add(&stats.drop_export_failed, lost as u64);
            log::warn!("{lost} spans were not exported before shutdown");
        }
        if let Some(exporter) = self.idle.take()
            && let Err(e) = exporter.shutdown()
        {
            log::debug!("OTLP exporter shutdown: {e}");
        }
    }
}
