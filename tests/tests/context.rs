//! Trace context end to end: incoming headers (W3C, B3, invalid ones),
//! outgoing calls nested under the request being served, `traceparent`
//! written by the kernel into outgoing requests (byte-exact), hops on one
//! host stitched by their connection, the official OpenTelemetry SDK in the
//! middle of a chain, nginx under concurrency, and head sampling.
//!
//! Every test needs root and the agent binary (`TRACER_BIN`); the SDK test
//! also needs `TRACER_PYTHONPATH` (set by `cargo xtask test`). Without them a
//! test prints `SKIPPED <test>: <reason>` and returns.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use integration_tests::{
    Protocol, ReceivedSpan, Receiver,
    agent::{self, Agent},
    apps::{self, Server, TempDir},
    chain::{self, Load},
    flow::{self, Outcome},
    injection::{self, Traceparent},
    otlp_receiver::dump,
    process::Proc,
    require_root, skip,
    skip::TestEnv,
    skip_unless,
    spans::Check,
    trace_tree::{self, Hop, TreeStats},
};

/// A trace and span id of the caller's own choosing.
const CURL_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CURL_SPAN: &str = "00f067aa0ba902b7";
const SOURCE: &str = "tracer.parent.source";
const INJECTED: &str = "tracer.context.injected";

fn receiver() -> Receiver {
    Receiver::start().expect("starting the OTLP receiver")
}

fn start_agent(env: &TestEnv, receiver: &Receiver, args: &[&str]) -> Agent {
    match Agent::start(&env.tracer_bin, args, receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// One untraced curl request; panics unless it got `want_status`.
fn curl(args: &[&str], want_status: u16) {
    let (_, status, _) = apps::curl_request(args).expect("running curl");
    assert_eq!(status, want_status, "status seen by curl for {args:?}");
}

fn attr_bool(span: &ReceivedSpan, key: &str) -> Option<bool> {
    match span.attr(key) {
        Some(integration_tests::AttrValue::Bool(b)) => Some(*b),
        _ => None,
    }
}

/// The spans this agent made (not an SDK's).
fn ours(spans: &[ReceivedSpan]) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.res_str("telemetry.sdk.name") == Some("tracer"))
        .cloned()
        .collect()
}

/// True once every hop has a span for every path.
fn all_hops_seen(spans: &[ReceivedSpan], hops: &[Hop], paths: &[String]) -> bool {
    paths.iter().all(|path| {
        hops.iter()
            .all(|hop| !trace_tree::spans_of(spans, hop, path).is_empty())
    })
}

/// Waits until the number of received spans has not changed for `quiet`
/// (for runs whose span count is not known in advance), then stops the
/// agent.
fn finish_when_quiet(receiver: &Receiver, agent: Agent, quiet: Duration) -> Outcome {
    let mut last = (usize::MAX, Instant::now());
    flow::finish_when(receiver, agent, move |spans| {
        if spans.len() != last.0 {
            last = (spans.len(), Instant::now());
        }
        last.1.elapsed() >= quiet
    })
}

fn stats_line(test: &str, stats: &TreeStats) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "STATS {test}: {stats}");
}

/// A → B → C, each a threading Python service; B and C log the
/// `traceparent`s they receive.
struct Chain {
    a: Server,
    b: Server,
    c: Server,
    b_log: PathBuf,
    c_log: PathBuf,
    a_log: PathBuf,
    _dir: TempDir,
}

impl Chain {
    fn start() -> Chain {
        let dir = TempDir::new("tracer-chain").expect("temp dir");
        let a_log = dir.path.join("a.log");
        let b_log = dir.path.join("b.log");
        let c_log = dir.path.join("c.log");
        let c = chain::chain_service("svc-c", None, Some(&c_log)).expect("C");
        let b = chain::chain_service("svc-b", Some(&c), Some(&b_log)).expect("B");
        let a = chain::chain_service("svc-a", Some(&b), Some(&a_log)).expect("A");
        Chain {
            a,
            b,
            c,
            a_log,
            b_log,
            c_log,
            _dir: dir,
        }
    }

    /// Prints what each service received (shown when a test fails).
    fn print_logs(&self) {
        for log in [&self.a_log, &self.b_log, &self.c_log] {
            eprintln!("{}: {:?}", log.display(), chain::read_log(log));
        }
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.a.pid(), self.b.pid(), self.c.pid()]
    }

    /// A server, A client, B server, B client, C server.
    fn hops(&self) -> Vec<Hop> {
        vec![
            Hop::new("A", &[self.a.pid()], "SERVER"),
            Hop::new("A", &[self.a.pid()], "CLIENT"),
            Hop::new("B", &[self.b.pid()], "SERVER"),
            Hop::new("B", &[self.b.pid()], "CLIENT"),
            Hop::new("C", &[self.c.pid()], "SERVER"),
        ]
    }
}

/// The five spans of one request through the chain, checked to be one trace
/// with exactly the right parent chain (`root_parent` above A's server).
fn one_chain(
    out: &Outcome,
    chain: &Chain,
    path: &str,
    root_parent: Option<&str>,
) -> Vec<ReceivedSpan> {
    chain.print_logs();
    let hops = chain.hops();
    let paths = vec![path.to_owned()];
    let check = trace_tree::check_chains(&out.spans, &hops, &paths, root_parent);
    check.assert_ok(&out.spans);
    let spans: Vec<ReceivedSpan> = (0..hops.len())
        .map(|i| check.span(path, i).clone())
        .collect();
    for (span, hop) in spans.iter().zip(&hops) {
        Check::new(span, format!("{} {} span of {path}", hop.name, hop.kind))
            .str("url.path", path)
            .int("http.response.status_code", 200)
            .status("UNSET")
            .done();
    }
    spans
}

