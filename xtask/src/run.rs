//! `cargo xtask run`: build the agent, then become it (as root).

use std::{ffi::OsString, os::unix::process::CommandExt as _, process::Command};

use anyhow::{Result, bail};

use crate::{
    build,
    cmd::{self, Paths},
};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Arguments for the agent (after `--`), e.g. `cargo xtask run -- --help`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Builds as the calling user (so target/ is not left owned by root), then
/// replaces this process with the agent: signals (Ctrl-C, SIGTERM) go
/// straight to it and its exit status is ours.
pub fn run(paths: &Paths, args: RunArgs) -> Result<()> {
    // Decided before building, so a missing sudo fails fast.
    let sudo = if cmd::is_root() {
        false
    } else if cmd::on_path("sudo") {
        true
    } else {
        bail!(
            "the agent needs root (to load eBPF programs) and sudo is not installed: \
             run `cargo xtask build`, then {} as root",
            paths.tracer_bin().display()
        );
    };
    let bin = build::run(paths)?;
    let mut agent = if sudo {
        println!("run: not root, running the agent through sudo");
        let mut agent = cmd::new("sudo");
        agent.arg("-E").arg(&bin);
        agent
    } else {
        Command::new(&bin)
    };
    agent.args(&args.args);
    println!("$ {}", cmd::display(&agent));
    let error = agent.exec();
    bail!("cannot execute {}: {error}", cmd::display(&agent))
}
