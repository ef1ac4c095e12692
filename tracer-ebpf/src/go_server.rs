//! Go HTTP/2 and gRPC servers: every stream's handler runs in a goroutine
//! that the connection's goroutine starts, so no syscall tells which
//! request a handler serves. One uprobe at the start of that handler
//! goroutine, with the stream in hand, decides the request's context there
//! and then: from its `traceparent` (or `b3`) header, read from the
//! headers Go already decoded, else a new trace. It is recorded for the
//! handler goroutine (the calls it and its goroutines make become its
//! children) and sent to the agent, which gives the stream's server span
//! exactly those ids.
//!
//! Attached per process, and only to Go processes that make outgoing calls
//! (a leaf server never pays for it).
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_loop},
    macros::{map, uprobe},
    maps::HashMap,
    programs::ProbeContext,
};
use tracer_common::{
    Config, GoOffsets, GoServerOffsets, H2Head, MAX_CAPTURE, ThreadCtx, TraceCtx, counter,
    ctx_source, go_actor, kind,
};

use crate::{
    context::{THREAD_CTX, new_root, new_span_id, parse_b3_single, parse_traceparent},
    goroutines::{GO_PROCS, goroutine_of, net_conn_fd, user},
    maps::{EVENTS, SCRATCH, SOCKS, config, count, process_wanted},
    sockets::sock_key,
    tls::client_of_stream,
};

/// tgid → what the server probes read, for the Go processes they are
/// attached to.
#[map]
pub static GO_SERVERS: HashMap<u32, GoServerOffsets> = HashMap::with_max_entries(4096, 0);

/// `net/http.(*http2serverConn).runHandler(rw, req, handler)` at entry, in
/// the new handler goroutine.
#[uprobe]
pub fn go_h2_server_std(ctx: ProbeContext) -> u32 {
    h2_handler(&ctx, false);
    0
}

/// `golang.org/x/net/http2.(*serverConn).runHandler(rw, req, handler)`.
#[uprobe]
pub fn go_h2_server_xnet(ctx: ProbeContext) -> u32 {
    h2_handler(&ctx, true);
    0
}

/// grpc-go's `(*Server).handleStream(t, stream, ...)` at entry, in the
/// goroutine that runs the stream's handler.
#[uprobe]
pub fn go_grpc_server_stream(ctx: ProbeContext) -> u32 {
    let Some((cfg, tgid, off, srv)) = server_probe() else {
        return 0;
    };
    // Go's register ABI: receiver in RAX, the ServerTransport interface in
    // RBX/RCX, the stream in RDI; `g` in R14.
    // SAFETY: the probe's registers.
    let (stream, g) = unsafe { ((*ctx.regs).rdi, (*ctx.regs).r14) };
    let gs = srv.grpc;
    if stream == 0 || gs.stream_ctx == 0 {
        count(counter::GO_SERVER_STREAM_FAILED, 1);
        return 0;
    }
    let id = user::<u32>(stream + gs.stream_id as u64);
    let fd = user::<u64>(stream + gs.stream_st as u64 + 8)
        .filter(|&t| t != 0)
        .and_then(|t| net_conn_fd(&off, t + gs.server_conn as u64));
    let metadata = incoming_metadata(&srv, stream + gs.stream_ctx as u64);
    serve(cfg, tgid, &off, &srv, g, (fd, id), metadata, 0);
    0
}

/// Tgid, config and offsets of a wanted Go process that has the probes.
#[inline(always)]
fn server_probe() -> Option<(&'static Config, u32, GoOffsets, GoServerOffsets)> {
    let cfg = config()?;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !process_wanted(cfg, tgid) {
        return None;
    }
    // SAFETY: copied out at once.
    let off = unsafe { GO_PROCS.get(tgid) }.copied()?;
    // SAFETY: copied out at once.
    let srv = unsafe { GO_SERVERS.get(tgid) }.copied()?;
    count(counter::GO_SERVER_STREAMS, 1);
    Some((cfg, tgid, off, srv))
}

