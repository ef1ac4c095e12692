//! Golden fixtures for HTTP/2 and gRPC: byte streams recorded between real
//! Go programs (see `tests/fixtures/http2/README.md`), fed to the pipeline as
//! the kernel would report them, as the client and as the server, whole and
//! cut to the default capture; the spans and counters must match the
//! `.expected` files exactly.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::UNIX_EPOCH,
};

use opentelemetry::trace::Status;
use tracer_common::{ConnTuple, TraceCtx};

use super::{
    pipeline::{NoKernel, Pipeline, PipelineConfig},
    table::ConnTable,
};
use crate::{
    events::{DataHeader, Event, reader::EventHandler},
    process::ProcessTable,
    protocols::{
        fixture::{self, Event as Step},
        http1::{Direction, Limits},
    },
    sampling::Sampler,
    spans::{clock::Clock, record::SpanRecord},
    stats::Stats,
};

const BLESS_VAR: &str = "HTTP2_GOLDEN_BLESS";
/// The agent's default `--capture-bytes`, and the tail the kernel keeps.
const CAPTURE: usize = 1024;
const TAIL: usize = 8;

#[derive(Clone, Copy)]
struct Mode {
    /// The traced process is the client (else the server).
    client: bool,
    /// Bytes captured per syscall (`None`: all).
    capture: Option<usize>,
}

impl Mode {
    const ALL: [Self; 4] = [
        Self {
            client: true,
            capture: None,
        },
        Self {
            client: false,
            capture: None,
        },
        Self {
            client: true,
            capture: Some(CAPTURE),
        },
        Self {
            client: false,
            capture: Some(CAPTURE),
        },
    ];

    fn name(self) -> String {
        let role = if self.client { "client" } else { "server" };
        match self.capture {
            Some(n) => format!("{role} capture={n}"),
            None => role.to_owned(),
        }
    }
}

fn tuple(client: bool) -> ConnTuple {
    let mut t = ConnTuple {
        family: 2,
        local_port: if client { 40_000 } else { 50_051 },
        remote_port: if client { 50_051 } else { 40_000 },
        ..ConnTuple::default()
    };
    t.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    t.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    t
}

/// Feeds the recorded conversation (seen from the client: `>` written, `<`
/// read) to a pipeline as events of the traced process.
fn run(steps: &[Step], mode: Mode) -> String {
    let stats = Arc::new(Stats::default());
    let mut pipeline = Pipeline::new(
        ConnTable::new(16, Limits::default()),
        ProcessTable::new(PathBuf::from("/nonexistent"), "host".to_owned()),
        NoKernel,
        Vec::new(),
        stats.clone(),
        PipelineConfig::replay(
            Sampler::ParentBased {
                root: Box::new(Sampler::AlwaysOn),
            },
            None,
        ),
    );
    pipeline.set_clock(Clock::identity());
    let mut chunks = 0;
    for step in steps {
        let ts_enter = 1000 * (chunks + 1);
        match step {
            Step::Chunk { dir, data, .. } => {
                chunks += 1;
                let written = (*dir == Direction::Egress) == mode.client;
                let cap = mode.capture.unwrap_or(data.len()).min(data.len());
                let tail = if cap < data.len() {
                    &data[data.len() - TAIL.min(data.len() - cap)..]
                } else {
                    &[]
                };
                pipeline.handle(Event::Data {
                    header: DataHeader {
                        ingress: !written,
                        pid: 7,
                        tid: 7,
                        fd: 5,
                        sock_id: 99,
                        ts_enter,
                        ts_exit: ts_enter + 10,
                        total_len: data.len() as u64,
                        tuple: tuple(mode.client),
                        ctx: TraceCtx::default(),
                        tls: false,
                    },
                    payload: &data[..cap],
                    tail,
                });
            }
            Step::Close => pipeline.handle(Event::Close {
                pid: 7,
                fd: 5,
                sock_id: 99,
                ts: ts_enter,
            }),
        }
    }
    pipeline.finish_all();
    let mut text = format!("mode {}\n", mode.name());
    for span in pipeline.sink_mut().iter() {
        render(&mut text, span);
    }
    let counters: Vec<String> = stats
        .snapshot()
        .into_iter()
        .filter(|&(name, v)| v != 0 && name != "data_events")
        .map(|(name, v)| format!("{name}={v}"))
        .collect();
    let _ = writeln!(text, "counters {}", counters.join(" "));
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn ns(t: std::time::SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn render(text: &mut String, span: &SpanRecord) {
    let status = match &span.status {
        Status::Unset => "Unset".to_owned(),
        Status::Ok => "Ok".to_owned(),
        Status::Error { description } => format!("Error({description:?})"),
    };
    // Ids made up by the agent are random; those from a header are not.
    let parent = span.parent_span_id.map_or("-".to_owned(), |p| {
        format!("{}/{}", hex(&span.trace_id), hex(&p))
    });
    let _ = writeln!(
        text,
        "span {:?} {:?} {}..{} {status} parent={parent}",
        span.kind,
        span.name,
        ns(span.start),
        ns(span.end),
    );
    for kv in &span.attributes {
        let _ = writeln!(text, "  {}={}", kv.key, kv.value);
    }
}

pub(super) fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/http2")
}

fn significant_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

#[test]
fn golden_fixtures() {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    fixtures.sort();
    assert!(
        fixtures.len() >= 2,
        "fixtures missing from {:?}",
        fixture_dir()
    );
    let bless = std::env::var_os(BLESS_VAR).is_some();
    let mut failures = Vec::new();
    for path in &fixtures {
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let steps = fixture::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let actual: String = Mode::ALL.iter().map(|&m| run(&steps, m) + "\n").collect();
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).expect("expected file writable");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if significant_lines(&expected) != significant_lines(&actual) {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
