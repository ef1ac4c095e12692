//! Writing `traceparent` into outgoing HTTP/1 requests without
//! bpf_probe_write_user: sock_ops puts the client sockets of traced
//! processes into a SockHash as they connect, and sk_msg, which runs on each
//! sendmsg of those sockets, inserts the header line after the request line
//! using the ids the write's sys_enter chose (kept in ARGS).
use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_TCP_CONNECT_CB, sk_action, sk_msg_md,
    },
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_socket_cookie,
        generated::{bpf_loop, bpf_msg_pop_data, bpf_msg_pull_data, bpf_msg_push_data},
    },
    macros::{map, sk_msg, sock_ops, stream_verdict},
    maps::{LruHashMap, SockHash},
    programs::{SkBuffContext, SkMsgContext, SockOpsContext},
};
use tracer_common::{H2HeadsEvent, TRACEPARENT_LINE_LEN, TraceCtx, counter, http2, op};

use crate::maps::{ARGS, H2_HEADS, TRACED_PORTS, config, count, process_wanted};

/// Client sockets of traced processes, by socket cookie, between connect()
/// and the handshake's end (when they can join the SockHash).
#[map]
pub static INJECT_SOCKETS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(16384, 0);

/// The sockets sk_msg runs on; the kernel drops them when they close.
#[map]
pub static SOCKHASH: SockHash<u64> = SockHash::with_max_entries(65536, 0);

/// Longest request line the header can follow.
const MAX_LINE: u32 = 1024;
const HEX: &[u8; 16] = b"0123456789abcdef";
/// Furthest a HEADERS frame may start in a write (`http2::headers_frames`
/// looks at `MAX_FRAMES` frames).
const MAX_FRAME_AT: u32 =
    (http2::MAX_FRAMES as u32 - 1) * (http2::FRAME_HEADER_LEN + http2::DEFAULT_MAX_FRAME_SIZE);
/// `00-<32 hex>-<16 hex>-<2 hex>`
const VALUE_LEN: u32 = 55;

#[sock_ops]
pub fn track_client_sockets(ctx: SockOpsContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    if cfg.inject == 0 {
        return 0;
    }
    match ctx.op() {
        // Runs in connect(), in the connecting process.
        BPF_SOCK_OPS_TCP_CONNECT_CB => {
            let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
            if !process_wanted(cfg, tgid) {
                return 0;
            }
            if cfg.selective != 0 && cfg.select_ports != 0 {
                // Selected by port alone: only connections to those ports.
                // Network order, in the high 16 bits.
                let port = u16::from_be((ctx.remote_port() >> 16) as u16);
                // One lookup, then the other: LLVM would otherwise OR the
                // two map pointers, which the verifier rejects.
                // SAFETY: presence tests only.
                if unsafe { crate::maps::TRACED_PIDS.get(tgid).is_none() } {
                    let hit = TRACED_PORTS.get_ptr(port);
                    if hit.is_none() {
                        return 0;
                    }
                }
            }
            // SAFETY: the context is the sock_ops context the helper expects.
            let cookie = unsafe { bpf_get_socket_cookie(ctx.ops as *mut _) };
            let _ = INJECT_SOCKETS.insert(cookie, 1, 0);
        }
        // May run in softirq: the cookie says whether it is ours.
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => {
            // SAFETY: as above.
            let mut cookie = unsafe { bpf_get_socket_cookie(ctx.ops as *mut _) };
            // SAFETY: presence test only.
            if unsafe { INJECT_SOCKETS.get(cookie).is_none() } {
                return 0;
            }
            let _ = INJECT_SOCKETS.remove(cookie);
            // SAFETY: ctx.ops is the live sock_ops context.
            let _ = SOCKHASH.update(&mut cookie, unsafe { &mut *ctx.ops }, 0);
        }
        _ => {}
    }
    0
}

