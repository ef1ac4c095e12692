//! The project's own commands: `cargo xtask <command>` (see `cargo xtask --help`).
//!
//! Everything a fresh machine lacks for building and testing is installed by
//! `setup`, so that `cargo xtask test` is the only command CI needs.

mod bench;
mod build;
mod cmd;
mod go_offsets;
mod lint;
mod run;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Set-up, build, run and test commands of the tracer project.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing need (nightly + rust-src, bpf-linker,
    /// Debian packages, Go toolchains, Python packages); each step is skipped
    /// when already satisfied.
    Setup(setup::SetupArgs),
    /// Build the release agent, kernel programs embedded: target/release/tracer.
    Build,
    /// Build, then run the agent as root (through `sudo -E` when not root).
    Run(run::RunArgs),
    /// Set up, lint, build, then run the unit tests and the integration tests.
    Test(test::TestArgs),
    /// Check formatting (`cargo fmt`) and lints (`cargo clippy -D warnings`).
    Lint,
    /// Regenerate tracer/src/golang/offsets_table.json: build
    /// tests/apps/go/offsets_probe with every Go release (installing the
    /// missing ones) and read the struct offsets from its DWARF.
    GoOffsets,
    /// Build, then load every kernel program (as root, none attached) and
    /// print each one's verified instructions and load time against the
    /// 200,000-instruction budget; exits 1 when one is refused or over it.
    VerifierReport,
    /// Overhead benchmark: Go and nginx hello servers under wrk, untraced and
    /// traced, as root; prints a markdown table (also target/bench/latest.md).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = match cmd::Paths::new() {
        Ok(paths) => paths,
        Err(e) => return report(Err(e)),
    };
    let result = match cli.command {
        Command::Setup(args) => setup::run(&paths, &args).map(|_| ()),
        Command::Build => build::run(&paths).map(|_| ()),
        Command::Run(args) => run::run(&paths, args),
        Command::Test(args) => test::run(&paths, &args),
        Command::Lint => lint::run(&paths),
        Command::Bench(args) => bench::run(&paths, &args),
        Command::VerifierReport => run::run(
            &paths,
            run::RunArgs {
                args: vec!["verifier-report".into()],
            },
        ),
        Command::GoOffsets => go_offsets::run(&paths),
    };
    report(result)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
