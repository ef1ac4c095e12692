//! `cargo xtask test`: everything CI checks, in one command.

use std::{ffi::OsString, path::Path};

use anyhow::{Context as _, Result};

use crate::{
    build,
    cmd::{self, Paths, Step},
    lint,
    setup::{self, SetupArgs},
};

/// The agent binary the integration tests run.
const ENV_TRACER_BIN: &str = "TRACER_BIN";
/// The `go` command of the default Go version.
const ENV_TRACER_GO: &str = "TRACER_GO";
/// Every installed Go: `1.25.5=/abs/go,1.21.13=/abs/go`, default first.
const ENV_TRACER_GO_VERSIONS: &str = "TRACER_GO_VERSIONS";
/// The workspace root (test programs' sources, fixtures).
const ENV_TRACER_REPO: &str = "TRACER_REPO";
/// Where the Python packages the tests import are (for PYTHONPATH).
const ENV_TRACER_PYTHONPATH: &str = "TRACER_PYTHONPATH";
/// The `node_modules` of the npm packages the tests use (for NODE_PATH).
const ENV_TRACER_NODE_PATH: &str = "TRACER_NODE_PATH";

#[derive(clap::Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub setup: SetupArgs,

    /// Skip `cargo fmt --check` and `cargo clippy`.
    #[arg(long)]
    pub no_lint: bool,

    /// Extra arguments for both `cargo test` runs (after `--`), e.g. a test
    /// name filter; what follows a second `--` goes to the test binaries,
    /// e.g. `cargo xtask test -- http -- --nocapture`.
    #[arg(last = true)]
    pub cargo_args: Vec<OsString>,
}

pub fn run(paths: &Paths, args: &TestArgs) -> Result<()> {
    let tools = setup::run(paths, &args.setup)?;
    let mut steps = Vec::new();
    if !args.no_lint {
        steps.extend(lint::steps(paths));
    }

    let mut tracer_bin = None;
    steps.push(Step::time("build agent", || {
        tracer_bin = Some(build::agent(paths)?);
        Ok(())
    }));

    let (cargo_args, harness_args) = split_harness_args(&args.cargo_args);

    steps.push(Step::time("unit tests", || {
        cmd::run(
            cmd::cargo()
                .args(["test", "--workspace"])
                // tracer-ebpf only builds for the bpf target.
                .args(["--exclude", "integration-tests", "--exclude", "tracer-ebpf"])
                .args(cargo_args)
                .args(harness(&[], harness_args))
                .current_dir(&paths.root),
        )
    }));

    if let Some(tracer_bin) = &tracer_bin {
        steps.push(Step::time("integration tests", || {
            let default_go = tools.go.first().context("no Go toolchain installed")?;
            let go_versions = tools
                .go
                .iter()
                .map(|go| format!("{}={}", go.version, go.bin.display()))
                .collect::<Vec<_>>()
                .join(",");
            cmd::run(
                cmd::cargo()
                    .args(["test", "--package", "integration-tests"])
                    .args(cargo_args)
                    // They load kernel programs and start servers: one at a time.
                    .args(harness(&["--test-threads=1"], harness_args))
                    .env(ENV_TRACER_BIN, absolute(tracer_bin)?)
                    .env(ENV_TRACER_GO, absolute(&default_go.bin)?)
                    .env(ENV_TRACER_GO_VERSIONS, go_versions)
                    .env(ENV_TRACER_REPO, &paths.root)
                    .env(ENV_TRACER_PYTHONPATH, &tools.python_path)
                    .env(ENV_TRACER_NODE_PATH, &tools.node_path)
                    .current_dir(&paths.root),
            )
        }));
    } else {
        steps.push(Step::skipped(
            "integration tests",
            "the agent did not build",
        ));
    }

    cmd::summary("test", &steps)
}

/// Splits `a b -- c d` into `[a, b]` and `[c, d]`.
fn split_harness_args(args: &[OsString]) -> (&[OsString], &[OsString]) {
    match args.iter().position(|arg| arg == "--") {
        Some(at) => (&args[..at], &args[at + 1..]),
        None => (args, &[]),
    }
}

/// `-- <ours> <theirs>`, or nothing when both are empty.
fn harness(ours: &[&str], theirs: &[OsString]) -> Vec<OsString> {
    if ours.is_empty() && theirs.is_empty() {
        return Vec::new();
    }
    let mut args = vec![OsString::from("--")];
    args.extend(ours.iter().map(OsString::from));
    args.extend(theirs.iter().cloned());
    args
}

fn absolute(path: &Path) -> Result<std::path::PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::split_harness_args;

    #[test]
    fn harness_args_follow_a_second_separator() {
        let args: Vec<OsString> = ["http", "--", "--nocapture"].map(OsString::from).into();
        let (cargo, harness) = split_harness_args(&args);
        assert_eq!(cargo, &args[..1]);
        assert_eq!(harness, &args[2..]);
        let (cargo, harness) = split_harness_args(&args[..1]);
        assert_eq!(cargo, &args[..1]);
        assert!(harness.is_empty());
    }
}
