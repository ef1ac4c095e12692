//! The servers under load: a Go net/http hello server and nginx, each
//! answering `hello` on 127.0.0.1, and nginx again over HTTPS (OpenSSL,
//! with a certificate made for the run); two Go fan-out servers, a front
//! whose every request makes one net/http client call to a leaf; and Go
//! gRPC servers (grpc-go): a leaf alone, and a middle tier whose every
//! request makes one gRPC call to a leaf.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{
    phase::Target,
    procs::{self, Proc},
};
use crate::{
    cmd::{self, Paths},
    setup::DEFAULT_GO,
};

/// The hello server's source, relative to the workspace root.
const GO_HELLO: &str = "tests/apps/go/hello";
/// The fan-out server's source, relative to the workspace root.
const GO_FANOUT: &str = "tests/apps/go/fanout";
/// The gRPC leaf, middle tier and load generator.
const GO_GRPC_LEAF: &str = "tests/apps/go/grpc_server";
const GO_GRPC_MIDDLE: &str = "tests/apps/go/grpc_middle";
const GO_GRPC_LOAD: &str = "tests/apps/go/grpc_load";
/// Where Debian's grpc-go is (`cargo xtask setup` installs it).
const DEBIAN_GOPATH: &str = "/usr/share/gocode";
/// nginx's OpenSSL uprobe hits per keep-alive request: SSL_read's entry
/// and return for the request, again for the SSL_read after it that finds
/// nothing more (WANT_READ: nginx reads until OpenSSL has nothing), and
/// SSL_write's entry for the response.
const NGINX_TLS_HITS: u64 = 5;
/// The Go hello server's crypto/tls uprobe hits per keep-alive request:
/// the request's record (readRecordOrCCS's return), net/http's background
/// read, whose record reader returns a deadline error, and Write's entry
/// for the response (as the test `go_https_server_http1_pays_three_traps_a_request`
/// counts them).
const GO_TLS_HITS: u64 = 3;
/// wrk's: SSL_write's entry for the request, SSL_read's entry and return
/// for the response (it asks SSL_pending, not probed, whether more is
/// buffered). Both counted with perf probes on libssl, 2026-12-06.
const WRK_TLS_HITS: u64 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Go,
    Nginx,
    /// nginx with `ssl` under wrk over https: both link the system's
    /// libssl, whose OpenSSL calls the agent probes.
    NginxTls,
    /// The Go hello server over https (crypto/tls) under wrk (OpenSSL).
    GoTls,
    GoFanout,
    GoGrpc,
    GoGrpcMiddle,
}

