//! Go: trace context follows goroutines, not threads. Inside a syscall
//! tracepoint the running goroutine is read with no uprobe (`g` from R14,
//! else from the thread's TLS at fsbase-8), so a Go server's request
//! context is kept per goroutine, and a client call finds it in its own
//! goroutine or in the one that started it (`g.parentGoid`). One uprobe per
//! client call carries the caller's context over to the goroutine that
//! writes the bytes: where net/http hands an HTTP/1 request to the
//! connection's writer goroutine, and where grpc-go has given a call its
//! stream id and queued its HEADERS frame for the connection's writer.
use aya_ebpf::{
    helpers::generated::{self, bpf_get_current_task_btf, bpf_loop, bpf_task_pt_regs},
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns},
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user},
    macros::{map, uprobe},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::ProbeContext,
};
use tracer_common::{Config, GoOffsets, ThreadCtx, counter, ctx_source, go_actor};

use crate::{
    context::fresh_request,
    maps::{SOCKS, config, count, process_wanted},
    sockets::sock_key,
};

/// tgid → offsets, for every Go process the agent has inspected.
#[map]
pub static GO_PROCS: HashMap<u32, GoOffsets> = HashMap::with_max_entries(16384, 0);

/// (tgid, fd) → the request context of the goroutine that handed its HTTP/1
/// request to that connection's writer goroutine (`ctx.valid == 0`: it had
/// none). Taken by the write that sends the request.
#[map]
pub static GO_HANDOFF: LruHashMap<u64, ThreadCtx> = LruHashMap::with_max_entries(16384, 0);

/// A hand-off older than this was not followed by its write.
const HANDOFF_MAX_AGE_NS: u64 = 10 * 1_000_000_000;

/// The running goroutine of a Go process and the goroutine that started it.
#[derive(Clone, Copy)]
pub struct Goroutine {
    pub goid: u64,
    pub parent: u64,
}

#[inline(always)]
pub(crate) fn user<T>(addr: u64) -> Option<T> {
    // SAFETY: the helper checks the address; a bad one is an error.
    unsafe { bpf_probe_read_user(addr as *const T) }.ok()
}

/// The goroutine of the `g` at `g`.
#[inline(always)]
pub(crate) fn goroutine_of(off: &GoOffsets, g: u64) -> Option<Goroutine> {
    if g == 0 {
        return None;
    }
    let goid: u64 = user(g + off.g_goid as u64)?;
    let parent: u64 = user(g + off.g_parent_goid as u64)?;
    (goid != 0).then_some(Goroutine { goid, parent })
}

/// The goroutine running the current syscall, when the process is Go.
/// `None` for other processes; `Some(None)` for a Go process whose `g`
/// cannot be read (counted).
#[inline(always)]
pub fn current(cfg: &Config, tgid: u32) -> Option<Option<Goroutine>> {
    // SAFETY: copied out at once.
    let off = unsafe { GO_PROCS.get(tgid) }.copied()?;
    let found = current_g(cfg).and_then(|g| goroutine_of(&off, g));
    if found.is_none() {
        count(counter::GO_NO_GOROUTINE, 1);
    }
    Some(found)
}

/// The `g` of the goroutine running on this thread (Go processes only).
#[inline(always)]
pub(crate) fn current_g(cfg: &Config) -> Option<u64> {
    // SAFETY: the current task, only read through the probe helper.
    let task = unsafe { bpf_get_current_task() };
    // SAFETY: checked by the helper.
    let fsbase: u64 = match unsafe {
        bpf_probe_read_kernel((task + cfg.offsets.task_fsbase as u64) as *const u64)
    } {
        Ok(v) => v,
        Err(_) => 0,
    };
    if fsbase > 8 {
        user::<u64>(fsbase - 8).filter(|&g| g != 0)
    } else {
        None
    }
}

/// The THREAD_CTX key of whoever runs the current syscall: its goroutine
/// in a Go process, else its thread.
#[inline(always)]
pub fn actor(cfg: &Config, pid_tgid: u64) -> u64 {
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: copied out at once.
    let Some(off) = (unsafe { GO_PROCS.get(tgid) }).copied() else {
        return pid_tgid;
    };
    // Only the goroutine's id: its parent's is not needed here, and each
    // read of user memory costs about three map lookups here.
    let goid = goid_of_registers(&off).or_else(|| {
        let goid = current_g(cfg)
            .and_then(|g| user::<u64>(g + off.g_goid as u64))
            .filter(|&id| id != 0);
        if goid.is_some() {
            count(counter::GO_G_FROM_TLS, 1);
        }
        goid
    });
    match goid {
        Some(goid) => go_actor(tgid, goid),
        None => {
            count(counter::GO_NO_GOROUTINE, 1);
            pid_tgid
        }
    }
}