fn traceparent_of(span: &ReceivedSpan) -> String {
    format!("00-{}-{}-01", span.trace_id, span.span_id)
}

/// A chain request with the kernel's `traceparent` on every hop, and one
/// where curl sends its own: the trace must be curl's.
#[test]
fn chain_of_three_with_injection() {
    let env = require_root!();
    let receiver = receiver();
    let chain = Chain::start();
    let args = agent::pid_args(&chain.pids());
    let agent = start_agent(&env, &receiver, &strs(&args));

    curl(&[&chain.a.url("/work/injected")], 200);
    let own = format!("traceparent: 00-{CURL_TRACE}-{CURL_SPAN}-01");
    curl(
        &[
            "-H",
            &own,
            "-H",
            "tracestate: rojo=00f067aa0ba902b7",
            &chain.a.url("/work/header"),
        ],
        200,
    );
    let hops = chain.hops();
    let paths = vec!["/work/injected".to_owned(), "/work/header".to_owned()];
    let out = flow::finish_when(&receiver, agent, |spans| {
        all_hops_seen(spans, &hops, &paths)
    });

    // (a) curl sent nothing: A starts the trace; every hop after it got the
    // kernel's header.
    let [a_srv, a_cli, b_srv, b_cli, c_srv]: [ReceivedSpan; 5] =
        one_chain(&out, &chain, "/work/injected", None)
            .try_into()
            .expect("five spans");
    Check::new(&a_srv, "A SERVER (no context)")
        .str(SOURCE, "none")
        .absent(INJECTED)
        .done();
    for (span, what) in [(&a_cli, "A CLIENT"), (&b_cli, "B CLIENT")] {
        Check::new(span, what)
            .str(SOURCE, "thread")
            .that(
                attr_bool(span, INJECTED) == Some(true),
                "tracer.context.injected is not true",
            )
            .done();
    }
    for (span, what) in [(&b_srv, "B SERVER"), (&c_srv, "C SERVER")] {
        Check::new(span, what)
            .str(SOURCE, "injected")
            .absent(INJECTED)
            .done();
    }
    assert!(
        chain::received_for(&chain.a_log, "/work/injected")
            .traceparents
            .is_empty(),
        "curl sent no traceparent to A"
    );
    assert_eq!(
        chain::received_for(&chain.b_log, "/work/injected").traceparents,
        vec![traceparent_of(&a_cli)],
        "B received exactly the header naming A's client span"
    );
    assert_eq!(
        chain::received_for(&chain.c_log, "/work/injected").traceparents,
        vec![traceparent_of(&b_cli)],
        "C received exactly the header naming B's client span"
    );

    // (c) curl's own traceparent: the whole chain is in curl's trace.
    let spans = one_chain(&out, &chain, "/work/header", Some(CURL_SPAN));
    for span in &spans {
        assert_eq!(span.trace_id, CURL_TRACE, "curl's trace: {span}");
    }
    Check::new(&spans[0], "A SERVER (curl's traceparent)")
        .str(SOURCE, "header")
        .done();
    Check::new(&spans[1], "A CLIENT")
        .str(SOURCE, "thread")
        .that(attr_bool(&spans[1], INJECTED) == Some(true), "not injected")
        .done();
    Check::new(&spans[2], "B SERVER")
        .str(SOURCE, "injected")
        .done();
    Check::new(&spans[4], "C SERVER")
        .str(SOURCE, "injected")
        .done();
    assert_eq!(
        chain::received_for(&chain.a_log, "/work/header").traceparents,
        vec![format!("00-{CURL_TRACE}-{CURL_SPAN}-01")]
    );
    assert_eq!(
        chain::received_for(&chain.b_log, "/work/header").traceparents,
        vec![traceparent_of(&spans[1])]
    );
    assert_eq!(
        chain::received_for(&chain.c_log, "/work/header").traceparents,
        vec![traceparent_of(&spans[3])]
    );

    assert_eq!(out.spans.len(), 10, "spans:\n{}", dump(&out.spans));
    out.only_from(&chain.pids());
    out.assert_clean();
}

/// With `--no-inject` no header is written; the hops are linked through
/// their connections on this host.
#[test]
fn chain_of_three_stitched_by_connection_without_injection() {
    let env = require_root!();
    let receiver = receiver();
    let chain = Chain::start();
    let mut args = agent::pid_args(&chain.pids());
    args.push("--no-inject".to_owned());
    let agent = start_agent(&env, &receiver, &strs(&args));

    curl(&[&chain.a.url("/work/stitched")], 200);
    let hops = chain.hops();
    let paths = vec!["/work/stitched".to_owned()];
    let out = flow::finish_when(&receiver, agent, |spans| {
        all_hops_seen(spans, &hops, &paths)
    });
    let spans = one_chain(&out, &chain, "/work/stitched", None);
    let want = ["none", "thread", "connection", "thread", "connection"];
    for ((span, hop), source) in spans.iter().zip(&hops).zip(want) {
        Check::new(span, format!("{} {} (no injection)", hop.name, hop.kind))
            .str(SOURCE, source)
            .absent(INJECTED)
            .done();
    }
    for log in [&chain.b_log, &chain.c_log] {
        assert_eq!(
            chain::received_for(log, "/work/stitched").traceparents,
            Vec::<String>::new(),
            "{}: no header may be written with --no-inject",
            log.display()
        );
    }
    assert_eq!(out.spans.len(), 5, "spans:\n{}", dump(&out.spans));
    out.only_from(&chain.pids());
    out.assert_clean();
}

