//! HTTP/2 and gRPC through the syscall path: Go gRPC (Debian's grpc-go,
//! health service) unary and server-streaming calls with OK and error
//! statuses, and plain HTTP/2 (h2c) from Go's x/net client to an h2c
//! server; both ends traced on one host, each server span the child of its
//! client span.
//!
//! Every test needs root, the agent binary (`TRACER_BIN`), a Go toolchain
//! (`TRACER_GO_VERSIONS`) and Debian's golang-google-grpc-dev and
//! golang-golang-x-net-dev (`cargo xtask setup` installs them); without them
//! a test prints `SKIPPED <test>: <reason>` and returns.
use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf};

use integration_tests::{
    AttrValue, Protocol, ReceivedSpan, Receiver,
    agent::Agent,
    apps::{self, GrpcCall},
    chain::Load,
    fanout, flow, require_root,
    skip::TestEnv,
    skip_unless,
};

fn start_agent(env: &TestEnv, receiver: &Receiver, args: &[&str]) -> Agent {
    match Agent::start(&env.tracer_bin, args, receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

/// `program` built with the default Go version against Debian's libraries.
fn program(name: &str) -> Result<PathBuf, String> {
    apps::go_debian_libs()?;
    let versions = apps::go_versions()?;
    let (version, go) = versions.first().ok_or("no Go version to test")?;
    // A failed build is a failure, not a reason to skip.
    Ok(apps::go_program(go, version, name, false)
        .unwrap_or_else(|e| panic!("building {name} with Go {version}: {e:#}")))
}

fn int(span: &ReceivedSpan, key: &str) -> Option<i64> {
    match span.attr(key) {
        Some(AttrValue::Int(i)) => Some(*i),
        _ => None,
    }
}

/// The server span of `client`'s call: its child on the other process.
fn child_of<'a>(spans: &'a [ReceivedSpan], client: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.parent_span_id.as_deref() == Some(client.span_id.as_str()))
}

/// Unary Check (OK ×3, NotFound ×1) and a server-streaming Watch: one
/// client and one server span per call with the RPC attributes, status
/// codes, and the error on the client side of NotFound only; every server
/// span the child of its client span, through the `traceparent` the kernel
/// added to each HEADERS frame (HPACK literal without indexing): the
/// server accepts the grown frames and every call succeeds.
#[test]
fn grpc_unary_and_streaming_with_ok_and_error_status() {
    let env = require_root!();
    grpc_calls(env, &[], "injected");
}

/// `--no-inject`: the HEADERS frames go out as the app wrote them, and the
/// server spans are linked to their client spans by connection and stream.
#[test]
fn grpc_without_injection_links_by_connection() {
    let env = require_root!();
    grpc_calls(env, &["--no-inject"], "connection");
}