/// Bytes at the start of a `g` read at once: its stack bounds through its
/// goid.
const G_HEAD: usize = 256;

/// Where that head is read to (too big for the stack beside the rest).
#[map]
static G_HEAD_BUF: PerCpuArray<[u64; G_HEAD / 8]> = PerCpuArray::with_max_entries(1, 0);

/// Offsets in x86-64's `struct pt_regs` (stable ABI) of R14 and RSP.
const PT_REGS_R14: usize = 8;
const PT_REGS_SP: usize = 19 * 8;

/// The running goroutine's id, from the registers the thread entered the
/// kernel (or hit the uprobe) with: Go code keeps its `g` in R14 (its
/// register ABI, Go 1.17 on), and the runtime's syscall stubs leave it
/// there. One read of user memory, where the TLS slot costs a kernel read
/// and two user reads: about 110 ns less per request here. Trusted only
/// when the stack pointer lies within that `g`'s stack (`g.stack`, the
/// first field, at a layout fixed by the runtime's assembly), so a syscall
/// from C code (cgo), whose R14 is anything, falls back to the TLS slot.
#[inline(always)]
fn goid_of_registers(off: &GoOffsets) -> Option<u64> {
    let at = off.g_goid as usize;
    if at % 8 != 0 || at + 8 > G_HEAD {
        return None;
    }
    // SAFETY: the helpers take the current task's BTF pointer.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) };
    if regs == 0 {
        return None;
    }
    // SAFETY: the task's saved registers, a pointer the verifier types as
    // the kernel's `struct pt_regs` and lets the program load from
    // directly at constant offsets (no helper call).
    let (g, sp) = unsafe {
        let regs = regs as *const u8;
        (
            core::ptr::read_volatile(regs.add(PT_REGS_R14) as *const u64),
            core::ptr::read_volatile(regs.add(PT_REGS_SP) as *const u64),
        )
    };
    if g == 0 {
        return None;
    }
    let head = G_HEAD_BUF.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot; the user address is checked by the helper.
    let head = unsafe { &mut *head };
    // A constant size the verifier need not bound: every `g` is longer.
    // SAFETY: as above; the slot holds G_HEAD bytes.
    let rc = unsafe {
        generated::bpf_probe_read_user(head.as_mut_ptr().cast(), G_HEAD as u32, g as *const _)
    };
    if rc != 0 {
        return None;
    }
    let (lo, hi) = (head[0], head[1]);
    let goid = head[(at / 8) & (G_HEAD / 8 - 1)];
    (lo <= sp && sp < hi && goid != 0).then_some(goid)
}

/// Ancestors looked for beyond the parent, and goroutines looked at per
/// ancestor in the runtime's table: bounds the cost of the one scan a
/// goroutine may cost (its ancestry is cached, it never changes).
const MAX_ANCESTORS: usize = 3;
const MAX_SCAN: u32 = 4096;

/// go_actor(tgid, goid) → the goroutine's grandparent and older ancestors
/// (0: none), read once from the runtime's goroutine table.
#[map]
pub static GO_ANCESTORS: LruHashMap<u64, [u64; MAX_ANCESTORS]> =
    LruHashMap::with_max_entries(16384, 0);

/// The server request a goroutine works for: its own, or the one of the
/// goroutine that started it (a handler fanning out with `go func()`),
/// marked as found by goroutine.
#[inline(always)]
fn request_of(tgid: u32, g: Goroutine, now: u64) -> Option<ThreadCtx> {
    let mut t = fresh_request(go_actor(tgid, g.goid), now);
    if t.is_none() && g.parent != 0 {
        t = fresh_request(go_actor(tgid, g.parent), now);
    }
    t.map(by_goroutine)
}

#[inline(always)]
fn by_goroutine(mut t: ThreadCtx) -> ThreadCtx {
    t.ctx.source = ctx_source::GOROUTINE;
    t
}

