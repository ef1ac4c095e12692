//! The export task end to end, against a fake exporter and against a port
//! nobody listens on.
use std::{
    io::{self, BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    sync::{Arc, Mutex, atomic::Ordering},
    thread::JoinHandle,
    time::Duration,
};

use super::{
    ExportConfig, OtlpConfig, Protocol,
    batch::tests::FakeExporter,
    convert::tests::record,
    stdout::{LockedWrite, StdoutSink},
    task::{SHUTDOWN_TIMEOUT, spawn_with},
};
use crate::stats::Stats;

/// What a [`collector`] saw of one request.
pub struct Seen {
    /// `POST /path HTTP/1.1`.
    pub request_line: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A minimal HTTP backend: answers `requests` requests to
/// `http://127.0.0.1:PORT{path}` with `response` (status line onwards, e.g.
/// `200 OK\r\ncontent-length: 0\r\n\r\n`) and hands back what it saw, in
/// the order they came. Each connection is served on its own thread: a
/// client may open another connection while its first one is on its way
/// back to the pool.
pub fn collector(
    path: &str,
    requests: usize,
    response: &'static str,
) -> (String, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, &tx, response));
        }
    });
    let server = std::thread::spawn(move || {
        (0..requests)
            .map(|i| {
                rx.recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("request {i} of {requests} never came"))
            })
            .collect()
    });
    (url, server)
}

/// The requests of one connection, until the client closes it.
fn serve(stream: std::net::TcpStream, seen: &std::sync::mpsc::Sender<Seen>, response: &str) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut content_type) = (0, String::new());
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if let Some(v) = line.strip_prefix("content-type:") {
                content_type = v.trim().to_owned();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let _ = seen.send(Seen {
            request_line: request_line.trim_end().to_owned(),
            content_type,
            body,
        });
        if write!(reader.get_mut(), "HTTP/1.1 {response}").is_err() {
            return;
        }
    }
}

#[derive(Clone, Default)]
struct SharedOut(Arc<Mutex<Vec<u8>>>);

impl LockedWrite for SharedOut {
    fn write_locked(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(())
    }
}

