//! Golden fixtures: captured-style conversations and the exchanges they must
//! give. The format is described in `tests/fixtures/http1/README.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::*;

const BLESS_VAR: &str = "HTTP1_GOLDEN_BLESS";

#[derive(Debug)]
enum Event {
    Chunk {
        dir: Direction,
        data: Vec<u8>,
        uncaptured: u64,
        tail: Vec<u8>,
    },
    Close,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/http1")
}

fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).map_err(|e| e.to_string())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|e| format!("\\x{hex}: {e}"))?);
            }
            other => return Err(format!("unknown escape {other:?}")),
        }
    }
    Ok(out)
}

/// The text after a one-character marker and the space following it.
fn after_marker(line: &str) -> &str {
    let rest = &line[1..];
    rest.strip_prefix(' ').unwrap_or(rest)
}

fn parse_fixture(text: &str) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let fail = |e: String| format!("line {}: {e}", number + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "close" {
            events.push(Event::Close);
            continue;
        }
        let last_chunk = events.last_mut().and_then(|e| match e {
            Event::Chunk {
                data,
                uncaptured,
                tail,
                ..
            } => Some((data, uncaptured, tail)),
            Event::Close => None,
        });
        match line.as_bytes()[0] {
            marker @ (b'>' | b'<') => events.push(Event::Chunk {
                dir: if marker == b'>' {
                    Direction::Egress
                } else {
                    Direction::Ingress
                },
                data: unescape(after_marker(line)).map_err(fail)?,
                uncaptured: 0,
                tail: Vec::new(),
            }),
            b'.' => {
                let (data, ..) = last_chunk.ok_or_else(|| fail("`.` without a chunk".into()))?;
                data.extend(unescape(after_marker(line)).map_err(fail)?);
            }
            b'+' => {
                let (_, uncaptured, tail) =
                    last_chunk.ok_or_else(|| fail("`+` without a chunk".into()))?;
                let rest = after_marker(line);
                let (count, tail_text) = rest.split_once(' ').unwrap_or((rest, ""));
                *uncaptured = count.parse().map_err(|e| fail(format!("{count:?}: {e}")))?;
                *tail = unescape(tail_text).map_err(fail)?;
            }
            _ => return Err(fail(format!("unknown directive {line:?}"))),
        }
    }
    Ok(events)
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
        let events = parse_fixture(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
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

#[test]
fn fixture_format() {
    let events = parse_fixture("# c\n> GET\\r\\n\n. \\x41\\\\\n+ 10 \\n\n\n< x\nclose\n").unwrap();
    assert_eq!(events.len(), 3);
    match &events[0] {
        Event::Chunk {
            dir,
            data,
            uncaptured,
            tail,
        } => {
            assert_eq!(*dir, Direction::Egress);
            assert_eq!(data, b"GET\r\nA\\");
            assert_eq!((*uncaptured, tail.as_slice()), (10, &b"\n"[..]));
        }
        Event::Close => panic!("chunk expected"),
    }
    assert!(matches!(events[2], Event::Close));
    assert!(parse_fixture(". x").is_err());
    assert!(parse_fixture("> \\q").is_err());
    assert!(parse_fixture("? x").is_err());
}
