//! The programs the agent traces: the Python and Go test servers and
//! clients under `tests/apps/`, curl, and nginx as a reverse proxy. Servers
//! get a free port, are waited on until they accept connections, and are
//! killed when dropped.
use std::{
    net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, bail};

use crate::{
    process::{Finished, Proc},
    skip::{ENV_TRACER_GO, ENV_TRACER_GO_VERSIONS, is_executable, target_dir},
};

/// How long a server may take to accept connections.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a client run may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Compiling Go's standard library the first time takes a while.
const GO_BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// `tests/apps/`.
pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("apps")
}

/// The system Python: `/usr/bin/python3`, else `python3` on PATH.
pub fn python3() -> PathBuf {
    let system = PathBuf::from("/usr/bin/python3");
    if is_executable(&system) {
        return system;
    }
    which("python3").unwrap_or_else(|| PathBuf::from("python3"))
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// A program looked up on PATH and in the sbin directories, or why not.
pub fn tool(name: &str) -> Result<PathBuf, String> {
    which(name)
        .or_else(|| {
            ["/usr/sbin", "/sbin", "/usr/local/sbin"]
                .iter()
                .map(|dir| Path::new(dir).join(name))
                .find(|p| is_executable(p))
        })
        .ok_or_else(|| format!("{name} is not installed"))
}

/// Basename of `/proc/PID/exe` (what the agent reports as
/// `process.executable.name`).
pub fn exe_name(pid: u32) -> anyhow::Result<String> {
    let path = exe_path(pid)?;
    Ok(path
        .file_name()
        .context("exe has no file name")?
        .to_string_lossy()
        .into_owned())
}

pub fn exe_path(pid: u32) -> anyhow::Result<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("readlink /proc/{pid}/exe"))
}