fn config(max_batch: usize, max_pending: usize) -> ExportConfig {
    ExportConfig {
        otlp: None,
        zipkin: None,
        stdout: false,
        queue_capacity: 10_000,
        max_batch,
        flush_interval: Duration::from_millis(50),
        max_pending,
    }
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Polls until `done` holds; false after `within`.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < until {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// Every span handed over ends up exported or in exactly one drop counter.
fn assert_accounted(stats: &Stats, sent: u64) {
    assert_eq!(
        load(&stats.spans_exported)
            + load(&stats.drop_export_buffer_full)
            + load(&stats.drop_export_failed),
        sent,
        "{}",
        stats.summary()
    );
}

#[tokio::test]
async fn full_batches_go_at_once_partial_ones_at_the_interval() {
    let stats = Arc::new(Stats::default());
    let fake = FakeExporter::default();
    let calls = fake.calls.clone();
    let (handle, task) = spawn_with(
        &ExportConfig {
            flush_interval: Duration::from_secs(3600),
            ..config(4, 100)
        },
        stats.clone(),
        Some((fake, "fake".to_owned())),
        None::<(FakeExporter, String)>,
        None::<StdoutSink<SharedOut>>,
    );
    for pid in [1, 1, 2, 1, 2] {
        assert!(handle.try_send(record(pid)));
    }
    assert!(eventually(Duration::from_secs(2), || load(&stats.spans_exported) == 4).await);
    // One batch of four, one request per process.
    assert_eq!(calls.lock().unwrap().len(), 2);

    // The fifth waits for the (hour-long) interval, or for shutdown.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(load(&stats.spans_exported), 4);
    handle.shutdown().await;
    task.await.unwrap();
    assert_eq!(load(&stats.spans_exported), 5);
    assert_accounted(&stats, 5);
}

#[tokio::test]
async fn partial_batch_is_sent_after_the_flush_interval() {
    let stats = Arc::new(Stats::default());
    let (handle, task) = spawn_with(
        &config(100, 100),
        stats.clone(),
        Some((FakeExporter::default(), "fake".to_owned())),
        None::<(FakeExporter, String)>,
        None::<StdoutSink<SharedOut>>,
    );
    assert!(handle.try_send(record(1)));
    assert!(eventually(Duration::from_secs(2), || load(&stats.spans_exported) == 1).await);
    handle.shutdown().await;
    task.await.unwrap();
}

#[tokio::test]
async fn failed_batch_is_retried_then_dropped() {
    let stats = Arc::new(Stats::default());
    let fake = FakeExporter::default();
    // Three failures use up the first batch's attempts; the next succeeds.
    *fake.fail.lock().unwrap() = 3;
    let (handle, task) = spawn_with(
        &config(2, 100),
        stats.clone(),
        Some((fake, "fake".to_owned())),
        None::<(FakeExporter, String)>,
        None::<StdoutSink<SharedOut>>,
    );
    for _ in 0..2 {
        assert!(handle.try_send(record(1)));
    }
    // Backoff 0.5 s then 1 s between the three attempts.
    assert!(
        eventually(Duration::from_secs(4), || load(&stats.drop_export_failed)
            == 2)
        .await,
        "{}",
        stats.summary()
    );
    assert_eq!(load(&stats.export_errors), 3);

    for _ in 0..2 {
        assert!(handle.try_send(record(1)));
    }
    // The backoff grew to 2 s before the next attempt.
    assert!(eventually(Duration::from_secs(4), || load(&stats.spans_exported) == 2).await);
    handle.shutdown().await;
    task.await.unwrap();
    assert_eq!(load(&stats.export_errors), 3);
    assert_accounted(&stats, 4);
}

#[tokio::test]
async fn retry_succeeds_within_the_attempts() {
    let stats = Arc::new(Stats::default());
    let fake = FakeExporter::default();
    *fake.fail.lock().unwrap() = 1;
    let (handle, task) = spawn_with(
        &config(1, 100),
        stats.clone(),
        Some((fake, "fake".to_owned())),
        None::<(FakeExporter, String)>,
        None::<StdoutSink<SharedOut>>,
    );
    assert!(handle.try_send(record(1)));
    assert!(eventually(Duration::from_secs(3), || load(&stats.spans_exported) == 1).await);
    assert_eq!(load(&stats.export_errors), 1);
    assert_eq!(load(&stats.drop_export_failed), 0);
    handle.shutdown().await;
    task.await.unwrap();
}

#[tokio::test]
async fn stdout_only_prints_every_span_as_a_line() {
    let stats = Arc::new(Stats::default());
    let out = SharedOut::default();
    let (handle, task) = spawn_with(
        &ExportConfig {
            stdout: true,
            ..config(3, 100)
        },
        stats.clone(),
        None::<(FakeExporter, String)>,
        None::<(FakeExporter, String)>,
        Some(StdoutSink::with_writer(out.clone())),
    );
    for pid in 0..7 {
        assert!(handle.try_send(record(pid)));
    }
    handle.shutdown().await;
    task.await.unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let pids: Vec<i64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["resource"]["process.pid"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(pids, (0..7).collect::<Vec<_>>());
    assert_eq!(load(&stats.spans_exported), 0);
}

#[tokio::test]
async fn dropping_every_handle_flushes_too() {
    let stats = Arc::new(Stats::default());
    let (handle, task) = spawn_with(
        &config(100, 100),
        stats.clone(),
        Some((FakeExporter::default(), "fake".to_owned())),
        None::<(FakeExporter, String)>,
        None::<StdoutSink<SharedOut>>,
    );
    for _ in 0..3 {
        assert!(handle.try_send(record(1)));
    }
    drop(handle);
    tokio::time::timeout(SHUTDOWN_TIMEOUT, task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(load(&stats.spans_exported), 3);
}

#[tokio::test]
async fn full_queue_refuses_without_blocking() {
    let stats = Arc::new(Stats::default());
    let (handle, task) = spawn_with(
        &ExportConfig {
            queue_capacity: 2,
            ..config(100, 100)
        },
        stats.clone(),
        Some((FakeExporter::default(), "fake".to_owned())),
        None::<(FakeExporter, String)>,
        None::<StdoutSink<SharedOut>>,
    );
    // The task has not run yet (current-thread runtime, no await since the
    // spawn), so nothing is taken off the queue in between.
    let accepted = (0..5).filter(|_| handle.try_send(record(1))).count();
    assert_eq!(accepted, 2);
    handle.clone().shutdown().await;
    task.await.unwrap();
    assert!(!handle.try_send(record(1)), "closed after shutdown");
}

/// A port that was just free and is now closed: connects are refused.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The backend is unreachable: nothing panics, failures are counted, memory
/// stays bounded (old spans are dropped and counted), and shutdown returns
/// in time.
async fn unreachable_backend(protocol: Protocol) {
    let stats = Arc::new(Stats::default());
    let otlp = OtlpConfig {
        endpoint: Some(format!("http://127.0.0.1:{}", closed_port())),
        protocol,
        timeout: Duration::from_millis(500),
    };
    let exporter = super::otlp::build_exporter(&otlp).unwrap();
    let cfg = ExportConfig {
        otlp: Some(otlp),
        ..config(10, 100)
    };
    let (handle, task) = spawn_with(
        &cfg,
        stats.clone(),
        Some((exporter, "test".to_owned())),
        None::<(FakeExporter, String)>,
        None::<StdoutSink<SharedOut>>,
    );
    let sent = 1000;
    for i in 0..sent {
        assert!(handle.try_send(record(i % 3)));
    }
    assert!(
        eventually(Duration::from_secs(5), || load(&stats.export_errors) > 0
            // At most max_pending buffered plus one batch in flight.
            && load(&stats.drop_export_buffer_full) >= u64::from(sent) - 100 - 10)
        .await,
        "{}",
        stats.summary()
    );

    let started = std::time::Instant::now();
    handle.shutdown().await;
    assert!(started.elapsed() < SHUTDOWN_TIMEOUT + Duration::from_secs(1));
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("task ends with shutdown")
        .expect("task did not panic");
    assert_eq!(load(&stats.spans_exported), 0);
    assert_accounted(&stats, u64::from(sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_grpc_backend_is_not_fatal() {
    unreachable_backend(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_http_backend_is_not_fatal() {
    unreachable_backend(Protocol::HttpProtobuf).await;
}

#[tokio::test]
async fn spawn_builds_the_real_exporter() {
    let stats = Arc::new(Stats::default());
    let cfg = ExportConfig {
        otlp: Some(OtlpConfig {
            endpoint: Some(format!("http://127.0.0.1:{}", closed_port())),
            protocol: Protocol::Grpc,
            timeout: Duration::from_millis(200),
        }),
        ..config(10, 100)
    };
    let (handle, task) = super::spawn(cfg, stats).unwrap();
    handle.shutdown().await;
    task.await.unwrap();
}

/// Every span handed over ends up sent to Zipkin or in exactly one of its
/// drop counters.
fn assert_zipkin_accounted(stats: &Stats, sent: u64) {
    assert_eq!(
        load(&stats.zipkin_spans_exported)
            + load(&stats.drop_zipkin_buffer_full)
            + load(&stats.drop_zipkin_export_failed),
        sent,
        "{}",
        stats.summary()
    );
}

#[tokio::test]
async fn both_backends_get_every_span_and_count_apart() {
    let stats = Arc::new(Stats::default());
    let otlp = FakeExporter::default();
    let zipkin = FakeExporter::default();
    let (otlp_calls, zipkin_calls) = (otlp.calls.clone(), zipkin.calls.clone());
    let (handle, task) = spawn_with(
        &config(4, 100),
        stats.clone(),
        Some((otlp, "otlp".to_owned())),
        Some((zipkin, "zipkin".to_owned())),
        None::<StdoutSink<SharedOut>>,
    );
    for pid in [1, 2, 1, 3, 1] {
        assert!(handle.try_send(record(pid)));
    }
    handle.shutdown().await;
    task.await.unwrap();
    assert_eq!(load(&stats.spans_exported), 5);
    assert_eq!(load(&stats.zipkin_spans_exported), 5);
    // The same requests, per process, to both.
    assert_eq!(*otlp_calls.lock().unwrap(), *zipkin_calls.lock().unwrap());
    assert_accounted(&stats, 5);
    assert_zipkin_accounted(&stats, 5);
}

/// Zipkin refuses everything: OTLP still gets every span as it comes, and
/// the Zipkin losses land in Zipkin's counters only.
#[tokio::test]
async fn a_failing_zipkin_does_not_hold_up_otlp() {
    let stats = Arc::new(Stats::default());
    let zipkin = FakeExporter::default();
    *zipkin.fail.lock().unwrap() = usize::MAX;
    let (handle, task) = spawn_with(
        &config(2, 100),
        stats.clone(),
        Some((FakeExporter::default(), "otlp".to_owned())),
        Some((zipkin, "zipkin".to_owned())),
        None::<StdoutSink<SharedOut>>,
    );
    for _ in 0..4 {
        assert!(handle.try_send(record(1)));
    }
    // Both OTLP batches go out while Zipkin is still backing off.
    assert!(eventually(Duration::from_secs(1), || load(&stats.spans_exported) == 4).await);
    assert!(load(&stats.zipkin_export_errors) >= 1);
    handle.shutdown().await;
    task.await.unwrap();
    assert_eq!(load(&stats.export_errors), 0);
    assert_eq!(load(&stats.drop_export_failed), 0);
    assert_eq!(load(&stats.zipkin_spans_exported), 0);
    assert_eq!(load(&stats.drop_zipkin_export_failed), 4);
    assert_accounted(&stats, 4);
    assert_zipkin_accounted(&stats, 4);
}

/// The real Zipkin exporter against a port nobody listens on, next to a
/// working OTLP: OTLP exports everything, Zipkin's losses are counted, and
/// shutdown returns in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_zipkin_is_not_fatal() {
    let stats = Arc::new(Stats::default());
    let zipkin = super::ZipkinConfig {
        endpoint: format!("http://127.0.0.1:{}/api/v2/spans", closed_port()),
        timeout: Duration::from_millis(500),
    };
    let exporter = super::zipkin::ZipkinExporter::new(&zipkin).unwrap();
    // Room for every span: on a loaded machine the 300 are all queued
    // before the task first runs, and a pending buffer smaller than that
    // may drop some for OTLP too (counted, as it should), which is not
    // what this test is about.
    let (handle, task) = spawn_with(
        &config(10, 1000),
        stats.clone(),
        Some((FakeExporter::default(), "otlp".to_owned())),
        Some((exporter, "zipkin".to_owned())),
        None::<StdoutSink<SharedOut>>,
    );
    let sent = 300;
    for i in 0..sent {
        assert!(handle.try_send(record(i % 3)));
    }
    assert!(
        eventually(Duration::from_secs(5), || load(&stats.spans_exported)
            == u64::from(sent)
            && load(&stats.zipkin_export_errors) > 0)
        .await,
        "{}",
        stats.summary()
    );
    let started = std::time::Instant::now();
    handle.shutdown().await;
    assert!(started.elapsed() < SHUTDOWN_TIMEOUT + Duration::from_secs(1));
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("task ends with shutdown")
        .expect("task did not panic");
    assert_eq!(load(&stats.zipkin_spans_exported), 0);
    assert_accounted(&stats, u64::from(sent));
    assert_zipkin_accounted(&stats, u64::from(sent));
}

#[tokio::test]
async fn spawn_builds_the_zipkin_exporter_and_rejects_a_bad_url() {
    let mut cfg = ExportConfig {
        otlp: None,
        zipkin: Some(super::ZipkinConfig::default()),
        ..config(10, 100)
    };
    let (handle, task) = super::spawn(cfg.clone(), Arc::new(Stats::default())).unwrap();
    handle.shutdown().await;
    task.await.unwrap();

    cfg.zipkin = Some(super::ZipkinConfig {
        endpoint: "https://zipkin:9411/api/v2/spans".to_owned(),
        ..super::ZipkinConfig::default()
    });
    let error = super::spawn(cfg, Arc::new(Stats::default())).unwrap_err();
    assert!(format!("{error:#}").contains("Zipkin"), "{error:#}");
}
