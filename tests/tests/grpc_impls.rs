//! gRPC from implementations other than Go's, with no tracing library:
//! gRPC's C core (grpcio, the implementation Python, Ruby, PHP and C++
//! share) and @grpc/grpc-js (Node's pure-JavaScript one). A client calls a
//! front service that makes one downstream call per unary request. C core
//! batches many frames into one `sendmsg` of dozens of iovecs and both
//! index and Huffman-code their headers: every connection must decode,
//! every call be one span per end, and every server span the child of its
//! client span. Under 50 concurrent calls the `traceparent` the kernel adds
//! to each HEADERS frame must never break a stream.
//!
//! Needs root, the agent binary, grpcio in `TRACER_PYTHONPATH` and
//! @grpc/grpc-js in `TRACER_NODE_PATH` (`cargo xtask test` installs both);
//! without them a test prints `SKIPPED <test>: ...`.
use std::{collections::BTreeMap, ffi::OsString, path::PathBuf, process::Command, time::Duration};

use integration_tests::{
    Protocol, ReceivedSpan, Receiver,
    agent::Agent,
    apps, flow,
    process::{Finished, Proc},
    require_root,
    skip::{self, TestEnv},
};

/// A gRPC implementation and how to run its `grpc_echo` program.
#[derive(Clone, Copy, Debug)]
enum Impl {
    /// grpcio from PyPI: tests/apps/python/grpc_echo.py.
    Grpcio,
    /// @grpc/grpc-js from npm: tests/apps/node/grpc_echo.js.
    GrpcJs,
}

impl Impl {
    /// (variable the tests get the packages from, the one the program
    /// reads them from, the import that proves they are there)
    fn packages(self) -> (&'static str, &'static str) {
        match self {
            Self::Grpcio => ("TRACER_PYTHONPATH", "PYTHONPATH"),
            Self::GrpcJs => ("TRACER_NODE_PATH", "NODE_PATH"),
        }
    }

    fn command(self) -> (PathBuf, PathBuf) {
        let apps = skip::repo_root().join("tests/apps");
        match self {
            Self::Grpcio => (apps::python3(), apps.join("python/grpc_echo.py")),
            Self::GrpcJs => (PathBuf::from("node"), apps.join("node/grpc_echo.js")),
        }
    }

    fn import_check(self) -> Vec<&'static str> {
        match self {
            Self::Grpcio => vec!["-c", "import grpc"],
            Self::GrpcJs => vec!["-e", "require('@grpc/grpc-js')"],
        }
    }

    /// The packages' directory: an unset variable skips, a set one whose
    /// packages do not load fails (setup is broken).
    fn packages_dir(self, test: &str) -> Option<OsString> {
        let (var, program_var) = self.packages();
        let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) else {
            skip::skip(test, &format!("{var} is not set (run `cargo xtask test`)"));
            return None;
        };
        let (program, _) = self.command();
        let out = match Command::new(&program)
            .args(self.import_check())
            .env(program_var, &dir)
            .output()
        {
            Ok(out) => out,
            Err(e) => panic!("running {}: {e}", program.display()),
        };
        assert!(
            out.status.success(),
            "{self:?} does not load from {dir:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(dir)
    }

    fn echo(self, packages: &OsString, args: &[&str]) -> Command {
        let (program, script) = self.command();
        let mut cmd = Command::new(program);
        if matches!(self, Self::Grpcio) {
            cmd.arg("-u");
        }
        cmd.arg(script).args(args).env(self.packages().1, packages);
        cmd
    }
}

/// A grpc_echo server; its port once it listens.
fn server(imp: Impl, packages: &OsString, name: &str, args: &[&str]) -> (Proc, u16) {
    let mut full = vec!["server"];
    full.extend_from_slice(args);
    let proc = Proc::spawn(name, imp.echo(packages, &full), true).expect("starting a gRPC server");
    let Some(port) = proc.stdout.wait_port("LISTENING ", Duration::from_secs(30)) else {
        panic!("{name} did not listen: {}", proc.stdout.text());
    };
    (proc, port)
}