fn grpc_calls(env: TestEnv, extra_args: &[&str], source: &str) {
    let server_bin = skip_unless!(env, program("grpc_server"));
    let client_bin = skip_unless!(env, program("grpc_client"));
    let receiver = Receiver::start().expect("receiver");
    let server = apps::go_grpc_server(&server_bin).expect("starting the gRPC server");
    let client_exe = client_bin
        .file_name()
        .and_then(|n| n.to_str())
        .expect("client name");
    let pid = server.pid().to_string();
    let mut args = vec!["--pid", &pid, "--exe", client_exe];
    args.extend_from_slice(extra_args);
    let agent = start_agent(&env, &receiver, &args);
    let target: SocketAddr = ([127, 0, 0, 1], server.port()).into();
    let mut client_pids = Vec::new();
    for (call, n, want) in [
        (GrpcCall::CheckOk, 3, "CHECK ok SERVING"),
        (GrpcCall::CheckMissing, 1, "CHECK missing NotFound"),
        (GrpcCall::Watch, 1, "WATCH ok END OK"),
    ] {
        let finished = apps::run(
            "grpc-client",
            apps::go_grpc_client(&client_bin, target, call, n),
        )
        .unwrap_or_else(|e| panic!("gRPC client {}: {e:#}", call.flag()));
        assert_eq!(
            finished.stdout.matches(want).count(),
            n,
            "{}",
            finished.stdout
        );
        client_pids.push(finished.pid);
    }
    let out = flow::finish_at(&receiver, agent, 2 * 5);
    let clients: Vec<&ReceivedSpan> = out
        .spans
        .iter()
        .filter(|s| s.kind == "CLIENT" && s.pid().is_some_and(|p| client_pids.contains(&p)))
        .collect();
    let servers: Vec<&ReceivedSpan> = out
        .spans
        .iter()
        .filter(|s| s.kind == "SERVER" && s.pid() == Some(server.pid()))
        .collect();
    let dump = || integration_tests::otlp_receiver::dump(&out.spans);
    assert_eq!(clients.len(), 5, "client spans:\n{}", dump());
    assert_eq!(servers.len(), 5, "server spans:\n{}", dump());
    let mut seen = Vec::new();
    for client in &clients {
        let server_span = child_of(&out.spans, client)
            .unwrap_or_else(|| panic!("no server child of {client}\n{}", dump()));
        assert_eq!(server_span.pid(), Some(server.pid()));
        assert_eq!(server_span.kind, "SERVER");
        assert_eq!(server_span.trace_id, client.trace_id);
        assert_eq!(
            server_span.attr_str("tracer.parent.source"),
            Some(source),
            "{server_span}"
        );
        let injected = client.attr("tracer.context.injected") == Some(&AttrValue::Bool(true));
        assert_eq!(injected, source == "injected", "{client}");
        for span in [*client, server_span] {
            assert_eq!(span.attr_str("rpc.system"), Some("grpc"), "{span}");
            assert_eq!(
                span.attr_str("rpc.service"),
                Some("grpc.health.v1.Health"),
                "{span}"
            );
            assert!(
                span.name.starts_with("grpc.health.v1.Health/"),
                "span name of {span}"
            );
        }
        let method = client
            .attr_str("rpc.method")
            .expect("rpc.method")
            .to_owned();
        assert_eq!(server_span.attr_str("rpc.method"), Some(method.as_str()));
        let code = int(client, "rpc.grpc.status_code").expect("client status code");
        assert_eq!(int(server_span, "rpc.grpc.status_code"), Some(code));
        match code {
            0 => {
                assert_eq!(client.status_code, "UNSET", "{client}");
                assert_eq!(server_span.status_code, "UNSET", "{server_span}");
            }
            5 => {
                // NOT_FOUND: an error for the caller, not for the server
                // (OpenTelemetry RPC conventions).
                assert_eq!(client.status_code, "ERROR", "{client}");
                assert_eq!(server_span.status_code, "UNSET", "{server_span}");
            }
            other => panic!("unexpected status code {other}: {client}"),
        }
        seen.push((method, code));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("Check".to_owned(), 0),
            ("Check".to_owned(), 0),
            ("Check".to_owned(), 0),
            ("Check".to_owned(), 5),
            ("Watch".to_owned(), 0),
        ]
    );
    out.assert_clean();
}

