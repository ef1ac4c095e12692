//! Structs and names shared by the kernel programs (`tracer-ebpf`) and the
//! agent (`tracer`). Everything here is `#[repr(C)]` plain data: the kernel
//! writes it into maps and the ring buffer, the agent reads it back as bytes.
#![cfg_attr(not(test), no_std)]

/// Largest payload prefix one data event can carry. A power of two so the
/// kernel side can bound lengths with a mask the verifier understands.
pub const MAX_CAPTURE: usize = 8192;
/// Default payload prefix copied per syscall.
pub const DEFAULT_CAPTURE: u32 = 1024;
/// Bytes copied from the end of a syscall's buffer when the prefix did not
/// reach it: enough to see the `0\r\n\r\n` that ends a chunked body.
pub const TAIL_LEN: usize = 8;
/// iovec entries followed per readv/writev/recvmsg/sendmsg: the kernel's
/// own limit (UIO_MAXIOV). gRPC's C core sends dozens per sendmsg.
pub const MAX_IOV: u32 = 1024;

pub mod maps {
    pub const EVENTS: &str = "EVENTS";
    pub const CONFIG: &str = "CONFIG";
    pub const TRACED_PIDS: &str = "TRACED_PIDS";
    pub const TRACED_PORTS: &str = "TRACED_PORTS";
    pub const EXE_NAMES: &str = "EXE_NAMES";
    pub const EXE_COMMS: &str = "EXE_COMMS";
    pub const SOCKS: &str = "SOCKS";
    pub const ARGS: &str = "ARGS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const THREAD_CTX: &str = "THREAD_CTX";
    pub const SERVER_BY_CALLER: &str = "SERVER_BY_CALLER";
    pub const CLIENT_CTX: &str = "CLIENT_CTX";
    pub const INJECT_SOCKETS: &str = "INJECT_SOCKETS";
    pub const SOCKHASH: &str = "SOCKHASH";
    pub const TAIL_CALLS: &str = "TAIL_CALLS";
    pub const GO_PROCS: &str = "GO_PROCS";
    pub const GO_HANDOFF: &str = "GO_HANDOFF";
    pub const GO_SERVERS: &str = "GO_SERVERS";
    pub const TLS_TAILS: &str = "TLS_TAILS";
}

/// Uprobe programs on OpenSSL's API (libssl, or an executable that links
/// it in and exports it): (program, function).
pub mod tls_probes {
    /// Entry of `SSL_write` / `SSL_write_ex`: the plaintext is in hand, and
    /// the socket write inside the call ties the `SSL*` to its fd.
    pub const WRITE: [(&str, &str); 2] =
        [("ssl_write", "SSL_write"), ("ssl_write", "SSL_write_ex")];
    /// Entry of `SSL_read` / `SSL_read_ex`: where the plaintext will go.
    pub const READ: [(&str, &str); 2] = [("ssl_read", "SSL_read"), ("ssl_read_ex", "SSL_read_ex")];
    /// Their return: how many bytes came.
    pub const READ_RET: [(&str, &str); 2] = [
        ("ssl_read_ret", "SSL_read"),
        ("ssl_read_ret", "SSL_read_ex"),
    ];
    /// Go's `crypto/tls.(*Conn).Write` at entry, `(*Conn).Read` at entry
    /// and at each RET instruction (never a uretprobe on Go code).
    pub const GO_WRITE: (&str, &str) = ("go_tls_write", "crypto/tls.(*Conn).Write");
    pub const GO_READ: (&str, &str) = ("go_tls_read", "crypto/tls.(*Conn).Read");
    pub const GO_READ_RET: (&str, &str) = ("go_tls_read_ret", "crypto/tls.(*Conn).Read");
    /// `(*Conn).Read` at each RET alone, reading its arguments from their
    /// spill slots: where its code was checked to keep them there.
    pub const GO_READ_EXIT: (&str, &str) = ("go_tls_read_exit", "crypto/tls.(*Conn).Read");
    /// Or, in place of any probe on Read, `(*Conn).readRecordOrCCS` at its
    /// RETs: one hit per record decrypted, however many Read calls drain
    /// it (the agent checks its code first: `golang::tls_records`).
    pub const GO_RECORD: (&str, &str) =
        ("go_tls_record_exit", "crypto/tls.(*Conn).readRecordOrCCS");
    /// What readRecordOrCCS calls to read the next record when it drops
    /// one: its result is passed on, not probed again.
    pub const GO_RETRY_RECORD: &str = "crypto/tls.(*Conn).retryReadRecord";
    /// Uprobe twins of the syscall chain's tail programs, by `tail` slot:
    /// a plaintext read goes through the same classification.
    pub const TAILS: [(u32, &str); 3] = [
        (super::tail::CLASSIFY, "tls_classify"),
        (super::tail::SERVER_CONTEXT, "tls_server_context"),
        (super::tail::SERVER_DECIDE, "tls_server_decide"),
    ];
}

/// Uprobe programs on Go functions, by the function they are attached to.
pub mod go_probes {
    /// `net/http.(*persistConn).roundTrip`: runs in the goroutine making an
    /// HTTP/1 client call, which hands the request to the connection's
    /// writer goroutine; the only uprobe hit of a Go client call.
    pub const HTTP_ROUND_TRIP: (&str, &str) =
        ("go_http_round_trip", "net/http.(*persistConn).roundTrip");
    /// grpc-go's `internal/transport.(*http2Client).NewStream`, probed on
    /// its RET instructions: runs in the goroutine making a gRPC call once
    /// the call's stream has its id; the only uprobe hit of a gRPC call.
    pub const GRPC_NEW_STREAM: (&str, &str) = (
        "go_grpc_new_stream",
        "google.golang.org/grpc/internal/transport.(*http2Client).NewStream",
    );
    /// grpc-go's `(*Server).handleStream`, probed at entry: the goroutine
    /// that will run the handler of one incoming stream, with that stream in
    /// hand. Attached only to Go processes that make outgoing calls.
    pub const GRPC_SERVER_STREAM: (&str, &str) = (
        "go_grpc_server_stream",
        "google.golang.org/grpc.(*Server).handleStream",
    );
    /// net/http's bundled HTTP/2 server starting a stream's handler
    /// goroutine (`go sc.runHandler(rw, req, handler)`), probed at entry.
    pub const H2_SERVER_STD: (&str, &str) =
        ("go_h2_server_std", "net/http.(*http2serverConn).runHandler");
    /// The same in golang.org/x/net/http2.
    pub const H2_SERVER_XNET: (&str, &str) = (
        "go_h2_server_xnet",
        "golang.org/x/net/http2.(*serverConn).runHandler",
    );
}

