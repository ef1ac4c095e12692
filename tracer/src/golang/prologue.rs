//! Where a Go function's body starts: past the stack check of its
//! prologue. When that check finds the goroutine's stack too small, the
//! function calls `runtime.morestack`, which moves the stack, and then
//! jumps back to its first instruction: the check runs again. A probe at
//! the first instruction then fires twice for one call (a new goroutine's
//! first function often grows its stack: a Go server's handler start was
//! counted twice now and then). Past the check, it fires once; the
//! arguments are still in their registers there (the check only compares,
//! and may compute into R12, which carries no argument).
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use super::{GoError, elf::Elf, symbols::Function};

/// The check is in the first few instructions: `CMP RSP, [R14+16]` (or an
/// `LEA`/`MOV`+`SUB` into R12 first for large frames), then `JBE`.
const PROLOGUE_INSTRUCTIONS: usize = 8;
/// Bytes read to find it (x86 instructions are at most 15 bytes).
const PROLOGUE_BYTES: u64 = PROLOGUE_INSTRUCTIONS as u64 * 15;
/// Offset of `g.stackguard0`, which the check compares the stack with
/// (`g` is in R14 under Go's register ABI, Go 1.17+).
const STACKGUARD0: u64 = 16;

/// File offset of `function`'s body: the instruction after its prologue's
/// stack check, or its first instruction when it has none (a NOSPLIT
/// function never grows its stack, and never runs its entry twice).
pub(crate) fn body_offset(elf: &Elf, function: &Function) -> Result<u64, GoError> {
    let code = elf.read(function.entry_offset, function.size.min(PROLOGUE_BYTES))?;
    Ok(body_offset_in(function, &code))
}

/// [`body_offset`] of `function`, whose code (or its start) is `code`.
pub(crate) fn body_offset_in(function: &Function, code: &[u8]) -> u64 {
    function.entry_offset + body_in(code, function.address)
}

/// Offset into `code` (loaded at `address`) of the instruction after the
/// stack check's `JBE`, or 0.
fn body_in(code: &[u8], address: u64) -> u64 {
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut compared = false;
    for instruction in decoder.into_iter().take(PROLOGUE_INSTRUCTIONS) {
        if instruction.is_invalid() {
            return 0;
        }
        if compares_with_stackguard(&instruction) {
            compared = true;
        } else if compared && instruction.mnemonic() == Mnemonic::Jbe {
            return instruction.next_ip() - address;
        }
    }
    0
}

/// `CMP reg, [R14+16]`.
fn compares_with_stackguard(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Cmp
        && instruction.op_count() == 2
        && instruction.op1_kind() == OpKind::Memory
        && instruction.memory_base() == Register::R14
        && instruction.memory_index() == Register::None
        && instruction.memory_displacement64() == STACKGUARD0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_compare_the_stack_pointer() {
        let code = [
            0x49, 0x3b, 0x66, 0x10, // cmp rsp, [r14+0x10]
            0x76, 0x20, // jbe morestack
            0x55, // push rbp: the body
            0x48, 0x89, 0xe5, // mov rbp, rsp
        ];
        assert_eq!(body_in(&code, 0x401000), 6);
    }

    #[test]
    fn larger_frames_compare_r12() {
        let code = [
            0x4c, 0x8d, 0x64, 0x24, 0xc8, // lea r12, [rsp-0x38]
            0x4d, 0x3b, 0x66, 0x10, // cmp r12, [r14+0x10]
            0x0f, 0x86, 0x00, 0x01, 0x00, 0x00, // jbe morestack (rel32)
            0x55, // push rbp
        ];
        assert_eq!(body_in(&code, 0x401000), 15);
    }

    #[test]
    fn huge_frames_check_for_wrap_around_first() {
        let code = [
            0x49, 0x89, 0xe4, // mov r12, rsp
            0x49, 0x81, 0xec, 0x00, 0x20, 0x00, 0x00, // sub r12, 0x2000
            0x72, 0x10, // jb morestack
            0x4d, 0x3b, 0x66, 0x10, // cmp r12, [r14+0x10]
            0x76, 0x0a, // jbe morestack
            0x55, // push rbp
        ];
        assert_eq!(body_in(&code, 0x401000), 18);
    }

    #[test]
    fn no_check_means_the_entry() {
        // NOSPLIT: straight into the body.
        assert_eq!(body_in(&[0x55, 0x48, 0x89, 0xe5, 0xc3], 0x401000), 0);
        // A compare with something else is not the check.
        let other = [
            0x49, 0x3b, 0x66, 0x18, // cmp rsp, [r14+0x18]
            0x76, 0x20, // jbe
            0x55,
        ];
        assert_eq!(body_in(&other, 0x401000), 0);
        // Undecodable bytes: the entry.
        assert_eq!(body_in(&[0x06, 0x49, 0x3b, 0x66, 0x10, 0x76, 0x00], 0), 0);
        assert_eq!(body_in(&[], 0), 0);
    }
}
