//! Go functions by their symbol name (`net/http.(*persistConn).roundTrip`,
//! `runtime.allgadd`): address, size and the file offset uprobes attach
//! by. From `.symtab` when the binary has one, else from Go's own function
//! table (pclntab), which `-ldflags=-s` and `strip` leave in place.
use std::fmt;

use object::elf;

use super::{
    GoError,
    elf::Elf,
    pclntab::{Entry, Pclntab},
};

const ABI0_SUFFIX: &[u8] = b".abi0";

/// A function found in the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    /// Virtual address of the first instruction (as linked; PIE binaries
    /// are moved by their load address).
    pub address: u64,
    /// Bytes of code, without the padding up to the next function.
    pub size: u64,
    /// File offset of the first instruction.
    pub entry_offset: u64,
}

/// Where the symbols came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolSource {
    Symtab,
    Pclntab,
}

impl fmt::Display for SymbolSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Symtab => ".symtab",
            Self::Pclntab => "pclntab",
        })
    }
}

/// The functions named `names`, in that order (`None`: not in the binary,
/// e.g. not linked in or always inlined).
pub(crate) fn find(
    elf: &Elf,
    names: &[&str],
) -> Result<(SymbolSource, Vec<Option<Function>>), GoError> {
    match from_symtab(elf, names)? {
        Some(found) => Ok((SymbolSource::Symtab, found)),
        None => Ok((SymbolSource::Pclntab, from_pclntab(elf, names)?)),
    }
}

/// Through `.symtab`; `None` when the binary has none (stripped).
pub(crate) fn from_symtab(
    elf: &Elf,
    names: &[&str],
) -> Result<Option<Vec<Option<Function>>>, GoError> {
    let Some(symtab) = Symtab::read(elf)? else {
        return Ok(None);
    };
    // Per name: the symbol, and whether it is the `.abi0` one.
    let mut found: Vec<Option<(Entry, bool)>> = vec![None; names.len()];
    for sym in symtab.symbols(elf) {
        // Defined functions only (a cgo binary also lists the C functions
        // it imports, in no section).
        if sym.kind != elf::STT_FUNC || !sym.defined {
            continue;
        }
        let name = sym.name;
        for (slot, wanted) in found.iter_mut().zip(names) {
            let Some(rest) = name.strip_prefix(wanted.as_bytes()) else {
                continue;
            };
            // Go names the ABI0 (stack-argument) version of a function
            // `name.abi0` where it has both; some assembly functions only
            // exist as `.abi0`. The plain name wins, as in pclntab.
            let abi0 = match rest {
                b"" => false,
                ABI0_SUFFIX => true,
                _ => continue,
            };
            if slot.is_none_or(|(_, was_abi0)| was_abi0 && !abi0) {
                let entry = Entry {
                    address: sym.value,
                    size: sym.size,
                };
                *slot = Some((entry, abi0));
            }
        }
    }
    found
        .into_iter()
        .zip(names)
        .map(|(slot, name)| {
            slot.map(|(entry, _)| function(elf, name, entry))
                .transpose()
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The address of the defined symbol `name` of any kind (a variable, a
/// section marker such as `runtime.types`); `None` without `.symtab`.
pub(crate) fn symbol_address(elf: &Elf, name: &str) -> Result<Option<u64>, GoError> {
    let Some(symtab) = Symtab::read(elf)? else {
        return Ok(None);
    };
    Ok(symtab
        .symbols(elf)
        .find(|s| s.defined && s.name == name.as_bytes())
        .map(|s| s.value))
}

/// `.symtab` and its strings.
struct Symtab {
    symbols: Vec<u8>,
    strings: Vec<u8>,
}

/// One symbol of `.symtab`.
struct Symbol<'a> {
    name: &'a [u8],
    /// STT_*.
    kind: u8,
    /// In a section (not imported).
    defined: bool,
    value: u64,
    size: u64,
}

impl Symtab {
    fn read(elf: &Elf) -> Result<Option<Self>, GoError> {
        let (Some(symtab), Some(strtab)) = (elf.section(".symtab"), elf.section(".strtab")) else {
            return Ok(None);
        };
        Ok(Some(Self {
            symbols: elf.section_data(symtab)?,
            strings: elf.section_data(strtab)?,
        }))
    }

    fn symbols<'a>(&'a self, elf: &'a Elf) -> impl Iterator<Item = Symbol<'a>> + 'a {
        // Elf64_Sym: name u32, info u8, other u8, shndx u16, value u64, size
        // u64. Elf32_Sym: name u32, value u32, size u32, info u8, other u8,
        // shndx u16.
        let (entry_size, info_at, shndx_at, value_at, size_at, word) = if elf.is_64 {
            (24, 4, 6, 8, 16, 8)
        } else {
            (16, 12, 14, 4, 8, 4)
        };
        self.symbols
            .chunks_exact(entry_size)
            .filter_map(move |sym| {
                let name = elf
                    .uint(sym, 0, 4)
                    .and_then(|at| self.strings.get(at as usize..))
                    .and_then(|s| s.split(|&b| b == 0).next())?;
                Some(Symbol {
                    name,
                    kind: sym[info_at] & 0xf,
                    defined: elf.uint(sym, shndx_at, 2) != Some(u64::from(elf::SHN_UNDEF)),
                    value: elf.uint(sym, value_at, word).unwrap_or_default(),
                    size: elf.uint(sym, size_at, word).unwrap_or_default(),
                })
            })
    }
}

/// Through Go's function table.
pub(crate) fn from_pclntab(elf: &Elf, names: &[&str]) -> Result<Vec<Option<Function>>, GoError> {
    let table = Pclntab::locate(elf)?;
    table
        .find(names)
        .into_iter()
        .zip(names)
        .map(|(entry, name)| entry.map(|e| function(elf, name, e)).transpose())
        .collect()
}

fn function(elf: &Elf, name: &str, entry: Entry) -> Result<Function, GoError> {
    let entry_offset = elf.file_offset(entry.address).ok_or_else(|| {
        elf.malformed(format!(
            "{name} at {:#x} is outside every loaded segment",
            entry.address
        ))
    })?;
    Ok(Function {
        name: name.to_owned(),
        address: entry.address,
        size: entry.size,
        entry_offset,
    })
}