/// Slots of the TAIL_CALLS program array: the trace-context work runs in
/// programs of its own so each stays within the verifier's budget.
pub mod tail {
    /// `client_context`: read the context a client request's head carries
    /// (from sys_enter), then `client_decide`.
    pub const CLIENT_CONTEXT: u32 = 0;
    /// `server_context`: read the context a server request's head carries
    /// (from sys_exit), then `server_decide`.
    pub const SERVER_CONTEXT: u32 = 1;
    /// `client_decide`: choose the client span's ids; store the arguments.
    pub const CLIENT_DECIDE: u32 = 2;
    /// `server_decide`: choose the server span's ids; send the data event.
    pub const SERVER_DECIDE: u32 = 3;
    /// `classify`: does a sys_exit's data start a request or a response?
    pub const CLASSIFY: u32 = 4;
    /// `client_h2`: choose the client span's ids for an HTTP/2 HEADERS
    /// frame sk_msg will add `traceparent` to; store the arguments.
    pub const CLIENT_H2: u32 = 5;
    pub const COUNT: u32 = 6;
    /// Program names, by slot.
    pub const PROGRAMS: [&str; COUNT as usize] = [
        "client_context",
        "server_context",
        "client_decide",
        "server_decide",
        "classify",
        "client_h2",
    ];
}

/// Indices into the per-CPU `COUNTERS` array.
pub mod counter {
    /// Data events written to the ring buffer.
    pub const EVENTS_SENT: u32 = 0;
    /// Events lost because the ring buffer was full.
    pub const RINGBUF_FULL: u32 = 1;
    /// Syscall arguments lost because the ARGS map was full.
    pub const ARGS_FULL: u32 = 2;
    /// Reads of user or kernel memory that failed.
    pub const READ_FAILED: u32 = 3;
    /// Payload bytes copied into the ring buffer.
    pub const BYTES_COPIED: u32 = 4;
    /// `traceparent` headers written into outgoing requests.
    pub const INJECTED: u32 = 5;
    /// Outgoing requests left alone because they carried a traceparent
    /// (HTTP/2: once per connection, at the request that showed it; the
    /// connection is not injected again).
    pub const INJECT_SKIPPED_HAS_HEADER: u32 = 6;
    /// Outgoing requests not injected: the request line did not end in the
    /// first send, or the kernel refused to grow the message.
    pub const INJECT_FAILED: u32 = 7;
    /// A Go process whose current goroutine could not be read (neither in
    /// R14 nor at fsbase-8): its syscalls fall back to per-thread context.
    pub const GO_NO_GOROUTINE: u32 = 8;
    /// Go client calls whose connection could not be read at the uprobe.
    pub const GO_HANDOFF_FAILED: u32 = 9;
    /// HEADERS frames in a write beyond `http2::MAX_HEADS`: their requests
    /// get no kernel context and no `traceparent`.
    pub const H2_HEADS_UNTRACED: u32 = 10;
    /// A gRPC stream's caller could not be recorded (the stream or its
    /// connection could not be read).
    pub const GO_GRPC_STREAM_FAILED: u32 = 11;
    /// A gRPC call whose HEADERS frame the connection's writer goroutine
    /// sent before the call's uprobe recorded its caller: that client span
    /// starts a new trace.
    pub const GO_GRPC_STREAM_LATE: u32 = 12;
    /// HTTP/2 client connections no longer injected because the kernel
    /// could not tell where a write's frames start (a partial write, a frame
    /// header cut by the end of a write, bytes no peer sends).
    pub const H2_INJECT_SYNC_LOST: u32 = 13;
    /// Go gRPC calls whose HEADERS went out with no caller recorded for
    /// their stream (the uprobe came late, or not at all): new traces.
    pub const GO_GRPC_STREAM_NO_CALLER: u32 = 14;
    /// Hits of the Go HTTP/2 and gRPC server handler probes: one per
    /// incoming request of a Go process that has the probe.
    pub const GO_SERVER_STREAMS: u32 = 15;
    /// Of those, streams whose connection or stream id could not be read:
    /// calls made by their handler start new traces.
    pub const GO_SERVER_STREAM_FAILED: u32 = 16;
    /// Of those, requests whose `traceparent` (or `b3`) the probe read from
    /// the handler's request headers.
    pub const GO_SERVER_STREAM_HEADER: u32 = 17;
    /// Plaintext chunks a TLS library's probes gave (SSL_write, SSL_read).
    pub const TLS_PLAINTEXT: u32 = 18;
    /// Plaintext read from a TLS library that could not be tied to its
    /// connection: dropped, never attributed by guess.
    pub const TLS_UNTIED: u32 = 19;
    /// Syscalls on TLS sockets whose bytes (ciphertext) were not sent to
    /// the agent: their plaintext comes from the TLS library, or not at all.
    pub const TLS_CIPHERTEXT_SKIPPED: u32 = 20;
    /// Processes left unselected because TRACED_PIDS was full: children
    /// of selected processes, and execs of selected executables.
    pub const PIDS_FULL: u32 = 21;
    /// TLS write calls whose plaintext no socket write carried before the
    /// caller's next write call replaced it: a runtime that seals several
    /// writes into a memory BIO, then sends them in one socket write
    /// (gRPC's C core with messages over a record) loses all but the last.
    pub const TLS_WRITE_UNSENT: u32 = 22;
    /// Hits of the TLS uprobes (OpenSSL's calls and returns, Go's
    /// crypto/tls) in traced processes: each is a trap the process paid.
    pub const TLS_PROBE_HITS: u32 = 23;
    /// A Go syscall whose goroutine was read from the thread's TLS because
    /// R14 did not hold it (a syscall from C code in a cgo binary).
    pub const GO_G_FROM_TLS: u32 = 24;
    pub const COUNT: u32 = 25;
}

/// Event kinds: the first byte of every ring-buffer record.
pub mod kind {
    pub const DATA: u8 = 1;
    pub const CLOSE: u8 = 2;
    pub const EXEC: u8 = 3;
    pub const EXIT: u8 = 4;
    /// The contexts of the HTTP/2 requests a write starts
    /// (`H2HeadsEvent`), sent just before that write's data event.
    pub const H2_HEADS: u8 = 5;
}

/// Direction of a data event as the traced process sees it.
pub mod direction {
    /// The process received these bytes (read, recv*).
    pub const INGRESS: u8 = 0;
    /// The process sent these bytes (write, send*, sendfile).
    pub const EGRESS: u8 = 1;
}

/// How the kernel learned of a connection.
pub mod role {
    /// Found lazily on first use (opened before the agent, or inherited).
    pub const UNKNOWN: u8 = 0;
    /// Returned by accept/accept4: this process is the server.
    pub const ACCEPTED: u8 = 1;
    /// Opened with connect: this process is the client.
    pub const CONNECTED: u8 = 2;
}

/// Local and remote endpoint of a TCP socket. Ports in host order; IPv4
/// addresses in the first four bytes.
// 8-aligned: the kernel programs copy it (and TraceCtx) as words; at byte
// alignment each copy was a call to a byte-by-byte memmove.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnTuple {
    pub family: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u16,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

