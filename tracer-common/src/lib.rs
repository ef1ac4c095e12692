//! Structs and names shared by the kernel programs (`tracer-ebpf`) and the
//! agent (`tracer`). Everything here is `#[repr(C)]` plain data: the kernel
//! writes it into maps and the ring buffer, the agent reads it back as bytes.
#![no_std]

/// Largest payload prefix one data event can carry. A power of two so the
/// kernel side can bound lengths with a mask the verifier understands.
pub const MAX_CAPTURE: usize = 8192;
/// Default payload prefix copied per syscall.
pub const DEFAULT_CAPTURE: u32 = 1024;
/// Bytes copied from the end of a syscall's buffer when the prefix did not
/// reach it: enough to see the `0\r\n\r\n` that ends a chunked body.
pub const TAIL_LEN: usize = 8;
/// iovec entries inspected per readv/writev/recvmsg/sendmsg.
pub const MAX_IOV: u32 = 8;

pub mod maps {
    pub const EVENTS: &str = "EVENTS";
    pub const CONFIG: &str = "CONFIG";
    pub const TRACED_PIDS: &str = "TRACED_PIDS";
    pub const TRACED_PORTS: &str = "TRACED_PORTS";
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
}

/// Uprobe programs on Go functions, by the function they are attached to.
pub mod go_probes {
    /// `net/http.(*persistConn).roundTrip`: runs in the goroutine making an
    /// HTTP/1 client call, which hands the request to the connection's
    /// writer goroutine; the only uprobe hit of a Go client call.
    pub const HTTP_ROUND_TRIP: (&str, &str) =
        ("go_http_round_trip", "net/http.(*persistConn).roundTrip");
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
    pub const COUNT: u32 = 5;
    /// Program names, by slot.
    pub const PROGRAMS: [&str; COUNT as usize] = [
        "client_context",
        "server_context",
        "client_decide",
        "server_decide",
        "classify",
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
    /// Outgoing requests left alone because they carried a traceparent.
    pub const INJECT_SKIPPED_HAS_HEADER: u32 = 6;
    /// Outgoing requests not injected: the request line did not end in the
    /// first send, or the kernel refused to grow the message.
    pub const INJECT_FAILED: u32 = 7;
    /// A Go process whose current goroutine could not be read (no `g` at
    /// fsbase-8): its syscalls fall back to per-thread context.
    pub const GO_NO_GOROUTINE: u32 = 8;
    /// Go client calls whose connection could not be read at the uprobe.
    pub const GO_HANDOFF_FAILED: u32 = 9;
    pub const COUNT: u32 = 10;
}

/// Event kinds: the first byte of every ring-buffer record.
pub mod kind {
    pub const DATA: u8 = 1;
    pub const CLOSE: u8 = 2;
    pub const EXEC: u8 = 3;
    pub const EXIT: u8 = 4;
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
#[repr(C)]
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
    pub _pad: [u8; 1],
    /// Requests started on this socket since the agent saw it: pairs the
    /// client's and the server's view of a request on one host.
    pub request_seq: u32,
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
}

/// The trace context the kernel chose for one request, as seen by one
/// process: the span it will become, and that span's parent.
#[repr(C)]
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
    pub ts_enter: u64,
    /// Buffer, or iovec array when `iovcnt` is non-zero.
    pub buf: u64,
    pub fd: u32,
    pub iovcnt: u32,
    pub op: u8,
    pub _pad: [u8; 7],
    /// For a write that starts a client request: the context chosen for it
    /// (sk_msg reads it to write the header).
    pub ctx: TraceCtx,
    /// Offset just past the request line's CRLF, where sk_msg inserts the
    /// `traceparent` line; 0 when it must not (the request has its own).
    pub inject_at: u32,
    /// Offset of the value of a `traceparent` the process forwarded from
    /// the request it serves: sk_msg overwrites it in place. 0: none.
    pub overwrite_at: u32,
}

/// Length of the line sk_msg inserts:
/// `traceparent: 00-<32 hex>-<16 hex>-<2 hex>\r\n`.
pub const TRACEPARENT_LINE_LEN: usize = 70;

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
    pub _pad: u8,
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
    pub comm: [u8; 16],
}

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
    pub _pad: u32,
    /// Address of runtime.allgs (a []*g), to find the ancestors of a
    /// goroutine whose parent made no syscall; 0 when unknown.
    pub allgs: u64,
}

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
    pub _pad: u8,
    /// Offset of `child_pid` in the sched_process_fork tracepoint record.
    pub fork_child_pid_offset: u32,
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
    unsafe impl aya::Pod for super::SockInfo {}
    unsafe impl aya::Pod for super::ConnTuple {}
    unsafe impl aya::Pod for super::SyscallArgs {}
    unsafe impl aya::Pod for super::TraceCtx {}
    unsafe impl aya::Pod for super::ThreadCtx {}
    unsafe impl aya::Pod for super::ConnSeqKey {}
    unsafe impl aya::Pod for super::GoOffsets {}
}
