//! `cargo xtask lint`: formatting and clippy, warnings are errors.

use anyhow::Result;

use crate::{
    cmd::{self, Paths, Step},
    setup,
};

/// The lint steps, each run whatever the others gave.
pub fn steps(paths: &Paths) -> Vec<Step> {
    vec![
        Step::time("fmt", || {
            cmd::run(
                cmd::cargo()
                    .args(["fmt", "--all", "--check"])
                    .current_dir(&paths.root),
            )
        }),
        Step::time("clippy", || {
            cmd::run(
                cmd::cargo()
                    .args(["clippy", "--all-targets", "--", "-D", "warnings"])
                    .current_dir(&paths.root),
            )
        }),
    ]
}

pub fn run(paths: &Paths) -> Result<()> {
    // clippy runs tracer/build.rs, which builds the kernel programs.
    setup::rust_toolchain(paths)?;
    cmd::summary("lint", &steps(paths))
}
