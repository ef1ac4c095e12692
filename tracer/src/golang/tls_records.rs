//! Where Go's crypto/tls hands over a record's plaintext: the RETs of
//! `(*Conn).readRecordOrCCS`, which decrypts one record into the Conn's
//! `input` (a bytes.Reader) and is called only when `input` is empty (it
//! refuses otherwise). A probe there sees each record once, however many
//! `Read` calls the application then makes to drain it (Go's HTTP/2 server
//! reads a frame's header and payload in two), and costs nothing for the
//! reads a record already served.
//!
//! What the probe needs, checked on the code, else the agent probes `Read`:
//! - the receiver stays in its spill slot (found at [RSP+8] at a RET): the
//!   function stores RAX there, nothing else writes the slot or takes its
//!   address, and every RET the store does not dominate is reached
//!   without any call (an early error return: no record was read there);
//!   those RETs are not probed;
//! - no RET that only passes on a nested call's result is probed (the
//!   retry path, `return c.retryReadRecord(...)`, whose inner
//!   readRecordOrCCS has its own RETs probed): a record would count twice;
//! - no indirect jump, and no jump out of the function but to its own
//!   entry (the morestack path).
use std::collections::{HashMap, HashSet};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, Register};

use super::{
    GoError,
    elf::Elf,
    spills::{Access, frame_setup, slot_access},
    symbols::Function,
};

/// Largest function decoded (readRecordOrCCS is about 12 KiB).
const MAX_BYTES: u64 = 256 << 10;

/// File offsets of the RETs of `function` (readRecordOrCCS) to probe, or
/// `None` when its code is not of the shape the probe relies on.
/// `nested` are the addresses of the functions whose result a RET may
/// pass on (retryReadRecord, and the function itself).
pub(crate) fn record_returns(
    elf: &Elf,
    function: &Function,
    nested: &[u64],
) -> Result<Option<Vec<u64>>, GoError> {
    if function.size > MAX_BYTES {
        return Ok(None);
    }
    let code = elf.read(function.entry_offset, function.size)?;
    Ok(returns_in(&code, function.address, nested).map(|rets| {
        rets.into_iter()
            .map(|at| function.entry_offset + at)
            .collect()
    }))
}

/// [`record_returns`] of `code` loaded at `address`: offsets into `code`.
fn returns_in(code: &[u8], address: u64, nested: &[u64]) -> Option<Vec<u64>> {
    let instructions: Vec<Instruction> = Decoder::with_ip(64, code, address, DecoderOptions::NONE)
        .into_iter()
        .collect();
    if instructions.is_empty() || instructions.iter().any(Instruction::is_invalid) {
        return None;
    }
    let index: HashMap<u64, usize> = instructions
        .iter()
        .enumerate()
        .map(|(i, ins)| (ins.ip(), i))
        .collect();
    let successors = successors(&instructions, &index, address)?;
    let (_, frame) = frame_setup(&instructions)?;
    // The receiver's spill, and no other write to its slot.
    let mut spill = None;
    for (i, ins) in instructions.iter().enumerate() {
        match slot_access(ins, frame, 0) {
            None | Some(Access::Read) => {}
            Some(Access::Spill(Register::RAX)) if spill.is_none() => spill = Some(i),
            Some(_) => return None,
        }
    }
    let spill = spill?;
    // Paths from the entry that avoid the spill: the RETs they reach are
    // not probed, and must be reached with no call on the way.
    let undominated = reach(&successors, &instructions, spill)?;
    let branch_targets: HashSet<usize> = instructions
        .iter()
        .filter(|ins| is_branch(ins))
        .filter_map(|ins| index.get(&ins.near_branch_target()).copied())
        .collect();
    let mut probed = Vec::new();
    for (i, ins) in instructions.iter().enumerate() {
        if ins.mnemonic() != Mnemonic::Ret || undominated.contains(&i) {
            continue;
        }
        if passes_on_nested(&instructions, &branch_targets, i, nested) {
            continue;
        }
        probed.push(ins.ip() - address);
    }
    (!probed.is_empty()).then_some(probed)
}

