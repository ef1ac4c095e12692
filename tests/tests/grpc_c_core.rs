//! gRPC from the C core (grpcio, the implementation Python, Ruby, PHP and
//! C++ share), with no tracing library: a client calls a front service that
//! makes one downstream call per unary request. C core batches many frames
//! into one `sendmsg` of dozens of iovecs and indexes and Huffman-codes its
//! headers: every connection must decode, every call be one span per end,
//! and every server span the child of its client span.
//!
//! Needs root, the agent binary and grpcio in `TRACER_PYTHONPATH` (`cargo
//! xtask test` installs it); without them it prints `SKIPPED <test>: ...`.
use std::{collections::BTreeMap, path::PathBuf, process::Command, time::Duration};

use integration_tests::{
    Protocol, ReceivedSpan, Receiver,
    agent::Agent,
    apps, flow,
    process::Proc,
    require_root,
    skip::{self, TestEnv},
};

const SEQUENTIAL: usize = 20;
const CONCURRENT: usize = 20;
/// One in ten unary calls asks for a greeting that is NOT_FOUND.
const NOT_FOUND: usize = (SEQUENTIAL + CONCURRENT) / 10;
/// Unary calls, then one each of server-, client- and bidi-streaming.
const CALLS: usize = SEQUENTIAL + CONCURRENT + 3;
/// The front calls downstream for every unary call it does not refuse.
const DOWNSTREAM: usize = SEQUENTIAL + CONCURRENT - NOT_FOUND;

/// grpcio, from `TRACER_PYTHONPATH`: unset skips, set but broken fails.
fn grpcio_path(test: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("TRACER_PYTHONPATH").filter(|d| !d.is_empty()) else {
        skip::skip(
            test,
            "TRACER_PYTHONPATH is not set (run `cargo xtask test`)",
        );
        return None;
    };
    let out = Command::new(apps::python3())
        .args(["-c", "import grpc"])
        .env("PYTHONPATH", &dir)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "grpcio does not import from {dir:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(PathBuf::from(dir))
}

fn echo(pythonpath: &PathBuf, args: &[&str]) -> Command {
    let mut cmd = Command::new(apps::python3());
    cmd.arg("-u")
        .arg(skip::repo_root().join("tests/apps/python/grpc_echo.py"))
        .args(args)
        .env("PYTHONPATH", pythonpath);
    cmd
}

/// A grpc_echo server; its port once it listens.
fn server(pythonpath: &PathBuf, name: &str, args: &[&str]) -> (Proc, u16) {
    let mut full = vec!["server"];
    full.extend_from_slice(args);
    let proc = Proc::spawn(name, echo(pythonpath, &full), true).expect("starting a grpcio server");
    assert!(
        proc.stdout
            .wait_line(Duration::from_secs(30), |l| l.starts_with("LISTENING ")),
        "{name} did not listen: {}",
        proc.stdout.text()
    );
    let port = proc
        .stdout
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("LISTENING "))
        .and_then(|p| p.trim().parse().ok())
        .expect("a port");
    (proc, port)
}

fn start_agent(env: &TestEnv, receiver: &Receiver, args: &[&str]) -> Agent {
    match Agent::start(&env.tracer_bin, args, receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

fn pid_of(span: &ReceivedSpan) -> u32 {
    match span.resource.get("process.pid") {
        Some(integration_tests::AttrValue::Int(p)) => *p as u32,
        other => panic!("no process.pid in {span}: {other:?}"),
    }
}

/// (name, status code) → count, for one process and kind.
fn calls(spans: &[ReceivedSpan], pid: u32, kind: &str) -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::new();
    for s in spans.iter().filter(|s| pid_of(s) == pid && s.kind == kind) {
        let code = s.attr_int("rpc.grpc.status_code").unwrap_or(-1);
        *out.entry((s.name.clone(), code)).or_default() += 1;
    }
    out
}

fn expected(unary: usize, not_found: usize, streaming: bool) -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::from([(("demo.Echo/Say".to_owned(), 0), unary - not_found)]);
    if not_found != 0 {
        out.insert(("demo.Echo/Say".to_owned(), 5), not_found);
    }
    if streaming {
        for m in ["Count", "Collect", "Chat"] {
            out.insert((format!("demo.Echo/{m}"), 0), 1);
        }
    }
    out
}