impl Workload {
    pub fn label(self) -> &'static str {
        match self {
            Self::Go => "Go net/http (GOMAXPROCS=1)",
            Self::Nginx => "nginx (1 worker)",
            Self::NginxTls => "nginx https (1 worker, OpenSSL)",
            Self::GoTls => "Go net/http https (GOMAXPROCS=1, crypto/tls)",
            Self::GoFanout => "Go fan-out, 1 client call/req (2 × GOMAXPROCS=1)",
            Self::GoGrpc => "Go gRPC leaf (grpc-go, GOMAXPROCS=1)",
            Self::GoGrpcMiddle => "Go gRPC middle tier, 1 gRPC call/req (2 × GOMAXPROCS=1)",
        }
    }

    /// Uprobe hits each request should cost: one per Go client call, one
    /// for the server handler probe of a Go gRPC middle tier (a leaf never
    /// gets it), and the OpenSSL calls of a TLS request.
    pub fn probe_hits(self) -> u64 {
        match self {
            Self::GoGrpcMiddle => self.client_calls() + 1,
            _ => {
                let (server, client) = self.tls_hits();
                self.client_calls() + server + client
            }
        }
    }

    /// Hits of the OpenSSL uprobes each request costs: the server's, and
    /// wrk's, in every mode: the agent attaches them to the system's libssl
    /// for every process that maps it (a short-lived client does its TLS
    /// before probes for it alone could be attached), so wrk traps on them
    /// even when only the server is selected; the programs return at once
    /// for a process not traced.
    pub fn tls_hits(self) -> (u64, u64) {
        match self {
            Self::NginxTls => (NGINX_TLS_HITS, WRK_TLS_HITS),
            Self::GoTls => (GO_TLS_HITS, WRK_TLS_HITS),
            _ => (0, 0),
        }
    }

    /// Uprobe hits a connection costs beyond its requests, at most: nginx
    /// may find no request yet after the handshake (an SSL_read that
    /// returns WANT_READ), and reads the close (an SSL_read that returns
    /// 0); Go's server reads the handshake's records and the close. Each
    /// wrk run opens its connections anew.
    pub fn connection_hits(self) -> u64 {
        match self {
            Self::NginxTls => 4,
            Self::GoTls => 6,
            _ => 0,
        }
    }

    /// Go client calls (net/http, keep-alive pool) each request makes: the
    /// ones the client path's uprobe is expected to hit once each.
    pub fn client_calls(self) -> u64 {
        match self {
            Self::Go | Self::Nginx | Self::NginxTls | Self::GoTls | Self::GoGrpc => 0,
            Self::GoFanout | Self::GoGrpcMiddle => 1,
        }
    }

    /// The spans each request makes on the servers' side: a SERVER span per
    /// server it crosses, a CLIENT span per client call (wrk's not counted).
    pub fn spans_per_request(self) -> u64 {
        match self {
            // TLS changes where the bytes come from, not the spans.
            Self::Go | Self::Nginx | Self::NginxTls | Self::GoTls | Self::GoGrpc => 1,
            // Front server, front client, leaf server.
            Self::GoFanout | Self::GoGrpcMiddle => 3,
        }
    }

    /// Builds (Go) or locates (nginx) what `start` runs; an error naming
    /// `cargo xtask setup` when a tool is missing.
    pub fn prepare(self, paths: &Paths, dir: &Path) -> Result<Prepared> {
        match self {
            Self::Go => Ok(Prepared::Go {
                bin: go_build(paths, dir, GO_HELLO, "hello")?,
                tls: None,
            }),
            Self::GoTls => {
                let tls = dir.join("go-tls");
                certificate(&tls)?;
                Ok(Prepared::Go {
                    bin: go_build(paths, dir, GO_HELLO, "hello")?,
                    tls: Some(tls),
                })
            }
            Self::GoFanout => Ok(Prepared::GoFanout {
                bin: go_build(paths, dir, GO_FANOUT, "fanout")?,
            }),
            Self::GoGrpc | Self::GoGrpcMiddle => Ok(Prepared::GoGrpc {
                leaf: go_build(paths, dir, GO_GRPC_LEAF, "grpc_server")?,
                middle: (self == Self::GoGrpcMiddle)
                    .then(|| go_build(paths, dir, GO_GRPC_MIDDLE, "grpc_middle"))
                    .transpose()?,
                load: Box::leak(go_build(paths, dir, GO_GRPC_LOAD, "grpc_load")?.into_boxed_path()),
            }),
            Self::Nginx => Ok(Prepared::Nginx {
                bin: nginx_command()?,
                dir: dir.join("nginx"),
                tls: false,
            }),
            Self::NginxTls => {
                let dir = dir.join("nginx-tls");
                certificate(&dir)?;
                Ok(Prepared::Nginx {
                    bin: nginx_command()?,
                    dir,
                    tls: true,
                })
            }
        }
    }
}

/// `go build -o DIR/NAME ./SRC` with the default Go of `cargo xtask setup`,
/// in GOPATH mode: the standard library, and Debian's packaged grpc-go for
/// the gRPC programs.
fn go_build(paths: &Paths, dir: &Path, src: &str, name: &str) -> Result<PathBuf> {
    let go = go_command(paths)?;
    let gopath = if src.contains("grpc") {
        if !Path::new(DEBIAN_GOPATH)
            .join("src/google.golang.org/grpc")
            .is_dir()
        {
            bail!("Debian's grpc-go is not installed: run `cargo xtask setup`");
        }
        PathBuf::from(DEBIAN_GOPATH)
    } else {
        dir.join("go-path")
    };
    let bin = dir.join(name);
    cmd::run(
        cmd::new(&go)
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(format!("./{src}"))
            .current_dir(&paths.root)
            .env("GOTOOLCHAIN", "local")
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", dir.join("go-cache"))
            .env("GOPATH", gopath),
    )
    .with_context(|| format!("cannot build the Go program {src}"))?;
    Ok(bin)
}

pub enum Prepared {
    Go {
        bin: PathBuf,
        /// Serve https with `cert.pem` and `key.pem` of this directory.
        tls: Option<PathBuf>,
    },
    Nginx {
        bin: PathBuf,
        dir: PathBuf,
        /// `listen ... ssl` with `cert.pem` and `key.pem` of `dir`.
        tls: bool,
    },
    GoFanout {
        bin: PathBuf,
    },
    GoGrpc {
        leaf: PathBuf,
        /// The middle tier, calling the leaf (else the leaf is loaded).
        middle: Option<PathBuf>,
        /// The load generator (leaked: targets are `Copy`).
        load: &'static Path,
    },
}