/// Like `request_of`, and through older ancestors too: those that made no
/// syscall are found in runtime.allgs (uprobe path only: it may scan).
#[inline(always)]
fn request_of_ancestry(off: &GoOffsets, tgid: u32, g: Goroutine, now: u64) -> Option<ThreadCtx> {
    if let Some(t) = request_of(tgid, g, now) {
        return Some(t);
    }
    if g.parent == 0 || off.allgs == 0 {
        return None;
    }
    let key = go_actor(tgid, g.goid);
    // SAFETY: copied out at once.
    let ancestors = match unsafe { GO_ANCESTORS.get(key) }.copied() {
        Some(a) => a,
        None => {
            let a = ancestors_of(off, g.parent);
            let _ = GO_ANCESTORS.insert(key, a, 0);
            a
        }
    };
    for goid in ancestors {
        if goid == 0 {
            break;
        }
        if let Some(t) = fresh_request(go_actor(tgid, goid), now) {
            return Some(by_goroutine(t));
        }
    }
    None
}

/// The parent of `parent`, its parent, ...: each found by its goid in
/// runtime.allgs.
#[inline(always)]
fn ancestors_of(off: &GoOffsets, parent: u64) -> [u64; MAX_ANCESTORS] {
    let mut out = [0u64; MAX_ANCESTORS];
    let Some(slice) = user::<[u64; 2]>(off.allgs) else {
        return out;
    };
    let mut find = FindG {
        allgs: slice[0],
        goid_off: off.g_goid as u64,
        parent_off: off.g_parent_goid as u64,
        want: parent,
        found: 0,
    };
    let len = if slice[1] < MAX_SCAN as u64 {
        slice[1] as u32
    } else {
        MAX_SCAN
    };
    for slot in out.iter_mut() {
        find.found = 0;
        // SAFETY: the callback only touches `find` and probe-reads memory.
        unsafe {
            bpf_loop(len, find_g as *mut _, &mut find as *mut FindG as *mut _, 0);
        }
        if find.found == 0 {
            break;
        }
        *slot = find.found;
        find.want = find.found;
    }
    out
}

/// State of one search of runtime.allgs, shared with its callback.
#[repr(C)]
struct FindG {
    allgs: u64,
    goid_off: u64,
    parent_off: u64,
    /// The goroutine looked for.
    want: u64,
    /// Its parent's goid once found, else 0.
    found: u64,
}

/// bpf_loop callback: is allgs[i] the goroutine looked for?
extern "C" fn find_g(i: u32, find: *mut FindG) -> i64 {
    // SAFETY: bpf_loop hands back the pointer it was given.
    let find = unsafe { &mut *find };
    let Some(g) = user::<u64>(find.allgs + i as u64 * 8) else {
        return 1;
    };
    if g == 0 {
        return 0;
    }
    if user::<u64>(g + find.goid_off) != Some(find.want) {
        return 0;
    }
    find.found = user::<u64>(g + find.parent_off).unwrap_or(0);
    1
}

/// The server request in hand of whoever is writing a client request on
/// `fd`: for Go, what the calling goroutine handed over (net/http), else
/// the writing goroutine's own; for other processes, the thread's.
#[inline(always)]
pub fn request_in_hand(cfg: &Config, pid_tgid: u64, fd: u32, now: u64) -> Option<ThreadCtx> {
    let tgid = (pid_tgid >> 32) as u32;
    match current(cfg, tgid) {
        None => fresh_request(pid_tgid, now),
        Some(g) => {
            let key = sock_key(tgid, fd);
            // SAFETY: copied out at once.
            if let Some(h) = unsafe { GO_HANDOFF.get(key) }.copied() {
                let _ = GO_HANDOFF.remove(key);
                if now.saturating_sub(h.ts) < HANDOFF_MAX_AGE_NS {
                    // The caller's context, or none: never the writer
                    // goroutine's ancestry, which is whoever dialled.
                    return (h.ctx.valid != 0).then_some(h);
                }
            }
            request_of(tgid, g?, now)
        }
    }
}

/// The server request in hand of whoever writes an HTTP/2 request: the
/// writing goroutine's own or its direct parent's (Go), else the thread's.
/// Older ancestors only for the per-request writer goroutines of Go's
/// HTTP/2 clients (`GoOffsets::h2_writers`): a connection goroutine (grpc-go's
/// loopy writer) has an ancestry that leads to whoever dialled, not to
/// whoever makes the call. Never a hand-off.
#[inline(always)]
pub fn request_of_writer(cfg: &Config, pid_tgid: u64, now: u64) -> Option<ThreadCtx> {
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: copied out at once.
    let Some(off) = (unsafe { GO_PROCS.get(tgid) }).copied() else {
        return fresh_request(pid_tgid, now);
    };
    let Some(g) = current_g(cfg) else {
        count(counter::GO_NO_GOROUTINE, 1);
        return None;
    };
    let goroutine = goroutine_of(&off, g)?;
    // A goroutine an HTTP/2 client started for this one request: all its
    // ancestry is the caller's (a handler that fanned out, for example).
    let start: u64 = if off.g_startpc != 0 {
        user(g + off.g_startpc as u64).unwrap_or(0)
    } else {
        0
    };
    if start != 0 && off.h2_writers.contains(&start) {
        request_of_ancestry(&off, tgid, goroutine, now)
    } else {
        request_of(tgid, goroutine, now)
    }
}

