//! Trace context decided in the kernel, where it must exist in time: when a
//! server request arrives the thread's context is recorded (from its
//! `traceparent` header, from the client span at the other end of the
//! connection on this host, or a new trace); when that thread starts a
//! client request the client span's ids are chosen from it, before the bytes
//! leave, so sk_msg can write them into the request and the agent can build
//! the client span with exactly those ids.
use aya_ebpf::{
    helpers::{bpf_get_prandom_u32, generated::bpf_loop},
    macros::map,
    maps::LruHashMap,
};
use tracer_common::{
    Config, ConnSeqKey, ConnTuple, DataEvent, MAX_CAPTURE, SockInfo, SyscallArgs, ThreadCtx,
    TraceCtx, counter, ctx_source,
};

use crate::{
    maps::{SCRATCH, SOCKS, count},
    sockets::sock_key,
};

/// A thread's server context older than this is not a parent any more.
const THREAD_CTX_MAX_AGE_NS: u64 = 60 * 1_000_000_000;
/// How far into a request head the kernel looks for `traceparent`.
const SCAN_LIMIT: u32 = 1024;
/// `traceparent: ` value length for version 00.
const TRACEPARENT_LEN: usize = 55;

/// pid_tgid → the server request that thread is serving.
#[map]
pub static THREAD_CTX: LruHashMap<u64, ThreadCtx> = LruHashMap::with_max_entries(16384, 0);

/// The caller's span id from a server request's `traceparent` → that server
/// request: a proxy that forwards the header names exactly the request it is
/// forwarding, however many it serves at once on one thread.
#[map]
pub static SERVER_BY_CALLER: LruHashMap<[u8; 8], ThreadCtx> =
    LruHashMap::with_max_entries(16384, 0);

/// (client endpoints, request number) → the client span's context, so the
/// server end on this host can be stitched to it without any header.
#[map]
pub static CLIENT_CTX: LruHashMap<ConnSeqKey, TraceCtx> = LruHashMap::with_max_entries(16384, 0);

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"PATCH ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
];

/// Whether the first bytes of a message are an HTTP/1 request line's start.
#[inline(always)]
pub fn is_request_start(b: &[u8; 8]) -> bool {
    METHODS.iter().any(|m| b.starts_with(m))
}

#[inline(always)]
pub fn is_response_start(b: &[u8; 8]) -> bool {
    b[..7] == *b"HTTP/1."
}

#[inline(always)]
fn random_u64() -> u64 {
    // SAFETY: no preconditions.
    unsafe { ((bpf_get_prandom_u32() as u64) << 32) | bpf_get_prandom_u32() as u64 }
}

#[inline(always)]
fn new_span_id() -> [u8; 8] {
    let mut id = random_u64();
    if id == 0 {
        id = 1;
    }
    id.to_be_bytes()
}

/// A new trace: random id, sampled by the ratio rule of the OpenTelemetry
/// SDKs so every host decides the same for the same trace id.
#[inline(always)]
fn new_root(cfg: &Config, ctx: &mut TraceCtx) {
    let hi = random_u64();
    let mut lo = random_u64();
    if lo == 0 {
        lo = 1;
    }
    ctx.trace_id[..8].copy_from_slice(&hi.to_be_bytes());
    ctx.trace_id[8..].copy_from_slice(&lo.to_be_bytes());
    ctx.parent_span_id = [0; 8];
    ctx.flags = ((lo >> 1) < cfg.sample_threshold) as u8;
    ctx.source = ctx_source::NONE;
}

/// Number this request on its socket and return the number.
#[inline(always)]
fn next_seq(tgid: u32, fd: u32) -> u32 {
    match SOCKS.get_ptr_mut(sock_key(tgid, fd)) {
        Some(info) => {
            // SAFETY: a live LRU entry; a lost race only misnumbers a request,
            // which the stitching check below then does not match.
            unsafe {
                let seq = (*info).request_seq;
                (*info).request_seq = seq.wrapping_add(1);
                seq
            }
        }
        None => u32::MAX,
    }
}

