//! Ring-buffer records → owned events. Pure: bytes in, values out.
use tracer_common::{
    CloseEvent, ConnTuple, DATA_HEADER_LEN, DataEvent, H2_HEADS_HEADER_LEN, H2Head, H2HeadsEvent,
    ProcEvent, TAIL_LEN, TraceCtx, direction, kind, tls_args,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("record of kind {kind} is {len} bytes, shorter than its header")]
    Short { kind: u8, len: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("data record claims {claimed} payload bytes but carries {present}")]
    BadLength { claimed: usize, present: usize },
}

/// A data event's fixed part; the payload is borrowed from the record.
#[derive(Clone, Copy, Debug)]
pub struct DataHeader {
    pub ingress: bool,
    pub pid: u32,
    pub tid: u32,
    pub fd: u32,
    pub sock_id: u64,
    pub ts_enter: u64,
    pub ts_exit: u64,
    pub total_len: u64,
    pub tuple: ConnTuple,
    /// The trace context the kernel chose, when this syscall started a
    /// request (`ctx.valid`).
    pub ctx: TraceCtx,
    /// Plaintext from a TLS library (the socket carries TLS).
    pub tls: bool,
}

#[derive(Debug)]
pub enum Event<'a> {
    Data {
        header: DataHeader,
        payload: &'a [u8],
        tail: &'a [u8],
    },
    Close {
        pid: u32,
        fd: u32,
        sock_id: u64,
        ts: u64,
    },
    Exec {
        pid: u32,
        /// Command name from the kernel, NUL-padded.
        comm: [u8; tracer_common::TASK_COMM_LEN],
    },
    Exit {
        pid: u32,
    },
    /// A ClientHello went by on the socket `fd`: its TLS starts, and its
    /// plaintext should come from the process's TLS library.
    TlsHello {
        pid: u32,
        fd: u32,
        sock_id: u64,
    },
    /// The HTTP/2 requests a write on `fd` starts, with their contexts
    /// (before that write's data event).
    Http2Heads {
        pid: u32,
        fd: u32,
        sock_id: u64,
        /// (stream id, context) of each.
        heads: Vec<(u32, TraceCtx)>,
    },
    /// A Go server's handler for stream `stream_id` of the connection on
    /// `fd` started, and the kernel chose the context of the stream's
    /// server span (the handler's calls are its children).
    GoServerStream {
        pid: u32,
        fd: u32,
        sock_id: u64,
        stream_id: u32,
        ctx: TraceCtx,
        /// The handler's `*http.Request` (0: none), for its route.
        request: u64,
    },
}

/// The header fields of a data record.
struct Header {
    direction: u8,
    pid: u32,
    tid: u32,
    fd: u32,
    sock_id: u64,
    ts_enter: u64,
    ts_exit: u64,
    total_len: u64,
    cap_len: u32,
    tail_len: u32,
    tuple: ConnTuple,
    ctx: TraceCtx,
    tls: u8,
}

