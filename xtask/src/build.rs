//! `cargo xtask build`: the release agent with its kernel programs embedded.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::{
    cmd::{self, Paths},
    setup,
};

/// Builds target/release/tracer; returns its path. tracer/build.rs builds
/// the kernel object with `cargo +nightly` and bpf-linker (through
/// aya-build), so the toolchain part of `setup` comes first.
pub fn run(paths: &Paths) -> Result<PathBuf> {
    setup::rust_toolchain(paths)?;
    agent(paths)
}

/// The build itself, for callers that already ran the set-up.
pub fn agent(paths: &Paths) -> Result<PathBuf> {
    cmd::run(
        cmd::cargo()
            .args(["build", "--release", "--package", "tracer"])
            .current_dir(&paths.root),
    )
    .context("cannot build the agent")?;
    let bin = paths.tracer_bin();
    anyhow::ensure!(bin.is_file(), "the build did not produce {}", bin.display());
    println!("build: {}", bin.display());
    Ok(bin)
}