/// What a Go uprobe starts from, in a wanted Go process: its tgid and
/// offsets, RAX (the receiver at entry, the first result at a RET under
/// Go's register ABI) and R14 (the running `g`).
#[inline(always)]
pub(crate) fn go_probe(ctx: &ProbeContext) -> Option<(u32, GoOffsets, u64, u64)> {
    let cfg = config()?;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !process_wanted(cfg, tgid) {
        return None;
    }
    // SAFETY: copied out at once.
    let off = unsafe { GO_PROCS.get(tgid) }.copied()?;
    // SAFETY: the probe's registers.
    let (rax, r14) = unsafe { ((*ctx.regs).rax, (*ctx.regs).r14) };
    Some((tgid, off, rax, r14))
}

/// `net/http.(*persistConn).roundTrip(pc, req)`, in the calling goroutine:
/// record its request context under the connection's fd, for the writer
/// goroutine's write. Go's register ABI: receiver in RAX, `g` in R14.
#[uprobe]
pub fn go_http_round_trip(ctx: ProbeContext) -> u32 {
    let Some((tgid, off, pc, g)) = go_probe(&ctx) else {
        return 0;
    };
    let fd = match pc {
        0 => None,
        pc => net_conn_fd(&off, pc + off.persist_conn_conn as u64),
    };
    let Some(fd) = fd else {
        count(counter::GO_HANDOFF_FAILED, 1);
        return 0;
    };
    let handed = caller_request(&off, tgid, g);
    let _ = GO_HANDOFF.insert(sock_key(tgid, fd), handed, 0);
    0
}

/// The request of the goroutine `g` (its ancestry's), stamped now; an
/// entry with `ctx.valid == 0` when it has none.
#[inline(always)]
fn caller_request(off: &GoOffsets, tgid: u32, g: u64) -> ThreadCtx {
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    goroutine_of(off, g)
        .and_then(|g| request_of_ancestry(off, tgid, g, now))
        .map(|mut t| {
            t.ts = now;
            t
        })
        .unwrap_or(ThreadCtx {
            ts: now,
            tgid,
            ..ThreadCtx::default()
        })
}

/// A stream of a connection: the socket (`SockInfo::sock_id`, never
/// reused, unlike fds) and the stream id.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamKey {
    sock_id: u64,
    stream: u32,
    _pad: u32,
}

/// (socket, stream id) → the request context of the goroutine that made
/// the gRPC call (`ctx.valid == 0`: none), for the write of its HEADERS
/// frame by the connection's writer goroutine. Also a tombstone
/// (`pending == STREAM_WRITTEN`) where that write came first.
#[map]
pub static GO_GRPC_STREAMS: LruHashMap<StreamKey, ThreadCtx> =
    LruHashMap::with_max_entries(16384, 0);

/// `ThreadCtx::pending` of a tombstone: the stream's HEADERS went out
/// before its caller was recorded.
const STREAM_WRITTEN: u32 = u32::MAX;

