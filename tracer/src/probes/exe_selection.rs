//! --exe in the kernel: `sched_exec` selects a process that executes a
//! selected executable before its first instruction. The agent's own match
//! (of /proc/PID/exe, when it reads the exec event) comes after a
//! short-lived client has already connected and sent its first request.
//! The kernel matches the path given to execve, whole (EXE_NAMES) or by
//! its file name: exec names the task after the file name's first 15
//! bytes, and EXE_COMMS gives, by that task name, the lengths of the
//! selected file names to try as the path's tail.
use anyhow::{Context as _, anyhow};
use aya::{Ebpf, maps::HashMap};
use log::warn;
use tracer_common::{EXE_NAME_LEN, ExeLens, ExeName, TASK_COMM_LEN, maps};

use super::{environment, map};

/// Fills EXE_NAMES and EXE_COMMS from the --exe names. The offset of the
/// exec tracepoint's path, or None when the kernel has no name to match
/// (none given, or none it can hold: those are matched by the agent only).
pub fn fill(ebpf: &mut Ebpf, exes: &[String]) -> anyhow::Result<Option<u32>> {
    if exes.is_empty() {
        return Ok(None);
    }
    let offset = environment::tracepoint_field_offset("sched", "sched_process_exec", "filename")?;
    let mut names: HashMap<_, ExeName, u8> = HashMap::try_from(map(ebpf, maps::EXE_NAMES)?)?;
    let mut kept = Vec::new();
    for exe in exes {
        let inserted = ExeName::new(exe)
            .ok_or_else(|| {
                anyhow!(
                    "longer than the {} bytes the kernel matches",
                    EXE_NAME_LEN - 1
                )
            })
            .and_then(|key| names.insert(key, 1, 0).context("writing EXE_NAMES"));
        match inserted {
            Ok(()) => kept.push(exe.as_str()),
            Err(e) => warn!(
                "--exe {exe}: selected only once the agent reads each exec (a process that \
                 connects at once may go untraced at first): {e:#}"
            ),
        }
    }
    let mut comms: HashMap<_, [u8; TASK_COMM_LEN], ExeLens> =
        HashMap::try_from(map(ebpf, maps::EXE_COMMS)?)?;
    for (comm, lens) in comm_lengths(kept.iter().copied()) {
        comms.insert(comm, lens, 0).context("writing EXE_COMMS")?;
    }
    Ok((!kept.is_empty()).then_some(offset))
}

/// The EXE_COMMS entries for these names: for each file name (a path's is
/// matched whole), by the task name an exec of it gets (its first 15
/// bytes), the distinct lengths of the names that begin so (8 at most; the
/// kernel tries them in turn).
fn comm_lengths<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<([u8; TASK_COMM_LEN], ExeLens)> {
    let mut out: Vec<([u8; TASK_COMM_LEN], ExeLens)> = Vec::new();
    for name in names {
        // The kernel's rule for what it can hold, and only file names.
        if name.contains('/') || ExeName::new(name).is_none() {
            continue;
        }
        let bytes = name.as_bytes();
        let mut comm = [0u8; TASK_COMM_LEN];
        let n = bytes.len().min(TASK_COMM_LEN - 1);
        comm[..n].copy_from_slice(&bytes[..n]);
        let at = match out.iter().position(|(c, _)| *c == comm) {
            Some(at) => at,
            None => {
                out.push((comm, ExeLens::default()));
                out.len() - 1
            }
        };
        let lens = &mut out[at].1.0;
        let len = bytes.len() as u8;
        if lens.contains(&len) {
            continue;
        }
        match lens.iter_mut().find(|l| **l == 0) {
            Some(free) => *free = len,
            None => warn!(
                "--exe {name}: more than {} selected file names begin with its first 15 bytes; \
                 selected only once the agent reads each exec",
                lens.len()
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comm(s: &str) -> [u8; TASK_COMM_LEN] {
        let mut c = [0u8; TASK_COMM_LEN];
        c[..s.len()].copy_from_slice(s.as_bytes());
        c
    }

    #[test]
    fn file_names_are_keyed_by_their_task_name() {
        let got = comm_lengths([
            "nginx",
            "/usr/bin/curl",
            "tracer-test-go-grpc_client-go1.25.5",
            "tracer-test-go-grpc_server-go1.25.5",
            "tracer-test-go-x",
            "nginx",
        ]);
        assert_eq!(
            got,
            vec![
                (comm("nginx"), ExeLens([5, 0, 0, 0, 0, 0, 0, 0])),
                (comm("tracer-test-go-"), ExeLens([35, 16, 0, 0, 0, 0, 0, 0])),
            ]
        );
    }

    #[test]
    fn names_the_kernel_cannot_hold_are_left_out() {
        let long = "x".repeat(EXE_NAME_LEN);
        assert!(comm_lengths(["", long.as_str()]).is_empty());
        assert!(ExeName::new(&long).is_none());
        assert!(ExeName::new("a\0b").is_none());
        let short = ExeName::new("curl").unwrap();
        assert_eq!(&short.0[..5], b"curl\0");
    }

    #[test]
    fn at_most_eight_lengths_per_task_name() {
        let names: Vec<String> = (15..25).map(|n| "a".repeat(n)).collect();
        let got = comm_lengths(names.iter().map(String::as_str));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, ExeLens([15, 16, 17, 18, 19, 20, 21, 22]));
    }
}