/// B instrumented with the official OpenTelemetry SDK (WSGI + urllib
/// instrumentations) between two uninstrumented services.
#[test]
fn chain_with_an_sdk_instrumented_middle_service() {
    let env = require_root!();
    let pythonpath = skip_unless!(env, chain::sdk_pythonpath());
    let receiver = receiver();
    let dir = TempDir::new("tracer-sdk").expect("temp dir");
    let b_log = dir.path.join("b.log");
    let c_log = dir.path.join("c.log");
    let c = chain::chain_service("svc-c", None, Some(&c_log)).expect("C");
    let otlp_http = receiver.endpoint(Protocol::HttpProtobuf);
    let b = chain::sdk_service("sdk-b", &c, &otlp_http, &b_log, &pythonpath).expect("B");
    let a = chain::chain_service("svc-a", Some(&b), None).expect("A");
    let (ap, bp, cp) = (a.pid(), b.pid(), c.pid());
    let args = agent::pid_args(&[ap, bp, cp]);
    let agent = start_agent(&env, &receiver, &strs(&args));

    let path = "/work/sdk";
    curl(&[&a.url(path)], 200);
    let hops = [
        Hop::new("A", &[ap], "SERVER"),
        Hop::new("A", &[ap], "CLIENT"),
        Hop::new("B", &[bp], "SERVER"),
        Hop::new("B", &[bp], "CLIENT"),
        Hop::new("C", &[cp], "SERVER"),
    ];
    let paths = vec![path.to_owned()];
    let sdk = |spans: &[ReceivedSpan]| -> Vec<ReceivedSpan> {
        spans
            .iter()
            .filter(|s| s.res_str("telemetry.sdk.name") == Some("opentelemetry"))
            .cloned()
            .collect()
    };
    let out = flow::finish_when(&receiver, agent, |spans| {
        all_hops_seen(spans, &hops, &paths) && sdk(spans).len() >= 2
    });
    let listing = dump(&out.spans);
    let sdk_spans = sdk(&out.spans);
    let one_sdk = |kind: &str| -> ReceivedSpan {
        let found: Vec<&ReceivedSpan> = sdk_spans.iter().filter(|s| s.kind == kind).collect();
        assert_eq!(found.len(), 1, "one SDK {kind} span:\n{listing}");
        found[0].clone()
    };
    let sdk_server = one_sdk("SERVER");
    let sdk_client = one_sdk("CLIENT");
    assert_eq!(sdk_spans.len(), 2, "SDK spans:\n{}", dump(&sdk_spans));
    for s in &sdk_spans {
        assert_eq!(s.res_str("service.name"), Some("sdk-b"), "{s}");
    }

    let ours_for_path: Vec<ReceivedSpan> = ours(&out.spans)
        .into_iter()
        .filter(|s| s.attr_str("url.path") == Some(path))
        .collect();
    let check = trace_tree::check_chains(&ours_for_path, &hops, &paths, None);
    let get = |i: usize| -> ReceivedSpan {
        check
            .chains
            .get(path)
            .and_then(|c| c[i].clone())
            .unwrap_or_else(|| panic!("no span of hop {i}:\n{listing}"))
    };
    let (a_srv, a_cli, b_srv, b_cli, c_srv) = (get(0), get(1), get(2), get(3), get(4));
    eprintln!(
        "SDK spans:\n{}our spans:\n{}",
        dump(&sdk_spans),
        dump(&ours_for_path)
    );

    // One trace for everything, the SDK's and ours.
    let trace = &a_srv.trace_id;
    for span in sdk_spans.iter().chain(&ours_for_path) {
        assert_eq!(&span.trace_id, trace, "one trace id:\n{listing}");
    }
    // The SDK followed the header our kernel wrote for A's client span.
    assert_eq!(
        sdk_server.parent_span_id.as_deref(),
        Some(a_cli.span_id.as_str()),
        "SDK server span's parent is A's client span:\n{listing}"
    );
    assert_eq!(
        sdk_client.parent_span_id.as_deref(),
        Some(sdk_server.span_id.as_str()),
        "{listing}"
    );
    // Our B server span has the SDK's server span's parent.
    assert_eq!(
        b_srv.parent_span_id, sdk_server.parent_span_id,
        "our B SERVER parent == SDK B SERVER parent:\n{listing}"
    );
    Check::new(&b_srv, "our B SERVER")
        .str(SOURCE, "injected")
        .done();
    // B's request already carried the SDK's traceparent: left untouched.
    let b_received = chain::received_for(&b_log, path);
    assert_eq!(b_received.traceparents, vec![traceparent_of(&a_cli)]);
    assert_eq!(
        b_received.fields.get("sdk_span_id"),
        Some(&sdk_server.span_id),
        "the SDK's logged server span is the exported one"
    );
    let c_received = chain::received_for(&c_log, path);
    assert_eq!(
        c_received.traceparents,
        vec![traceparent_of(&sdk_client)],
        "C received exactly one traceparent, the SDK's client span context"
    );
    // Our B CLIENT adopts the SDK's context: a child of the SDK's client span.
    Check::new(&b_cli, "our B CLIENT (SDK header adopted)")
        .str(SOURCE, "header")
        .absent(INJECTED)
        .that(
            b_cli.parent_span_id.as_deref() == Some(sdk_client.span_id.as_str()),
            "parent is not the SDK's client span",
        )
        .done();
    Check::new(&c_srv, "our C SERVER")
        .str(SOURCE, "header")
        .that(
            c_srv.parent_span_id.as_deref() == Some(sdk_client.span_id.as_str()),
            "C's parent is the SDK's client span",
        )
        .done();
    // Ours from A and C: exactly the chain (B also exports the SDK's spans
    // over HTTP, which we trace as B's client calls to the receiver).
    for (pid, n) in [(ap, 2), (cp, 1)] {
        let from = integration_tests::spans::of_pid(&out.spans, pid);
        assert_eq!(from.len(), n, "spans of pid {pid}:\n{listing}");
    }
    for span in ours(&out.spans)
        .iter()
        .filter(|s| s.pid() == Some(bp) && s.attr_str("url.path") != Some(path))
    {
        Check::new(span, "B's other spans are its OTLP exports")
            .kind("CLIENT")
            .str("url.path", "/v1/traces")
            .done();
    }
    out.assert_clean();
}

