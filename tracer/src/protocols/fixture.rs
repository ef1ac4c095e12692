//! The text format of the protocol parsers' golden fixtures: chunks a traced
//! process moved, in order, and closes (described in
//! `tests/fixtures/http1/README.md`; `=` lines, runs of one byte, in
//! `tests/fixtures/http2/README.md`).
use super::http1::Direction;

#[derive(Debug)]
pub enum Event {
    Chunk {
        dir: Direction,
        data: Vec<u8>,
        uncaptured: u64,
        tail: Vec<u8>,
    },
    Close,
}

pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
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

pub fn parse(text: &str) -> Result<Vec<Event>, String> {
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
            b'=' => {
                let (data, ..) = last_chunk.ok_or_else(|| fail("`=` without a chunk".into()))?;
                let rest = after_marker(line);
                let (count, byte) = rest.split_once(' ').unwrap_or((rest, ""));
                let count: usize = count.parse().map_err(|e| fail(format!("{count:?}: {e}")))?;
                let byte = unescape(byte).map_err(fail)?;
                let &[byte] = byte.as_slice() else {
                    return Err(fail(format!("`=` wants one byte, not {byte:?}")));
                };
                data.resize(data.len() + count, byte);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_format() {
        let events =
            parse("# c\n> GET\\r\\n\n. \\x41\\\\\n+ 10 \\n\n\n< x\n= 3 y\nclose\n").unwrap();
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
        assert!(matches!(&events[1], Event::Chunk { data, .. } if data == b"xyyy"));
        assert!(matches!(events[2], Event::Close));
        assert!(parse(". x").is_err());
        assert!(parse("> \\q").is_err());
        assert!(parse("? x").is_err());
        assert!(parse("> a\n= 2 yz").is_err());
    }
}