/// A server that answers on `port` until dropped.
pub struct Server {
    pub port: u16,
    pub proc: Proc,
    /// What wrk asks for.
    path: &'static str,
    /// go-fanout: the leaf the front (`proc`) calls, and its port.
    leaf: Option<(u16, Proc)>,
    /// gRPC: the load generator.
    grpc_load: Option<&'static Path>,
    /// A gRPC middle tier: re-dials its leaf on SIGHUP.
    redial: bool,
    /// wrk speaks https to it.
    https: bool,
}

impl Server {
    /// The server process: the Go hello server itself; nginx's master
    /// (`daemon off`, so the process started), whose worker is its child;
    /// the fan-out front.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn target(&self) -> Target {
        Target {
            port: self.port,
            pid: self.pid(),
            path: self.path,
            downstream: self.leaf.as_ref().map(|(port, leaf)| (*port, leaf.pid())),
            grpc_load: self.grpc_load,
            redial: self.redial,
            https: self.https,
        }
    }

    /// An error if the server, or its leaf, has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some((_, leaf)) = &mut self.leaf {
            leaf.ensure_running()?;
        }
        self.proc.ensure_running()
    }
}

impl Prepared {
    pub fn start(&self) -> Result<Server> {
        let port = procs::free_port()?;
        let (mut path, mut leaf) = ("/", None);
        let (mut grpc_load, mut redial, mut https) = (None, false, false);
        let mut cmd = match self {
            Self::Go { bin, tls } => {
                let mut cmd = Command::new(bin);
                cmd.arg(port.to_string()).env("GOMAXPROCS", "1");
                if let Some(dir) = tls {
                    cmd.arg(dir.join("cert.pem")).arg(dir.join("key.pem"));
                    https = true;
                }
                cmd
            }
            Self::GoFanout { bin } => {
                // The leaf first: the front must have somewhere to call.
                let leaf_port = procs::free_port()?;
                let mut cmd = Command::new(bin);
                cmd.arg(leaf_port.to_string())
                    .env("GOMAXPROCS", "1")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null());
                let mut proc = Proc::spawn("the fan-out leaf", &mut cmd)?;
                procs::wait_listening(&mut proc, leaf_port, Duration::from_secs(10))?;
                leaf = Some((leaf_port, proc));
                path = "/fanout?n=1";
                let mut cmd = Command::new(bin);
                cmd.arg("-downstream")
                    .arg(format!("http://127.0.0.1:{leaf_port}"))
                    .arg(port.to_string())
                    .env("GOMAXPROCS", "1");
                cmd
            }
            Self::GoGrpc {
                leaf: leaf_bin,
                middle,
                load,
            } => {
                grpc_load = Some(*load);
                path = "grpc.health.v1.Health/Check";
                let mut leaf_cmd = Command::new(leaf_bin);
                leaf_cmd.env("GOMAXPROCS", "1");
                match middle {
                    None => {
                        leaf_cmd.arg(port.to_string());
                        leaf_cmd
                    }
                    Some(middle) => {
                        let leaf_port = procs::free_port()?;
                        leaf_cmd
                            .arg(leaf_port.to_string())
                            .stdin(Stdio::null())
                            .stdout(Stdio::null());
                        let mut proc = Proc::spawn("the gRPC leaf", &mut leaf_cmd)?;
                        procs::wait_listening(&mut proc, leaf_port, Duration::from_secs(10))?;
                        leaf = Some((leaf_port, proc));
                        redial = true;
                        let mut cmd = Command::new(middle);
                        cmd.arg("-grpc-target")
                            .arg(format!("127.0.0.1:{leaf_port}"))
                            .args(["-calls", "1"])
                            .arg(port.to_string())
                            .env("GOMAXPROCS", "1");
                        cmd
                    }
                }
            }
            Self::Nginx { bin, dir, tls } => {
                https = *tls;
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let conf = dir.join("nginx.conf");
                fs::write(&conf, nginx_conf(dir, port, *tls))
                    .with_context(|| format!("cannot write {}", conf.display()))?;
                let mut cmd = Command::new(bin);
                cmd.args(["-e", "stderr", "-c"])
                    .arg(&conf)
                    .arg("-p")
                    .arg(dir);
                cmd
            }
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        let mut proc = Proc::spawn("the server", &mut cmd)?;
        procs::wait_listening(&mut proc, port, Duration::from_secs(10))?;
        Ok(Server {
            port,
            proc,
            path,
            leaf,
            grpc_load,
            redial,
            https,
        })
    }
}

