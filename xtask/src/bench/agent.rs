//! The agent under test: started fresh for each traced phase, stopped with
//! SIGINT, its final `tracer: stats:` line read back.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::procs::Proc;

/// How long the agent may take to load and attach its programs.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to flush and detach after SIGINT.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Agent {
    proc: Proc,
    log: PathBuf,
}

impl Agent {
    /// Starts `bin args...` with stderr in `log`; returns once it printed `ready`.
    pub fn start(bin: &Path, args: &[String], log: &Path) -> Result<Self> {
        let stderr =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut agent = Self {
            proc: Proc::spawn("the agent", &mut cmd)?,
            log: log.to_owned(),
        };
        let start = Instant::now();
        loop {
            if agent
                .log_text()
                .lines()
                .any(|l| l.trim() == "tracer: ready")
            {
                return Ok(agent);
            }
            if let Some(status) = agent.proc.try_wait()? {
                bail!(
                    "the agent exited ({status}) before it was ready; its log ({}):\n{}",
                    log.display(),
                    agent.log_text()
                );
            }
            if start.elapsed() > READY_TIMEOUT {
                bail!(
                    "the agent was not ready after {READY_TIMEOUT:?}; see {}",
                    log.display()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn ensure_running(&mut self) -> Result<()> {
        self.proc
            .ensure_running()
            .with_context(|| format!("see the agent's log, {}", self.log.display()))
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGINT, wait for a clean exit, and return its final counters.
    pub fn stop(mut self) -> Result<BTreeMap<String, u64>> {
        let status = self
            .proc
            .signal_and_wait(libc::SIGINT, EXIT_TIMEOUT)?
            .with_context(|| {
                format!(
                    "the agent did not exit within {EXIT_TIMEOUT:?} of SIGINT; see {}",
                    self.log.display()
                )
            })?;
        let log = self.log_text();
        if !status.success() {
            bail!("the agent exited with {status}; its log:\n{log}");
        }
        let line = log
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("tracer: stats:"))
            .with_context(|| format!("no `tracer: stats:` line in {}", self.log.display()))?;
        Ok(parse_stats(line))
    }
}

/// `name=value ...` (the agent prints only non-zero counters).
pub fn parse_stats(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_stats;

    #[test]
    fn reads_the_counters() {
        let stats = parse_stats(" events_read=12 spans_created=4 drop_ringbuf_full=1");
        assert_eq!(stats["events_read"], 12);
        assert_eq!(stats["spans_created"], 4);
        assert_eq!(stats["drop_ringbuf_full"], 1);
        assert!(parse_stats(" no events yet").is_empty());
    }
}