/// Context for the client request `args` is about to send, into `args.ctx`;
/// its head is in the per-CPU scratch payload.
#[inline(always)]
pub fn client_request(cfg: &Config, pid_tgid: u64, info: &SockInfo, args: &mut SyscallArgs) {
    let now = args.ts_enter;
    let fd = args.fd;
    let len = scratch_len();
    // SAFETY: copied out at once.
    let thread = match unsafe { THREAD_CTX.get(pid_tgid) }.copied() {
        Some(t) if now.saturating_sub(t.ts) < THREAD_CTX_MAX_AGE_NS => Some(t),
        _ => None,
    };
    let ctx = &mut args.ctx;
    *ctx = TraceCtx {
        valid: 1,
        ..TraceCtx::default()
    };
    args.inject_at = 0;
    args.overwrite_at = 0;
    let header_at = find_traceparent(len, ctx);
    // Forwarding the header of a request this process is serving?
    let forwarded = if header_at != 0 {
        // SAFETY: copied out at once.
        unsafe { SERVER_BY_CALLER.get(ctx.parent_span_id) }
            .copied()
            .filter(|s| s.tgid == (pid_tgid >> 32) as u32 && s.ctx.trace_id == ctx.trace_id)
    } else {
        None
    };
    // The thread's request is the parent only when it is the one request
    // the thread has in hand.
    let thread = match forwarded {
        Some(server) => Some(server),
        None => thread.filter(|t| t.pending <= 1),
    };
    let forwarded = forwarded.is_some();
    if header_at != 0 && !forwarded {
        // An SDK-instrumented client sent its own context: adopt it, and
        // leave the request alone.
        ctx.source = ctx_source::HEADER;
        count(counter::INJECT_SKIPPED_HAS_HEADER, 1);
    } else {
        if cfg.inject != 0 {
            if forwarded {
                // A proxy passing on the header it was sent: the callee's
                // parent is this client span, so the value is replaced in
                // place (same length).
                args.overwrite_at = header_at;
            } else {
                args.inject_at = find_line_end(len);
            }
        }
        match thread {
            Some(t) => {
                ctx.trace_id = t.ctx.trace_id;
                ctx.parent_span_id = t.ctx.span_id;
                ctx.flags = t.ctx.flags;
                ctx.source = ctx_source::THREAD;
            }
            None => new_root(cfg, ctx),
        }
    }
    ctx.span_id = new_span_id();
    let seq = next_seq((pid_tgid >> 32) as u32, fd);
    let key = ConnSeqKey {
        tuple: info.tuple,
        seq,
        _pad: 0,
    };
    let _ = CLIENT_CTX.insert(key, &*ctx, 0);
}

/// Context for the server request that `ev` (in the per-CPU scratch, payload
/// included) just read, into `ev.ctx`.
#[inline(always)]
pub fn server_request(cfg: &Config, pid_tgid: u64, ev: &mut DataEvent) {
    let ctx = &mut ev.ctx;
    *ctx = TraceCtx {
        valid: 1,
        ..TraceCtx::default()
    };
    let seq = next_seq((pid_tgid >> 32) as u32, ev.fd);
    let header = find_traceparent(ev.cap_len, ctx) != 0;
    let header_caller = ctx.parent_span_id;
    let key = ConnSeqKey {
        tuple: reversed(&ev.tuple),
        seq,
        _pad: 0,
    };
    // The client end on this host, if it was traced: its own context is
    // more precise than a header it merely passed on, unless that header is
    // an SDK's own (then both agree on the SDK's span).
    // SAFETY: copied out at once.
    let client = unsafe { CLIENT_CTX.get(key) }.copied();
    match client {
        Some(c) if c.source != ctx_source::HEADER && (!header || c.trace_id == ctx.trace_id) => {
            ctx.trace_id = c.trace_id;
            ctx.parent_span_id = c.span_id;
            ctx.flags = c.flags;
            ctx.source = ctx_source::CONNECTION;
        }
        _ if header => ctx.source = ctx_source::HEADER,
        _ => new_root(cfg, ctx),
    }
    if client.is_some() {
        let _ = CLIENT_CTX.remove(key);
    }
    ctx.span_id = new_span_id();
    // SAFETY: copied out at once.
    let pending = match unsafe { THREAD_CTX.get(pid_tgid) }.copied() {
        Some(t) if ev.ts_exit.saturating_sub(t.ts) < THREAD_CTX_MAX_AGE_NS => t.pending + 1,
        _ => 1,
    };
    let thread = ThreadCtx {
        ctx: *ctx,
        sock_id: ev.sock_id,
        ts: ev.ts_exit,
        pending,
        tgid: (pid_tgid >> 32) as u32,
    };
    let _ = THREAD_CTX.insert(pid_tgid, thread, 0);
    if header {
        let _ = SERVER_BY_CALLER.insert(header_caller, thread, 0);
    }
}

/// The thread answered one of its server requests.
#[inline(always)]
pub fn server_responded(pid_tgid: u64) {
    if let Some(t) = THREAD_CTX.get_ptr_mut(pid_tgid) {
        // SAFETY: this thread's entry; only this thread writes it.
        unsafe {
            if (*t).pending <= 1 {
                let _ = THREAD_CTX.remove(pid_tgid);
            } else {
                (*t).pending -= 1;
            }
        }
    }
}

fn reversed(t: &ConnTuple) -> ConnTuple {
    ConnTuple {
        family: t.family,
        local_port: t.remote_port,
        remote_port: t.local_port,
        _pad: 0,
        local_addr: t.remote_addr,
        remote_addr: t.local_addr,
    }
}

#[inline(always)]
fn scratch_len() -> u32 {
    match SCRATCH.get_ptr(0) {
        // SAFETY: per-CPU scratch.
        Some(s) => unsafe { (*s).event.cap_len },
        None => 0,
    }
}

/// Offset just past the first CRLF in the scratch payload, or 0.
#[inline(always)]
fn find_line_end(len: u32) -> u32 {
    let mut scan = Scan {
        len: if len < SCAN_LIMIT { len } else { SCAN_LIMIT },
        value_at: 0,
    };
    // SAFETY: the callback only touches `scan` and the scratch map.
    unsafe {
        bpf_loop(
            scan.len,
            scan_crlf as *mut _,
            &mut scan as *mut Scan as *mut _,
            0,
        );
    }
    scan.value_at
}

