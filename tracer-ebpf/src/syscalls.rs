//! Syscall tracepoints: the sys_enter programs save the arguments of socket
//! syscalls of wanted processes; one sys_exit program turns the result into a
//! data event (with a payload prefix) or a socket-table update. read and
//! recvfrom have a sys_exit program only (`exit_read`): their arguments are
//! read from the task's saved registers there.
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use tracer_common::{
    CloseEvent, Config, DATA_HEADER_LEN, H2_HEADS_HEADER_LEN, H2Head, H2HeadsEvent, MAX_CAPTURE,
    MAX_IOV, SockInfo, SyscallArgs, TAIL_LEN, ThreadCtx, counter, direction,
    http1::{is_request_start, is_response_start},
    http2, kind, op, role, tail, tls_args,
};

use crate::{
    context::{
        client_request, client_request_http2, parse_request_head, scratch_len, server_request,
        server_responded, staged_names_traceparent,
    },
    goroutines::{actor, request_in_hand, request_of_writer, stream_caller},
    maps::{
        ARGS_BUF, EVENTS, H2_HEADS, H2_HEADS_BUF, SCRATCH, SOCKS, TAIL_CALLS, config,
        connection_of_wanted, count, process_wanted, store_args, take_args, wake_flags,
    },
    sockets::{lookup, resolve, sock_key},
    words,
};

/// Offset of syscall argument `n` in a sys_enter record, and of `ret` in a
/// sys_exit record (stable tracepoint ABI).
const fn arg(n: usize) -> usize {
    16 + 8 * n
}
const RET: usize = 16;

/// The 8-byte field of the tracepoint record at a fixed ABI offset, loaded
/// in place: a tracepoint program may read its record directly, where
/// `read_at` pays a helper call per field.
#[inline(always)]
fn field(ctx: &TracePointContext, offset: usize) -> u64 {
    // SAFETY: a constant offset inside the sys_enter/sys_exit record, 8-byte
    // aligned; the verifier checks it against the record's bounds.
    unsafe { core::ptr::read((ctx.as_ptr() as *const u8).add(offset) as *const u64) }
}
const EINPROGRESS: i64 = 115;

/// `struct user_msghdr` fields (stable ABI).
const MSG_IOV: u64 = 16;
const MSG_IOVLEN: u64 = 24;

#[repr(C)]
#[derive(Clone, Copy)]
struct IoVec {
    base: u64,
    len: u64,
}

#[inline(always)]
fn save(ctx: &TracePointContext, op: u8, fd_arg: usize, buf_arg: Option<usize>, iov: IovArg) {
    let Some(cfg) = config() else { return };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !process_wanted(cfg, tgid) {
        return;
    }
    let fd = field(ctx, arg(fd_arg)) as u32;
    // Data syscalls on anything but a traced TCP socket stop here, before
    // any state is kept (most reads and writes are on files and pipes).
    let sock = if op == op::READ || op == op::WRITE {
        let Some(info) = traced_socket(cfg, tgid, fd) else {
            return;
        };
        Some(info)
    } else {
        None
    };
    // Built in per-CPU memory: with its trace context it is too big for the
    // 512-byte BPF stack next to everything else here.
    let Some(args) = ARGS_BUF.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, not shared with a nested program.
    let args = unsafe { &mut *args };
    words::zero(args);
    // Only a write is dated by its start (a request or response begins
    // when the process hands it over); reads, accepts and connects by
    // their return, and the clock costs a sixth of a read's sys_enter.
    if op == op::WRITE {
        args.ts_enter = unsafe { bpf_ktime_get_ns() };
    }
    args.fd = fd;
    args.op = op;
    if let Some(n) = buf_arg {
        args.buf = field(ctx, arg(n));
    }
    match iov {
        IovArg::None => {}
        IovArg::Array { ptr, count } => {
            args.buf = field(ctx, arg(ptr));
            args.iovcnt = field(ctx, arg(count)) as u32;
        }
        IovArg::MsgHdr(n) => {
            let msg = field(ctx, arg(n));
            // SAFETY: user pointers, checked by the helper.
            args.buf = unsafe { bpf_probe_read_user((msg + MSG_IOV) as *const u64) }.unwrap_or(0);
            args.iovcnt = unsafe { bpf_probe_read_user((msg + MSG_IOVLEN) as *const u64) }
                .unwrap_or(0) as u32;
        }
    }
    // A TLS socket: its bytes are ciphertext. A write inside SSL_write
    // carries that call's plaintext instead; anything else is not sent.
    if let Some(info) = sock
        && info.tls != 0
        && !tls_plaintext(cfg, pid_tgid, args)
    {
        if args.tls == tls_args::PEEK {
            store_args(pid_tgid, &*args);
        }
        return;
    }
    // A client request starting: choose its context now, before the bytes
    // leave (sk_msg writes it; the server end may read it at once).
    if args.tls == tls_args::COPIED && stage_copied_head(cfg, args) {
        // SAFETY: a valid tracepoint context; the slot holds a tracepoint
        // program.
        unsafe { TAIL_CALLS.tail_call(ctx, tail::CLIENT_CONTEXT) };
    }
    // An accepted socket's writes are responses: no request starts there,
    // and its first bytes need not be read to tell.
    if op == op::WRITE
        && let Some(info) = sock
        && info.role != role::ACCEPTED
        && let Some((src, len)) = first_buffer(ctx, args, buf_arg)
    {
        if stage_request_head(cfg, src, len) {
            // Does not return when it works: `client_context` stores the
            // args.
            // SAFETY: a valid tracepoint context; the slot holds a
            // tracepoint program.
            unsafe { TAIL_CALLS.tail_call(ctx, tail::CLIENT_CONTEXT) };
        } else if (cfg.inject != 0 || info.tls != 0)
            && info.role == role::CONNECTED
            && http2_request_head(info, src, len, args)
        {
            // Does not return when it works: `client_h2` stores the args.
            // SAFETY: as above.
            unsafe { TAIL_CALLS.tail_call(ctx, tail::CLIENT_H2) };
        }
    }
    store_args(pid_tgid, &*args);
}

/// The socket `fd` of the wanted process `tgid` when its reads and writes
/// are traced: a TCP socket of a wanted connection. Most reads and writes
/// are on files and pipes, and stop here.
#[inline(always)]
fn traced_socket(cfg: &Config, tgid: u32, fd: u32) -> Option<&'static SockInfo> {
    let info = lookup(cfg, tgid, fd)?;
    if info.is_tcp == 0 || !connection_of_wanted(cfg, tgid, info) {
        return None;
    }
    Some(info)
}

/// A syscall on a TLS socket, whose bytes are ciphertext: true when `args`
/// now carry the plaintext of the caller's TLS write instead; false when
/// the syscall's bytes are not sent. A read outside any TLS call (a memory
/// BIO's runtime reads the socket itself) is then marked `PEEK`: its
/// records are looked at on return.
#[inline(always)]
fn tls_plaintext(cfg: &Config, pid_tgid: u64, args: &mut SyscallArgs) -> bool {
    let caller = actor(cfg, pid_tgid);
    if crate::tls::plaintext_for((pid_tgid >> 32) as u32, caller, args) {
        return true;
    }
    count(counter::TLS_CIPHERTEXT_SKIPPED, 1);
    if args.tls == tls_args::PEEK {
        args.tls_caller = caller;
    }
    false
}

/// Offsets in x86-64's `struct pt_regs` (stable ABI) of the registers that
/// carry a syscall's first two arguments.
const PT_REGS_SI: usize = 13 * 8;
const PT_REGS_DI: usize = 14 * 8;

