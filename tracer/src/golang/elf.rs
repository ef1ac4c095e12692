//! The parts of an ELF executable the Go analysis reads: its section and
//! segment tables, parsed once with object, then exact byte ranges read on
//! demand. Go binaries are commonly tens of MiB and the agent inspects each
//! new one, so the whole file is never read (nor mapped: a mapped file that
//! shrinks under us would be a SIGBUS in a root daemon).
use std::{
    fs::File,
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use object::{
    Architecture, CompressedFileRange, CompressionFormat, FileKind, Object, ObjectSection,
    ObjectSegment, ReadCache, SegmentFlags, elf,
};

use super::GoError;

/// Bounds a single read (a section, a segment, a function's code), so that
/// a corrupt or hostile header cannot make us allocate without limit. The
/// largest thing read is the DWARF of a very large binary, well below this.
const MAX_READ: u64 = 1 << 30;

/// One section with file contents.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub name: String,
    pub address: u64,
    /// Where the (possibly compressed) contents are in the file.
    range: CompressedFileRange,
}

/// One PT_LOAD segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub address: u64,
    pub offset: u64,
    pub file_size: u64,
    /// Size in memory (past `file_size`: zeroed, e.g. .bss).
    pub mem_size: u64,
    /// `p_flags`: PF_R, PF_W, PF_X.
    pub flags: u32,
}

pub(crate) struct Elf {
    path: PathBuf,
    file: File,
    pub is_64: bool,
    pub little_endian: bool,
    pub architecture: Architecture,
    sections: Vec<Section>,
    segments: Vec<Segment>,
}

impl Segment {
    /// Loaded read-only and not executable: where the Go linker puts
    /// .rodata and its symbol table.
    pub fn is_read_only(&self) -> bool {
        self.flags & (elf::PF_W | elf::PF_X) == 0
    }

    pub fn is_writable(&self) -> bool {
        self.flags & elf::PF_W != 0
    }

    pub fn is_executable(&self) -> bool {
        self.flags & elf::PF_X != 0
    }
}

/// The headers, parsed: what `Elf` keeps of object's view of the file.
struct Tables {
    is_64: bool,
    little_endian: bool,
    architecture: Architecture,
    sections: Vec<Section>,
    segments: Vec<Segment>,
}

impl Elf {
    /// `None` when the file is not ELF.
    pub fn open(path: &Path) -> Result<Option<Self>, GoError> {
        let file = File::open(path).map_err(|source| GoError::Io {
            path: path.to_owned(),
            source,
        })?;
        let Some(tables) = parse_tables(&file).map_err(|e| GoError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            path: path.to_owned(),
            file,
            is_64: tables.is_64,
            little_endian: tables.little_endian,
            architecture: tables.architecture,
            sections: tables.sections,
            segments: tables.segments,
        }))
    }

    pub fn malformed(&self, reason: impl Into<String>) -> GoError {
        GoError::Malformed {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    pub fn unsupported(&self, reason: impl Into<String>) -> GoError {
        GoError::Unsupported {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    #[cfg(test)]
    pub fn has_sections(&self) -> bool {
        !self.sections.is_empty()
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// PT_LOAD segments, in file order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Where the byte at `address` is in the file (what uprobes attach
    /// by); `None` outside every loaded segment's file contents.
    pub fn file_offset(&self, address: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| {
            let within = address.checked_sub(s.address)?;
            (within < s.file_size).then(|| s.offset + within)
        })
    }

    /// Exactly `len` bytes at `offset`.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, GoError> {
        if len > MAX_READ {
            return Err(self.malformed(format!("implausibly large read ({len} bytes)")));
        }
        // Bounded just above, so it fits.
        let mut buf = vec![0; len as usize];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.malformed(format!(
                    "{len} bytes at {offset:#x} extend past the end of the file"
                ))
            } else {
                GoError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            }
        })?;
        Ok(buf)
    }

    /// The file contents of a segment.
    pub fn segment_data(&self, segment: &Segment) -> Result<Vec<u8>, GoError> {
        self.read(segment.offset, segment.file_size)
    }

    /// A section's contents, inflated when the linker compressed them
    /// (SHF_COMPRESSED, or the older GNU `.zdebug_*` form).
    pub fn section_data(&self, section: &Section) -> Result<Vec<u8>, GoError> {
        let range = &section.range;
        let data = self.read(range.offset, range.compressed_size)?;
        match range.format {
            CompressionFormat::None => Ok(data),
            CompressionFormat::Zlib => {
                if range.uncompressed_size > MAX_READ {
                    return Err(self.malformed(format!(
                        "{} inflates to an implausible {} bytes",
                        section.name, range.uncompressed_size
                    )));
                }
                // The limit keeps a lying header from inflating without
                // bound; bounded by MAX_READ above, so it fits.
                let size = range.uncompressed_size as usize;
                let inflated = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&data, size)
                    .map_err(|e| self.malformed(format!("inflating {}: {e}", section.name)))?;
                if inflated.len() != size {
                    return Err(self.malformed(format!(
                        "{} inflates to {} bytes, its header says {size}",
                        section.name,
                        inflated.len()
                    )));
                }
                Ok(inflated)
            }
            other => Err(self.unsupported(format!("{} is compressed as {other:?}", section.name))),
        }
    }

    /// A little- or big-endian unsigned integer of `size` (1, 2, 4 or 8)
    /// bytes at `at`; `None` past the end of `data`.
    pub fn uint(&self, data: &[u8], at: usize, size: usize) -> Option<u64> {
        read_uint(data, at, size, self.little_endian)
    }
}