/// The kernel's host name (what the agent reports as `host.name`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A port nobody listens on right now, on 127.0.0.1 or ::1.
pub fn free_port(ipv6: bool) -> anyhow::Result<u16> {
    let listener = if ipv6 {
        TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
    } else {
        TcpListener::bind("127.0.0.1:0")
    }
    .context("binding an ephemeral port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `addr` accepts a connection, failing early if `proc` exits.
pub fn wait_for_port(proc: &mut Proc, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = proc.try_wait()? {
            bail!(
                "{} exited with {status} before listening on {addr}\nstdout:\n{}\nstderr:\n{}",
                proc.name,
                proc.stdout.text(),
                proc.stderr.text()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not listen on {addr} within {timeout:?}\nstderr:\n{}",
                proc.name,
                proc.stderr.text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running test server.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://host:port` (brackets for IPv6).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }
}

/// Starts a server built by `make(port)`, retrying on a fresh port if the
/// one picked was taken in between.
fn start_server(
    name: &str,
    ipv6: bool,
    mut make: impl FnMut(u16) -> Command,
) -> anyhow::Result<Server> {
    let mut last_error = None;
    for _ in 0..3 {
        let port = free_port(ipv6)?;
        let addr: SocketAddr = if ipv6 {
            (Ipv6Addr::LOCALHOST, port).into()
        } else {
            ([127, 0, 0, 1], port).into()
        };
        let mut proc = Proc::spawn(name, make(port), true)?;
        match wait_for_port(&mut proc, addr, SERVER_START_TIMEOUT) {
            Ok(()) => return Ok(Server { proc, addr }),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{name} did not start")))
}

/// Options for the Python test server.
#[derive(Clone, Debug, Default)]
pub struct PyServerOpts {
    /// Listen on ::1 instead of 127.0.0.1.
    pub ipv6: bool,
    /// Extra environment (e.g. OTEL_SERVICE_NAME).
    pub env: Vec<(String, String)>,
    /// Serve from another thread; `GET /leave-main-thread` ends the main
    /// thread alone.
    pub main_thread_leaves: bool,
}

/// `tests/apps/python/http_server.py` with the system Python.
pub fn python_server(opts: &PyServerOpts) -> anyhow::Result<Server> {
    let script = apps_dir().join("python/http_server.py");
    start_server("py-server", opts.ipv6, |port| {
        let mut cmd = Command::new(python3());
        cmd.arg("-u").arg(&script).arg(port.to_string());
        if opts.ipv6 {
            cmd.args(["--bind", "::1"]);
        }
        if opts.main_thread_leaves {
            cmd.arg("--main-thread-leaves");
        }
        cmd.env_remove("OTEL_SERVICE_NAME");
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        cmd
    })
}

/// A `tests/apps/python/client.py` command line (not started).
pub fn python_client(args: &[&str]) -> Command {
    let mut cmd = Command::new(python3());
    cmd.arg("-u")
        .arg(apps_dir().join("python/client.py"))
        .args(args);
    cmd
}

/// Runs `cmd` to completion (killed after `CLIENT_TIMEOUT`); errors on a
/// non-zero exit.
pub fn run(name: &str, cmd: Command) -> anyhow::Result<Finished> {
    Proc::spawn(name, cmd, true)?.finish(CLIENT_TIMEOUT)?.ok()
}

/// curl with `args`; `-s` and a bounded time are added.
pub fn curl(args: &[&str]) -> anyhow::Result<Finished> {
    let mut cmd = Command::new(tool("curl").map_err(anyhow::Error::msg)?);
    cmd.args(["-s", "--max-time", "30"]).args(args);
    run("curl", cmd)
}

/// One curl request whose body is discarded; gives the finished process and
/// `(status, local port)` as curl reports them.
pub fn curl_request(args: &[&str]) -> anyhow::Result<(Finished, u16, u16)> {
    let mut full = vec!["-o", "/dev/null", "-w", "%{http_code} %{local_port}\\n"];
    full.extend_from_slice(args);
    let finished = curl(&full)?;
    let mut fields = finished.stdout.split_whitespace();
    let status = fields
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("curl printed {:?}", finished.stdout))?;
    let local_port = fields
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("curl printed {:?}", finished.stdout))?;
    Ok((finished, status, local_port))
}

/// The Go compiler: `TRACER_GO`, else `go` on PATH.
pub fn go_compiler() -> Result<PathBuf, String> {
    match std::env::var_os(ENV_TRACER_GO) {
        Some(go) if !go.is_empty() => {
            let go = PathBuf::from(go);
            if is_executable(&go) {
                Ok(go)
            } else {
                Err(format!(
                    "{ENV_TRACER_GO}={} is not executable",
                    go.display()
                ))
            }
        }
        _ => which("go").ok_or_else(|| {
            format!("no Go compiler: {ENV_TRACER_GO} is not set and `go` is not on PATH")
        }),
    }
}

/// Every installed Go as (version, compiler), from `TRACER_GO_VERSIONS`
/// (`1.25.5=/abs/go,1.21.13=/abs/go`), or why there is none.
pub fn go_versions() -> Result<Vec<(String, PathBuf)>, String> {
    let list = std::env::var(ENV_TRACER_GO_VERSIONS)
        .map_err(|_| format!("{ENV_TRACER_GO_VERSIONS} is not set"))?;
    let versions: Vec<(String, PathBuf)> = list
        .split(',')
        .filter_map(|entry| {
            let (version, go) = entry.trim().split_once('=')?;
            Some((version.to_owned(), PathBuf::from(go)))
        })
        .filter(|(_, go)| is_executable(go))
        .collect();
    if versions.is_empty() {
        return Err(format!("no usable Go in {ENV_TRACER_GO_VERSIONS}={list:?}"));
    }
    Ok(versions)
}

/// The versions of [`go_versions`] from `1.<minor>` on (for programs that
/// use newer standard library APIs), or why there is none.
pub fn go_versions_since(minor: u32) -> Result<Vec<(String, PathBuf)>, String> {
    let all = go_versions()?;
    let since: Vec<(String, PathBuf)> = all
        .iter()
        .filter(|(version, _)| {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            matches!((parts.next(), parts.next()), (Some(Some(1)), Some(Some(m))) if m >= minor)
        })
        .cloned()
        .collect();
    if since.is_empty() {
        let listed: Vec<&str> = all.iter().map(|(v, _)| v.as_str()).collect();
        return Err(format!(
            "needs Go 1.{minor}+, {ENV_TRACER_GO_VERSIONS} has only {}",
            listed.join(", ")
        ));
    }
    Ok(since)
}

/// Builds `tests/apps/go/<program>/main.go` into
/// `target/test-programs/tracer-test-go-<program>` (reused while newer than
/// its source and the compiler).
pub fn go_binary(go: &Path, program: &str) -> anyhow::Result<PathBuf> {
    go_binary_named(go, program, &format!("tracer-test-go-{program}"))
}

/// Like [`go_binary`], into `target/test-programs/<name>`.
pub fn go_binary_named(go: &Path, program: &str, name: &str) -> anyhow::Result<PathBuf> {
    build_go(go, program, name, Build::Plain)
}

/// Where Debian's packaged Go libraries are (`golang-google-grpc-dev`,
/// `golang-golang-x-net-dev`): a GOPATH, since the Go module proxy is not
/// reachable from the project's machines.
pub const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// Import path prefixes of the Debian packaged libraries the Go test
/// programs use, and the package that provides each.
const DEBIAN_GO_LIBS: &[(&str, &str)] = &[
    ("google.golang.org/grpc", "golang-google-grpc-dev"),
    ("golang.org/x/net", "golang-golang-x-net-dev"),
];

/// [`DEBIAN_GOPATH`] when it holds every library of [`DEBIAN_GO_LIBS`], or
/// why not (a reason to skip the tests of the programs that import them).
pub fn go_debian_libs() -> Result<PathBuf, String> {
    let gopath = PathBuf::from(DEBIAN_GOPATH);
    let missing: Vec<&str> = DEBIAN_GO_LIBS
        .iter()
        .filter(|(import, _)| !gopath.join("src").join(import).is_dir())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        Ok(gopath)
    } else {
        Err(format!(
            "Go libraries missing under {DEBIAN_GOPATH}: install {} (`cargo xtask setup`)",
            missing.join(" ")
        ))
    }
}

/// Builds `tests/apps/go/<program>/main.go` with the Go at `go`, whose
/// version (`1.25.5`, as [`go_versions`] gives it) names the binary:
/// `target/test-programs/tracer-test-go-<program>-go<version>`, with
/// `-stripped` appended when built with `-ldflags=-s -w` (no symbol table,
/// no DWARF: the tracer must then find functions and struct offsets without
/// them). Reused while newer than the sources and the compiler. Programs that
/// import Debian's grpc-go or x/net are built against [`DEBIAN_GOPATH`].
pub fn go_program(
    go: &Path,
    version: &str,
    program: &str,
    stripped: bool,
) -> anyhow::Result<PathBuf> {
    let suffix = if stripped { "-stripped" } else { "" };
    build_go(
        go,
        program,
        &format!("tracer-test-go-{program}-go{version}{suffix}"),
        if stripped {
            Build::Stripped
        } else {
            Build::Plain
        },
    )
}

/// Like [`go_program`], built as `build` says; named
/// `...-go<version>-<build>`.
pub fn go_program_as(
    go: &Path,
    version: &str,
    program: &str,
    build: Build,
) -> anyhow::Result<PathBuf> {
    let suffix = match build {
        Build::Plain => "",
        Build::Stripped => "-stripped",
        Build::Cgo => "-cgo",
        Build::Pie => "-pie",
    };
    build_go(
        go,
        program,
        &format!("tracer-test-go-{program}-go{version}{suffix}"),
        build,
    )
}

/// How a Go test program is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    Plain,
    /// `-ldflags=-s -w`: no symbol table, no DWARF.
    Stripped,
    /// A cgo binary: CGO_ENABLED=1 and `-tags tracer_cgo`, which builds in
    /// the program's `cgo.go` (it imports "C"); needs a C compiler.
    Cgo,
    /// `-buildmode=pie`: position-independent, loaded at a random address.
    Pie,
}

/// `go build` of a program, in GOPATH mode (no go.mod, nothing to download).
fn build_go(go: &Path, program: &str, name: &str, build: Build) -> anyhow::Result<PathBuf> {
    let source_dir = apps_dir().join("go").join(program);
    let source = source_dir.join("main.go");
    let code = std::fs::read_to_string(&source)
        .with_context(|| format!("reading {}", source.display()))?;
    let out_dir = target_dir().join("test-programs");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let binary = out_dir.join(name);
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let fresh = match (mtime(&binary), mtime(&source), mtime(go)) {
        (Some(built), Some(src), Some(compiler)) => built >= src && built >= compiler,
        _ => false,
    };
    if fresh {
        return Ok(binary);
    }
    // Only the programs that import Debian's libraries get its GOPATH, so
    // that the standard-library ones build on machines without them.
    let gopath = if DEBIAN_GO_LIBS
        .iter()
        .any(|(import, _)| code.contains(&format!("\"{import}")))
    {
        go_debian_libs().map_err(anyhow::Error::msg)?
    } else {
        out_dir.join("go-path")
    };
    let tmp = out_dir.join(format!("{name}.tmp{}", std::process::id()));
    let mut cmd = Command::new(go);
    cmd.current_dir(&source_dir).arg("build");
    match build {
        Build::Plain => {}
        Build::Stripped => {
            cmd.arg("-ldflags=-s -w");
        }
        Build::Cgo => {
            cmd.arg("-tags=tracer_cgo");
        }
        Build::Pie => {
            cmd.arg("-buildmode=pie");
        }
    }
    cmd.arg("-o").arg(&tmp).arg("main.go");
    if build == Build::Cgo {
        cmd.arg("cgo.go");
    }
    cmd.env("GOTOOLCHAIN", "local")
        // A GOFLAGS of the caller's (e.g. -mod=vendor) has no meaning here.
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off")
        .env("GOCACHE", out_dir.join("go-cache"))
        .env("GOPATH", gopath)
        .env("CGO_ENABLED", if build == Build::Cgo { "1" } else { "0" });
    if std::env::var_os("HOME").is_none() {
        cmd.env("HOME", &out_dir);
    }
    eprintln!("[harness] building {}", binary.display());
    Proc::spawn("go build", cmd, true)?
        .finish(GO_BUILD_TIMEOUT)?
        .ok()
        .with_context(|| format!("building {} with {}", source.display(), go.display()))?;
    std::fs::rename(&tmp, &binary)
        .with_context(|| format!("moving {} to {}", tmp.display(), binary.display()))?;
    Ok(binary)
}

/// The Go test server (`go/server`).
pub fn go_server(binary: &Path) -> anyhow::Result<Server> {
    start_server("go-server", false, |port| {
        let mut cmd = Command::new(binary);
        cmd.arg(port.to_string()).env_remove("OTEL_SERVICE_NAME");
        cmd
    })
}

/// A Go test client command: `n` keep-alive GETs of `url_prefix` + i.
pub fn go_client(binary: &Path, url_prefix: &str, n: usize) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg(url_prefix)
        .arg(n.to_string())
        .env_remove("OTEL_SERVICE_NAME");
    cmd
}

/// A `go/fanout` server: `/fanout?n=N` and `/nested?n=N` call
/// `downstream` + `/leaf?i=<i>` from N goroutines (nested: from goroutines
/// started by goroutines) over one shared keep-alive client; `/leaf` answers
/// "leaf <i>". Without `downstream` it can only be a leaf.
pub fn go_fanout_server(binary: &Path, downstream: Option<&str>) -> anyhow::Result<Server> {
    start_server("go-fanout", false, |port| {
        let mut cmd = Command::new(binary);
        if let Some(url) = downstream {
            cmd.arg("-downstream").arg(url);
        }
        cmd.arg(port.to_string()).env_remove("OTEL_SERVICE_NAME");
        cmd
    })
}

/// Two `go/fanout` servers, the front calling the leaf.
/// Fields drop in order: the front stops before the leaf it calls.
pub struct Fanout {
    pub front: Server,
    pub leaf: Server,
}

impl Fanout {
    /// Starts the leaf, then the front pointed at it; the two binaries may
    /// be the same one or builds of different Go versions.
    pub fn start(front_binary: &Path, leaf_binary: &Path) -> anyhow::Result<Fanout> {
        let leaf = go_fanout_server(leaf_binary, None).context("starting the fan-out leaf")?;
        let front = go_fanout_server(front_binary, Some(&leaf.base_url()))
            .context("starting the fan-out front")?;
        Ok(Fanout { front, leaf })
    }

    /// `/fanout?n=<n>` on the front.
    pub fn fanout_url(&self, n: usize) -> String {
        self.front.url(&format!("/fanout?n={n}"))
    }

    /// `/nested?n=<n>` on the front.
    pub fn nested_url(&self, n: usize) -> String {
        self.front.url(&format!("/nested?n={n}"))
    }
}

/// The `go/grpc_server` health service: Check("ok") → SERVING,
/// Check("missing") → NotFound, Watch("ok") → 3 messages then OK.
pub fn go_grpc_server(binary: &Path) -> anyhow::Result<Server> {
    start_server("go-grpc-server", false, |port| {
        let mut cmd = Command::new(binary);
        cmd.arg(port.to_string()).env_remove("OTEL_SERVICE_NAME");
        cmd
    })
}

/// The `go/grpc_fanout` server: `/fanout?n=N` and `/nested?n=N` make N
/// gRPC Check calls to `target` from goroutines. It listens, then waits:
/// [`connect_grpc_fanout`] has it connect to `target` (once the agent
/// follows it, so that it sees the connection from its preface).
pub fn go_grpc_fanout(binary: &Path, target: SocketAddr) -> anyhow::Result<Server> {
    start_server("go-grpc-fanout", false, |port| {
        let mut cmd = Command::new(binary);
        cmd.arg("-target")
            .arg(target.to_string())
            .arg("-wait")
            .arg(port.to_string())
            .env_remove("OTEL_SERVICE_NAME");
        cmd
    })
}

/// Lets a waiting `go/grpc_fanout` (or `go/grpc_middle`) connect, and waits
/// until it has.
pub fn connect_grpc_fanout(front: &mut Server) -> anyhow::Result<()> {
    let stdout = front.proc.stdout.clone();
    anyhow::ensure!(
        stdout.wait_line(Duration::from_secs(20), |l| l.trim() == "WAITING"),
        "grpc_fanout did not start: {}",
        stdout.text()
    );
    front.proc.write_stdin("go\n")?;
    anyhow::ensure!(
        stdout.wait_line(Duration::from_secs(30), |l| l.trim() == "DIALED"),
        "grpc_fanout did not connect: {}{}",
        stdout.text(),
        front.proc.stderr.text()
    );
    Ok(())
}

/// `go/grpc_middle`: a gRPC health service and an h2c `/work/` route whose
/// handlers make `calls` gRPC Check("ok") calls to `grpc_target`, then
/// `http` GETs of `http_url`. It listens, then waits:
/// [`connect_grpc_fanout`] has it dial `grpc_target` (once the agent
/// follows it).
pub struct GrpcMiddle {
    pub server: Server,
    /// Where `/work` is served over h2c (prior knowledge).
    pub h2c: SocketAddr,
}

impl GrpcMiddle {
    pub fn start(
        binary: &Path,
        grpc_target: SocketAddr,
        http_url: &str,
        calls: usize,
        http: usize,
    ) -> anyhow::Result<GrpcMiddle> {
        let h2c_port = free_port(false)?;
        let server = start_server("go-grpc-middle", false, |port| {
            let mut cmd = Command::new(binary);
            cmd.arg("-grpc-target")
                .arg(grpc_target.to_string())
                .arg("-http-url")
                .arg(http_url)
                .arg("-calls")
                .arg(calls.to_string())
                .arg("-http")
                .arg(http.to_string())
                .arg("-h2c-port")
                .arg(h2c_port.to_string())
                .arg("-wait")
                .arg(port.to_string())
                .env_remove("OTEL_SERVICE_NAME")
                // GOPATH builds default to Go 1.20's GODEBUG: the ServeMux
                // of Go 1.22+ (Request.Pattern), as modules have it. Older
                // Go ignores the setting.
                .env("GODEBUG", "httpmuxgo121=0");
            cmd
        })?;
        Ok(GrpcMiddle {
            server,
            h2c: ([127, 0, 0, 1], h2c_port).into(),
        })
    }

    /// `http://127.0.0.1:<h2c port>/work/7` (ServeMux pattern `/work/`).
    pub fn work_url(&self) -> String {
        format!("http://{}/work/7", self.h2c)
    }
}

/// The calls `go/grpc_client` makes to `grpc.health.v1.Health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcCall {
    /// Unary Check("ok"): SERVING; prints "CHECK ok SERVING".
    CheckOk,
    /// Unary Check("missing"): status NotFound; prints "CHECK missing NotFound".
    CheckMissing,
    /// Server-streaming Watch("ok"): three "WATCH ok SERVING", then
    /// "WATCH ok END OK".
    Watch,
}

