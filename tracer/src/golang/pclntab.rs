//! Go's own function table (pclntab), which the runtime needs for stack
//! traces and so survives `-ldflags=-s` and `strip`: function names →
//! entry addresses for binaries without `.symtab`.
//!
//! Written here rather than taken from a crate: the crates that parse it
//! (unstrip, gobin, and a few decompilers) are large reverse-engineering
//! tools built on goblin, while this needs one lookup over one layout on
//! top of the object parser already in use.
//!
//! Layout since Go 1.18 (magic 0xfffffff0; 0xfffffff1 since Go 1.20, same
//! fields), all offsets relative to the header; `uintptr` is `ptrSize`:
//!
//! ```text
//! 0   magic u32, 2 zero bytes, minLC u8 (instruction size quantum), ptrSize u8
//! 8   nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset,
//!     pctabOffset, pclnOffset: uintptr each
//! functab (at pclnOffset): nfunc × {entryOff u32, funcOff u32}, then the
//!     end of the last function as one more entryOff
//! _func (at functab + funcOff): entryOff u32, nameOff i32 (into the
//!     funcname table, NUL-terminated), args, deferreturn, pcsp u32 (at 16;
//!     into pctab), ...
//! ```
//!
//! Entry offsets count from textStart (`runtime.text`), which Go 1.26 and
//! later leave 0 in the header: then it comes from the module data.
use super::{
    GoError,
    elf::{Elf, read_uint},
};

const MAGIC_GO118: u32 = 0xffff_fff0;
const MAGIC_GO120: u32 = 0xffff_fff1;
/// Magics of the layouts before Go 1.18 (1.2 and 1.16): recognised to say
/// so, not read.
const MAGIC_OLD: [u32; 2] = [0xffff_fffb, 0xffff_fffa];
/// Where the sections are called this, the table is one of them: the
/// second is its name in position-independent executables (it holds a
/// relocated pointer, textStart).
const SECTIONS: [&str; 2] = [".gopclntab", ".data.rel.ro.gopclntab"];
/// Largest function count believed: Kubernetes-sized binaries have a few
/// hundred thousand.
const MAX_FUNCS: u64 = 10_000_000;
/// Offset of `pcsp` in `_func`.
const FUNC_PCSP: usize = 16;
/// Offset of `flag` in `_func`: 41 since Go 1.20, which added `startLine`
/// before it, 37 in 1.18 and 1.19. `funcID` is the byte before it.
const FUNC_FLAG_GO120: usize = 41;
const FUNC_FLAG_GO118: usize = 37;
/// `abi.FuncFlagAsm`: written in assembly.
const FUNC_FLAG_ASM: u8 = 1 << 2;
/// `abi.FuncIDNormal`: not a special runtime function nor a wrapper.
const FUNC_ID_NORMAL: u8 = 0;
/// Word of the module data that holds `text`.
const MODULEDATA_TEXT: usize = 22;
/// Size of one functab entry (two u32).
const FUNCTAB_ENTRY: usize = 8;

/// A validated function table.
pub(crate) struct Pclntab {
    /// The bytes holding the table (a section, or the segment it is in);
    /// its header is at `base`.
    data: Vec<u8>,
    base: usize,
    ptr_size: u8,
    little_endian: bool,
    min_lc: u64,
    /// Offset of `flag` in `_func`.
    func_flag: usize,
    nfunc: usize,
    /// `runtime.text`: entry offsets count from here.
    text_start: u64,
    /// Absolute offsets into `data`.
    funcname: usize,
    funcname_end: usize,
    pctab: usize,
    functab: usize,
}

/// Where a function is, as the table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub address: u64,
    pub size: u64,
}

impl Pclntab {
    /// The table of `elf`: its section when there is a section table,
    /// else found by searching the non-executable segments.
    pub fn locate(elf: &Elf) -> Result<Self, GoError> {
        let ptr_size = if elf.is_64 { 8 } else { 4 };
        let (mut table, address) =
            if let Some(section) = SECTIONS.iter().find_map(|name| elf.section(name)) {
                let data = elf.section_data(section)?;
                let table = Self::parse(data, 0, ptr_size, elf.little_endian)
                    .map_err(|why| elf.malformed(format!("{}: {why}", section.name)))?;
                (table, section.address)
            } else {
                Self::search_segments(elf, ptr_size)?
            };
        if table.text_start == 0 {
            table.text_start = table
                .text_from_moduledata(elf, address)?
                .or_else(|| {
                    // What Go's debug/gosym assumes; right unless an external
                    // linker put C code first.
                    elf.section(".text").map(|s| s.address)
                })
                .ok_or_else(|| elf.malformed("pclntab: where the code starts is not recorded"))?;
        }
        Ok(table)
    }