/// Plain HTTP/2 without TLS (prior knowledge) from Go's x/net client, 200
/// and 404 on one connection: HTTP spans with protocol version 2.
#[test]
fn h2c_requests_give_http_spans() {
    const ROUNDS: usize = 3;
    let env = require_root!();
    let server_bin = skip_unless!(env, program("h2c_server"));
    let client_bin = skip_unless!(env, program("h2c_client"));
    let receiver = Receiver::start().expect("receiver");
    let server = apps::go_h2c_server(&server_bin).expect("starting the h2c server");
    let client_exe = client_bin
        .file_name()
        .and_then(|n| n.to_str())
        .expect("client name");
    let pid = server.pid().to_string();
    let agent = start_agent(&env, &receiver, &["--pid", &pid, "--exe", client_exe]);
    let urls = [server.url("/hello"), server.url("/status/404")];
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let finished = apps::run(
        "h2c-client",
        apps::go_h2c_client(&client_bin, &urls, ROUNDS, false),
    )
    .expect("h2c client");
    assert_eq!(finished.stdout.matches("HTTP/2.0").count(), 2 * ROUNDS);
    let n = 2 * ROUNDS;
    let out = flow::finish_at(&receiver, agent, 2 * n);
    let servers = out.exact(flow::server(server.pid(), n));
    let clients = out.exact(flow::client(finished.pid, n));
    for span in servers.iter().chain(&clients) {
        assert_eq!(
            span.attr_str("network.protocol.version"),
            Some("2"),
            "{span}"
        );
        let path = span.attr_str("url.path").expect("url.path");
        let want = if path == "/hello" { 200 } else { 404 };
        assert_eq!(int(span, "http.response.status_code"), Some(want), "{span}");
    }
    for client in &clients {
        let child =
            child_of(&out.spans, client).unwrap_or_else(|| panic!("no server child of {client}"));
        assert_eq!(child.pid(), Some(server.pid()));
        assert_eq!(child.attr_str("url.path"), client.attr_str("url.path"));
        // The kernel wrote the client span's ids into the HEADERS frame.
        assert_eq!(
            child.attr_str("tracer.parent.source"),
            Some("injected"),
            "{child}"
        );
        assert_eq!(
            client.attr("tracer.context.injected"),
            Some(&AttrValue::Bool(true)),
            "{client}"
        );
    }
    out.assert_clean();
}

/// curl over HTTP/2 with prior knowledge (nghttp2, HPACK with Huffman
/// coding) to Go's h2c server: 200, 404 and 503, each a client and a server
/// span with protocol version 2, the server span the child of curl's
/// through the injected `traceparent`. One curl per request: x/net 0.7's h2c
/// handler resets a prior-knowledge connection's second stream (curl exits
/// 16 there with no agent running).
#[test]
fn curl_http2_prior_knowledge_to_a_go_h2c_server() {
    let env = require_root!();
    let server_bin = skip_unless!(env, program("h2c_server"));
    let receiver = Receiver::start().expect("receiver");
    let server = apps::go_h2c_server(&server_bin).expect("starting the h2c server");
    let pid = server.pid().to_string();
    let agent = start_agent(&env, &receiver, &["--pid", &pid, "--exe", "curl"]);
    let paths = ["/hello", "/status/404", "/status/503"];
    let mut curls = Vec::new();
    for (path, want) in paths.iter().zip(["2 200", "2 404", "2 503"]) {
        let url = server.url(path);
        let args = [
            "--http2-prior-knowledge",
            "-w",
            "%{http_version} %{http_code}\\n",
            "-o",
            "/dev/null",
            url.as_str(),
        ];
        let finished = apps::curl(&args).expect("curl");
        assert_eq!(finished.stdout.trim(), want, "curl's view of {path}");
        curls.push(finished.pid);
    }
    let out = flow::finish_at(&receiver, agent, 2 * paths.len());
    let servers = out.exact(flow::server(server.pid(), paths.len()));
    let clients: Vec<_> = curls.iter().map(|&pid| out.one(pid, "CLIENT")).collect();
    for (span, want) in clients.iter().zip([200, 404, 503]) {
        assert_eq!(
            span.attr_str("network.protocol.version"),
            Some("2"),
            "{span}"
        );
        assert_eq!(int(span, "http.response.status_code"), Some(want), "{span}");
        let child =
            child_of(&out.spans, span).unwrap_or_else(|| panic!("no server child of {span}"));
        assert_eq!(child.pid(), Some(server.pid()));
        assert_eq!(child.attr_str("url.path"), span.attr_str("url.path"));
        assert_eq!(
            int(child, "http.response.status_code"),
            Some(want),
            "{child}"
        );
        assert_eq!(
            child.attr_str("tracer.parent.source"),
            Some("injected"),
            "{child}"
        );
    }
    // 5xx is an error on both ends, 4xx only on the client's.
    for span in servers.iter().chain(&clients) {
        let code = int(span, "http.response.status_code").unwrap_or(0);
        let error = code >= 500 || (span.kind == "CLIENT" && code >= 400);
        assert_eq!(span.status_code == "ERROR", error, "{span}");
    }
    out.assert_clean();
}