/// read(fd, buf, n) and recvfrom(fd, buf, n, ...) have no sys_enter
/// program: at sys_exit their arguments are still in the registers the
/// task entered the kernel with, so they need not be saved per thread at
/// sys_enter and taken back at sys_exit. Those reads were a third of the
/// tracepoint runs of a keep-alive request (the read of the request, the
/// one that finds nothing after it, the client's), each with two hash
/// operations on the thread's entry. Fills `args` as `save` would and
/// gives the socket; None when the read is not traced, or is a TLS read
/// call's own (its plaintext comes from the call).
#[inline(always)]
fn read_at_exit(cfg: &Config, pid_tgid: u64, args: &mut SyscallArgs) -> Option<&'static SockInfo> {
    let tgid = (pid_tgid >> 32) as u32;
    if !process_wanted(cfg, tgid) {
        return None;
    }
    // SAFETY: the helpers take the current task's BTF pointer; the loads
    // go through bpf_probe_read_kernel.
    let regs = unsafe { generated::bpf_task_pt_regs(generated::bpf_get_current_task_btf()) };
    if regs == 0 {
        return None;
    }
    let regs = regs as u64;
    words::zero(args);
    // Read straight into the per-CPU slot: the program's stack is nearly
    // full (two more words on it went over the verifier's 512 bytes).
    // SAFETY: kernel pointers, checked by the helper; `args.buf` is 8
    // bytes of this CPU's slot.
    let read = |at: usize, dst: &mut u64| unsafe {
        generated::bpf_probe_read_kernel(
            dst as *mut u64 as *mut _,
            8,
            (regs + at as u64) as *const _,
        ) == 0
    };
    if !read(PT_REGS_DI, &mut args.buf) {
        return None;
    }
    let fd = args.buf as u32;
    if !read(PT_REGS_SI, &mut args.buf) {
        return None;
    }
    let info = traced_socket(cfg, tgid, fd)?;
    args.fd = fd;
    args.op = op::READ;
    if info.tls != 0 {
        // A read's bytes are never plaintext: a read inside a TLS read call
        // ties the call's object to the socket (its plaintext comes from
        // the call's return) and is not sent; any other is looked at for
        // its records (`PEEK`).
        tls_plaintext(cfg, pid_tgid, args);
        if args.tls != tls_args::PEEK {
            return None;
        }
    }
    Some(info)
}

/// Where the bytes a write is about to send start, and how many are there
/// contiguously (the first iovec for vectored writes).
#[inline(always)]
fn first_buffer(
    ctx: &TracePointContext,
    args: &SyscallArgs,
    buf_arg: Option<usize>,
) -> Option<(u64, u64)> {
    if args.buf == 0 {
        return None;
    }
    if args.tls != 0 {
        return Some((args.buf, args.tls_len as u64));
    }
    if args.iovcnt != 0 {
        // SAFETY: user pointer checked by the helper.
        let iov = unsafe { bpf_probe_read_user(args.buf as *const IoVec) }.ok()?;
        return Some((iov.base, iov.len));
    }
    // write/sendto: the count follows the buffer.
    let n = buf_arg? + 1;
    Some((args.buf, field(ctx, arg(n))))
}

/// Copy the start of an outgoing message into the scratch payload (free at
/// sys_enter) if it starts an HTTP/1 request, so its head can be scanned.
#[inline(always)]
fn stage_request_head(cfg: &Config, src: u64, len: u64) -> bool {
    if len < 8 {
        return false;
    }
    // SAFETY: user pointer checked by the helper.
    let Ok(first) = (unsafe { bpf_probe_read_user(src as *const [u8; 8]) }) else {
        return false;
    };
    if !is_request_start(&first) {
        return false;
    }
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch, free while no exit program runs on this CPU.
    let ev = unsafe { &mut (*scratch).event };
    let want = if (cfg.capture_len as u64) < len {
        cfg.capture_len as u64
    } else {
        len
    };
    let n = bounded(want);
    if n == 0 || !copy_user(ev.payload.as_mut_ptr(), src, n) {
        return false;
    }
    ev.cap_len = n as u32;
    true
}

/// The first 8 bytes of a data event's payload (what a request, a response
/// or the HTTP/2 preface starts with).
#[inline(always)]
fn first_bytes(ev: &tracer_common::DataEvent) -> [u8; 8] {
    [
        ev.payload[0],
        ev.payload[1],
        ev.payload[2],
        ev.payload[3],
        ev.payload[4],
        ev.payload[5],
        ev.payload[6],
        ev.payload[7],
    ]
}

/// `stage_request_head` for a TLS write whose plaintext the kernel copied
/// at the call (`tls_args::COPIED`).
#[inline(always)]
fn stage_copied_head(cfg: &Config, args: &SyscallArgs) -> bool {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch, free while no exit program runs on this CPU.
    let ev = unsafe { &mut (*scratch).event };
    let want = (cfg.capture_len as u64).min(args.tls_len as u64);
    let n = crate::tls::copied_out(ev.payload.as_mut_ptr(), args.tls_caller, want);
    if n < 8 {
        return false;
    }
    ev.cap_len = n;
    is_request_start(&first_bytes(ev))
}

/// On a client socket marked HTTP/2 (`mark_http2`, when its preface went
/// out), say whether the write starts HTTP/2 requests: HEADERS frames sk_msg
/// can add `traceparent` to, listed in the per-CPU H2_HEADS_BUF (`client_h2`
/// still looks whether the app sent its own, and chooses their contexts).
/// The walk follows the write's bytes across its iovecs (grpc-js writes a
/// SETTINGS ack and 50 HEADERS frames as 51 iovecs of one writev), at the
/// offsets sk_msg sees, where the kernel has joined them.
#[inline(always)]
fn http2_request_head(info: &SockInfo, src: u64, len: u64, args: &mut SyscallArgs) -> bool {
    if info.http2 != http2::SOCK_INJECT {
        return false;
    }
    let Some(heads) = H2_HEADS_BUF.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, not shared with a nested program.
    let heads = unsafe { &mut *heads };
    heads.count = 0;
    let Some(walk) = FRAME_WALK.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, not shared with a nested program.
    let walk = unsafe { &mut *walk };
    // The first segment is the first buffer; vectored writes go on in the
    // iovecs after it. Their sum is not known here: a frame beyond what
    // the write sends is not injected by sk_msg (and counted there).
    let vectored = args.iovcnt > 1;
    // Past what is left of a frame an earlier write started; to the end.
    walk.run(args, (src, len), info.h2_skip, None, true);
    // Where the next write's frames start, checked at sys_exit.
    args.h2_end = if walk.end < http2::END_UNKNOWN as u64 {
        walk.end as u32
    } else {
        http2::END_UNKNOWN
    };
    let total = if vectored {
        walk.seg_start + walk.seg_len
    } else {
        len
    };
    args.h2_len = if total < u32::MAX as u64 {
        total as u32
    } else {
        u32::MAX
    };
    // Frames left unexamined may hold requests too: counted as one.
    if walk.ended == 0 {
        walk.untraced += 1;
    }
    if walk.untraced != 0 {
        count(counter::H2_HEADS_UNTRACED, walk.untraced);
    }
    if heads.count == 0 {
        return false;
    }
    args.http2 = 1;
    true
}

