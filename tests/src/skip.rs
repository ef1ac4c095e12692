//! When a test cannot run here (not root, no agent binary, no Go, no nginx)
//! it says so on stderr, `SKIPPED <test>: <reason>`, and returns: never a
//! silent pass. Tests that can run take a machine-wide lock so only one agent
//! is loaded at a time (agents would see each other's traffic, and the
//! cgroup programs attach exclusively).
use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Environment variables set by `cargo xtask test`.
pub const ENV_TRACER_BIN: &str = "TRACER_BIN";
pub const ENV_TRACER_GO: &str = "TRACER_GO";
/// Every installed Go: `1.25.5=/abs/go,1.21.13=/abs/go`, default first.
pub const ENV_TRACER_GO_VERSIONS: &str = "TRACER_GO_VERSIONS";
pub const ENV_TRACER_REPO: &str = "TRACER_REPO";

const LOCK_FILE: &str = "tracer-integration-tests.lock";
/// Longer than any single test should take, short enough that a stuck
/// holder cannot hang a CI run forever.
const LOCK_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Prints the skip line; use it for every early return. It goes straight
/// to the stderr handle, which libtest does not capture, so a skip shows up
/// even in a passing run.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// The repository root: `TRACER_REPO`, else the parent of this crate.
pub fn repo_root() -> PathBuf {
    match std::env::var_os(ENV_TRACER_REPO) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    }
}

/// Cargo's target directory (where test programs are built and cached).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("target"),
    }
}

/// The agent binary: `TRACER_BIN`, else `<repo>/target/release/tracer`.
pub fn tracer_bin() -> Result<PathBuf, String> {
    let path = match std::env::var_os(ENV_TRACER_BIN) {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => {
            let fallback = repo_root().join("target/release/tracer");
            if !fallback.exists() {
                return Err(format!(
                    "{ENV_TRACER_BIN} is not set and {} does not exist (run `cargo xtask test`)",
                    fallback.display()
                ));
            }
            fallback
        }
    };
    if !is_executable(&path) {
        return Err(format!(
            "agent binary {} does not exist or is not executable",
            path.display()
        ));
    }
    Ok(path)
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// What a test that runs the agent needs; holding it keeps other such tests
/// (in this process or another) waiting.
pub struct TestEnv {
    pub test: String,
    pub tracer_bin: PathBuf,
    _lock: File,
}

/// `Some` when this test can run the agent: root, the binary is there, and
/// the machine-wide lock is ours. Otherwise prints why and gives `None`.
pub fn require_root(test: &str) -> Option<TestEnv> {
    if !is_root() {
        skip(test, "needs root to load eBPF programs");
        return None;
    }
    let tracer_bin = match tracer_bin() {
        Ok(bin) => bin,
        Err(reason) => {
            skip(test, &reason);
            return None;
        }
    };
    let lock = match lock_machine() {
        Ok(lock) => lock,
        Err(reason) => panic!("{test}: {reason}"),
    };
    Some(TestEnv {
        test: test.to_owned(),
        tracer_bin,
        _lock: lock,
    })
}

/// For tests that run the binary without loading anything (flag parsing).
pub fn require_binary(test: &str) -> Option<PathBuf> {
    match tracer_bin() {
        Ok(bin) => Some(bin),
        Err(reason) => {
            skip(test, &reason);
            None
        }
    }
}

fn lock_machine() -> Result<File, String> {
    let path = std::env::temp_dir().join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("locking {}: {e}", path.display())),
        }
    }
}

/// The name of the enclosing function, for skip messages.
#[macro_export]
macro_rules! function_name {
    () => {{
        fn f() {}
        fn type_name_of<T>(_: T) -> &'static str {
            ::std::any::type_name::<T>()
        }
        let name = type_name_of(f);
        let name = name.strip_suffix("::f").unwrap_or(name);
        name.rsplit("::").next().unwrap_or(name)
    }};
}

/// `let env = require_root!();` at the top of a test: returns from the test
/// (after printing `SKIPPED ...`) when it cannot run here.
#[macro_export]
macro_rules! require_root {
    () => {
        match $crate::skip::require_root($crate::function_name!()) {
            Some(env) => env,
            None => return,
        }
    };
}

/// `let go = skip_unless!(env, apps::go_compiler());`: unwraps a
/// `Result<T, String>` or skips the test with the error as the reason.
#[macro_export]
macro_rules! skip_unless {
    ($env:expr, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(reason) => {
                $crate::skip::skip(&$env.test, &reason);
                return;
            }
        }
    };
}