/// Each instruction's successors (indexes); `None` on an indirect jump or
/// a jump out of the function other than to its entry.
fn successors(
    instructions: &[Instruction],
    index: &HashMap<u64, usize>,
    address: u64,
) -> Option<Vec<Vec<usize>>> {
    let last = instructions.len() - 1;
    let next = |i: usize| if i < last { vec![i + 1] } else { vec![] };
    instructions
        .iter()
        .enumerate()
        .map(|(i, ins)| match ins.flow_control() {
            FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall => Some(next(i)),
            FlowControl::Return | FlowControl::Interrupt | FlowControl::Exception => Some(vec![]),
            FlowControl::UnconditionalBranch => {
                let target = ins.near_branch_target();
                match index.get(&target) {
                    Some(&t) => Some(vec![t]),
                    // The morestack path starts the function over.
                    None if target == address => Some(vec![0]),
                    None => None,
                }
            }
            FlowControl::ConditionalBranch => {
                let mut s = next(i);
                s.push(*index.get(&ins.near_branch_target())?);
                Some(s)
            }
            _ => None,
        })
        .collect()
}

fn is_branch(ins: &Instruction) -> bool {
    matches!(
        ins.flow_control(),
        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
    )
}

/// The instructions reachable from the entry without going through
/// `spill`; `None` if one of the RETs among them can be reached after a
/// call.
fn reach(
    successors: &[Vec<usize>],
    instructions: &[Instruction],
    spill: usize,
) -> Option<HashSet<usize>> {
    // (instruction, a call passed on the way)
    let mut seen: HashSet<(usize, bool)> = HashSet::new();
    let mut stack = vec![(0, false)];
    while let Some((i, called)) = stack.pop() {
        if i == spill || !seen.insert((i, called)) {
            continue;
        }
        let ins = &instructions[i];
        if ins.mnemonic() == Mnemonic::Ret && called {
            return None;
        }
        let called = called
            || matches!(
                ins.flow_control(),
                FlowControl::Call | FlowControl::IndirectCall
            );
        // Back to the entry is the morestack path starting the function
        // over: nothing before it read a record.
        stack.extend(successors[i].iter().map(|&s| (s, called && s != 0)));
    }
    Some(seen.into_iter().map(|(i, _)| i).collect())
}