impl GrpcCall {
    /// The client's `-call` value.
    pub fn flag(self) -> &'static str {
        match self {
            GrpcCall::CheckOk => "check-ok",
            GrpcCall::CheckMissing => "check-missing",
            GrpcCall::Watch => "watch",
        }
    }
}

/// A `go/grpc_client` command (not started): `call` made `n` times over one
/// connection to `target`; exits non-zero on any unexpected result. Append
/// `-wait` to have it print "WAITING" and wait for a line on stdin first.
pub fn go_grpc_client(binary: &Path, target: SocketAddr, call: GrpcCall, n: usize) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("-target")
        .arg(target.to_string())
        .args(["-call", call.flag(), "-n"])
        .arg(n.to_string())
        .env_remove("OTEL_SERVICE_NAME");
    cmd
}

/// The `go/h2c_server`: HTTP/2 without TLS (prior knowledge or Upgrade),
/// `/hello` → 200, `/status/<code>`; logs "METHOD PATH PROTO" per request on
/// stderr.
pub fn go_h2c_server(binary: &Path) -> anyhow::Result<Server> {
    start_server("go-h2c-server", false, |port| {
        let mut cmd = Command::new(binary);
        cmd.arg(port.to_string()).env_remove("OTEL_SERVICE_NAME");
        cmd
    })
}