/// 50 clients at once, two requests each, every request its own trace of
/// five spans through the chain.
#[test]
fn fifty_concurrent_clients_through_the_chain() {
    const CLIENTS: usize = 50;
    const PER_CLIENT: usize = 2;
    let env = require_root!();
    let receiver = receiver();
    let chain = Chain::start();
    let args = agent::pid_args(&chain.pids());
    let agent = start_agent(&env, &receiver, &strs(&args));

    let load = Load {
        clients: CLIENTS,
        requests_per_client: PER_CLIENT,
        paths: Ok("/work/".to_owned()),
        keepalive: false,
        wait: false,
    };
    let finished = apps::run("load", chain::load_client(&chain.a.base_url(), &load)).expect("load");
    let n = CLIENTS * PER_CLIENT;
    assert!(
        finished.stdout.contains(&format!("RESULT ok={n} failed=0")),
        "{}",
        finished.stdout
    );
    let hops = chain.hops();
    let paths: Vec<String> = (0..n).map(|i| format!("/work/{i}")).collect();
    let out = flow::finish_when(&receiver, agent, |spans| {
        spans.len() >= n * hops.len() && all_hops_seen(spans, &hops, &paths)
    });
    let check = trace_tree::check_chains(&out.spans, &hops, &paths, None);
    stats_line(&env.test, &check.stats);
    check.assert_ok(&out.spans);
    assert_eq!(
        check.stats,
        TreeStats {
            requests: n,
            traces: n,
            spans: n * 5,
            correctly_parented: n * 5,
            ..TreeStats::default()
        }
    );
    assert_eq!(out.spans.len(), n * 5, "no span beyond the chains");
    out.only_from(&chain.pids());
    out.assert_clean();
}

/// nginx with worker_connections raised above the 100 connections that 50
/// clients and their upstream requests need at once.
fn nginx_proxy(backend_port: u16) -> apps::Nginx {
    let template = std::fs::read_to_string(apps::apps_dir().join("nginx/proxy.conf.template"))
        .expect("reading the nginx template");
    assert!(template.contains("worker_connections 64;"), "{template}");
    let template = template.replace("worker_connections 64;", "worker_connections 1024;");
    let dir = TempDir::new("tracer-nginx").expect("temp dir");
    let nginx = apps::tool("nginx").expect("nginx");
    let dir_str = dir.path.to_string_lossy().into_owned();
    let server = chain::start_on_free_port("nginx", |port| {
        let conf = template
            .replace("@PORT@", &port.to_string())
            .replace("@BACKEND_PORT@", &backend_port.to_string())
            .replace("@DIR@", &dir_str);
        let conf_path = dir.path.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("writing nginx.conf");
        let mut cmd = std::process::Command::new(&nginx);
        cmd.args(["-e", "stderr", "-c"])
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir.path)
            .env_remove("OTEL_SERVICE_NAME");
        cmd
    })
    .expect("starting nginx");
    apps::Nginx { server, dir }
}

fn go_and_finish(mut proc: Proc) -> integration_tests::process::Finished {
    proc.write_stdin("go\n").expect("starting the client");
    proc.finish(apps::CLIENT_TIMEOUT)
        .and_then(|f| f.ok())
        .expect("client")
}