/// Reads a `T` from the start of `bytes` (which may be unaligned).
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>())
        // SAFETY: length checked; T is plain #[repr(C)] data, read unaligned.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn decode(record: &[u8]) -> Result<Event<'_>, DecodeError> {
    let &k = record.first().ok_or(DecodeError::Empty)?;
    let short = || DecodeError::Short {
        kind: k,
        len: record.len(),
    };
    match k {
        kind::DATA => {
            if record.len() < DATA_HEADER_LEN {
                return Err(short());
            }
            // The record holds only the header and `cap_len` payload bytes:
            // copy the header part into an uninitialised event and read only
            // its header fields (zeroing the 8 KiB payload per event cost
            // more than the rest of the decoding).
            let mut raw = std::mem::MaybeUninit::<DataEvent>::uninit();
            // SAFETY: DATA_HEADER_LEN <= size_of::<DataEvent>().
            unsafe {
                std::ptr::copy_nonoverlapping(
                    record.as_ptr(),
                    raw.as_mut_ptr().cast::<u8>(),
                    DATA_HEADER_LEN,
                );
            }
            let p = raw.as_ptr();
            macro_rules! field {
                ($f:ident) => {
                    // SAFETY: every field before `payload` lies within the
                    // DATA_HEADER_LEN bytes just copied; all are plain data.
                    unsafe { std::ptr::addr_of!((*p).$f).read() }
                };
            }
            let ev = Header {
                direction: field!(direction),
                pid: field!(pid),
                tid: field!(tid),
                fd: field!(fd),
                sock_id: field!(sock_id),
                ts_enter: field!(ts_enter),
                ts_exit: field!(ts_exit),
                total_len: field!(total_len),
                cap_len: field!(cap_len),
                tail_len: field!(tail_len),
                tuple: field!(tuple),
                ctx: field!(ctx),
                tls: field!(tls),
            };
            if ev.tls == tls_args::HELLO {
                return Ok(Event::TlsHello {
                    pid: ev.pid,
                    fd: ev.fd,
                    sock_id: ev.sock_id,
                });
            }
            let claimed = ev.cap_len as usize;
            let present = record.len() - DATA_HEADER_LEN;
            if claimed > present || ev.tail_len as usize > TAIL_LEN {
                return Err(DecodeError::BadLength { claimed, present });
            }
            let tail_start = std::mem::offset_of!(DataEvent, tail);
            Ok(Event::Data {
                header: DataHeader {
                    ingress: ev.direction == direction::INGRESS,
                    pid: ev.pid,
                    tid: ev.tid,
                    fd: ev.fd,
                    sock_id: ev.sock_id,
                    ts_enter: ev.ts_enter,
                    ts_exit: ev.ts_exit,
                    total_len: ev.total_len,
                    tuple: ev.tuple,
                    ctx: ev.ctx,
                    tls: ev.tls != 0,
                },
                payload: &record[DATA_HEADER_LEN..DATA_HEADER_LEN + claimed],
                tail: &record[tail_start..tail_start + ev.tail_len as usize],
            })
        }
        kind::CLOSE => {
            let ev: CloseEvent = read(record).ok_or_else(short)?;
            Ok(Event::Close {
                pid: ev.pid,
                fd: ev.fd,
                sock_id: ev.sock_id,
                ts: ev.ts,
            })
        }
        kind::EXEC | kind::EXIT => {
            let ev: ProcEvent = read(record).ok_or_else(short)?;
            Ok(if k == kind::EXEC {
                Event::Exec {
                    pid: ev.pid,
                    comm: ev.comm,
                }
            } else {
                Event::Exit { pid: ev.pid }
            })
        }
        kind::H2_HEADS => {
            if record.len() < H2_HEADS_HEADER_LEN {
                return Err(short());
            }
            // Only the heads in use were sent.
            let mut ev = H2HeadsEvent::default();
            let n = record.len().min(size_of::<H2HeadsEvent>());
            // SAFETY: at most size_of::<H2HeadsEvent>() bytes into a plain
            // #[repr(C)] value.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    record.as_ptr(),
                    (&mut ev as *mut H2HeadsEvent).cast::<u8>(),
                    n,
                );
            }
            let count = ev.count as usize;
            let present = (record.len() - H2_HEADS_HEADER_LEN) / size_of::<H2Head>();
            if count > present.min(ev.heads.len()) {
                return Err(DecodeError::BadLength {
                    claimed: count,
                    present,
                });
            }
            if count == 1 && ev.heads[0].server != 0 {
                return Ok(Event::GoServerStream {
                    pid: ev.pid,
                    fd: ev.fd,
                    sock_id: ev.sock_id,
                    stream_id: ev.heads[0].stream_id,
                    ctx: ev.heads[0].ctx,
                    request: ev.heads[0].request,
                });
            }
            Ok(Event::Http2Heads {
                pid: ev.pid,
                fd: ev.fd,
                sock_id: ev.sock_id,
                heads: ev.heads[..count]
                    .iter()
                    .map(|h| (h.stream_id, h.ctx))
                    .collect(),
            })
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_record(payload: &[u8], cap_len: u32) -> Vec<u8> {
        let mut ev: DataEvent = unsafe { std::mem::zeroed() };
        ev.kind = kind::DATA;
        ev.direction = direction::EGRESS;
        ev.pid = 7;
        ev.fd = 3;
        ev.total_len = 100;
        ev.cap_len = cap_len;
        ev.tail_len = 2;
        ev.tail[..2].copy_from_slice(b"\r\n");
        let bytes = unsafe {
            std::slice::from_raw_parts((&ev as *const DataEvent).cast::<u8>(), DATA_HEADER_LEN)
        };
        let mut v = bytes.to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_data_with_payload_and_tail() {
        let rec = data_record(b"GET / HTTP/1.1\r\n", 16);
        match decode(&rec).unwrap() {
            Event::Data {
                header,
                payload,
                tail,
            } => {
                assert!(!header.ingress);
                assert_eq!((header.pid, header.fd, header.total_len), (7, 3, 100));
                assert_eq!(payload, b"GET / HTTP/1.1\r\n");
                assert_eq!(tail, b"\r\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hello_is_word_of_tls_not_data() {
        let mut rec = data_record(b"", 0);
        rec[std::mem::offset_of!(DataEvent, tls)] = tls_args::HELLO;
        match decode(&rec).unwrap() {
            Event::TlsHello { pid, fd, .. } => assert_eq!((pid, fd), (7, 3)),
            other => panic!("{other:?}"),
        }
    }

    /// What the kernel sends: the header and the heads in use only.
    fn heads_record(count: u32, sent: usize) -> Vec<u8> {
        let mut ev = H2HeadsEvent {
            kind: kind::H2_HEADS,
            pid: 7,
            fd: 5,
            count,
            sock_id: 99,
            ..H2HeadsEvent::default()
        };
        for (i, h) in ev.heads.iter_mut().enumerate() {
            h.stream_id = 2 * i as u32 + 1;
            h.ctx.valid = 1;
            h.ctx.span_id = [i as u8; 8];
        }
        let len = H2_HEADS_HEADER_LEN + sent * size_of::<H2Head>();
        // SAFETY: plain #[repr(C)] data, `len` within it.
        unsafe { std::slice::from_raw_parts((&ev as *const H2HeadsEvent).cast::<u8>(), len) }
            .to_vec()
    }

    #[test]
    fn decodes_http2_heads_of_any_count() {
        for n in [0, 1, 3, tracer_common::http2::MAX_HEADS] {
            match decode(&heads_record(n as u32, n)).unwrap() {
                Event::Http2Heads {
                    pid,
                    fd,
                    sock_id,
                    heads,
                } => {
                    assert_eq!((pid, fd, sock_id, heads.len()), (7, 5, 99, n));
                    for (i, (stream, ctx)) in heads.iter().enumerate() {
                        assert_eq!((*stream, ctx.span_id), (2 * i as u32 + 1, [i as u8; 8]));
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        // Claims more heads than it carries, or than there can be.
        assert!(matches!(
            decode(&heads_record(3, 2)),
            Err(DecodeError::BadLength { .. })
        ));
        let max = tracer_common::http2::MAX_HEADS;
        assert!(matches!(
            decode(&heads_record(max as u32 + 1, max)),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            decode(&[kind::H2_HEADS, 0, 0]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn decodes_a_go_server_stream_context() {
        let mut rec = heads_record(1, 1);
        let server_at = H2_HEADS_HEADER_LEN + std::mem::offset_of!(H2Head, server);
        rec[server_at] = 1;
        match decode(&rec).unwrap() {
            Event::GoServerStream {
                pid,
                fd,
                sock_id,
                stream_id,
                ctx,
                request,
            } => assert_eq!(
                (pid, fd, sock_id, stream_id, ctx.span_id, request),
                (7, 5, 99, 1, [0; 8], 0)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_truncated_and_unknown_records() {
        assert_eq!(decode(&[]).unwrap_err(), DecodeError::Empty);
        assert!(matches!(
            decode(&[kind::DATA, 0, 0]),
            Err(DecodeError::Short { .. })
        ));
        let rec = data_record(b"abc", 10);
        assert!(matches!(decode(&rec), Err(DecodeError::BadLength { .. })));
        assert_eq!(decode(&[99; 40]).unwrap_err(), DecodeError::UnknownKind(99));
        assert!(matches!(
            decode(&[kind::CLOSE, 0]),
            Err(DecodeError::Short { .. })
        ));
    }
}