/// What the kernel remembers per (tgid, fd).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockInfo {
    /// Kernel address of the `struct sock`, an identity for the socket.
    pub sock_id: u64,
    pub tuple: ConnTuple,
    pub role: u8,
    /// 0 when this fd is not a TCP socket (a negative cache entry).
    pub is_tcp: u8,
    /// 1 when one of the socket's ports is in TRACED_PORTS.
    pub port_selected: u8,
    /// `http2::SOCK_*`: whether this (client) socket speaks HTTP/2 and
    /// may get `traceparent` in HPACK.
    pub http2: u8,
    /// 1: the socket carries TLS (a record went by). Its syscalls' bytes
    /// are never sent; its plaintext comes from the TLS library's probes.
    pub tls: u8,
    pub _pad0: [u8; 3],
    /// Requests started on this socket since the agent saw it: pairs the
    /// client's and the server's view of a request on one host.
    pub request_seq: u32,
    /// HTTP/2 client sockets: bytes at the start of the next write that
    /// still belong to a frame of an earlier one (frames may be cut across
    /// writes), so the frame walk starts past them.
    pub h2_skip: u32,
    /// The thread or goroutine (its THREAD_CTX key) that read the last
    /// server request of this socket, 0 for none: the response written on
    /// the socket marks that request answered without the goroutine being
    /// read again.
    pub server_actor: u64,
}

/// How the parent of a span was found (`TraceCtx::source`).
pub mod ctx_source {
    /// No parent: a root span.
    pub const NONE: u8 = 0;
    /// From a `traceparent` header in the request.
    pub const HEADER: u8 = 1;
    /// The server request being served on the same thread.
    pub const THREAD: u8 = 2;
    /// The client span at the other end of a connection on this host.
    pub const CONNECTION: u8 = 3;
    /// The request of the goroutine (or an ancestor goroutine) that made
    /// the call, in a Go process.
    pub const GOROUTINE: u8 = 4;
    /// The request a proxy serves whose context header it forwards in this
    /// client request.
    pub const FORWARDED: u8 = 5;
}

/// The trace context the kernel chose for one request, as seen by one
/// process: the span it will become, and that span's parent.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceCtx {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// `ctx_source::*`
    pub source: u8,
    /// 1 when this struct is filled in.
    pub valid: u8,
    /// 1 when the kernel wrote a `traceparent` header with these ids.
    pub injected: u8,
    pub _pad: [u8; 4],
}

/// Context of the server request a thread is serving.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadCtx {
    pub ctx: TraceCtx,
    /// The server connection the request came in on.
    pub sock_id: u64,
    pub ts: u64,
    /// Server requests read on this thread and not yet answered: with more
    /// than one (an event loop), "the request on this thread" is ambiguous.
    pub pending: u32,
    /// The process, for SERVER_BY_CALLER entries.
    pub tgid: u32,
}

/// Key of CLIENT_CTX: a client connection's endpoints as the client sees
/// them, and the number of the request on it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnSeqKey {
    pub tuple: ConnTuple,
    pub seq: u32,
    pub _pad: u32,
}

/// Syscall arguments saved at sys_enter for the matching sys_exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallArgs {
    /// When a write began (kernel clock); 0 for other syscalls, which are
    /// dated by their return.
    pub ts_enter: u64,
    /// Buffer, or iovec array when `iovcnt` is non-zero.
    pub buf: u64,
    pub fd: u32,
    pub iovcnt: u32,
    pub op: u8,
    /// 1 when the write starts HTTP/2 requests: their HEADERS frames and
    /// contexts are in H2_HEADS (`http2::headers_frames`); 2 once sk_msg
    /// has been through them.
    pub http2: u8,
    /// `tls_args::*`: whether `buf` is the plaintext a TLS library was
    /// given or filled (`tls_len` bytes) in place of the syscall's
    /// ciphertext, or a TLS socket's read to look at the records of.
    pub tls: u8,
    pub _pad: u8,
    /// For a write that starts a client request: the context chosen for it
    /// (sk_msg reads it to write the header).
    pub ctx: TraceCtx,
    /// Offset just past the request line's CRLF, where sk_msg inserts the
    /// `traceparent` line; 0 when it must not (the request has its own).
    pub inject_at: u32,
    /// Offset of the value of a `traceparent` the process forwarded from
    /// the request it serves: sk_msg overwrites it in place. 0: none.
    pub overwrite_at: u32,
    /// Writes on HTTP/2 client sockets (`h2_len != 0` once walked): where
    /// the first frame after those the walk went through starts, from the
    /// start of the write (`http2::END_UNKNOWN` when the walk could not
    /// tell), and the bytes the write was asked to send.
    pub h2_end: u32,
    pub h2_len: u32,
    pub tls_len: u32,
    pub _pad2: u32,
    /// `tls_args::PEEK`: the caller (`goroutines::actor`) the records read
    /// are remembered for.
    pub tls_caller: u64,
}

/// `SyscallArgs::tls`.
pub mod tls_args {
    /// The syscall's own bytes.
    pub const NONE: u8 = 0;
    /// The plaintext of a TLS library's call instead.
    pub const PLAINTEXT: u8 = 1;
    /// A read of a TLS socket outside any TLS read call: its records'
    /// lengths tie the next read call to this socket (memory BIOs).
    pub const PEEK: u8 = 2;
    /// The plaintext of a TLS write call whose buffer was freed before its
    /// ciphertext went out: the first bytes the kernel copied at the call
    /// (kept for `tls_caller`) instead.
    pub const COPIED: u8 = 3;
    /// Data events only: no bytes, but word that a ClientHello went by on
    /// this socket (its TLS starts; the agent then expects plaintext from
    /// the process's TLS library).
    pub const HELLO: u8 = 4;
}

/// One HTTP/2 request a write starts: where its HEADERS frame is, and the
/// context chosen for it (`ctx.injected` once sk_msg added `traceparent`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct H2Head {
    pub stream_id: u32,
    /// Offset of the frame in the write.
    pub frame_at: u32,
    /// Offset just past its header block, where the field goes.
    pub block_end: u32,
    /// 1: not a client request but a server stream whose handler a Go
    /// server probe saw start (`ctx` is the server span's; no frame).
    pub server: u32,
    pub ctx: TraceCtx,
    /// Server streams: the address of the handler's `*http.Request`, whose
    /// route the agent reads when the stream ends (0: none).
    pub request: u64,
}

/// The HTTP/2 requests one write starts (`kind::H2_HEADS`): built at
/// sys_enter, completed by sk_msg, sent at sys_exit before the data event.
/// On the wire only the first `H2_HEADS_HEADER_LEN + count * size_of
/// H2Head` bytes are sent.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct H2HeadsEvent {
    pub kind: u8,
    pub _pad: [u8; 3],
    pub pid: u32,
    pub fd: u32,
    /// Valid entries of `heads`.
    pub count: u32,
    pub sock_id: u64,
    pub heads: [H2Head; http2::MAX_HEADS],
}