/// Whether the RET at `ret` ends straight-line code (no branch into it)
/// that starts right after a call to one of `nested`.
fn passes_on_nested(
    instructions: &[Instruction],
    branch_targets: &HashSet<usize>,
    ret: usize,
    nested: &[u64],
) -> bool {
    let mut i = ret;
    while i > 0 {
        if branch_targets.contains(&i) {
            return false;
        }
        i -= 1;
        let ins = &instructions[i];
        match ins.flow_control() {
            FlowControl::Next => {}
            FlowControl::Call => return nested.contains(&ins.near_branch_target()),
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: u64 = 0x40_1000;
    const RETRY: u64 = 0x40_9000;
    const OTHER: u64 = 0x40_a000;

    /// Just enough of an assembler: rel32 branches to labels or addresses.
    #[derive(Default)]
    struct Asm {
        code: Vec<u8>,
        labels: HashMap<&'static str, usize>,
        fixups: Vec<(usize, &'static str)>,
    }

    impl Asm {
        fn bytes(&mut self, b: &[u8]) -> &mut Self {
            self.code.extend_from_slice(b);
            self
        }
        fn label(&mut self, name: &'static str) -> &mut Self {
            self.labels.insert(name, self.code.len());
            self
        }
        /// `op` (1 or 2 bytes) with a rel32 to `label`.
        fn to(&mut self, op: &[u8], label: &'static str) -> &mut Self {
            self.code.extend_from_slice(op);
            self.fixups.push((self.code.len(), label));
            self.code.extend_from_slice(&[0; 4]);
            self
        }
        fn call(&mut self, address: u64) -> &mut Self {
            let next = AT + self.code.len() as u64 + 5;
            let rel = (address as i64 - next as i64) as i32;
            self.code.push(0xe8);
            self.code.extend_from_slice(&rel.to_le_bytes());
            self
        }
        fn epilogue(&mut self) -> &mut Self {
            self.bytes(&[0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3]) // add rsp, 0x20; pop rbp; ret
        }
        fn finish(&mut self) -> Vec<u8> {
            for &(at, label) in &self.fixups {
                let rel = self.labels[label] as i64 - (at as i64 + 4);
                self.code[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
            }
            self.code.clone()
        }
        fn offset(&self, label: &str) -> u64 {
            self.labels[label] as u64
        }
    }

    const SPILL: [u8; 5] = [0x48, 0x89, 0x44, 0x24, 0x30]; // mov [rsp+0x30], rax

    /// readRecordOrCCS's shape: an early error return before the spill, a
    /// record's return, a retry's return, the morestack path.
    fn reader(after_spill: &[u8]) -> Asm {
        let mut a = Asm::default();
        a.bytes(&[0x49, 0x3b, 0x66, 0x10]) // cmp rsp, [r14+0x10]
            .to(&[0x0f, 0x86], "morestack")
            .bytes(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20]) // frame 0x20
            .bytes(&[0x48, 0x85, 0xd2]) // test rdx, rdx
            .to(&[0x0f, 0x85], "early")
            .bytes(&SPILL)
            .bytes(after_spill)
            .call(OTHER)
            .bytes(&[0x48, 0x85, 0xc0]) // test rax, rax
            .to(&[0x0f, 0x85], "retry")
            .label("record")
            .epilogue()
            .label("retry")
            .call(RETRY)
            .label("retry_ret")
            .epilogue()
            .label("early")
            .epilogue()
            .label("morestack")
            .call(OTHER)
            .bytes(&[0xe9]);
        let rel = (AT as i64 - (AT as i64 + a.code.len() as i64 + 4)) as i32;
        a.bytes(&rel.to_le_bytes());
        a
    }

    #[test]
    fn the_record_return_is_probed_the_early_and_retry_ones_not() {
        let mut a = reader(&[]);
        let code = a.finish();
        let ret = |label| a.offset(label) + 5; // the RET after add and pop
        let found = returns_in(&code, AT, &[AT, RETRY]).unwrap();
        assert_eq!(found, vec![ret("record")]);
        assert!(!found.contains(&ret("retry_ret")) && !found.contains(&ret("early")));
        // Not told retryReadRecord is one: its return is probed too.
        assert_eq!(
            returns_in(&code, AT, &[AT]).unwrap(),
            vec![ret("record"), ret("retry_ret")]
        );
    }

    #[test]
    fn a_return_past_a_call_without_the_spill_is_refused() {
        // A call before the spill: the early return may follow a call.
        let mut a = Asm::default();
        a.bytes(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20])
            .call(OTHER)
            .bytes(&[0x48, 0x85, 0xd2])
            .to(&[0x0f, 0x85], "early")
            .bytes(&SPILL)
            .epilogue()
            .label("early")
            .epilogue();
        assert_eq!(returns_in(&a.finish(), AT, &[AT, RETRY]), None);
    }

    #[test]
    fn another_write_to_the_slot_or_its_address_is_refused() {
        let mov_rdx = [0x48, 0x89, 0x54, 0x24, 0x30]; // mov [rsp+0x30], rdx
        assert_eq!(returns_in(&reader(&mov_rdx).finish(), AT, &[AT]), None);
        let via_rbp = [0x48, 0x89, 0x55, 0x10]; // mov [rbp+0x10], rdx: the same slot
        assert_eq!(returns_in(&reader(&via_rbp).finish(), AT, &[AT]), None);
        let lea = [0x48, 0x8d, 0x7c, 0x24, 0x30]; // lea rdi, [rsp+0x30]
        assert_eq!(returns_in(&reader(&lea).finish(), AT, &[AT]), None);
        // A read of it is fine.
        let load = [0x48, 0x8b, 0x4c, 0x24, 0x30]; // mov rcx, [rsp+0x30]
        assert!(returns_in(&reader(&load).finish(), AT, &[AT]).is_some());
    }

    #[test]
    fn indirect_jumps_and_odd_shapes_are_refused() {
        let jmp_rcx = [0xff, 0xe1]; // jmp rcx
        assert_eq!(returns_in(&reader(&jmp_rcx).finish(), AT, &[AT]), None);
        // No frame.
        assert_eq!(
            returns_in(&[0x48, 0x89, 0x44, 0x24, 0x08, 0xc3], AT, &[AT]),
            None
        );
        // No spill.
        let mut a = Asm::default();
        a.bytes(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20])
            .epilogue();
        assert_eq!(returns_in(&a.finish(), AT, &[AT]), None);
        assert_eq!(returns_in(&[], AT, &[AT]), None);
        assert_eq!(returns_in(&[0x06], AT, &[AT]), None);
    }
}
