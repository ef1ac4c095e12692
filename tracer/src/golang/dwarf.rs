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
    offsets::{FIELDS, Field, GRPC_FIELDS, GoOffsets, GrpcOffsets},
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

/// Walks the DWARF for the members `fields`, giving each found to `found`
/// (index in `fields`, offset) until it says all are; false when the
/// binary has no DWARF.
fn read(
    elf: &Elf,
    fields: &[Field],
    found: &mut dyn FnMut(usize, u32) -> bool,
) -> Result<bool, GoError> {
    let Some(info) = section(elf, "info")? else {
        return Ok(false);
    };
    let abbrev = section(elf, "abbrev")?.unwrap_or_default();
    let strings = section(elf, "str")?.unwrap_or_default();
    let endian = if elf.little_endian {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let sections = Sections {
        info: DebugInfo::new(&info, endian),
        abbrev: DebugAbbrev::new(&abbrev, endian),
        strings: DebugStr::new(&strings, endian),
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

struct Sections<'a> {
    info: DebugInfo<Reader<'a>>,
    abbrev: DebugAbbrev<Reader<'a>>,
    strings: DebugStr<Reader<'a>>,
}

impl<'a> Sections<'a> {
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
