//! The export task: takes spans off the queue, prints them, and hands them
//! to each backend's sender, which batches them and keeps at most one
//! request in flight while the task goes on taking spans, so a slow or dead
//! backend never backs up into the span stage, nor into the other backend.
use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::JoinHandle,
    time::{Instant, sleep_until, timeout_at},
};

use super::{
    batch::{Attempt, Batch, GroupExporter},
    config::ExportConfig,
    otlp,
    sender::{Backend, Sender},
    stdout::{LockedWrite, StdoutSink},
    zipkin::ZipkinExporter,
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
    /// (each backend gets one attempt per batch, no backoff, all backends at
    /// once), then the exporters are shut down. Returns after at most
    /// [`SHUTDOWN_TIMEOUT`]; whatever could not be sent by then is counted
    /// in `drop_export_failed` / `drop_zipkin_export_failed`.
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
/// only on a configuration an exporter rejects (e.g. an unparsable
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
    let zipkin = match &config.zipkin {
        Some(zipkin_config) => {
            let exporter =
                ZipkinExporter::new(zipkin_config).context("cannot set up Zipkin export")?;
            log::info!("exporting spans to Zipkin at {}", zipkin_config.endpoint);
            Some((exporter, zipkin_config.endpoint.clone()))
        }
        None => None,
    };
    let stdout = config.stdout.then(StdoutSink::new);
    Ok(spawn_with(&config, stats, exporter, zipkin, stdout))
}

/// [`spawn`] with the sinks passed in, so tests can use fakes: the OTLP
/// and the Zipkin exporter, each with its target for log lines.
pub(crate) fn spawn_with<E, Z, W>(
    config: &ExportConfig,
    stats: Arc<Stats>,
    exporter: Option<(E, String)>,
    zipkin: Option<(Z, String)>,
    stdout: Option<StdoutSink<W>>,
) -> (ExportHandle, JoinHandle<()>)
where
    E: GroupExporter,
    Z: GroupExporter,
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
        otlp: exporter.map(|(exporter, target)| {
            Sender::new(
                Backend::Otlp,
                exporter,
                target,
                config.max_pending,
                max_batch,
            )
        }),
        zipkin: zipkin.map(|(exporter, target)| {
            Sender::new(
                Backend::Zipkin,
                exporter,
                target,
                config.max_pending,
                max_batch,
            )
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

struct Worker<E, Z, W> {
    spans: mpsc::Receiver<SpanRecord>,
    control: mpsc::Receiver<Shutdown>,
    stats: Arc<Stats>,
    flush_interval: Duration,
    max_batch: usize,
    stdout: Option<StdoutSink<W>>,
    otlp: Option<Sender<E>>,
    zipkin: Option<Sender<Z>>,
}

impl<E, Z, W> Worker<E, Z, W>
where
    E: GroupExporter,
    Z: GroupExporter,
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
            if let Some(zipkin) = &mut self.zipkin {
                zipkin.start_if_ready(now);
                if let Some(t) = zipkin.not_before {
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
                (exporter, batch, attempt) = in_flight(&mut self.zipkin) => {
                    if let Some(zipkin) = &mut self.zipkin {
                        zipkin.finished(exporter, batch, attempt, &self.stats, Instant::now());
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
                            otlp.flush_interval_passed();
                        }
                        if let Some(zipkin) = &mut self.zipkin {
                            zipkin.flush_interval_passed();
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
        // Each backend keeps its own copy, so each can lag on its own.
        match (&mut self.otlp, &mut self.zipkin) {
            (Some(otlp), Some(zipkin)) => {
                otlp.push(span.clone(), &self.stats);
                zipkin.push(span, &self.stats);
            }
            (Some(otlp), None) => otlp.push(span, &self.stats),
            (None, Some(zipkin)) => zipkin.push(span, &self.stats),
            (None, None) => {}
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
        // Side by side, so a dead backend cannot use up another's time.
        let (otlp, zipkin, stats) = (self.otlp.take(), self.zipkin.take(), &self.stats);
        tokio::join!(
            async {
                if let Some(otlp) = otlp {
                    otlp.drain(deadline, stats).await;
                }
            },
            async {
                if let Some(zipkin) = zipkin {
                    zipkin.drain(deadline, stats).await;
                }
            },
        );
    }
}

/// Resolves when the sender's request in flight completes; never when there
/// is no sender or no request.
async fn in_flight<E: GroupExporter>(sender: &mut Option<Sender<E>>) -> (E, Batch, Attempt) {
    match sender {
        Some(sender) => sender.in_flight().await,
        None => std::future::pending().await,
    }
}