/// State of `http2_request_head`'s walk over a write's frames.
#[repr(C)]
struct FrameWalk {
    /// Bytes of the write (vectored: unknown, u32::MAX).
    len: u64,
    /// The walk ends at the first frame starting at or past this offset:
    /// the end of the write, or where a write taken in part stopped.
    stop: u64,
    /// Where the next frame starts, as an offset into the write.
    at: u32,
    /// HEADERS frames beyond `http2::MAX_HEADS`.
    untraced: u64,
    /// 1: the walk reached the end of the write (or gave up on bytes no
    /// HTTP/2 peer sends) before its iteration limit.
    ended: u32,
    /// Where the frame after the last one walked starts (at or past the
    /// end of the write), or END_UNKNOWN.
    end: u64,
    /// 1: HEADERS frames found go into H2_HEADS_BUF (0: only boundaries).
    record: u32,
    /// The iovec array (vectored writes), its length, the next to read.
    iov: u64,
    iovcnt: u32,
    idx: u32,
    /// The segment (a buffer or iovec) the walk is in: its offset in the
    /// write, where it is, how long.
    seg_start: u64,
    seg_base: u64,
    seg_len: u64,
}

impl FrameWalk {
    /// Walk the frames of the write `args` makes, whose first buffer (or
    /// iovec) is `first` (where, how long), from offset `skip` to the first
    /// frame at or past `stop` (default: the end of the write), listing its
    /// HEADERS frames in H2_HEADS_BUF when `record`. One frame or one iovec
    /// per iteration: unrolled, the walk is beyond the verifier. Its state
    /// is in a map, not on the stack: the verifier then need not tell apart
    /// iterations by the values the walk reached.
    #[inline(always)]
    fn run(
        &mut self,
        args: &SyscallArgs,
        first: (u64, u64),
        skip: u32,
        stop: Option<u64>,
        record: bool,
    ) {
        // The first segment is the first buffer; vectored writes go on in
        // the iovecs after it, whose sum is not known here.
        let len = if args.iovcnt > 1 {
            u32::MAX as u64
        } else {
            first.1
        };
        *self = FrameWalk {
            len,
            stop: stop.unwrap_or(len),
            at: skip,
            untraced: 0,
            ended: 0,
            end: http2::END_UNKNOWN as u64,
            record: record as u32,
            iov: args.buf,
            iovcnt: if args.iovcnt < MAX_IOV {
                args.iovcnt
            } else {
                MAX_IOV
            },
            idx: 1,
            seg_start: 0,
            seg_base: first.0,
            seg_len: first.1,
        };
        // SAFETY: the callback only touches the per-CPU slots and user
        // memory through the probe helper.
        unsafe {
            generated::bpf_loop(
                http2::MAX_FRAMES as u32 + MAX_IOV,
                walk_frame as *mut _,
                core::ptr::null_mut(),
                0,
            );
        }
    }
}

#[map]
static FRAME_WALK: PerCpuArray<FrameWalk> = PerCpuArray::with_max_entries(1, 0);

/// A frame header split between two iovecs is put together here (a map
/// value: the halves' offsets vary, which the verifier allows in map
/// memory but not on the stack).
#[map]
static FRAME_HEADER: PerCpuArray<[u8; 32]> = PerCpuArray::with_max_entries(1, 0);

/// bpf_loop callback: the frame at FRAME_WALK's `at` (or first the segment
/// that holds it); a HEADERS frame to inject goes into H2_HEADS_BUF. 1 ends
/// the walk.
extern "C" fn walk_frame(_i: u32, _: *mut u8) -> i64 {
    let Some(walk) = FRAME_WALK.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU slot filled on this CPU by `http2_request_head`.
    let walk = unsafe { &mut *walk };
    let at = walk.at as u64;
    if at >= walk.stop {
        // The first frame at or past where the walk was to stop.
        walk.end = at;
        walk.ended = 1;
        return 1;
    }
    let seg_end = walk.seg_start + walk.seg_len;
    if at >= seg_end {
        // On to the next iovec.
        if walk.idx >= walk.iovcnt {
            // The write's bytes end here.
            walk.end = at;
            walk.ended = 1;
            return 1;
        }
        let Some(iov) = iovec(walk.iov, walk.idx) else {
            return 1;
        };
        walk.idx += 1;
        walk.seg_start = seg_end;
        walk.seg_base = iov.base;
        walk.seg_len = iov.len;
        return 0;
    }
    if at + http2::FRAME_HEADER_LEN as u64 > walk.len {
        // A frame header cut by the end of the write: where its frame
        // ends is not known here.
        walk.ended = 1;
        return 1;
    }
    // A header not read (cut over more than two iovecs, or unreadable):
    // the rest of the write is not examined (counted as untraced).
    let Some(h) = frame_header(walk, at) else {
        return 1;
    };
    match http2::next_frame(walk.at, walk.len, &h) {
        http2::Frame::Other { next } => {
            walk.at = next;
            0
        }
        http2::Frame::Headers { n, stream, next } => {
            walk.at = next;
            if walk.record == 0 {
                return 0;
            }
            let Some(heads) = H2_HEADS_BUF.get_ptr_mut(0) else {
                return 1;
            };
            // SAFETY: per-CPU slot, not shared with a nested program.
            let heads = unsafe { &mut *heads };
            let i = heads.count as usize;
            if i >= http2::MAX_HEADS {
                walk.untraced += 1;
                return 0;
            }
            heads.heads[i] = H2Head {
                stream_id: stream,
                frame_at: at as u32,
                block_end: at as u32 + http2::FRAME_HEADER_LEN + n,
                ..H2Head::default()
            };
            heads.count += 1;
            0
        }
    }
}

/// iovec `i` of the array at `iov`.
#[inline(always)]
fn iovec(iov: u64, i: u32) -> Option<IoVec> {
    // SAFETY: user pointer checked by the helper.
    unsafe { bpf_probe_read_user((iov + i as u64 * 16) as *const IoVec) }.ok()
}

/// The 9-byte frame header at `at` of the write, which starts in the walk's
/// current segment and may end in the next iovec.
#[inline(always)]
fn frame_header(walk: &FrameWalk, at: u64) -> Option<[u8; 9]> {
    let off = at - walk.seg_start;
    let avail = walk.seg_len - off;
    if avail >= http2::FRAME_HEADER_LEN as u64 {
        // SAFETY: user pointer checked by the helper.
        return unsafe { bpf_probe_read_user((walk.seg_base + off) as *const [u8; 9]) }.ok();
    }
    if walk.idx >= walk.iovcnt {
        return None;
    }
    let next = iovec(walk.iov, walk.idx)?;
    // 1 to 8 bytes here, the rest (8 to 1) at the start of the next iovec.
    let first = avail as u32;
    if first == 0 || first >= http2::FRAME_HEADER_LEN {
        return None;
    }
    let rest = http2::FRAME_HEADER_LEN - first;
    if next.len < rest as u64 {
        return None;
    }
    let buf = FRAME_HEADER.get_ptr_mut(0)?;
    // SAFETY: this CPU's 32 bytes: `first` <= 8 bytes at 0, then `rest`
    // (masked to 15) at `first`; user pointers checked by the helper.
    unsafe {
        let p = buf as *mut u8;
        if generated::bpf_probe_read_user(p.cast(), first, (walk.seg_base + off) as *const _) != 0
            || generated::bpf_probe_read_user(
                p.add(first as usize).cast(),
                rest & 15,
                next.base as *const _,
            ) != 0
        {
            return None;
        }
        let mut h = [0u8; 9];
        for (i, b) in h.iter_mut().enumerate() {
            *b = *p.add(i);
        }
        Some(h)
    }
}

#[derive(Clone, Copy)]
enum IovArg {
    None,
    Array { ptr: usize, count: usize },
    MsgHdr(usize),
}

