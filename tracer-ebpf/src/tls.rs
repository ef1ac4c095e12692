//! TLS plaintext from OpenSSL's API. The syscalls of a TLS socket carry
//! ciphertext, so they are never sent; the plaintext takes their place:
//!
//! - `SSL_write` (entry only): the plaintext is in hand. It is recorded
//!   for the thread, and the socket write the call makes (a socket BIO
//!   writes inside the call, on the same thread) carries it through the
//!   syscall path in place of the ciphertext: same classification, same
//!   client context, same event.
//! - `SSL_read` (entry and return): the socket read inside the call ties
//!   the `SSL*` to its fd; at return the plaintext is sent through uprobe
//!   twins of the syscall chain's tail programs.
//!
//! A `SSL*` is tied to a socket only by a syscall made inside one of its
//! calls, and a write only when the record it starts is exactly the
//! plaintext's size plus an AEAD's overhead. Plaintext that cannot be tied
//! is counted and dropped, never attributed by guess.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe, uretprobe},
    maps::{LruHashMap, ProgramArray},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::{SyscallArgs, counter, op};

use crate::{
    maps::{ARGS_BUF, config, connection_wanted, count, process_wanted},
    sockets::lookup,
    syscalls::{classify_body, emit_data, server_context_body, server_decide_body},
};

/// Uprobe copies of the syscall chain's tail programs, at the same slots
/// (`tracer_common::tail`): a tail call stays within one program type.
#[map]
pub static TLS_TAILS: ProgramArray = ProgramArray::with_max_entries(tracer_common::tail::COUNT, 0);

/// A TLS library call in progress on a thread.
#[repr(C)]
#[derive(Clone, Copy)]
struct TlsOp {
    ssl: u64,
    buf: u64,
    len: u64,
    /// `SSL_read_ex`: where it stores the count (0 for `SSL_read`).
    readbytes: u64,
    ts: u64,
    op: u8,
    /// A write whose plaintext already went out with a socket write (a
    /// large one is several records, several writes).
    used: u8,
    _pad: [u8; 6],
}

/// pid_tgid → its TLS call in progress. An LRU: a write leaves its entry
/// until the thread's next call (it has no return probe).
#[map]
static TLS_OPS: LruHashMap<u64, TlsOp> = LruHashMap::with_max_entries(16384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct SslKey {
    ssl: u64,
    tgid: u32,
    _pad: u32,
}

/// (process, `SSL*`) → the fd a syscall made inside one of its calls.
#[map]
static SSL_FDS: LruHashMap<SslKey, u32> = LruHashMap::with_max_entries(65536, 0);

/// The largest plaintext of one TLS record.
const MAX_RECORD: u64 = 16384;
/// TLS record content type "application data".
const APPLICATION_DATA: u8 = 23;

#[uprobe]
pub fn ssl_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, op::WRITE, false);
    0
}

#[uprobe]
pub fn ssl_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, op::READ, false);
    0
}

#[uprobe]
pub fn ssl_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, op::READ, true);
    0
}

/// `SSL_read(ssl, buf, num)`, `SSL_read_ex(ssl, buf, num, &readbytes)`,
/// `SSL_write(ssl, buf, num)`, `SSL_write_ex(ssl, buf, num, &written)`.
#[inline(always)]
fn enter(ctx: &ProbeContext, op: u8, ex: bool) {
    let Some(cfg) = config() else { return };
    let pid_tgid = bpf_get_current_pid_tgid();
    if !process_wanted(cfg, (pid_tgid >> 32) as u32) {
        return;
    }
    let (Some(ssl), Some(buf), Some(num)) =
        (ctx.arg::<u64>(0), ctx.arg::<u64>(1), ctx.arg::<u64>(2))
    else {
        return;
    };
    // `int num` for the plain calls: a negative one is refused by OpenSSL.
    let len = if ex {
        num
    } else {
        num as u32 as i32 as i64 as u64
    };
    if ssl == 0 || buf == 0 || len == 0 || len > i32::MAX as u64 {
        return;
    }
    let call = TlsOp {
        ssl,
        buf,
        len,
        readbytes: if ex {
            ctx.arg::<u64>(3).unwrap_or(0)
        } else {
            0
        },
        // SAFETY: no preconditions.
        ts: unsafe { bpf_ktime_get_ns() },
        op,
        used: 0,
        _pad: [0; 6],
    };
    let _ = TLS_OPS.insert(pid_tgid, call, 0);
}

