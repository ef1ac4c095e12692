//! Running the gRPC load generator (tests/apps/go/grpc_load), the gRPC
//! workloads' wrk, and reading its one-line report.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};

use super::wrk::{Load, Report};
use crate::cmd;

/// Connections the callers share (wrk's `connections` are the callers).
const CONNECTIONS: u32 = 4;

/// Runs `bin` against 127.0.0.1:`port` for `duration`.
pub fn run(bin: &Path, port: u16, load: Load, duration: Duration) -> Result<Report> {
    let mut command = cmd::new(bin);
    command
        .arg("-target")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-c")
        .arg(load.connections.to_string())
        .arg("-conns")
        .arg(CONNECTIONS.min(load.connections).to_string())
        .arg("-d")
        .arg(format!("{}s", duration.as_secs().max(1)));
    let out = cmd::output(&mut command)?;
    parse(&out).with_context(|| format!("cannot read the gRPC load report:\n{out}"))
}

/// `requests=N rps=R p50_us=P p99_us=Q errors=E`.
pub fn parse(out: &str) -> Result<Report> {
    let mut report = Report::default();
    let mut seen = 0;
    for word in out.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let number = || {
            value
                .parse::<f64>()
                .with_context(|| format!("bad {key}: {value}"))
        };
        match key {
            "requests" => report.requests = number()? as u64,
            "rps" => report.requests_per_sec = number()?,
            "p50_us" => report.p50_us = number()?,
            "p99_us" => report.p99_us = number()?,
            "errors" => report.errors = number()? as u64,
            _ => continue,
        }
        seen += 1;
    }
    if seen != 5 {
        bail!("expected requests, rps, p50_us, p99_us and errors");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report_line() {
        let r = parse("requests=1200 rps=120.5 p50_us=250.0 p99_us=900.5 errors=2\n").unwrap();
        assert_eq!(
            r,
            Report {
                requests: 1200,
                requests_per_sec: 120.5,
                p50_us: 250.0,
                p99_us: 900.5,
                errors: 2,
            }
        );
        assert!(parse("requests=1 rps=x").is_err());
        assert!(parse("").is_err());
    }
}
