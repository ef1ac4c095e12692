//! Golden fixtures: captured-style conversations and the exchanges they must
//! give. The format is described in `tests/fixtures/http1/README.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::*;
use crate::protocols::fixture::{self, Event};

const BLESS_VAR: &str = "HTTP1_GOLDEN_BLESS";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/http1")
}

/// Runs the events; with `bytewise`, every chunk is fed a byte at a time
/// (each byte keeping its chunk's timestamps).
fn run(events: &[Event], bytewise: bool) -> String {
    let mut conn = Http1Connection::new(Limits::default());
    let mut out = Output::default();
    let mut chunks = 0;
    for event in events {
        let ts_start = 1000 * (chunks + 1);
        match event {
            Event::Chunk {
                dir,
                data,
                uncaptured,
                tail,
            } => {
                chunks += 1;
                if bytewise {
                    for byte in data {
                        let chunk =
                            Chunk::complete(std::slice::from_ref(byte), ts_start, ts_start + 10);
                        conn.feed(*dir, &chunk, &mut out);
                    }
                } else {
                    let chunk = Chunk {
                        data,
                        total_len: data.len() as u64 + uncaptured,
                        tail,
                        ts_start,
                        ts_end: ts_start + 10,
                    };
                    conn.feed(*dir, &chunk, &mut out);
                }
            }
            Event::Close => conn.close(ts_start, &mut out),
        }
    }
    render(&conn, &out)
}

fn render(conn: &Http1Connection, out: &Output) -> String {
    let mut text = String::new();
    let http = conn
        .is_http()
        .map_or("undecided", |h| if h { "true" } else { "false" });
    let dir = conn
        .request_direction()
        .map_or("none".to_owned(), |d| format!("{d:?}"));
    let _ = writeln!(text, "http {http}\nrequest_direction {dir}");
    for e in &out.exchanges {
        let response = e.response.as_ref().map_or("-".to_owned(), |r| {
            format!("{} {}", r.status, r.version.as_str())
        });
        let _ = writeln!(
            text,
            "exchange {} {} {} -> {response} req_body={} resp_body={} {:?} req={}..{} resp={}..{}",
            e.request.method,
            e.request.target,
            e.request.version.as_str(),
            e.request_body_bytes,
            e.response_body_bytes,
            e.outcome,
            e.request_start,
            e.request_end,
            e.response_start,
            e.response_end,
        );
    }
    for error in &out.errors {
        let _ = writeln!(text, "error {error:?}");
    }
    text
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
        fixtures.len() >= 5,
        "fixtures missing from {:?}",
        fixture_dir()
    );
    let bless = std::env::var_os(BLESS_VAR).is_some();
    let mut failures = Vec::new();
    for path in &fixtures {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let events = fixture::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let actual = run(&events, false);
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).expect("expected file writable");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if significant_lines(&expected) != actual {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
        let gapless = events
            .iter()
            .all(|e| matches!(e, Event::Chunk { uncaptured: 0, .. } | Event::Close));
        if gapless {
            let bytewise = run(&events, true);
            if bytewise != actual {
                failures.push(format!(
                    "{name} byte by byte:\n--- whole chunks\n{actual}--- bytewise\n{bytewise}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