/// A `go/h2c_client` command (not started): `rounds` GETs of every URL over
/// one HTTP/2 prior-knowledge connection, one after another or, with
/// `concurrent`, all at once as concurrent streams. Prints
/// "STATUS <code> HTTP/2.0" per response and "CONNECTIONS 1"; exits non-zero
/// on anything but HTTP/2 over one connection. Flags may be appended
/// (`-wait`).
pub fn go_h2c_client(binary: &Path, urls: &[&str], rounds: usize, concurrent: bool) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("-n").arg(rounds.to_string());
    if concurrent {
        cmd.arg("-concurrent");
    }
    cmd.args(urls).env_remove("OTEL_SERVICE_NAME");
    cmd
}

/// A directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// nginx as a reverse proxy on 127.0.0.1 in front of `backend_port`.
/// Fields drop in order: nginx is stopped before its directory goes.
pub struct Nginx {
    pub server: Server,
    pub dir: TempDir,
}

impl Nginx {
    /// An HTTP/1.1 reverse proxy (`proxy_pass`).
    pub fn start(backend_port: u16) -> anyhow::Result<Nginx> {
        Nginx::start_from("proxy.conf.template", backend_port, &[])
    }

    /// A gRPC reverse proxy: an h2c listener, `grpc_pass`.
    pub fn start_grpc(backend_port: u16) -> anyhow::Result<Nginx> {
        Nginx::start_from("grpc.conf.template", backend_port, &[])
    }

