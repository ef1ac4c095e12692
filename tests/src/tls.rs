//! The TLS tests' setup (`tests/tls.rs`): a CA and a server certificate
//! for 127.0.0.1 and localhost, made with `openssl` at test time (nothing
//! committed); the TLS test programs (Python's blocking `ssl` and asyncio,
//! Node's `https`, Go's crypto/tls client and servers); curl over HTTPS;
//! and the agent's TLS counters.
use std::{
    fmt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::{
    agent::AgentExit,
    apps::{self, Server, TempDir},
    chain,
    process::{Finished, Proc},
};

/// A CA and the server certificate it signed, in a directory removed on
/// drop. Clients trust `ca`; servers present `cert` with `key`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

/// The server certificate's extensions: Go and gRPC check the names in
/// subjectAltName only (not the CN), and the clients call 127.0.0.1.
const SERVER_EXTENSIONS: &str = "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
";

impl Certs {
    /// `openssl` on this machine, or why not (a reason to skip).
    pub fn openssl() -> Result<PathBuf, String> {
        apps::tool("openssl")
    }

    /// A fresh CA (P-256, valid two days) and a server certificate signed
    /// by it.
    pub fn generate(openssl: &Path) -> anyhow::Result<Certs> {
        let dir = TempDir::new("tracer-tls")?;
        let at = |name: &str| dir.path.join(name);
        std::fs::write(at("server.ext"), SERVER_EXTENSIONS).context("writing server.ext")?;
        // No argument has a space in it: each step is one string.
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        let steps = [
            format!("req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=tracer-test-ca"),
            format!("req -new {ec} -keyout server.key -out server.csr -subj /CN=localhost"),
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -out server.pem -extfile server.ext"
                .to_owned(),
        ];
        for step in &steps {
            let mut cmd = Command::new(openssl);
            cmd.current_dir(&dir.path).args(step.split_whitespace());
            apps::run("openssl", cmd).context("generating the test certificates")?;
        }
        Ok(Certs {
            ca: at("ca.pem"),
            cert: at("server.pem"),
            key: at("server.key"),
            _dir: dir,
        })
    }
}

/// `https://127.0.0.1:<port><path>`.
pub fn https_url(port: u16, path: &str) -> String {
    format!("https://127.0.0.1:{port}{path}")
}

/// What curl reported for one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurlTransfer {
    pub status: u16,
    /// `1.1` or `2`.
    pub http_version: String,
    /// New connections this transfer opened (0: it reused one).
    pub connects: u32,
}

/// One curl run over HTTPS trusting `ca`, the URLs in turn (over one
/// connection when it can be kept), `args` added (e.g. `--http2`); its
/// pid and each transfer.
pub fn curl_https(
    ca: &Path,
    urls: &[String],
    args: &[&str],
) -> anyhow::Result<(u32, Vec<CurlTransfer>)> {
    let mut cmd = Command::new(apps::tool("curl").map_err(anyhow::Error::msg)?);
    cmd.args(["-s", "--max-time", "30", "--cacert"])
        .arg(ca)
        .args(args)
        .args(["-w", "%{http_code} %{http_version} %{num_connects}\\n"]);
    for url in urls {
        cmd.args(["-o", "/dev/null", url]);
    }
    let finished = apps::run("curl", cmd)?;
    let transfers = finished
        .stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [status, version, connects] => Some(CurlTransfer {
                    status: status.parse().ok()?,
                    http_version: version.to_owned(),
                    connects: connects.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("curl printed {:?}", finished.stdout))?;
    anyhow::ensure!(
        transfers.len() == urls.len(),
        "curl made {} transfers for {} URLs: {:?}",
        transfers.len(),
        urls.len(),
        finished.stdout
    );
    Ok((finished.pid, transfers))
}

/// `python/tls_client.py`: `count` urllib GETs of `url` (a connection
/// each), trusting `ca`; waits for a line on stdin first.
pub fn python_urllib_client(url: &str, ca: &Path, count: usize) -> Command {
    let mut cmd = chain::python("tls_client.py");
    cmd.arg(url)
        .arg("--cafile")
        .arg(ca)
        .args(["--count", &count.to_string(), "--wait"]);
    cmd
}

/// `node/https_client.js`: `count` GETs of `url` through a keepAlive
/// agent (one connection), trusting `ca`; waits for a line on stdin first.
pub fn node_https_client(url: &str, ca: &Path, count: usize) -> Command {
    let node = apps::which("node").unwrap_or_else(|| PathBuf::from("node"));
    let mut cmd = Command::new(node);
    cmd.arg(apps::apps_dir().join("node/https_client.js"))
        .arg(url)
        .arg("--ca")
        .arg(ca)
        .args(["--count", &count.to_string(), "--wait"])
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("NODE_OPTIONS");
    cmd
}

/// A `go/tls_client` command: `rounds` GETs of every URL over one
/// connection, HTTP/2 by ALPN with `h2` (else HTTP/1.1), trusting `ca`;
/// waits for a line on stdin first.
pub fn go_tls_client(
    binary: &Path,
    ca: &Path,
    urls: &[String],
    rounds: usize,
    h2: bool,
) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("-ca")
        .arg(ca)
        .args(["-n", &rounds.to_string(), "-wait"]);
    if h2 {
        cmd.arg("-h2");
    }
    cmd.args(urls).env_remove("OTEL_SERVICE_NAME");
    cmd
}