impl Default for H2HeadsEvent {
    fn default() -> Self {
        Self {
            kind: 0,
            _pad: [0; 3],
            pid: 0,
            fd: 0,
            count: 0,
            sock_id: 0,
            heads: [H2Head::default(); http2::MAX_HEADS],
        }
    }
}

pub const H2_HEADS_HEADER_LEN: usize = core::mem::offset_of!(H2HeadsEvent, heads);

/// Length of the line sk_msg inserts:
/// `traceparent: 00-<32 hex>-<16 hex>-<2 hex>\r\n`.
pub const TRACEPARENT_LINE_LEN: usize = 70;

/// The start of an HTTP/1 message, as the kernel programs tell it from a
/// payload's first 8 bytes.
pub mod http1 {
    /// Request lines the kernel recognises, method and space.
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

    /// A prefix of at most 8 bytes as (little-endian word, mask of its
    /// bytes): compared as one masked word, a match costs a few
    /// instructions in a kernel program, where a slice comparison is a call
    /// to a byte-by-byte `memcmp` per method.
    const fn word_prefix(p: &[u8]) -> (u64, u64) {
        let mut word = 0u64;
        let mut mask = 0u64;
        let mut i = 0;
        while i < p.len() && i < 8 {
            word |= (p[i] as u64) << (8 * i);
            mask |= 0xff << (8 * i);
            i += 1;
        }
        (word, mask)
    }

    const METHOD_WORDS: [(u64, u64); 9] = {
        let mut out = [(0u64, 0u64); 9];
        let mut i = 0;
        while i < METHODS.len() {
            out[i] = word_prefix(METHODS[i]);
            i += 1;
        }
        out
    };

    const RESPONSE_WORD: (u64, u64) = word_prefix(b"HTTP/1.");