/// write(fd, buf, n), sendto(fd, buf, n, ...)
#[tracepoint]
pub fn enter_write(ctx: TracePointContext) -> u32 {
    save(&ctx, op::WRITE, 0, Some(1), IovArg::None);
    0
}

/// readv(fd, iov, iovcnt)
#[tracepoint]
pub fn enter_readv(ctx: TracePointContext) -> u32 {
    save(&ctx, op::READ, 0, None, IovArg::Array { ptr: 1, count: 2 });
    0
}

/// writev(fd, iov, iovcnt)
#[tracepoint]
pub fn enter_writev(ctx: TracePointContext) -> u32 {
    save(&ctx, op::WRITE, 0, None, IovArg::Array { ptr: 1, count: 2 });
    0
}

/// recvmsg(fd, msg, flags)
#[tracepoint]
pub fn enter_recvmsg(ctx: TracePointContext) -> u32 {
    save(&ctx, op::READ, 0, None, IovArg::MsgHdr(1));
    0
}

/// sendmsg(fd, msg, flags)
#[tracepoint]
pub fn enter_sendmsg(ctx: TracePointContext) -> u32 {
    save(&ctx, op::WRITE, 0, None, IovArg::MsgHdr(1));
    0
}

/// sendfile(out_fd, in_fd, offset, count): bytes counted, none copied.
#[tracepoint]
pub fn enter_sendfile(ctx: TracePointContext) -> u32 {
    save(&ctx, op::WRITE, 0, None, IovArg::None);
    0
}

/// connect(fd, addr, len)
#[tracepoint]
pub fn enter_connect(ctx: TracePointContext) -> u32 {
    save(&ctx, op::CONNECT, 0, None, IovArg::None);
    0
}

/// accept(fd, ...), accept4(fd, ...): the new fd is the return value.
#[tracepoint]
pub fn enter_accept(ctx: TracePointContext) -> u32 {
    save(&ctx, op::ACCEPT, 0, None, IovArg::None);
    0
}

/// close(fd): forget the fd, and tell the agent if it was a traced socket.
#[tracepoint]
pub fn enter_close(ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !process_wanted(cfg, tgid) {
        return 0;
    }
    let fd = field(&ctx, arg(0));
    let key = sock_key(tgid, fd as u32);
    // SAFETY: copied out at once.
    let Some(info) = (unsafe { SOCKS.get(key) }).copied() else {
        return 0;
    };
    let _ = SOCKS.remove(key);
    if info.is_tcp == 0 || !connection_of_wanted(cfg, tgid, &info) {
        return 0;
    }
    let event = CloseEvent {
        kind: kind::CLOSE,
        pid: tgid,
        tid: pid_tgid as u32,
        fd: fd as u32,
        sock_id: info.sock_id,
        ts: unsafe { bpf_ktime_get_ns() },
        ..CloseEvent::default()
    };
    if EVENTS.output::<CloseEvent>(&event, 0).is_err() {
        count(counter::RINGBUF_FULL, 1);
    }
    0
}

/// sys_exit of read and recvfrom, which have no sys_enter program: their
/// arguments are read here (`read_at_exit`). A read that brought nothing
/// (the one after each request that finds the socket empty) stops at the
/// first test.
#[tracepoint]
pub fn exit_read(ctx: TracePointContext) -> u32 {
    let ret = field(&ctx, RET) as i64;
    if ret <= 0 {
        return 0;
    }
    let (Some(cfg), Some(args)) = (config(), ARGS_BUF.get_ptr_mut(0)) else {
        return 0;
    };
    // SAFETY: this CPU's slot; the chain's programs read it there.
    let args = unsafe { &mut *args };
    let Some(info) = read_at_exit(cfg, bpf_get_current_pid_tgid(), args) else {
        return 0;
    };
    if args.tls == tls_args::PEEK {
        crate::tls::records_read(args, ret as u64);
    } else {
        emit_data(&ctx, cfg, args, info, ret as u64, false);
    }
    0
}

/// Every sys_exit of the syscalls above but read and recvfrom.
#[tracepoint]
pub fn exit_io(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Moved to per-CPU memory: on the stack they would not fit beside the
    // tail call's budget, and the chain's programs read them there.
    let Some(args) = ARGS_BUF.get_ptr_mut(0) else {
        return 0;
    };
    if !take_args(pid_tgid, args) {
        return 0;
    }
    // SAFETY: this CPU's slot, just filled.
    let args = unsafe { &*args };
    let Some(cfg) = config() else { return 0 };
    let ret = field(&ctx, RET) as i64;
    let tgid = (pid_tgid >> 32) as u32;
    match args.op {
        op::ACCEPT | op::CONNECT => {
            let (ok, fd, how) = if args.op == op::ACCEPT {
                (ret >= 0, ret as u32, role::ACCEPTED)
            } else {
                (ret == 0 || ret == -EINPROGRESS, args.fd, role::CONNECTED)
            };
            if ok {
                resolve(cfg, tgid, fd, how);
            }
        }
        op::READ if args.tls == tls_args::PEEK => {
            if ret > 0 {
                crate::tls::records_read(args, ret as u64);
            }
        }
        op::READ | op::WRITE if ret > 0 => {
            // sys_enter resolved the socket; only an entry evicted since is
            // missing, and that event is not worth a second walk here. It
            // also found the connection wanted: reads and writes are kept
            // only then.
            // SAFETY: map values stay valid for the rest of this run.
            let Some(info) = (unsafe { SOCKS.get(sock_key(tgid, args.fd)) }) else {
                return 0;
            };
            if info.is_tcp != 0 {
                if args.tls == tls_args::PLAINTEXT || args.tls == tls_args::COPIED {
                    // The plaintext of the TLS write call this write is
                    // part of, all of it.
                    let plain = args.tls_len as u64;
                    if args.op == op::WRITE && info.http2 == http2::SOCK_INJECT {
                        follow_frames(tgid, args, plain);
                    }
                    if args.http2 != 0 {
                        send_http2_heads(pid_tgid);
                    }
                    emit_data(&ctx, cfg, args, info, plain, false);
                    return 0;
                }
                if args.op == op::WRITE && info.http2 == http2::SOCK_INJECT && cfg.inject != 0 {
                    follow_frames(tgid, args, ret as u64);
                }
                if args.http2 != 0 {
                    send_http2_heads(pid_tgid);
                }
                emit_data(&ctx, cfg, args, info, ret as u64, false);
            }
        }
        _ => {}
    }
    0
}

/// After a write on an HTTP/2 client socket that may be injected: where
/// the next write's first frame starts (a frame may go on in the next
/// write). When that cannot be told (a partial write, a walk that could not
/// finish), the socket is never injected again rather than have a HEADERS
/// frame looked for at a wrong offset.
#[inline(always)]
fn follow_frames(tgid: u32, args: &SyscallArgs, ret: u64) {
    let Some(entry) = SOCKS.get_ptr_mut(sock_key(tgid, args.fd)) else {
        return;
    };
    // SAFETY: a live entry of this process's socket.
    let entry = unsafe { &mut *entry };
    let walked = args.h2_len != 0 && args.h2_end != http2::END_UNKNOWN;
    let skip = if !walked || args.h2_end < args.h2_len {
        None
    } else if ret == args.h2_len as u64 {
        Some(args.h2_end - args.h2_len)
    } else if ret < args.h2_len as u64 {
        // Sent in part: the app sends the rest next, which starts inside
        // the frame that holds byte `ret`; walked again up to it.
        frame_after(args, entry.h2_skip, ret).map(|end| (end - ret) as u32)
    } else {
        None
    };
    match skip {
        Some(skip) => entry.h2_skip = skip,
        None => {
            entry.http2 = http2::SOCK_NO_SYNC;
            count(counter::H2_INJECT_SYNC_LOST, 1);
        }
    }
}