/// Runs a grpc_echo client to the end; all `calls` must succeed.
fn run_client(imp: Impl, packages: &OsString, args: &[&str], calls: usize) -> Finished {
    let finished = Proc::spawn("grpc-client", imp.echo(packages, args), true)
        .expect("starting the gRPC client")
        .finish(Duration::from_secs(120))
        .expect("the gRPC client");
    assert!(
        finished
            .stdout
            .contains(&format!("RESULT ok={calls} failed=0")),
        "calls failed through the traced services: {}",
        finished.stdout
    );
    finished
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

/// Which processes are one end of a hop.
type Processes<'a> = &'a dyn Fn(u32) -> bool;

/// tests/apps/python/h2_injection_check.py in front of `back_port`; its
/// port.
fn checking_proxy(pythonpath: &OsString, back_port: u16) -> (Proc, u16) {
    let mut checker = Command::new(apps::python3());
    checker
        .arg("-u")
        .arg(skip::repo_root().join("tests/apps/python/h2_injection_check.py"))
        .args(["0", &back_port.to_string()])
        .env("PYTHONPATH", pythonpath);
    let checker = Proc::spawn("h2-check", checker, true).expect("starting the checking proxy");
    let Some(port) = checker.stdout.wait_port("ready ", Duration::from_secs(30)) else {
        panic!(
            "the checking proxy did not start: {}",
            checker.stdout.text()
        );
    };
    (checker, port)
}

/// What stands between the client and the back service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Front {
    /// The client calls the back service itself.
    None,
    /// A grpc_echo front service: one downstream call per unary request
    /// it does not refuse.
    Service,
    /// nginx: `grpc_pass` of every call, its `traceparent` forwarded.
    Nginx,
}

/// What one run drives.
#[derive(Clone, Copy)]
struct Run {
    imp: Impl,
    /// `traceparent` injection on (else hops are linked by connection).
    inject: bool,
    front: Front,
    sequential: usize,
    concurrent: usize,
    /// KiB of one more unary call's message (0: none): many DATA frames in
    /// one vectored write, beyond one event's 8 KiB.
    big_kib: usize,
}

/// The front's processes and the port the client calls.
struct Started {
    _service: Option<Proc>,
    _nginx: Option<apps::Nginx>,
    pids: Vec<u32>,
    port: u16,
}

fn start_front(r: &Run, packages: &OsString, back_port: u16) -> Option<Started> {
    match r.front {
        Front::None => None,
        Front::Service => {
            let to = format!("127.0.0.1:{back_port}");
            let (proc, port) = server(r.imp, packages, "grpc-front", &["--downstream", &to]);
            Some(Started {
                pids: vec![proc.pid()],
                _service: Some(proc),
                _nginx: None,
                port,
            })
        }
        Front::Nginx => {
            let nginx = apps::Nginx::start_grpc(back_port).expect("starting nginx");
            Some(Started {
                pids: nginx.pids(),
                port: nginx.port(),
                _service: None,
                _nginx: Some(nginx),
            })
        }
    }
}

