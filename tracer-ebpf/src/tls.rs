//! TLS plaintext from OpenSSL's API and from Go's crypto/tls. The
//! syscalls of a TLS socket carry ciphertext (a ClientHello marks the
//! socket, `syscalls::emit_data`), so they are never sent; the plaintext
//! takes their place:
//!
//! - `SSL_write` / `(*tls.Conn).Write` (entry only): the plaintext is in
//!   hand. It is recorded for the caller (the thread; the goroutine in a Go
//!   process), and the socket write that carries its record (inside the
//!   call with a socket BIO; after it, on the same thread, with a memory
//!   BIO) carries the plaintext through the syscall path in place of the
//!   ciphertext: same classification, same client context, same event.
//! - `SSL_read` / `(*tls.Conn).Read` (entry, and return or RET
//!   instructions): at return the plaintext is sent through uprobe twins
//!   of the syscall chain's tail programs.
//!
//! A connection object (`SSL*`, `*tls.Conn`) is tied to its socket by a
//! syscall made inside one of its calls; by the fd of the net.Conn a Go
//! Conn wraps; by a write whose first application-data record is the
//! plaintext's size plus an AEAD's overhead; or by a read call returning
//! exactly what a record its caller had just read from a socket holds.
//! Plaintext that cannot be tied is counted and dropped, never attributed
//! by guess.
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::{map, uprobe, uretprobe},
    maps::{LruHashMap, PerCpuArray, ProgramArray},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::{
    Config, ConnSeqKey, ConnTuple, SyscallArgs, TraceCtx, counter, go_actor, op, tls_args,
};

use crate::{
    context::reversed,
    goroutines::{actor, conn_fd, go_probe, goroutine_of},
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
    _pad: [u8; 2],
    /// Writes: bytes of the plaintext copied at the call (TLS_COPIES), 0
    /// when none were (the object was tied already: its runtime writes
    /// the ciphertext out within the call, or the buffer stays alive).
    copied: u32,
    /// Writes: the plaintext's first bytes at the call (up to 16), to
    /// check at the socket write that the buffer still holds them (a
    /// runtime may free it once the call sealed it into a memory BIO).
    head: [u8; HEAD],
}

const HEAD: usize = 16;

/// Caller (`goroutines::actor`: the thread, or the goroutine in a Go
/// process) → its TLS read call in progress (removed at its return).
#[map]
static TLS_READS: LruHashMap<u64, TlsOp> = LruHashMap::with_max_entries(16384, 0);

/// Caller → its last TLS write call, until its next one (a write has no
/// return probe). Apart from reads: a runtime with a memory BIO may call
/// SSL_read before it writes out what SSL_write sealed.
#[map]
static TLS_WRITES: LruHashMap<u64, TlsOp> = LruHashMap::with_max_entries(16384, 0);

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

/// The application-data records one socket read brought, by caller.
#[repr(C)]
#[derive(Clone, Copy)]
struct RecordsRead {
    fd: u32,
    count: u32,
    /// Their sealed lengths (from their headers), the first MAX_RECORDS.
    sealed: [u32; MAX_RECORDS],
}

