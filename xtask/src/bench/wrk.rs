//! Running wrk and reading its `--latency` report.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// How hard to push: wrk's threads and connections.
#[derive(Clone, Copy)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
}

impl Load {
    /// The saturating load of the budget: one thread, 32 keep-alive connections.
    pub const NORMAL: Self = Self {
        threads: 1,
        connections: 32,
    };
    /// `--overload`.
    pub const OVERLOAD: Self = Self {
        threads: 4,
        connections: 256,
    };
}

/// What one wrk run reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Requests completed (`N requests in ...`).
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Socket errors (connect + read + write + timeout) and non-2xx/3xx responses.
    pub errors: u64,
}

/// Runs wrk against `url` for `duration`; an error if it fails or prints
/// something unreadable.
pub fn run(url: &str, load: Load, duration: Duration) -> Result<Report> {
    let mut wrk = cmd::new("wrk");
    wrk.arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .args(["--timeout", "5s", "--latency", url]);
    let out = cmd::output(&mut wrk)?;
    parse(&out).with_context(|| format!("cannot read wrk's report:\n{out}"))
}

pub fn parse(out: &str) -> Result<Report> {
    let mut report = Report::default();
    let (mut p50, mut p99) = (None, None);
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => p50 = Some(micros(value)?),
            ["99%", value] => p99 = Some(micros(value)?),
            [n, "requests", "in", ..] => report.requests = n.parse()?,
            ["Requests/sec:", n] => report.requests_per_sec = n.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        report.errors += n.trim_end_matches(',').parse::<u64>()?;
                    }
                }
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => report.errors += n.parse::<u64>()?,
            _ => {}
        }
    }
    report.p50_us = p50.context("no 50% latency line")?;
    report.p99_us = p99.context("no 99% latency line")?;
    if report.requests == 0 {
        bail!("wrk completed no requests");
    }
    Ok(report)
}

/// `600.00us`, `1.23ms`, `2.00s` in microseconds.
fn micros(value: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = value.strip_suffix("m") {
        (n, 60e6)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1e6)
    } else {
        bail!("unknown latency unit in {value:?}");
    };
    Ok(number.parse::<f64>()? * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 3s test @ http://127.0.0.1:28431/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   801.14us    0.86ms  11.28ms   90.01%
    Req/Sec    45.86k     6.58k   61.71k    67.74%
  Latency Distribution
     50%  600.00us
     75%    0.99ms
     90%    1.66ms
     99%    4.24ms
  141451 requests in 3.10s, 14.43MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:  45640.60
Transfer/sec:      4.66MB
";

    #[test]
    fn reads_the_latency_report() {
        let report = parse(OUTPUT).unwrap();
        assert_eq!(report.requests, 141_451);
        assert_eq!(report.requests_per_sec, 45_640.60);
        assert_eq!(report.p50_us, 600.0);
        assert!((report.p99_us - 4240.0).abs() < 1e-6);
        assert_eq!(report.errors, 9);
    }

    #[test]
    fn latency_units() {
        assert_eq!(micros("12.5us").unwrap(), 12.5);
        assert_eq!(micros("2.00s").unwrap(), 2e6);
        assert!(micros("3h").is_err());
    }

    #[test]
    fn a_report_without_latencies_is_an_error() {
        assert!(parse("  10 requests in 1.00s, 1KB read\n").is_err());
    }
}
