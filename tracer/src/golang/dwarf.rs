//! Struct member offsets from a Go binary's DWARF (`-ldflags=-w` removes
//! it; then the offsets table of its Go release stands in).
//!
//! Go's linker writes each type once, as a top-level DIE of one unit, with
//! its members as children: `DW_TAG_structure_type "runtime.g"` →
//! `DW_TAG_member "goid"`, `DW_AT_data_member_location 152`. Only
//! .debug_info and .debug_abbrev (and .debug_str, should a name live
//! there) are read, the DIEs are walked without building a tree, and the
//! walk stops once every wanted member is found.
use gimli::{
    AbbreviationsCache, AttributeValue, DebugAbbrev, DebugInfo, DebugStr, EndianSlice,
    RunTimeEndian, constants,
};

use super::{
    GoError,
    elf::Elf,
    offsets::{FIELDS, Field, GRPC_FIELDS, GoOffsets, GrpcOffsets, SERVER_FIELDS, ServerFields},
};

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

/// The wanted members found in the DWARF (see `GoOffsets::found`); `None`
/// when the binary has no DWARF.
pub(crate) fn read_offsets(elf: &Elf) -> Result<Option<GoOffsets>, GoError> {
    let mut offsets = GoOffsets::default();
    let found = read(elf, FIELDS, &mut |i, at| {
        offsets.set(i, at);
        offsets.is_complete()
    })?;
    Ok(found.then_some(offsets))
}

/// grpc-go's members (a binary that links its client transport).
pub(crate) fn read_grpc_offsets(elf: &Elf) -> Result<Option<GrpcOffsets>, GoError> {
    let mut offsets = GrpcOffsets::default();
    let found = read(elf, GRPC_FIELDS, &mut |i, at| {
        offsets.set(i, at);
        offsets.is_complete()
    })?;
    Ok(found.then_some(offsets))
}

/// The Go HTTP/2 and gRPC servers' members found in the DWARF; `None`
/// when the binary has no DWARF.
pub(crate) fn read_server_fields(elf: &Elf) -> Result<Option<ServerFields>, GoError> {
    let mut offsets = ServerFields::default();
    let found = read(elf, SERVER_FIELDS, &mut |i, at| {
        offsets.set(i, at);
        offsets.is_complete()
    })?;
    Ok(found.then_some(offsets))
}

/// DW_AT_go_runtime_type: where Go's linker says a type's runtime type
/// descriptor is, as an offset from `runtime.types`.
const DW_AT_GO_RUNTIME_TYPE: u16 = 0x2904;

/// For each of the struct types `names`: `None` when the DWARF does not
/// have it, else its runtime type's offset from `runtime.types` (`Some(None)`
/// when not given). Empty when the binary has no DWARF.
pub(crate) fn struct_types(elf: &Elf, names: &[&str]) -> Result<Vec<Option<Option<u64>>>, GoError> {
    let Some(sections) = Sections::load(elf)? else {
        return Ok(Vec::new());
    };
    let mut found = vec![None; names.len()];
    sections
        .struct_types(names, &mut found)
        .map_err(|e| elf.malformed(format!("DWARF: {e}")))?;
    Ok(found)
}

/// Walks the DWARF for the members `fields`, giving each found to `found`
/// (index in `fields`, offset) until it says all are; false when the
/// binary has no DWARF.
fn read(
    elf: &Elf,
    fields: &[Field],
    found: &mut dyn FnMut(usize, u32) -> bool,
) -> Result<bool, GoError> {
    let Some(sections) = Sections::load(elf)? else {
        return Ok(false);
    };
    sections
        .walk(fields, found)
        .map(|()| true)
        .map_err(|e| elf.malformed(format!("DWARF: {e}")))
}

/// `.debug_<name>`, inflated; also found under the GNU `.zdebug_<name>`.
fn section(elf: &Elf, name: &str) -> Result<Option<Vec<u8>>, GoError> {
    [format!(".debug_{name}"), format!(".zdebug_{name}")]
        .iter()
        .find_map(|n| elf.section(n))
        .map(|s| elf.section_data(s))
        .transpose()
}

/// The DWARF sections read, inflated.
struct Sections {
    info: Vec<u8>,
    abbrev: Vec<u8>,
    strings: Vec<u8>,
    endian: RunTimeEndian,
}

impl Sections {
    /// `None` when the binary has no DWARF.
    fn load(elf: &Elf) -> Result<Option<Self>, GoError> {
        let Some(info) = section(elf, "info")? else {
            return Ok(None);
        };
        Ok(Some(Self {
            info,
            abbrev: section(elf, "abbrev")?.unwrap_or_default(),
            strings: section(elf, "str")?.unwrap_or_default(),
            endian: if elf.little_endian {
                RunTimeEndian::Little
            } else {
                RunTimeEndian::Big
            },
        }))
    }

