//! Child processes that cannot outlive the benchmark, and what /proc says
//! about a process.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    process::{Child, Command, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// A running child, stopped (SIGTERM, then SIGKILL) when dropped, so that
/// an error or a panic anywhere leaves nothing behind. The kernel also kills
/// it with SIGKILL should xtask itself die first (PR_SET_PDEATHSIG).
pub struct Proc {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        let line = cmd::display(cmd);
        println!("$ {line}");
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: `{line}`"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .with_context(|| format!("cannot wait for {}", self.name))?;
        }
        Ok(self.exited)
    }

    /// An error if it has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("{} exited unexpectedly ({status})", self.name),
        }
    }

    /// Sends `signal`, then waits up to `grace` for the exit; `None` if it
    /// is still running then.
    pub fn signal_and_wait(&mut self, signal: i32, grace: Duration) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.try_wait()? {
            return Ok(Some(status));
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill has no memory-safety preconditions; the child is not
        // reaped yet, so the pid still names it.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(None)
    }

    /// SIGTERM, then SIGKILL after a few seconds; reaps it.
    pub fn stop(&mut self) {
        match self.signal_and_wait(libc::SIGTERM, Duration::from_secs(5)) {
            Ok(Some(_)) => {}
            _ => {
                eprintln!("bench: {} ignored SIGTERM, killing it", self.name);
                let _ = self.child.kill();
                if let Ok(status) = self.child.wait() {
                    self.exited = Some(status);
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port on 127.0.0.1 that nothing listens on right now.
/// SIGHUP to `pid`, a server the bench started (and has not reaped).
pub fn signal_hup(pid: u32) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot signal the server");
    }
    Ok(())
}

pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `port` on 127.0.0.1 accepts connections (and `proc` lives).
pub fn wait_listening(proc: &mut Proc, port: u16, timeout: Duration) -> Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        proc.ensure_running()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// CPU time of the whole process (all threads), in ms.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub user_ms: f64,
    pub system_ms: f64,
}

impl Cpu {
    pub fn total_ms(self) -> f64 {
        self.user_ms + self.system_ms
    }

    pub fn since(self, earlier: Self) -> Self {
        Self {
            user_ms: self.user_ms - earlier.user_ms,
            system_ms: self.system_ms - earlier.system_ms,
        }
    }
}

/// utime and stime of /proc/PID/stat.
pub fn cpu(pid: u32) -> Result<Cpu> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected {path}: {stat:?}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of proc(5), utime 14, stime 15.
    let ms = |i: usize| -> Result<f64> {
        let ticks: u64 = fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no field {i} in {path}"))?;
        Ok(ticks as f64 * 1000.0 / clock_ticks_per_second())
    };
    Ok(Cpu {
        user_ms: ms(14)?,
        system_ms: ms(15)?,
    })
}

/// Context switches (voluntary + involuntary) of all of `pid`'s threads:
/// each is a thread that went to sleep or was preempted.
pub fn context_switches(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for task in fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        // A thread that exited meanwhile has nothing more to count.
        let Ok(status) = task.and_then(|t| fs::read_to_string(t.path().join("status"))) else {
            continue;
        };
        total += status
            .lines()
            .filter_map(|line| {
                let value = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))?;
                value.trim().parse::<u64>().ok()
            })
            .sum::<u64>();
    }
    Ok(total)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// Resident set size now and at its peak, in KiB.
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in {path}"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// Waits until `pid` has used no CPU for two samples in a row (it has
/// caught up with what was queued for it), at most `limit`.
pub fn wait_idle(pid: u32, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut last = cpu(pid)?.total_ms();
    let mut quiet = 0;
    while quiet < 2 && start.elapsed() < limit {
        thread::sleep(Duration::from_millis(100));
        let now = cpu(pid)?.total_ms();
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures() {
        let pid = std::process::id();
        assert!(cpu(pid).unwrap().total_ms() >= 0.0);
        assert!(context_switches(pid).unwrap() > 0);
        let mem = memory(pid).unwrap();
        assert!(mem.rss_kib > 0 && mem.hwm_kib >= mem.rss_kib);
    }
}