fn run_chain(inject: bool) {
    let env = require_root!();
    let Some(pythonpath) = grpcio_path(&env.test) else {
        return;
    };
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let (back, back_port) = server(&pythonpath, "grpc-back", &[]);
    let downstream = format!("127.0.0.1:{back_port}");
    let (front, front_port) = server(&pythonpath, "grpc-front", &["--downstream", &downstream]);
    let (bp, fp) = (back.pid(), front.pid());
    let (bs, fs) = (back_port.to_string(), front_port.to_string());
    let mut args = vec!["--port", &bs, "--port", &fs];
    if !inject {
        args.push("--no-inject");
    }
    let agent = start_agent(&env, &receiver, &args);

    let target = format!("127.0.0.1:{front_port}");
    let (seq, conc) = (SEQUENTIAL.to_string(), CONCURRENT.to_string());
    let client = Proc::spawn(
        "grpc-client",
        echo(
            &pythonpath,
            &[
                "client",
                &target,
                "--sequential",
                &seq,
                "--concurrent",
                &conc,
            ],
        ),
        true,
    )
    .expect("starting the grpcio client");
    let finished = client
        .finish(Duration::from_secs(120))
        .expect("the grpcio client");
    assert!(
        finished
            .stdout
            .contains(&format!("RESULT ok={CALLS} failed=0")),
        "calls failed through the traced services: {}",
        finished.stdout
    );
    let cp = finished.pid;
    let total = 2 * CALLS + 2 * DOWNSTREAM;
    let out = flow::finish_at(&receiver, agent, total);
    let spans = &out.spans;

    // One span per call per end, with the status each end saw.
    assert_eq!(
        calls(spans, cp, "CLIENT"),
        expected(SEQUENTIAL + CONCURRENT, NOT_FOUND, true),
        "client spans"
    );
    assert_eq!(
        calls(spans, fp, "SERVER"),
        expected(SEQUENTIAL + CONCURRENT, NOT_FOUND, true),
        "front server spans"
    );
    assert_eq!(
        calls(spans, fp, "CLIENT"),
        expected(DOWNSTREAM, 0, false),
        "front client spans"
    );
    assert_eq!(
        calls(spans, bp, "SERVER"),
        expected(DOWNSTREAM, 0, false),
        "back server spans"
    );
    assert_eq!(spans.len(), total, "no other spans");

    // Every server span is the child of the client span of its call, on
    // the other process, with the same method: injected or by connection.
    let mut how: BTreeMap<String, usize> = BTreeMap::new();
    for (server_pid, client_pid) in [(fp, cp), (bp, fp)] {
        for s in spans
            .iter()
            .filter(|s| pid_of(s) == server_pid && s.kind == "SERVER")
        {
            let parent = spans
                .iter()
                .find(|c| Some(&c.span_id) == s.parent_span_id.as_ref())
                .unwrap_or_else(|| panic!("server span without its client span: {s}"));
            assert!(
                pid_of(parent) == client_pid
                    && parent.kind == "CLIENT"
                    && parent.name == s.name
                    && parent.trace_id == s.trace_id,
                "wrong parent {parent}\nfor {s}"
            );
            let source = s.attr_str("tracer.parent.source").unwrap_or("?");
            *how.entry(source.to_owned()).or_default() += 1;
        }
    }
    // The front's downstream calls: nested under its request, or roots;
    // never under another process's span.
    let nested = spans
        .iter()
        .filter(|s| pid_of(s) == fp && s.kind == "CLIENT")
        .filter(|c| {
            let Some(parent) = &c.parent_span_id else {
                return false;
            };
            let p = spans
                .iter()
                .find(|p| &p.span_id == parent)
                .unwrap_or_else(|| panic!("a parent that was not exported: {c}"));
            assert!(
                pid_of(p) == fp && p.kind == "SERVER",
                "wrong parent {p}\nfor {c}"
            );
            true
        })
        .count();
    eprintln!(
        "grpcio chain (inject {inject}): {} spans, server spans linked by {how:?}, \
         {nested} of {DOWNSTREAM} front calls nested under their request",
        spans.len()
    );
    if inject {
        assert!(
            how.get("injected").copied().unwrap_or(0) >= CALLS,
            "calls not injected: {how:?}"
        );
    } else {
        assert_eq!(how.get("connection").copied(), Some(CALLS + DOWNSTREAM));
    }
    assert_eq!(out.exit.counter("drop_http2_desync"), 0);
    out.assert_clean();
    drop((back, front));
}

#[test]
fn grpcio_chain_with_injection() {
    run_chain(true);
}

#[test]
fn grpcio_chain_linked_by_connection() {
    run_chain(false);
}
