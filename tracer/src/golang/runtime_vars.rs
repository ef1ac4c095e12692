//! Where the Go runtime keeps its table of goroutines (`runtime.allgs`, a
//! `[]*g`), which the kernel side searches for the ancestors of a
//! goroutine whose parent made no syscall.
//!
//! Data symbols are gone from stripped binaries and pclntab only names
//! functions, so the address is read off the code instead: the runtime's
//! `allgadd` appends to `allgs`, loading and storing the slice's pointer,
//! length and capacity, three words at X, X+8 and X+16 addressed relative
//! to the instruction pointer. No other variable it touches is a slice.
//! The same rule serves binaries with symbols, so one path is tested
//! against `.symtab` on every Go release.
use std::collections::BTreeSet;

use iced_x86::{Decoder, DecoderOptions};

use super::{
    GoError,
    elf::Elf,
    symbols::{self, Function},
};

const ALLGADD: &str = "runtime.allgadd";
/// ELF e_type of position-independent executables.
const ET_DYN: u16 = 3;

/// Whether the executable is position-independent: its link-time
/// addresses then move by the process's load bias.
pub(crate) fn is_pie(elf: &Elf) -> Result<bool, GoError> {
    let header = elf.read(16, 2)?;
    Ok(u16::from_le_bytes([header[0], header[1]]) == ET_DYN)
}

/// The link-time address of `runtime.allgs`; `None` when it cannot be
/// told (no `allgadd`, code of another shape).
pub(crate) fn allgs_address(elf: &Elf) -> Result<Option<u64>, GoError> {
    let (_, found) = symbols::find(elf, &[ALLGADD])?;
    let Some(Some(allgadd)) = found.into_iter().next() else {
        return Ok(None);
    };
    // A slice header lives in writable data (.bss): anything else is a
    // misreading, and the kernel would search garbage.
    Ok(slice_in(elf, &allgadd)?.filter(|&at| {
        elf.segments()
            .iter()
            .any(|s| s.is_writable() && at >= s.address && at + 24 <= s.address + s.mem_size)
    }))
}

fn slice_in(elf: &Elf, function: &Function) -> Result<Option<u64>, GoError> {
    let code = elf.read(function.entry_offset, function.size.min(4096))?;
    Ok(slice_target(&code, function.address))
}

/// The X such that X, X+8 and X+16 are all addressed IP-relative in `code`
/// (loaded at `address`), when exactly one such X exists.
fn slice_target(code: &[u8], address: u64) -> Option<u64> {
    let mut targets = BTreeSet::new();
    for instruction in Decoder::with_ip(64, code, address, DecoderOptions::NONE) {
        if instruction.is_ip_rel_memory_operand() {
            targets.insert(instruction.ip_rel_memory_address());
        }
    }
    let mut slices = targets
        .iter()
        .copied()
        .filter(|&x| targets.contains(&(x + 8)) && targets.contains(&(x + 16)));
    let first = slices.next()?;
    slices.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_one_slice_among_ip_relative_operands() {
        // At 0x1000: lea rax,[rip+0x100]; mov rcx,[rip+0x210];
        // mov rbx,[rip+0x201]; mov rax,[rip+0x1f2]: 0x1107 is a lock,
        // 0x1220/0x1218/0x1210 the slice's cap, len and ptr.
        let code = [
            0x48, 0x8d, 0x05, 0x00, 0x01, 0x00, 0x00, // 0x1000 lea
            0x48, 0x8b, 0x0d, 0x12, 0x02, 0x00, 0x00, // 0x1007 → 0x1220
            0x48, 0x8b, 0x1d, 0x03, 0x02, 0x00, 0x00, // 0x100e → 0x1218
            0x48, 0x8b, 0x05, 0xf4, 0x01, 0x00, 0x00, // 0x1015 → 0x1210
        ];
        assert_eq!(slice_target(&code, 0x1000), Some(0x1210));
        // Without the capacity word there is no slice.
        assert_eq!(slice_target(&code[..14], 0x1000), None);
    }
}