    /// Whether the first bytes of a message are an HTTP/1 request line's
    /// start.
    #[inline(always)]
    pub fn is_request_start(b: &[u8; 8]) -> bool {
        let w = u64::from_le_bytes(*b);
        let mut i = 0;
        while i < METHOD_WORDS.len() {
            let (word, mask) = METHOD_WORDS[i];
            if w & mask == word {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Whether they are a status line's start.
    #[inline(always)]
    pub fn is_response_start(b: &[u8; 8]) -> bool {
        u64::from_le_bytes(*b) & RESPONSE_WORD.1 == RESPONSE_WORD.0
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn first(s: &[u8]) -> [u8; 8] {
            let mut b = [0u8; 8];
            b[..s.len().min(8)].copy_from_slice(&s[..s.len().min(8)]);
            b
        }

        #[test]
        fn every_method_and_only_with_its_space() {
            for m in METHODS {
                let line = [m, b"/x HTTP/1.1\r\n".as_slice()].concat();
                assert!(is_request_start(&first(&line)), "{m:?}");
                // The same letters without the space, or cut short: no.
                let bare = &m[..m.len() - 1];
                let other = [bare, b"X /".as_slice()].concat();
                assert!(!is_request_start(&first(&other)), "{other:?}");
                assert!(!is_request_start(&first(bare)), "{bare:?}");
            }
            for not in [
                b"get / HT".as_slice(),
                b"HTTP/1.1",
                b"PRI * HT",
                b"\x16\x03\x01\x02",
            ] {
                assert!(!is_request_start(&first(not)), "{not:?}");
            }
        }

        #[test]
        fn status_lines() {
            assert!(is_response_start(b"HTTP/1.1"));
            assert!(is_response_start(b"HTTP/1.0"));
            assert!(!is_response_start(b"HTTP/2.0"));
            assert!(!is_response_start(b"http/1.1"));
            assert!(!is_response_start(b"GET / HT"));
        }
    }
}

/// HTTP/2 (RFC 9113) and HPACK (RFC 7541) as far as the kernel programs
/// write `traceparent` into a client's HEADERS frame.
pub mod http2 {
    /// What a client sends first on a connection.
    pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    /// `SockInfo::http2`: not known to speak HTTP/2.
    pub const SOCK_NONE: u8 = 0;
    /// This process wrote the connection preface on the socket: its
    /// HEADERS frames get `traceparent`.
    pub const SOCK_INJECT: u8 = 1;
    /// The app sent its own `traceparent` on the connection: never injected
    /// again (its later requests name the field by an index into the
    /// encoder's dynamic table, which the kernel does not follow).
    pub const SOCK_APP_CONTEXT: u8 = 2;
    /// This process read the connection preface on the socket (its server
    /// end). Like the others: its data is captured up to MAX_CAPTURE per
    /// syscall, because frame headers beyond the captured bytes would
    /// lose the whole connection's framing.
    pub const SOCK_SERVER: u8 = 3;
    /// A client socket whose frame boundaries the kernel lost: captured and
    /// parsed like the others, never injected again (a HEADERS frame looked
    /// for at a wrong offset could be a DATA payload's bytes).
    pub const SOCK_NO_SYNC: u8 = 4;
    /// `SyscallArgs::h2_end` when the walk could not tell.
    pub const END_UNKNOWN: u32 = u32::MAX;
    pub const FRAME_HEADER_LEN: u32 = 9;
    /// SETTINGS_MAX_FRAME_SIZE until the peer says otherwise; a grown frame
    /// never exceeds it.
    pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16384;
    pub const TYPE_HEADERS: u8 = 0x1;
    pub const FLAG_END_HEADERS: u8 = 0x4;
    pub const FLAG_PADDED: u8 = 0x8;
    /// An HPACK "literal header field without indexing, new name"
    /// (RFC 7541 §6.2.2): neither side's dynamic table changes. The name,
    /// then the length of the 55-byte value (no Huffman coding).
    pub const TRACEPARENT_FIELD_PREFIX: [u8; 14] = *b"\x00\x0btraceparent\x37";
    /// The prefix and the `00-<32 hex>-<16 hex>-<2 hex>` value.
    pub const TRACEPARENT_FIELD_LEN: u32 = 14 + 55;

    /// The payload length and stream id of a frame header that sk_msg may
    /// append `traceparent` to: a HEADERS frame on a client-initiated (odd)
    /// stream holding the whole header block (END_HEADERS), unpadded (the
    /// block then ends with the frame), and short enough to grow by
    /// `TRACEPARENT_FIELD_LEN` within the default maximum frame size.
    #[inline(always)]
    pub fn injectable_headers(h: &[u8; 9]) -> Option<(u32, u32)> {
        let len = frame_len(h);
        let stream = ((h[5] as u32) << 24 | (h[6] as u32) << 16 | (h[7] as u32) << 8 | h[8] as u32)
            & 0x7fff_ffff;
        let ok = h[3] == TYPE_HEADERS
            && h[4] & FLAG_END_HEADERS != 0
            && h[4] & FLAG_PADDED == 0
            && stream & 1 == 1
            && len + TRACEPARENT_FIELD_LEN <= DEFAULT_MAX_FRAME_SIZE;
        if ok { Some((len, stream)) } else { None }
    }

    /// Frames looked at, from the start of a write, for HEADERS frames (a
    /// gRPC client's writer batches several calls' HEADERS and DATA).
    pub const MAX_FRAMES: usize = 512;
    /// HEADERS frames of one write that get a context (and `traceparent`);
    /// more are counted (`counter::H2_HEADS_UNTRACED`). A power of two
    /// (the kernel masks indices with it); as many as `MAX_FRAMES` hold
    /// when each call is a HEADERS and a DATA frame (grpc-go's writer sends
    /// a hundred calls' frames in one write under load).
    pub const MAX_HEADS: usize = 256;

    /// The 24-bit payload length of a frame header.
    #[inline(always)]
    pub fn frame_len(h: &[u8; 9]) -> u32 {
        (h[0] as u32) << 16 | (h[1] as u32) << 8 | h[2] as u32
    }

    /// The HEADERS frames sk_msg may add `traceparent` to in a write of
    /// `len` bytes whose frame headers `header_at(offset)` reads, within its
    /// first `MAX_FRAMES` frames: `found(offset, payload length, stream id)`
    /// for each that is wholly within the `len` bytes and
    /// `injectable_headers`, until it returns false. The walk stops at a
    /// frame that cannot be read. Frames of any length are stepped over: a
    /// peer may allow frames beyond the default maximum (nginx allows 16
    /// MiB, and gRPC's C core then sends a 40 KiB message as one frame).
    pub fn headers_frames(
        len: u64,
        mut header_at: impl FnMut(u32) -> Option<[u8; 9]>,
        mut found: impl FnMut(u32, u32, u32) -> bool,
    ) {
        let mut at: u32 = 0;
        for _ in 0..MAX_FRAMES {
            if at as u64 + FRAME_HEADER_LEN as u64 > len {
                return;
            }
            let Some(h) = header_at(at) else { return };
            match next_frame(at, len, &h) {
                Frame::Other { next } => at = next,
                Frame::Headers { n, stream, next } => {
                    if !found(at, n, stream) {
                        return;
                    }
                    at = next;
                }
            }
        }
    }

    /// One step of `headers_frames` (the kernel takes them in a bpf_loop).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Frame {
        /// A frame to pass over; the next starts at `next`.
        Other { next: u32 },
        /// A HEADERS frame to add `traceparent` to, with `n` payload bytes.
        Headers { n: u32, stream: u32, next: u32 },
    }

    /// The frame at `at` of a write of `len` bytes, whose header is `h`.
    #[inline(always)]
    pub fn next_frame(at: u32, len: u64, h: &[u8; 9]) -> Frame {
        let next = at + FRAME_HEADER_LEN + frame_len(h);
        match injectable_headers(h) {
            Some((n, stream)) if next as u64 <= len => Frame::Headers { n, stream, next },
            _ => Frame::Other { next },
        }
    }

    /// The HPACK Huffman code (RFC 7541 Appendix B) of `traceparent`: 59
    /// bits, padded with ones to 8 bytes. An encoder that Huffman-codes the
    /// name (Go's x/net/http2/hpack, so grpc-go, whenever it is shorter)
    /// sends it as a string of length byte `0x88` (H bit + 8) and these.
    pub const TRACEPARENT_HUFFMAN: [u8; 8] = [0x4d, 0x83, 0x21, 0x6b, 0x1d, 0x85, 0xa9, 0x3f];
    /// Bytes of the header block the kernel looks through for an app's own
    /// `traceparent` (see `names_traceparent`).
    pub const NAME_SCAN_LIMIT: u32 = 1024;

    /// Mask of the bytes of `word` (8 bytes of a header block, little-endian)
    /// that may be the length of a `traceparent` name string: `0x0b` (11,
    /// raw) or `0x88` (Huffman, 8): each such byte's high bit is set in the
    /// result (a false positive only costs a look).
    #[inline(always)]
    pub fn name_length_candidates(word: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        zero(word ^ 0x0b0b_0b0b_0b0b_0b0b) | zero(word ^ 0x8888_8888_8888_8888)
    }

    /// Whether the string at a header block byte `len` is the name
    /// `traceparent` of a literal field with a new name, as an encoder sends
    /// it the first time on a connection (RFC 7541 §6.2: representation
    /// byte `0x40`, `0x00` or `0x10`, that is, index 0, then the name
    /// string). `prev` is the byte before `len`; `w0` and `w1` the 16 bytes
    /// after it as little-endian words; `avail` how many bytes of the block
    /// follow `len` (`w0`/`w1` beyond them are not looked at).
    #[inline(always)]
    pub fn names_traceparent(prev: u8, len: u8, w0: u64, w1: u64, avail: u32) -> bool {
        if prev != 0x40 && prev != 0x00 && prev != 0x10 {
            return false;
        }
        if len == 0x0b {
            avail >= 11
                && w0 == u64::from_le_bytes(*b"tracepar")
                && w1 & 0xff_ffff == u64::from_le_bytes(*b"ent\0\0\0\0\0")
        } else if len == 0x88 {
            avail >= 8 && w0 == u64::from_le_bytes(TRACEPARENT_HUFFMAN)
        } else {
            false
        }
    }

    /// `names_traceparent` anywhere in the first `NAME_SCAN_LIMIT` bytes of
    /// `block`, looked at as the kernel does (a word at a time, each length
    /// candidate checked), over a slice: what the kernel's scan finds.
    pub fn block_names_traceparent(block: &[u8]) -> bool {
        let n = block.len().min(NAME_SCAN_LIMIT as usize);
        let word_at = |at: usize| {
            let mut w = [0u8; 8];
            for (i, b) in w.iter_mut().enumerate() {
                *b = if at + i < n { block[at + i] } else { 0 };
            }
            u64::from_le_bytes(w)
        };
        let mut base = 0;
        while base < n {
            let mut m = name_length_candidates(word_at(base));
            while m != 0 {
                let i = base + (m.trailing_zeros() / 8) as usize;
                m &= m - 1;
                if i >= 1
                    && i < n
                    && names_traceparent(
                        block[i - 1],
                        block[i],
                        word_at(i + 1),
                        word_at(i + 9),
                        (n - i - 1) as u32,
                    )
                {
                    return true;
                }
            }
            base += 8;
        }
        false
    }

    /// The frame header `h` with its payload length grown by `by`.
    #[inline(always)]
    pub fn grown_length(len: u32, by: u32) -> [u8; 3] {
        let n = len + by;
        [(n >> 16) as u8, (n >> 8) as u8, n as u8]
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn header(len: u32, kind: u8, flags: u8, stream: u32) -> [u8; 9] {
            let l = len.to_be_bytes();
            let s = stream.to_be_bytes();
            [l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]
        }

        #[test]
        fn only_whole_unpadded_client_headers_frames_that_fit() {
            let eh = FLAG_END_HEADERS;
            assert_eq!(injectable_headers(&header(100, 1, eh, 1)), Some((100, 1)));
            // END_STREAM and PRIORITY do not matter.
            assert_eq!(
                injectable_headers(&header(100, 1, eh | 0x1 | 0x20, 7)),
                Some((100, 7))
            );
            // The reserved bit is not part of the stream id.
            assert_eq!(
                injectable_headers(&header(5, 1, eh, 0x8000_0003)),
                Some((5, 3))
            );
            assert_eq!(injectable_headers(&header(100, 0, eh, 1)), None, "DATA");
            assert_eq!(injectable_headers(&header(100, 9, eh, 1)), None);
            assert_eq!(injectable_headers(&header(100, 1, 0, 1)), None, "continued");
            assert_eq!(
                injectable_headers(&header(100, 1, eh | FLAG_PADDED, 1)),
                None,
                "padded"
            );
            assert_eq!(injectable_headers(&header(100, 1, eh, 2)), None, "push");
            assert_eq!(injectable_headers(&header(100, 1, eh, 0)), None);
            let max = DEFAULT_MAX_FRAME_SIZE - TRACEPARENT_FIELD_LEN;
            assert_eq!(injectable_headers(&header(max, 1, eh, 1)), Some((max, 1)));
            assert_eq!(injectable_headers(&header(max + 1, 1, eh, 1)), None);
            assert_eq!(injectable_headers(&header(0xff_ffff, 1, eh, 1)), None);
        }

        fn frames(list: &[[u8; 9]], payload: &[usize]) -> Vec<u8> {
            let mut out = Vec::new();
            for (h, n) in list.iter().zip(payload) {
                out.extend_from_slice(h);
                out.extend(std::iter::repeat_n(0xaa, *n));
            }
            out
        }

        fn find_all(bytes: &[u8], limit: usize) -> Vec<(u32, u32, u32)> {
            let mut out = Vec::new();
            headers_frames(
                bytes.len() as u64,
                |at| bytes.get(at as usize..at as usize + 9)?.try_into().ok(),
                |at, n, stream| {
                    out.push((at, n, stream));
                    out.len() < limit
                },
            );
            out
        }

        fn find(bytes: &[u8]) -> Vec<(u32, u32, u32)> {
            find_all(bytes, MAX_HEADS)
        }

        #[test]
        fn headers_frames_skips_other_frames() {
            let eh = FLAG_END_HEADERS;
            let hdrs = header(16, 1, eh, 3);
            let data = header(9, 0, 1, 3);
            let ping_ack = header(8, 6, 1, 0);
            let window = header(4, 8, 0, 0);
            assert_eq!(find(&frames(&[hdrs, data], &[16, 9])), [(0, 16, 3)]);
            assert_eq!(
                find(&frames(&[ping_ack, window, hdrs, data], &[8, 4, 16, 9])),
                [(30, 16, 3)]
            );
            // A HEADERS frame that cannot grow is passed over.
            assert_eq!(
                find(&frames(&[header(16, 1, 0, 5), hdrs], &[16, 16])),
                [(25, 16, 3)]
            );
            // Cut short, or none.
            let bytes = frames(&[window, hdrs], &[4, 16]);
            assert_eq!(find(&bytes[..bytes.len() - 1]), []);
            assert_eq!(find(&bytes[..20]), []);
            assert_eq!(find(&frames(&[data], &[9])), []);
            assert_eq!(find(&[]), []);
            // A frame longer than the default maximum (a peer allowed it)
            // is stepped over like any other.
            let big = DEFAULT_MAX_FRAME_SIZE as usize + 100;
            let huge = header(big as u32, 0, 0, 1);
            assert_eq!(
                find(&frames(&[huge, hdrs], &[big, 16])),
                [(big as u32 + 9, 16, 3)]
            );
        }

        /// A gRPC client's writer batches calls: HEADERS and DATA of
        /// several streams in one write, each HEADERS found.
        #[test]
        fn headers_frames_finds_every_call_of_a_batch() {
            let eh = FLAG_END_HEADERS;
            let mut list = Vec::new();
            let mut lens = Vec::new();
            for stream in [1, 3, 5, 7, 9] {
                list.push(header(15, 1, eh, stream));
                lens.push(15);
                list.push(header(18, 0, 0, stream));
                lens.push(18);
            }
            let bytes = frames(&list, &lens);
            let found = find(&bytes);
            assert_eq!(
                found.iter().map(|f| f.2).collect::<Vec<_>>(),
                [1, 3, 5, 7, 9]
            );
            assert_eq!(found[1], (9 + 15 + 9 + 18, 15, 3));
            // `found` says when to stop.
            assert_eq!(find_all(&bytes, 2).len(), 2);
            // Only the first MAX_FRAMES frames are looked at.
            let windows = vec![header(4, 8, 0, 0); MAX_FRAMES];
            let mut list2 = windows.clone();
            list2.push(header(15, 1, eh, 1));
            let mut lens2 = vec![4; MAX_FRAMES];
            lens2.push(15);
            assert_eq!(find(&frames(&list2, &lens2)), []);
        }

        #[test]
        fn grown_length_is_24_bit_big_endian() {
            assert_eq!(grown_length(100, TRACEPARENT_FIELD_LEN), [0, 0, 169]);
            assert_eq!(grown_length(0x1234, 0x100), [0, 0x13, 0x34]);
            assert_eq!(grown_length(0xffff, 1), [1, 0, 0]);
        }

        /// RFC 7541 Appendix B, the letters of `traceparent`: (symbol,
        /// code as bits aligned to the MSB, length in bits), as printed.
        const APPENDIX_B: [(u8, &str, u32); 7] = [
            (b'a', "00011", 5),
            (b'c', "00100", 5),
            (b'e', "00101", 5),
            (b'n', "101010", 6),
            (b'p', "101011", 6),
            (b'r', "101100", 6),
            (b't', "01001", 5),
        ];

        fn huffman(s: &[u8]) -> Vec<u8> {
            let mut bits = String::new();
            for c in s {
                let (_, code, len) = APPENDIX_B.iter().find(|e| e.0 == *c).unwrap();
                assert_eq!(code.len() as u32, *len);
                bits.push_str(code);
            }
            // Padded with the most significant bits of EOS (all ones).
            while !bits.len().is_multiple_of(8) {
                bits.push('1');
            }
            (0..bits.len() / 8)
                .map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap())
                .collect()
        }

        #[test]
        fn the_huffman_name_is_computed_from_appendix_b() {
            let code = huffman(b"traceparent");
            assert_eq!(code.len(), 8, "59 bits");
            assert_eq!(code, TRACEPARENT_HUFFMAN);
            // The string's length byte: H bit and 8.
            assert_eq!(0x80 | code.len(), 0x88);
        }

        /// A header block with `fields` before and after a `traceparent`
        /// literal whose representation byte is `repr` and whose name is
        /// `name` (length byte included).
        fn block(repr: u8, name: &[u8], pad: usize) -> Vec<u8> {
            let mut b = vec![0x82, 0x86, 0x84]; // :method GET, :scheme http, :path /
            b.extend(std::iter::repeat_n(0xbe, pad)); // indexed fields
            b.push(repr);
            b.extend_from_slice(name);
            b.push(0x37);
            b.extend_from_slice(&[b'0'; 55]);
            b.extend_from_slice(&[0x40, 0x02, b'x', b'y', 0x01, b'z']);
            b
        }

        #[test]
        fn the_matcher_finds_the_name_raw_or_huffman_at_any_offset() {
            let raw = b"\x0btraceparent".to_vec();
            let mut huff = vec![0x88];
            huff.extend_from_slice(&TRACEPARENT_HUFFMAN);
            for pad in 0..24 {
                for repr in [0x40, 0x00, 0x10] {
                    assert!(block_names_traceparent(&block(repr, &raw, pad)), "{pad}");
                    assert!(block_names_traceparent(&block(repr, &huff, pad)), "{pad}");
                }
                // Not a literal with a new name (a name index, or a value).
                assert!(!block_names_traceparent(&block(0x41, &raw, pad)));
                assert!(!block_names_traceparent(&block(0x7f, &huff, pad)));
                // Another name.
                let other = b"\x0btraceparenT".to_vec();
                assert!(!block_names_traceparent(&block(0x40, &other, pad)));
                let mut h = huff.clone();
                h[8] ^= 1;
                assert!(!block_names_traceparent(&block(0x40, &h, pad)));
            }
            // The bytes the kernel appends match too (they are a literal
            // without indexing), and so does the start of a block.
            assert!(block_names_traceparent(&TRACEPARENT_FIELD_PREFIX));
            assert!(!block_names_traceparent(&TRACEPARENT_FIELD_PREFIX[1..]));
            // Cut short: the whole name must be within the block.
            let b = block(0x40, &raw, 0);
            assert!(block_names_traceparent(&b[..16]));
            assert!(!block_names_traceparent(&b[..15]));
            let b = block(0x40, &huff, 0);
            assert!(block_names_traceparent(&b[..13]));
            assert!(!block_names_traceparent(&b[..12]));
            // Only the first NAME_SCAN_LIMIT bytes are looked at.
            let limit = NAME_SCAN_LIMIT as usize;
            let mut b = vec![0xbe; limit - 10];
            b.extend_from_slice(&[0x40, 0x88]);
            b.extend_from_slice(&TRACEPARENT_HUFFMAN);
            assert!(block_names_traceparent(&b));
            let mut b = vec![0xbe; limit - 9];
            b.extend_from_slice(&[0x40, 0x88]);
            b.extend_from_slice(&TRACEPARENT_HUFFMAN);
            assert!(!block_names_traceparent(&b));
            assert!(!block_names_traceparent(&[]));
            assert!(!block_names_traceparent(&[0x0b]));
        }

        #[test]
        fn candidates_are_the_length_bytes() {
            let w = u64::from_le_bytes([0x0b, 1, 0x88, 0x90, 0x0a, 0, 0x0b, 0x88]);
            assert_eq!(name_length_candidates(w), 0x8080_0000_0080_0080);
            // A false positive (the borrow of the test): only a look more.
            let w = u64::from_le_bytes([0, 0, 0x88, 0x89, 0, 0, 0, 0]);
            assert_eq!(name_length_candidates(w) & 0x0000_0000_0080_0000, 0x80_0000);
            assert_eq!(name_length_candidates(0), 0);
        }

        #[test]
        fn the_field_is_a_literal_without_indexing() {
            assert_eq!(TRACEPARENT_FIELD_PREFIX[0], 0x00);
            assert_eq!(TRACEPARENT_FIELD_PREFIX[1] as usize, b"traceparent".len());
            assert_eq!(&TRACEPARENT_FIELD_PREFIX[2..13], b"traceparent");
            assert_eq!(TRACEPARENT_FIELD_PREFIX[13], 55);
        }
    }
}

/// Values of `SyscallArgs::op`.
pub mod op {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const CONNECT: u8 = 3;
    pub const ACCEPT: u8 = 4;
}

/// A syscall moved bytes over a traced TCP socket. On the wire only the first
/// `DATA_HEADER_LEN + cap_len` bytes of this struct are sent.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DataEvent {
    pub kind: u8,
    pub direction: u8,
    pub role: u8,
    /// 1: plaintext from a TLS library, not the syscall's bytes.
    pub tls: u8,
    pub pid: u32,
    pub tid: u32,
    pub fd: u32,
    pub sock_id: u64,
    pub ts_enter: u64,
    pub ts_exit: u64,
    /// Bytes the syscall moved.
    pub total_len: u64,
    /// Bytes of `payload` that are valid (a prefix of the data).
    pub cap_len: u32,
    /// Bytes of `tail` that are valid (the end of the data, when the prefix
    /// did not reach it).
    pub tail_len: u32,
    pub tuple: ConnTuple,
    /// Set when this syscall started an HTTP/1 request.
    pub ctx: TraceCtx,
    pub tail: [u8; TAIL_LEN],
    pub payload: [u8; MAX_CAPTURE],
}