    /// No section table (or one without the table, as some packers
    /// leave): the linker puts the table in .rodata's segment, or the
    /// RELRO one for PIE. Read-only segments first. Returns the table and
    /// its address.
    fn search_segments(elf: &Elf, ptr_size: u8) -> Result<(Self, u64), GoError> {
        let mut segments: Vec<_> = elf
            .segments()
            .iter()
            .filter(|s| !s.is_executable())
            .collect();
        segments.sort_by_key(|s| !s.is_read_only());
        let mut old = None;
        for segment in segments {
            let data = elf.segment_data(segment)?;
            match Self::search(data, segment.address, ptr_size, elf.little_endian) {
                Ok(table) => {
                    let address = segment.address + table.base as u64;
                    return Ok((table, address));
                }
                Err(found_old) => old = old.or(found_old),
            }
        }
        Err(match old {
            Some(magic) => elf.unsupported(format!(
                "symbol table of a Go release before 1.18 (magic {magic:#x})"
            )),
            None => elf.malformed("no Go symbol table (pclntab) found"),
        })
    }

    /// The first valid table in a segment's bytes; else the magic of an
    /// old layout if one was seen.
    fn search(
        data: Vec<u8>,
        address: u64,
        ptr_size: u8,
        little_endian: bool,
    ) -> Result<Self, Option<u32>> {
        let mut old = None;
        let mut at = first_aligned(address, ptr_size);
        while at + 8 <= data.len() {
            let magic = read_uint(&data, at, 4, little_endian).unwrap_or(0) as u32;
            let header_ok = data[at + 4] == 0 && data[at + 5] == 0 && data[at + 7] == ptr_size;
            if header_ok && (magic == MAGIC_GO118 || magic == MAGIC_GO120) {
                // Validation reads every functab entry, so a false match
                // in arbitrary data is rejected, not misread.
                if let Ok(fields) = Self::parse_ref(&data, at, ptr_size, little_endian) {
                    return Ok(Self { data, ..fields });
                }
            } else if header_ok && MAGIC_OLD.contains(&magic) {
                old = Some(magic);
            }
            at += usize::from(ptr_size);
        }
        Err(old)
    }

    /// `runtime.text` from the module data, the runtime's descriptor of
    /// the binary, for tables whose header leaves it 0 (Go 1.26 and later
    /// do; so may linkers that relocate it). The module data starts with a
    /// pointer to the header and the funcname table as a slice (pointer,
    /// length, capacity), which is what identifies it; `text` is its
    /// word 22 (Go 1.16 to 1.27).
    fn text_from_moduledata(&self, elf: &Elf, header: u64) -> Result<Option<u64>, GoError> {
        let p = usize::from(self.ptr_size);
        let names = (self.funcname - self.base) as u64;
        let names_len = (self.funcname_end - self.funcname) as u64;
        let expected = [header, header + names, names_len, names_len];
        for segment in elf.segments().iter().filter(|s| s.is_writable()) {
            let data = elf.segment_data(segment)?;
            let word = |at: usize, i: usize| read_uint(&data, at + i * p, p, self.little_endian);
            let mut at = first_aligned(segment.address, self.ptr_size);
            while at + (MODULEDATA_TEXT + 1) * p <= data.len() {
                if (0..4).all(|i| word(at, i) == Some(expected[i]))
                    && let Some(text) = word(at, MODULEDATA_TEXT)
                    && elf.segments().iter().any(|s| {
                        s.is_executable() && (s.address..s.address + s.file_size).contains(&text)
                    })
                {
                    return Ok(Some(text));
                }
                at += p;
            }
        }
        Ok(None)
    }