/// A traced gRPC client that sends its own `traceparent` metadata is left
/// alone: the kernel sees the name in the first request's HEADERS (grpc-go
/// Huffman-codes it), adds nothing, and never injects that connection again
/// (later requests name the field by an index into the client's dynamic
/// table, which the kernel does not follow). The server receives exactly
/// one `traceparent` per call, the app's; both spans take the app's
/// context from the header, and the client span is not marked injected.
#[test]
fn grpc_traced_client_with_its_own_traceparent() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const CALLER: &str = "b7ad6b7169203331";
    let env = require_root!();
    let server_bin = skip_unless!(env, program("grpc_server"));
    let client_bin = skip_unless!(env, program("grpc_client"));
    let receiver = Receiver::start().expect("receiver");
    let server = apps::go_grpc_server(&server_bin).expect("starting the gRPC server");
    let client_exe = client_bin
        .file_name()
        .and_then(|n| n.to_str())
        .expect("client name");
    let pid = server.pid().to_string();
    let agent = start_agent(&env, &receiver, &["--pid", &pid, "--exe", client_exe]);
    let target: SocketAddr = ([127, 0, 0, 1], server.port()).into();
    let mut cmd = apps::go_grpc_client(&client_bin, target, GrpcCall::CheckOk, 2);
    cmd.args(["-traceparent", &format!("00-{TRACE}-{CALLER}-01")]);
    let finished = apps::run("grpc-client", cmd).expect("gRPC client");
    assert_eq!(finished.stdout.matches("CHECK ok SERVING").count(), 2);
    let out = flow::finish_at(&receiver, agent, 4);
    // grpc_server prints what each call received.
    let received = server.proc.stdout.text();
    let want = format!("TRACEPARENT n=1 value=00-{TRACE}-{CALLER}-01");
    let lines: Vec<&str> = received
        .lines()
        .filter(|l| l.starts_with("TRACEPARENT"))
        .collect();
    assert_eq!(lines, [want.as_str(), want.as_str()], "{received}");
    let clients = out.exact(flow::client(finished.pid, 2));
    for client in &clients {
        // The client span adopts the app's context.
        assert_eq!(client.trace_id, TRACE, "{client}");
        assert_eq!(client.parent_span_id.as_deref(), Some(CALLER), "{client}");
        assert_eq!(client.attr_str("tracer.parent.source"), Some("header"));
        assert_ne!(
            client.attr("tracer.context.injected"),
            Some(&AttrValue::Bool(true)),
            "{client}"
        );
    }
    // Seen once, on the connection's first request; nothing written.
    assert_eq!(
        out.exit.counter("context_own_header"),
        1,
        "{}",
        out.exit.stderr
    );
    assert_eq!(
        out.exit.counter("context_injected"),
        0,
        "{}",
        out.exit.stderr
    );
    for span in out.exact(flow::server(server.pid(), 2)) {
        assert_eq!(span.trace_id, TRACE, "{span}");
        assert_eq!(span.parent_span_id.as_deref(), Some(CALLER), "{span}");
        assert_eq!(span.attr_str("tracer.parent.source"), Some("header"));
        assert_eq!(span.attr_str("rpc.method"), Some("Check"));
    }
    out.assert_clean();
}

/// A caller's `traceparent` in the gRPC metadata: the server span joins
/// that trace as the child of the caller's span.
#[test]
fn grpc_incoming_context_from_metadata() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const CALLER: &str = "b7ad6b7169203331";
    let env = require_root!();
    let server_bin = skip_unless!(env, program("grpc_server"));
    let client_bin = skip_unless!(env, program("grpc_client"));
    let receiver = Receiver::start().expect("receiver");
    let server = apps::go_grpc_server(&server_bin).expect("starting the gRPC server");
    let pid = server.pid().to_string();
    let agent = start_agent(&env, &receiver, &["--pid", &pid]);
    let target: SocketAddr = ([127, 0, 0, 1], server.port()).into();
    let mut cmd = apps::go_grpc_client(&client_bin, target, GrpcCall::CheckOk, 2);
    cmd.args(["-traceparent", &format!("00-{TRACE}-{CALLER}-01")]);
    let finished = apps::run("grpc-client", cmd).expect("gRPC client");
    assert_eq!(finished.stdout.matches("CHECK ok SERVING").count(), 2);
    let out = flow::finish_at(&receiver, agent, 2);
    for span in out.exact(flow::server(server.pid(), 2)) {
        assert_eq!(span.trace_id, TRACE, "{span}");
        assert_eq!(span.parent_span_id.as_deref(), Some(CALLER), "{span}");
        assert_eq!(span.attr_str("tracer.parent.source"), Some("header"));
        assert_eq!(span.attr_str("rpc.method"), Some("Check"));
    }
    out.assert_clean();
}