pub const DATA_HEADER_LEN: usize = core::mem::offset_of!(DataEvent, payload);

/// A traced TCP socket was closed by this process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CloseEvent {
    pub kind: u8,
    pub _pad: [u8; 3],
    pub pid: u32,
    pub tid: u32,
    pub fd: u32,
    pub sock_id: u64,
    pub ts: u64,
}

/// A process called exec (`kind::EXEC`) or exited (`kind::EXIT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcEvent {
    pub kind: u8,
    pub _pad: [u8; 3],
    pub pid: u32,
    pub ts: u64,
    /// The task's command name: the process's name if it is gone before the
    /// agent reads /proc.
    pub comm: [u8; TASK_COMM_LEN],
}

/// Bytes of an executable's file name or path that the kernel matches at
/// exec, its NUL included: longer ones are matched by the agent only.
pub const EXE_NAME_LEN: usize = 128;

/// Key of EXE_NAMES: a selected executable's file name (`nginx`) or full
/// path (`/usr/sbin/nginx`), NUL-padded, as the kernel reads it from the
/// path a process was executed by.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExeName(pub [u8; EXE_NAME_LEN]);

impl ExeName {
    /// None for a name the kernel cannot hold (too long, or with a NUL).
    pub fn new(name: &str) -> Option<Self> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= EXE_NAME_LEN || bytes.contains(&0) {
            return None;
        }
        let mut key = [0u8; EXE_NAME_LEN];
        key[..bytes.len()].copy_from_slice(bytes);
        Some(Self(key))
    }
}

