//! Whether a Go function keeps its first register arguments in their
//! spill slots for its whole run, so that a probe on one of its RET
//! instructions can read them there, with no probe at its entry.
//!
//! Under Go's register ABI the caller reserves a slot for each register
//! argument right above the return address; a function that needs an
//! argument after a call stores it there (its "spill"). At a RET the stack
//! pointer is back where it was at entry, so the slots are at [RSP+8],
//! [RSP+16], ... A read call then costs one uprobe trap instead of two
//! (entry and return): about 14 µs on these machines.
//!
//! That holds only where the code says so, checked per binary: the
//! function sets up its frame (`PUSH RBP; MOV RBP, RSP; SUB RSP, n`),
//! stores each argument register into its slot before its first branch or
//! call, and nothing else in it writes those slots (the morestack path
//! stores the same registers below the frame, at [RSP+8]...). Anything
//! else, and the entry probe stays.
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

use super::symbols::Function;

/// Go's integer argument registers, in order (Go 1.17+ on amd64).
const ARGUMENT_REGISTERS: [Register; 9] = [
    Register::RAX,
    Register::RBX,
    Register::RCX,
    Register::RDI,
    Register::RSI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];

/// Largest function looked at (Read is about 1 KiB).
const MAX_BYTES: u64 = 64 << 10;

/// How many of `function`'s first integer arguments it spills to their
/// slots at once and never overwrites there, from its code `code` (0 when
/// the code is not of the shape checked, or larger than this module reads).
pub(crate) fn spilled_arguments(function: &Function, code: &[u8]) -> usize {
    if code.len() as u64 > MAX_BYTES {
        return 0;
    }
    spilled_in(code, function.address)
}

/// [`spilled_arguments`] of the code `code`, loaded at `address`.
fn spilled_in(code: &[u8], address: u64) -> usize {
    let mut instructions = Vec::new();
    for instruction in Decoder::with_ip(64, code, address, DecoderOptions::NONE) {
        if instruction.is_invalid() {
            return 0;
        }
        instructions.push(instruction);
    }
    let Some((frame_at, frame)) = frame_setup(&instructions) else {
        return 0;
    };
    // The straight-line code after the frame is set up: the spills there
    // run on every call, before anything can return or branch.
    let mut spilled = [false; ARGUMENT_REGISTERS.len()];
    // Slots something else writes (or whose address is taken).
    let mut clobbered = [false; ARGUMENT_REGISTERS.len()];
    let mut entry_block = true;
    for (i, instruction) in instructions.iter().enumerate() {
        let in_entry_block = entry_block && i > frame_at;
        if i > frame_at && instruction.flow_control() != FlowControl::Next {
            entry_block = false;
        }
        for (slot, register) in ARGUMENT_REGISTERS.iter().enumerate() {
            match slot_access(instruction, frame, slot) {
                None | Some(Access::Read) => {}
                Some(Access::Spill(r)) if in_entry_block && r == *register => spilled[slot] = true,
                Some(_) => clobbered[slot] = true,
            }
        }
    }
    spilled
        .iter()
        .zip(clobbered)
        .take_while(|(spilled, clobbered)| **spilled && !clobbered)
        .count()
}

/// How an instruction touches an argument's spill slot.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    /// `MOV [slot], reg`: the whole slot, from a register.
    Spill(Register),
    /// Any other write to any of its bytes.
    Write,
    /// `LEA`: its address escapes, anything may write through it.
    Address,
}

/// Where `PUSH RBP; MOV RBP, RSP; SUB RSP, n` ends (its SUB's index) and
/// `n`, in the first instructions past the stack check.
pub(super) fn frame_setup(instructions: &[Instruction]) -> Option<(usize, u64)> {
    let push = instructions
        .iter()
        .take(8)
        .position(|i| i.mnemonic() == Mnemonic::Push && i.op0_register() == Register::RBP)?;
    let mov = instructions.get(push + 1)?;
    let sub = instructions.get(push + 2)?;
    let moves_rsp = mov.mnemonic() == Mnemonic::Mov
        && mov.op0_register() == Register::RBP
        && mov.op1_register() == Register::RSP;
    let subtracts = sub.mnemonic() == Mnemonic::Sub
        && sub.op0_register() == Register::RSP
        && matches!(
            sub.op1_kind(),
            OpKind::Immediate8to64 | OpKind::Immediate32to64
        );
    (moves_rsp && subtracts).then(|| (push + 2, sub.immediate(1)))
}