/// Return of `SSL_read` / `SSL_read_ex`: send what it read.
#[uretprobe]
pub fn ssl_read_ret(ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: copied out at once.
    let Some(call) = (unsafe { TLS_OPS.get(pid_tgid) }).copied() else {
        return 0;
    };
    let _ = TLS_OPS.remove(pid_tgid);
    if call.op != op::READ {
        return 0;
    }
    let ret = ctx.ret::<u64>() as u32 as i32;
    let n = if call.readbytes != 0 {
        if ret != 1 {
            return 0;
        }
        // SAFETY: a user pointer, checked by the helper.
        unsafe { bpf_probe_read_user(call.readbytes as *const u64) }.unwrap_or(0)
    } else if ret > 0 {
        ret as u64
    } else {
        0
    };
    if n == 0 || n > call.len {
        return 0;
    }
    let Some(cfg) = config() else { return 0 };
    let tgid = (pid_tgid >> 32) as u32;
    let key = SslKey {
        ssl: call.ssl,
        tgid,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    let Some(fd) = (unsafe { SSL_FDS.get(key) }).copied() else {
        count(counter::TLS_UNTIED, 1);
        return 0;
    };
    let Some(info) = lookup(cfg, tgid, fd) else {
        count(counter::TLS_UNTIED, 1);
        return 0;
    };
    if info.is_tcp == 0 || info.tls == 0 || !connection_wanted(cfg, tgid, info) {
        return 0;
    }
    let Some(args) = ARGS_BUF.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot; programs do not nest on one CPU here.
    let args = unsafe {
        *args = SyscallArgs {
            ts_enter: call.ts,
            buf: call.buf,
            fd,
            op: op::READ,
            tls: 1,
            tls_len: n as u32,
            ..SyscallArgs::default()
        };
        &*args
    };
    count(counter::TLS_PLAINTEXT, 1);
    emit_data(&ctx, cfg, args, info, n, true);
    0
}

/// At sys_enter of a read or write on a TLS socket (`args` saved so far):
/// true when `args` now carries the plaintext of the thread's TLS write in
/// place of the ciphertext; false when the syscall's bytes are not to be
/// sent. A read inside `SSL_read` ties its `SSL*` to the fd.
#[inline(always)]
pub fn plaintext_for(pid_tgid: u64, args: &mut SyscallArgs) -> bool {
    let Some(call) = TLS_OPS.get_ptr_mut(pid_tgid) else {
        return false;
    };
    // SAFETY: this thread's entry; only this thread writes it.
    let call = unsafe { &mut *call };
    let key = SslKey {
        ssl: call.ssl,
        tgid: (pid_tgid >> 32) as u32,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    let tied = unsafe { SSL_FDS.get(key) }.copied();
    if args.op == op::READ {
        if call.op == op::READ && tied != Some(args.fd) {
            let _ = SSL_FDS.insert(key, args.fd, 0);
        }
        return false;
    }
    if call.op != op::WRITE || call.used != 0 {
        return false;
    }
    if tied != Some(args.fd) {
        // Not yet tied (or the address is a new SSL's): only the record
        // this plaintext makes ties it.
        if !record_of(args, call.len) {
            count(counter::TLS_UNTIED, 1);
            return false;
        }
        let _ = SSL_FDS.insert(key, args.fd, 0);
    }
    call.used = 1;
    args.buf = call.buf;
    args.iovcnt = 0;
    args.tls = 1;
    args.tls_len = call.len as u32;
    true
}

/// Whether the bytes at `first` start an application-data record whose
/// length is that of `len` plaintext bytes (up to a full record) sealed by
/// an AEAD: +16 (TLS 1.2 ChaCha20-Poly1305), +17 (TLS 1.3: the content type
/// byte and the tag) or +24 (TLS 1.2 AES-GCM: explicit nonce and tag).
#[inline(always)]
fn record_of(args: &SyscallArgs, len: u64) -> bool {
    let src = if args.iovcnt != 0 {
        // The first iovec's base.
        // SAFETY: a user pointer, checked by the helper.
        match unsafe { bpf_probe_read_user(args.buf as *const u64) } {
            Ok(base) => base,
            Err(_) => return false,
        }
    } else {
        args.buf
    };
    // SAFETY: a user pointer, checked by the helper.
    let Ok(h) = (unsafe { bpf_probe_read_user(src as *const [u8; 5]) }) else {
        return false;
    };
    if h[0] != APPLICATION_DATA || h[1] != 3 || h[2] > 4 {
        return false;
    }
    let sealed = ((h[3] as u64) << 8) | h[4] as u64;
    let plain = if len < MAX_RECORD { len } else { MAX_RECORD };
    matches!(sealed.wrapping_sub(plain), 16 | 17 | 24)
}

/// Whether a captured payload starts with a TLS ClientHello: a handshake
/// record (22), version 3.x, whose first message is a ClientHello (1) of a
/// length that fits the record. Nothing else a client sends first starts
/// so; the socket is TLS from then on.
#[inline(always)]
pub fn is_client_hello(p: &[u8]) -> bool {
    if p.len() < 9 {
        return false;
    }
    let record = ((p[3] as u32) << 8) | p[4] as u32;
    let message = ((p[6] as u32) << 16) | ((p[7] as u32) << 8) | p[8] as u32;
    p[0] == 22 && p[1] == 3 && p[2] <= 4 && p[5] == 1 && message + 4 <= record
}

#[uprobe]
pub fn tls_classify(ctx: ProbeContext) -> u32 {
    classify_body(&ctx, true);
    0
}

#[uprobe]
pub fn tls_server_context(ctx: ProbeContext) -> u32 {
    server_context_body(&ctx, true);
    0
}

#[uprobe]
pub fn tls_server_decide(_ctx: ProbeContext) -> u32 {
    server_decide_body();
    0
}

/// The tail-call array of a chain: the syscall tracepoints' or the TLS
/// uprobes'.
#[inline(always)]
pub fn tails(tls: bool) -> &'static ProgramArray {
    if tls {
        &TLS_TAILS
    } else {
        &crate::maps::TAIL_CALLS
    }
}
