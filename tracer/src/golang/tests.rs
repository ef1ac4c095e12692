//! The analysis on real Go binaries, built by every toolchain at hand.
use std::{collections::HashMap, os::unix::fs::FileExt, path::Path, time::Instant};

use super::{
    test_programs::{NoSections, probes},
    *,
};
use crate::golang::pclntab::Pclntab;

const ROUND_TRIP: &str = "net/http.(*persistConn).roundTrip";
const NAMES: [&str; 4] = [ROUND_TRIP, "runtime.allgadd", "main.main", "runtime.goexit"];

fn open(path: &Path) -> Elf {
    Elf::open(path).unwrap().unwrap()
}

#[test]
fn symtab_and_pclntab_agree() {
    for probe in probes("symtab_and_pclntab_agree") {
        let version = &probe.toolchain.version;
        let full = open(&probe.full);
        let via_symtab = symbols::from_symtab(&full, &NAMES).unwrap().unwrap();
        assert!(
            via_symtab.iter().all(Option::is_some),
            "{version}: {via_symtab:?}"
        );
        assert_eq!(
            symbols::from_pclntab(&full, &NAMES).unwrap(),
            via_symtab,
            "{version}"
        );

        // Stripped: no .symtab, so pclntab; the linker lays out the code
        // the same way.
        let stripped = open(&probe.stripped);
        assert!(symbols::from_symtab(&stripped, &NAMES).unwrap().is_none());
        let (source, found) = symbols::find(&stripped, &NAMES).unwrap();
        assert_eq!(source, SymbolSource::Pclntab);
        assert_eq!(found, via_symtab, "{version}: stripped");

        // No section table at all: found by searching the segments.
        let bare = NoSections::of(&probe.stripped);
        let bare = open(&bare.0);
        assert!(!bare.has_sections());
        assert_eq!(
            symbols::find(&bare, &NAMES).unwrap().1,
            via_symtab,
            "{version}: bare"
        );
        println!("{version}: {:?}", via_symtab[0]);
    }
}

/// Every function of the table, not only a few names: address and size
/// (from the pc-value tables) as .symtab has them, and of the two
/// functions an ABI wrapper gives one name, the one .symtab names so.
#[test]
fn every_pclntab_function_matches_symtab() {
    for probe in probes("every_pclntab_function_matches_symtab") {
        let version = &probe.toolchain.version;
        let elf = open(&probe.full);
        let table = Pclntab::locate(&elf).unwrap();
        let mut names: Vec<String> = (0..table.len())
            .map(|i| String::from_utf8_lossy(table.name(i).unwrap()).into_owned())
            .collect();
        names.sort();
        let all = names.len();
        names.dedup();
        // The ELF symbol table spells the `·` of a few generated names
        // (`type:.eq.net.dialResult·1`) as `.`, and linker markers
        // (`go:textfipsstart`) have no pc-value tables to tell their size.
        names.retain(|n| !n.contains('·') && !n.starts_with("go:"));
        let twice = all - names.len();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let symtab = symbols::from_symtab(&elf, &refs).unwrap().unwrap();
        let pclntab = table.find(&refs);
        let mut differ = HashMap::new();
        let mut compared = 0;
        for ((name, sym), entry) in names.iter().zip(&symtab).zip(pclntab) {
            let (Some(sym), Some(entry)) = (sym, entry) else {
                panic!("{version}: {name}: {sym:?} in .symtab, {entry:?} in pclntab");
            };
            compared += 1;
            if (sym.address, sym.size) != (entry.address, entry.size) {
                differ.insert(name.clone(), ((sym.address, sym.size), entry));
            }
        }
        assert!(compared > 1000, "{version}: {compared} functions");
        assert!(differ.is_empty(), "{version}: {differ:#?}");
        println!("{version}: {compared} functions agree ({twice} names twice)");
    }
}

#[test]
fn ret_offsets_point_at_ret_instructions() {
    for probe in probes("ret_offsets_point_at_ret_instructions") {
        for path in [&probe.full, &probe.stripped] {
            let target = inspect(path, &[ROUND_TRIP, "runtime.allgadd"])
                .unwrap()
                .unwrap();
            let file = std::fs::File::open(path).unwrap();
            for function in &target.functions {
                let label = format!("{} {}", path.display(), function.name);
                assert!(!function.return_offsets.is_empty(), "{label}");
                let end = function.entry_offset + function.size;
                for &at in &function.return_offsets {
                    assert!((function.entry_offset..end).contains(&at), "{label}");
                    let mut byte = [0];
                    file.read_exact_at(&mut byte, at).unwrap();
                    assert!(matches!(byte[0], 0xc3 | 0xc2), "{label}+{at:#x}: {byte:x?}");
                }
                println!("{label}: RETs at {:x?}", function.return_offsets);
            }
            assert_eq!(target.functions.len(), 2, "{}", path.display());
        }
    }
}