/// Where the first frame at or past byte `upto` of the write `args` made
/// starts, walking its frames from `skip` (the write's buffer or iovecs are
/// still as the app passed them).
#[inline(always)]
fn frame_after(args: &SyscallArgs, skip: u32, upto: u64) -> Option<u64> {
    let (src, len) = if args.iovcnt != 0 {
        let first = iovec(args.buf, 0)?;
        (first.base, first.len)
    } else {
        (args.buf, args.h2_len as u64)
    };
    let walk = FRAME_WALK.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot, free at sys_exit.
    let walk = unsafe { &mut *walk };
    walk.run(args, (src, len), skip, Some(upto), false);
    (walk.end >= upto && walk.end < http2::END_UNKNOWN as u64).then_some(walk.end)
}

/// Send the contexts of the HTTP/2 requests this write started, ahead of
/// its data event (the agent needs them when it parses the frames).
#[inline(always)]
fn send_http2_heads(pid_tgid: u64) {
    let Some(heads) = H2_HEADS.get_ptr_mut(pid_tgid) else {
        return;
    };
    // SAFETY: this thread's entry; only this thread touches it meanwhile.
    let heads = unsafe { &mut *heads };
    // Only the heads in use.
    let len = heads_len(heads);
    // SAFETY: `len` is at most the size of the event.
    let bytes = unsafe { core::slice::from_raw_parts(heads as *const _ as *const u8, len) };
    if EVENTS.output::<[u8]>(bytes, 0).is_err() {
        count(counter::RINGBUF_FULL, 1);
    }
}

/// The bytes of `heads` in use: its header and its first `count` heads,
/// bounded so that the verifier sees at most the whole event.
#[inline(always)]
fn heads_len(heads: &H2HeadsEvent) -> usize {
    let n = heads.count as usize & (2 * http2::MAX_HEADS - 1);
    let n = if n > http2::MAX_HEADS {
        http2::MAX_HEADS
    } else {
        n
    };
    H2_HEADS_HEADER_LEN + n * core::mem::size_of::<H2Head>()
}

/// Build the data event of `args` (a syscall's bytes, or a TLS library's
/// plaintext) in the scratch and send it, through `classify` when it may
/// start a request or response. `tls_chain`: called from a uprobe, whose
/// tail calls go to the uprobe twins.
#[inline(always)]
pub fn emit_data<C: EbpfContext>(
    tp: &C,
    cfg: &Config,
    args: &SyscallArgs,
    info: &SockInfo,
    total: u64,
    tls_chain: bool,
) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // HTTP/2 sockets: several frames per syscall, and a frame header in
    // uncaptured bytes loses the connection's framing, so as much as can
    // be captured is.
    let capture_len = if info.http2 != http2::SOCK_NONE {
        MAX_CAPTURE as u32
    } else {
        cfg.capture_len
    };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch, not shared with a nested program.
    let scratch = unsafe { &mut *scratch };
    scratch.server_actor = info.server_actor;
    let ev = &mut scratch.event;
    ev.kind = kind::DATA;
    ev.direction = if args.op == op::READ {
        direction::INGRESS
    } else {
        direction::EGRESS
    };
    ev.role = info.role;
    ev.pid = (pid_tgid >> 32) as u32;
    ev.tid = pid_tgid as u32;
    ev.fd = args.fd;
    ev.sock_id = info.sock_id;
    ev.ts_exit = unsafe { bpf_ktime_get_ns() };
    // A syscall's read is not timed at sys_enter (`save`): it is dated by
    // its return. A TLS read call keeps its own entry time.
    ev.ts_enter = if args.ts_enter != 0 {
        args.ts_enter
    } else {
        ev.ts_exit
    };
    ev.total_len = total;
    words::copy(&mut ev.tuple, &info.tuple);
    ev.cap_len = 0;
    ev.tail_len = 0;
    ev.tls = args.tls;

    let want = if (capture_len as u64) < total {
        capture_len as u64
    } else {
        total
    };
    words::copy(&mut ev.ctx, &args.ctx);
    // HTTP/2 sockets: a syscall beyond one event's capture (a batch of gRPC
    // calls read or written at once; C core's sendmsg of dozens of iovecs)
    // goes out whole, in as many events as it takes, or the frames after
    // the first 8 KiB would be lost to the parser.
    let chunked = info.http2 != http2::SOCK_NONE && total > MAX_CAPTURE as u64;
    if args.tls == tls_args::COPIED {
        ev.cap_len = crate::tls::copied_out(ev.payload.as_mut_ptr(), args.tls_caller, want);
    } else if args.buf != 0 && args.iovcnt == 0 && !chunked {
        let n = bounded(want);
        if n > 0 && copy_user(ev.payload.as_mut_ptr(), args.buf, n) {
            ev.cap_len = n as u32;
        }
        if total > n as u64 && total >= TAIL_LEN as u64 {
            copy_tail(ev, args.buf + total - TAIL_LEN as u64);
        }
    } else if args.buf != 0 {
        let want = if chunked {
            MAX_CHUNKS as u64 * MAX_CAPTURE as u64
        } else {
            want
        };
        if copy_iov(ev, args.buf, args.iovcnt, want, total, chunked, 0) {
            return;
        }
    }
    if args.tls == 0 && ev.cap_len >= 9 && crate::tls::is_client_hello(&ev.payload[..9]) {
        // A TLS handshake starts: from now on this socket's bytes are
        // ciphertext, and its plaintext comes from the TLS library.
        if let Some(entry) = SOCKS.get_ptr_mut(sock_key(ev.pid, args.fd)) {
            // SAFETY: a live entry of this process's socket.
            unsafe { (*entry).tls = 1 };
        }
        count(counter::TLS_CIPHERTEXT_SKIPPED, 1);
        // Told without its bytes: a connection whose plaintext never comes
        // is one of a TLS library the agent does not probe.
        ev.tls = tls_args::HELLO;
        ev.cap_len = 0;
        ev.tail_len = 0;
        output_event(ev);
        return;
    }
    let starts_upper = ev.cap_len >= 8 && ev.payload[0].is_ascii_uppercase();
    // Messages that may start an HTTP request or response (an upper-case
    // letter first) are classified in a program of their own, which keeps
    // this one within the verifier's budget. It sends the event.
    if starts_upper {
        // SAFETY: a valid context of the chain's program type; the slot
        // holds a program of that type.
        unsafe { crate::tls::tails(tls_chain).tail_call(tp, tail::CLASSIFY) };
    }
    output_event(ev);
}

/// Bytes of a syscall beyond MAX_CHUNKS events, said as bytes not
/// captured (the agent gives up on the connection and counts it).
#[inline(always)]
fn uncaptured(ev: &mut tracer_common::DataEvent, left: u64) {
    ev.total_len = left;
    ev.cap_len = 0;
    ev.tail_len = 0;
    words::zero(&mut ev.ctx);
    output_event(ev);
}

/// Events one HTTP/2 syscall may take (8 KiB each): grpc-go and Go's
/// HTTP/2 read and write through 32 KiB buffers.
const MAX_CHUNKS: u32 = 8;

/// Tail-called from sys_exit with the data event in the scratch: a server
/// request starting goes on to `server_context`; a response ends the
/// thread's request; the event is sent.
#[tracepoint]
pub fn classify(ctx: TracePointContext) -> u32 {
    classify_body(&ctx, false);
    0
}