/// A Go HTTP handler that fans out to gRPC calls from goroutines, directly
/// and through a goroutine that makes no syscall, over one shared
/// connection whose writer goroutine (grpc-go's loopy) sends the calls'
/// HEADERS frames, several per write: each call's client span is the child
/// of its request (one uprobe hit per call, on the returns of
/// `http2Client.NewStream`, ties the stream to the calling goroutine), each
/// gRPC server span the child of its call through the `traceparent` sk_msg
/// wrote into that call's frame. Then 20 such requests at once: every span
/// in its own request's trace, zero cross-links.
#[test]
fn grpc_calls_from_handler_goroutines_nest_under_their_request() {
    const FAN: usize = 5;
    const CONCURRENT: usize = 20;
    const CALL: &str = "grpc.health.v1.Health/Check";
    let env = require_root!();
    let server_bin = skip_unless!(env, program("grpc_server"));
    let front_bin = skip_unless!(env, program("grpc_fanout"));
    let receiver = Receiver::start().expect("receiver");
    let server = apps::go_grpc_server(&server_bin).expect("starting the gRPC server");
    let target: SocketAddr = ([127, 0, 0, 1], server.port()).into();
    let mut front = apps::go_grpc_fanout(&front_bin, target).expect("starting grpc_fanout");
    let (front_pid, leaf_pid) = (front.pid(), server.pid());
    let (fp, lp) = (front_pid.to_string(), leaf_pid.to_string());
    let agent = start_agent(&env, &receiver, &["--pid", &fp, "--pid", &lp]);
    let log = agent.stderr();
    assert!(
        log.contains(&format!(
            "go: pid {front_pid}: uprobe on google.golang.org/grpc/internal/transport.\
             (*http2Client).NewStream"
        )),
        "no gRPC client uprobe:\n{log}"
    );
    apps::connect_grpc_fanout(&mut front).expect("grpc_fanout connecting");
    for path in ["/fanout", "/nested"] {
        let url = front.url(&format!("{path}?n={FAN}"));
        let (_, status, _) = apps::curl_request(&[&url]).expect("running curl");
        assert_eq!(status, 200, "status of {url}");
    }
    Load::concurrent(CONCURRENT, &format!("/fanout?n={FAN}")).run_ok(&front.base_url());
    let requests = 2 + CONCURRENT;
    let out = flow::finish_at(&receiver, agent, requests * (1 + 2 * FAN));
    let dump = || integration_tests::otlp_receiver::dump(&out.spans);
    // The nested request's trace alone; the /fanout ones together; and a
    // call that lost its request (below) in a trace of its own, which no
    // request span is in: which request it belonged to is just what the
    // agent could not know, so it is checked apart, not under either.
    let front_trace = |path: &str| -> BTreeSet<String> {
        out.spans
            .iter()
            .filter(|s| {
                s.pid() == Some(front_pid)
                    && s.kind == "SERVER"
                    && s.attr_str("url.path") == Some(path)
            })
            .map(|s| s.trace_id.clone())
            .collect()
    };
    let nested_traces = front_trace("/nested");
    let fanout_traces = front_trace("/fanout");
    assert_eq!(nested_traces.len(), 1, "one /nested trace:\n{}", dump());
    let mut nested = Vec::new();
    let mut fanouts = Vec::new();
    let mut lost = Vec::new();
    for span in out.spans.iter().cloned() {
        if nested_traces.contains(&span.trace_id) {
            nested.push(span);
        } else if fanout_traces.contains(&span.trace_id) {
            fanouts.push(span);
        } else {
            lost.push(span);
        }
    }
    // A call whose HEADERS frame the connection's writer sent before the
    // call's uprobe ran (the writer on another CPU, in the microseconds
    // between the stream getting its id and NewStream returning) starts a
    // new trace: counted by the agent, never another request's parent.
    let late = out.exit.counter("go_grpc_stream_late") as usize;
    let mut unparented = 0;
    let mut parented = 0;
    for (what, spans, path, n) in [
        ("nested", &nested, "/nested", 1),
        ("fan-out", &fanouts, "/fanout", 1 + CONCURRENT),
    ] {
        let f = fanout::Fanout {
            front_pid,
            leaf_pid,
            front_path: path,
            call_path: CALL,
            fan: FAN,
        };
        let (stats, problems) = fanout::check(spans, &f);
        eprintln!("STATS {} {what}: {stats} late={late}", env.test);
        let calls = n * FAN;
        // A request whose call was lost has a client child too few; the
        // lost call itself is checked below, apart.
        let unexpected: Vec<&String> = problems
            .iter()
            .filter(|p| !p.contains("client children, expected"))
            .collect();
        assert!(
            unexpected.is_empty() && stats.cross_linked == 0,
            "{}",
            fanout::report(what, &stats, &problems, &out.spans)
        );
        assert_eq!((stats.requests, stats.traces), (n, n), "{what}: {stats}");
        assert!(
            stats.correctly_parented + stats.wrongly_parented <= 2 * calls,
            "{what}: {stats}"
        );
        parented += stats.correctly_parented + stats.wrongly_parented;
        unparented += stats.wrongly_parented;
        for span in spans.iter() {
            let want = match (span.pid(), span.kind.as_str()) {
                (Some(p), "CLIENT") if p == front_pid && span.parent_span_id.is_some() => {
                    "goroutine"
                }
                (Some(p), "SERVER") if p == leaf_pid => "injected",
                _ => continue,
            };
            assert_eq!(span.attr_str("tracer.parent.source"), Some(want), "{span}");
            assert_eq!(int(span, "rpc.grpc.status_code"), Some(0), "{span}");
        }
    }
    // Each lost call: a client span with no parent and the leaf's server
    // span as its child, a trace of two.
    let lost_calls: Vec<&ReceivedSpan> = lost
        .iter()
        .filter(|s| s.pid() == Some(front_pid) && s.kind == "CLIENT" && s.name == CALL)
        .collect();
    for call in &lost_calls {
        assert_eq!(call.parent_span_id, None, "{call}");
        assert_eq!(
            call.attr_str("tracer.parent.source"),
            Some("none"),
            "{call}"
        );
        let answered = lost.iter().filter(|s| {
            s.pid() == Some(leaf_pid)
                && s.kind == "SERVER"
                && s.parent_span_id.as_deref() == Some(call.span_id.as_str())
        });
        assert_eq!(answered.count(), 1, "{call}:\n{}", dump());
    }
    assert_eq!(
        lost.len(),
        2 * lost_calls.len(),
        "lost calls' traces:\n{}",
        dump()
    );
    assert_eq!(
        parented + lost.len(),
        2 * requests * FAN,
        "every call and its answer, in a request's trace or a lost call's"
    );
    unparented += lost_calls.len();
    // Every call without its request's parent is one the agent counted
    // (most of them late: the writer sent the HEADERS before the call's
    // uprobe ran), and they stay rare.
    let no_caller = out.exit.counter("go_grpc_stream_no_caller") as usize;
    assert_eq!(
        unparented, no_caller,
        "unparented calls vs go_grpc_stream_no_caller (late: {late})"
    );
    assert!(late <= no_caller, "late {late} > no caller {no_caller}");
    assert!(
        late * 50 <= requests * FAN,
        "{late} of {} calls lost their parent to the writer",
        requests * FAN
    );
    assert_eq!(out.spans.len(), requests * (1 + 2 * FAN), "no other span");
    out.only_from(&[front_pid, leaf_pid]);
    out.assert_clean();
}
