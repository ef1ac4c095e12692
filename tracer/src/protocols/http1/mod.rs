//! HTTP/1.x connection parser (pure: bytes in, exchanges out).
//!
//! # Input
//! The kernel reports every read or write on a TCP connection as a [`Chunk`]:
//! the first bytes the syscall moved (the captured prefix), how many bytes it
//! moved in total, and, when the prefix stopped short, up to the last 8 bytes
//! it moved (the tail). A chunk is therefore known bytes, then a run of bytes
//! known only by their count, then a few known bytes again. Bodies are
//! followed through the unknown run by counting; a message head that falls
//! into it is lost ([`ParseError::HeadTruncated`]) and that direction
//! resynchronises at the start of a later chunk that starts like a message.
//!
//! # Roles
//! The parser does not know whether the traced process is the client or the
//! server: the first direction whose bytes start with a request line (or the
//! other one, if the first start seen is a status line) becomes the request
//! direction for the life of the connection. A connection whose first bytes
//! are not HTTP/1 is marked not-HTTP and ignored from then on.
//!
//! # Timestamps
//! The process sees bytes it reads when the read returns (`ts_end`) and starts
//! handing over bytes it writes when the write begins (`ts_start`); either way
//! they are all seen by `ts_end`. So a message *starts* at its first chunk's
//! `ts_end` when read ([`Direction::Ingress`]) or `ts_start` when written
//! ([`Direction::Egress`]), and *ends* at its last chunk's `ts_end`. The last
//! chunk is the one holding the message's last byte (for a body delimited by
//! the connection closing, the last chunk before the close).
//!
//! # Fallbacks when framing is lost
//! A chunked body whose chunk-size lines fall into uncaptured bytes cannot be
//! followed; it is then considered finished when a chunk's known end bytes
//! are a last-chunk without trailers (`0\r\n\r\n`), when the next message
//! starts at the start of a chunk in the same direction, when a message head
//! completes in the other direction, or at close. Its body size is then the
//! wire size (chunk framing included) from the point it was lost.
mod body;
mod connection;
mod error;
mod framing;
mod head;
mod message;
mod start_line;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod tests;

pub use connection::Http1Connection;
pub use error::ParseError;
pub use message::{Exchange, Outcome, RequestHead, ResponseHead, Version};

/// Which way bytes moved, seen from the traced process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Bytes the process read.
    Ingress,
    /// Bytes the process wrote.
    Egress,
}

impl Direction {
    /// The other direction of the same connection.
    #[must_use]
    pub const fn opposite(self) -> Self {
        match self {
            Self::Ingress => Self::Egress,
            Self::Egress => Self::Ingress,
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Ingress => 0,
            Self::Egress => 1,
        }
    }
}

/// What one syscall moved on the connection.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The captured prefix of the moved bytes.
    pub data: &'a [u8],
    /// How many bytes the syscall moved; `total_len - data.len()` of them
    /// were not captured.
    pub total_len: u64,
    /// Up to the last 8 bytes moved, when `data` did not reach the end (may
    /// be empty; may overlap `data` when fewer than 8 bytes were missed).
    pub tail: &'a [u8],
    /// Syscall entry, ns.
    pub ts_start: u64,
    /// Syscall exit, ns.
    pub ts_end: u64,
}

impl<'a> Chunk<'a> {
    /// A chunk captured in full.
    #[must_use]
    pub fn complete(data: &'a [u8], ts_start: u64, ts_end: u64) -> Self {
        Self {
            data,
            total_len: data.len() as u64,
            tail: &[],
            ts_start,
            ts_end,
        }
    }
}

/// Bounds on what one connection may hold, so hostile peers cannot grow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests awaiting their response (pipelining depth).
    pub max_pending: usize,
    /// Bytes of one message head (start line and header fields).
    pub max_head_bytes: usize,
    /// Header fields in one message head.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pending: 64,
            max_head_bytes: 16 * 1024,
            max_headers: head::MAX_HEADERS,
        }
    }
}

/// What feeding the parser produced. Both lists only grow: the caller drains
/// them (a single chunk can complete several exchanges and hit several errors,
/// and the parser carries on after each error).
#[derive(Debug, Default)]
pub struct Output {
    /// Exchanges finished, in the order their responses finished.
    pub exchanges: Vec<Exchange>,
    /// Messages lost or dropped, one entry each, for the caller to count.
    pub errors: Vec<ParseError>,
}