#[inline(always)]
fn h2_handler(ctx: &ProbeContext, xnet: bool) {
    let Some((cfg, tgid, off, srv)) = server_probe() else {
        return;
    };
    // RAX: the serverConn, RBX: the responseWriter, RCX: the *http.Request.
    // SAFETY: the probe's registers.
    let (sc, rw, req, g) = unsafe {
        let r = &*ctx.regs;
        (r.rax, r.rbx, r.rcx, r.r14)
    };
    let layout = if xnet { srv.xnet } else { srv.std };
    if sc == 0 || rw == 0 || layout.sc_conn == 0 {
        count(counter::GO_SERVER_STREAM_FAILED, 1);
        return;
    }
    let id = user::<u64>(rw + layout.rw_rws as u64)
        .filter(|&rws| rws != 0)
        .and_then(|rws| user::<u64>(rws + layout.rws_stream as u64))
        .filter(|&s| s != 0)
        .and_then(|s| user::<u32>(s + layout.stream_id as u64));
    let fd = net_conn_fd(&off, sc + layout.sc_conn as u64);
    let headers = match req {
        0 => 0,
        req => user::<u64>(req + layout.req_header as u64).unwrap_or(0),
    };
    let request = if layout.pattern != 0 { req } else { 0 };
    serve(cfg, tgid, &off, &srv, g, (fd, id), headers, request);
}

/// Context values looked through for the incoming metadata.
const MAX_CONTEXTS: usize = 8;

/// The map of grpc-go's incoming metadata: the value under
/// `metadata.mdIncomingKey{}` in the stream's context chain. Every context
/// type of the standard library embeds its parent first, so the chain is
/// followed through the first word pair of each. 0: not found.
#[inline(always)]
fn incoming_metadata(srv: &GoServerOffsets, ctx_iface: u64) -> u64 {
    let gs = &srv.grpc;
    if gs.md_key_type == 0 {
        return 0;
    }
    let mut iface = ctx_iface;
    for _ in 0..MAX_CONTEXTS {
        let data = match user::<u64>(iface + 8) {
            Some(d) if d != 0 => d,
            _ => return 0,
        };
        if user::<u64>(data + gs.value_key as u64) == Some(gs.md_key_type) {
            // metadata.MD is a map: the interface's data word is the map.
            return user::<u64>(data + gs.value_val as u64 + 8).unwrap_or(0);
        }
        iface = data;
    }
    0
}

/// The event telling the agent a server stream's context: an
/// `H2HeadsEvent` with one head.
#[repr(C)]
struct ServerHead {
    kind: u8,
    _pad: [u8; 3],
    pid: u32,
    fd: u32,
    count: u32,
    sock_id: u64,
    head: H2Head,
}

/// Decide the context of stream `id` on `fd`, whose request headers are the
/// map at `headers` (0: none), for the handler goroutine `g`; record it and
/// tell the agent (with the address of the `*http.Request`, `request`, for
/// its route).
#[expect(clippy::too_many_arguments, reason = "one call site per server kind")]
#[inline(always)]
fn serve(
    cfg: &Config,
    tgid: u32,
    off: &GoOffsets,
    srv: &GoServerOffsets,
    g: u64,
    (fd, id): (Option<u32>, Option<u32>),
    headers: u64,
    request: u64,
) {
    let (Some(fd), Some(id)) = (fd, id) else {
        count(counter::GO_SERVER_STREAM_FAILED, 1);
        return;
    };
    // SAFETY: map values stay valid for the rest of this program run.
    let sock = unsafe { SOCKS.get(sock_key(tgid, fd)) };
    let (Some(sock), Some(goroutine)) = (sock, goroutine_of(off, g)) else {
        count(counter::GO_SERVER_STREAM_FAILED, 1);
        return;
    };
    let sock_id = sock.sock_id;
    let mut ctx = TraceCtx {
        valid: 1,
        ..TraceCtx::default()
    };
    if headers != 0 && incoming_header(srv.swiss_maps != 0, headers, &mut ctx) {
        ctx.source = ctx_source::HEADER;
        count(counter::GO_SERVER_STREAM_HEADER, 1);
    } else if let Some(client) = (sock.tls != 0)
        .then(|| client_of_stream(&sock.tuple, id))
        .flatten()
    {
        // Over TLS no header was written: the client on this host chose
        // its request's context in the kernel.
        ctx.trace_id = client.trace_id;
        ctx.parent_span_id = client.span_id;
        ctx.flags = client.flags;
        ctx.source = ctx_source::CONNECTION;
    } else {
        new_root(cfg, &mut ctx);
    }
    ctx.span_id = new_span_id();
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let thread = ThreadCtx {
        ctx,
        sock_id,
        ts: now,
        pending: 1,
        tgid,
    };
    let _ = THREAD_CTX.insert(go_actor(tgid, goroutine.goid), thread, 0);
    let ev = ServerHead {
        kind: kind::H2_HEADS,
        _pad: [0; 3],
        pid: tgid,
        fd,
        count: 1,
        sock_id,
        head: H2Head {
            stream_id: id,
            frame_at: 0,
            block_end: 0,
            server: 1,
            ctx,
            request,
        },
    };
    if EVENTS.output::<ServerHead>(&ev, 0).is_err() {
        count(counter::RINGBUF_FULL, 1);
    }
}

