//! The programs of the trace-context tests (`tests/context.rs`): the Python
//! chain services A → B → C (one of them instrumented with the official
//! OpenTelemetry SDK), a concurrent load client, and a raw capture server
//! with the raw clients whose bytes it records. Also the logs they write:
//! which `traceparent` headers each service received.
use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::apps::{self, SERVER_START_TIMEOUT, Server};

/// Set by `cargo xtask test`: the directory the Python packages of
/// `xtask setup` (the OpenTelemetry SDK) are installed in.
pub const ENV_TRACER_PYTHONPATH: &str = "TRACER_PYTHONPATH";

/// Modules the SDK-instrumented service imports.
const SDK_MODULES: &[&str] = &[
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.instrumentation.wsgi",
    "opentelemetry.instrumentation.urllib",
];

fn script(name: &str) -> PathBuf {
    apps::apps_dir().join("python").join(name)
}

/// A Python script of `tests/apps/python` run with the system Python and
/// no inherited OpenTelemetry settings.
pub fn python(script_name: &str) -> Command {
    let mut cmd = Command::new(apps::python3());
    cmd.arg("-u").arg(script(script_name));
    for var in [
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "PYTHONPATH",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Starts the server `make(port)` builds on a free port of 127.0.0.1,
/// retrying on another port if that one was taken in between.
pub fn start_on_free_port(
    name: &str,
    mut make: impl FnMut(u16) -> Command,
) -> anyhow::Result<Server> {
    let mut last_error = None;
    for _ in 0..3 {
        let port = apps::free_port(false)?;
        let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let mut proc = crate::process::Proc::spawn(name, make(port), true)?;
        match apps::wait_for_port(&mut proc, addr, SERVER_START_TIMEOUT) {
            Ok(()) => return Ok(Server { proc, addr }),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{name} did not start")))
}

/// `chain_service.py`: answers every GET, after calling `downstream` with
/// the same path if given; logs the `traceparent`s it received to `log`.
pub fn chain_service(
    name: &str,
    downstream: Option<&Server>,
    log: Option<&Path>,
) -> anyhow::Result<Server> {
    start_on_free_port(name, |port| {
        let mut cmd = python("chain_service.py");
        cmd.arg(port.to_string()).args(["--name", name]);
        if let Some(d) = downstream {
            cmd.arg("--downstream").arg(d.base_url());
        }
        if let Some(log) = log {
            cmd.arg("--log").arg(log);
        }
        cmd.env("OTEL_SERVICE_NAME", name);
        cmd
    })
    .with_context(|| format!("starting chain service {name}"))
}

/// The directory with the OpenTelemetry SDK packages, or why the SDK test
/// cannot run. An unset `TRACER_PYTHONPATH` skips; a set one whose
/// packages do not import is an error (setup is broken), not a skip.
pub fn sdk_pythonpath() -> Result<PathBuf, String> {
    let dir = match std::env::var_os(ENV_TRACER_PYTHONPATH) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            return Err(format!(
                "{ENV_TRACER_PYTHONPATH} is not set (run `cargo xtask test`, which installs \
                 the OpenTelemetry SDK)"
            ));
        }
    };
    let imports = SDK_MODULES
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let output = Command::new(apps::python3())
        .args(["-c", &imports])
        .env("PYTHONPATH", &dir)
        .output()
        .map_err(|e| format!("running python3: {e}"))?;
    if !output.status.success() {
        panic!(
            "{ENV_TRACER_PYTHONPATH}={} does not provide the OpenTelemetry SDK ({}):\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(dir)
}

/// `chain_sdk_service.py`: like [`chain_service`] with a downstream, but
/// instrumented with the OpenTelemetry SDK, exporting to `otlp_http_endpoint`
/// (a full `/v1/traces` URL) as service `service_name`.
pub fn sdk_service(
    service_name: &str,
    downstream: &Server,
    otlp_http_endpoint: &str,
    log: &Path,
    pythonpath: &Path,
) -> anyhow::Result<Server> {
    start_on_free_port(service_name, |port| {
        let mut cmd = python("chain_sdk_service.py");
        cmd.arg(port.to_string())
            .args(["--name", service_name])
            .arg("--downstream")
            .arg(downstream.base_url())
            .args(["--otlp-endpoint", otlp_http_endpoint])
            .arg("--log")
            .arg(log)
            .env("PYTHONPATH", pythonpath)
            .env("OTEL_SERVICE_NAME", service_name);
        cmd
    })
    .context("starting the SDK-instrumented service")
}

/// `capture_server.py`: records each connection's bytes in
/// `dir/<peer port>.recv`.
pub fn capture_server(dir: &Path) -> anyhow::Result<Server> {
    start_on_free_port("capture-server", |port| {
        let mut cmd = python("capture_server.py");
        cmd.arg(port.to_string()).arg(dir);
        cmd
    })
}

/// An `inject_client.py` command line: `modes` against `server`, the bytes
/// sent in `dir/<local port>.sent`; with `wait`, it waits for a line on
/// stdin first.
pub fn inject_client(server: &Server, dir: &Path, wait: bool, modes: &[&str]) -> Command {
    let mut cmd = python("inject_client.py");
    cmd.arg("127.0.0.1").arg(server.port().to_string()).arg(dir);
    if wait {
        cmd.arg("--wait");
    }
    cmd.args(modes);
    cmd
}

/// The `CONN <mode> <local port>` lines of `inject_client.py`.
pub fn inject_connections(stdout: &str) -> BTreeMap<String, u16> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("CONN ")?.split_whitespace();
            let mode = f.next()?.to_owned();
            let port = f.next()?.parse().ok()?;
            Some((mode, port))
        })
        .collect()
}

/// What `load_client.py` requests.
#[derive(Clone, Debug)]
pub struct Load {
    pub clients: usize,
    pub requests_per_client: usize,
    /// `Ok(prefix)`: a unique path `prefix<i>` per request; `Err(path)`:
    /// the same path for all.
    pub paths: Result<String, String>,
    pub keepalive: bool,
    pub wait: bool,
}

impl Load {
    /// `clients` at once, one request each to `path`, each on a connection
    /// of its own.
    pub fn concurrent(clients: usize, path: &str) -> Load {
        Load {
            clients,
            requests_per_client: 1,
            paths: Err(path.to_owned()),
            keepalive: false,
            wait: false,
        }
    }

    /// Every request `load_client.py` made succeeded, by its RESULT line.
    pub fn assert_all_ok(&self, stdout: &str) {
        let n = self.clients * self.requests_per_client;
        assert!(
            stdout.contains(&format!("RESULT ok={n} failed=0")),
            "{stdout}"
        );
    }

    /// Runs `load_client.py` against `base_url` to its end; every request
    /// must succeed.
    pub fn run_ok(&self, base_url: &str) {
        let finished = crate::apps::run("load", load_client(base_url, self)).expect("load");
        self.assert_all_ok(&finished.stdout);
    }
}

/// A `load_client.py` command line against `base_url`.
pub fn load_client(base_url: &str, load: &Load) -> Command {
    let mut cmd = python("load_client.py");
    cmd.arg(base_url)
        .args(["--clients", &load.clients.to_string()])
        .args(["--requests", &load.requests_per_client.to_string()]);
    match &load.paths {
        Ok(prefix) => cmd.args(["--path-prefix", prefix]),
        Err(path) => cmd.args(["--path", path]),
    };
    if load.keepalive {
        cmd.arg("--keepalive");
    }
    if load.wait {
        cmd.arg("--wait");
    }
    cmd
}

/// One request as a service logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub service: String,
    pub path: String,
    /// Every `traceparent` header value, in order.
    pub traceparents: Vec<String>,
    /// Other `key=value` fields (the SDK service's own span ids).
    pub fields: BTreeMap<String, String>,
}

/// The requests logged in `log` (an absent file is no request).
pub fn read_log(log: &Path) -> Vec<Received> {
    let text = match std::fs::read_to_string(log) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("reading {}: {e}", log.display()),
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut fields = line.split('\t');
            let service = fields.next().unwrap_or_default().to_owned();
            let path = fields.next().unwrap_or_default().to_owned();
            let mut received = Received {
                service,
                path,
                traceparents: Vec::new(),
                fields: BTreeMap::new(),
            };
            for field in fields {
                let (key, value) = field.split_once('=').unwrap_or((field, ""));
                if key == "traceparent" {
                    received.traceparents.push(value.to_owned());
                } else {
                    received.fields.insert(key.to_owned(), value.to_owned());
                }
            }
            received
        })
        .collect()
}

/// The only logged request for `path`.
pub fn received_for(log: &Path, path: &str) -> Received {
    let all = read_log(log);
    let found: Vec<&Received> = all.iter().filter(|r| r.path == path).collect();
    assert_eq!(
        found.len(),
        1,
        "{}: expected one request for {path}, got {found:?}",
        log.display()
    );
    found[0].clone()
}
