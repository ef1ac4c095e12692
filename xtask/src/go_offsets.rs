//! `cargo xtask go-offsets`: regenerates tracer/src/golang/offsets_table.json,
//! the Go struct offsets the agent uses for binaries without DWARF.
//!
//! Builds tests/apps/go/offsets_probe with every Go release xtask knows
//! (installing the missing ones), then has the release agent read each
//! binary's DWARF (`tracer go-offsets`, a hidden subcommand: xtask cannot
//! link the tracer crate, whose build script needs the bpf-linker that
//! xtask installs).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::{
    build,
    cmd::{self, Paths},
    setup::{self, Go},
};

const PROBE: &str = "tests/apps/go/offsets_probe/main.go";
const TABLE: &str = "tracer/src/golang/offsets_table.json";

pub fn run(paths: &Paths) -> Result<()> {
    let tracer = build::run(paths)?;
    let toolchains = setup::every_go_release(paths)?;
    let out_dir = paths.xtask().join("go-offsets");
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let binaries = toolchains
        .iter()
        .map(|go| build_probe(paths, go, &out_dir))
        .collect::<Result<Vec<_>>>()?;
    let table = cmd::output(cmd::new(&tracer).arg("go-offsets").args(&binaries))
        .context("reading the offsets from the probe binaries")?;
    let path = paths.root.join(TABLE);
    fs::write(&path, table).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "go-offsets: wrote {} (Go {})",
        path.display(),
        toolchains
            .iter()
            .map(|go| go.version.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The probe program built by `go`, with its DWARF (the default).
fn build_probe(paths: &Paths, go: &Go, out_dir: &Path) -> Result<PathBuf> {
    let binary = out_dir.join(format!("probe-go{}", go.version));
    let mut build = cmd::new(&go.bin);
    build
        .args(["build", "-o"])
        .arg(&binary)
        .arg(paths.root.join(PROBE))
        // One file, standard library only: no module, no network.
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", out_dir.join("go-cache"))
        .env("GOPATH", out_dir.join("go-path"));
    if std::env::var_os("HOME").is_none() {
        build.env("HOME", out_dir);
    }
    cmd::run(&mut build).with_context(|| format!("building the probe with Go {}", go.version))?;
    Ok(binary)
}
