//! Where a Go function returns: the file offsets of its RET instructions.
//!
//! Return probes on Go functions go there, never in uretprobes: a
//! uretprobe swaps the return address on the stack, and Go moves and
//! copies goroutine stacks (and walks them for tracebacks and GC), which
//! then finds the trampoline's address and crashes the process.
use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic};
use object::Architecture;

use super::{GoError, elf::Elf, symbols::Function};

/// Largest function decoded: Go's largest generated functions are a few
/// hundred KiB; anything larger is a wrong size.
const MAX_FUNCTION: u64 = 16 << 20;

/// `function`'s machine code, read once for every analysis of it; an
/// error for code that is not x86-64 or implausibly large.
pub(crate) fn code(elf: &Elf, function: &Function) -> Result<Vec<u8>, GoError> {
    if elf.architecture != Architecture::X86_64 {
        return Err(elf.unsupported(format!(
            "return probes need x86-64 code, {} is {:?}",
            function.name, elf.architecture
        )));
    }
    if function.size > MAX_FUNCTION {
        return Err(elf.malformed(format!(
            "{} is implausibly large ({} bytes)",
            function.name, function.size
        )));
    }
    elf.read(function.entry_offset, function.size)
}

/// File offsets of every RET (`C3`, `C2 iw`) in `function`, whose code is
/// `code`.
pub(crate) fn ret_offsets_in(
    elf: &Elf,
    function: &Function,
    code: &[u8],
) -> Result<Vec<u64>, GoError> {
    let rets = rets_in(code, function.address)
        .map_err(|at| elf.malformed(format!("{}+{at:#x}: not an instruction", function.name)))?;
    Ok(rets
        .into_iter()
        .map(|at| function.entry_offset + at)
        .collect())
}

/// Offsets into `code` (64-bit x86, loaded at `address`) of its RET
/// instructions. Fails, with the offset, on bytes that do not decode: the
/// decoder would be out of step with the code from there on, and a probe
/// in the middle of an instruction corrupts the process.
fn rets_in(code: &[u8], address: u64) -> Result<Vec<u64>, u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut rets = Vec::new();
    for instruction in &mut decoder {
        let at = instruction.ip() - address;
        if instruction.code() == Code::INVALID {
            return Err(at);
        }
        if instruction.mnemonic() == Mnemonic::Ret {
            rets.push(at);
        }
    }
    Ok(rets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rets_not_bytes_that_look_like_them() {
        let code = [
            0x55, // push rbp
            0xb8, 0xc3, 0x00, 0x00, 0x00, // mov eax, 0xc3: a C3 byte, not a RET
            0x74, 0x01, // je +1
            0xc3, // ret
            0xc2, 0x08, 0x00, // ret 8
            0xcc, 0xcc, // int3 padding
        ];
        assert_eq!(rets_in(&code, 0x401000), Ok(vec![8, 9]));
        assert_eq!(rets_in(&[], 0x401000), Ok(vec![]));
    }

    #[test]
    fn undecodable_bytes_are_an_error() {
        // 0x06 (push es) does not exist in 64-bit mode.
        assert_eq!(rets_in(&[0x90, 0x06, 0xc3], 0), Err(1));
        // An instruction cut short by the end of the function.
        assert_eq!(rets_in(&[0xc3, 0xb8, 0x01], 0), Err(1));
    }
}