    /// Parses and validates the header at `base` of `data`. `text_start`
    /// is 0 when the header does not have it.
    pub fn parse(
        data: Vec<u8>,
        base: usize,
        ptr_size: u8,
        little_endian: bool,
    ) -> Result<Self, &'static str> {
        let fields = Self::parse_ref(&data, base, ptr_size, little_endian)?;
        Ok(Self { data, ..fields })
    }

    /// Everything but the owned bytes (left empty).
    fn parse_ref(
        data: &[u8],
        base: usize,
        ptr_size: u8,
        little_endian: bool,
    ) -> Result<Self, &'static str> {
        let u32_at = |at: usize| read_uint(data, at, 4, little_endian);
        let magic = u32_at(base).ok_or("truncated header")?;
        if MAGIC_OLD.iter().any(|&m| u64::from(m) == magic) {
            return Err("layout of a Go release before 1.18");
        }
        if magic != u64::from(MAGIC_GO118) && magic != u64::from(MAGIC_GO120) {
            return Err("bad magic");
        }
        let header = data.get(base..base + 8).ok_or("truncated header")?;
        if header[4] != 0 || header[5] != 0 {
            return Err("bad header padding");
        }
        let min_lc = header[6];
        if ![1, 2, 4].contains(&min_lc) {
            return Err("bad instruction size quantum");
        }
        if header[7] != ptr_size {
            return Err("pointer size differs from the ELF class");
        }
        let p = usize::from(ptr_size);
        let word = |i: usize| read_uint(data, base + 8 + i * p, p, little_endian);
        let words: Vec<u64> = (0..8)
            .map(word)
            .collect::<Option<_>>()
            .ok_or("truncated header")?;
        let [
            nfunc,
            _nfiles,
            text_start,
            funcname,
            cu,
            filetab,
            pctab,
            functab,
        ] = words[..]
        else {
            return Err("truncated header");
        };
        if nfunc == 0 || nfunc > MAX_FUNCS {
            return Err("implausible function count");
        }
        let len = (data.len() - base) as u64;
        let header_len = 8 + 8 * p as u64;
        let ordered = header_len <= funcname
            && funcname <= cu
            && cu <= filetab
            && filetab <= pctab
            && pctab <= functab
            && functab < len;
        if !ordered {
            return Err("table offsets out of order or out of range");
        }
        // Bounded by `len` and MAX_FUNCS: these fit.
        let nfunc = nfunc as usize;
        let functab = base + functab as usize;
        let functab_len = nfunc * FUNCTAB_ENTRY + 4;
        if functab + functab_len > data.len() {
            return Err("function table runs past the end");
        }
        let table = Self {
            data: Vec::new(),
            base,
            ptr_size,
            little_endian,
            min_lc: u64::from(min_lc),
            func_flag: if magic == u64::from(MAGIC_GO120) {
                FUNC_FLAG_GO120
            } else {
                FUNC_FLAG_GO118
            },
            nfunc,
            text_start,
            funcname: base + funcname as usize,
            funcname_end: base + cu as usize,
            pctab: base + pctab as usize,
            functab,
        };
        // Every entry in order and pointing inside the table; the first
        // and last names readable.
        let mut previous = 0;
        for i in 0..=nfunc {
            let entry = u32_at(functab + i * FUNCTAB_ENTRY).ok_or("truncated function table")?;
            if entry < previous {
                return Err("function table out of order");
            }
            previous = entry;
            if i < nfunc {
                let func = u32_at(functab + i * FUNCTAB_ENTRY + 4).ok_or("truncated")? as usize;
                if functab + func + FUNC_PCSP + 4 > data.len() {
                    return Err("function record out of range");
                }
            }
        }
        for i in [0, nfunc - 1] {
            table.name_in(data, i).ok_or("function name out of range")?;
        }
        Ok(table)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Name of function `i` (a sanity-checked C string).
    pub fn name(&self, i: usize) -> Option<&[u8]> {
        self.name_in(&self.data, i)
    }

    fn name_in<'d>(&self, data: &'d [u8], i: usize) -> Option<&'d [u8]> {
        let func = self.func(data, i)?;
        let name_off = self.u32(data, func + 4)?;
        let start = self.funcname.checked_add(name_off as usize)?;
        let names = data.get(start..self.funcname_end)?;
        let end = names.iter().position(|&b| b == 0)?;
        Some(&names[..end])
    }

    /// Absolute offset of function `i`'s `_func`.
    fn func(&self, data: &[u8], i: usize) -> Option<usize> {
        if i >= self.nfunc {
            return None;
        }
        let func_off = self.u32(data, self.functab + i * FUNCTAB_ENTRY + 4)?;
        self.functab.checked_add(func_off as usize)
    }

    fn u32(&self, data: &[u8], at: usize) -> Option<u32> {
        read_uint(data, at, 4, self.little_endian).map(|v| v as u32)
    }

    /// The functions named `names`, in that order.
    ///
    /// A name can be there twice: a function with an ABI wrapper (Go code
    /// called from assembly, or assembly called from Go) has both under
    /// one name, where .symtab calls the ABI0 one `name.abi0`. The one
    /// .symtab calls `name`, the register-ABI one, is chosen: Go code
    /// rather than assembly, a normal function rather than a wrapper.
    pub fn find(&self, names: &[&str]) -> Vec<Option<Entry>> {
        let mut best: Vec<Option<(usize, (bool, bool))>> = vec![None; names.len()];
        for i in 0..self.nfunc {
            let Some(name) = self.name(i) else { continue };
            for (slot, wanted) in best.iter_mut().zip(names) {
                if name != wanted.as_bytes() {
                    continue;
                }
                let rank = self.abi0_rank(i);
                if slot.is_none_or(|(_, best)| rank < best) {
                    *slot = Some((i, rank));
                }
            }
        }
        best.into_iter()
            .map(|slot| slot.and_then(|(i, _)| self.entry(i)))
            .collect()
    }

    /// Lower for the function .symtab would give the plain name: (written
    /// in assembly, has a special or wrapper funcID).
    fn abi0_rank(&self, i: usize) -> (bool, bool) {
        let Some(func) = self.func(&self.data, i) else {
            return (true, true);
        };
        let byte = |at: usize| self.data.get(func + at).copied().unwrap_or(u8::MAX);
        (
            byte(self.func_flag) & FUNC_FLAG_ASM != 0,
            byte(self.func_flag - 1) != FUNC_ID_NORMAL,
        )
    }

    /// Address and size of function `i`.
    pub fn entry(&self, i: usize) -> Option<Entry> {
        let at = self.functab + i * FUNCTAB_ENTRY;
        let start = self.u32(&self.data, at)?;
        let next = self.u32(&self.data, at + FUNCTAB_ENTRY)?;
        // The next entry also counts the padding between functions (INT3
        // on amd64); the pc-value tables end where the code does, which
        // is the size the symbol table would give.
        let span = u64::from(next.checked_sub(start)?);
        let size = self
            .code_size(i)
            .filter(|&size| size > 0 && size <= span)
            .unwrap_or(span);
        Some(Entry {
            address: self.text_start.checked_add(u64::from(start))?,
            size,
        })
    }

    /// Where function `i`'s stack-pointer-delta table ends: the end of its
    /// code. The table is (value delta, pc delta) varint pairs, ended by a
    /// zero value delta after the first pair (runtime.step).
    fn code_size(&self, i: usize) -> Option<u64> {
        let func = self.func(&self.data, i)?;
        let pcsp = self.u32(&self.data, func + FUNC_PCSP)?;
        if pcsp == 0 {
            return None;
        }
        let mut p = self.pctab.checked_add(pcsp as usize)?;
        let mut pc = 0u64;
        let mut first = true;
        loop {
            let (value_delta, used) = uvarint(self.data.get(p..)?)?;
            if value_delta == 0 && !first {
                return Some(pc);
            }
            p += used;
            let (pc_delta, used) = uvarint(self.data.get(p..)?)?;
            p += used;
            pc = pc.checked_add(pc_delta.checked_mul(self.min_lc)?)?;
            first = false;
        }
    }
}