/// Value of EXE_COMMS: the lengths (1..EXE_NAME_LEN) of the selected file
/// names that share a task name, 0 after the last.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExeLens(pub [u8; 8]);

/// Bytes of a task name (`comm`), with its NUL.
pub const TASK_COMM_LEN: usize = 16;

/// Offsets into kernel structs, read by the agent from the kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOffsets {
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_inode: u32,
    pub file_private_data: u32,
    pub inode_mode: u32,
    pub socket_sk: u32,
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub skc_num: u32,
    pub skc_family: u32,
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    pub sk_type: u32,
    pub sk_protocol: u32,
    /// task_struct.thread.fsbase: a Go thread's TLS, where `g` sits at -8.
    pub task_fsbase: u32,
}

/// Where a Go process keeps what the programs read (from the binary's
/// DWARF, or the offsets table of its Go release): one GO_PROCS entry per
/// Go process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoOffsets {
    /// runtime.g.goid
    pub g_goid: u32,
    /// runtime.g.parentGoid (Go 1.21+)
    pub g_parent_goid: u32,
    /// net/http.persistConn.conn (a net.Conn interface: type word, data word)
    pub persist_conn_conn: u32,
    /// net.conn.fd (*netFD; net.conn is embedded first in *net.TCPConn)
    pub conn_fd: u32,
    /// net.netFD.pfd (internal/poll.FD)
    pub netfd_pfd: u32,
    /// internal/poll.FD.Sysfd
    pub fd_sysfd: u32,
    /// net.netFD.net (a string: "tcp", "tcp4", ...), checked before the fd
    /// is trusted
    pub netfd_net: u32,
    /// runtime.g.startpc: the function a goroutine was started with
    pub g_startpc: u32,
    /// Address of runtime.allgs (a []*g), to find the ancestors of a
    /// goroutine whose parent made no syscall; 0 when unknown.
    pub allgs: u64,
    /// grpc-go: internal/transport.Stream.id, .ct (its *http2Client), and
    /// http2Client.conn (a net.Conn interface); ct 0: not a gRPC client.
    pub grpc_stream_id: u32,
    pub grpc_stream_ct: u32,
    pub grpc_client_conn: u32,
    /// crypto/tls.Conn.input (a bytes.Reader: its slice, then its index)
    pub tls_conn_input: u32,
    /// Start functions of the goroutines an HTTP/2 client starts per
    /// request to write it (`go cs.doRequest(...)` in net/http's bundled
    /// http2 and golang.org/x/net/http2): such a writer's whole ancestry is
    /// the caller's. 0: unused slot.
    pub h2_writers: [u64; GO_H2_WRITERS],
}