fn run(r: Run) {
    let env = require_root!();
    let Some(packages) = r.imp.packages_dir(&env.test) else {
        return;
    };
    if r.front == Front::Nginx
        && let Err(reason) = apps::tool("nginx")
    {
        skip::skip(&env.test, &reason);
        return;
    }
    let unary = r.sequential + r.concurrent + usize::from(r.big_kib > 0);
    // One in ten unary calls asks for a greeting that is NOT_FOUND; then
    // one each of server-, client- and bidi-streaming.
    let not_found = r.sequential / 10 + r.concurrent / 10;
    let calls = unary + 3;
    let all_calls = expected(unary, not_found, true);
    // What the front sends downstream: the front service calls once per
    // unary call it does not refuse; nginx passes on every call.
    let (downstream, downstream_calls) = match r.front {
        Front::None => (0, BTreeMap::new()),
        Front::Service => (unary - not_found, expected(unary - not_found, 0, false)),
        Front::Nginx => (calls, all_calls.clone()),
    };

    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let (back, back_port) = server(r.imp, &packages, "grpc-back", &[]);
    let front = start_front(&r, &packages, back_port);
    let bp = back.pid();
    let entry_port = front.as_ref().map_or(back_port, |f| f.port);
    let front_pids: Vec<u32> = front.as_ref().map(|f| f.pids.clone()).unwrap_or_default();
    let in_front = |pid: u32| front_pids.contains(&pid);
    let ports = [back_port, entry_port].map(|p| p.to_string());
    let mut args = vec!["--port", &ports[0], "--port", &ports[1]];
    if !r.inject {
        args.push("--no-inject");
    }
    let agent = start_agent(&env, &receiver, &args);

    let target = format!("127.0.0.1:{entry_port}");
    let (seq, conc, big) = (
        r.sequential.to_string(),
        r.concurrent.to_string(),
        r.big_kib.to_string(),
    );
    let finished = run_client(
        r.imp,
        &packages,
        &[
            "client",
            &target,
            "--sequential",
            &seq,
            "--concurrent",
            &conc,
            "--big-kib",
            &big,
        ],
        calls,
    );
    let cp = finished.pid;
    let total = 2 * calls + 2 * downstream;
    let out = flow::finish_at(&receiver, agent, total);
    let spans = &out.spans;

    // One span per call per end, with the status each end saw.
    let of = |pids: &dyn Fn(u32) -> bool, kind: &str| {
        let mut out: BTreeMap<(String, i64), usize> = BTreeMap::new();
        for s in spans.iter().filter(|s| pids(pid_of(s)) && s.kind == kind) {
            let code = s.attr_int("rpc.grpc.status_code").unwrap_or(-1);
            *out.entry((s.name.clone(), code)).or_default() += 1;
        }
        out
    };
    let is_client = |p: u32| p == cp;
    let is_back = |p: u32| p == bp;
    let is_entry = |p: u32| {
        if front.is_some() {
            in_front(p)
        } else {
            p == bp
        }
    };
    // On a mismatch, what the agent counted says where spans went.
    let counters = out.exit.counters();
    assert_eq!(
        of(&is_client, "CLIENT"),
        all_calls,
        "client spans; agent counters {counters:?}"
    );
    assert_eq!(
        of(&is_entry, "SERVER"),
        all_calls,
        "server spans of the service the client called; agent counters {counters:?}"
    );
    if front.is_some() {
        assert_eq!(
            of(&in_front, "CLIENT"),
            downstream_calls,
            "front client spans"
        );
        assert_eq!(
            of(&is_back, "SERVER"),
            downstream_calls,
            "back server spans"
        );
    }
    assert_eq!(spans.len(), total, "no other spans");
    for span in spans {
        let method = span.name.strip_prefix("demo.Echo/").unwrap_or("?");
        assert_eq!(span.attr_str("rpc.system"), Some("grpc"), "{span}");
        assert_eq!(span.attr_str("rpc.service"), Some("demo.Echo"), "{span}");
        assert_eq!(span.attr_str("rpc.method"), Some(method), "{span}");
        // NOT_FOUND is an error for the caller only (semantic conventions).
        let code = span.attr_int("rpc.grpc.status_code");
        let error = code == Some(5) && span.kind == "CLIENT";
        assert_eq!(span.status_code == "ERROR", error, "{span}");
    }

    // Every server span is the child of the client span of its call, on
    // the process at the other end, with the same method: injected or by
    // connection.
    let mut how: BTreeMap<String, usize> = BTreeMap::new();
    let mut hops: Vec<(Processes, Processes)> = vec![(&is_entry, &is_client)];
    if front.is_some() {
        hops.push((&is_back, &in_front));
    }
    for (server_end, client_end) in hops {
        for s in spans
            .iter()
            .filter(|s| server_end(pid_of(s)) && s.kind == "SERVER")
        {
            let parent = spans
                .iter()
                .find(|c| Some(&c.span_id) == s.parent_span_id.as_ref())
                .unwrap_or_else(|| panic!("server span without its client span: {s}"));
            assert!(
                client_end(pid_of(parent))
                    && parent.kind == "CLIENT"
                    && parent.name == s.name
                    && parent.trace_id == s.trace_id,
                "wrong parent {parent}\nfor {s}"
            );
            let source = s.attr_str("tracer.parent.source").unwrap_or("?");
            *how.entry(source.to_owned()).or_default() += 1;
        }
    }
    // The front's downstream calls: nested under the request they serve,
    // or roots; never under anything else.
    let nested = spans
        .iter()
        .filter(|s| in_front(pid_of(s)) && s.kind == "CLIENT")
        .filter(|c| {
            let Some(parent) = &c.parent_span_id else {
                return false;
            };
            let p = spans
                .iter()
                .find(|p| &p.span_id == parent)
                .unwrap_or_else(|| panic!("a parent that was not exported: {c}"));
            assert!(
                pid_of(p) == pid_of(c)
                    && p.kind == "SERVER"
                    && p.trace_id == c.trace_id
                    && (r.front == Front::Service || p.name == c.name),
                "wrong parent {p}\nfor {c}"
            );
            true
        })
        .count();
    eprintln!(
        "{:?} via {:?} (inject {}, {} sequential, {} concurrent): {} spans, server spans \
         linked by {how:?}, {nested} of {downstream} front calls nested under their request",
        r.imp,
        r.front,
        r.inject,
        r.sequential,
        r.concurrent,
        spans.len()
    );
    let linked = calls + downstream;
    match (r.inject, r.front) {
        (true, Front::Nginx) => {
            // nginx forwards the header the kernel wrote for the client:
            // left alone, its calls are the children of the requests whose
            // header they carry, and the back's spans those calls'
            // children through the connection.
            assert_eq!(how.get("injected").copied(), Some(calls), "{how:?}");
            assert_eq!(how.get("connection").copied(), Some(downstream), "{how:?}");
            assert_eq!(nested, downstream, "nginx calls nested");
            assert_eq!(out.exit.counter("context_injected"), calls as u64);
        }
        (true, _) => {
            // Every call carried the `traceparent` the kernel wrote, across
            // iovecs and batched HEADERS frames alike.
            assert_eq!(how.get("injected").copied(), Some(linked), "{how:?}");
            assert_eq!(out.exit.counter("context_injected"), linked as u64);
            assert_eq!(out.exit.counter("http2_client_no_context"), 0);
        }
        (false, _) => {
            assert_eq!(how.get("connection").copied(), Some(linked), "{how:?}");
        }
    }
    assert_eq!(out.exit.counter("context_inject_failed"), 0);
    assert_eq!(out.exit.counter("drop_http2_desync"), 0);
    out.assert_clean();
    drop((back, front));
}