/// `classify`, for either chain.
#[inline(always)]
pub fn classify_body<C: EbpfContext>(ctx: &C, tls_chain: bool) {
    let (Some(scratch), Some(args)) = (SCRATCH.get_ptr_mut(0), ARGS_BUF.get_ptr(0)) else {
        return;
    };
    // SAFETY: this CPU's slots, filled by the caller.
    let (ev, op, server_actor) =
        unsafe { (&(*scratch).event, (*args).op, (*scratch).server_actor) };
    let first = first_bytes(ev);
    if u64::from_le_bytes(first) == u64::from_le_bytes(PREFACE_START) && is_preface(ev) {
        mark_http2(ev.pid, ev.fd, op);
        // This event was captured before the socket was known to be
        // HTTP/2: the preface often arrives with the first requests'
        // frames, whose headers must not fall beyond the capture.
        // SAFETY: this CPU's scratch and args, as above.
        if unsafe { recapture(&mut (*scratch).event, &*args) } {
            return;
        }
    }
    if op == op::READ && is_request_start(&first) {
        // Does not return when it works: `server_context` sends the event.
        // SAFETY: a valid context of the chain's program type; the slot
        // holds a program of that type.
        unsafe { crate::tls::tails(tls_chain).tail_call(ctx, tail::SERVER_CONTEXT) };
    } else if op == op::WRITE && is_response_start(&first) {
        // The response answers the request last read on its socket, by the
        // actor that read it: the socket remembers which, so a Go process's
        // goroutine need not be read again.
        if server_actor != 0 {
            server_responded(server_actor);
        } else if let Some(cfg) = config() {
            server_responded(actor(cfg, bpf_get_current_pid_tgid()));
        }
    }
    output_event(ev);
}

/// Copy the payload again, as much as an HTTP/2 socket gets: the whole
/// syscall, in as many events as it takes (a server may read the preface
/// together with the client's first burst of frames, 50 requests' worth;
/// frames beyond the capture would lose the connection). True when it sent
/// the events itself.
#[inline(always)]
fn recapture(ev: &mut tracer_common::DataEvent, args: &SyscallArgs) -> bool {
    if args.buf == 0 || ev.total_len <= ev.cap_len as u64 {
        return false;
    }
    let total = ev.total_len;
    let chunked = total > MAX_CAPTURE as u64;
    let want = if chunked {
        MAX_CHUNKS as u64 * MAX_CAPTURE as u64
    } else {
        total
    };
    copy_iov(ev, args.buf, args.iovcnt, want, total, chunked, 0)
}

/// The first 8 bytes of the HTTP/2 connection preface.
const PREFACE_START: [u8; 8] = *b"PRI * HT";

/// Whether the event's payload starts with the HTTP/2 connection preface:
/// its first line, `PRI * HTTP/2.0`, is enough (and nothing else starts so).
/// A server may read the 24 bytes in pieces: Go's net/http reads that line
/// as an HTTP/1 request line first, and the rest in a later read.
#[inline(always)]
fn is_preface(ev: &tracer_common::DataEvent) -> bool {
    if (ev.cap_len as usize) < PREFACE_LINE {
        return false;
    }
    // SAFETY: plain bytes reinterpreted as words; 16 <= MAX_CAPTURE.
    let (got, want): ([u64; 2], [u64; 2]) = unsafe {
        (
            core::ptr::read_unaligned(ev.payload.as_ptr() as *const [u64; 2]),
            core::ptr::read_unaligned(http2::PREFACE.as_ptr() as *const [u64; 2]),
        )
    };
    // The first 14 bytes; the two after them may be anything read with it.
    got[0] == want[0] && (got[1] ^ want[1]) & 0xffff_ffff_ffff == 0
}

/// `PRI * HTTP/2.0`
const PREFACE_LINE: usize = 14;

/// The preface went by on this socket (seen at sys_exit, once per
/// connection): it speaks HTTP/2 from now on. The client end's later
/// HEADERS frames are injected (when that is on); both ends are captured
/// in full.
#[inline(always)]
fn mark_http2(tgid: u32, fd: u32, op: u8) {
    if let Some(entry) = SOCKS.get_ptr_mut(sock_key(tgid, fd)) {
        // SAFETY: a live entry of this process's socket.
        unsafe {
            if (*entry).http2 == http2::SOCK_NONE {
                (*entry).http2 = if op == op::READ {
                    http2::SOCK_SERVER
                } else {
                    http2::SOCK_INJECT
                };
            }
        }
    }
}

/// Send the data event built in the scratch.
#[inline(always)]
fn output_event(ev: &tracer_common::DataEvent) {
    let len = DATA_HEADER_LEN + bounded(ev.cap_len as u64);
    // SAFETY: `len` is at most the size of the event.
    let bytes = unsafe { core::slice::from_raw_parts(ev as *const _ as *const u8, len) };
    if EVENTS.output::<[u8]>(bytes, wake_flags()).is_err() {
        count(counter::RINGBUF_FULL, 1);
    } else {
        count(counter::EVENTS_SENT, 1);
        count(counter::BYTES_COPIED, ev.cap_len as u64);
    }
}

/// Tail-called from sys_enter of a write that starts a client request:
/// read the context its head carries, then go on to `client_decide`.
#[tracepoint]
pub fn client_context(ctx: TracePointContext) -> u32 {
    parse_request_head(scratch_len());
    // SAFETY: a valid tracepoint context; the slot holds a tracepoint program.
    unsafe { TAIL_CALLS.tail_call(&ctx, tail::CLIENT_DECIDE) };
    // The chain broke: keep the arguments, without a context.
    if let Some(args) = ARGS_BUF.get_ptr(0) {
        // SAFETY: per-CPU slot.
        store_args(bpf_get_current_pid_tgid(), unsafe { &*args });
    }
    0
}

/// Choose a client request's trace context and store the syscall's
/// arguments.
#[tracepoint]
pub fn client_decide(_ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(args) = ARGS_BUF.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot filled by the caller on this CPU.
    let args = unsafe { &mut *args };
    if let Some(info) = lookup(cfg, (pid_tgid >> 32) as u32, args.fd) {
        let thread = request_in_hand(cfg, pid_tgid, args.fd, args.ts_enter);
        client_request(cfg, pid_tgid, thread, info, args);
    }
    store_args(pid_tgid, &*args);
    0
}

/// Tail-called from sys_enter of a write that starts with an HTTP/2
/// HEADERS frame sk_msg may add `traceparent` to: unless the app sends its
/// own, choose the client span's ids; store the syscall's arguments.
#[tracepoint]
pub fn client_h2(ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(args) = ARGS_BUF.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot filled by the caller on this CPU.
    let args = unsafe { &mut *args };
    let Some(heads) = H2_HEADS_BUF.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot filled by `save` on this CPU.
    let heads = unsafe { &mut *heads };
    if app_sends_traceparent(&ctx, args, heads.heads[0].frame_at) {
        // Left alone, now and for the rest of the connection; no kernel
        // context: the agent takes the app's from the decoded headers.
        if let Some(entry) = SOCKS.get_ptr_mut(sock_key((pid_tgid >> 32) as u32, args.fd)) {
            // SAFETY: a live entry of this process's socket.
            unsafe { (*entry).http2 = http2::SOCK_APP_CONTEXT };
        }
        args.http2 = 0;
        count(counter::INJECT_SKIPPED_HAS_HEADER, 1);
    } else {
        client_requests_http2(cfg, pid_tgid, args, heads);
        if !keep_heads(pid_tgid, heads) {
            args.http2 = 0;
            count(counter::ARGS_FULL, 1);
        }
    }
    store_args(pid_tgid, &*args);
    0
}