/// One worker, no access log, a fixed answer; keep-alive connections are
/// never closed by nginx (its default closes them every 1000 requests),
/// like the Go server, so both see the same connection pattern. With
/// `tls`, the same over HTTPS with the certificate of `certificate`.
fn nginx_conf(dir: &Path, port: u16, tls: bool) -> String {
    let listen = if tls {
        let dir = dir.display();
        format!(
            "listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;"
        )
    } else {
        format!("listen 127.0.0.1:{port};")
    };
    let dir = dir.display();
    format!(
        "daemon off;
master_process on;
worker_processes 1;
user root;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;

events {{
    worker_connections 2048;
}}

http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        {listen}
        location / {{
            default_type text/plain;
            return 200 \"hello\\n\";
        }}
    }}
}}
"
    )
}

/// The `go` of the default Go version that `cargo xtask setup` installs.
fn go_command(paths: &Paths) -> Result<PathBuf> {
    let tools = paths.tools();
    let prefix = format!("go-{DEFAULT_GO}.");
    let found = fs::read_dir(&tools)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path().join("go/bin/go"))
        .filter(|bin| bin.is_file())
        .max();
    match found {
        Some(go) => Ok(go),
        None => bail!(
            "no Go {DEFAULT_GO} toolchain under {}: run `cargo xtask setup`",
            tools.display()
        ),
    }
}

/// A self-signed certificate for localhost, `cert.pem` and `key.pem` in
/// `dir`, made afresh for every run (nothing secret is ever committed).
fn certificate(dir: &Path) -> Result<()> {
    if !cmd::on_path("openssl") {
        bail!("openssl (the command) is not installed: it makes the https workloads' certificate");
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    cmd::output(
        cmd::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem")),
    )
    .context("cannot make the https workloads' certificate")?;
    Ok(())
}

fn nginx_command() -> Result<PathBuf> {
    if cmd::on_path("nginx") {
        return Ok(PathBuf::from("nginx"));
    }
    // Debian puts it in /usr/sbin, which a user's PATH may lack.
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.is_file() {
        return Ok(sbin);
    }
    bail!("nginx is not installed: run `cargo xtask setup`")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Workload, nginx_conf};

    #[test]
    fn nginx_tls_probe_hits_are_both_sides_openssl_calls() {
        assert_eq!(Workload::NginxTls.tls_hits(), (5, 3));
        assert_eq!(Workload::NginxTls.probe_hits(), 8);
        assert_eq!(Workload::NginxTls.client_calls(), 0);
        assert_eq!(
            Workload::NginxTls.spans_per_request(),
            Workload::Nginx.spans_per_request()
        );
        for plain in [Workload::Go, Workload::Nginx, Workload::GoFanout] {
            assert_eq!(plain.tls_hits(), (0, 0), "{plain:?}");
            assert_eq!(plain.connection_hits(), 0, "{plain:?}");
        }
        assert_eq!(Workload::GoGrpcMiddle.probe_hits(), 2);
    }

    #[test]
    fn go_tls_probe_hits_are_go_s_and_wrk_s() {
        assert_eq!(Workload::GoTls.tls_hits(), (3, 3));
        assert_eq!(Workload::GoTls.probe_hits(), 6);
        assert_eq!(Workload::GoTls.client_calls(), 0);
        assert_eq!(Workload::GoTls.spans_per_request(), 1);
        assert!(Workload::GoTls.connection_hits() > 0);
    }

    #[test]
    fn nginx_tls_listens_with_ssl_and_the_run_s_certificate() {
        let dir = Path::new("/tmp/bench/nginx-tls");
        let conf = nginx_conf(dir, 8443, true);
        assert!(conf.contains("listen 127.0.0.1:8443 ssl;"));
        assert!(conf.contains("ssl_certificate /tmp/bench/nginx-tls/cert.pem;"));
        assert!(conf.contains("ssl_certificate_key /tmp/bench/nginx-tls/key.pem;"));
        assert!(conf.contains("keepalive_requests 100000000;"));
        let plain = nginx_conf(dir, 8080, false);
        assert!(plain.contains("listen 127.0.0.1:8080;"));
        assert!(!plain.contains("ssl"));
    }
}