/// The request of whoever made the gRPC call that opened `stream` on the
/// socket `sock_id` of Go process `tgid`: `Some(None)` when that caller
/// had none; `None` when no caller was recorded: not a gRPC call, or the
/// connection's writer sent the HEADERS frame before the call's uprobe ran
/// (the uprobe then counts it).
#[inline(always)]
pub fn stream_caller(tgid: u32, sock_id: u64, stream: u32, now: u64) -> Option<Option<ThreadCtx>> {
    // SAFETY: copied out at once.
    let off = unsafe { GO_PROCS.get(tgid) }?;
    if off.grpc_stream_ct == 0 {
        return None;
    }
    let key = StreamKey {
        sock_id,
        stream,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    let mut found = (unsafe { GO_GRPC_STREAMS.get(&key) }).copied();
    if found.is_none() {
        let written = ThreadCtx {
            ts: now,
            pending: STREAM_WRITTEN,
            ..ThreadCtx::default()
        };
        // Only where there is still nothing: the caller's uprobe, on
        // another CPU, may have recorded it since the lookup.
        if GO_GRPC_STREAMS.insert(&key, &written, BPF_NOEXIST).is_ok() {
            count(counter::GO_GRPC_STREAM_NO_CALLER, 1);
            return None;
        }
        // SAFETY: copied out at once.
        found = (unsafe { GO_GRPC_STREAMS.get(&key) }).copied();
    }
    let Some(h) = found.filter(|h| h.pending != STREAM_WRITTEN) else {
        count(counter::GO_GRPC_STREAM_NO_CALLER, 1);
        return None;
    };
    let _ = GO_GRPC_STREAMS.remove(&key);
    if now.saturating_sub(h.ts) >= HANDOFF_MAX_AGE_NS {
        return None;
    }
    Some((h.ctx.valid != 0).then_some(h))
}

/// The returns of grpc-go's `internal/transport.(*http2Client).NewStream`,
/// in the goroutine making the call, once the stream has its id and its
/// HEADERS frame is queued for the connection's writer goroutine: record
/// the caller's request under (socket, stream id). The result `*Stream` is in
/// RAX (nil on error), `g` in R14.
#[uprobe]
pub fn go_grpc_new_stream(ctx: ProbeContext) -> u32 {
    let Some((tgid, off, s, g)) = go_probe(&ctx) else {
        return 0;
    };
    if s == 0 || off.grpc_stream_ct == 0 {
        return 0;
    }
    let stream: u32 = user(s + off.grpc_stream_id as u64).unwrap_or(0);
    let transport: u64 = user(s + off.grpc_stream_ct as u64).unwrap_or(0);
    let fd = match transport {
        0 => None,
        t => conn_fd(&off, t + off.grpc_client_conn as u64),
    };
    // SAFETY: copied out at once.
    let sock_id = fd
        .filter(|_| stream & 1 == 1)
        .and_then(|fd| unsafe { SOCKS.get(sock_key(tgid, fd)) }.map(|i| i.sock_id));
    let Some(sock_id) = sock_id else {
        count(counter::GO_GRPC_STREAM_FAILED, 1);
        return 0;
    };
    let key = StreamKey {
        sock_id,
        stream,
        _pad: 0,
    };
    let caller = caller_request(&off, tgid, g);
    if GO_GRPC_STREAMS.insert(&key, caller, BPF_NOEXIST).is_ok() {
        return 0;
    }
    // SAFETY: copied out at once.
    match unsafe { GO_GRPC_STREAMS.get(&key) }.copied() {
        Some(t) if t.pending == STREAM_WRITTEN => {
            // The writer goroutine was quicker (the lookup and the
            // tombstone are each atomic; whichever came second sees the
            // other): that call has no parent.
            let _ = GO_GRPC_STREAMS.remove(&key);
            count(counter::GO_GRPC_STREAM_LATE, 1);
        }
        // A stale record of an earlier stream of that id.
        _ => {
            let _ = GO_GRPC_STREAMS.insert(&key, caller, 0);
        }
    }
    0
}

/// Map update flag: only create.
const BPF_NOEXIST: u64 = 1;

/// The socket fd behind the net.Conn interface at `iface` when it is a
/// plain TCP connection (`*net.TCPConn`): conn.fd.pfd.Sysfd, trusted only
/// if netFD.net reads "tcp…" (a TLS connection's data word points
/// elsewhere).
#[inline(always)]
pub(crate) fn conn_fd(off: &GoOffsets, iface: u64) -> Option<u32> {
    // The interface's data word follows its type word.
    let data: u64 = user(iface + 8)?;
    if data == 0 {
        return None;
    }
    let netfd: u64 = user(data + off.conn_fd as u64)?;
    if netfd == 0 {
        return None;
    }
    let net: [u64; 2] = user(netfd + off.netfd_net as u64)?;
    if net[1] < 3 || net[1] > 4 {
        return None;
    }
    let name: [u8; 3] = user(net[0])?;
    if name != *b"tcp" {
        return None;
    }
    let fd: i64 = user(netfd + off.netfd_pfd as u64 + off.fd_sysfd as u64)?;
    (0..1 << 24).contains(&fd).then_some(fd as u32)
}

/// The socket fd behind the net.Conn interface at `iface`: a TCP
/// connection, or one wrapped in a struct that holds it first (x/net's h2c
/// `bufConn`, crypto/tls's `Conn`).
#[inline(always)]
pub(crate) fn net_conn_fd(off: &GoOffsets, iface: u64) -> Option<u32> {
    conn_fd(off, iface).or_else(|| {
        let data: u64 = user(iface + 8)?;
        if data == 0 {
            return None;
        }
        conn_fd(off, data)
    })
}