fn chain(imp: Impl, inject: bool) -> Run {
    Run {
        imp,
        inject,
        front: Front::Service,
        sequential: 20,
        concurrent: 20,
        big_kib: 40,
    }
}

/// Injection under load: 50 calls at once on one connection.
fn concurrent_50(imp: Impl) -> Run {
    Run {
        imp,
        inject: true,
        front: Front::None,
        sequential: 0,
        concurrent: 50,
        big_kib: 0,
    }
}

/// nginx `grpc_pass` between a client and a server of `imp`.
fn through_nginx(imp: Impl, inject: bool) -> Run {
    Run {
        imp,
        inject,
        front: Front::Nginx,
        sequential: 20,
        concurrent: 20,
        big_kib: 40,
    }
}

/// The bytes a traced client sent, as a proxy between it and the server
/// received them: HPACK stays in sync on every header block (one decoder
/// for the whole connection), every frame length holds, and each of 200
/// concurrent requests carries exactly one `traceparent`, last in its
/// block, whose value names exactly the client span the agent exported
/// for it. The client sends well over a hundred calls' HEADERS in one
/// write: none goes without (`http2_heads_untraced`).
fn injection_byte_exact(imp: Impl) {
    let env = require_root!();
    let Some(packages) = imp.packages_dir(&env.test) else {
        return;
    };
    let Some(pythonpath) = Impl::Grpcio.packages_dir(&env.test) else {
        return;
    };
    const CONCURRENT: usize = 200;
    let calls = CONCURRENT + 3;
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let (back, back_port) = server(imp, &packages, "grpc-back", &[]);
    let (checker, proxy_port) = checking_proxy(&pythonpath, back_port);
    let port = proxy_port.to_string();
    let agent = start_agent(&env, &receiver, &["--port", &port]);
    let target = format!("127.0.0.1:{proxy_port}");
    let conc = CONCURRENT.to_string();
    let finished = run_client(
        imp,
        &packages,
        &[
            "client",
            &target,
            "--sequential",
            "0",
            "--concurrent",
            &conc,
        ],
        calls,
    );
    let checked = checker
        .finish(Duration::from_secs(30))
        .expect("the checking proxy");
    let out = flow::finish_when_or_quiet(
        &receiver,
        agent,
        |spans| spans.iter().filter(|s| pid_of(s) == finished.pid).count() >= calls,
        Duration::from_secs(10),
    );
    eprintln!(
        "{:?}: {}",
        imp,
        checked
            .stdout
            .lines()
            .filter(|l| !l.starts_with("TRACEPARENT"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert!(
        checked.stdout.contains(&format!(
            "CHECKED requests={calls} injected={calls} last={calls} "
        )) && checked.stdout.contains(" errors=0"),
        "what the server received:\n{}",
        checked.stdout
    );
    let mut received: Vec<String> = checked
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("TRACEPARENT "))
        .map(str::to_owned)
        .collect();
    let mut exported: Vec<String> = out
        .spans
        .iter()
        .filter(|s| pid_of(s) == finished.pid && s.kind == "CLIENT")
        .map(|s| format!("00-{}-{}-01", s.trace_id, s.span_id))
        .collect();
    received.sort();
    exported.sort();
    assert_eq!(received, exported, "each request names its own client span");
    assert_eq!(out.exit.counter("http2_heads_untraced"), 0);
    drop(back);
}

#[test]
fn grpcio_injection_keeps_hpack_in_sync_byte_for_byte() {
    injection_byte_exact(Impl::Grpcio);
}

#[test]
fn grpc_js_injection_keeps_hpack_in_sync_byte_for_byte() {
    injection_byte_exact(Impl::GrpcJs);
}

/// A client whose HEADERS frames are cut across writes (frames by hand,
/// tests/apps/python/h2_split_client.py) against a grpcio server, through
/// the checking proxy: frames cut in their header block are followed into
/// the next write (the cut calls are not injected, the others are, and the
/// kernel never loses its place); a frame header cut in two makes the
/// kernel stop injecting that connection, counted; a write the kernel takes
/// in part (a small send buffer, 40 KiB messages) is followed into the
/// rest; header blocks continued in CONTINUATION frames are left alone.
/// Never a corrupted stream: every call answers, every block decodes.
fn frames_cut_across_writes(mode: &str) {
    const CALLS: usize = 10;
    let env = require_root!();
    let Some(pythonpath) = Impl::Grpcio.packages_dir(&env.test) else {
        return;
    };
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let (back, back_port) = server(Impl::Grpcio, &pythonpath, "grpc-back", &[]);
    let (checker, proxy_port) = checking_proxy(&pythonpath, back_port);
    let port = proxy_port.to_string();
    let agent = start_agent(&env, &receiver, &["--port", &port]);
    let mut client = Command::new(apps::python3());
    client
        .arg("-u")
        .arg(skip::repo_root().join("tests/apps/python/h2_split_client.py"))
        .args([
            format!("127.0.0.1:{proxy_port}"),
            CALLS.to_string(),
            mode.to_owned(),
        ])
        .env("PYTHONPATH", &pythonpath);
    let finished = Proc::spawn("h2-split-client", client, true)
        .expect("starting the client")
        .finish(Duration::from_secs(60))
        .expect("the client");
    assert!(
        finished
            .stdout
            .contains(&format!("RESULT ok={CALLS} failed=0")),
        "calls failed: {}",
        finished.stdout
    );
    let checked = checker
        .finish(Duration::from_secs(30))
        .expect("the checking proxy");
    let out = flow::finish_at(&receiver, agent, 2 * CALLS);
    // Block cuts: every even call injected. Header cut: the first call
    // only, then the connection is given up for injection. Writes taken in
    // part: every call, the rest of each write followed from inside its
    // frame.
    let (injected, lost) = match mode {
        "block" | "continuation" => (CALLS / 2, 0),
        "header" => (1, 1),
        // All in the write that carries the preface: the socket is known
        // to speak HTTP/2 only once it is sent.
        "burst" => (0, 0),
        _ => (CALLS, 0),
    };
    assert!(
        checked.stdout.contains(&format!(
            "CHECKED requests={CALLS} injected={injected} last={injected} "
        )) && checked.stdout.contains(" errors=0"),
        "what the server received:\n{}",
        checked.stdout
    );
    assert_eq!(out.exit.counter("context_injected"), injected as u64);
    assert_eq!(out.exit.counter("http2_inject_sync_lost"), lost);
    assert_eq!(out.exit.counter("context_inject_failed"), 0);
    let servers: Vec<&ReceivedSpan> = out
        .spans
        .iter()
        // The checking proxy is the server end of the traced connection.
        .filter(|s| pid_of(s) == checked.pid && s.kind == "SERVER")
        .collect();
    assert_eq!(servers.len(), CALLS, "server spans of the proxy");
    for s in servers {
        let parent = out
            .spans
            .iter()
            .find(|c| Some(&c.span_id) == s.parent_span_id.as_ref())
            .unwrap_or_else(|| panic!("no client span for {s}"));
        assert_eq!(pid_of(parent), finished.pid, "{s}");
    }
    out.assert_clean();
    drop(back);
}

#[test]
fn frames_cut_in_their_header_block_are_followed_across_writes() {
    frames_cut_across_writes("block");
}

#[test]
fn a_frame_header_cut_across_writes_stops_injection_safely() {
    frames_cut_across_writes("header");
}

#[test]
fn writes_taken_in_part_keep_the_frames_followed() {
    frames_cut_across_writes("partial");
}

/// Header blocks continued in CONTINUATION frames are left alone (the
/// kernel only appends to a HEADERS frame that ends its block), the calls
/// around them injected, the block boundaries intact.
#[test]
fn header_blocks_in_continuation_frames_are_left_whole() {
    frames_cut_across_writes("continuation");
}

/// A server that reads the connection preface together with more than
/// 8 KiB of requests (the client sent them all in one write) decodes every
/// one: the event is captured again, in full, once the preface is seen.
#[test]
fn the_preface_read_with_a_burst_of_requests_decodes_every_one() {
    frames_cut_across_writes("burst");
}

#[test]
fn grpcio_through_nginx_grpc_pass() {
    run(through_nginx(Impl::Grpcio, true));
}

#[test]
fn grpc_js_through_nginx_grpc_pass() {
    run(through_nginx(Impl::GrpcJs, true));
}

#[test]
fn grpcio_through_nginx_grpc_pass_linked_by_connection() {
    run(through_nginx(Impl::Grpcio, false));
}

#[test]
fn grpcio_chain_with_injection() {
    run(chain(Impl::Grpcio, true));
}

#[test]
fn grpcio_chain_linked_by_connection() {
    run(chain(Impl::Grpcio, false));
}

#[test]
fn grpcio_server_takes_50_concurrent_injected_calls() {
    run(concurrent_50(Impl::Grpcio));
}

#[test]
fn grpc_js_chain_with_injection() {
    run(chain(Impl::GrpcJs, true));
}

#[test]
fn grpc_js_chain_linked_by_connection() {
    run(chain(Impl::GrpcJs, false));
}

#[test]
fn grpc_js_server_takes_50_concurrent_injected_calls() {
    run(concurrent_50(Impl::GrpcJs));
}