/// Slots of a map group or bucket.
const SLOTS: u64 = 8;
/// A swiss-table group of a map[string][]string: 8 control bytes, then
/// 8 slots of key (string, 16 bytes) and value ([]string, 24 bytes).
const SWISS_GROUP: u64 = 8 + SLOTS * 40;
/// A bucket of a map[string][]string before Go 1.24: 8 top hashes, the 8
/// keys, the 8 values, the overflow pointer.
const BUCKET: u64 = 8 + SLOTS * 16 + SLOTS * 24 + 8;
/// `runtime.hmap.flags`: growing to the same size (else doubling).
const SAME_SIZE_GROW: u64 = 8;
/// Bucket top hashes below this mark empty or evacuated slots.
const MIN_TOP_HASH: u8 = 5;
/// Groups looked at: 8 tables of 4 groups (swiss), or 16 buckets, their
/// overflow buckets and 16 old ones. Request headers fill one group or
/// bucket but for unusual requests.
const MAX_GROUPS: u32 = 48;
const MAX_TABLES: u64 = 8;
const MAX_BUCKETS: u64 = 16;
/// Bytes of a header value read: a `traceparent` is 55, a `b3` at most 68.
const MAX_VALUE: usize = 128;

/// State of one search of a header map, shared with its callback.
#[repr(C)]
struct HeaderScan {
    swiss: u64,
    /// Swiss: the one group (`n == 0`) or the table directory. Buckets:
    /// the bucket array.
    base: u64,
    /// Swiss: directory entries (0: a small map). Buckets: how many.
    n: u64,
    /// Buckets being evacuated, and how many (0: not growing).
    old: u64,
    old_n: u64,
    /// The value found (its string data and length), and whether it is
    /// a `b3` header (else `traceparent`).
    value: u64,
    value_len: u64,
    b3: u64,
}

/// Read the context that the header map at `map` carries into `ctx`.
#[inline(always)]
fn incoming_header(swiss: bool, map: u64, ctx: &mut TraceCtx) -> bool {
    let Some(m) = user::<[u64; 4]>(map) else {
        return false;
    };
    if m[0] == 0 {
        return false; // empty
    }
    let mut scan = HeaderScan {
        swiss: swiss as u64,
        base: 0,
        n: 0,
        old: 0,
        old_n: 0,
        value: 0,
        value_len: 0,
        b3: 0,
    };
    if swiss {
        // internal/runtime/maps.Map: used, seed, dirPtr, dirLen.
        scan.base = m[2];
        scan.n = if m[3] > MAX_TABLES { MAX_TABLES } else { m[3] };
    } else {
        // runtime.hmap: count, flags (byte 8) and B (byte 9), buckets,
        // oldbuckets.
        let flags = m[1] & 0xff;
        let b = (m[1] >> 8) & 0xff;
        let n = if b >= 4 { MAX_BUCKETS } else { 1 << b };
        scan.base = m[2];
        scan.n = n;
        scan.old = m[3];
        scan.old_n = if flags & SAME_SIZE_GROW != 0 || n == 1 {
            n
        } else {
            n / 2
        };
    }
    if scan.base == 0 {
        return false;
    }
    // SAFETY: the callback only touches `scan` and probe-reads memory.
    unsafe {
        bpf_loop(
            MAX_GROUPS * SLOTS as u32,
            scan_slot as *mut _,
            &mut scan as *mut HeaderScan as *mut _,
            0,
        )
    };
    if scan.value == 0 {
        return false;
    }
    let len = if scan.value_len > MAX_VALUE as u64 {
        MAX_VALUE
    } else {
        scan.value_len as usize
    };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: the per-CPU scratch: no syscall program runs on this CPU
    // while a uprobe does. len <= MAX_VALUE < MAX_CAPTURE.
    let copied = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            (*scratch).event.payload.as_mut_ptr().cast(),
            len as u32,
            scan.value as *const _,
        )
    } == 0;
    const _: () = assert!(MAX_VALUE < MAX_CAPTURE);
    if !copied {
        count(counter::READ_FAILED, 1);
        return false;
    }
    if scan.b3 != 0 {
        parse_b3_single(0, len as u32, ctx)
    } else {
        parse_traceparent(0, len as u32, ctx)
    }
}