#[test]
fn body_offsets_are_past_the_stack_check() {
    for probe in probes("body_offsets_are_past_the_stack_check") {
        for path in [&probe.full, &probe.stripped] {
            let target = inspect(path, &[ROUND_TRIP]).unwrap().unwrap();
            let file = std::fs::File::open(path).unwrap();
            let f = &target.functions[0];
            let label = format!("{} {}", path.display(), f.name);
            // roundTrip has a stack check (it is no NOSPLIT function): the
            // body starts past it, right after its JBE (rel8 or rel32).
            assert!(
                f.body_offset > f.entry_offset && f.body_offset < f.entry_offset + 64,
                "{label}: entry {:#x}, body {:#x}",
                f.entry_offset,
                f.body_offset
            );
            let mut before = [0u8; 6];
            file.read_exact_at(&mut before, f.body_offset - 6).unwrap();
            let jbe = before[4] == 0x76 || (before[0] == 0x0f && before[1] == 0x86);
            assert!(jbe, "{label}: {before:x?} before the body");
            println!("{label}: body at +{:#x}", f.body_offset - f.entry_offset);
        }
    }
}

#[test]
fn tls_read_keeps_its_receiver_and_buffer_in_their_spill_slots() {
    let read = tracer_common::tls_probes::GO_READ.1;
    for probe in probes("tls_read_keeps_its_receiver_and_buffer_in_their_spill_slots") {
        for path in [&probe.full, &probe.stripped] {
            let target = inspect(path, &[read, ROUND_TRIP]).unwrap().unwrap();
            let [read, round_trip] = &target.functions[..] else {
                panic!("{}: {:?}", path.display(), target.missing_functions);
            };
            // The receiver, b's pointer and b's length: what a probe on a
            // RET of Read reads, with no entry probe.
            assert!(
                read.spilled_arguments >= 3,
                "{}: {} spills {}",
                path.display(),
                read.name,
                read.spilled_arguments
            );
            println!(
                "{}: {} spills {}, {} spills {}",
                path.display(),
                read.name,
                read.spilled_arguments,
                round_trip.name,
                round_trip.spilled_arguments
            );
        }
    }
}

#[test]
fn tls_record_reader_returns_are_found() {
    let read = tracer_common::tls_probes::GO_READ.1;
    for probe in probes("tls_record_reader_returns_are_found") {
        for path in [&probe.full, &probe.stripped] {
            let target = inspect(path, &[read]).unwrap().unwrap();
            let returns = target
                .tls_record_returns
                .as_ref()
                .unwrap_or_else(|| panic!("{}: readRecordOrCCS not probed", path.display()));
            // Its RETs but the early error return (before the receiver's
            // spill) and those passing on retryReadRecord's result.
            let elf = open(path);
            let (_, found) = symbols::find(
                &elf,
                &[
                    tracer_common::tls_probes::GO_RECORD.1,
                    tracer_common::tls_probes::GO_RETRY_RECORD,
                ],
            )
            .unwrap();
            let (function, retry) = (found[0].as_ref().unwrap(), found[1].as_ref().unwrap());
            let code = returns::code(&elf, function).unwrap();
            let all = returns::ret_offsets_in(&elf, function, &code).unwrap();
            assert!(
                returns.iter().all(|r| all.contains(r)),
                "{}",
                path.display()
            );
            // One RET after each call to retryReadRecord, and the return of
            // `c.in.err` before anything.
            let retries = iced_x86::Decoder::with_ip(
                64,
                &code,
                function.address,
                iced_x86::DecoderOptions::NONE,
            )
            .into_iter()
            .filter(|i| i.is_call_near() && i.near_branch_target() == retry.address)
            .count();
            let left_out = all.len() - returns.len();
            assert_eq!(
                left_out,
                retries + 1,
                "{}: {} of {} RETs left out, {retries} retries",
                path.display(),
                left_out,
                all.len()
            );
            assert!(target.offsets.tls_conn_input > 0, "{}", path.display());
            println!(
                "{}: readRecordOrCCS: {} RETs probed, {left_out} left out; Conn.input at {}",
                path.display(),
                returns.len(),
                target.offsets.tls_conn_input
            );
        }
    }
}

#[test]
fn dwarf_offsets_match_the_table() {
    for probe in probes("dwarf_offsets_match_the_table") {
        let version = &probe.toolchain.version;
        let dwarf = dwarf::read_offsets(&open(&probe.full)).unwrap().unwrap();
        assert!(dwarf.is_complete(), "{version}: {:?}", dwarf.missing());
        if probe.toolchain.minor() == "1.25" {
            assert_eq!((dwarf.g_goid, dwarf.g_parent_goid), (152, 272));
        }
        match offsets::lookup(&format!("go{version}")) {
            Ok(entry) if entry.exact => assert_eq!(entry.offsets, dwarf, "{version}"),
            other => println!("NOTE: Go {version} is not in the table ({other:?}): not compared"),
        }
        assert_eq!(dwarf::read_offsets(&open(&probe.stripped)).unwrap(), None);
        println!("{version}: {dwarf:?}");
    }
}

