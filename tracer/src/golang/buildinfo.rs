//! Go build info (what `go version -m` prints): the Go toolchain that built
//! an executable, its main package and its module dependencies.
//!
//! The Go linker writes a blob into every binary, in the `.go.buildinfo`
//! section (or, when the section table was stripped, 16-byte aligned near
//! the start of the first writable PT_LOAD segment):
//!
//! ```text
//! 0   "\xff Go buildinf:"  14-byte magic
//! 14  pointer size
//! 15  flags: 0x2 = strings inline (Go 1.18+), 0x1 = big endian
//! 16  padding (before Go 1.18: pointers to the two strings)
//! 32  uvarint length + Go version ("go1.25.5")
//!     uvarint length + modinfo, wrapped in two 16-byte sentinels
//! ```
//!
//! Reading it costs the ELF header, the section headers and their name
//! table, and the blob itself (a few KiB): never the whole file, which is
//! commonly tens of MiB for Go.
use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use object::{
    Endianness, FileKind, ReadCache,
    elf::{self, FileHeader32, FileHeader64},
    read::elf::{FileHeader, ProgramHeader, SectionHeader},
};

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAGS_OFFSET: usize = 15;
const FLAG_INLINE_STRINGS: u8 = 0x2;
/// The blob's address is aligned to this (cmd/link), which keeps the
/// segment search from matching the magic inside arbitrary data.
const ALIGN: u64 = 16;
/// Length of each sentinel around the modinfo string.
const SENTINEL_LEN: usize = 16;
/// Real blobs are a few KiB (a module list of hundreds of dependencies
/// stays well under 100 KiB); anything larger is a corrupt or hostile file,
/// and this bounds what we allocate for it.
const MAX_BLOB: u64 = 4 << 20;
/// Read size while searching a segment for the magic: the linker puts the
/// blob at the start of the data segment, so the first read finds it.
const SEARCH_CHUNK: u64 = 64 << 10;
/// How far into the data segment to search before giving up, so a large
/// non-Go binary without a section table costs a bounded read.
const SEARCH_LIMIT: u64 = 1 << 20;

/// What the Go linker recorded about a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBuildInfo {
    /// The toolchain, as `runtime.Version()` reports it: `go1.25.5`, possibly
    /// with a suffix such as ` X:nocoverageredesign`; `unknown` for binaries
    /// from before Go 1.18, whose blob points at the strings instead of
    /// holding them (not followed: those toolchains are long unsupported).
    pub go_version: String,
    /// Import path of the main package (`path` line of the modinfo); `None`
    /// when the binary was built without module information.
    pub main_path: Option<String>,
    /// Module dependencies as (path, version), in the order Go lists them.
    /// A `=>` replacement takes the place of the module it replaces, since
    /// the replacement is the code that was compiled in (a local directory
    /// replacement has an empty version).
    pub modules: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildInfoError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: malformed ELF or Go build info: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

/// Why reading failed, before the path is attached.
#[derive(Debug)]
enum Failure {
    Io(io::Error),
    Malformed(String),
}

impl From<object::Error> for Failure {
    fn from(e: object::Error) -> Self {
        Self::Malformed(e.to_string())
    }
}

impl Failure {
    fn with_path(self, path: &Path) -> BuildInfoError {
        let path = path.to_owned();
        match self {
            Self::Io(source) => BuildInfoError::Io { path, source },
            Self::Malformed(reason) => BuildInfoError::Malformed { path, reason },
        }
    }
}

/// Why `parse_blob` rejected its input.
#[derive(Debug, PartialEq, Eq)]
enum ParseError {
    /// The buffer ends before the blob does: a longer read may succeed.
    Truncated,
    Invalid(&'static str),
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Truncated => Self::Malformed("Go build info is truncated".to_owned()),
            ParseError::Invalid(why) => Self::Malformed(format!("Go build info: {why}")),
        }
    }
}

/// Go build info of the ELF executable at `path`: `None` when it is not a
/// Go binary (or not ELF at all). Works on `/proc/PID/exe`, which opens the
/// file the process runs even when it was deleted or replaced on disk.
pub fn read(path: &Path) -> Result<Option<GoBuildInfo>, BuildInfoError> {
    let file = File::open(path).map_err(|e| Failure::Io(e).with_path(path))?;
    let cache = ReadCache::new(Recording {
        file: &file,
        error: None,
    });
    let result = read_elf(&file, &cache);
    // object's ReadCache turns a failed read into a bland "invalid ELF"
    // error: when a read did fail, that I/O error is the real cause.
    if let Some(e) = cache.into_inner().error {
        return Err(Failure::Io(e).with_path(path));
    }
    result.map_err(|e| e.with_path(path))
}

