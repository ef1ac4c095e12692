//! An HPACK header block with its Huffman-coded strings replaced by their
//! raw octets, before the HPACK decoder sees it. loona-hpack builds its
//! Huffman tables (hash maps of the 257 codes) anew for every coded string:
//! with gRPC, whose encoders Huffman-code every literal, that was half of
//! the agent's CPU. httlib-huffman decodes from static flattened tables.
//!
//! Only the block's layout is read here (RFC 7541 §6: which representation
//! each field is, where its strings are); the tables, indexes and limits
//! stay the HPACK decoder's.
use httlib_huffman::{DecoderSpeed, decode};

/// Why a block could not be rewritten: it is malformed, and the HPACK
/// decoder would have refused it too.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// `block` with every Huffman-coded string decoded and marked raw, into
/// `out` (cleared first). Returns whether any string was coded: when none
/// was, nothing is copied and the block can be decoded as it is.
pub fn decode_strings(block: &[u8], out: &mut Vec<u8>) -> Result<bool, Malformed> {
    out.clear();
    // `block[copied..]` is not in `out` yet: bytes are copied only up to a
    // coded string, once one is found.
    let mut copied = None;
    let mut at = 0;
    while at < block.len() {
        let (prefix, has_strings) = match block[at] {
            b if b & 0x80 != 0 => (7, false),    // indexed field
            b if b & 0xc0 == 0x40 => (6, true),  // literal, incremental indexing
            b if b & 0xe0 == 0x20 => (5, false), // dynamic table size update
            _ => (4, true),                      // literal, without or never indexed
        };
        let (index, len) = integer(&block[at..], prefix)?;
        at += len;
        if !has_strings {
            continue;
        }
        // A new name first when the field does not index one.
        if index == 0 {
            at = string(block, at, out, &mut copied)?;
        }
        at = string(block, at, out, &mut copied)?;
    }
    match copied {
        Some(from) => {
            out.extend_from_slice(&block[from..]);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The string at `block[at..]`: when Huffman-coded, `out` gets the block's
/// bytes not copied yet and the string raw. Returns where the string ends.
fn string(
    block: &[u8],
    at: usize,
    out: &mut Vec<u8>,
    copied: &mut Option<usize>,
) -> Result<usize, Malformed> {
    let buf = &block[at..];
    let first = *buf.first().ok_or(Malformed)?;
    let (len, head) = integer(buf, 7)?;
    let end = head
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(Malformed)?;
    if first & 0x80 == 0 {
        return Ok(at + end);
    }
    if copied.is_none() {
        out.reserve(block.len() + block.len() / 2);
    }
    out.extend_from_slice(&block[copied.unwrap_or(0)..at]);
    *copied = Some(at + end);
    // The raw length goes before the octets, which are decoded in place
    // after room for the longest length prefix they can need.
    let start = out.len();
    out.extend_from_slice(&[0; MAX_INTEGER_LEN]);
    decode(&buf[head..end], out, DecoderSpeed::FourBits).map_err(|_| Malformed)?;
    let n = out.len() - start - MAX_INTEGER_LEN;
    let mut prefix = [0u8; MAX_INTEGER_LEN];
    let width = encode_integer(n, &mut prefix);
    out.copy_within(start + MAX_INTEGER_LEN.., start + width);
    out.truncate(start + width + n);
    out[start..start + width].copy_from_slice(&prefix[..width]);
    Ok(at + end)
}

/// Bytes of the longest string length written here: a 7-bit prefix and
/// four more bytes (lengths under 2^28; a block is far smaller).
const MAX_INTEGER_LEN: usize = 5;

/// The integer with an N-bit prefix at the start of `buf` (RFC 7541
/// §5.1): its value and the bytes it took.
fn integer(buf: &[u8], prefix: u8) -> Result<(usize, usize), Malformed> {
    let mask = (1usize << prefix) - 1;
    let mut value = usize::from(*buf.first().ok_or(Malformed)?) & mask;
    if value < mask {
        return Ok((value, 1));
    }
    let mut shift = 0;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        // Beyond 2^28 nothing in a header block can be meant.
        if shift > 21 {
            return Err(Malformed);
        }
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
        shift += 7;
    }
    Err(Malformed)
}

/// `n` as a string length (7-bit prefix, the Huffman bit clear) into
/// `out`; returns its width.
fn encode_integer(mut n: usize, out: &mut [u8; MAX_INTEGER_LEN]) -> usize {
    if n < 0x7f {
        out[0] = n as u8;
        return 1;
    }
    out[0] = 0x7f;
    n -= 0x7f;
    let mut i = 1;
    while n >= 0x80 && i < MAX_INTEGER_LEN - 1 {
        out[i] = (n as u8 & 0x7f) | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    i + 1
}

#[cfg(test)]
mod tests {
    use loona_hpack::{Decoder, Encoder};

    use super::*;

    fn decoded(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut d = Decoder::new();
        d.decode(block).expect("decodes")
    }

    /// Huffman-coded literals of each kind (names new and indexed, values
    /// short and over 127 bytes), indexed fields and a size update, from
    /// RFC 7541's examples: rewritten, the block decodes to the same fields,
    /// and a block with none coded is left as it is (nothing copied).
    #[test]
    fn rewritten_blocks_decode_to_the_same_fields() {
        // RFC 7541 C.4.1: :method GET, :scheme http, :path /, :authority
        // www.example.com (Huffman), literal with incremental indexing.
        let c41: &[u8] = &[
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let mut out = Vec::new();
        assert_eq!(decode_strings(c41, &mut out), Ok(true));
        assert_eq!(decoded(&out), decoded(c41));
        assert_eq!(decoded(&out)[3].1, b"www.example.com");
        // Raw fields after the coded one are carried over too.
        let mixed = [c41, &[0x10, 0x01, b'k', 0x01, b'v'], &[0x82]].concat();
        assert_eq!(decode_strings(&mixed, &mut out), Ok(true));
        assert_eq!(decoded(&out), decoded(&mixed));
        assert_eq!(decoded(&out).len(), 6);
        // RFC 7541 C.6.1 (a response, Huffman): :status 302, cache-control
        // private, date, location.
        let c61: &[u8] = &[
            0x48, 0x82, 0x64, 0x02, 0x58, 0x85, 0xae, 0xc3, 0x77, 0x1a, 0x4b, 0x61, 0x96, 0xd0,
            0x7a, 0xbe, 0x94, 0x10, 0x54, 0xd4, 0x44, 0xa8, 0x20, 0x05, 0x95, 0x04, 0x0b, 0x81,
            0x66, 0xe0, 0x82, 0xa6, 0x2d, 0x1b, 0xff, 0x6e, 0x91, 0x9d, 0x29, 0xad, 0x17, 0x18,
            0x63, 0xc7, 0x8f, 0x0b, 0x97, 0xc8, 0xe9, 0xae, 0x82, 0xae, 0x43, 0xd3,
        ];
        assert_eq!(decode_strings(c61, &mut out), Ok(true));
        assert_eq!(decoded(&out), decoded(c61));
        // New names, never-indexed and without-indexing literals, a long
        // value (a two-byte length) and a size update, raw.
        let long = "x".repeat(300);
        let mut raw = vec![0x3f, 0xe1, 0x1f]; // size update to 4096
        raw.extend(Encoder::new().encode([
            (&b"traceparent"[..], long.as_bytes()),
            (&b":path"[..], &b"/a"[..]),
        ]));
        raw.extend([0x10, 0x01, b'k', 0x01, b'v']); // never indexed, new name
        raw.extend([0x00, 0x01, b'n', 0x01, b'w']); // without indexing
        assert_eq!(decode_strings(&raw, &mut out), Ok(false));
        assert!(out.is_empty(), "nothing coded: nothing copied");
        assert_eq!(decoded(&raw).len(), 4);
    }

    /// Huffman-coded strings of every length around the length prefix's
    /// boundaries decode to themselves, in fields of each kind.
    #[test]
    fn coded_strings_of_every_length() {
        for n in [0, 1, 5, 126, 127, 128, 200, 1000, 20_000] {
            let value: Vec<u8> = (0..n).map(|i| b"abcxyz/-_ABC019"[i % 15]).collect();
            let mut coded = Vec::new();
            httlib_huffman::encode(&value, &mut coded).expect("encodes");
            for first in [0x40u8, 0x00, 0x10] {
                let mut block = vec![first];
                for s in [&b"my-name"[..], &coded[..]] {
                    let huffman = std::ptr::eq(s, &coded[..]);
                    let mut len = [0u8; MAX_INTEGER_LEN];
                    let w = encode_integer(s.len(), &mut len);
                    if huffman {
                        len[0] |= 0x80;
                    }
                    block.extend_from_slice(&len[..w]);
                    block.extend_from_slice(s);
                }
                let mut out = Vec::new();
                assert_eq!(decode_strings(&block, &mut out), Ok(true), "{n}");
                let fields = decoded(&out);
                assert_eq!(fields, vec![(b"my-name".to_vec(), value.clone())], "{n}");
            }
        }
    }

    /// Truncated blocks, lengths beyond the block, oversized integers and
    /// an EOS code in a string are refused, never read past or panicked on.
    /// (Padding of zero bits is let through: the tracer only reads.)
    #[test]
    fn malformed_blocks_are_refused() {
        let cases: &[&[u8]] = &[
            &[0x41],                                     // literal, no value
            &[0x41, 0x85, 0xf1],                         // coded value cut short
            &[0x40, 0x05, b'a'],                         // name cut short
            &[0x7f],                                     // index continuation missing
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // integer too large
            &[0x41, 0x84, 0xff, 0xff, 0xff, 0xff],       // EOS in the string
        ];
        for block in cases {
            let mut out = Vec::new();
            assert_eq!(
                decode_strings(block, &mut out),
                Err(Malformed),
                "{block:x?}"
            );
        }
        // Every prefix of a sound block is refused or decodes: no panic.
        let sound: &[u8] = &[
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        for n in 0..sound.len() {
            let _ = decode_strings(&sound[..n], &mut Vec::new());
        }
    }
}
