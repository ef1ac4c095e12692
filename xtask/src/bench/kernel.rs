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
    /// Where it is attached (tracepoint names; `uprobe libssl.so.3`), from
    /// the agent's link fds.
    pub attached_to: Vec<String>,
    /// Held through a link, i.e. attached to a hook. A program only ever
    /// tail-called (the TLS uprobes' `tls_classify`, `tls_server_context`,
    /// `tls_server_decide`) is held only through its program fd.
    pub linked: bool,
    pub run_time_ns: u64,
    pub run_count: u64,
}

impl Program {
    /// Whether its runs are uprobe (or kprobe) hits: those share a program
    /// type, and each is a breakpoint trap. A tail-called program of that
    /// type is not one: the kernel counts runs only where a hook runs a
    /// program, so a tail call's are counted for its caller (the callee
    /// stays at 0), and it is left out here so that it never could be.
    pub fn is_probe(&self) -> bool {
        self.kind == "kprobe" && self.linked
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
        let Some(held) = held.get(&info.id()) else {
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
                attached_to: held.points.clone(),
                linked: held.linked,
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

/// How a process holds one program.
#[derive(Debug, Default, PartialEq)]
struct Held {
    /// What its links are attached to.
    points: Vec<String>,
    /// Through at least one link.
    linked: bool,
}

/// Program ids among `pid`'s open descriptors, with what their links are
/// attached to.
fn held_by(pid: u32) -> Result<BTreeMap<u32, Held>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut held: BTreeMap<u32, Held> = BTreeMap::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        // Descriptors come and go while we read: skip those that went.
        let Ok(info) = entry.and_then(|e| fs::read_to_string(e.path())) else {
            continue;
        };
        add_fdinfo(&mut held, &info);
    }
    for program in held.values_mut() {
        program.points.sort();
        program.points.dedup();
    }
    Ok(held)
}

/// One descriptor's `/proc/PID/fdinfo`: `prog_id:` for a program or a
/// link; a link also has `link_type:`, and `tp_name:` (a tracepoint) or
/// `event_type:` and `name:` (a uprobe's file; its offset is left out:
/// one program on several functions of a library is one row).
fn add_fdinfo(held: &mut BTreeMap<u32, Held>, info: &str) {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };
    let Some(id) = field("prog_id:").and_then(|id| id.parse().ok()) else {
        return;
    };
    let program = held.entry(id).or_default();
    if field("link_type:").is_none() {
        return;
    }
    program.linked = true;
    if let Some(tp) = field("tp_name:") {
        program.points.push(tp.to_owned());
    } else if let (Some(event), Some(file)) = (field("event_type:"), field("name:")) {
        let file = file.rsplit('/').next().unwrap_or(file);
        program.points.push(format!("{event} {file}"));
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{Held, Program, add_fdinfo};

    #[test]
    fn links_and_tail_called_programs() {
        let mut held = BTreeMap::new();
        // A tracepoint link, a uprobe link on two functions of one file, a
        // uretprobe link, and program fds (what a tail-called program has,
        // through the program array the agent fills).
        for info in [
            "pos:\t0\nlink_type:\tperf\nlink_id:\t1\nprog_tag:\tab\nprog_id:\t10\n\
             tp_name:\tsys_exit_read\nevent_type:\ttracepoint\ncookie:\t0\n",
            "link_type:\tperf\nprog_id:\t11\nname:\t/usr/lib/x86_64-linux-gnu/libssl.so.3\n\
             offset:\t0x35980\nevent_type:\tuprobe\n",
            "link_type:\tperf\nprog_id:\t11\nname:\t/usr/lib/x86_64-linux-gnu/libssl.so.3\n\
             offset:\t0x35a10\nevent_type:\tuprobe\n",
            "link_type:\tperf\nprog_id:\t12\nname:\t/usr/lib/x86_64-linux-gnu/libssl.so.3\n\
             offset:\t0x35430\nevent_type:\turetprobe\n",
            "pos:\t0\nprog_type:\t2\nprog_jited:\t1\nprog_tag:\tcd\nprog_id:\t11\n",
            "pos:\t0\nprog_type:\t2\nprog_jited:\t1\nprog_tag:\tef\nprog_id:\t13\n",
            "pos:\t0\nflags:\t02\n",
        ] {
            add_fdinfo(&mut held, info);
        }
        for program in held.values_mut() {
            program.points.dedup();
        }
        let linked = |points: &[&str]| Held {
            points: points.iter().map(|p| (*p).to_owned()).collect(),
            linked: true,
        };
        assert_eq!(held[&10], linked(&["sys_exit_read"]));
        assert_eq!(held[&11], linked(&["uprobe libssl.so.3"]));
        assert_eq!(held[&12], linked(&["uretprobe libssl.so.3"]));
        assert_eq!(held[&13], Held::default());
        assert_eq!(held.len(), 4);
    }

    #[test]
    fn a_tail_called_program_is_no_probe_hit() {
        let program = |name: &str, linked| Program {
            name: name.to_owned(),
            kind: "kprobe".to_owned(),
            attached_to: Vec::new(),
            linked,
            run_time_ns: 0,
            run_count: 1,
        };
        assert!(program("ssl_read_ret", true).is_probe());
        assert!(!program("tls_classify", false).is_probe());
        let tracepoint = Program {
            kind: "tracepoint".to_owned(),
            ..program("enter_read", true)
        };
        assert!(!tracepoint.is_probe());
    }
}