#[test]
fn inspect_full_and_stripped_binaries() {
    for probe in probes("inspect_full_and_stripped_binaries") {
        let version = &probe.toolchain.version;
        let start = Instant::now();
        let full = inspect(&probe.full, DEFAULT_FUNCTIONS).unwrap().unwrap();
        let took = start.elapsed();
        assert_eq!(full.version, format!("go{version}"));
        assert!(!full.stripped);
        assert_eq!(full.symbols, SymbolSource::Symtab);
        assert_eq!(full.source, OffsetsSource::Dwarf);
        assert!(full.kernel_offsets().is_some());
        assert!(full.missing_functions.is_empty());

        let start = Instant::now();
        let stripped = inspect(&probe.stripped, DEFAULT_FUNCTIONS)
            .unwrap()
            .unwrap();
        let took_stripped = start.elapsed();
        assert!(stripped.stripped);
        assert_eq!(stripped.symbols, SymbolSource::Pclntab);
        assert_eq!(stripped.functions, full.functions);
        if offsets::lookup(&full.version).is_ok_and(|e| e.exact) {
            assert_eq!(
                stripped.source,
                OffsetsSource::Table {
                    release: version.clone(),
                    exact: true
                }
            );
            assert_eq!(stripped.offsets, full.offsets);
        }
        println!(
            "{version}: inspected in {took:?} (stripped: {took_stripped:?}, offsets from {})",
            stripped.offsets_source()
        );

        let missing = inspect(&probe.full, &["main.nope", ROUND_TRIP])
            .unwrap()
            .unwrap();
        assert_eq!(missing.missing_functions, ["main.nope"]);
        assert_eq!(missing.functions.len(), 1);
    }
}

#[test]
fn non_go_binaries_are_none() {
    for path in ["/bin/true", "/bin/sh"] {
        if Path::new(path).exists() {
            assert!(
                inspect(Path::new(path), DEFAULT_FUNCTIONS)
                    .unwrap()
                    .is_none()
            );
        }
    }
    let me = std::env::current_exe().unwrap();
    assert!(inspect(&me, DEFAULT_FUNCTIONS).unwrap().is_none());
    assert!(matches!(
        inspect(Path::new("/nonexistent/go"), DEFAULT_FUNCTIONS),
        Err(GoError::BuildInfo(_))
    ));
}

#[test]
fn offsets_table_is_what_the_generator_writes() {
    let probes = probes("offsets_table_is_what_the_generator_writes");
    let in_table: Vec<&Path> = probes
        .iter()
        .filter(|p| offsets::lookup(&format!("go{}", p.toolchain.version)).is_ok_and(|e| e.exact))
        .map(|p| p.full.as_path())
        .collect();
    if in_table.is_empty() {
        println!("SKIPPED: no toolchain of a release in the table");
        return;
    }
    let json = offsets_table(&in_table).unwrap();
    assert!(json.contains("\"runtime.g.goid\""), "{json}");
    // Stripped binaries have no DWARF to generate from.
    let stripped: Vec<&Path> = probes.iter().map(|p| p.stripped.as_path()).collect();
    assert!(offsets_table(&stripped[..1]).is_err());
}

/// `runtime.allgs` read off `runtime.allgadd`'s code is the address
/// `.symtab` gives, and the stripped build finds the same.
#[test]
fn allgs_address_from_code_matches_symtab() {
    use object::{Object as _, ObjectSymbol as _};
    for probe in probes("allgs_address_from_code_matches_symtab") {
        let version = &probe.toolchain.version;
        let data = std::fs::read(&probe.full).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let want = file
            .symbols()
            .find(|s| s.name() == Ok("runtime.allgs"))
            .map(|s| s.address())
            .unwrap_or_else(|| panic!("{version}: no runtime.allgs symbol"));
        let full = inspect(&probe.full, &[]).unwrap().unwrap();
        assert_eq!(full.allgs, Some(want), "{version}");
        // The stripped build lays out its data a little differently (so no
        // comparison with the full build's symbol); the nested fan-out
        // integration test uses the address in running stripped binaries.
        let stripped = inspect(&probe.stripped, &[]).unwrap().unwrap();
        let elf = open(&probe.stripped);
        let found = stripped
            .allgs
            .unwrap_or_else(|| panic!("{version}: stripped: none"));
        assert!(
            elf.segments()
                .iter()
                .any(|s| s.is_writable() && (s.address..s.address + s.mem_size).contains(&found)),
            "{version}: stripped: {found:#x} is not in a writable segment"
        );
        assert_eq!(full.kernel_offsets().map(|o| o.allgs), Some(want));
    }
}
