//! Maps shared by all programs, and small helpers around them.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use tracer_common::{
    Config, DataEvent, ExeLens, ExeName, H2HeadsEvent, MAX_CAPTURE, SockInfo, SyscallArgs,
    TASK_COMM_LEN, counter,
};

/// Default ring buffer size; the agent can resize it before loading.
const EVENTS_BYTES: u32 = 8 * 1024 * 1024;

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Programs tail-called by slot (`tracer_common::tail`).
#[map]
pub static TAIL_CALLS: ProgramArray = ProgramArray::with_max_entries(tracer_common::tail::COUNT, 0);

#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// tgid -> 1 for selected processes (only used when Config::selective).
#[map]
pub static TRACED_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// port -> 1 for selected ports (only used when Config::select_ports).
#[map]
pub static TRACED_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(1024, 0);

/// Executables selected by --exe -> 1: a process that execs one is selected
/// by `process::sched_exec` itself (only used when Config::select_exes).
#[map]
pub static EXE_NAMES: HashMap<ExeName, u8> = HashMap::with_max_entries(64, 0);

/// The first 15 bytes of a selected executable's file name (the task name
/// an exec of it gets) -> the lengths of the selected file names that begin
/// so (see `process::select_by_exe`).
#[map]
pub static EXE_COMMS: HashMap<[u8; TASK_COMM_LEN], ExeLens> = HashMap::with_max_entries(64, 0);

/// Per-CPU place to build an EXE_NAMES key (kept off the 512-byte stack).
#[map]
pub static EXE_NAME_BUF: PerCpuArray<ExeName> = PerCpuArray::with_max_entries(1, 0);

/// (tgid << 32 | fd) -> what this fd is. LRU so that fds we never see closed
/// (dup2 over them, processes that die) cannot fill it.
#[map]
pub static SOCKS: LruHashMap<u64, SockInfo> = LruHashMap::with_max_entries(65536, 0);

/// pid_tgid -> arguments of the syscall in flight on that thread (`op` 0:
/// none). A thread's entry stays from its first traced syscall to its exit
/// (`process::sched_exit`) and is written over in place: an insert and a
/// delete per syscall cost about a sixth of a request's program time.
#[map]
pub static ARGS: HashMap<u64, SyscallArgs> = HashMap::with_max_entries(16384, 0);

/// Keep `args` as the syscall in flight on thread `pid_tgid`.
#[inline(always)]
pub fn store_args(pid_tgid: u64, args: &SyscallArgs) {
    if let Some(slot) = ARGS.get_ptr_mut(pid_tgid) {
        // SAFETY: the slot is this thread's, which only this thread writes.
        crate::words::copy(unsafe { &mut *slot }, args);
    } else if ARGS.insert(pid_tgid, args, 0).is_err() {
        count(counter::ARGS_FULL, 1);
    }
}

/// Move the syscall in flight on thread `pid_tgid` to `dst`, leaving its
/// entry empty; false when it has none.
#[inline(always)]
pub fn take_args(pid_tgid: u64, dst: *mut SyscallArgs) -> bool {
    let Some(slot) = ARGS.get_ptr_mut(pid_tgid) else {
        return false;
    };
    // SAFETY: this thread's entry, and a per-CPU slot of the same type.
    unsafe {
        if (*slot).op == 0 {
            return false;
        }
        crate::words::copy(&mut *dst, &*slot);
        (*slot).op = 0;
    }
    true
}

/// Per-CPU place to build SyscallArgs before they go into ARGS.
#[map]
pub static ARGS_BUF: PerCpuArray<SyscallArgs> = PerCpuArray::with_max_entries(1, 0);

/// pid_tgid -> the HTTP/2 requests the write in flight on that thread
/// starts (valid while ARGS `http2` says so): sk_msg adds `traceparent` to
/// each, sys_exit sends them to the agent. Entries stay after the write,
/// for the thread's next one (`keep_heads`); an LRU of the threads that
/// wrote last (16 KiB each).
#[map]
pub static H2_HEADS: LruHashMap<u64, H2HeadsEvent> = LruHashMap::with_max_entries(256, 0);

/// Per-CPU place to build them (too big for the stack).
#[map]
pub static H2_HEADS_BUF: PerCpuArray<H2HeadsEvent> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Per-CPU place to build a data event: the BPF stack is only 512 bytes. The
/// slack lets the verifier prove that an (offset, length) pair, each bounded
/// by MAX_CAPTURE, stays inside the value.
#[repr(C)]
pub struct Scratch {
    pub event: DataEvent,
    pub _slack: [u8; MAX_CAPTURE],
    /// The event's socket's `SockInfo::server_actor`, for `classify`.
    pub server_actor: u64,
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn count(index: u32, by: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU value, and programs do not nest on one CPU here.
        unsafe { *slot += by };
    }
}

#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(0)
}

/// Whether the calling process is traced at all (before any socket lookup).
#[inline(always)]
pub fn process_wanted(cfg: &Config, tgid: u32) -> bool {
    if tgid == cfg.agent_tgid {
        return false;
    }
    if cfg.selective == 0 || cfg.select_ports != 0 {
        // With port selection any process may own a selected connection.
        return true;
    }
    // SAFETY: the value is only tested for presence.
    unsafe { TRACED_PIDS.get(tgid).is_some() }
}

/// `connection_wanted` for a process that `process_wanted` just passed:
/// when that looked the process up, its answer holds for every connection
/// and the lookup is not made twice.
#[inline(always)]
pub fn connection_of_wanted(cfg: &Config, tgid: u32, sock: &SockInfo) -> bool {
    if cfg.selective != 0 && cfg.select_ports == 0 {
        return true;
    }
    connection_wanted(cfg, tgid, sock)
}

/// Whether a connection of a wanted process is traced.
#[inline(always)]
pub fn connection_wanted(cfg: &Config, tgid: u32, sock: &SockInfo) -> bool {
    if cfg.selective == 0 || sock.port_selected != 0 {
        return true;
    }
    // SAFETY: the value is only tested for presence.
    unsafe { TRACED_PIDS.get(tgid).is_some() }
}

/// BPF_RB_AVAIL_DATA, BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP.
const RB_AVAIL_DATA: u64 = 0;
const RB_NO_WAKEUP: u64 = 1;
const RB_FORCE_WAKEUP: u64 = 2;
/// Data waiting before the reader is woken: below it, the agent drains on
/// its own timer. A wake-up per event cost the traced machine a context
/// switch per request.
const WAKE_BYTES: u64 = 256 * 1024;

/// Ring-buffer flags for an event: wake the reader only once enough has
/// piled up (it drains every 10 ms anyway).
#[inline(always)]
pub fn wake_flags() -> u64 {
    if EVENTS.query(RB_AVAIL_DATA) >= WAKE_BYTES {
        RB_FORCE_WAKEUP
    } else {
        RB_NO_WAKEUP
    }
}