/// `python/asyncio_tls.py server`: HTTP/1.1 over asyncio's TLS (memory
/// BIOs), `GET <path>` → 200 "ok <path>".
pub fn asyncio_server(certs: &Certs) -> anyhow::Result<Server> {
    chain::start_on_free_port("asyncio-tls-server", |port| {
        let mut cmd = chain::python("asyncio_tls.py");
        cmd.args(["server", &port.to_string(), "--cert"])
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key);
        cmd
    })
}

/// `python/asyncio_tls.py client`: `concurrent` connections at once to
/// 127.0.0.1:`port`, each `GET /req/<i>`; waits for a line on stdin first.
pub fn asyncio_client(port: u16, ca: &Path, concurrent: usize) -> Command {
    let mut cmd = chain::python("asyncio_tls.py");
    cmd.args(["client", "127.0.0.1", &port.to_string(), "--cafile"])
        .arg(ca)
        .args(["--concurrent", &concurrent.to_string(), "--wait"]);
    cmd
}

/// A `go/fanout` server over TLS (`ListenAndServeTLS`: HTTP/2 by ALPN)
/// whose handlers call `downstream` (plaintext).
pub fn go_tls_fanout(binary: &Path, certs: &Certs, downstream: &str) -> anyhow::Result<Server> {
    chain::start_on_free_port("go-tls-fanout", |port| {
        let mut cmd = Command::new(binary);
        cmd.arg("-downstream")
            .arg(downstream)
            .arg("-cert")
            .arg(&certs.cert)
            .arg("-key")
            .arg(&certs.key)
            .arg(port.to_string())
            .env_remove("OTEL_SERVICE_NAME");
        cmd
    })
}

/// The `go/grpc_server` health service over TLS (grpc-go's credentials).
pub fn go_grpc_tls_server(binary: &Path, certs: &Certs) -> anyhow::Result<Server> {
    chain::start_on_free_port("go-grpc-tls-server", |port| {
        let mut cmd = Command::new(binary);
        cmd.arg("-cert")
            .arg(&certs.cert)
            .arg("-key")
            .arg(&certs.key)
            .arg(port.to_string())
            .env_remove("OTEL_SERVICE_NAME");
        cmd
    })
}

/// Lets a client that printed `WAITING` go and waits for it to succeed.
pub fn release(mut client: Proc) -> Finished {
    client.write_stdin("go\n").expect("letting the client go");
    client
        .finish(apps::CLIENT_TIMEOUT)
        .and_then(Finished::ok)
        .unwrap_or_else(|e| panic!("client: {e:#}"))
}

/// The agent's TLS counters at exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCounters {
    pub files_probed: u64,
    /// Plaintext chunks the uprobes passed on: read calls' returns tied
    /// to a traced socket, and write calls' plaintext, which takes the
    /// place of the ciphertext in its socket write's event.
    pub plaintext_events: u64,
    pub ciphertext_skipped: u64,
    pub untied: u64,
    /// TLS write calls whose plaintext no socket write carried.
    pub write_unsent: u64,
    /// TLS connections that ended with none of their plaintext seen.
    pub connections_unseen: u64,
    /// Hits of the TLS uprobes in traced processes (calls and returns).
    pub probe_hits: u64,
}

impl TlsCounters {
    pub fn of(exit: &AgentExit) -> TlsCounters {
        TlsCounters {
            files_probed: exit.counter("tls_files_probed"),
            plaintext_events: exit.counter("tls_plaintext_events"),
            ciphertext_skipped: exit.counter("tls_ciphertext_skipped"),
            untied: exit.counter("drop_tls_untied"),
            write_unsent: exit.counter("drop_tls_write_unsent"),
            connections_unseen: exit.counter("tls_connections_unseen"),
            probe_hits: exit.counter("tls_probe_hits"),
        }
    }

    /// Prints `TLS <test>: <counters> (<plaintext events per request>)` on
    /// stderr (uncaptured, like the skip lines) and gives the counters.
    pub fn report(exit: &AgentExit, test: &str, requests: usize) -> TlsCounters {
        use std::io::Write as _;
        let counters = TlsCounters::of(exit);
        let per_request = |n: u64| n as f64 / requests.max(1) as f64;
        let _ = writeln!(
            std::io::stderr(),
            "TLS {test}: {counters} for {requests} requests ({:.1} plaintext chunks and {:.1} \
             uprobe hits per request)",
            per_request(counters.plaintext_events),
            per_request(counters.probe_hits),
        );
        counters
    }
}

impl fmt::Display for TlsCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tls_files_probed={} tls_plaintext_events={} tls_ciphertext_skipped={} \
             drop_tls_untied={} drop_tls_write_unsent={} tls_connections_unseen={} \
             tls_probe_hits={}",
            self.files_probed,
            self.plaintext_events,
            self.ciphertext_skipped,
            self.untied,
            self.write_unsent,
            self.connections_unseen,
            self.probe_hits
        )
    }
}