    fn walk(
        &self,
        fields: &[Field],
        found: &mut dyn FnMut(usize, u32) -> bool,
    ) -> gimli::Result<()> {
        self.reader().walk(fields, found)
    }

    fn struct_types(&self, names: &[&str], found: &mut [Option<Option<u64>>]) -> gimli::Result<()> {
        self.reader().struct_types(names, found)
    }

    fn reader(&self) -> SectionReader<'_> {
        SectionReader {
            info: DebugInfo::new(&self.info, self.endian),
            abbrev: DebugAbbrev::new(&self.abbrev, self.endian),
            strings: DebugStr::new(&self.strings, self.endian),
        }
    }
}

struct SectionReader<'a> {
    info: DebugInfo<Reader<'a>>,
    abbrev: DebugAbbrev<Reader<'a>>,
    strings: DebugStr<Reader<'a>>,
}

impl<'a> SectionReader<'a> {
    /// Top-level struct DIEs named in `names`: their runtime type offsets.
    fn struct_types(&self, names: &[&str], found: &mut [Option<Option<u64>>]) -> gimli::Result<()> {
        let cache = AbbreviationsCache::new();
        let mut units = self.info.units();
        while let Some(unit) = units.next()? {
            let abbreviations = cache.get(&self.abbrev, unit.debug_abbrev_offset())?;
            let mut entries = unit.entries_raw(&abbreviations, None)?;
            while !entries.is_empty() {
                let Some(abbrev) = entries.read_abbreviation()? else {
                    continue;
                };
                if abbrev.tag() != constants::DW_TAG_structure_type {
                    entries.skip_attributes(abbrev.attributes())?;
                    continue;
                }
                let mut name = None;
                let mut runtime_type = None;
                for spec in abbrev.attributes() {
                    let attr = entries.read_attribute(*spec)?;
                    match attr.name() {
                        constants::DW_AT_name => name = self.string(attr.value()),
                        // Written as DW_FORM_addr, yet an offset.
                        n if n.0 == DW_AT_GO_RUNTIME_TYPE => {
                            runtime_type = match attr.value() {
                                AttributeValue::Addr(a) => Some(a),
                                _ => attr.udata_value(),
                            }
                        }
                        _ => {}
                    }
                }
                let Some(name) = name else { continue };
                if let Some(i) = names.iter().position(|n| n.as_bytes() == name) {
                    found[i] = Some(runtime_type);
                    if found.iter().all(Option::is_some) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn walk(
        &self,
        fields: &[Field],
        found: &mut dyn FnMut(usize, u32) -> bool,
    ) -> gimli::Result<()> {
        // Go's units share one abbreviation table: parsed once.
        let cache = AbbreviationsCache::new();
        let mut units = self.info.units();
        while let Some(unit) = units.next()? {
            let abbreviations = cache.get(&self.abbrev, unit.debug_abbrev_offset())?;
            let mut entries = unit.entries_raw(&abbreviations, None)?;
            // The wanted struct being read, and its depth.
            let mut within: Option<(&str, isize)> = None;
            while !entries.is_empty() {
                let depth = entries.next_depth();
                let Some(abbrev) = entries.read_abbreviation()? else {
                    continue;
                };
                if within.is_some_and(|(_, at)| depth <= at) {
                    within = None;
                }
                let mut name = None;
                let mut location = None;
                let tag = abbrev.tag();
                let member_of = within.filter(|&(_, at)| depth == at + 1);
                let wanted = tag == constants::DW_TAG_structure_type
                    || (tag == constants::DW_TAG_member && member_of.is_some());
                if !wanted {
                    entries.skip_attributes(abbrev.attributes())?;
                    continue;
                }
                for spec in abbrev.attributes() {
                    let attr = entries.read_attribute(*spec)?;
                    match attr.name() {
                        constants::DW_AT_name => name = self.string(attr.value()),
                        constants::DW_AT_data_member_location => location = attr.udata_value(),
                        _ => {}
                    }
                }
                let Some(name) = name else { continue };
                if tag == constants::DW_TAG_structure_type {
                    within = fields
                        .iter()
                        .find(|f| f.type_name.as_bytes() == name)
                        .map(|f| (f.type_name, depth));
                } else if let (Some((type_name, _)), Some(location)) = (member_of, location) {
                    let field = fields
                        .iter()
                        .position(|f| f.type_name == type_name && f.member.as_bytes() == name);
                    if let (Some(i), Ok(location)) = (field, u32::try_from(location))
                        && found(i, location)
                    {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// A name attribute's bytes: Go writes them inline (DW_FORM_string);
    /// .debug_str is followed too, for binaries another linker rewrote.
    fn string(&self, value: AttributeValue<Reader<'a>>) -> Option<&'a [u8]> {
        match value {
            AttributeValue::String(s) => Some(s.slice()),
            AttributeValue::DebugStrRef(offset) => {
                self.strings.get_str(offset).ok().map(|s| s.slice())
            }
            _ => None,
        }
    }
}
