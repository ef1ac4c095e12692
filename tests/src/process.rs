//! A child process whose output is captured by background threads, that is
//! waited on with a timeout, and that is always killed (with its whole
//! process group) when dropped.
use std::{
    io::{BufRead as _, BufReader, Read, Write as _},
    os::unix::process::CommandExt as _,
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Output of one stream, line by line, plus whether it reached EOF.
#[derive(Default)]
pub struct Captured {
    state: Mutex<CapturedState>,
    changed: Condvar,
}

#[derive(Default)]
struct CapturedState {
    text: String,
    closed: bool,
}

impl Captured {
    pub fn text(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .text
            .clone()
    }

    /// Waits until a line satisfies `pred` (true), the stream closes or the
    /// timeout passes (false).
    pub fn wait_line(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.text.lines().any(&mut pred) {
                return true;
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, (deadline - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for a line `<prefix><port>` (a server saying where it
    /// listens) and gives the port; `None` when none came in `timeout`.
    pub fn wait_port(&self, prefix: &str, timeout: Duration) -> Option<u16> {
        let port = |l: &str| l.strip_prefix(prefix)?.trim().parse().ok();
        let mut found = None;
        self.wait_line(timeout, |l| {
            found = port(l);
            found.is_some()
        });
        found
    }

    fn push(&self, line: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.text.push_str(line);
        drop(state);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.changed.notify_all();
    }

    fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !state.closed && Instant::now() < deadline {
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// How a finished process ended.
#[derive(Debug)]
pub struct Finished {
    pub pid: u32,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Errors unless the process exited with status 0.
    pub fn ok(self) -> anyhow::Result<Finished> {
        if !self.status.success() {
            bail!(
                "process {} failed: {}\nstdout:\n{}\nstderr:\n{}",
                self.pid,
                self.status,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// A running child in a process group of its own.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub stdout: Arc<Captured>,
    pub stderr: Arc<Captured>,
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Spawns a program that prints `WAITING` and waits for a line on stdin
    /// before it starts (so the agent can select it by pid before it
    /// connects); panics unless it gets there within 20 s.
    pub fn spawn_waiting(name: &str, cmd: Command) -> Proc {
        let proc = Proc::spawn(name, cmd, true).expect("spawning");
        assert!(
            proc.stdout
                .wait_line(Duration::from_secs(20), |l| l.trim() == "WAITING"),
            "{name} did not start: {}{}",
            proc.stdout.text(),
            proc.stderr.text()
        );
        proc
    }

    /// Spawns `cmd` with piped stdio. `echo` prefixes each stderr line with
    /// `[name]` in the test output (which libtest shows on failure).
    pub fn spawn(name: &str, mut cmd: Command, echo: bool) -> anyhow::Result<Proc> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // If the test process dies without running destructors (killed,
        // aborted), its children must not outlive it.
        // SAFETY: the closure runs between fork and exec and only calls
        // prctl, which is async-signal-safe and touches no shared state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        let stdout = Arc::new(Captured::default());
        let stderr = Arc::new(Captured::default());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(reader(out, stdout.clone(), None));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(reader(err, stderr.clone(), echo.then(|| name.to_owned())));
        }
        Ok(Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes to the child's stdin and flushes.
    pub fn write_stdin(&mut self, data: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        stdin.write_all(data.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The exit status if it has exited.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    /// Waits for the process to exit; kills it (and errors) after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                self.join_readers();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "{} (pid {}) did not exit within {timeout:?}; killed it\nstdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.pid(),
                    self.stdout.text(),
                    self.stderr.text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for exit and returns what it printed.
    pub fn finish(mut self, timeout: Duration) -> anyhow::Result<Finished> {
        self.close_stdin();
        let status = self.wait(timeout)?;
        Ok(Finished {
            pid: self.pid(),
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        })
    }

    /// Sends `signal` to the process (not its group).
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.pid())?;
        // SAFETY: kill has no memory preconditions; the pid is our child's,
        // not reaped yet (we hold the Child), so it cannot have been reused.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIGKILLs the whole process group and reaps the child.
    pub fn kill(&mut self) {
        if let Ok(pgid) = libc::pid_t::try_from(self.pid()) {
            // SAFETY: as in `signal`; a negative pid names the group we made
            // for this child (process_group(0)).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exited = Some(status);
        }
        self.join_readers();
    }

    /// Pids of every process in this child's process group (the child and
    /// what it forked, e.g. nginx's workers).
    pub fn group_pids(&self) -> Vec<u32> {
        let pgid = self.pid();
        let mut pids = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the parenthesised command: state ppid pgrp ...
            let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
                continue;
            };
            if rest
                .split_whitespace()
                .nth(2)
                .and_then(|s| s.parse::<u32>().ok())
                == Some(pgid)
            {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids
    }

    fn join_readers(&mut self) {
        // Grandchildren may hold the pipes open: don't wait on them forever.
        self.stdout.wait_closed(Duration::from_secs(2));
        self.stderr.wait_closed(Duration::from_secs(2));
        for handle in std::mem::take(&mut self.readers) {
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Once reaped, the group id may name someone else's group: only a
        // live child's group is killed.
        if self.exited.is_none() {
            self.kill();
        }
    }
}

fn reader(
    stream: impl Read + Send + 'static,
    sink: Arc<Captured>,
    echo: Option<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    if let Some(prefix) = &echo {
                        eprint!("[{prefix}] {line}");
                        if !line.ends_with('\n') {
                            eprintln!();
                        }
                    }
                    sink.push(&line);
                }
            }
        }
        sink.close();
    })
}