/// `&File` as seen by object's `ReadCache`, keeping the I/O error that
/// `ReadCache` would otherwise discard.
struct Recording<'a> {
    file: &'a File,
    error: Option<io::Error>,
}

impl Recording<'_> {
    fn record<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            self.error = Some(io::Error::new(e.kind(), e.to_string()));
        }
        r
    }
}

impl Read for Recording<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.file.read(buf);
        self.record(r)
    }
}

impl Seek for Recording<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let r = self.file.seek(pos);
        self.record(r)
    }
}

type Cache<'a> = ReadCache<Recording<'a>>;

fn read_elf(file: &File, cache: &Cache<'_>) -> Result<Option<GoBuildInfo>, Failure> {
    match FileKind::parse(cache) {
        Ok(FileKind::Elf64) => read_elf_as::<FileHeader64<Endianness>>(file, cache),
        Ok(FileKind::Elf32) => read_elf_as::<FileHeader32<Endianness>>(file, cache),
        // A script, another object format, an empty file: not a Go ELF.
        _ => Ok(None),
    }
}

fn read_elf_as<Elf: FileHeader<Endian = Endianness>>(
    file: &File,
    cache: &Cache<'_>,
) -> Result<Option<GoBuildInfo>, Failure> {
    let header = Elf::parse(cache)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, cache)?;
    if sections.is_empty() {
        // Section table stripped (sstrip and the like): search where the
        // linker puts the blob, as Go's own debug/buildinfo does.
        let segments = header.program_headers(endian, cache)?;
        return search_data_segment::<Elf>(file, endian, segments);
    }
    // With a section table, Go always emits the section: no section, no Go
    // (and no need to search the data of every C binary).
    let Some((_, section)) = sections.section_by_name(endian, b".go.buildinfo") else {
        return Ok(None);
    };
    let (offset, size) = section
        .file_range(endian)
        .ok_or_else(|| Failure::Malformed(".go.buildinfo has no file data".to_owned()))?;
    if size > MAX_BLOB {
        return Err(Failure::Malformed(format!(
            ".go.buildinfo is implausibly large ({size} bytes)"
        )));
    }
    let blob = read_at(file, offset, size)?;
    Ok(Some(parse_blob(&blob)?))
}

/// Search the first writable, non-executable PT_LOAD segment for the magic
/// at 16-byte aligned addresses.
fn search_data_segment<Elf: FileHeader<Endian = Endianness>>(
    file: &File,
    endian: Endianness,
    segments: &[Elf::ProgramHeader],
) -> Result<Option<GoBuildInfo>, Failure> {
    let Some(segment) = segments.iter().find(|p| {
        p.p_type(endian) == elf::PT_LOAD && p.p_flags(endian) & (elf::PF_X | elf::PF_W) == elf::PF_W
    }) else {
        return Ok(None);
    };
    let vaddr: u64 = segment.p_vaddr(endian).into();
    let (start, size) = segment.file_range(endian);
    let end = start
        .checked_add(size)
        .ok_or_else(|| Failure::Malformed("segment end overflows".to_owned()))?;
    // Addresses and file offsets of a segment agree modulo its (page)
    // alignment, so skipping to the first aligned address keeps every
    // candidate offset in each chunk 16-aligned too.
    let mut offset = start.saturating_add(vaddr.wrapping_neg() % ALIGN);
    let limit = end.min(offset.saturating_add(SEARCH_LIMIT));
    while offset < limit {
        let len = SEARCH_CHUNK.min(limit - offset);
        let chunk = read_at(file, offset, len)?;
        // `ALIGN as usize`: 16 always fits.
        for at in (0..chunk.len()).step_by(ALIGN as usize) {
            let candidate = &chunk[at..];
            if !candidate.starts_with(MAGIC) {
                continue;
            }
            let info = match parse_blob(candidate) {
                // The blob runs past this chunk: read it whole.
                Err(ParseError::Truncated) => {
                    let blob_start = offset + at as u64;
                    let blob = read_at(file, blob_start, (end - blob_start).min(MAX_BLOB))?;
                    parse_blob(&blob)?
                }
                r => r?,
            };
            return Ok(Some(info));
        }
        offset += len;
    }
    Ok(None)
}