/// Index of the first byte of a segment loaded at `address` whose address
/// is aligned to `align`: the linker aligns anything holding pointers.
fn first_aligned(address: u64, align: u8) -> usize {
    let align = u64::from(align);
    ((align - address % align) % align) as usize
}

/// Go's `binary.Uvarint` for 32-bit values (what the pc-value tables hold).
fn uvarint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of three functions (`a`, `main.b`, `c`) at text 0x401000,
    /// laid out as cmd/link does, little-endian, 64-bit.
    fn synthetic() -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&MAGIC_GO120.to_le_bytes());
        t.extend_from_slice(&[0, 0, 1, 8]);
        let header_len = 8 + 8 * 8;
        let names = b"a\0main.b\0c\0";
        let funcname = header_len;
        let cu = funcname + names.len();
        let pctab = cu;
        // pcsp tables: b's code is 0x30 bytes (2 pairs), others none.
        let pcsp_b = [0x02, 0x10, 0x04, 0x20, 0x00];
        let functab = pctab + 1 + pcsp_b.len();
        for word in [3u64, 0, 0x401000, funcname as u64, cu as u64, cu as u64] {
            t.extend_from_slice(&word.to_le_bytes());
        }
        t.extend_from_slice(&(pctab as u64).to_le_bytes());
        t.extend_from_slice(&(functab as u64).to_le_bytes());
        t.extend_from_slice(names);
        t.push(0); // pctab offset 0 means "no table"
        t.extend_from_slice(&pcsp_b);
        assert_eq!(t.len(), functab);
        let entries = [0x0u32, 0x40, 0x80];
        let funcs_at = 3 * 8 + 4;
        for (i, entry) in entries.iter().enumerate() {
            t.extend_from_slice(&entry.to_le_bytes());
            t.extend_from_slice(&((funcs_at + i * 20) as u32).to_le_bytes());
        }
        t.extend_from_slice(&0xa0u32.to_le_bytes());
        let name_offs = [0u32, 2, 9];
        for (i, entry) in entries.iter().enumerate() {
            let pcsp = if i == 1 { 1u32 } else { 0 };
            t.extend_from_slice(&entry.to_le_bytes());
            t.extend_from_slice(&name_offs[i].to_le_bytes());
            t.extend_from_slice(&[0; 8]);
            t.extend_from_slice(&pcsp.to_le_bytes());
        }
        t
    }

    #[test]
    fn finds_functions_and_their_code_size() {
        let table = Pclntab::parse(synthetic(), 0, 8, true).unwrap();
        assert_eq!(table.len(), 3);
        let found = table.find(&["main.b", "c", "nope", "a"]);
        assert_eq!(
            found,
            [
                // 0x10 + 0x20 from the pcsp table, not 0x40 to `c`.
                Some(Entry {
                    address: 0x401040,
                    size: 0x30
                }),
                Some(Entry {
                    address: 0x401080,
                    size: 0x20
                }),
                None,
                Some(Entry {
                    address: 0x401000,
                    size: 0x40
                }),
            ]
        );
    }

    #[test]
    fn is_found_inside_a_segment() {
        let mut segment = vec![0xffu8; 40];
        segment.extend_from_slice(&synthetic());
        segment.extend_from_slice(&[0; 16]);
        let table = Pclntab::search(segment, 0x6a4000, 8, true).unwrap();
        assert_eq!(table.find(&["c"])[0].unwrap().address, 0x401080);
        // Not at an aligned address: not a candidate.
        let mut segment = vec![0xffu8; 41];
        segment.extend_from_slice(&synthetic());
        assert!(Pclntab::search(segment, 0x6a4000, 8, true).is_err());
    }

    #[test]
    fn rejects_old_and_foreign_layouts() {
        let mut data = synthetic();
        data[..4].copy_from_slice(&0xffff_fffau32.to_le_bytes());
        assert_eq!(
            Pclntab::search(data, 0, 8, true).err(),
            Some(Some(0xffff_fffa))
        );
        assert!(Pclntab::parse(synthetic(), 0, 4, true).is_err());
    }

    #[test]
    fn hostile_tables_never_panic() {
        let good = synthetic();
        for at in 0..good.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut data = good.clone();
                data[at] = value;
                if let Ok(table) = Pclntab::parse(data, 0, 8, true) {
                    let _ = table.find(&["a", "main.b", "c"]);
                    for i in 0..table.len() {
                        let _ = table.entry(i);
                    }
                }
            }
        }
        for len in 0..good.len() {
            let _ = Pclntab::parse(good[..len].to_vec(), 0, 8, true);
        }
    }
}