/// Every byte a socket of the SockHash receives, passed on unchanged. A
/// socket in a SockHash answers FIONREAD (SIOCINQ) from the queue this
/// program fills, not from TCP's: with sk_msg alone it said 0 however much
/// was waiting, and nginx, which sizes its reads with FIONREAD, stalled on
/// responses larger than its buffer.
#[stream_verdict]
pub fn pass_ingress(_ctx: SkBuffContext) -> u32 {
    sk_action::SK_PASS
}

#[sk_msg]
pub fn inject_traceparent(ctx: SkMsgContext) -> u32 {
    try_inject(&ctx);
    sk_action::SK_PASS
}

#[inline(always)]
fn try_inject(ctx: &SkMsgContext) {
    let Some(cfg) = config() else { return };
    if cfg.inject == 0 {
        return;
    }
    // The write in flight on this thread, as its sys_enter saw it.
    let Some(args) = ARGS.get_ptr_mut(bpf_get_current_pid_tgid()) else {
        return;
    };
    // SAFETY: this thread's entry; only this thread touches it meanwhile.
    let args = unsafe { &mut *args };
    // A TLS write: the message is ciphertext (the kernel chose contexts on
    // its plaintext only to link the two ends on this host).
    if args.op != op::WRITE || args.tls != 0 {
        return;
    }
    if args.http2 == 1 {
        // Only the first message of the write holds the frames sys_enter
        // found.
        args.http2 = 2;
        inject_http2(ctx, bpf_get_current_pid_tgid());
        return;
    }
    if args.ctx.valid == 0 || args.ctx.injected != 0 {
        return;
    }
    let (at, overwrite) = (args.inject_at, args.overwrite_at);
    // Only the first message of the write can hold the request head.
    args.inject_at = 0;
    args.overwrite_at = 0;
    let done = if overwrite != 0 {
        overwrite <= MAX_LINE
            && ctx.size() >= overwrite + VALUE_LEN
            && overwrite_value(ctx, overwrite, &args.ctx)
    } else if (16..=MAX_LINE).contains(&at) {
        // A request line that did not fit in this send fails here.
        ctx.size() >= at && write_line(ctx, at, &args.ctx)
    } else {
        return;
    };
    if done {
        args.ctx.injected = 1;
        count(counter::INJECTED, 1);
    } else {
        count(counter::INJECT_FAILED, 1);
    }
}

/// `traceparent` into each HEADERS frame the write's sys_enter found
/// (H2_HEADS), each frame further on by the fields added before it. One
/// frame per bpf_loop iteration: the verifier checks the body once, where
/// an unrolled or bounded loop over `MAX_HEADS` frames cost it a pass per
/// frame (a gRPC client's writer batches a hundred calls' HEADERS into one
/// write under load).
#[inline(always)]
fn inject_http2(ctx: &SkMsgContext, pid_tgid: u64) {
    let Some(heads) = H2_HEADS.get_ptr_mut(pid_tgid) else {
        return;
    };
    // SAFETY: this thread's entry; only this thread touches it meanwhile.
    let count = unsafe { (*heads).count };
    let n = if count < http2::MAX_HEADS as u32 {
        count
    } else {
        http2::MAX_HEADS as u32
    };
    let mut state = InjectState {
        msg: ctx.msg,
        heads,
        shift: 0,
    };
    // SAFETY: the callback only touches `state`, the message and the entry.
    unsafe {
        bpf_loop(
            n,
            inject_head as *mut _,
            &mut state as *mut InjectState as *mut _,
            0,
        );
    }
}

/// What `inject_head` needs for each HEADERS frame of a message.
#[repr(C)]
struct InjectState {
    msg: *mut sk_msg_md,
    /// This thread's H2_HEADS entry.
    heads: *mut H2HeadsEvent,
    /// Bytes added to the message before the next frame.
    shift: u32,
}