    /// An HTTPS server (`listen ... ssl` with `cert` and `key`): `/hello`
    /// answered by nginx, anything else proxied over plaintext HTTP/1.1 to
    /// `backend_port`.
    pub fn start_tls(backend_port: u16, cert: &Path, key: &Path) -> anyhow::Result<Nginx> {
        Nginx::start_from(
            "tls.conf.template",
            backend_port,
            &[
                ("@CERT@", cert.to_string_lossy().into_owned()),
                ("@KEY@", key.to_string_lossy().into_owned()),
            ],
        )
    }

    /// `template` with @PORT@, @BACKEND_PORT@, @DIR@ and `more` replaced.
    fn start_from(
        template: &str,
        backend_port: u16,
        more: &[(&str, String)],
    ) -> anyhow::Result<Nginx> {
        let nginx = tool("nginx").map_err(anyhow::Error::msg)?;
        let template = std::fs::read_to_string(apps_dir().join("nginx").join(template))
            .with_context(|| format!("reading the nginx template {template}"))?;
        let dir = TempDir::new("tracer-nginx")?;
        let dir_str = dir.path.to_string_lossy().into_owned();
        let server = start_server("nginx", false, |port| {
            let mut conf = template
                .replace("@PORT@", &port.to_string())
                .replace("@BACKEND_PORT@", &backend_port.to_string())
                .replace("@DIR@", &dir_str);
            for (placeholder, value) in more {
                conf = conf.replace(placeholder, value);
            }
            let conf_path = dir.path.join("nginx.conf");
            if let Err(e) = std::fs::write(&conf_path, conf) {
                eprintln!("[harness] writing {}: {e}", conf_path.display());
            }
            let mut cmd = Command::new(&nginx);
            cmd.args(["-e", "stderr", "-c"])
                .arg(&conf_path)
                .arg("-p")
                .arg(&dir.path)
                .env_remove("OTEL_SERVICE_NAME");
            cmd
        })?;
        Ok(Nginx { server, dir })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The master and the worker(s).
    pub fn pids(&self) -> Vec<u32> {
        self.server.proc.group_pids()
    }
}