/// Section and segment tables through a read cache: only the headers
/// (and the section names) are read. `None` when the file is not ELF.
fn parse_tables(file: &File) -> Result<Option<Tables>, object::Error> {
    let cache = ReadCache::new(file);
    match FileKind::parse(&cache) {
        Ok(FileKind::Elf32 | FileKind::Elf64) => {}
        _ => return Ok(None),
    }
    let parsed = object::File::parse(&cache)?;
    let mut sections = Vec::new();
    for section in parsed.sections() {
        // NOBITS (.bss) and the null section have nothing to read.
        if section.file_range().is_none() {
            continue;
        }
        let Ok(name) = section.name() else { continue };
        sections.push(Section {
            name: name.to_owned(),
            address: section.address(),
            range: section.compressed_file_range()?,
        });
    }
    let segments = parsed
        .segments()
        .filter_map(|segment| {
            let (offset, file_size) = segment.file_range();
            let SegmentFlags::Elf { p_flags } = segment.flags() else {
                return None;
            };
            Some(Segment {
                address: segment.address(),
                offset,
                file_size,
                mem_size: segment.size(),
                flags: p_flags,
            })
        })
        .collect();
    Ok(Some(Tables {
        is_64: parsed.is_64(),
        little_endian: parsed.is_little_endian(),
        architecture: parsed.architecture(),
        sections,
        segments,
    }))
}

/// An unsigned integer of `size` bytes (at most 8) at `at` of `data`.
pub(crate) fn read_uint(data: &[u8], at: usize, size: usize, little_endian: bool) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(size)?)?;
    let fold = |value: u64, byte: &u8| (value << 8) | u64::from(*byte);
    Some(if little_endian {
        bytes.iter().rev().fold(0, fold)
    } else {
        bytes.iter().fold(0, fold)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_integers_of_both_byte_orders() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(read_uint(&data, 0, 4, true), Some(0x0403_0201));
        assert_eq!(read_uint(&data, 1, 2, false), Some(0x0203));
        assert_eq!(read_uint(&data, 1, 8, true), Some(0x0908_0706_0504_0302));
        assert_eq!(read_uint(&data, 2, 8, true), None);
        assert_eq!(read_uint(&data, usize::MAX, 8, true), None);
    }

    #[test]
    fn non_elf_is_none() {
        let script = std::env::temp_dir().join(format!("golang-elf-{}.sh", std::process::id()));
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let r = Elf::open(&script);
        std::fs::remove_file(&script).unwrap();
        assert!(r.unwrap().is_none());
    }

    #[test]
    fn file_offsets_follow_the_load_segments() {
        let me = Elf::open(&std::env::current_exe().unwrap())
            .unwrap()
            .unwrap();
        let text = me
            .segments()
            .iter()
            .find(|s| s.is_executable())
            .copied()
            .unwrap();
        assert_eq!(me.file_offset(text.address + 16), Some(text.offset + 16));
        assert_eq!(me.file_offset(u64::MAX), None);
    }
}