/// bpf_loop callback: slot `i % 8` of group (or bucket) `i / 8` of the
/// map. One slot per call keeps what the verifier walks small.
extern "C" fn scan_slot(i: u32, scan: *mut HeaderScan) -> i64 {
    // SAFETY: bpf_loop hands back the pointer it was given.
    let scan = unsafe { &mut *scan };
    let (g, k) = ((i / 8) as u64, (i % 8) as u64);
    let swiss = scan.swiss != 0;
    let Some(group) = group_at(scan, g) else {
        return 1;
    };
    if group == 0 {
        return 0; // an empty table slot, or no overflow bucket
    }
    // Swiss: a control byte per slot, high bit clear when full. Buckets: a
    // top hash per slot, MIN_TOP_HASH or more when full.
    let Some(byte) = user::<u8>(group + k) else {
        return 0;
    };
    let full = if swiss {
        byte & 0x80 == 0
    } else {
        byte >= MIN_TOP_HASH
    };
    if !full {
        return 0;
    }
    let (key_at, value_at) = if swiss {
        let slot = group + 8 + k * 40;
        (slot, slot + 16)
    } else {
        (group + 8 + k * 16, group + 8 + SLOTS * 16 + k * 24)
    };
    header_slot(key_at, value_at, scan) as i64
}

/// The address of group `g` of the map (0: none there, go on); `None`
/// past the last.
#[inline(always)]
fn group_at(scan: &HeaderScan, g: u64) -> Option<u64> {
    if scan.swiss != 0 {
        if scan.n == 0 {
            return (g == 0).then_some(scan.base);
        }
        let (table, at) = (g / 4, g % 4);
        if table >= scan.n {
            return None;
        }
        // table.groups: data, lengthMask.
        let groups = user::<u64>(scan.base + table * 8)
            .filter(|&t| t != 0)
            .and_then(|t| user::<[u64; 2]>(t + 16))?;
        return Some(if at > groups[1] {
            0
        } else {
            groups[0] + at * SWISS_GROUP
        });
    }
    // Buckets, then one overflow bucket of each (more would take a map far
    // bigger than request headers make), then the old buckets.
    if g < scan.n {
        Some(scan.base + g * BUCKET)
    } else if g < 2 * scan.n {
        user::<u64>(scan.base + (g - scan.n) * BUCKET + BUCKET - 8)
    } else if scan.old != 0 && g - 2 * scan.n < scan.old_n {
        Some(scan.old + (g - 2 * scan.n) * BUCKET)
    } else {
        None
    }
}

/// Is the key at `key_at` `traceparent` or `b3` (any case)? Then its first
/// value goes into `scan`.
#[inline(always)]
fn header_slot(key_at: u64, value_at: u64, scan: &mut HeaderScan) -> bool {
    let Some(key) = user::<[u64; 2]>(key_at) else {
        return false;
    };
    let b3 = match key[1] {
        11 => false,
        2 => true,
        _ => return false,
    };
    if b3 {
        match user::<[u8; 2]>(key[0]) {
            Some(k) if k[0] | 0x20 == b'b' && k[1] == b'3' => {}
            _ => return false,
        }
    } else {
        let Some(k) = user::<[u8; 11]>(key[0]) else {
            return false;
        };
        let head = u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]);
        if head | 0x2020_2020_2020_2020 != u64::from_le_bytes(*b"tracepar")
            || k[8] | 0x20 != b'e'
            || k[9] | 0x20 != b'n'
            || k[10] | 0x20 != b't'
        {
            return false;
        }
    }
    // The value, a []string: its first element.
    let Some(values) = user::<[u64; 2]>(value_at) else {
        return false;
    };
    if values[0] == 0 || values[1] == 0 {
        return false;
    }
    let Some(first) = user::<[u64; 2]>(values[0]) else {
        return false;
    };
    if first[0] == 0 {
        return false;
    }
    scan.value = first[0];
    scan.value_len = first[1];
    scan.b3 = b3 as u64;
    true
}