/// Exactly `len` bytes at `offset`; a range past the end of the file means
/// the headers lied.
fn read_at(file: &File, offset: u64, len: u64) -> Result<Vec<u8>, Failure> {
    // Callers bound `len` (MAX_BLOB, SEARCH_CHUNK), so this fits and the
    // allocation stays small.
    let len =
        usize::try_from(len).map_err(|_| Failure::Malformed("read length overflows".to_owned()))?;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Failure::Malformed("Go build info extends past the end of the file".to_owned())
        } else {
            Failure::Io(e)
        }
    })?;
    Ok(buf)
}

/// Parse a blob starting at the magic. Never panics, whatever `data` holds.
fn parse_blob(data: &[u8]) -> Result<GoBuildInfo, ParseError> {
    let header = data.get(..HEADER_LEN).ok_or(ParseError::Truncated)?;
    if !header.starts_with(MAGIC) {
        return Err(ParseError::Invalid("no build info magic"));
    }
    if header[FLAGS_OFFSET] & FLAG_INLINE_STRINGS == 0 {
        // Before Go 1.18 the header points at string headers in the data
        // segment; following them needs address translation for toolchains
        // nobody should run any more. The blob still proves it is Go.
        return Ok(GoBuildInfo {
            go_version: "unknown".to_owned(),
            main_path: None,
            modules: Vec::new(),
        });
    }
    let (version, rest) = decode_string(&data[HEADER_LEN..])?;
    let (modinfo, _) = decode_string(rest)?;
    if version.is_empty() {
        return Err(ParseError::Invalid("empty Go version"));
    }
    let go_version = std::str::from_utf8(version)
        .map_err(|_| ParseError::Invalid("Go version is not UTF-8"))?
        .to_owned();
    let (main_path, modules) = parse_modinfo(&String::from_utf8_lossy(strip_sentinels(modinfo)));
    Ok(GoBuildInfo {
        go_version,
        main_path,
        modules,
    })
}

/// The modinfo text inside its sentinels; empty when they are missing, as
/// Go's debug/buildinfo does (the text before the end sentinel always ends
/// with a newline).
fn strip_sentinels(modinfo: &[u8]) -> &[u8] {
    if modinfo.len() > 2 * SENTINEL_LEN && modinfo[modinfo.len() - SENTINEL_LEN - 1] == b'\n' {
        &modinfo[SENTINEL_LEN..modinfo.len() - SENTINEL_LEN]
    } else {
        &[]
    }
}

/// A uvarint length, then that many bytes; returns them and what follows.
fn decode_string(data: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let (len, used) = uvarint(data)?;
    let rest = &data[used..];
    if len > MAX_BLOB {
        return Err(ParseError::Invalid("string length is implausibly large"));
    }
    // Bounded by MAX_BLOB just above, so it fits in usize.
    let len = len as usize;
    if len > rest.len() {
        return Err(ParseError::Truncated);
    }
    Ok(rest.split_at(len))
}

/// Go's `binary.Uvarint`: little-endian base-128, at most 10 bytes.
fn uvarint(data: &[u8]) -> Result<(u64, usize), ParseError> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return Err(ParseError::Invalid("varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok((value, i + 1));
        }
    }
    if data.len() >= 10 {
        Err(ParseError::Invalid("varint overflows 64 bits"))
    } else {
        Err(ParseError::Truncated)
    }
}

