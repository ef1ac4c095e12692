//! `tracer verifier-report`: load every kernel program of the agent (none
//! attached), and print what each cost the verifier, against the budget.
use std::fmt::Write as _;

use aya::Ebpf;

use super::{
    ProbeOptions, open_object,
    programs::{self, ProgramLoad, VERIFIER_BUDGET},
};

/// Load every program of the kernel object, by name.
pub fn load_every_program() -> anyhow::Result<Vec<ProgramLoad>> {
    super::environment::prepare()?;
    let mut ebpf: Ebpf = open_object(&ProbeOptions::default())?;
    let mut names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_owned()).collect();
    names.sort();
    Ok(names
        .iter()
        .map(|name| programs::load(&mut ebpf, name, false))
        .collect())
}

/// The table `verifier-report` prints, and whether every program loaded
/// within the budget.
pub fn table(loads: &[ProgramLoad], budget: u32) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    let _ = writeln!(
        out,
        "| program | type | verified instructions | of budget ({budget}) | load ms | result |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|");
    for load in loads {
        let insns = load
            .verified_insns
            .map_or("?".to_owned(), |n| n.to_string());
        let share = load.verified_insns.map_or("?".to_owned(), |n| {
            format!("{:.1}%", 100.0 * f64::from(n) / f64::from(budget))
        });
        let result = match (&load.error, load.verified_insns) {
            (Some(_), _) => {
                ok = false;
                format!("REFUSED: {}", load.reason())
            }
            (None, Some(n)) if n > budget => {
                ok = false;
                "OVER BUDGET".to_owned()
            }
            (None, None) => {
                ok = false;
                "no count (kernel < 5.16?)".to_owned()
            }
            (None, Some(_)) => "ok".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {insns} | {share} | {:.1} | {result} |",
            load.name,
            load.kind,
            load.load_time.as_secs_f64() * 1000.0,
        );
    }
    let total: f64 = loads.iter().map(|l| l.load_time.as_secs_f64()).sum();
    let _ = writeln!(
        out,
        "{} programs, {:.0} ms of loading; budget {budget} verified instructions each \
         (the kernel's limit is 1,000,000): {}",
        loads.len(),
        total * 1000.0,
        if ok { "all within" } else { "NOT all within" }
    );
    (out, ok)
}

/// `tracer verifier-report`: exit status 0 only when every program loaded
/// within `budget` (default: the project's budget).
pub fn run(budget: Option<u32>) -> anyhow::Result<bool> {
    let loads = load_every_program()?;
    let (table, ok) = table(&loads, budget.unwrap_or(VERIFIER_BUDGET));
    print!("{table}");
    for load in loads.iter().filter(|l| !l.loaded()) {
        if let Some(e) = &load.error {
            eprintln!("{}: {e}", load.name);
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load(name: &str, insns: Option<u32>, error: Option<&str>) -> ProgramLoad {
        ProgramLoad {
            name: name.into(),
            kind: "tracepoint",
            verified_insns: insns,
            load_time: Duration::from_millis(3),
            error: error.map(Into::into),
        }
    }

    #[test]
    fn the_table_fails_over_budget_and_refused_programs() {
        let (text, ok) = table(&[load("a", Some(1000), None)], 200_000);
        assert!(ok, "{text}");
        assert!(
            text.contains("| a | tracepoint | 1000 | 0.5% | 3.0 | ok |"),
            "{text}"
        );
        let (text, ok) = table(&[load("b", Some(200_001), None)], 200_000);
        assert!(!ok && text.contains("OVER BUDGET"), "{text}");
        let (text, ok) = table(
            &[load("c", Some(1_000_001), Some("Argument list too long"))],
            200_000,
        );
        assert!(
            !ok && text.contains("REFUSED: refused by the verifier"),
            "{text}"
        );
        let (_, ok) = table(&[load("d", None, None)], 200_000);
        assert!(!ok);
    }
}
