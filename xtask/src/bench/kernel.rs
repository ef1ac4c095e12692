//! Kernel-side cost: run time and run count of the agent's eBPF programs
//! (BPF_ENABLE_STATS), and what each program is attached to.

use std::{collections::BTreeMap, fs, os::fd::OwnedFd};

use anyhow::{Context as _, Result};
use aya::{
    programs::loaded_programs,
    sys::{Stats, enable_stats},
};

/// Keeps the kernel's per-program statistics on while alive. Same effect as
/// `sysctl kernel.bpf_stats_enabled=1`, but the kernel turns it off again by
/// itself when the descriptor closes, even if xtask is killed.
pub struct StatsOn {
    _fd: OwnedFd,
}

pub fn stats_on() -> Result<StatsOn> {
    let fd = enable_stats(Stats::RunTime)
        .context("cannot enable eBPF run-time statistics (BPF_ENABLE_STATS)")?;
    Ok(StatsOn { _fd: fd })
}

/// One program at one moment.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    /// `kprobe` (kprobes and uprobes), `tracepoint`, ...
    pub kind: String,
    /// Where it is attached (tracepoint names), from the agent's link fds.
    pub attached_to: Vec<String>,
    pub run_time_ns: u64,
    pub run_count: u64,
}

impl Program {
    /// Uprobes and kprobes share a program type: both are a breakpoint trap.
    pub fn is_probe(&self) -> bool {
        self.kind == "kprobe"
    }
}

/// The agent's programs, by program id.
pub type Snapshot = BTreeMap<u32, Program>;

/// Reads the statistics of the programs process `pid` holds open.
pub fn snapshot(pid: u32) -> Result<Snapshot> {
    let held = held_by(pid)?;
    let mut programs = Snapshot::new();
    for info in loaded_programs() {
        // A program unloaded while we list them is not ours to report.
        let Ok(info) = info else { continue };
        let Some(attached_to) = held.get(&info.id()) else {
            continue;
        };
        let kind = format!("{:?}", info.program_type());
        let kind = kind
            .strip_prefix("BPF_PROG_TYPE_")
            .unwrap_or(&kind)
            .to_lowercase();
        programs.insert(
            info.id(),
            Program {
                name: info.name_as_str().unwrap_or("?").to_owned(),
                kind,
                attached_to: attached_to.clone(),
                run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                run_count: info.run_count(),
            },
        );
    }
    Ok(programs)
}

/// Run time of every eBPF program loaded on the machine, in ns: what
/// others (other agents, other tests) add is noise in the figures.
pub fn total_run_time_ns() -> u64 {
    loaded_programs()
        .flatten()
        .map(|info| u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX))
        .sum()
}

/// Program ids among `pid`'s open descriptors, with the tracepoints their
/// links name (`/proc/PID/fdinfo`: `prog_id:` and, for links, `tp_name:`).
fn held_by(pid: u32) -> Result<BTreeMap<u32, Vec<String>>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut held: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        // Descriptors come and go while we read: skip those that went.
        let Ok(info) = entry.and_then(|e| fs::read_to_string(e.path())) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
        };
        let Some(id) = field("prog_id:").and_then(|id| id.parse().ok()) else {
            continue;
        };
        let points = held.entry(id).or_default();
        if let Some(tp) = field("tp_name:") {
            points.push(tp.to_owned());
        }
    }
    for points in held.values_mut() {
        points.sort();
        points.dedup();
    }
    Ok(held)
}

/// What each program did between two snapshots (programs present in both).
pub fn delta(before: &Snapshot, after: &Snapshot) -> Vec<Program> {
    after
        .iter()
        .filter_map(|(id, later)| {
            let earlier = before.get(id)?;
            Some(Program {
                run_time_ns: later.run_time_ns.saturating_sub(earlier.run_time_ns),
                run_count: later.run_count.saturating_sub(earlier.run_count),
                ..later.clone()
            })
        })
        .collect()
}
