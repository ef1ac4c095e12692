//! `--stdout`: JSON lines gathered per batch and written under one lock, so
//! lines from other writers never interleave with ours mid-line.
use std::io::{self, Write};

use super::json;
use crate::spans::record::SpanRecord;

pub struct StdoutSink<W = io::Stdout> {
    out: W,
    buf: Vec<u8>,
    lines: usize,
    /// Set once the reader went away: printing stops, exporting goes on.
    closed: bool,
}

impl StdoutSink {
    pub fn new() -> Self {
        Self::with_writer(io::stdout())
    }
}

impl<W: LockedWrite> StdoutSink<W> {
    pub fn with_writer(out: W) -> Self {
        Self {
            out,
            buf: Vec::new(),
            lines: 0,
            closed: false,
        }
    }

    pub fn push(&mut self, record: &SpanRecord) {
        if !self.closed {
            json::write_line(&mut self.buf, record);
            self.lines += 1;
        }
    }

    /// Lines waiting for the next [`Self::flush`].
    pub fn buffered_lines(&self) -> usize {
        self.lines
    }

    pub fn flush(&mut self) {
        if self.closed || self.buf.is_empty() {
            return;
        }
        if let Err(e) = self.out.write_locked(&self.buf) {
            // EPIPE (`tracer --stdout | head`) is the usual end; any other
            // error is no more recoverable, and the spans still go to OTLP.
            if e.kind() != io::ErrorKind::BrokenPipe {
                log::warn!("stdout write failed, no longer printing spans: {e}");
            }
            self.closed = true;
            self.buf = Vec::new();
        }
        self.buf.clear();
        self.lines = 0;
    }

    #[cfg(test)]
    pub fn writer(&self) -> &W {
        &self.out
    }
}

/// Write a whole buffer while holding the writer's lock, then flush.
pub trait LockedWrite {
    fn write_locked(&mut self, bytes: &[u8]) -> io::Result<()>;
}

impl LockedWrite for io::Stdout {
    fn write_locked(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut lock = self.lock();
        lock.write_all(bytes)?;
        lock.flush()
    }
}

impl LockedWrite for Vec<u8> {
    fn write_locked(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::convert::tests::record;

    struct BrokenPipe(usize);

    impl LockedWrite for BrokenPipe {
        fn write_locked(&mut self, _: &[u8]) -> io::Result<()> {
            self.0 += 1;
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn lines_are_written_per_flush() {
        let mut sink = StdoutSink::with_writer(Vec::new());
        sink.push(&record(1));
        sink.push(&record(2));
        assert_eq!(sink.buffered_lines(), 2);
        assert!(sink.writer().is_empty());
        sink.flush();
        assert_eq!(sink.buffered_lines(), 0);
        let text = String::from_utf8(sink.writer().clone()).unwrap();
        assert_eq!(text.lines().count(), 2);
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    #[test]
    fn closed_stdout_stops_printing() {
        let mut sink = StdoutSink::with_writer(BrokenPipe(0));
        sink.push(&record(1));
        sink.flush();
        sink.push(&record(2));
        sink.flush();
        assert_eq!(sink.writer().0, 1);
        assert_eq!(sink.buffered_lines(), 0);
    }
}
