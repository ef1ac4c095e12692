//! A stand-in OTLP/HTTP backend: accepts every POST, answers 200 with an
//! empty body (an empty ExportTraceServiceResponse) and throws the spans
//! away, so that traced phases pay for encoding and sending spans without
//! depending on a real collector.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

use anyhow::{Context as _, Result};

pub struct Sink {
    pub port: u16,
    requests: Arc<AtomicU64>,
}

impl Sink {
    /// Listens on 127.0.0.1 (an ephemeral port) in a background thread that
    /// lives as long as xtask.
    pub fn start() -> Result<Self> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot start the OTLP sink")?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                thread::spawn(move || {
                    // A broken connection only ends that connection.
                    let _ = serve(stream, &counter);
                });
            }
        });
        Ok(Self { port, requests })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// Export requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// HTTP/1.1 keep-alive: read a head, read the body (Content-Length or
/// chunked), answer, repeat.
fn serve(stream: TcpStream, requests: &AtomicU64) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
            }
        }
        if chunked {
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let size = line.trim().split(';').next().unwrap_or("0");
                let size = usize::from_str_radix(size, 16).unwrap_or(0);
                // The chunk and its CRLF (after the last chunk: the final CRLF).
                discard(&mut reader, size + 2)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            discard(&mut reader, length)?;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        writer.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        )?;
    }
}

fn discard(reader: &mut BufReader<TcpStream>, n: usize) -> std::io::Result<()> {
    let copied = std::io::copy(&mut reader.by_ref().take(n as u64), &mut std::io::sink())?;
    if copied < n as u64 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}
