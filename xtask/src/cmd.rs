//! Running child processes: every command is printed before it runs, and
//! finds the tools that `rustup` and `cargo install` put in `~/.cargo/bin`
//! even when the calling shell's PATH lacks that directory.

use std::{
    env,
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// Where the workspace and its build output are.
pub struct Paths {
    /// The workspace root (parent of `xtask/`).
    pub root: PathBuf,
    /// Cargo's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
    pub target: PathBuf,
}

impl Paths {
    pub fn new() -> Result<Self> {
        // `cargo run` sets it at run time too; the compile-time value is
        // stale when the workspace has moved since xtask was built.
        let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let root = manifest_dir
            .parent()
            .context("xtask's manifest directory has no parent")?
            .to_path_buf();
        let target = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        Ok(Self { root, target })
    }

    /// Tools installed by `setup` that are not Rust (Go, Python packages).
    pub fn tools(&self) -> PathBuf {
        self.target.join("tools")
    }

    /// Scratch space of xtask itself.
    pub fn xtask(&self) -> PathBuf {
        self.target.join("xtask")
    }

    pub fn tracer_bin(&self) -> PathBuf {
        self.target.join("release").join("tracer")
    }
}

/// `$CARGO_HOME/bin`, where rustup's proxies and `cargo install` live.
pub fn cargo_bin_dir() -> PathBuf {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    cargo_home.join("bin")
}

/// PATH with the cargo bin directory in front, computed once.
fn path_env() -> &'static OsString {
    static PATH: OnceLock<OsString> = OnceLock::new();
    PATH.get_or_init(|| {
        let bin = cargo_bin_dir();
        let current = env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = env::split_paths(&current).collect();
        if !dirs.contains(&bin) {
            dirs.insert(0, bin);
        }
        env::join_paths(dirs).unwrap_or(current)
    })
}

/// A `Command` whose PATH includes the cargo bin directory.
pub fn new(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", path_env());
    cmd
}

/// `cargo` (the rustup proxy, so `+nightly` works in build scripts too).
pub fn cargo() -> Command {
    new("cargo")
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The command line, for the log.
pub fn display(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        line.push(' ');
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            line.push_str(&format!("'{arg}'"));
        } else {
            line.push_str(&arg);
        }
    }
    line
}

/// Prints and runs `cmd`; an error if it cannot start or exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly (a probe, not an action) and returns its stdout;
/// an error if it cannot start or exits non-zero.
pub fn output(cmd: &mut Command) -> Result<String> {
    let line = display(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` can be found on PATH (cargo bin directory included).
pub fn on_path(program: &str) -> bool {
    env::split_paths(path_env()).any(|dir| dir.join(program).is_file())
}

/// The outcome of one step of a multi-step command, for the summary.
pub struct Step {
    name: String,
    /// `None`: not run, for the reason given.
    result: Option<Result<()>>,
    skip_reason: &'static str,
    took: Duration,
}

impl Step {
    /// Runs `f` as a step named `name`, announcing it first.
    pub fn time(name: &str, f: impl FnOnce() -> Result<()>) -> Self {
        println!("\n==> {name}");
        let start = Instant::now();
        let result = f();
        if let Err(e) = &result {
            eprintln!("==> {name}: FAILED: {e:#}");
        }
        Self {
            name: name.to_owned(),
            result: Some(result),
            skip_reason: "",
            took: start.elapsed(),
        }
    }

    /// A step that was not run; does not by itself fail the command.
    pub fn skipped(name: &str, reason: &'static str) -> Self {
        println!("\n==> {name}: skipped, {reason}");
        Self {
            name: name.to_owned(),
            result: None,
            skip_reason: reason,
            took: Duration::ZERO,
        }
    }

    fn failed(&self) -> bool {
        matches!(self.result, Some(Err(_)))
    }
}

/// Prints one line per step; an error naming the failed steps, if any.
pub fn summary(title: &str, steps: &[Step]) -> Result<()> {
    println!("\n==> {title} summary");
    for step in steps {
        match &step.result {
            Some(result) => println!(
                "    {:<20} {:<7} {:>7.1}s",
                step.name,
                if result.is_ok() { "ok" } else { "FAILED" },
                step.took.as_secs_f64()
            ),
            None => println!("    {:<20} skipped ({})", step.name, step.skip_reason),
        }
    }
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| s.failed())
        .map(|s| s.name.as_str())
        .collect();
    if failed.is_empty() {
        println!("==> {title}: all passed");
        Ok(())
    } else {
        bail!("{title}: failed: {}", failed.join(", "))
    }
}
