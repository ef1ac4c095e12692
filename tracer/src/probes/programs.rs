//! Loading one kernel program and what it cost the verifier: the agent's
//! start-up, its feature summary and `tracer verifier-report` all go
//! through here, so the figures the test enforces are the ones the agent
//! lives with.
use std::time::{Duration, Instant};

use aya::{
    Ebpf,
    programs::{Program, ProgramError},
};

/// The verifier's budget per program: 5x under the kernel's 1,000,000
/// processed-instruction limit, so a program still loads where another
/// kernel version, patch level or toolchain makes the verifier work harder.
pub const VERIFIER_BUDGET: u32 = 200_000;

/// The kernel's own limit (BPF_COMPLEXITY_LIMIT_INSNS).
const KERNEL_LIMIT: u32 = 1_000_000;

/// How loading one program went.
#[derive(Clone, Debug)]
pub struct ProgramLoad {
    pub name: String,
    /// `tracepoint`, `uprobe`, `sk_msg`, `sock_ops`.
    pub kind: &'static str,
    /// Instructions the verifier processed (`bpf_prog_info.verified_insns`;
    /// from the verifier's log when it refused the program).
    pub verified_insns: Option<u32>,
    /// Wall time of the BPF_PROG_LOAD call, verification included.
    pub load_time: Duration,
    /// Why the program is not loaded.
    pub error: Option<String>,
}

impl ProgramLoad {
    pub fn loaded(&self) -> bool {
        self.error.is_none()
    }

    /// A short reason for a warning line: the verifier's limit, or the
    /// first line of the error.
    pub fn reason(&self) -> String {
        match &self.error {
            None => "loaded".to_owned(),
            Some(_) if self.verified_insns.is_some_and(|n| n >= KERNEL_LIMIT) => {
                "refused by the verifier (limit reached)".to_owned()
            }
            Some(e) => e.clone(),
        }
    }
}

/// Load program `name` of `ebpf` (not attached). `forced_failure` stands
/// in for a refusal without asking the kernel (a hidden flag, for tests of
/// what the agent does when an optional program cannot load).
pub fn load(ebpf: &mut Ebpf, name: &str, forced_failure: bool) -> ProgramLoad {
    let mut report = ProgramLoad {
        name: name.to_owned(),
        kind: "?",
        verified_insns: None,
        load_time: Duration::ZERO,
        error: None,
    };
    let Some(program) = ebpf.program_mut(name) else {
        report.error = Some(format!("program {name} missing from the kernel object"));
        return report;
    };
    report.kind = kind(program);
    if forced_failure {
        report.error = Some("refused on purpose (--fail-program)".to_owned());
        return report;
    }
    if program.fd().is_ok() {
        // Loaded before (the report loads everything once).
        report.verified_insns = program
            .info()
            .ok()
            .and_then(|i| i.verified_instruction_count());
        return report;
    }
    let started = Instant::now();
    let result = match program {
        Program::TracePoint(p) => p.load(),
        Program::UProbe(p) => p.load(),
        Program::SkMsg(p) => p.load(),
        Program::SkSkb(p) => p.load(),
        Program::SockOps(p) => p.load(),
        _ => Err(ProgramError::UnexpectedProgramType),
    };
    report.load_time = started.elapsed();
    match result {
        Ok(()) => {
            report.verified_insns = program
                .info()
                .ok()
                .and_then(|i| i.verified_instruction_count());
        }
        Err(e) => {
            let text = error_text(&e);
            report.verified_insns = processed_insns(&text);
            report.error = Some(text);
        }
    }
    report
}

fn kind(program: &Program) -> &'static str {
    match program {
        Program::TracePoint(_) => "tracepoint",
        Program::UProbe(_) => "uprobe",
        Program::SkMsg(_) => "sk_msg",
        Program::SkSkb(_) => "sk_skb",
        Program::SockOps(_) => "sock_ops",
        _ => "other",
    }
}

/// What went wrong, short: the syscall's error and the end of the
/// verifier's log (why it refused, then its three lines of statistics),
/// not the whole log.
fn error_text(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
            format!("{io_error}; verifier: {tail}")
        }
        other => other.to_string(),
    }
}

/// `processed N insns` from a verifier log (its last statistics line).
pub fn processed_insns(log: &str) -> Option<u32> {
    let at = log.rfind("processed ")?;
    let rest = &log[at + "processed ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if !rest[digits.len()..].starts_with(" insns") {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_processed_instructions_from_a_verifier_log() {
        let log = "0: (bf) r6 = r1\n...\nBPF program is too large. Processed 1000001 insn\n\
                   processed 1000001 insns (limit 1000000) max_states_per_insn 77 \
                   total_states 60687 peak_states 137734 mark_read 12";
        assert_eq!(processed_insns(log), Some(1_000_001));
        assert_eq!(
            processed_insns("processed 812 insns (limit 1000000)"),
            Some(812)
        );
        assert_eq!(processed_insns("no statistics here"), None);
        assert_eq!(processed_insns("processed many insns"), None);
    }

    #[test]
    fn a_refusal_at_the_limit_says_so() {
        let load = ProgramLoad {
            name: "client_context".into(),
            kind: "tracepoint",
            verified_insns: Some(1_000_001),
            load_time: Duration::from_secs(39),
            error: Some("the BPF_PROG_LOAD syscall failed\nprocessed 1000001 insns".into()),
        };
        assert!(!load.loaded());
        assert_eq!(load.reason(), "refused by the verifier (limit reached)");
    }
}
