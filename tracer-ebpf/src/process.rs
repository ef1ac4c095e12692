//! sched tracepoints: children of selected processes are selected too, execs
//! are reported so the agent can match executables, exits free state.
use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::{ProcEvent, counter, kind};

use crate::maps::{ARGS, EVENTS, TRACED_PIDS, config, count, wake_flags};

#[tracepoint]
pub fn sched_fork(ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    if cfg.selective == 0 {
        return 0;
    }
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: presence test only.
    if unsafe { TRACED_PIDS.get(parent).is_none() } {
        return 0;
    }
    // SAFETY: offset read by the agent from the tracepoint's format file.
    let Ok(child) = (unsafe { ctx.read_at::<u32>(cfg.fork_child_pid_offset as usize) }) else {
        return 0;
    };
    // A new thread of a selected process is not a new process.
    if child != parent {
        let _ = TRACED_PIDS.insert(child, 1, 0);
    }
    0
}

#[tracepoint]
pub fn sched_exec(_ctx: TracePointContext) -> u32 {
    report(kind::EXEC);
    0
}

#[tracepoint]
pub fn sched_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    if tid == tgid {
        report(kind::EXIT);
    }
    // A thread id left over from sched_fork, or the process itself.
    let _ = TRACED_PIDS.remove(tid);
    // The thread's syscall slot, kept from one syscall to the next.
    let _ = ARGS.remove(pid_tgid);
    0
}

#[inline(always)]
fn report(what: u8) {
    let Some(cfg) = config() else { return };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == cfg.agent_tgid {
        return;
    }
    let event = ProcEvent {
        kind: what,
        pid: tgid,
        ts: unsafe { bpf_ktime_get_ns() },
        comm: bpf_get_current_comm().unwrap_or_default(),
        ..ProcEvent::default()
    };
    // An exec wakes the agent at once: a short-lived process selected by
    // its executable must be selected before its first connection. An
    // exit waits for the next drain (a wake-up cost 17 µs a run here).
    let flags = if what == kind::EXEC { 0 } else { wake_flags() };
    if EVENTS.output::<ProcEvent>(&event, flags).is_err() {
        count(counter::RINGBUF_FULL, 1);
    }
}
