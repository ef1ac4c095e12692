//! Go binaries for the tests: tests/apps/go/offsets_probe built, with and
//! without symbols and DWARF, by every Go toolchain at hand.
//!
//! The toolchains are those `cargo xtask setup` installed: named by
//! `TRACER_GO_VERSIONS` / `TRACER_GO` when set (`cargo xtask test` sets them
//! for the integration tests), else found under target/tools/go-*. Builds
//! are kept in target/test-programs/golang and reused while newer than the
//! source and the compiler.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, OnceLock},
};

const ENV_TRACER_GO: &str = "TRACER_GO";
const ENV_TRACER_GO_VERSIONS: &str = "TRACER_GO_VERSIONS";
/// The releases the tests must cover; a run without them says so.
const REQUIRED: [&str; 2] = ["1.21", "1.25"];

#[derive(Debug, Clone)]
pub struct Toolchain {
    /// `1.25.5`.
    pub version: String,
    pub go: PathBuf,
}

impl Toolchain {
    pub fn minor(&self) -> &str {
        match self.version.match_indices('.').nth(1) {
            Some((at, _)) => &self.version[..at],
            None => &self.version,
        }
    }
}

/// The probe program built by one toolchain.
pub struct Probe {
    pub toolchain: Toolchain,
    /// With .symtab and DWARF.
    pub full: PathBuf,
    /// `-ldflags=-s -w`: neither.
    pub stripped: PathBuf,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/apps/go/offsets_probe/main.go")
}

/// Every toolchain found, oldest first.
pub fn toolchains() -> Vec<Toolchain> {
    let mut found: Vec<Toolchain> = Vec::new();
    let mut add = |version: String, go: PathBuf| {
        if go.is_file() && !found.iter().any(|t| t.version == version) {
            found.push(Toolchain { version, go });
        }
    };
    if let Ok(list) = std::env::var(ENV_TRACER_GO_VERSIONS) {
        for entry in list.split(',') {
            if let Some((version, go)) = entry.trim().split_once('=') {
                add(version.to_owned(), PathBuf::from(go));
            }
        }
    }
    if let Some(go) = std::env::var_os(ENV_TRACER_GO).map(PathBuf::from)
        && let Some(version) = go_version(&go)
    {
        add(version, go);
    }
    let tools = target_dir().join("tools");
    for entry in std::fs::read_dir(&tools).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(version) = name.strip_prefix("go-") {
            add(version.to_owned(), entry.path().join("go/bin/go"));
        }
    }
    found.sort_by_key(|t| {
        t.version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    found
}

/// `1.25.5` from `go env GOVERSION`.
fn go_version(go: &Path) -> Option<String> {
    let out = Command::new(go)
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.trim().strip_prefix("go")?;
    Some(version.split(' ').next()?.to_owned())
}

/// The probe built by every toolchain; prints why when there is none (the
/// caller then returns: a skip, never a silent pass) or when a required
/// release is missing.
pub fn probes(test: &str) -> Vec<Probe> {
    let toolchains = toolchains();
    if toolchains.is_empty() {
        println!(
            "SKIPPED {test}: no Go toolchain ({ENV_TRACER_GO_VERSIONS} and {ENV_TRACER_GO} unset, \
             nothing under {}; run `cargo xtask setup`)",
            target_dir().join("tools").display()
        );
        return Vec::new();
    }
    for required in REQUIRED {
        if !toolchains.iter().any(|t| t.minor() == required) {
            println!("NOTE {test}: no Go {required} toolchain: not covered");
        }
    }
    toolchains
        .into_iter()
        .map(|toolchain| {
            let full = build(&toolchain, false);
            let stripped = build(&toolchain, true);
            Probe {
                toolchain,
                full,
                stripped,
            }
        })
        .collect()
}

/// One build, once per process even when tests run in parallel.
fn build(toolchain: &Toolchain, stripped: bool) -> PathBuf {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let out_dir = target_dir().join("test-programs/golang");
    let name = format!(
        "probe-go{}{}",
        toolchain.version,
        if stripped { "-stripped" } else { "" }
    );
    let binary = out_dir.join(&name);
    let lock = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(binary.clone())
        .or_default()
        .clone();
    let _held = lock.lock().unwrap();
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    if let (Some(built), Some(src), Some(compiler)) =
        (mtime(&binary), mtime(&source()), mtime(&toolchain.go))
        && built >= src
        && built >= compiler
    {
        return binary;
    }
    std::fs::create_dir_all(&out_dir).unwrap();
    // Another test process may build the same binary: each writes its own
    // file and renames it into place.
    let tmp = out_dir.join(format!("{name}.tmp{}", std::process::id()));
    let mut cmd = Command::new(&toolchain.go);
    cmd.arg("build").arg("-o").arg(&tmp);
    if stripped {
        cmd.arg("-ldflags=-s -w");
    }
    let cache = target_dir().join("test-programs");
    let status = cmd
        .arg(source())
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", cache.join("go-cache"))
        .env("GOPATH", cache.join("go-path"))
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", toolchain.go.display()));
    assert!(status.success(), "building {name}: {status}");
    std::fs::rename(&tmp, &binary).unwrap();
    binary
}

/// A copy of `binary` without its section table (what sstrip-like tools
/// leave), in a temporary file removed on drop.
pub struct NoSections(pub PathBuf);

impl NoSections {
    pub fn of(binary: &Path) -> Self {
        let mut bytes = std::fs::read(binary).unwrap();
        bytes[0x28..0x30].fill(0); // e_shoff (ELF64)
        bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        let name = binary.file_name().unwrap().to_string_lossy();
        let path =
            std::env::temp_dir().join(format!("golang-nosections-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }
}

impl Drop for NoSections {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
