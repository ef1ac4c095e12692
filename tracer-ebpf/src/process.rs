//! sched tracepoints: children of selected processes are selected too, a
//! process that execs a selected executable is selected, execs are reported
//! so the agent can match executables the kernel could not, exits free
//! state.
use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::{EXE_NAME_LEN, ProcEvent, counter, kind};

use crate::{
    maps::{
        ARGS, EVENTS, EXE_COMMS, EXE_NAME_BUF, EXE_NAMES, TRACED_PIDS, config, count, wake_flags,
    },
    words,
};

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
        select(child);
    }
    0
}

#[tracepoint]
pub fn sched_exec(ctx: TracePointContext) -> u32 {
    select_by_exe(&ctx);
    report(kind::EXEC);
    0
}

/// Select the process if the path it executes (as given to execve) or
/// that path's file name is in EXE_NAMES. Here, before the new program's
/// first instruction: the agent's own match, when it reads the exec event,
/// comes after a short-lived client has already connected and sent its
/// first request.
#[inline(always)]
fn select_by_exe(ctx: &TracePointContext) {
    let Some(cfg) = config() else { return };
    if cfg.select_exes == 0 {
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == cfg.agent_tgid {
        return;
    }
    // SAFETY: offset read by the agent from the tracepoint's format file.
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(cfg.exec_filename_offset as usize) }) else {
        return;
    };
    // `__data_loc`: the string's length (with its NUL) and its offset in
    // the record.
    let len = (loc >> 16) as usize;
    let path = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    let Some(key) = EXE_NAME_BUF.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; programs do not nest on one CPU here.
    let key = unsafe { &mut *key };
    if len <= EXE_NAME_LEN && is_selected(key, path) {
        select(tgid);
        return;
    }
    // The file name. Exec has already named the task after its first 15
    // bytes: EXE_COMMS gives the lengths of the selected file names that
    // begin so, and each is tried as the path's tail after a '/'. (Looking
    // for the last '/' byte by byte costs the verifier a state per
    // position it may be at.)
    let Ok(comm) = bpf_get_current_comm() else {
        return;
    };
    // SAFETY: the value is only read.
    let Some(lens) = (unsafe { EXE_COMMS.get(&comm) }) else {
        return;
    };
    let path_len = len.saturating_sub(1);
    for &n in &lens.0 {
        let n = n as usize;
        if n == 0 {
            // No more lengths.
            return;
        }
        if n >= path_len {
            // A path no longer than this name has no '/' before it (a path
            // without '/' was looked up whole above).
            continue;
        }
        let name = path.wrapping_add(path_len - n);
        // SAFETY: a byte of the kernel string, before its last n bytes.
        let before = unsafe { bpf_probe_read_kernel(name.wrapping_sub(1)) };
        if before == Ok(b'/') && is_selected(key, name) {
            select(tgid);
            return;
        }
    }
}

/// Whether the NUL-terminated kernel string at `name` is in EXE_NAMES
/// (`key` is scratch space).
#[inline(always)]
fn is_selected(key: &mut tracer_common::ExeName, name: *const u8) -> bool {
    words::zero(key);
    // SAFETY: a kernel string; the helper stops at its NUL or the key's end.
    if unsafe { bpf_probe_read_kernel_str_bytes(name, &mut key.0) }.is_err() {
        return false;
    }
    // SAFETY: the value is only tested for presence.
    unsafe { EXE_NAMES.get(key).is_some() }
}

/// Add a process to TRACED_PIDS (counted when it is full).
#[inline(always)]
fn select(tgid: u32) {
    if TRACED_PIDS.insert(tgid, 1, 0).is_err() {
        count(counter::PIDS_FULL, 1);
    }
}

#[tracepoint]
pub fn sched_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    if process_gone(&ctx, tid == tgid) {
        report(kind::EXIT);
        let _ = TRACED_PIDS.remove(tgid);
    }
    // A thread id left over from sched_fork (the process's own entry goes
    // with its last thread, above).
    if tid != tgid {
        let _ = TRACED_PIDS.remove(tid);
    }
    // The thread's syscall slot, kept from one syscall to the next.
    let _ = ARGS.remove(pid_tgid);
    0
}

/// Whether the exiting thread is the process's last: the record's
/// `group_dead` where the kernel has it. The group leader's exit is not
/// enough: in an exit_group the leader may get here while another thread
/// is still inside a write, whose data would come after the process's end
/// (and where the leader exits alone, the process lives on). Kernels
/// without the field have only the leader's exit to go by.
#[inline(always)]
fn process_gone(ctx: &TracePointContext, leader: bool) -> bool {
    let Some(cfg) = config() else { return leader };
    if cfg.exit_group_dead_offset == 0 {
        return leader;
    }
    // SAFETY: offset read by the agent from the tracepoint's format file.
    unsafe { ctx.read_at::<u8>(cfg.exit_group_dead_offset as usize) }.is_ok_and(|dead| dead != 0)
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