/// bpf_loop callback: is byte `i` the LF of a CRLF?
extern "C" fn scan_crlf(i: u32, scan: *mut Scan) -> i64 {
    // SAFETY: bpf_loop hands back the pointer it was given.
    let scan = unsafe { &mut *scan };
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return 1;
    };
    let i = i as usize;
    if i == 0 || i >= scan.len as usize || i >= MAX_CAPTURE - 1 {
        return i64::from(i != 0);
    }
    // SAFETY: 1 <= i < MAX_CAPTURE - 1.
    let p = unsafe { &(*scratch).event.payload };
    if p[i] == b'\n' && p[i - 1] == b'\r' {
        scan.value_at = i as u32 + 1;
        return 1;
    }
    0
}

/// State of the header scan, shared with the bpf_loop callback.
#[repr(C)]
struct Scan {
    len: u32,
    /// Offset of the value of `traceparent:`, or 0 when not found.
    value_at: u32,
}

/// Look for `traceparent` among the header lines of the request in the
/// scratch payload and parse it into `ctx` (trace id, the caller's span as
/// `parent_span_id`, flags). Returns the offset of its value, 0 if none.
#[inline(always)]
fn find_traceparent(len: u32, ctx: &mut TraceCtx) -> u32 {
    let mut scan = Scan {
        len: if len < SCAN_LIMIT { len } else { SCAN_LIMIT },
        value_at: 0,
    };
    // SAFETY: the callback only touches `scan` and the scratch map.
    unsafe {
        bpf_loop(
            scan.len,
            scan_line as *mut _,
            &mut scan as *mut Scan as *mut _,
            0,
        );
    }
    if scan.value_at != 0 && parse_traceparent(scan.value_at, scan.len, ctx) {
        scan.value_at
    } else {
        0
    }
}

/// bpf_loop callback: at byte `i`, is a `traceparent:` line starting?
/// Returns 1 to stop (found, or end of the head), 0 to go on.
extern "C" fn scan_line(i: u32, scan: *mut Scan) -> i64 {
    // SAFETY: bpf_loop hands back the pointer it was given.
    let scan = unsafe { &mut *scan };
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return 1;
    };
    let i = i as usize;
    if i + 16 >= scan.len as usize || i >= MAX_CAPTURE - 32 {
        return 1;
    }
    // SAFETY: i + 16 < MAX_CAPTURE, inside the payload.
    let p = unsafe { &(*scratch).event.payload };
    if p[i] != b'\n' {
        return 0;
    }
    if p[i + 1] == b'\r' {
        return 1; // end of the head
    }
    const NAME: &[u8; 12] = b"traceparent:";
    for k in 0..12 {
        // ASCII lower-casing; ':' is unchanged by it.
        if p[i + 1 + k] | 0x20 != NAME[k] | 0x20 {
            return 0;
        }
    }
    let mut at = i + 13;
    // Optional whitespace before the value.
    for _ in 0..3 {
        if at < MAX_CAPTURE - 64 && (p[at] == b' ' || p[at] == b'\t') {
            at += 1;
        }
    }
    scan.value_at = at as u32;
    1
}

#[inline(always)]
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `00-<32 hex>-<16 hex>-<2 hex>` at `at` in the scratch payload. Versions
/// other than 00 are read the same way (W3C: parse what you know); `ff` and
/// all-zero ids are invalid. The agent re-checks and counts invalid headers.
#[inline(always)]
fn parse_traceparent(at: u32, len: u32, ctx: &mut TraceCtx) -> bool {
    let at = at as usize;
    if at + TRACEPARENT_LEN > len as usize || at >= MAX_CAPTURE - TRACEPARENT_LEN {
        return false;
    }
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return false;
    };
    // SAFETY: at + 55 < MAX_CAPTURE, inside the payload.
    let p = unsafe { &(*scratch).event.payload };
    if p[at + 2] != b'-' || p[at + 35] != b'-' || p[at + 52] != b'-' {
        return false;
    }
    if p[at] == b'f' && p[at + 1] == b'f' {
        return false;
    }
    let mut nonzero_trace = 0u8;
    for k in 0..16 {
        let (Some(h), Some(l)) = (hex(p[at + 3 + 2 * k]), hex(p[at + 4 + 2 * k])) else {
            return false;
        };
        ctx.trace_id[k] = h << 4 | l;
        nonzero_trace |= ctx.trace_id[k];
    }
    let mut nonzero_span = 0u8;
    for k in 0..8 {
        let (Some(h), Some(l)) = (hex(p[at + 36 + 2 * k]), hex(p[at + 37 + 2 * k])) else {
            return false;
        };
        ctx.parent_span_id[k] = h << 4 | l;
        nonzero_span |= ctx.parent_span_id[k];
    }
    let (Some(h), Some(l)) = (hex(p[at + 53]), hex(p[at + 54])) else {
        return false;
    };
    ctx.flags = h << 4 | l;
    nonzero_trace != 0 && nonzero_span != 0
}