/// 50 concurrent keep-alive connections through nginx to a Python
/// backend: each backend request is in the trace of the nginx request that
/// caused it.
#[test]
fn nginx_reverse_proxy_under_50_concurrent_connections() {
    const CLIENTS: usize = 50;
    const PER_CLIENT: usize = 4;
    let env = require_root!();
    if let Err(reason) = apps::tool("nginx") {
        skip::skip(&env.test, &reason);
        return;
    }
    let receiver = receiver();
    let backend = chain::chain_service("py-backend", None, None).expect("backend");
    let bp = backend.pid();
    let nginx = nginx_proxy(backend.port());
    let nginx_pids = nginx.pids();
    let load = Load {
        clients: CLIENTS,
        requests_per_client: PER_CLIENT,
        paths: Ok("/r/".to_owned()),
        keepalive: true,
        wait: true,
    };
    let client = Proc::spawn_waiting("load", chain::load_client(&nginx.server.base_url(), &load));
    let cp = client.pid();
    let mut args = agent::pid_args(&[bp, cp]);
    args.extend(["--exe".to_owned(), "nginx".to_owned()]);
    let agent = start_agent(&env, &receiver, &strs(&args));
    let finished = go_and_finish(client);
    let n = CLIENTS * PER_CLIENT;
    assert!(
        finished.stdout.contains(&format!("RESULT ok={n} failed=0")),
        "{}",
        finished.stdout
    );

    let hops = vec![
        Hop::new("client", &[cp], "CLIENT"),
        Hop::new("nginx", &nginx_pids, "SERVER"),
        Hop::new("nginx", &nginx_pids, "CLIENT"),
        Hop::new("backend", &[bp], "SERVER"),
    ];
    let paths: Vec<String> = (0..n).map(|i| format!("/r/{i}")).collect();
    let out = flow::finish_when(&receiver, agent, |spans| {
        all_hops_seen(spans, &hops, &paths)
    });
    let check = trace_tree::check_chains(&out.spans, &hops, &paths, None);
    stats_line(&env.test, &check.stats);
    // The required property first, with its own message: each backend span
    // in the trace of its nginx SERVER span; nginx's CLIENT its child.
    let mut wrong = Vec::new();
    for path in &paths {
        let chain = &check.chains[path];
        if let (Some(ns), Some(nc), Some(be)) = (&chain[1], &chain[2], &chain[3]) {
            if be.trace_id != ns.trace_id {
                wrong.push(format!("{path}: backend {be}\n    nginx SERVER {ns}"));
            }
            if nc.parent_span_id.as_deref() != Some(ns.span_id.as_str())
                || nc.trace_id != ns.trace_id
            {
                wrong.push(format!("{path}: nginx CLIENT {nc}\n    nginx SERVER {ns}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} request(s) linked wrongly ({}):\n{}",
        wrong.len(),
        check.stats,
        wrong.join("\n")
    );
    check.assert_ok(&out.spans);
    assert_eq!(
        check.stats,
        TreeStats {
            requests: n,
            traces: n,
            spans: n * 4,
            correctly_parented: n * 4,
            ..TreeStats::default()
        }
    );
    for path in &paths {
        Check::new(check.span(path, 3), "backend SERVER")
            .str(SOURCE, "injected")
            .done();
    }
    out.assert_clean();
}

/// What one connection of `inject_client.py` sent and what the capture
/// server received.
fn connection_bytes(dir: &Path, port: u16) -> (Vec<u8>, Vec<u8>) {
    let read = |ext: &str| {
        let path = dir.join(format!("{port}.{ext}"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    };
    (read("sent"), read("recv"))
}

/// Spans of `pid` and `kind` for `path`.
fn for_path(spans: &[ReceivedSpan], pid: u32, kind: &str, path: &str) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.pid() == Some(pid) && s.kind == kind && s.attr_str("url.path") == Some(path))
        .cloned()
        .collect()
}

const INJECT_MODES: &[(&str, &[&str])] = &[
    ("plain", &["/plain"]),
    ("split", &["/split"]),
    ("bighead", &["/bighead"]),
    ("longhead", &["/longhead"]),
    ("bigbody", &["/bigbody"]),
    ("pipeline", &["/p1", "/p2", "/p3"]),
    ("nonhttp", &[]),
    ("own", &["/own"]),
];

/// The server receives the client's bytes plus exactly one header line after
/// the request line where the kernel injects, and the same bytes otherwise;
/// the spans carry exactly the ids that were written.
#[test]
fn injection_is_byte_exact() {
    let env = require_root!();
    let receiver = receiver();
    let dir = TempDir::new("tracer-capture").expect("temp dir");
    let server = chain::capture_server(&dir.path).expect("capture server");
    let sp = server.pid();
    let modes: Vec<&str> = INJECT_MODES.iter().map(|(m, _)| *m).collect();
    let client = Proc::spawn_waiting(
        "inject-client",
        chain::inject_client(&server, &dir.path, true, &modes),
    );
    let cp = client.pid();
    let mut args = agent::pid_args(&[sp, cp]);
    // The 5 KiB heads must be parsed whole.
    args.extend(["--capture-bytes".to_owned(), "8192".to_owned()]);
    let agent = start_agent(&env, &receiver, &strs(&args));
    let finished = go_and_finish(client);
    let conns = chain::inject_connections(&finished.stdout);

    // The bytes first: they are on disk once the client has its answers.
    let mut written: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for (mode, paths) in INJECT_MODES {
        let (sent, received) = connection_bytes(&dir.path, conns[*mode]);
        let inserted = injection::compare(&sent, &received)
            .unwrap_or_else(|e| panic!("{mode}: the server did not get the client's bytes: {e}"));
        eprintln!(
            "{mode}: sent {} bytes, received {}, inserted {inserted:?}",
            sent.len(),
            received.len()
        );
        assert_eq!(
            inserted.len(),
            paths.len(),
            "{mode}: requests in the stream"
        );
        match *mode {
            // Request line alone in its send, head over 4 KiB, 1 MiB body:
            // one line each, right after the request line.
            "plain" | "split" | "bighead" | "longhead" | "bigbody" => {
                assert!(inserted[0].is_some(), "{mode}: no traceparent was inserted");
            }
            // The first request of the send gets one; the others may not.
            "pipeline" => assert!(inserted[0].is_some(), "{mode}: first request"),
            "nonhttp" => assert_eq!(sent, received, "non-HTTP bytes must pass untouched"),
            "own" => {
                assert_eq!(inserted, vec![None], "own: the app's traceparent is kept");
                assert_eq!(sent, received, "own: untouched");
            }
            _ => unreachable!(),
        }
        for (path, header) in paths.iter().zip(inserted) {
            written.insert(path, header);
        }
    }

    // Then the spans: one CLIENT and one SERVER per request.
    let wanted = |spans: &[ReceivedSpan]| {
        written.keys().all(|path| {
            !for_path(spans, cp, "CLIENT", path).is_empty()
                && !for_path(spans, sp, "SERVER", path).is_empty()
        })
    };
    let out = flow::finish_when_or_quiet(&receiver, agent, wanted, Duration::from_secs(5));
    let listing = dump(&out.spans);
    let mut missing = Vec::new();
    for path in written.keys() {
        for (pid, kind) in [(cp, "CLIENT"), (sp, "SERVER")] {
            let n = for_path(&out.spans, pid, kind, path).len();
            if n != 1 {
                missing.push(format!("{path}: {n} {kind} span(s)"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "one CLIENT and one SERVER span per request: {missing:?}\ncounters {:?}\n{listing}",
        out.exit.counters()
    );
    for (path, header) in &written {
        let c = &for_path(&out.spans, cp, "CLIENT", path)[0];
        let s = &for_path(&out.spans, sp, "SERVER", path)[0];
        match header {
            Some(value) => {
                let tp = Traceparent::parse(value).expect("a valid inserted value");
                assert_eq!(tp.flags, "01", "{path}: sampled");
                Check::new(c, format!("{path} CLIENT (injected)"))
                    .that(c.trace_id == tp.trace_id, "trace id != the written one")
                    .that(c.span_id == tp.span_id, "span id != the written one")
                    .that(attr_bool(c, INJECTED) == Some(true), "not marked injected")
                    .str(SOURCE, "none")
                    .done();
                Check::new(s, format!("{path} SERVER (injected)"))
                    .that(s.trace_id == tp.trace_id, "trace id != the written one")
                    .that(
                        s.parent_span_id.as_deref() == Some(tp.span_id.as_str()),
                        "parent != the written span id",
                    )
                    .str(SOURCE, "injected")
                    .done();
            }
            // The app's header names its own client span: our client span
            // adopts that context (a child of it, as under an SDK's span),
            // and the server's parent is the header's span.
            None if *path == "/own" => {
                for span in [c, s] {
                    Check::new(span, format!("/own {}", span.kind))
                        .that(span.trace_id == CURL_TRACE, "not the app's trace")
                        .that(
                            span.parent_span_id.as_deref() == Some(CURL_SPAN),
                            "parent is not the app's span",
                        )
                        .str(SOURCE, "header")
                        .absent(INJECTED)
                        .done();
                }
            }
            // A pipelined request that got no header: its server span is a
            // root, or the child of its own client span; never anything else.
            None => {
                Check::new(c, format!("{path} CLIENT (not injected)"))
                    .absent(INJECTED)
                    .done();
                let linked = s.parent_span_id.as_deref() == Some(c.span_id.as_str())
                    && s.trace_id == c.trace_id
                    && s.attr_str(SOURCE) == Some("connection");
                let root = s.parent_span_id.is_none() && s.attr_str(SOURCE) == Some("none");
                Check::new(s, format!("{path} SERVER (not injected)"))
                    .that(
                        linked || root,
                        "neither a root nor the child of its client span",
                    )
                    .done();
            }
        }
    }
    let injected_spans = out
        .spans
        .iter()
        .filter(|s| attr_bool(s, INJECTED) == Some(true))
        .count();
    assert_eq!(
        injected_spans,
        written.values().flatten().count(),
        "spans marked injected vs headers the server received:\n{listing}"
    );
    assert_eq!(out.spans.len(), 2 * written.len(), "{listing}");
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

/// `--no-inject`: every byte arrives as sent.
#[test]
fn no_inject_leaves_requests_untouched() {
    let env = require_root!();
    let receiver = receiver();
    let dir = TempDir::new("tracer-capture").expect("temp dir");
    let server = chain::capture_server(&dir.path).expect("capture server");
    let sp = server.pid();
    let modes = ["plain", "split", "bigbody", "pipeline"];
    let client = Proc::spawn_waiting(
        "inject-client",
        chain::inject_client(&server, &dir.path, true, &modes),
    );
    let cp = client.pid();
    let mut args = agent::pid_args(&[sp, cp]);
    args.push("--no-inject".to_owned());
    let agent = start_agent(&env, &receiver, &strs(&args));
    let finished = go_and_finish(client);
    let conns = chain::inject_connections(&finished.stdout);
    let out = flow::finish(
        &receiver,
        agent,
        &[flow::client(cp, 6), flow::server(sp, 6)],
    );
    for mode in modes {
        let (sent, received) = connection_bytes(&dir.path, conns[mode]);
        assert!(
            sent == received,
            "{mode}: {}",
            injection::compare(&sent, &received)
                .map(|i| format!("inserted {i:?}"))
                .unwrap_or_else(|e| e)
        );
    }
    for s in &out.spans {
        Check::new(s, "span without injection")
            .absent(INJECTED)
            .done();
    }
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

/// Only the sockets of traced processes are written to: a client that is
/// not selected sends its bytes as they are, even to a traced server.
#[test]
fn untraced_clients_are_never_injected() {
    let env = require_root!();
    let receiver = receiver();
    let dir = TempDir::new("tracer-capture").expect("temp dir");
    let server = chain::capture_server(&dir.path).expect("capture server");
    let sp = server.pid();
    let agent = start_agent(&env, &receiver, &["--pid", &sp.to_string()]);
    let finished = apps::run(
        "inject-client",
        chain::inject_client(&server, &dir.path, false, &["plain", "pipeline"]),
    )
    .expect("client");
    curl(&[&server.url("/curl")], 200);
    let conns = chain::inject_connections(&finished.stdout);
    let out = flow::finish(&receiver, agent, &[flow::server(sp, 5)]);
    for mode in ["plain", "pipeline"] {
        let (sent, received) = connection_bytes(&dir.path, conns[mode]);
        assert!(
            sent == received,
            "{mode} from an untraced client: {}",
            injection::compare(&sent, &received)
                .map(|i| format!("inserted {i:?}"))
                .unwrap_or_else(|e| e)
        );
    }
    let curl_recv: Vec<Vec<u8>> = std::fs::read_dir(&dir.path)
        .expect("listing captures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "recv"))
        .map(|p| std::fs::read(p).expect("reading a capture"))
        .filter(|bytes| bytes.starts_with(b"GET /curl "))
        .collect();
    assert_eq!(curl_recv.len(), 1, "one capture of curl's request");
    let text = String::from_utf8_lossy(&curl_recv[0]);
    assert!(
        !text.to_ascii_lowercase().contains("traceparent"),
        "an untraced curl's request was modified:\n{text}"
    );
    for s in &out.exact(flow::server(sp, 5)) {
        Check::new(s, "SERVER span of an untraced client")
            .str(SOURCE, "none")
            .that(s.parent_span_id.is_none(), "has a parent")
            .done();
    }
    out.only_from(&[sp]);
    out.assert_clean();
}

/// B3 (single and multi-header) is followed; invalid W3C headers start a
/// new trace and are counted.
#[test]
fn b3_and_invalid_incoming_headers() {
    let env = require_root!();
    let receiver = receiver();
    let server = chain::chain_service("svc-a", None, None).expect("server");
    let sp = server.pid();
    // Only the server is traced: curl's requests carry exactly what we send.
    let agent = start_agent(&env, &receiver, &["--pid", &sp.to_string()]);

    let b3_trace = "80f198ee56343ba864fe8b2a57d3eff7";
    let b3_span = "e457b5a2e4d86bd1";
    let multi_trace = "463ac35c9f6413ad48485a3953bb6124";
    let multi_span = "a2fb4a1d1a96d312";
    let short_trace = "a3ce929d0e0e4736";
    let short_span = "0020000000000001";
    let b3 = format!("b3: {b3_trace}-{b3_span}-1");
    let upper = format!(
        "traceparent: 00-{}-{}-01",
        CURL_TRACE.to_uppercase(),
        CURL_SPAN.to_uppercase()
    );
    let ff = format!("traceparent: ff-{CURL_TRACE}-{CURL_SPAN}-01");
    let valid: &[(&str, Vec<String>, &str, &str)] = &[
        ("/b3/single", vec![b3], b3_trace, b3_span),
        (
            "/b3/multi",
            vec![
                format!("X-B3-TraceId: {multi_trace}"),
                format!("X-B3-SpanId: {multi_span}"),
                "X-B3-Sampled: 1".to_owned(),
            ],
            multi_trace,
            multi_span,
        ),
        (
            "/b3/short",
            vec![
                format!("X-B3-TraceId: {short_trace}"),
                format!("X-B3-SpanId: {short_span}"),
                "X-B3-Sampled: 1".to_owned(),
            ],
            "0000000000000000a3ce929d0e0e4736",
            short_span,
        ),
    ];
    let invalid: &[(&str, String)] = &[
        ("/bad/garbage", "traceparent: garbage".to_owned()),
        ("/bad/upper", upper),
        ("/bad/ff", ff),
    ];
    for (path, headers, _, _) in valid {
        let mut args: Vec<&str> = headers.iter().flat_map(|h| ["-H", h.as_str()]).collect();
        let url = server.url(path);
        args.push(&url);
        curl(&args, 200);
    }
    for (path, header) in invalid {
        curl(&["-H", header, &server.url(path)], 200);
    }
    let n = valid.len() + invalid.len();
    let out = flow::finish(&receiver, agent, &[flow::server(sp, n)]);
    let servers = out.exact(flow::server(sp, n));
    let by_path: BTreeMap<&str, &ReceivedSpan> = servers
        .iter()
        .map(|s| (s.attr_str("url.path").unwrap_or_default(), s))
        .collect();
    for (path, _, trace, span) in valid {
        let s = by_path
            .get(path)
            .unwrap_or_else(|| panic!("no span for {path}"));
        Check::new(s, format!("{path} SERVER"))
            .str(SOURCE, "header")
            .that(s.trace_id == *trace, &format!("trace id != {trace}"))
            .that(
                s.parent_span_id.as_deref() == Some(*span),
                &format!("parent != {span}"),
            )
            .int("http.response.status_code", 200)
            .done();
    }
    let mut new_traces = BTreeSet::new();
    for (path, _) in invalid {
        let s = by_path
            .get(path)
            .unwrap_or_else(|| panic!("no span for {path}"));
        Check::new(s, format!("{path} SERVER (invalid header)"))
            .str(SOURCE, "none")
            .that(s.parent_span_id.is_none(), "has a parent")
            .that(
                s.trace_id != CURL_TRACE && s.trace_id.len() == 32 && s.trace_id != "0".repeat(32),
                "not a new trace",
            )
            .int("http.response.status_code", 200)
            .done();
        new_traces.insert(s.trace_id.clone());
    }
    assert_eq!(new_traces.len(), invalid.len(), "a new trace each");
    assert_eq!(
        out.exit.counter("context_invalid_header"),
        invalid.len() as u64,
        "context_invalid_header; counters {:?}",
        out.exit.counters()
    );
    out.only_from(&[sp]);
    out.assert_clean();
}

/// `--sampler traceidratio --sampler-arg 0.25` over 2000 root traces on one
/// keep-alive connection, both ends traced: about a quarter exported, each
/// one whole (both ends decide alike), and the counters add up.
#[test]
fn trace_id_ratio_sampling_over_2000_traces() {
    const N: usize = 2000;
    const RATIO: f64 = 0.25;
    // 4 standard deviations of the binomial at n = 2000.
    const TOLERANCE: f64 = 0.04;
    let env = require_root!();
    let receiver = receiver();
    let server = chain::chain_service("svc-s", None, None).expect("server");
    let sp = server.pid();
    let load = Load {
        clients: 1,
        requests_per_client: N,
        paths: Err("/sampled".to_owned()),
        keepalive: true,
        wait: true,
    };
    let client = Proc::spawn_waiting("load", chain::load_client(&server.base_url(), &load));
    let cp = client.pid();
    let mut args = agent::pid_args(&[sp, cp]);
    args.extend(["--sampler", "traceidratio", "--sampler-arg", "0.25"].map(str::to_owned));
    let agent = start_agent(&env, &receiver, &strs(&args));
    let finished = go_and_finish(client);
    assert!(
        finished.stdout.contains(&format!("RESULT ok={N} failed=0")),
        "{}",
        finished.stdout
    );
    let out = finish_when_quiet(&receiver, agent, Duration::from_secs(3));

    let mut traces: BTreeMap<&str, Vec<&ReceivedSpan>> = BTreeMap::new();
    for s in &out.spans {
        traces.entry(&s.trace_id).or_default().push(s);
    }
    let incomplete: Vec<String> = traces
        .iter()
        .filter(|(_, spans)| {
            let client = spans
                .iter()
                .find(|s| s.kind == "CLIENT" && s.pid() == Some(cp));
            let server = spans
                .iter()
                .find(|s| s.kind == "SERVER" && s.pid() == Some(sp));
            !(spans.len() == 2
                && matches!((client, server), (Some(c), Some(s))
                    if s.parent_span_id.as_deref() == Some(c.span_id.as_str())))
        })
        .map(|(t, spans)| {
            format!(
                "{t}:\n{}",
                dump(&spans.iter().map(|s| (*s).clone()).collect::<Vec<_>>())
            )
        })
        .collect();
    let exported = traces.len();
    let fraction = exported as f64 / N as f64;
    let unsampled = out.exit.counter("spans_unsampled");
    let counted = out.exit.counter("spans_exported");
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "STATS {}: traces={N} exported_traces={exported} fraction={fraction:.4} \
             spans_received={} spans_exported={counted} spans_unsampled={unsampled} incomplete={}",
            env.test,
            out.spans.len(),
            incomplete.len()
        );
    }
    assert!(
        incomplete.is_empty(),
        "{} exported trace(s) are not exactly client + server:\n{}",
        incomplete.len(),
        incomplete
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        (fraction - RATIO).abs() <= TOLERANCE,
        "exported {exported} of {N} traces = {fraction:.4}, want {RATIO} ± {TOLERANCE}"
    );
    assert_eq!(
        counted as usize,
        out.spans.len(),
        "spans_exported vs received"
    );
    assert_eq!(
        unsampled as usize + out.spans.len(),
        2 * N,
        "spans_unsampled + exported == all spans; counters {:?}",
        out.exit.counters()
    );
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

/// `--sampler always_off`: nothing is exported, but the context still goes
/// out, with the sampled flag off.
#[test]
fn unsampled_requests_still_propagate_context() {
    let env = require_root!();
    let receiver = receiver();
    let dir = TempDir::new("tracer-capture").expect("temp dir");
    let server = chain::capture_server(&dir.path).expect("capture server");
    let sp = server.pid();
    let client = Proc::spawn_waiting(
        "inject-client",
        chain::inject_client(&server, &dir.path, true, &["plain", "pipeline"]),
    );
    let cp = client.pid();
    let mut args = agent::pid_args(&[sp, cp]);
    args.extend(["--sampler", "always_off"].map(str::to_owned));
    let agent = start_agent(&env, &receiver, &strs(&args));
    let finished = go_and_finish(client);
    let conns = chain::inject_connections(&finished.stdout);
    let out = finish_when_quiet(&receiver, agent, Duration::from_secs(2));

    let (sent, received) = connection_bytes(&dir.path, conns["plain"]);
    let inserted = injection::compare(&sent, &received).unwrap_or_else(|e| panic!("plain: {e}"));
    let value = inserted[0]
        .as_deref()
        .unwrap_or_else(|| panic!("no traceparent was written into an unsampled request"));
    let tp = Traceparent::parse(value).expect("valid");
    assert_eq!(tp.flags, "00", "unsampled flag in {value}");
    let (sent, received) = connection_bytes(&dir.path, conns["pipeline"]);
    let inserted = injection::compare(&sent, &received).unwrap_or_else(|e| panic!("pipeline: {e}"));
    for value in inserted.iter().flatten() {
        assert!(value.ends_with("-00"), "unsampled flag in {value}");
    }
    assert!(
        out.spans.is_empty(),
        "always_off exports nothing:\n{}",
        dump(&out.spans)
    );
    assert_eq!(
        out.exit.counter("spans_unsampled"),
        8,
        "4 requests seen at both ends; counters {:?}",
        out.exit.counters()
    );
    out.assert_clean();
}

/// The default parent-based sampler honors an unsampled caller through the
/// whole chain, and every hop still receives the context (flag 00).
#[test]
fn parent_based_sampling_honors_an_unsampled_caller() {
    let env = require_root!();
    let receiver = receiver();
    let chain = Chain::start();
    let args = agent::pid_args(&chain.pids());
    let agent = start_agent(&env, &receiver, &strs(&args));
    let own = format!("traceparent: 00-{CURL_TRACE}-{CURL_SPAN}-00");
    curl(&["-H", &own, &chain.a.url("/work/unsampled")], 200);
    // And a sampled one after it, to know when everything has been seen.
    curl(&[&chain.a.url("/work/sampled")], 200);
    let hops = chain.hops();
    let paths = vec!["/work/sampled".to_owned()];
    let out = flow::finish_when(&receiver, agent, |spans| {
        all_hops_seen(spans, &hops, &paths)
    });
    let unsampled: Vec<&ReceivedSpan> = out
        .spans
        .iter()
        .filter(|s| s.attr_str("url.path") == Some("/work/unsampled"))
        .collect();
    assert!(
        unsampled.is_empty(),
        "exported unsampled spans:\n{}",
        dump(&out.spans)
    );
    one_chain(&out, &chain, "/work/sampled", None);
    for log in [&chain.b_log, &chain.c_log] {
        let got = chain::received_for(log, "/work/unsampled").traceparents;
        assert_eq!(got.len(), 1, "{}: {got:?}", log.display());
        let tp = Traceparent::parse(&got[0]).expect("valid");
        assert_eq!(
            (tp.trace_id.as_str(), tp.flags.as_str()),
            (CURL_TRACE, "00"),
            "{}: the caller's trace, unsampled",
            log.display()
        );
    }
    assert_eq!(
        out.exit.counter("spans_unsampled"),
        5,
        "counters {:?}",
        out.exit.counters()
    );
    out.only_from(&chain.pids());
    out.assert_clean();
}