/// bpf_loop callback: `traceparent` into HEADERS frame `i` of H2_HEADS.
extern "C" fn inject_head(i: u32, state: *mut InjectState) -> i64 {
    // SAFETY: bpf_loop hands back the pointer it was given.
    let state = unsafe { &mut *state };
    let ctx = SkMsgContext::new(state.msg);
    // `i` < count <= MAX_HEADS; masked (not compared) so that the verifier
    // sees the bound on the register the index is used from.
    // SAFETY: the map entry `inject_http2` found; live for this program run.
    let head = unsafe { &mut (*state.heads).heads[i as usize & (http2::MAX_HEADS - 1)] };
    if head.ctx.valid == 0 {
        return 0;
    }
    let (frame_at, at) = (head.frame_at + state.shift, head.block_end + state.shift);
    // The end of a HEADERS frame's header block (checked at sys_enter); a
    // frame beyond this message (a write sent in parts) fails here.
    if frame_at <= MAX_FRAME_AT
        && at > frame_at + http2::FRAME_HEADER_LEN
        && ctx.size() >= at
        && write_http2_field(&ctx, frame_at, at, &head.ctx)
    {
        head.ctx.injected = 1;
        state.shift += http2::TRACEPARENT_FIELD_LEN;
        count(counter::INJECTED, 1);
    } else {
        count(counter::INJECT_FAILED, 1);
    }
    0
}

#[inline(always)]
fn write_line(ctx: &SkMsgContext, at: u32, tp: &TraceCtx) -> bool {
    let line = TRACEPARENT_LINE_LEN as u32;
    // SAFETY: the sk_msg context; helpers check their arguments.
    unsafe {
        if bpf_msg_pull_data(ctx.msg, 0, at, 0) != 0 {
            return false;
        }
        // The bytes before `at` must still end the request line. The
        // verifier wants packet reads at non-negative offsets from a pointer
        // checked against data_end.
        let (data, end) = (ctx.data(), ctx.data_end());
        let crlf = data + ((at - 2) & (MAX_LINE * 2 - 1)) as usize;
        if crlf + 2 > end {
            return false;
        }
        if *(crlf as *const u8) != b'\r' || *((crlf + 1) as *const u8) != b'\n' {
            return false;
        }
        if bpf_msg_push_data(ctx.msg, at, line, 0) != 0 {
            return false;
        }
        if bpf_msg_pull_data(ctx.msg, at, at + line, 0) != 0 {
            return false;
        }
        // After pull_data the message starts at `at`.
        let (data, end) = (ctx.data(), ctx.data_end());
        if data + TRACEPARENT_LINE_LEN > end {
            return false;
        }
        let out = data as *mut u8;
        let prefix = b"traceparent: ";
        for (i, b) in prefix.iter().enumerate() {
            *out.add(i) = *b;
        }
        write_value(out.add(prefix.len()), tp);
        *out.add(TRACEPARENT_LINE_LEN - 2) = b'\r';
        *out.add(TRACEPARENT_LINE_LEN - 1) = b'\n';
    }
    true
}

/// Append a `traceparent` field (an HPACK literal without indexing, so
/// neither end's dynamic table changes) to the header block of the HTTP/2
/// HEADERS frame at `frame_at` whose block ends at `at`, and grow the
/// frame's length to match.
#[inline(always)]
fn write_http2_field(ctx: &SkMsgContext, frame_at: u32, at: u32, tp: &TraceCtx) -> bool {
    let field = http2::TRACEPARENT_FIELD_LEN;
    let head = http2::FRAME_HEADER_LEN;
    // SAFETY: the sk_msg context; helpers check their arguments.
    unsafe {
        // After pull_data the message starts at `frame_at`.
        if bpf_msg_pull_data(ctx.msg, frame_at, frame_at + head, 0) != 0 {
            return false;
        }
        // Still the frame sys_enter saw.
        let (data, end) = (ctx.data(), ctx.data_end());
        if data + head as usize > end {
            return false;
        }
        let p = data as *const u8;
        let mut frame = [0u8; 9];
        for (i, b) in frame.iter_mut().enumerate() {
            *b = *p.add(i);
        }
        let len = match http2::injectable_headers(&frame) {
            Some((len, _)) if frame_at + head + len == at => len,
            _ => return false,
        };
        if bpf_msg_push_data(ctx.msg, at, field, 0) != 0 {
            return false;
        }
        // data/data_end are invalid after the push: pull again.
        if !fill_http2_field(ctx, frame_at, at, len, tp) {
            // Never leave the gap in the stream.
            bpf_msg_pop_data(ctx.msg, at, field, 0);
            return false;
        }
    }
    true
}