/// The `path` line and the `dep` lines (with their `=>` replacements) of
/// the modinfo text; other lines (`mod`, `build`, ...) are not needed.
fn parse_modinfo(text: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut main_path = None;
    let mut modules: Vec<(String, String)> = Vec::new();
    let mut after_dep = false;
    for line in text.lines() {
        let mut fields = line.split('\t');
        let kind = fields.next();
        let path = fields.next().unwrap_or_default().to_owned();
        let version = fields.next().unwrap_or_default().to_owned();
        let was_after_dep = std::mem::replace(&mut after_dep, false);
        match kind {
            Some("path") => main_path = Some(path).filter(|p| !p.is_empty()),
            Some("dep") => {
                modules.push((path, version));
                after_dep = true;
            }
            Some("=>") if was_after_dep => {
                if let Some(last) = modules.last_mut() {
                    *last = (path, version);
                }
            }
            _ => {}
        }
    }
    (main_path, modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sentinels cmd/go wraps modinfo in (runtime/debug's modinfo
    /// start and end markers).
    const START: &[u8; 16] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    const END: &[u8; 16] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

    const MODINFO: &str = "path\texample.com/hello/cmd/server\n\
        mod\texample.com/hello\t(devel)\t\n\
        dep\tgolang.org/x/net\tv0.20.0\th1:abc=\n\
        dep\tgolang.org/x/text\tv0.14.0\th1:def=\n\
        =>\tgithub.com/fork/text\tv0.14.1\th1:ghi=\n\
        dep\texample.com/local\tv1.0.0\n\
        =>\t../local\t\t\n\
        build\t-buildmode=exe\n\
        build\tGOOS=linux\n";

    fn push_uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn push_string(out: &mut Vec<u8>, s: &[u8]) {
        push_uvarint(out, s.len() as u64);
        out.extend_from_slice(s);
    }

    fn blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(8);
        out.push(FLAG_INLINE_STRINGS);
        out.resize(HEADER_LEN, 0);
        push_string(&mut out, version.as_bytes());
        let wrapped = [&START[..], modinfo.as_bytes(), &END[..]].concat();
        push_string(&mut out, &wrapped);
        out
    }

    #[test]
    fn parses_inline_strings() {
        let info = parse_blob(&blob("go1.25.5", MODINFO)).unwrap();
        assert_eq!(info.go_version, "go1.25.5");
        assert_eq!(
            info.main_path.as_deref(),
            Some("example.com/hello/cmd/server")
        );
        let modules: Vec<(&str, &str)> = info
            .modules
            .iter()
            .map(|(p, v)| (p.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            modules,
            [
                ("golang.org/x/net", "v0.20.0"),
                ("github.com/fork/text", "v0.14.1"),
                ("../local", ""),
            ]
        );
    }

    #[test]
    fn trailing_data_after_the_strings_is_ignored() {
        // The section is padded; a segment search sees whatever follows.
        let mut b = blob("go1.21.13", MODINFO);
        b.extend_from_slice(&[0xab; 100]);
        assert_eq!(parse_blob(&b).unwrap().go_version, "go1.21.13");
    }

    #[test]
    fn modinfo_without_sentinels_is_empty() {
        let mut out = MAGIC.to_vec();
        out.push(8);
        out.push(FLAG_INLINE_STRINGS);
        out.resize(HEADER_LEN, 0);
        push_string(&mut out, b"go1.22.0");
        push_string(&mut out, MODINFO.as_bytes());
        let info = parse_blob(&out).unwrap();
        assert_eq!(info.go_version, "go1.22.0");
        assert_eq!(info.main_path, None);
        assert!(info.modules.is_empty());
        // No modinfo at all (built outside a module, or -buildvcs games).
        let info = parse_blob(&blob("go1.22.0", "")).unwrap();
        assert_eq!(info.main_path, None);
    }

    #[test]
    fn pointer_format_is_go_with_unknown_version() {
        let mut b = MAGIC.to_vec();
        b.push(8);
        b.push(0);
        b.resize(HEADER_LEN, 0x11);
        let info = parse_blob(&b).unwrap();
        assert_eq!(info.go_version, "unknown");
    }

    #[test]
    fn rejects_bad_blobs() {
        assert_eq!(parse_blob(&[]), Err(ParseError::Truncated));
        assert!(matches!(
            parse_blob(&[0u8; 64]),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_blob(&blob("", MODINFO)),
            Err(ParseError::Invalid(_))
        ));
        // A length of 2^64-1: must not overflow or allocate.
        let mut b = blob("go1.25.5", "")[..HEADER_LEN].to_vec();
        b.extend_from_slice(&[0xff; 9]);
        b.push(0x01);
        assert!(matches!(parse_blob(&b), Err(ParseError::Invalid(_))));
        // An 11-byte varint.
        let mut b = blob("go1.25.5", "")[..HEADER_LEN].to_vec();
        b.extend_from_slice(&[0x80; 11]);
        assert!(matches!(parse_blob(&b), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn hostile_input_never_panics() {
        let good = blob("go1.25.5", MODINFO);
        // Every truncation: the strings are the tail, so all of them are
        // reported as truncated, which is what makes the segment search
        // read further.
        for len in 0..good.len() {
            assert_eq!(
                parse_blob(&good[..len]),
                Err(ParseError::Truncated),
                "{len}"
            );
        }
        // Every single-byte corruption, with a few values.
        for at in 0..good.len() {
            for value in [0x00, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                b[at] = value;
                let _ = parse_blob(&b);
            }
        }
        // Garbage behind a valid header (xorshift: no dependency needed).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2000 {
            let mut b = good[..HEADER_LEN].to_vec();
            for _ in 0..(round % 300) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b.push(state as u8);
            }
            let _ = parse_blob(&b);
        }
        for text in [
            "",
            "\n\n",
            "path",
            "dep",
            "=>\tx\ty",
            "dep\t\t\t\t\t",
            "path\t",
        ] {
            let _ = parse_modinfo(text);
        }
    }

    #[test]
    fn modinfo_replacement_needs_a_dep_before_it() {
        let (main, modules) = parse_modinfo("path\tp\n=>\tx\tv1\nmod\tm\tv2\n=>\ty\tv3\n");
        assert_eq!(main.as_deref(), Some("p"));
        assert!(modules.is_empty());
    }

    #[test]
    fn non_go_files_are_none() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(read(&me).unwrap(), None);
        if Path::new("/bin/ls").exists() {
            assert_eq!(read(Path::new("/bin/ls")).unwrap(), None);
        }
        let script = std::env::temp_dir().join(format!("buildinfo-{}.sh", std::process::id()));
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let r = read(&script);
        std::fs::remove_file(&script).unwrap();
        assert_eq!(r.unwrap(), None);
        assert!(matches!(
            read(Path::new("/nonexistent/go-binary")),
            Err(BuildInfoError::Io { .. })
        ));
    }

    #[test]
    fn truncated_elf_is_an_error_not_a_panic() {
        // The first 4 KiB of the test's own executable: a valid ELF header
        // whose section table lies beyond the end of the file.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let cut = std::env::temp_dir().join(format!("buildinfo-cut-{}", std::process::id()));
        std::fs::write(&cut, &me[..4096]).unwrap();
        let r = read(&cut);
        std::fs::remove_file(&cut).unwrap();
        assert!(matches!(r, Err(BuildInfoError::Malformed { .. })), "{r:?}");
    }

    /// Go binaries the integration tests and benchmarks build (nothing is
    /// built here).
    fn go_binaries() -> Vec<PathBuf> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let mut found: Vec<PathBuf> = std::fs::read_dir(target.join("test-programs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("tt-go") || n.starts_with("tracer-test-go"))
            })
            .collect();
        let hello = target.join("bench/run/hello");
        if hello.is_file() {
            found.push(hello);
        }
        found.sort();
        found
    }

    #[test]
    fn reads_real_go_binaries() {
        let binaries = go_binaries();
        if binaries.is_empty() {
            println!("SKIPPED: no Go binaries under target/test-programs or target/bench/run");
            return;
        }
        for path in &binaries {
            let info = read(path)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{} not seen as Go", path.display()));
            println!(
                "{}: {} main={:?}",
                path.display(),
                info.go_version,
                info.main_path
            );
            assert!(info.go_version.starts_with("go1."), "{info:?}");
            // tt-go1_25_5-server was built by go1.25.5.
            let name = path.file_name().unwrap().to_string_lossy();
            if let Some(v) = name.strip_prefix("tt-go").and_then(|r| r.split('-').next()) {
                assert_eq!(info.go_version, format!("go{}", v.replace('_', ".")));
            }
        }
    }

    #[test]
    fn reads_go_binary_without_section_table() {
        // No stripped build exists among the test programs: make one by
        // dropping the section table from the ELF header, which is what
        // sstrip-like tools leave behind.
        let Some(original) = go_binaries().into_iter().next() else {
            println!("SKIPPED: no Go binaries under target/test-programs or target/bench/run");
            return;
        };
        let mut bytes = std::fs::read(&original).unwrap();
        if bytes.get(4..6) != Some(&[elf::ELFCLASS64, elf::ELFDATA2LSB][..]) {
            println!("SKIPPED: {} is not little-endian ELF64", original.display());
            return;
        }
        bytes[0x28..0x30].fill(0); // e_shoff
        bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        let stripped =
            std::env::temp_dir().join(format!("buildinfo-stripped-{}", std::process::id()));
        std::fs::write(&stripped, &bytes).unwrap();
        let r = read(&stripped);
        std::fs::remove_file(&stripped).unwrap();
        let info = r.unwrap().expect("found by the segment search");
        assert_eq!(Some(info), read(&original).unwrap());
    }
}