/// How `instruction`, in the body of a function whose frame is `frame`
/// bytes, touches the spill slot of its argument `slot`: [entry RSP + 8 +
/// 8 × slot], that is body RSP + frame + 16 + 8 × slot, or RBP + 16 + 8 ×
/// slot. Any access that overlaps the slot's 8 bytes counts.
pub(super) fn slot_access(instruction: &Instruction, frame: u64, slot: usize) -> Option<Access> {
    let memory = (0..instruction.op_count()).find(|&i| instruction.op_kind(i) == OpKind::Memory)?;
    if instruction.memory_index() != Register::None {
        return None;
    }
    let displacement = instruction.memory_displacement64() as i64;
    let at = match instruction.memory_base() {
        Register::RSP => displacement,
        Register::RBP => displacement + frame as i64,
        _ => return None,
    };
    let start = frame as i64 + 16 + 8 * slot as i64;
    let size = instruction.memory_size().size().max(1) as i64;
    if at + size <= start || at >= start + 8 {
        return None;
    }
    if instruction.mnemonic() == Mnemonic::Lea {
        return Some(Access::Address);
    }
    let writes = memory == 0
        && !matches!(
            instruction.mnemonic(),
            Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Nop | Mnemonic::Push
        );
    Some(match writes {
        false => Access::Read,
        true if instruction.mnemonic() == Mnemonic::Mov
            && at == start
            && size == 8
            && instruction.op1_kind() == OpKind::Register =>
        {
            Access::Spill(instruction.op1_register())
        }
        true => Access::Write,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of crypto/tls.(*Conn).Read from Go 1.25 (frame 0x58):
    /// receiver and `b` spilled to 0x68, 0x70, 0x78(SP) before the first
    /// call.
    const PROLOGUE: [u8; 39] = [
        0x49, 0x3b, 0x66, 0x10, // cmp rsp, [r14+0x10]
        0x0f, 0x86, 0x50, 0x00, 0x00, 0x00, // jbe morestack
        0x55, // push rbp
        0x48, 0x89, 0xe5, // mov rbp, rsp
        0x48, 0x83, 0xec, 0x58, // sub rsp, 0x58
        0x66, 0x44, 0x0f, 0xd6, 0x7c, 0x24, 0x50, // movq [rsp+0x50], xmm15
        0x48, 0x89, 0x44, 0x24, 0x68, // mov [rsp+0x68], rax
        0x48, 0x89, 0x4c, 0x24, 0x78, // mov [rsp+0x78], rcx
        0x48, 0x89, 0x5c, 0x24, // mov [rsp+0x70], rbx (last byte below)
    ];

    fn function(rest: &[u8]) -> Vec<u8> {
        let mut code = PROLOGUE.to_vec();
        code.push(0x70);
        code.extend_from_slice(rest);
        code
    }

    const CALL: [u8; 5] = [0xe8, 0, 0, 0, 0];
    const EPILOGUE: [u8; 6] = [0x48, 0x83, 0xc4, 0x58, 0x5d, 0xc3]; // add rsp, 0x58; pop rbp; ret
    /// The morestack path: the arguments stored at the entry's RSP.
    const MORESTACK: [u8; 15] = [
        0x48, 0x89, 0x44, 0x24, 0x08, // mov [rsp+8], rax
        0x48, 0x89, 0x5c, 0x24, 0x10, // mov [rsp+0x10], rbx
        0x48, 0x89, 0x4c, 0x24, 0x18, // mov [rsp+0x18], rcx
    ];

    #[test]
    fn go_spills_its_arguments_before_the_first_call() {
        let mut rest = CALL.to_vec();
        rest.extend_from_slice(&[0x48, 0x8b, 0x4c, 0x24, 0x78]); // mov rcx, [rsp+0x78]: a read
        rest.extend_from_slice(&EPILOGUE);
        rest.extend_from_slice(&MORESTACK);
        assert_eq!(spilled_in(&function(&rest), 0x593cc0), 3);
    }

    #[test]
    fn a_later_write_to_a_slot_stops_the_count_there() {
        let mut rest = CALL.to_vec();
        rest.extend_from_slice(&[0x48, 0x89, 0x54, 0x24, 0x70]); // mov [rsp+0x70], rdx
        rest.extend_from_slice(&EPILOGUE);
        assert_eq!(spilled_in(&function(&rest), 0), 1);
        // The same through RBP (RBP+0x18 is the slot at RSP+0x70).
        let mut rest = CALL.to_vec();
        rest.extend_from_slice(&[0x48, 0x89, 0x55, 0x18]); // mov [rbp+0x18], rdx
        rest.extend_from_slice(&EPILOGUE);
        assert_eq!(spilled_in(&function(&rest), 0), 1);
    }

    #[test]
    fn a_wider_write_over_a_slot_counts() {
        // movups [rsp+0x60], xmm15: 16 bytes, the receiver's slot among them.
        let mut rest = CALL.to_vec();
        rest.extend_from_slice(&[0x44, 0x0f, 0x11, 0x7c, 0x24, 0x60]);
        rest.extend_from_slice(&EPILOGUE);
        assert_eq!(spilled_in(&function(&rest), 0), 0);
    }

    #[test]
    fn a_slot_whose_address_is_taken_is_not_trusted() {
        let mut rest = vec![0x48, 0x8d, 0x7c, 0x24, 0x68]; // lea rdi, [rsp+0x68]
        rest.extend_from_slice(&EPILOGUE);
        assert_eq!(spilled_in(&function(&rest), 0), 0);
    }

    #[test]
    fn a_spill_after_a_branch_does_not_count() {
        // The receiver's spill only: RBX and RCX come after a JE.
        let mut code = PROLOGUE[..30].to_vec();
        code.extend_from_slice(&[0x74, 0x00]); // je +0
        code.extend_from_slice(&PROLOGUE[30..]);
        code.push(0x70);
        code.extend_from_slice(&EPILOGUE);
        assert_eq!(spilled_in(&code, 0), 1);
    }

    #[test]
    fn other_shapes_are_not_trusted() {
        // No frame set up (a leaf function).
        assert_eq!(spilled_in(&[0x48, 0x89, 0x44, 0x24, 0x08, 0xc3], 0), 0);
        // Bytes that do not decode.
        assert_eq!(spilled_in(&[0x06], 0), 0);
        assert_eq!(spilled_in(&[], 0), 0);
        // A frame, no spill.
        assert_eq!(
            spilled_in(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x58, 0xc3], 0),
            0
        );
    }
}
