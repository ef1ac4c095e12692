//! The agent under test: the real binary, started as a child, ready once it
//! says so on stderr, stopped with SIGTERM (which must flush and exit 0).
use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, ExitStatus},
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{
    otlp_receiver::{Protocol, Receiver},
    process::Proc,
};

/// Loading and attaching every program may take a while on a busy machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM → flush → detach → exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running agent; killed if dropped without `stop`.
pub struct Agent {
    proc: Proc,
}

/// How the agent ended.
#[derive(Debug)]
pub struct AgentExit {
    pub status: ExitStatus,
    pub stderr: String,
    pub stdout: String,
}

impl AgentExit {
    /// The counters of the last summary line on stderr.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        parse_counters(&self.stderr).unwrap_or_default()
    }

    /// A counter's value; a counter left out of the summary is 0.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters().get(name).copied().unwrap_or(0)
    }

    /// Every `drop_*` counter that is not zero.
    pub fn nonzero_drops(&self) -> BTreeMap<String, u64> {
        self.counters()
            .into_iter()
            .filter(|(k, v)| k.starts_with("drop_") && *v != 0)
            .collect()
    }

    /// Errors unless the agent exited 0, printed a summary, and dropped
    /// nothing.
    pub fn check_clean(&self) -> anyhow::Result<()> {
        if !self.status.success() {
            bail!(
                "agent exited with {} (expected 0)\nstderr:\n{}",
                self.status,
                self.stderr
            );
        }
        if parse_counters(&self.stderr).is_none() {
            bail!(
                "agent printed no counter summary at exit\nstderr:\n{}",
                self.stderr
            );
        }
        let drops = self.nonzero_drops();
        if !drops.is_empty() {
            bail!("agent dropped data: {drops:?}\nstderr:\n{}", self.stderr);
        }
        Ok(())
    }
}

impl Agent {
    /// Starts the agent exporting to `receiver` over `protocol`, with
    /// `args` appended (selection flags), and waits for its ready line.
    pub fn start(
        bin: &Path,
        args: &[&str],
        receiver: &Receiver,
        protocol: Protocol,
    ) -> anyhow::Result<Agent> {
        let endpoint = receiver.endpoint(protocol);
        let mut full = vec![
            "--otlp-endpoint",
            endpoint.as_str(),
            "--otlp-protocol",
            protocol.flag_value(),
        ];
        full.extend_from_slice(args);
        Agent::start_raw(bin, &full)
    }

    /// Starts the agent with exactly `args` and waits for its ready line.
    pub fn start_raw(bin: &Path, args: &[&str]) -> anyhow::Result<Agent> {
        Agent::start_with_env(bin, args, &[])
    }

    /// [`Agent::start_raw`] with these environment variables set.
    pub fn start_with_env(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Agent> {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        // Why a connection was given up, in the output of a failed test
        // (protocol drops are rare and each says which connection).
        cmd.env("RUST_LOG", "info,tracer::conn::pipeline=debug");
        cmd.envs(env.iter().copied());
        eprintln!("[harness] starting {} {}", bin.display(), args.join(" "));
        let mut proc = Proc::spawn("tracer", cmd, true)?;
        let ready = proc.stderr.wait_line(READY_TIMEOUT, is_ready_line);
        if !ready {
            let exited = proc.try_wait()?;
            let why = match exited {
                Some(status) => format!("exited with {status} before it was ready"),
                None => format!("not ready within {READY_TIMEOUT:?}"),
            };
            proc.kill();
            bail!("agent {why}\nstderr:\n{}", proc.stderr.text());
        }
        Ok(Agent { proc })
    }

    /// Waits until the agent logged a line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.proc.stderr.wait_line(timeout, |l| l.contains(needle))
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// What the agent printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr.text()
    }

    /// SIGTERM, then wait for it to flush and exit.
    pub fn stop(mut self) -> anyhow::Result<AgentExit> {
        if self.proc.try_wait()?.is_none() {
            self.proc.signal(libc::SIGTERM)?;
        }
        let status = self
            .proc
            .wait(STOP_TIMEOUT)
            .context("agent did not exit after SIGTERM")?;
        Ok(AgentExit {
            status,
            stderr: self.proc.stderr.text(),
            stdout: self.proc.stdout.text(),
        })
    }
}

/// Runs the agent with `args` until it exits by itself (for flag errors).
pub fn run_to_exit(bin: &Path, args: &[&str], timeout: Duration) -> anyhow::Result<AgentExit> {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    let mut proc = Proc::spawn("tracer", cmd, true)?;
    let status = proc.wait(timeout)?;
    Ok(AgentExit {
        status,
        stderr: proc.stderr.text(),
        stdout: proc.stdout.text(),
    })
}

/// "ready" as a word (so "already" does not count).
pub fn is_ready_line(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.match_indices("ready").any(|(i, m)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + m.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Counter names the agent's summary uses start with one of these.
const COUNTER_PREFIXES: &[&str] = &[
    "drop_", "spans_", "events_", "data_", "http_", "export_", "kernel_", "conn",
];

/// The `name=value` pairs of the last counter summary line, or `None` if
/// there is none. A summary with nothing to report ("no events yet") is an
/// empty map: counters left out are zero.
pub fn parse_counters(stderr: &str) -> Option<BTreeMap<String, u64>> {
    stderr.lines().rev().find_map(|line| {
        if line.contains("no events yet") {
            return Some(BTreeMap::new());
        }
        let pairs: BTreeMap<String, u64> = line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter_map(|token| {
                let (name, value) = token.split_once('=')?;
                let valid_name = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                let value = value.parse::<u64>().ok()?;
                valid_name.then(|| (name.to_owned(), value))
            })
            .collect();
        pairs
            .keys()
            .any(|k| COUNTER_PREFIXES.iter().any(|p| k.starts_with(p)))
            .then_some(pairs)
    })
}

/// `--pid P` for each of `pids`.
pub fn pid_args(pids: &[u32]) -> Vec<String> {
    pids.iter()
        .flat_map(|p| ["--pid".to_owned(), p.to_string()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_a_word() {
        assert!(is_ready_line("[INFO tracer] ready: 14 programs attached"));
        assert!(is_ready_line("Ready"));
        assert!(is_ready_line("tracer: all probes attached, ready"));
        assert!(!is_ready_line("program already attached"));
        assert!(!is_ready_line("not_ready_yet"));
    }

    #[test]
    fn parses_the_last_summary() {
        let stderr = "\
[INFO tracer] ready
[INFO tracer::stats] events_read=10 spans_created=1
[WARN tracer] pid=42 exited
[INFO tracer::stats] events_read=30 data_events=12 spans_created=12 drop_ringbuf_full=0 drop_http_parse_error=2
[INFO tracer] detached
";
        let counters = parse_counters(stderr).unwrap();
        assert_eq!(counters.get("spans_created"), Some(&12));
        assert_eq!(counters.get("drop_http_parse_error"), Some(&2));
        assert_eq!(counters.len(), 5);
    }

    #[test]
    fn no_summary_is_none_and_empty_summary_is_empty() {
        assert_eq!(parse_counters("ready\npid=4 port=80\n"), None);
        assert_eq!(
            parse_counters("stats: spans_created=3\nstats: no events yet\n"),
            Some(BTreeMap::new())
        );
    }
}