/// Keep this write's `heads` for sk_msg and sys_exit in the thread's
/// H2_HEADS entry. The entry outlives the write (the next write of the
/// thread reuses it), so that only the heads in use are copied: a new
/// entry copies all `MAX_HEADS` of them (16 KiB).
#[inline(always)]
fn keep_heads(pid_tgid: u64, heads: &H2HeadsEvent) -> bool {
    let Some(entry) = H2_HEADS.get_ptr_mut(pid_tgid) else {
        return H2_HEADS.insert(pid_tgid, heads, 0).is_ok();
    };
    let len = heads_len(heads);
    // SAFETY: `len` is at most the size of both (the same type); the
    // entry is this thread's, untouched by others meanwhile.
    unsafe {
        generated::bpf_probe_read_kernel(
            entry as *mut _,
            len as u32,
            heads as *const H2HeadsEvent as *const _,
        ) == 0
    }
}

/// A context for each request in `heads`: the child of the request its
/// caller had in hand (a Go gRPC call's, recorded by stream), else of the
/// writer's (`request_of_writer`, looked up once), else a new trace.
#[inline(always)]
fn client_requests_http2(
    cfg: &Config,
    pid_tgid: u64,
    args: &SyscallArgs,
    heads: &mut H2HeadsEvent,
) {
    let tgid = (pid_tgid >> 32) as u32;
    heads.kind = kind::H2_HEADS;
    heads.pid = tgid;
    heads.fd = args.fd;
    // Resolved by `save` just before.
    // SAFETY: copied out at once.
    heads.sock_id = match unsafe { SOCKS.get(sock_key(tgid, args.fd)) } {
        Some(info) => info.sock_id,
        None => 0,
    };
    let Some(writer) = H2_WRITER.get_ptr_mut(0) else {
        return;
    };
    let has_writer = match request_of_writer(cfg, pid_tgid, args.ts_enter) {
        Some(t) => {
            // SAFETY: per-CPU slot, not shared with a nested program.
            unsafe { *writer = t };
            1
        }
        None => 0,
    };
    let mut state = HeadsState {
        tgid,
        has_writer,
        sock_id: heads.sock_id,
        now: args.ts_enter,
        tls: (args.tls != 0) as u32,
        fd: args.fd,
    };
    // One request per iteration: unrolled, MAX_HEADS of them are beyond
    // the verifier.
    // SAFETY: the callback only touches `state`, maps and helpers.
    unsafe {
        generated::bpf_loop(
            heads.count,
            head_context as *mut _,
            &mut state as *mut HeadsState as *mut _,
            0,
        );
    }
}

/// What `head_context` needs for each request of a write.
#[repr(C)]
struct HeadsState {
    tgid: u32,
    /// 1: the writer's request is in H2_WRITER.
    has_writer: u32,
    sock_id: u64,
    now: u64,
    /// 1: a TLS socket (no injection): each request's context is kept for
    /// a server probe on this host (`tls::remember_stream`).
    tls: u32,
    fd: u32,
}

/// Per-CPU place for the writer's request while a write's HTTP/2 requests
/// get their contexts (the stack has no room for it).
#[map]
static H2_WRITER: PerCpuArray<ThreadCtx> = PerCpuArray::with_max_entries(1, 0);

/// bpf_loop callback: the context of request `i` in H2_HEADS_BUF.
extern "C" fn head_context(i: u32, state: *mut HeadsState) -> i64 {
    // SAFETY: bpf_loop hands back the pointer it was given.
    let state = unsafe { &*state };
    let (Some(cfg), Some(heads)) = (config(), H2_HEADS_BUF.get_ptr_mut(0)) else {
        return 1;
    };
    // SAFETY: per-CPU slot filled on this CPU by `save`.
    let heads = unsafe { &mut *heads };
    // `i` < count <= MAX_HEADS; masked (not compared) so that the verifier
    // sees the bound on the register the index is used from.
    let head = &mut heads.heads[i as usize & (http2::MAX_HEADS - 1)];
    let thread = match stream_caller(state.tgid, state.sock_id, head.stream_id, state.now) {
        Some(caller) => caller,
        None if state.has_writer != 0 => match H2_WRITER.get_ptr(0) {
            // SAFETY: per-CPU slot filled on this CPU just before.
            Some(w) => Some(unsafe { *w }),
            None => None,
        },
        None => None,
    };
    client_request_http2(cfg, thread, &mut head.ctx);
    if state.tls != 0 {
        // SAFETY: map values stay valid for the rest of this program run.
        if let Some(info) = unsafe { SOCKS.get(sock_key(state.tgid, state.fd)) } {
            crate::tls::remember_stream(&info.tuple, head.stream_id, &head.ctx);
        }
    }
    0
}

/// Whether the app names `traceparent` itself in the write `args` is about
/// to make, found as an encoder first sends the name on a connection (a
/// literal with a new name, raw or Huffman-coded: `http2::names_traceparent`)
/// in the first `http2::NAME_SCAN_LIMIT` bytes from the start of the header
/// block of its first HEADERS frame (that block, then whatever frames follow
/// it in the write, across its iovecs: the app's first request with its own
/// header may come after one without in the same write). Staged into the
/// scratch payload, free at sys_enter.
#[inline(always)]
fn app_sends_traceparent(ctx: &TracePointContext, args: &SyscallArgs, frame_at: u32) -> bool {
    let block_at = (frame_at + http2::FRAME_HEADER_LEN) as u64;
    let limit = http2::NAME_SCAN_LIMIT as u64;
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch, free while no exit program runs on this CPU.
    let ev = unsafe { &mut (*scratch).event };
    if args.iovcnt != 0 {
        // The write's bytes from the block on, across its iovecs (how many
        // there are in all is not known here).
        copy_iov(
            ev,
            args.buf,
            args.iovcnt,
            limit,
            u32::MAX as u64,
            false,
            block_at,
        );
        let n = ev.cap_len;
        return n != 0 && staged_names_traceparent(n);
    }
    // write/sendto: the count follows the buffer.
    let len = field(ctx, arg(2));
    if args.buf == 0 || len <= block_at {
        return false;
    }
    let n = bounded(if len - block_at < limit {
        len - block_at
    } else {
        limit
    });
    n != 0
        && copy_user(ev.payload.as_mut_ptr(), args.buf + block_at, n)
        && staged_names_traceparent(n as u32)
}

/// Tail-called from sys_exit of a read that starts a server request: read
/// the context its head carries, then go on to `server_decide`.
#[tracepoint]
pub fn server_context(ctx: TracePointContext) -> u32 {
    server_context_body(&ctx, false);
    0
}

/// `server_context`, for either chain.
#[inline(always)]
pub fn server_context_body<C: EbpfContext>(ctx: &C, tls_chain: bool) {
    parse_request_head(scratch_len());
    // SAFETY: a valid context of the chain's program type; the slot holds a
    // program of that type.
    unsafe { crate::tls::tails(tls_chain).tail_call(ctx, tail::SERVER_DECIDE) };
    // The chain broke: send the event without a context.
    if let Some(scratch) = SCRATCH.get_ptr(0) {
        // SAFETY: per-CPU scratch.
        output_event(unsafe { &(*scratch).event });
    }
}

/// Choose a server request's trace context and send the data event.
#[tracepoint]
pub fn server_decide(_ctx: TracePointContext) -> u32 {
    server_decide_body();
    0
}

/// `server_decide`, for either chain.
#[inline(always)]
pub fn server_decide_body() {
    let Some(cfg) = config() else { return };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch filled by the caller on this CPU.
    let ev = unsafe { &mut (*scratch).event };
    let pid_tgid = bpf_get_current_pid_tgid();
    server_request(cfg, actor(cfg, pid_tgid), pid_tgid, ev);
    output_event(ev);
}

