//! HTTP/2 connection parser (pure: bytes in, exchanges out), for cleartext
//! HTTP/2 (h2c) seen through the syscall path.
//!
//! # Input
//! The same [`Chunk`]s as the HTTP/1 parser: a captured prefix, a count of
//! uncaptured bytes, a captured tail. Frames are followed across chunks and
//! through uncaptured payload bytes by their length; DATA is counted, never
//! kept. Header blocks (HEADERS/PUSH_PROMISE + CONTINUATION) are decoded
//! with one HPACK decoder per direction, whose dynamic table lives as long
//! as the connection, bounded by the receiver's SETTINGS_HEADER_TABLE_SIZE
//! (and [`Limits::max_table_size`]).
//!
//! # Roles
//! The client sends the connection preface, so the direction that starts
//! with it carries requests. Servers may send their own preface, a
//! SETTINGS frame, before they read the client's: a connection may start
//! with it ([`Http2Connection::server_first`]) and then the client preface
//! must follow. A connection whose start was not seen cannot
//! be decoded (the HPACK state of both directions is unknown): it is
//! recognised by [`looks_like_frames`], reported once as
//! [`Http2Error::MidConnection`] and ignored.
//!
//! # Losing the thread
//! A frame header in uncaptured bytes ([`Http2Error::Desync`]), a header
//! block not captured in full, too large or undecodable
//! ([`Http2Error::HeaderBlock`]) and bytes no peer would send
//! ([`Http2Error::Malformed`]) end the parsing of the connection: a frame
//! boundary could be guessed again later, but the header compression state
//! could not, and every later header block depends on it. Streams open at
//! that point are reported as [`Http2Error::StreamAbandoned`].
//!
//! # Timestamps
//! As in HTTP/1: bytes read are seen at the read's return, bytes written at
//! the write's entry. A stream starts with the chunk holding its first
//! HEADERS frame and ends with the chunk holding the frame that ended it.
mod connection;
mod error;
pub mod frame;
mod headers;
mod huffman;
mod message;
mod reader;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;

pub use connection::{Http2Connection, looks_like_frames, looks_like_server_preface};
pub use error::Http2Error;
pub use headers::{KEPT_REQUEST, KEPT_RESPONSE};
pub use message::{Exchange, Outcome, Request, Response, Started};

pub use super::http1::{Chunk, Direction};

/// A chunk's syscall entry and exit, ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    pub start: u64,
    pub end: u64,
}

impl Times {
    /// When the process saw the chunk's first byte: on return from a read,
    /// on entry to a write.
    #[must_use]
    pub const fn first_byte(self, dir: Direction) -> u64 {
        match dir {
            Direction::Ingress => self.end,
            Direction::Egress => self.start,
        }
    }
}

/// Bounds on what one connection may hold, so hostile peers cannot grow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams with a request and no end yet.
    pub max_streams: usize,
    /// Bytes of one header block (all its frames).
    pub max_header_block: usize,
    /// The largest HPACK dynamic table followed, whatever a peer announces.
    pub max_table_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: 1000,
            max_header_block: 64 * 1024,
            max_table_size: 64 * 1024,
        }
    }
}

/// What feeding the parser produced; the caller drains every list.
#[derive(Debug, Default)]
pub struct Output {
    /// Streams whose request headers were read, in order. Each later ends
    /// in `exchanges` (after its start: a caller that drains `started`
    /// first sees every stream start before it ends), or is counted in
    /// `errors` as abandoned.
    pub started: Vec<Started>,
    /// Streams finished, in the order they finished.
    pub exchanges: Vec<Exchange>,
    /// What was lost, one entry each, for the caller to count.
    pub errors: Vec<Http2Error>,
}
