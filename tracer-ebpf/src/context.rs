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
    maps::{Array, LruHashMap, PerCpuArray},
};
use tracer_common::{
    Config, ConnSeqKey, ConnTuple, DataEvent, MAX_CAPTURE, SockInfo, SyscallArgs, ThreadCtx,
    TraceCtx, counter, ctx_source, http2,
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

/// pid_tgid, or `go_actor(tgid, goid)` in Go processes → the server request
/// that thread or goroutine is serving.
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

#[inline(always)]
fn random_u64() -> u64 {
    // SAFETY: no preconditions.
    unsafe { ((bpf_get_prandom_u32() as u64) << 32) | bpf_get_prandom_u32() as u64 }
}

#[inline(always)]
pub(crate) fn new_span_id() -> [u8; 8] {
    let mut id = random_u64();
    if id == 0 {
        id = 1;
    }
    id.to_be_bytes()
}

/// A new trace: random id, sampled by the ratio rule of the OpenTelemetry
/// SDKs so every host decides the same for the same trace id.
#[inline(always)]
pub(crate) fn new_root(cfg: &Config, ctx: &mut TraceCtx) {
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

/// Number this request on its socket and return the number. A server
/// request also names the `actor` serving it (0 for a client request).
#[inline(always)]
fn next_seq(tgid: u32, fd: u32, actor: u64) -> u32 {
    match SOCKS.get_ptr_mut(sock_key(tgid, fd)) {
        Some(info) => {
            // SAFETY: a live LRU entry; a lost race only misnumbers a request,
            // which the stitching check below then does not match.
            unsafe {
                let seq = (*info).request_seq;
                (*info).request_seq = seq.wrapping_add(1);
                if actor != 0 {
                    (*info).server_actor = actor;
                }
                seq
            }
        }
        None => u32::MAX,
    }
}

/// Set once a client request's context is kept in CLIENT_CTX: until then
/// (only servers traced on this host) a server request does not look for
/// its client end there.
#[map]
static CLIENT_CTX_USED: Array<u32> = Array::with_max_entries(1, 0);

#[inline(always)]
fn client_ctx_used() -> bool {
    CLIENT_CTX_USED.get(0).is_some_and(|&used| used != 0)
}

/// Context for the client request `args` is about to send, into `args.ctx`;
/// its head is in the per-CPU scratch payload.
#[inline(always)]
pub fn client_request(
    cfg: &Config,
    pid_tgid: u64,
    thread: Option<ThreadCtx>,
    info: &SockInfo,
    args: &mut SyscallArgs,
) {
    let fd = args.fd;
    let len = scratch_len();
    let ctx = &mut args.ctx;
    crate::words::zero(ctx);
    ctx.valid = 1;
    args.inject_at = 0;
    args.overwrite_at = 0;
    let header_at = parsed_header(ctx);
    // Forwarding the header of a request this process is serving?
    let forwarded = if header_at != 0 {
        // SAFETY: copied out at once.
        unsafe { SERVER_BY_CALLER.get(ctx.parent_span_id) }
            .copied()
            .filter(|s| s.tgid == (pid_tgid >> 32) as u32 && s.ctx.trace_id == ctx.trace_id)
    } else {
        None
    };
    let thread = match forwarded {
        Some(server) => Some(server),
        None => thread,
    };
    let forwarded = forwarded.is_some();
    if header_at != 0 && !forwarded {
        // An SDK-instrumented client sent its own context: adopt it, and
        // leave the request alone.
        ctx.source = ctx_source::HEADER;
        count(counter::INJECT_SKIPPED_HAS_HEADER, 1);
    } else {
        // Over TLS sk_msg sees only ciphertext: nothing to write into.
        if cfg.inject != 0 && info.tls == 0 {
            if forwarded && header_at != B3_FOUND {
                // A proxy passing on the header it was sent: the callee's
                // parent is this client span, so the value is replaced in
                // place (same length).
                args.overwrite_at = header_at;
            } else {
                // Nothing to replace (or forwarded B3): a traceparent line
                // goes in, which takes precedence downstream.
                args.inject_at = find_line_end(len);
            }
        }
        child_of(cfg, thread, ctx);
        if forwarded {
            ctx.source = ctx_source::FORWARDED;
        }
    }
    ctx.span_id = new_span_id();
    let seq = next_seq((pid_tgid >> 32) as u32, fd, 0);
    let key = ConnSeqKey {
        tuple: info.tuple,
        seq,
        _pad: 0,
    };
    if CLIENT_CTX.insert(key, &*ctx, 0).is_ok()
        && !client_ctx_used()
        && let Some(used) = CLIENT_CTX_USED.get_ptr_mut(0)
    {
        // SAFETY: a u32 slot; every writer writes 1.
        unsafe { *used = 1 };
    }
}

/// `ctx` becomes a child of the server request `thread` (a thread's or a
/// goroutine's: `goroutines` marks the latter in its source), else a new
/// trace.
#[inline(always)]
fn child_of(cfg: &Config, thread: Option<ThreadCtx>, ctx: &mut TraceCtx) {
    match thread {
        Some(t) => {
            ctx.trace_id = t.ctx.trace_id;
            ctx.parent_span_id = t.ctx.span_id;
            ctx.flags = t.ctx.flags;
            ctx.source = if t.ctx.source == ctx_source::GOROUTINE {
                ctx_source::GOROUTINE
            } else {
                ctx_source::THREAD
            };
        }
        None => new_root(cfg, ctx),
    }
}

/// Context for an HTTP/2 client request a write is about to send (sk_msg
/// adds it to the request's HEADERS frame), into `ctx`: the child of
/// `thread`'s request, else a new trace. No CLIENT_CTX entry: the server
/// end reads the header.
#[inline(always)]
pub fn client_request_http2(cfg: &Config, thread: Option<ThreadCtx>, ctx: &mut TraceCtx) {
    crate::words::zero(ctx);
    ctx.valid = 1;
    child_of(cfg, thread, ctx);
    ctx.span_id = new_span_id();
}

/// The server request that `key` (a thread, or a goroutine: see
/// `goroutines::actor`) is serving, if it is recent and the only one it has
/// in hand (a thread serving several at once names none of them).
#[inline(always)]
pub fn fresh_request(key: u64, now: u64) -> Option<ThreadCtx> {
    // SAFETY: copied out at once.
    match unsafe { THREAD_CTX.get(key) }.copied() {
        // `pending` 0: answered (`server_responded`), nothing in hand.
        Some(t) if now.saturating_sub(t.ts) < THREAD_CTX_MAX_AGE_NS && t.pending == 1 => Some(t),
        _ => None,
    }
}

/// Context for the server request that `ev` (in the per-CPU scratch, payload
/// included) just read, into `ev.ctx`; recorded for `actor`, the thread or
/// goroutine that read it.
#[inline(always)]
pub fn server_request(cfg: &Config, actor: u64, pid_tgid: u64, ev: &mut DataEvent) {
    let ctx = &mut ev.ctx;
    crate::words::zero(ctx);
    ctx.valid = 1;
    let seq = next_seq((pid_tgid >> 32) as u32, ev.fd, actor);
    let header = parsed_header(ctx) != 0;
    let header_caller = ctx.parent_span_id;
    let key = ConnSeqKey {
        tuple: reversed(&ev.tuple),
        seq,
        _pad: 0,
    };
    // The client end on this host, if it was traced: its own context is
    // more precise than a header it merely passed on, unless that header is
    // an SDK's own (then both agree on the SDK's span).
    let client = if client_ctx_used() {
        // SAFETY: copied out at once.
        unsafe { CLIENT_CTX.get(key) }.copied()
    } else {
        None
    };
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
    let slot = THREAD_CTX.get_ptr_mut(actor);
    let pending = match slot {
        // SAFETY: a live entry, read before it is written below.
        Some(t) if ev.ts_exit.saturating_sub(unsafe { (*t).ts }) < THREAD_CTX_MAX_AGE_NS => {
            // SAFETY: as above.
            unsafe { (*t).pending + 1 }
        }
        _ => 1,
    };
    let thread = ThreadCtx {
        ctx: *ctx,
        sock_id: ev.sock_id,
        ts: ev.ts_exit,
        pending,
        tgid: (pid_tgid >> 32) as u32,
    };
    match slot {
        // The actor's entry (its last request, answered or not) is written
        // over in place, `pending` last: an LRU insert takes a free node
        // and returns the old one, a fifth of this program's time. Only
        // this actor writes it; a child goroutine reading it meanwhile is
        // one that outlived the request it was started for.
        // SAFETY: a live entry of this actor.
        Some(t) => crate::words::copy(unsafe { &mut *t }, &thread),
        None => {
            let _ = THREAD_CTX.insert(actor, thread, 0);
        }
    }
    // Remember the request by its caller's span id, for a proxy that
    // forwards the caller's header. With a connection parent too: the
    // header sk_msg wrote may arrive in a later read than the request line
    // (it is its own segment), and then names exactly that client span.
    if header {
        let _ = SERVER_BY_CALLER.insert(header_caller, thread, 0);
    } else if ctx.source == ctx_source::CONNECTION {
        let _ = SERVER_BY_CALLER.insert(ctx.parent_span_id, thread, 0);
    }
}

/// The thread or goroutine `actor` answered one of its server requests.
/// The entry stays, with nothing pending once all are answered: the
/// actor's next request writes over it, and an LRU delete per response
/// cost more than the rest of this program.
#[inline(always)]
pub fn server_responded(actor: u64) {
    if let Some(t) = THREAD_CTX.get_ptr_mut(actor) {
        // SAFETY: this actor's entry; only this actor writes it.
        unsafe {
            if (*t).pending > 0 {
                (*t).pending -= 1;
            }
        }
    }
}

pub(crate) fn reversed(t: &ConnTuple) -> ConnTuple {
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
pub fn scratch_len() -> u32 {
    match SCRATCH.get_ptr(0) {
        // SAFETY: per-CPU scratch.
        Some(s) => unsafe { (*s).event.cap_len },
        None => 0,
    }
}

/// Offset just past the first CRLF in the scratch payload, or 0.
#[inline(always)]
fn find_line_end(len: u32) -> u32 {
    let Some(n) = Scan::start(len) else {
        return 0;
    };
    // SAFETY: the callback only touches the per-CPU SCAN and SCRATCH.
    unsafe { bpf_loop(n, scan_crlf as *mut _, core::ptr::null_mut(), 0) };
    Scan::result().map_or(0, |s| s.value_at)
}

/// bpf_loop callback: is byte `i` the LF of a CRLF?
extern "C" fn scan_crlf(i: u32, _: *mut u8) -> i64 {
    let (Some(scan), Some(scratch)) = (SCAN.get_ptr_mut(0), SCRATCH.get_ptr(0)) else {
        return 1;
    };
    // SAFETY: this CPU's slot, set up by `Scan::start`.
    let scan = unsafe { &mut *scan };
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

/// State of the header scan, shared with the bpf_loop callback through a
/// per-CPU map, not the stack: the verifier does not follow values in map
/// memory, so the callback's entry state is the same at every iteration
/// and its verification converges at once. Offsets kept on the stack were
/// tracked precisely, and every offset a header could be found at made
/// another state (client_context and server_context hit the verifier's
/// 1,000,000-instruction limit that way).
#[repr(C)]
#[derive(Clone, Copy)]
struct Scan {
    len: u32,
    /// Offset of the value of `traceparent:`, or 0 when not found.
    value_at: u32,
    /// Offsets of the values of the B3 headers, 0 when absent.
    b3_at: u32,
    b3_trace_at: u32,
    b3_span_at: u32,
    b3_sampled_at: u32,
}

#[map]
static SCAN: PerCpuArray<Scan> = PerCpuArray::with_max_entries(1, 0);

impl Scan {
    /// A new scan of the first `len` bytes of the scratch payload; the
    /// bytes to look at.
    #[inline(always)]
    fn start(len: u32) -> Option<u32> {
        let scan = SCAN.get_ptr_mut(0)?;
        let len = if len < SCAN_LIMIT { len } else { SCAN_LIMIT };
        // SAFETY: this CPU's slot; programs do not nest on one CPU here.
        unsafe {
            *scan = Self {
                len,
                value_at: 0,
                b3_at: 0,
                b3_trace_at: 0,
                b3_span_at: 0,
                b3_sampled_at: 0,
            };
        }
        Some(len)
    }

    /// What the scan found.
    #[inline(always)]
    fn result() -> Option<Self> {
        // SAFETY: this CPU's slot, copied out.
        SCAN.get_ptr(0).map(|s| unsafe { *s })
    }
}

/// What `parse_request_head` found, per CPU, for the program it tail-calls.
#[repr(C)]
pub struct Parsed {
    /// As `find_traceparent` returns.
    pub found: u32,
    pub flags: u8,
    pub _pad: [u8; 3],
    pub trace_id: [u8; 16],
    pub parent_span_id: [u8; 8],
}

#[map]
static PARSED: PerCpuArray<Parsed> = PerCpuArray::with_max_entries(1, 0);

/// Scan the request head in the scratch payload for trace context and
/// leave the result for the next program (the parse alone is a verifier
/// budget of its own).
#[inline(always)]
pub fn parse_request_head(len: u32) {
    let Some(out) = PARSED.get_ptr_mut(0) else {
        return;
    };
    let mut ctx = TraceCtx::default();
    let found = find_traceparent(len, &mut ctx);
    // SAFETY: per-CPU slot.
    unsafe {
        (*out).found = found;
        (*out).flags = ctx.flags;
        (*out).trace_id = ctx.trace_id;
        (*out).parent_span_id = ctx.parent_span_id;
    }
}

/// The caller's context `parse_request_head` found, into `ctx`; returns its
/// `found` value (0: none).
#[inline(always)]
fn parsed_header(ctx: &mut TraceCtx) -> u32 {
    let Some(p) = PARSED.get_ptr(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot written by the previous program of this chain.
    let p = unsafe { &*p };
    if p.found != 0 {
        ctx.trace_id = p.trace_id;
        ctx.parent_span_id = p.parent_span_id;
        ctx.flags = p.flags;
    }
    p.found
}

/// Look for trace context among the header lines of the request in the
/// scratch payload and parse it into `ctx` (trace id, the caller's span as
/// `parent_span_id`, flags): W3C `traceparent` first, then B3 (single, then
/// multi-header). Returns the offset of a `traceparent` value (which sk_msg
/// may overwrite in place), `B3_FOUND` for a B3 context, 0 if none.
#[inline(always)]
fn find_traceparent(len: u32, ctx: &mut TraceCtx) -> u32 {
    let Some(n) = Scan::start(len) else {
        return 0;
    };
    // SAFETY: the callback only touches the per-CPU SCAN and SCRATCH.
    unsafe {
        bpf_loop(
            n.div_ceil(8),
            scan_words as *mut _,
            core::ptr::null_mut(),
            0,
        )
    };
    let Some(scan) = Scan::result() else {
        return 0;
    };
    if scan.value_at != 0 && parse_traceparent(scan.value_at, scan.len, ctx) {
        return scan.value_at;
    }
    if scan.b3_at != 0 && parse_b3_single(scan.b3_at, scan.len, ctx) {
        return B3_FOUND;
    }
    if scan.b3_trace_at != 0 && scan.b3_span_at != 0 && parse_b3_multi(&scan, ctx) {
        return B3_FOUND;
    }
    0
}

/// Whether the first `len` bytes of the scratch payload (the start of an
/// HTTP/2 header block) hold the name `traceparent` as an encoder first
/// sends it (`http2::names_traceparent`); at most `http2::NAME_SCAN_LIMIT`
/// bytes are looked at.
#[inline(always)]
pub fn staged_names_traceparent(len: u32) -> bool {
    let limit = http2::NAME_SCAN_LIMIT;
    let mut scan = NameScan {
        len: if len < limit { len } else { limit },
        found: 0,
    };
    // SAFETY: the callback only touches `scan` and the scratch map.
    unsafe {
        bpf_loop(
            scan.len.div_ceil(8),
            scan_name_words as *mut _,
            &mut scan as *mut NameScan as *mut _,
            0,
        );
    }
    scan.found != 0
}

/// State of `staged_names_traceparent`'s scan.
#[repr(C)]
struct NameScan {
    len: u32,
    found: u32,
}

/// bpf_loop callback over a header block eight bytes at a time: only the
/// bytes that may be the name's length (`http2::name_length_candidates`)
/// are looked at. Returns 1 to stop, 0 to go on.
extern "C" fn scan_name_words(w: u32, scan: *mut NameScan) -> i64 {
    // SAFETY: bpf_loop hands back the pointer it was given.
    let scan = unsafe { &mut *scan };
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return 1;
    };
    let limit = http2::NAME_SCAN_LIMIT as usize;
    let len = scan.len as usize;
    let base = w as usize * 8;
    if base >= limit || base >= len {
        return 1;
    }
    // SAFETY: the per-CPU scratch event.
    let p = unsafe { (*scratch).event.payload.as_ptr() };
    // Every read below ends before NAME_SCAN_LIMIT + 17 (no slice
    // indexing: a bounds check LLVM keeps is a call the verifier refuses).
    const _: () = assert!(http2::NAME_SCAN_LIMIT as usize + 17 <= MAX_CAPTURE);
    // SAFETY: at + 8 <= MAX_CAPTURE (above).
    let read = |at: usize| unsafe { core::ptr::read_unaligned(p.add(at) as *const u64) };
    // SAFETY: as above.
    let byte = |at: usize| unsafe { *p.add(at) };
    let mut m = http2::name_length_candidates(read(base));
    for _ in 0..8 {
        if m == 0 {
            break;
        }
        let i = base + (m.trailing_zeros() / 8) as usize;
        m &= m - 1;
        if i == 0 || i >= len || i >= limit {
            continue;
        }
        let avail = (len - i - 1) as u32;
        if http2::names_traceparent(byte(i - 1), byte(i), read(i + 1), read(i + 9), avail) {
            scan.found = 1;
            return 1;
        }
    }
    0
}

/// `find_traceparent` found B3, which has no value sk_msg could overwrite.
pub const B3_FOUND: u32 = u32::MAX;

/// Eight payload bytes at `at` as a little-endian word, ASCII-lowercased
/// (OR 0x20 leaves ':', '-' and digits alone). Header names are compared a
/// word at a time: per-byte loops made the verifier's work explode.
#[inline(always)]
fn lower_word(p: &[u8; MAX_CAPTURE], at: usize) -> u64 {
    if at + 8 > MAX_CAPTURE {
        return 0;
    }
    // SAFETY: at + 8 <= MAX_CAPTURE.
    let w = unsafe { core::ptr::read_unaligned(p.as_ptr().add(at) as *const u64) };
    w | 0x2020_2020_2020_2020
}

const fn word(s: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < s.len() && i < 8 {
        w |= (s[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// Mask of the low `n` bytes of a word.
const fn low(n: u32) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// The offset of a header value starting at `at`, past up to two blanks.
#[inline(always)]
fn skip_blanks(p: &[u8; MAX_CAPTURE], mut at: usize) -> u32 {
    for _ in 0..2 {
        if at < MAX_CAPTURE && (p[at] == b' ' || p[at] == b'\t') {
            at += 1;
        }
    }
    at as u32
}

/// bpf_loop callback over the head eight bytes at a time: only the line
/// feeds in word `w` are looked at (a byte-per-call scan cost more than the
/// rest of the request's kernel work). Returns 1 to stop, 0 to go on.
extern "C" fn scan_words(w: u32, _: *mut u8) -> i64 {
    let (Some(scan), Some(scratch)) = (SCAN.get_ptr_mut(0), SCRATCH.get_ptr(0)) else {
        return 1;
    };
    // SAFETY: this CPU's slot, set up by `Scan::start`.
    let scan = unsafe { &mut *scan };
    let base = w as usize * 8;
    if base >= MAX_CAPTURE - 40 || base >= scan.len as usize {
        return 1;
    }
    // SAFETY: the per-CPU scratch event; base + 8 <= MAX_CAPTURE.
    let p = unsafe { &(*scratch).event.payload };
    let word = unsafe { core::ptr::read_unaligned(p.as_ptr().add(base) as *const u64) };
    // Bytes equal to '\n' become 0x80 (the classic zero-byte test on x ^ LF;
    // a false positive only costs a look).
    let x = word ^ 0x0a0a_0a0a_0a0a_0a0a;
    let mut lf = x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080;
    for _ in 0..8 {
        if lf == 0 {
            break;
        }
        let i = base + (lf.trailing_zeros() / 8) as usize;
        lf &= lf - 1;
        if check_line(p, i, scan) {
            return 1;
        }
    }
    0
}

/// At byte `i` (a '\n'), does a context header line start? True at the end
/// of the head.
#[inline(always)]
fn check_line(p: &[u8; MAX_CAPTURE], i: usize, scan: &mut Scan) -> bool {
    if i + 16 >= scan.len as usize || i >= MAX_CAPTURE - 32 {
        return true;
    }
    if p[i] != b'\n' {
        return false;
    }
    if p[i + 1] == b'\r' {
        return true; // end of the head
    }
    let (w0, w1) = (lower_word(p, i + 1), lower_word(p, i + 9));
    if w0 == word(b"tracepar") && w1 & low(4) == word(b"ent:") {
        scan.value_at = skip_blanks(p, i + 13);
    } else if w0 & low(3) == word(b"b3:") {
        scan.b3_at = skip_blanks(p, i + 4);
    } else if w0 == word(b"x-b3-tra") && w1 & low(5) == word(b"ceid:") {
        scan.b3_trace_at = skip_blanks(p, i + 14);
    } else if w0 == word(b"x-b3-spa") && w1 & low(4) == word(b"nid:") {
        scan.b3_span_at = skip_blanks(p, i + 13);
    } else if w0 == word(b"x-b3-sam") && w1 & low(5) == word(b"pled:") {
        scan.b3_sampled_at = skip_blanks(p, i + 14);
    }
    false
}

/// `b3: {trace}-{span}[-{sampling}[-{parent}]]`
#[inline(always)]
pub(crate) fn parse_b3_single(at: u32, len: u32, ctx: &mut TraceCtx) -> bool {
    let at = at as usize;
    if at + 33 > len as usize {
        return false;
    }
    let Some(n) = b3_trace_id(at, ctx) else {
        return false;
    };
    let span_at = at + n + 1;
    if scratch_byte(at + n) != b'-' || !b3_span_id(span_at, ctx) {
        return false;
    }
    let not_sampled = scratch_byte(span_at + 16) == b'-' && scratch_byte(span_at + 17) == b'0';
    ctx.flags = !not_sampled as u8;
    true
}

/// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
#[inline(always)]
fn parse_b3_multi(scan: &Scan, ctx: &mut TraceCtx) -> bool {
    if b3_trace_id(scan.b3_trace_at as usize, ctx).is_none()
        || !b3_span_id(scan.b3_span_at as usize, ctx)
    {
        return false;
    }
    ctx.flags = if scan.b3_sampled_at != 0 {
        matches!(
            scratch_byte(scan.b3_sampled_at as usize),
            b'1' | b't' | b'T'
        ) as u8
    } else {
        1
    };
    true
}

/// One hex-decoding job for the bpf_loop callback `hex_step`: decoding in
/// a callback keeps the verifier's work per header constant instead of one
/// unrolled branch pair per digit. In a per-CPU map, like `Scan`, so that
/// the callback's verification converges whatever the digits.
#[repr(C)]
#[derive(Clone, Copy)]
struct HexJob {
    at: u32,
    /// 1 while every digit so far was valid.
    ok: u32,
    /// OR of the bytes decoded: zero ids are invalid.
    nonzero: u32,
    /// Accept A-F too (B3 senders vary; W3C says lowercase).
    upper: u32,
    /// Digits 0..16 and 16..32, shifted in: no variable-offset writes,
    /// which the verifier refuses on the stack.
    hi: u64,
    lo: u64,
}

impl HexJob {
    /// The decoded bytes, big-endian, for `digits` digits (2, 16 or 32).
    fn bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.hi.to_be_bytes());
        out[8..].copy_from_slice(&self.lo.to_be_bytes());
        out
    }
}

#[map]
static HEX_JOB: PerCpuArray<HexJob> = PerCpuArray::with_max_entries(1, 0);

extern "C" fn hex_step(i: u32, _: *mut u8) -> i64 {
    let (Some(job), Some(scratch)) = (HEX_JOB.get_ptr_mut(0), SCRATCH.get_ptr(0)) else {
        return 1;
    };
    // SAFETY: this CPU's slot, set up by `decode_hex`.
    let job = unsafe { &mut *job };
    // SAFETY: the per-CPU scratch event.
    let p = unsafe { &(*scratch).event.payload };
    let digit = p.get(job.at as usize + i as usize).and_then(|&c| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if job.upper != 0 => Some(c - b'A' + 10),
        _ => None,
    });
    let Some(v) = digit else {
        job.ok = 0;
        return 1;
    };
    if v != 0 {
        job.nonzero = 1;
    }
    if i < 16 {
        job.hi = job.hi << 4 | v as u64;
    } else if i < 32 {
        job.lo = job.lo << 4 | v as u64;
    } else {
        job.ok = 0;
        return 1;
    }
    0
}

/// Decode `digits` hex digits at `at` of the scratch payload.
#[inline(always)]
fn decode_hex(at: usize, digits: u32, upper: bool) -> Option<HexJob> {
    let slot = HEX_JOB.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot; programs do not nest on one CPU here.
    unsafe {
        *slot = HexJob {
            at: at as u32,
            ok: 1,
            nonzero: 0,
            upper: upper as u32,
            hi: 0,
            lo: 0,
        };
    }
    // SAFETY: the callback only touches the per-CPU HEX_JOB and SCRATCH.
    unsafe { bpf_loop(digits, hex_step as *mut _, core::ptr::null_mut(), 0) };
    // SAFETY: this CPU's slot, copied out.
    let job = unsafe { *slot };
    (job.ok != 0).then_some(job)
}

/// A byte of the scratch payload, 0 past its end. A plain u8, not an
/// Option: LLVM may read an Option's undefined payload, and the verifier
/// rejects reads of registers never written.
#[inline(always)]
fn scratch_byte(at: usize) -> u8 {
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return 0;
    };
    if at >= MAX_CAPTURE {
        return 0;
    }
    // SAFETY: the per-CPU scratch event; at < MAX_CAPTURE.
    unsafe { (*scratch).event.payload[at] }
}

#[inline(always)]
fn is_hex(c: u8) -> bool {
    matches!(c, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
}

/// `00-<32 hex>-<16 hex>-<2 hex>` at `at` in the scratch payload. Versions
/// other than 00 are read the same way (W3C: parse what you know); `ff` and
/// all-zero ids are invalid. The agent re-checks and counts invalid headers.
#[inline(always)]
pub(crate) fn parse_traceparent(at: u32, len: u32, ctx: &mut TraceCtx) -> bool {
    let at = at as usize;
    if at + TRACEPARENT_LEN > len as usize {
        return false;
    }
    if scratch_byte(at + 2) != b'-'
        || scratch_byte(at + 35) != b'-'
        || scratch_byte(at + 52) != b'-'
        || (scratch_byte(at) == b'f' && scratch_byte(at + 1) == b'f')
    {
        return false;
    }
    let (Some(trace), Some(span), Some(flags)) = (
        decode_hex(at + 3, 32, false),
        decode_hex(at + 36, 16, false),
        decode_hex(at + 53, 2, false),
    ) else {
        return false;
    };
    if trace.nonzero == 0 || span.nonzero == 0 {
        return false;
    }
    ctx.trace_id = trace.bytes();
    ctx.parent_span_id = span.hi.to_be_bytes();
    ctx.flags = flags.hi as u8;
    true
}

/// A 64- or 128-bit B3 trace id at `at` into `ctx.trace_id`; its length.
#[inline(always)]
fn b3_trace_id(at: usize, ctx: &mut TraceCtx) -> Option<usize> {
    // 128-bit ids have a hex digit where 64-bit ones end.
    let digits = if is_hex(scratch_byte(at + 16)) {
        32
    } else {
        16
    };
    let job = decode_hex(at, digits, true)?;
    if job.nonzero == 0 {
        return None;
    }
    if digits == 32 {
        ctx.trace_id = job.bytes();
    } else {
        // 64-bit ids are the low half of a 128-bit one.
        ctx.trace_id = [0; 16];
        ctx.trace_id[8..].copy_from_slice(&job.hi.to_be_bytes());
    }
    Some(digits as usize)
}

#[inline(always)]
fn b3_span_id(at: usize, ctx: &mut TraceCtx) -> bool {
    match decode_hex(at, 16, true) {
        Some(job) if job.nonzero != 0 => {
            ctx.parent_span_id = job.hi.to_be_bytes();
            true
        }
        _ => false,
    }
}
