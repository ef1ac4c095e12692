//! Header blocks → the few header fields the tracer keeps, through one HPACK
//! decoder per direction (each direction has its own compression state).
use loona_hpack::Decoder;

use super::error::Http2Error;

/// Request fields kept: what names the call and carries trace context.
/// Never credentials (authorization, cookie) or other values.
pub const KEPT_REQUEST: &[&str] = &[
    ":method",
    ":scheme",
    ":authority",
    ":path",
    "content-type",
    "user-agent",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// Response fields (headers and trailers) kept.
pub const KEPT_RESPONSE: &[&str] = &[":status", "content-type", "grpc-status", "grpc-message"];

/// Longer values are cut here (at a character boundary), so a peer cannot
/// make the agent hold large strings.
pub const MAX_VALUE_LEN: usize = 2048;

/// The most the buffer for rewritten blocks keeps between blocks; a larger
/// block's is freed after it.
const MAX_KEPT_BUFFER: usize = 16 * 1024;

/// The HPACK dynamic table size before any SETTINGS (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Header fields in order, names lowercase (the kept table's own), each
/// kept name at most once.
pub type Fields = Vec<(&'static str, String)>;

/// The decoder for the header blocks one direction carries.
pub struct HeaderDecoder {
    hpack: Decoder<'static>,
    /// The largest table a peer may select, whatever it announces.
    cap: usize,
    /// The block being decoded, its Huffman-coded strings made raw
    /// (`huffman::decode_strings`); kept for the next block.
    raw: Vec<u8>,
}

impl std::fmt::Debug for HeaderDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecoder")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl HeaderDecoder {
    pub fn new(cap: usize) -> Self {
        let mut hpack = Decoder::new();
        hpack.set_max_allowed_table_size(DEFAULT_TABLE_SIZE.min(cap));
        Self {
            hpack,
            cap,
            raw: Vec::new(),
        }
    }

    /// The receiver of this direction announced SETTINGS_HEADER_TABLE_SIZE
    /// (`None`: a SETTINGS frame was not captured, so it may have): the
    /// sender's table size updates may go up to it. Beyond `cap` they fail
    /// to decode, which bounds the table's memory.
    pub fn allow_table_size(&mut self, size: Option<u32>) {
        let size = size.map_or(self.cap, |s| (s as usize).min(self.cap));
        self.hpack.set_max_allowed_table_size(size);
    }

    /// Decodes a whole header block (the dynamic table changes even when
    /// nothing is kept) and returns the fields named in `kept`.
    pub fn decode(&mut self, block: &[u8], kept: &[&'static str]) -> Result<Fields, Http2Error> {
        let mut fields = Fields::new();
        let coded = super::huffman::decode_strings(block, &mut self.raw)
            .map_err(|_| Http2Error::HeaderBlock)?;
        let block = if coded { &self.raw[..] } else { block };
        self.hpack
            .decode_with_cb(block, |name, value| keep(&mut fields, kept, &name, &value))
            .map_err(|_| Http2Error::HeaderBlock)?;
        if self.raw.capacity() > MAX_KEPT_BUFFER {
            self.raw = Vec::new();
        }
        Ok(fields)
    }
}

fn keep(fields: &mut Fields, kept: &[&'static str], name: &[u8], value: &[u8]) {
    let Some(&name) = kept
        .iter()
        .find(|k| name.eq_ignore_ascii_case(k.as_bytes()))
    else {
        return;
    };
    if fields.iter().any(|(n, _)| *n == name) {
        return;
    }
    let value = &value[..value.len().min(MAX_VALUE_LEN)];
    let value = String::from_utf8_lossy(value);
    fields.push((name, value.trim().to_owned()));
}

/// The first value of `name` (lowercase) in `fields`.
pub fn get<'a>(fields: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use loona_hpack::Encoder;

    use super::*;

    #[test]
    fn keeps_only_whitelisted_fields_once() {
        let mut enc = Encoder::new();
        let block = enc.encode([
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/a"),
            (b"authorization", b"Bearer secret"),
            (b"cookie", b"s=1"),
            (b"user-agent", b" ua/1 "),
            (b"user-agent", b"second"),
        ]);
        let mut dec = HeaderDecoder::new(65_536);
        let fields = dec.decode(&block, KEPT_REQUEST).unwrap();
        assert_eq!(
            fields,
            vec![
                (":method", "GET".to_owned()),
                (":path", "/a".to_owned()),
                ("user-agent", "ua/1".to_owned()),
            ]
        );
        assert_eq!(get(&fields, ":path"), Some("/a"));
    }

    /// The field the kernel appends to a client's HEADERS frame
    /// (`tracer_common::http2`) decodes as `traceparent` and leaves the
    /// dynamic table alone: the server's decoder, which sees it, and the
    /// client's encoder, which never knew, stay in step.
    #[test]
    fn the_kernel_field_decodes_without_indexing() {
        use tracer_common::http2::{TRACEPARENT_FIELD_LEN, TRACEPARENT_FIELD_PREFIX};
        const VALUE: &[u8] = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut enc = Encoder::new();
        let headers = [(&b":path"[..], &b"/x"[..]), (b"user-agent", b"ua/1")];
        let grown = |block: Vec<u8>| {
            let mut block = block;
            block.extend_from_slice(&TRACEPARENT_FIELD_PREFIX);
            block.extend_from_slice(VALUE);
            block
        };
        let first = enc.encode(headers);
        let second = enc.encode(headers);
        let (first, second) = (grown(first), grown(second));
        assert_eq!(
            VALUE.len() + TRACEPARENT_FIELD_PREFIX.len(),
            TRACEPARENT_FIELD_LEN as usize
        );
        let mut dec = HeaderDecoder::new(65_536);
        let want = dec_fields(&[
            (":path", "/x"),
            ("user-agent", "ua/1"),
            ("traceparent", std::str::from_utf8(VALUE).unwrap()),
        ]);
        assert_eq!(dec.decode(&first, KEPT_REQUEST).unwrap(), want);
        // The encoder's later references still mean the same fields.
        assert_eq!(dec.decode(&second, KEPT_REQUEST).unwrap(), want);
        // An app's own traceparent comes first and is the one kept.
        let own = enc.encode([(&b"traceparent"[..], &b"00-app"[..])]);
        assert_eq!(
            dec.decode(&grown(own), KEPT_REQUEST).unwrap(),
            dec_fields(&[("traceparent", "00-app")])
        );
    }

    /// The Huffman-coded name the kernel looks for (an app's own
    /// `traceparent`, `tracer_common::http2::TRACEPARENT_HUFFMAN`) decodes
    /// as `traceparent` with this agent's HPACK decoder too; and the block
    /// an encoder makes for an app's first own `traceparent` is found.
    #[test]
    fn the_kernel_finds_an_apps_own_traceparent_name() {
        use tracer_common::http2::{TRACEPARENT_HUFFMAN, block_names_traceparent};
        let mut block = vec![0x40, 0x88];
        block.extend_from_slice(&TRACEPARENT_HUFFMAN);
        block.extend_from_slice(&[0x02, b'0', b'0']);
        let mut dec = HeaderDecoder::new(65_536);
        assert_eq!(
            dec.decode(&block, KEPT_REQUEST).unwrap(),
            dec_fields(&[("traceparent", "00")])
        );
        assert!(block_names_traceparent(&block));
        let mut enc = Encoder::new();
        let own = [(&b":path"[..], &b"/x"[..]), (b"traceparent", b"00-app")];
        assert!(block_names_traceparent(&enc.encode(own)));
        // Later blocks name it by its index in the dynamic table: not seen
        // (hence the connection is marked at the first).
        let again = enc.encode(own);
        assert!(!block_names_traceparent(&again));
    }

    #[test]
    fn dynamic_table_carries_across_blocks() {
        let mut enc = Encoder::new();
        let mut dec = HeaderDecoder::new(65_536);
        let headers = [(&b"traceparent"[..], &b"00-abc"[..]), (b":path", b"/x")];
        let first = enc.encode(headers);
        let second = enc.encode(headers);
        assert!(second.len() < first.len(), "indexed the second time");
        assert_eq!(dec.decode(&first, KEPT_REQUEST).unwrap().len(), 2);
        assert_eq!(
            dec.decode(&second, KEPT_REQUEST).unwrap(),
            dec_fields(&[("traceparent", "00-abc"), (":path", "/x")])
        );
        // A fresh decoder cannot read the second block.
        let mut fresh = HeaderDecoder::new(65_536);
        assert!(fresh.decode(&second, KEPT_REQUEST).is_err());
    }

    #[test]
    fn table_size_updates_are_bounded() {
        // A size update to 8192 (001xxxxx, 5-bit prefix integer) then :method GET.
        let block = [0x3f, 0xe1, 0x3f, 0x82];
        let mut dec = HeaderDecoder::new(65_536);
        assert!(dec.decode(&block, KEPT_REQUEST).is_err(), "over 4096");
        let mut dec = HeaderDecoder::new(65_536);
        dec.allow_table_size(Some(8192));
        assert_eq!(dec.decode(&block, KEPT_REQUEST).unwrap().len(), 1);
        let mut dec = HeaderDecoder::new(4096);
        dec.allow_table_size(Some(1 << 20));
        assert!(dec.decode(&block, KEPT_REQUEST).is_err(), "over the cap");
    }

    fn dec_fields(f: &[(&'static str, &str)]) -> Fields {
        f.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    }
}