/// Where one HTTP/2 server (net/http's bundled copy or
/// golang.org/x/net/http2) keeps what its handler probe reads, from the
/// arguments of `(*serverConn).runHandler(rw, req, handler)`. `sc_conn` 0:
/// that server is not in the binary.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoH2Server {
    /// serverConn.conn (a net.Conn interface)
    pub sc_conn: u32,
    /// responseWriter.rws (*responseWriterState)
    pub rw_rws: u32,
    /// responseWriterState.stream (*stream)
    pub rws_stream: u32,
    /// stream.id
    pub stream_id: u32,
    /// The request's Header (a map[string][]string): net/http.Request's,
    /// or net/http/internal/http2.ServerRequest's (Go 1.27+).
    pub req_header: u32,
    /// 1: the request is a `*net/http.Request` whose ServeMux pattern the
    /// agent reads when the stream ends (its address goes in the event).
    pub pattern: u32,
}

/// grpc-go's server side, from the arguments of `(*Server).handleStream(t,
/// stream, ...)`. `stream_ctx` 0: not known.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoGrpcServer {
    /// internal/transport.Stream.id
    pub stream_id: u32,
    /// internal/transport.Stream.ctx (a context.Context interface)
    pub stream_ctx: u32,
    /// internal/transport.Stream.st (a ServerTransport interface whose data
    /// word is `*http2Server`)
    pub stream_st: u32,
    /// internal/transport.http2Server.conn (a net.Conn interface)
    pub server_conn: u32,
    /// context.valueCtx.key and .val (interfaces)
    pub value_key: u32,
    pub value_val: u32,
    pub _pad: [u32; 2],
    /// Address of the runtime type of `metadata.mdIncomingKey`: the key of
    /// the context value that holds the incoming metadata.
    pub md_key_type: u64,
}

/// What the server handler probes of one Go process read (GO_SERVERS),
/// registered when the probes are attached to it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoServerOffsets {
    pub std: GoH2Server,
    pub xnet: GoH2Server,
    pub grpc: GoGrpcServer,
    /// 1: Go 1.24+ maps (swiss tables); 0: buckets (`runtime.hmap`).
    pub swiss_maps: u32,
    pub _pad: u32,
}

/// Slots of `GoOffsets::h2_writers`.
pub const GO_H2_WRITERS: usize = 8;

/// THREAD_CTX keys of goroutines: this bit, the tgid, and the goroutine id
/// (pid_tgid keys of threads never have bit 63 set).
pub const GO_ACTOR_BIT: u64 = 1 << 63;

pub const fn go_actor(tgid: u32, goid: u64) -> u64 {
    GO_ACTOR_BIT | ((tgid as u64 & 0x7f_ffff) << 40) | (goid & ((1 << 40) - 1))
}

/// Global settings, element 0 of the CONFIG array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// The agent's own tgid: never traced.
    pub agent_tgid: u32,
    /// Payload prefix to copy per syscall (at most MAX_CAPTURE).
    pub capture_len: u32,
    /// 1 when a selection was given: only processes in TRACED_PIDS and
    /// connections with a port in TRACED_PORTS are traced.
    pub selective: u8,
    /// 1 when TRACED_PORTS holds ports to select.
    pub select_ports: u8,
    /// 1 when sk_msg writes `traceparent` into outgoing requests.
    pub inject: u8,
    /// 1 when EXE_NAMES holds executables to select at exec.
    pub select_exes: u8,
    /// Offset of `child_pid` in the sched_process_fork tracepoint record.
    pub fork_child_pid_offset: u32,
    /// Offset of `filename` (a `__data_loc` string) in the
    /// sched_process_exec tracepoint record.
    pub exec_filename_offset: u32,
    /// Offset of `group_dead` in the sched_process_exit tracepoint record,
    /// or 0 where the kernel's record has none (older kernels).
    pub exit_group_dead_offset: u32,
    /// Root spans are sampled when the trace id's low 8 bytes, big-endian,
    /// shifted right by one, are below this (the OpenTelemetry ratio rule).
    pub sample_threshold: u64,
    pub offsets: KernelOffsets,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] plain data with no padding holes
    // that would leak uninitialised bytes into maps (padding is explicit).
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::ExeName {}
    unsafe impl aya::Pod for super::ExeLens {}
    unsafe impl aya::Pod for super::SockInfo {}
    unsafe impl aya::Pod for super::ConnTuple {}
    unsafe impl aya::Pod for super::SyscallArgs {}
    unsafe impl aya::Pod for super::TraceCtx {}
    unsafe impl aya::Pod for super::ThreadCtx {}
    unsafe impl aya::Pod for super::ConnSeqKey {}
    unsafe impl aya::Pod for super::GoOffsets {}
    unsafe impl aya::Pod for super::GoServerOffsets {}
}