impl RecordsRead {
    /// Whether one of them is `n` bytes of plaintext sealed by an AEAD.
    #[inline(always)]
    fn holds(&self, n: u64) -> bool {
        let mut i = 0;
        while i < MAX_RECORDS {
            if (i as u32) < self.count
                && matches!((self.sealed[i] as u64).wrapping_sub(n), 16 | 17 | 24)
            {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Records of a read looked at (a read after a TLS 1.3 handshake holds
/// the peer's Finished or session tickets before the data).
const MAX_RECORDS: usize = 4;

/// Caller → the records its last socket read outside a TLS call brought.
#[map]
static READ_RECORDS: LruHashMap<u64, RecordsRead> = LruHashMap::with_max_entries(16384, 0);

/// Sys_exit of a TLS socket's read outside any TLS read call (`args.tls`
/// is `PEEK`): remember the application-data records it brought, for the
/// read call that will decrypt them.
#[inline(always)]
pub fn records_read(args: &SyscallArgs, ret: u64) {
    let src = if args.iovcnt != 0 {
        // Only a first iovec that holds all the bytes read is walked.
        // SAFETY: a user pointer, checked by the helper.
        match unsafe { bpf_probe_read_user(args.buf as *const [u64; 2]) } {
            Ok([base, len]) if len >= ret => base,
            _ => return,
        }
    } else {
        args.buf
    };
    let mut read = RecordsRead {
        fd: args.fd,
        count: 0,
        sealed: [0; MAX_RECORDS],
    };
    let mut at = 0u64;
    let mut i = 0;
    while i < MAX_RECORDS {
        if at + 5 > ret {
            break;
        }
        // SAFETY: a user pointer, checked by the helper.
        let Ok(h) = (unsafe { bpf_probe_read_user((src + at) as *const [u8; 5]) }) else {
            break;
        };
        if h[1] != 3 {
            break;
        }
        let sealed = ((h[3] as u32) << 8) | h[4] as u32;
        if h[0] == APPLICATION_DATA {
            read.sealed[i] = sealed;
            read.count = i as u32 + 1;
        }
        at += 5 + sealed as u64;
        i += 1;
    }
    if read.count != 0 {
        let _ = READ_RECORDS.insert(args.tls_caller, read, 0);
    }
}

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
    count(counter::TLS_PROBE_HITS, 1);
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
    let readbytes = if ex {
        ctx.arg::<u64>(3).unwrap_or(0)
    } else {
        0
    };
    record(actor(cfg, pid_tgid), op, ssl, buf, len, readbytes);
}

/// Record the call `op` of caller `key` on connection object `conn`.
#[inline(always)]
fn record(key: u64, op: u8, conn: u64, buf: u64, len: u64, readbytes: u64) {
    if conn == 0 || buf == 0 || len == 0 || len > i32::MAX as u64 {
        return;
    }
    let call = TlsOp {
        ssl: conn,
        buf,
        len,
        readbytes,
        // SAFETY: no preconditions.
        ts: unsafe { bpf_ktime_get_ns() },
        op,
        used: 0,
        _pad: [0; 2],
        copied: if op == op::WRITE {
            keep_copy(key, conn, buf, len)
        } else {
            0
        },
        head: if op == op::WRITE {
            head_of(buf, len)
        } else {
            [0; HEAD]
        },
    };
    if op == op::WRITE {
        unsent_before(key);
    }
    let _ = if op == op::READ {
        TLS_READS.insert(key, call, 0)
    } else {
        TLS_WRITES.insert(key, call, 0)
    };
}

/// Count the caller's previous write call as lost when no socket write
/// carried its plaintext and its object was tied (an untied one is still
/// waiting for the record that ties it, and is counted there if need be).
/// A runtime with a memory BIO that seals several writes before one socket
/// write sends them all, but only the last one's plaintext is kept.
#[inline(always)]
fn unsent_before(key: u64) {
    // SAFETY: copied out at once.
    let Some(prev) = (unsafe { TLS_WRITES.get(key) }).copied() else {
        return;
    };
    if prev.used != 0 {
        return;
    }
    let tied = SslKey {
        ssl: prev.ssl,
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
    };
    // SAFETY: only whether it is there.
    if unsafe { SSL_FDS.get(tied) }.is_some() {
        count(counter::TLS_WRITE_UNSENT, 1);
    }
}

/// Return of `SSL_read` / `SSL_read_ex`: send what it read.
#[uretprobe]
pub fn ssl_read_ret(ctx: RetProbeContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    let pid_tgid = bpf_get_current_pid_tgid();
    if !process_wanted(cfg, (pid_tgid >> 32) as u32) {
        return 0;
    }
    count(counter::TLS_PROBE_HITS, 1);
    let key = actor(cfg, pid_tgid);
    let ret = ctx.ret::<u64>() as u32 as i32;
    returned(&ctx, cfg, key, |call| {
        if call.readbytes != 0 {
            if ret != 1 {
                return 0;
            }
            // SAFETY: a user pointer, checked by the helper.
            unsafe { bpf_probe_read_user(call.readbytes as *const u64) }.unwrap_or(0)
        } else if ret > 0 {
            ret as u64
        } else {
            0
        }
    });
    0
}

/// `crypto/tls.(*Conn).Write(b)` at entry: receiver in RAX, `b` in
/// RBX/RCX (Go's register ABI), `g` in R14.
#[uprobe]
pub fn go_tls_write(ctx: ProbeContext) -> u32 {
    go_enter(&ctx, op::WRITE);
    0
}

/// `crypto/tls.(*Conn).Read(b)` at entry.
#[uprobe]
pub fn go_tls_read(ctx: ProbeContext) -> u32 {
    go_enter(&ctx, op::READ);
    0
}

#[inline(always)]
fn go_enter(ctx: &ProbeContext, op: u8) {
    let Some((tgid, off, conn, g)) = go_probe(ctx) else {
        return;
    };
    count(counter::TLS_PROBE_HITS, 1);
    let Some(goroutine) = goroutine_of(&off, g) else {
        return;
    };
    // SAFETY: the probe's registers.
    let (buf, len) = unsafe { ((*ctx.regs).rbx, (*ctx.regs).rcx) };
    if conn != 0 {
        tie_go_conn(&off, tgid, conn);
    }
    record(go_actor(tgid, goroutine.goid), op, conn, buf, len, 0);
}

/// Tie the `*tls.Conn` `conn` of process `tgid` to its socket: the Conn's
/// first field is the net.Conn it wraps, whose fd ties it at once (a Read
/// may find its bytes already buffered by the handshake, with no syscall
/// inside).
#[inline(always)]
fn tie_go_conn(off: &tracer_common::GoOffsets, tgid: u32, conn: u64) {
    if let Some(fd) = conn_fd(off, conn) {
        let key = SslKey {
            ssl: conn,
            tgid,
            _pad: 0,
        };
        let _ = SSL_FDS.insert(key, fd, 0);
    }
}

/// `crypto/tls.(*Conn).Read` at each RET instruction (never a uretprobe
/// on Go code): `n` in RAX.
#[uprobe]
pub fn go_tls_read_ret(ctx: ProbeContext) -> u32 {
    let Some((tgid, off, n, g)) = go_probe(&ctx) else {
        return 0;
    };
    count(counter::TLS_PROBE_HITS, 1);
    let Some(goroutine) = goroutine_of(&off, g) else {
        return 0;
    };
    let Some(cfg) = config() else { return 0 };
    returned(&ctx, cfg, go_actor(tgid, goroutine.goid), |_| n);
    0
}

/// `crypto/tls.(*Conn).Read` at each RET instruction, with no entry probe:
/// attached only where the agent checked that Read keeps its receiver and
/// `b` in their spill slots (`golang::spills`), which at a RET are at
/// [RSP+8], [RSP+16] (`b`'s pointer) and [RSP+24] (its length). One trap a
/// read instead of two. The read is dated by its return, as a syscall's.
#[uprobe]
pub fn go_tls_read_exit(ctx: ProbeContext) -> u32 {
    let Some((tgid, off, n, g)) = go_probe(&ctx) else {
        return 0;
    };
    count(counter::TLS_PROBE_HITS, 1);
    // Most of a server's reads find nothing (Go's background read ends in
    // a deadline error): nothing more to do for them.
    if n == 0 {
        return 0;
    }
    // SAFETY: the probe's registers.
    let sp = unsafe { (*ctx.regs).rsp };
    // SAFETY: a user pointer, checked by the helper.
    let Ok([conn, buf, len]) = (unsafe { bpf_probe_read_user((sp + 8) as *const [u64; 3]) }) else {
        return 0;
    };
    go_read(&ctx, &off, (tgid, g), conn, (buf, len), n);
    0
}

/// `crypto/tls.(*Conn).readRecordOrCCS` at each RET the agent chose
/// (`golang::tls_records`): with a nil error, the Conn's `input` holds the
/// plaintext of the record just decrypted (the function runs only while
/// `input` is empty and resets it first), sent whole, once; the Read
/// calls that drain it are not probed. The receiver is in its spill slot,
/// [RSP+8]. Dated by the return, as a syscall's read.
#[uprobe]
pub fn go_tls_record_exit(ctx: ProbeContext) -> u32 {
    let Some((tgid, off, err, g)) = go_probe(&ctx) else {
        return 0;
    };
    count(counter::TLS_PROBE_HITS, 1);
    // An error's type word: no record (a deadline, the peer's close).
    if err != 0 || off.tls_conn_input == 0 {
        return 0;
    }
    // SAFETY: the probe's registers.
    let sp = unsafe { (*ctx.regs).rsp };
    // SAFETY: user pointers, checked by the helper.
    let Ok(conn) = (unsafe { bpf_probe_read_user((sp + 8) as *const u64) }) else {
        return 0;
    };
    // bytes.Reader: its slice (pointer, length, capacity), then the index
    // read up to. Fresh from the record: index 0.
    // SAFETY: as above.
    let Ok([buf, len, _, read]) =
        (unsafe { bpf_probe_read_user((conn + off.tls_conn_input as u64) as *const [u64; 4]) })
    else {
        return 0;
    };
    if read == 0 {
        go_read(&ctx, &off, (tgid, g), conn, (buf, len), len);
    }
    0
}

/// A Go read of `n` bytes into the `(pointer, size)` buffer `buf` on the
/// `*tls.Conn` `conn`, by goroutine `g` of process `tgid`: tie the Conn,
/// send the bytes. Dated now.
#[inline(always)]
fn go_read(
    ctx: &ProbeContext,
    off: &tracer_common::GoOffsets,
    (tgid, g): (u32, u64),
    conn: u64,
    (buf, len): (u64, u64),
    n: u64,
) {
    if conn == 0 || buf == 0 || n == 0 || len > i32::MAX as u64 {
        return;
    }
    let (Some(goroutine), Some(cfg)) = (goroutine_of(off, g), config()) else {
        return;
    };
    tie_go_conn(off, tgid, conn);
    let call = TlsOp {
        ssl: conn,
        buf,
        len,
        readbytes: 0,
        // SAFETY: no preconditions.
        ts: unsafe { bpf_ktime_get_ns() },
        op: op::READ,
        used: 0,
        _pad: [0; 2],
        copied: 0,
        head: [0; HEAD],
    };
    read_done(ctx, cfg, go_actor(tgid, goroutine.goid), &call, n);
}

/// A read call of `key` returned; `count_of` tells how many bytes it read:
/// send them as a data event of the connection its object is tied to.
#[inline(always)]
fn returned<C: EbpfContext>(ctx: &C, cfg: &Config, key: u64, count_of: impl Fn(&TlsOp) -> u64) {
    // SAFETY: copied out at once.
    let Some(call) = (unsafe { TLS_READS.get(key) }).copied() else {
        return;
    };
    let _ = TLS_READS.remove(key);
    let n = count_of(&call);
    read_done(ctx, cfg, key, &call, n);
}

/// The read call `call` of `key` read `n` bytes: send them as a data event
/// of the connection its object is tied to.
#[inline(always)]
fn read_done<C: EbpfContext>(ctx: &C, cfg: &Config, key: u64, call: &TlsOp, n: u64) {
    if n == 0 || n > call.len {
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let ssl = SslKey {
        ssl: call.ssl,
        tgid,
        _pad: 0,
    };
    // A record the caller just read from a socket, outside the call, that
    // holds exactly these bytes: the object reads that socket through a
    // memory BIO.
    // SAFETY: copied out at once.
    if let Some(read) = unsafe { READ_RECORDS.get(key) }.copied() {
        let _ = READ_RECORDS.remove(key);
        if read.holds(n) {
            let _ = SSL_FDS.insert(ssl, read.fd, 0);
        }
    }
    // SAFETY: copied out at once.
    let Some(fd) = (unsafe { SSL_FDS.get(ssl) }).copied() else {
        count(counter::TLS_UNTIED, 1);
        return;
    };
    let Some(info) = lookup(cfg, tgid, fd) else {
        count(counter::TLS_UNTIED, 1);
        return;
    };
    if info.is_tcp == 0 || info.tls == 0 || !connection_wanted(cfg, tgid, info) {
        return;
    }
    let Some(args) = ARGS_BUF.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; programs do not nest on one CPU here.
    let args = unsafe {
        let args = &mut *args;
        crate::words::zero(args);
        args.ts_enter = call.ts;
        args.buf = call.buf;
        args.fd = fd;
        args.op = op::READ;
        args.tls = tls_args::PLAINTEXT;
        args.tls_len = n as u32;
        &*args
    };
    count(counter::TLS_PLAINTEXT, 1);
    emit_data(ctx, cfg, args, info, n, true);
}

/// At sys_enter of a read or write on a TLS socket (`args` saved so far)
/// by `caller` (`goroutines::actor`): true when `args` now carries the
/// plaintext of the caller's TLS write in place of the ciphertext; false
/// when the syscall's bytes are not to be sent. A read inside a TLS read
/// call ties its connection object to the fd.
#[inline(always)]
pub fn plaintext_for(tgid: u32, caller: u64, args: &mut SyscallArgs) -> bool {
    if args.op == op::READ {
        // SAFETY: copied out at once.
        match unsafe { TLS_READS.get(caller) }.copied() {
            Some(call) => {
                let key = SslKey {
                    ssl: call.ssl,
                    tgid,
                    _pad: 0,
                };
                let _ = SSL_FDS.insert(key, args.fd, 0);
            }
            None => args.tls = tls_args::PEEK,
        }
        return false;
    }
    let Some(call) = TLS_WRITES.get_ptr_mut(caller) else {
        return false;
    };
    // SAFETY: this caller's entry; only this caller writes it.
    let call = unsafe { &mut *call };
    if call.used != 0 {
        return false;
    }
    let key = SslKey {
        ssl: call.ssl,
        tgid,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    if unsafe { SSL_FDS.get(key) }.copied() != Some(args.fd) {
        // Not yet tied (or the address is a new SSL's): only the record
        // this plaintext makes ties it.
        match record_of(args, call.len) {
            Some(true) => {}
            Some(false) => {
                count(counter::TLS_UNTIED, 1);
                return false;
            }
            // Only the handshake's records: the data goes in a later write.
            None => return false,
        }
        let _ = SSL_FDS.insert(key, args.fd, 0);
    }
    call.used = 1;
    if head_of(call.buf, call.len) != call.head {
        // Freed and reused since: what it holds now is not this plaintext,
        // but what was copied at the call is.
        if call.copied == 0 {
            count(counter::TLS_UNTIED, 1);
            return false;
        }
        args.buf = 0;
        args.iovcnt = 0;
        args.tls = tls_args::COPIED;
        args.tls_len = call.len as u32;
        args.tls_caller = caller;
        count(counter::TLS_PLAINTEXT, 1);
        return true;
    }
    args.buf = call.buf;
    args.iovcnt = 0;
    args.tls = tls_args::PLAINTEXT;
    args.tls_len = call.len as u32;
    count(counter::TLS_PLAINTEXT, 1);
    true
}

/// The first bytes of the `len` at `buf` (up to HEAD), zero-padded.
#[inline(always)]
fn head_of(buf: u64, len: u64) -> [u8; HEAD] {
    // SAFETY: a user pointer, checked by the helper.
    let mut head = unsafe { bpf_probe_read_user(buf as *const [u8; HEAD]) }.unwrap_or([0; HEAD]);
    let mut i = 0;
    while i < HEAD {
        if i as u64 >= len {
            head[i] = 0;
        }
        i += 1;
    }
    head
}

/// Whether the first application-data record of the write `args` (after
/// the handshake's last records, which may share the write) holds the
/// first bytes of a `len`-byte plaintext sealed by an AEAD: +16
/// (TLS 1.2 ChaCha20-Poly1305), +17 (TLS 1.3: the content type byte and the
/// tag) or +24 (TLS 1.2 AES-GCM: explicit nonce and tag). The record holds
/// all of it, or a full record's worth (16 KiB), or, as Go sizes the first
/// records of a connection to fit a TCP segment, at least `MIN_SPLIT`.
/// None: no application-data record among the first `MAX_RECORDS`.
#[inline(always)]
fn record_of(args: &SyscallArgs, len: u64) -> Option<bool> {
    let (src, avail) = if args.iovcnt != 0 {
        // The first iovec.
        // SAFETY: a user pointer, checked by the helper.
        match unsafe { bpf_probe_read_user(args.buf as *const [u64; 2]) } {
            Ok([base, n]) => (base, n),
            Err(_) => return None,
        }
    } else {
        (args.buf, u64::MAX)
    };
    let whole = if len < MAX_RECORD { len } else { MAX_RECORD };
    let fits = |sealed: u64, overhead: u64| {
        let plain = sealed.wrapping_sub(overhead);
        plain == whole || (plain < whole && plain >= MIN_SPLIT)
    };
    // The handshake's last records may go out in the same write, first.
    let mut at = 0u64;
    let mut i = 0;
    while i < MAX_RECORDS {
        if at.saturating_add(5) > avail {
            return None;
        }
        // SAFETY: a user pointer, checked by the helper.
        let Ok(h) = (unsafe { bpf_probe_read_user((src + at) as *const [u8; 5]) }) else {
            return None;
        };
        if h[1] != 3 || h[2] > 4 || h[0] < 20 || h[0] > APPLICATION_DATA {
            return None;
        }
        let sealed = ((h[3] as u64) << 8) | h[4] as u64;
        if h[0] == APPLICATION_DATA {
            return Some(fits(sealed, 16) || fits(sealed, 17) || fits(sealed, 24));
        }
        at += 5 + sealed;
        i += 1;
    }
    None
}

/// The smallest record a TLS stack cuts a larger write into (Go: a TCP
/// segment's worth, over 1,000 bytes).
const MIN_SPLIT: u64 = 1000;

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

/// (client's endpoints, stream id) → the context the kernel chose for an
/// HTTP/2 request a client sent over TLS, which no header carries (sk_msg
/// sees only ciphertext): a Go server's handler probe on this host takes
/// its request's parent from here.
#[map]
static TLS_STREAMS: LruHashMap<ConnSeqKey, TraceCtx> = LruHashMap::with_max_entries(16384, 0);

/// Keep the context chosen for stream `stream` of the TLS client
/// connection `tuple`.
#[inline(always)]
pub fn remember_stream(tuple: &ConnTuple, stream: u32, ctx: &TraceCtx) {
    let key = ConnSeqKey {
        tuple: *tuple,
        seq: stream,
        _pad: 0,
    };
    let _ = TLS_STREAMS.insert(key, *ctx, 0);
}

/// The context a TLS client on this host chose for stream `stream` of the
/// server connection `tuple` (taken: one server per request).
#[inline(always)]
pub fn client_of_stream(tuple: &ConnTuple, stream: u32) -> Option<TraceCtx> {
    let key = ConnSeqKey {
        tuple: reversed(tuple),
        seq: stream,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    let found = unsafe { TLS_STREAMS.get(key) }.copied();
    if found.is_some() {
        let _ = TLS_STREAMS.remove(key);
    }
    found
}

/// Bytes of a write's plaintext copied at the call when its object is not
/// tied yet: a runtime with a memory BIO may free the buffer before it
/// writes out the ciphertext (Node's first request on a connection, sealed
/// once the handshake is done).
const COPY_LEN: usize = 1024;

/// Of `n` bytes of plaintext, how many a copy holds.
#[inline(always)]
fn copy_len(n: u64) -> u32 {
    if n < COPY_LEN as u64 {
        n as u32
    } else {
        COPY_LEN as u32
    }
}

/// Caller → the first bytes of its last TLS write call's plaintext.
#[map]
static TLS_COPIES: LruHashMap<u64, [u8; COPY_LEN]> = LruHashMap::with_max_entries(4096, 0);

/// Per-CPU place to copy them into first (too big for the stack).
#[map]
static COPY_BUF: PerCpuArray<[u8; COPY_LEN]> = PerCpuArray::with_max_entries(1, 0);

/// Copy the start of caller `key`'s write of `len` bytes at `buf` if its
/// object `conn` is not tied to a socket yet; the bytes copied.
#[inline(always)]
fn keep_copy(key: u64, conn: u64, buf: u64, len: u64) -> u32 {
    let tied = SslKey {
        ssl: conn,
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
    };
    // SAFETY: presence test only.
    if unsafe { SSL_FDS.get(tied) }.is_some() {
        return 0;
    }
    let Some(dst) = COPY_BUF.get_ptr_mut(0) else {
        return 0;
    };
    let n = copy_len(len);
    // A constant size (what follows a short plaintext is copied too, and
    // never read): a variable one loses its bounds to the verifier. A
    // buffer within COPY_LEN of the end of its mapping is not copied.
    // SAFETY: dst holds COPY_LEN bytes; buf is a user address checked by
    // the helper.
    let rc =
        unsafe { generated::bpf_probe_read_user(dst.cast(), COPY_LEN as u32, buf as *const _) };
    // SAFETY: this CPU's slot, just filled.
    if rc != 0 || n == 0 || TLS_COPIES.insert(key, unsafe { &*dst }, 0).is_err() {
        return 0;
    }
    n
}

/// Copy up to `want` bytes of caller `key`'s copied plaintext to `dst`
/// (which holds MAX_CAPTURE bytes); the bytes copied.
#[inline(always)]
pub fn copied_out(dst: *mut u8, key: u64, want: u64) -> u32 {
    let Some(src) = TLS_COPIES.get_ptr(key) else {
        return 0;
    };
    let n = copy_len(want);
    // SAFETY: src is a map value of COPY_LEN bytes, dst holds at least
    // MAX_CAPTURE >= COPY_LEN (constant size, as in `keep_copy`).
    let rc =
        unsafe { generated::bpf_probe_read_kernel(dst.cast(), COPY_LEN as u32, src as *const _) };
    if rc == 0 { n } else { 0 }
}