/// Write the field into the gap opened at `at` and the grown length into
/// the frame header.
#[inline(always)]
fn fill_http2_field(ctx: &SkMsgContext, frame_at: u32, at: u32, len: u32, tp: &TraceCtx) -> bool {
    let field = http2::TRACEPARENT_FIELD_LEN;
    // SAFETY: the sk_msg context; helpers check their arguments, and every
    // write is within a range checked against data_end.
    unsafe {
        if bpf_msg_pull_data(ctx.msg, at, at + field, 0) != 0 {
            return false;
        }
        // After pull_data the message starts at `at`.
        let (data, end) = (ctx.data(), ctx.data_end());
        if data + field as usize > end {
            return false;
        }
        let out = data as *mut u8;
        let prefix = http2::TRACEPARENT_FIELD_PREFIX;
        for (i, b) in prefix.iter().enumerate() {
            *out.add(i) = *b;
        }
        write_value(out.add(prefix.len()), tp);
        if bpf_msg_pull_data(ctx.msg, frame_at, frame_at + http2::FRAME_HEADER_LEN, 0) != 0 {
            return false;
        }
        let (data, end) = (ctx.data(), ctx.data_end());
        if data + http2::FRAME_HEADER_LEN as usize > end {
            return false;
        }
        let out = data as *mut u8;
        let grown = http2::grown_length(len, field);
        *out = grown[0];
        *out.add(1) = grown[1];
        *out.add(2) = grown[2];
    }
    true
}

/// Replace the 55-byte value of a forwarded `traceparent` at `at`.
#[inline(always)]
fn overwrite_value(ctx: &SkMsgContext, at: u32, tp: &TraceCtx) -> bool {
    // SAFETY: the sk_msg context; helpers check their arguments.
    unsafe {
        if bpf_msg_pull_data(ctx.msg, at, at + VALUE_LEN, 0) != 0 {
            return false;
        }
        let (data, end) = (ctx.data(), ctx.data_end());
        if data + VALUE_LEN as usize > end {
            return false;
        }
        let out = data as *mut u8;
        // Still the value we saw at sys_enter: version 00 and its dashes.
        if *out != b'0' || *out.add(2) != b'-' || *out.add(35) != b'-' || *out.add(52) != b'-' {
            return false;
        }
        write_value(out, tp);
    }
    true
}

/// `00-<trace id>-<span id>-<flags>` (55 bytes) at `out`.
///
/// # Safety
/// `out` must have 55 writable bytes.
#[inline(always)]
unsafe fn write_value(out: *mut u8, tp: &TraceCtx) {
    // SAFETY: the caller checked 55 bytes.
    unsafe {
        *out = b'0';
        *out.add(1) = b'0';
        *out.add(2) = b'-';
        let mut pos = 3;
        for b in tp.trace_id {
            *out.add(pos) = HEX[(b >> 4) as usize];
            *out.add(pos + 1) = HEX[(b & 15) as usize];
            pos += 2;
        }
        *out.add(pos) = b'-';
        pos += 1;
        for b in tp.span_id {
            *out.add(pos) = HEX[(b >> 4) as usize];
            *out.add(pos + 1) = HEX[(b & 15) as usize];
            pos += 2;
        }
        *out.add(pos) = b'-';
        *out.add(pos + 1) = b'0';
        *out.add(pos + 2) = b'0' + (tp.flags & 1);
    }
}