/// A length the verifier can see is at most MAX_CAPTURE.
#[inline(always)]
fn bounded(n: u64) -> usize {
    let n = n as usize;
    if n > MAX_CAPTURE { MAX_CAPTURE } else { n }
}

#[inline(always)]
fn copy_user(dst: *mut u8, src: u64, n: usize) -> bool {
    // SAFETY: dst has MAX_CAPTURE bytes of payload plus MAX_CAPTURE of slack,
    // n <= MAX_CAPTURE; src is a user address checked by the helper.
    let rc = unsafe { generated::bpf_probe_read_user(dst.cast(), n as u32, src as *const _) };
    if rc != 0 {
        count(counter::READ_FAILED, 1);
    }
    rc == 0
}

#[inline(always)]
fn copy_tail(ev: &mut tracer_common::DataEvent, src: u64) {
    if copy_user(ev.tail.as_mut_ptr(), src, TAIL_LEN) {
        ev.tail_len = TAIL_LEN as u32;
    }
}

/// Copy the first `want` bytes spread over an iovec array (or of the single
/// buffer at `iov_ptr` when `iovcnt` is 0), and the tail of
/// the `total` bytes the syscall moved, one piece per bpf_loop iteration
/// (an iovec, or the part of one that fits the event), its state in a
/// per-CPU map: unrolled, with the running offset on the stack, every iovec
/// multiplied the verifier's states (exit_io needed over 500,000
/// instructions for 8 iovecs). `chunked`: each event that fills up is sent
/// as it is and the copy goes on in the next one, the last one sent here
/// too; returns true when it sent the events.
#[inline(always)]
fn copy_iov(
    ev: &mut tracer_common::DataEvent,
    iov_ptr: u64,
    iovcnt: u32,
    want: u64,
    total: u64,
    chunked: bool,
    skip: u64,
) -> bool {
    ev.cap_len = 0;
    let Some(state) = IOV_COPY.get_ptr_mut(0) else {
        return false;
    };
    // A single buffer (`iovcnt` 0) is the one segment, already read.
    let single = iovcnt == 0;
    // SAFETY: this CPU's slot; programs do not nest on one CPU here.
    unsafe {
        *state = IovCopy {
            iov: iov_ptr,
            iovcnt: if iovcnt < MAX_IOV { iovcnt } else { MAX_IOV },
            idx: 0,
            base: if single { iov_ptr } else { 0 },
            len: if single { total } else { 0 },
            off: if !single {
                0
            } else if skip < total {
                skip
            } else {
                total
            },
            want,
            total,
            copied: 0,
            captured: 0,
            seen: if single { total } else { 0 },
            sent: 0,
            chunked: chunked as u32,
            skip,
        };
    }
    // SAFETY: the callback only touches the per-CPU IOV_COPY and SCRATCH,
    // and user memory through the probe helper.
    unsafe { generated::bpf_loop(MAX_PIECES, copy_piece as *mut _, core::ptr::null_mut(), 0) };
    // SAFETY: this CPU's slot, as the callback left it.
    let st = unsafe { &*state };
    ev.cap_len = bounded(st.copied) as u32;
    if st.sent == 0 {
        return false;
    }
    // The rest of a chunked syscall: what is in this event, then what was
    // beyond the events' reach.
    if st.copied != 0 {
        ev.total_len = st.copied;
        ev.tail_len = 0;
        output_event(ev);
    }
    if st.total > st.captured {
        uncaptured(ev, st.total - st.captured);
    }
    true
}

/// Iterations of `copy_piece`: each iovec takes one to be read and at
/// least one to be copied, and each full event one more.
const MAX_PIECES: u32 = 2 * MAX_IOV + MAX_CHUNKS + 2;

/// What `copy_iov` has done so far.
#[repr(C)]
struct IovCopy {
    iov: u64,
    iovcnt: u32,
    /// The next iovec to read.
    idx: u32,
    /// The current iovec: where, how many of the syscall's bytes it holds,
    /// and how far into it the copy is.
    base: u64,
    len: u64,
    off: u64,
    want: u64,
    total: u64,
    /// Bytes in the current event's payload.
    copied: u64,
    /// Bytes copied into every event so far.
    captured: u64,
    /// Bytes of the syscall the iovecs read so far hold.
    seen: u64,
    /// Events sent.
    sent: u32,
    /// 1: send each event that fills up and go on in the next.
    chunked: u32,
    /// Bytes of the syscall passed over before the copy starts.
    skip: u64,
}

#[map]
static IOV_COPY: PerCpuArray<IovCopy> = PerCpuArray::with_max_entries(1, 0);

/// bpf_loop callback: the next piece of IOV_COPY's bytes. 1 ends the copy.
extern "C" fn copy_piece(_i: u32, _: *mut u8) -> i64 {
    let (Some(state), Some(scratch)) = (IOV_COPY.get_ptr_mut(0), SCRATCH.get_ptr_mut(0)) else {
        return 1;
    };
    // SAFETY: this CPU's slots, set up by `copy_iov` and `emit_data`.
    let (st, ev) = unsafe { (&mut *state, &mut (*scratch).event) };
    if st.off >= st.len {
        // The next iovec.
        if st.idx >= st.iovcnt || st.seen >= st.total {
            return 1;
        }
        // SAFETY: user pointer checked by the helper.
        let Ok(iov) =
            (unsafe { bpf_probe_read_user((st.iov + st.idx as u64 * 16) as *const IoVec) })
        else {
            return 1;
        };
        st.idx += 1;
        // Only the bytes the syscall actually moved count.
        let len = if iov.len < st.total - st.seen {
            iov.len
        } else {
            st.total - st.seen
        };
        st.base = iov.base;
        st.len = len;
        // The bytes before `skip` are passed over.
        st.off = if st.skip <= st.seen {
            0
        } else if st.skip - st.seen < len {
            st.skip - st.seen
        } else {
            len
        };
        st.seen += len;
        if st.chunked == 0 && st.seen >= st.total && st.total > st.want && len >= TAIL_LEN as u64 {
            copy_tail(ev, iov.base + len - TAIL_LEN as u64);
        }
        return 0;
    }
    if st.captured >= st.want {
        if st.chunked != 0 {
            return 1;
        }
        // Only the tail is wanted now: on to the last iovec.
        st.off = st.len;
        return 0;
    }
    let room = MAX_CAPTURE as u64 - st.copied;
    let mut n = st.len - st.off;
    if n > room {
        n = room;
    }
    if n > st.want - st.captured {
        n = st.want - st.captured;
    }
    let n = bounded(n);
    let at = (st.copied as usize) & (MAX_CAPTURE - 1);
    // SAFETY: at < MAX_CAPTURE and n <= MAX_CAPTURE fit payload+slack.
    let dst = unsafe { ev.payload.as_mut_ptr().add(at) };
    if n == 0 || !copy_user(dst, st.base + st.off, n) {
        return 1;
    }
    st.copied += n as u64;
    st.captured += n as u64;
    st.off += n as u64;
    if st.chunked != 0 && st.copied >= MAX_CAPTURE as u64 && st.captured < st.total {
        // A full event: out it goes, with the syscall's context only on
        // the first.
        ev.cap_len = MAX_CAPTURE as u32;
        ev.total_len = MAX_CAPTURE as u64;
        ev.tail_len = 0;
        output_event(ev);
        words::zero(&mut ev.ctx);
        st.copied = 0;
        st.sent += 1;
    }
    0
}
