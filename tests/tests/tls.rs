//! HTTPS and gRPC over TLS: the agent reads the plaintext at the TLS
//! library instead of the socket's ciphertext, so a TLS exchange gives the
//! same spans as a plaintext one, with `url.scheme` = `https`, and a server
//! span whose client is traced on this host is that client's child (by the
//! connection: nothing can be injected into a TLS stream). Checked with
//! exact counts for: nginx `ssl` (OpenSSL) called by curl, Python's
//! blocking `ssl`, Node's `https` and Go's crypto/tls; nginx proxying HTTPS
//! to a plaintext upstream (one chain); a Go HTTP/2 TLS server whose
//! handler fans out (nesting by goroutine); asyncio's TLS (memory BIOs)
//! under 20 concurrent requests; gRPC over TLS with grpcio (Debian's, on OpenSSL;
//! a message over one record is a counted loss) and grpc-go; an incoming
//! `traceparent` and `b3` honored by nginx and a Go server.
//! Each test prints the agent's TLS counters (`TLS <test>: ...`), with the
//! plaintext chunks and the TLS uprobe hits per request; Go's server
//! (HTTP/1.1 and HTTP/2) and client are held to their traps per request.
//!
//! Needs root, the agent binary, `openssl` (certificates are made at test
//! time), and per test nginx, Node, Go (`TRACER_GO`), Debian's grpc-go or
//! Debian's grpcio (`python3-grpcio`, on the system's OpenSSL: PyPI's wheel
//! links a stripped BoringSSL in, which is not seen); without them a test
//! prints `SKIPPED <test>: <reason>` and returns.
use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use integration_tests::{
    Protocol, ReceivedSpan, Receiver,
    agent::{self, Agent},
    apps::{self, Nginx, PyServerOpts, Server},
    fanout, flow,
    otlp_receiver::dump,
    process::Proc,
    require_root,
    skip::{self, TestEnv},
    skip_unless,
    spans::Check,
    tls::{self, Certs, TlsCounters},
    trace_tree::{self, Hop, TreeStats},
};

const SOURCE: &str = "tracer.parent.source";
/// After the traffic, how long without a new span before the checks run
/// (what is missing then is missing for good).
const QUIET: Duration = Duration::from_secs(5);

fn receiver() -> Receiver {
    Receiver::start().expect("starting the OTLP receiver")
}

fn start_agent(env: &TestEnv, receiver: &Receiver, args: &[String]) -> Agent {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match Agent::start(&env.tracer_bin, &args, receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

/// Fresh certificates, or `None` (skipped) without openssl.
fn certs(env: &TestEnv) -> Option<Certs> {
    match Certs::openssl() {
        Ok(openssl) => Some(Certs::generate(&openssl).expect("generating the test certificates")),
        Err(reason) => {
            skip::skip(&env.test, &reason);
            None
        }
    }
}

fn require_tool(env: &TestEnv, name: &str) -> bool {
    match apps::tool(name) {
        Ok(_) => true,
        Err(reason) => {
            skip::skip(&env.test, &reason);
            false
        }
    }
}

/// A line on the stderr handle, which libtest does not capture (as the
/// skip lines): the counts show in a passing run too.
fn stats_line(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Spans of `kind` from any of `pids`, by start.
fn spans_of(spans: &[ReceivedSpan], pids: &[u32], kind: &str) -> Vec<ReceivedSpan> {
    let mut found: Vec<ReceivedSpan> = spans
        .iter()
        .filter(|s| s.kind == kind && s.pid().is_some_and(|p| pids.contains(&p)))
        .cloned()
        .collect();
    found.sort_by_key(|s| s.start_ns);
    found
}

/// Exactly `n` spans of `kind` from `pids`.
fn exact(out: &flow::Outcome, pids: &[u32], kind: &str, n: usize, what: &str) -> Vec<ReceivedSpan> {
    let found = spans_of(&out.spans, pids, kind);
    assert_eq!(
        found.len(),
        n,
        "{what}: expected {n} {kind} span(s) from {pids:?}, got {}; agent counters {}; all \
         spans:\n{}",
        found.len(),
        TlsCounters::of(&out.exit),
        dump(&out.spans)
    );
    found
}

/// Waits until `wants` (pids, kind, count) all have their spans, or no span
/// came for [`QUIET`], and stops the agent.
fn finish(receiver: &Receiver, agent: Agent, wants: &[(&[u32], &str, usize)]) -> flow::Outcome {
    flow::finish_when_or_quiet(
        receiver,
        agent,
        |spans| {
            wants
                .iter()
                .all(|(pids, kind, n)| spans_of(spans, pids, kind).len() >= *n)
        },
        QUIET,
    )
}

/// Every server span is the child of a client span of its own, in its
/// trace, found by the connection; no client span has two.
fn assert_linked(out: &flow::Outcome, servers: &[ReceivedSpan], clients: &[ReceivedSpan]) {
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        clients.iter().map(|c| (c.span_id.as_str(), c)).collect();
    let mut children: BTreeMap<&str, usize> = BTreeMap::new();
    for s in servers {
        let parent = s.parent_span_id.as_deref().and_then(|p| by_id.get(p));
        Check::new(s, "server span of a traced TLS client")
            .that(
                parent.is_some_and(|p| p.trace_id == s.trace_id),
                "its parent is not one of the client spans, in its trace",
            )
            .str(SOURCE, "connection")
            .done();
        if let Some(p) = parent {
            *children.entry(p.span_id.as_str()).or_default() += 1;
        }
    }
    let doubled: Vec<_> = children.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "client spans with several server children {doubled:?}:\n{}",
        dump(&out.spans)
    );
}

/// The TLS counters every test checks: plaintext came from the probes,
/// none of it was left untied, and the ciphertext was skipped.
fn assert_tls_counters(counters: TlsCounters) {
    assert!(counters.files_probed >= 1, "{counters}");
    assert!(counters.plaintext_events > 0, "{counters}");
    assert!(counters.ciphertext_skipped > 0, "{counters}");
    assert_eq!(counters.untied, 0, "{counters}");
    assert_eq!(counters.write_unsent, 0, "{counters}");
    assert_eq!(counters.connections_unseen, 0, "{counters}");
}

/// `STATUS <code>` lines of the test clients.
fn statuses(stdout: &str) -> Vec<u16> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("STATUS "))
        .map(|s| {
            let code = s.split_whitespace().next().unwrap_or_default();
            code.parse().expect("a status code")
        })
        .collect()
}

/// A client of nginx held at `WAITING` until the agent follows it.
struct Held {
    proc: Proc,
    /// An agent log line to wait for before letting it go (its probes are
    /// in).
    wait_log: Option<String>,
}

impl Held {
    fn spawn(name: &str, cmd: Command, wait_log: impl FnOnce(u32) -> Option<String>) -> Held {
        let proc = Proc::spawn_waiting(name, cmd);
        let wait_log = wait_log(proc.pid());
        Held { proc, wait_log }
    }

    /// Waits for its log line, lets it go, and gives its output.
    fn run(self, agent: &Agent) -> integration_tests::process::Finished {
        if let Some(line) = &self.wait_log {
            assert!(
                agent.wait_log(line, Duration::from_secs(20)),
                "the agent never logged {line:?}:\n{}",
                agent.stderr()
            );
        }
        tls::release(self.proc)
    }
}

/// Who calls nginx.
enum Caller {
    /// curl, traced by `--exe curl` (the kernel selects it at exec; it is
    /// done within milliseconds), all requests on one command line.
    Curl,
    Held(Held),
}

/// nginx `ssl` answering `requests` GETs of `/hello` from `make`'s client
/// over keep-alive (or, for urllib, a connection each): one nginx server
/// span and one client span per request, both `https`, the server span the
/// child of the client span.
fn nginx_https(env: &TestEnv, requests: usize, make: impl FnOnce(&str, &Certs) -> Caller) {
    if !require_tool(env, "nginx") {
        return;
    }
    let Some(certs) = certs(env) else { return };
    let receiver = receiver();
    // Nothing listens there: /hello never reaches the backend.
    let unused = apps::free_port(false).expect("a free port");
    let nginx = Nginx::start_tls(unused, &certs.cert, &certs.key).expect("starting nginx");
    let nginx_pids = nginx.pids();
    let port = nginx.port();
    let url = tls::https_url(port, "/hello");
    let caller = make(&url, &certs);
    let mut args = agent::pid_args(&nginx_pids);
    match &caller {
        Caller::Curl => args.extend(["--exe".to_owned(), "curl".to_owned()]),
        Caller::Held(held) => args.extend(agent::pid_args(&[held.proc.pid()])),
    }
    let agent = start_agent(env, &receiver, &args);
    let cp = match caller {
        Caller::Curl => {
            let (cp, transfers) =
                tls::curl_https(&certs.ca, &vec![url.clone(); requests], &[]).expect("curl");
            for (i, t) in transfers.iter().enumerate() {
                assert_eq!(
                    (t.status, t.http_version.as_str(), t.connects),
                    (200, "1.1", u32::from(i == 0)),
                    "transfer {i}: one keep-alive connection"
                );
            }
            cp
        }
        Caller::Held(held) => {
            let finished = held.run(&agent);
            assert_eq!(statuses(&finished.stdout), vec![200; requests]);
            finished.pid
        }
    };
    let out = finish(
        &receiver,
        agent,
        &[
            (&nginx_pids, "SERVER", requests),
            (&[cp], "CLIENT", requests),
        ],
    );
    let counters = TlsCounters::report(&out.exit, &env.test, requests);

    let servers = exact(&out, &nginx_pids, "SERVER", requests, "nginx");
    let clients = exact(&out, &[cp], "CLIENT", requests, "its client");
    let port = i64::from(port);
    for s in &servers {
        Check::new(s, "nginx SERVER span")
            .name("GET /hello")
            .status("UNSET")
            .str("url.scheme", "https")
            .str("url.path", "/hello")
            .str("http.route", "/hello")
            .str("network.protocol.version", "1.1")
            .int("http.response.status_code", 200)
            .int("server.port", port)
            .str("client.address", "127.0.0.1")
            .res_str("process.executable.name", "nginx")
            .done();
    }
    for c in &clients {
        Check::new(c, "client span")
            .name("GET /hello")
            .status("UNSET")
            .str("url.scheme", "https")
            .str("url.full", &url)
            .str("network.protocol.version", "1.1")
            .int("http.response.status_code", 200)
            .int("server.port", port)
            .int("network.peer.port", port)
            .done();
    }
    assert_linked(&out, &servers, &clients);
    let mut ours = nginx_pids.clone();
    ours.push(cp);
    out.only_from(&ours);
    assert_tls_counters(counters);
    out.assert_clean();
}

#[test]
fn nginx_https_curl_keepalive() {
    let env = require_root!();
    nginx_https(&env, 3, |_, _| Caller::Curl);
}

#[test]
fn nginx_https_python_urllib() {
    let env = require_root!();
    nginx_https(&env, 3, |url, certs| {
        let cmd = tls::python_urllib_client(url, &certs.ca, 3);
        Caller::Held(Held::spawn("py-urllib", cmd, |_| None))
    });
}

#[test]
fn nginx_https_node_keepalive_agent() {
    let env = require_root!();
    if apps::which("node").is_none() {
        skip::skip(&env.test, "node is not installed");
        return;
    }
    nginx_https(&env, 3, |url, certs| {
        let cmd = tls::node_https_client(url, &certs.ca, 3);
        // node links OpenSSL in and exports it: its executable gets the
        // probes once the agent reads it.
        Caller::Held(Held::spawn("node-https", cmd, |pid| {
            Some(format!("tls: pid {pid}: "))
        }))
    });
}

#[test]
fn nginx_https_go_client() {
    let env = require_root!();
    let go = skip_unless!(env, apps::go_compiler());
    let bin = apps::go_binary(&go, "tls_client").expect("building go/tls_client");
    nginx_https(&env, 3, |url, certs| {
        let cmd = tls::go_tls_client(&bin, &certs.ca, &[url.to_owned()], 3, false);
        Caller::Held(Held::spawn("go-tls-client", cmd, |pid| {
            Some(format!("go: pid {pid}: requests followed by goroutine"))
        }))
    });
}

/// curl → nginx (HTTPS) → Python (plaintext HTTP/1.1): per request one
/// trace of four spans, each the child of the one before.
#[test]
fn nginx_https_proxy_to_plaintext_upstream() {
    const REQUESTS: usize = 3;
    let env = require_root!();
    if !require_tool(&env, "nginx") {
        return;
    }
    let Some(certs) = certs(&env) else { return };
    let receiver = receiver();
    let opts = PyServerOpts {
        env: vec![("OTEL_SERVICE_NAME".to_owned(), "py-backend".to_owned())],
        ..PyServerOpts::default()
    };
    let backend = apps::python_server(&opts).expect("starting the Python backend");
    let bp = backend.pid();
    let nginx = Nginx::start_tls(backend.port(), &certs.cert, &certs.key).expect("nginx");
    let nginx_pids = nginx.pids();
    let mut args = agent::pid_args(&nginx_pids);
    args.extend(agent::pid_args(&[bp]));
    args.extend(["--exe".to_owned(), "curl".to_owned()]);
    let agent = start_agent(&env, &receiver, &args);
    let paths: Vec<String> = (1..=REQUESTS).map(|i| format!("/users/{i}")).collect();
    let urls: Vec<String> = paths
        .iter()
        .map(|p| tls::https_url(nginx.port(), p))
        .collect();
    let (cp, transfers) = tls::curl_https(&certs.ca, &urls, &[]).expect("curl");
    assert!(transfers.iter().all(|t| t.status == 200), "{transfers:?}");
    let out = finish(
        &receiver,
        agent,
        &[
            (&[cp], "CLIENT", REQUESTS),
            (&nginx_pids, "SERVER", REQUESTS),
            (&nginx_pids, "CLIENT", REQUESTS),
            (&[bp], "SERVER", REQUESTS),
        ],
    );
    let counters = TlsCounters::report(&out.exit, &env.test, REQUESTS);

    let hops = [
        Hop::new("curl", &[cp], "CLIENT"),
        Hop::new("nginx", &nginx_pids, "SERVER"),
        Hop::new("nginx", &nginx_pids, "CLIENT"),
        Hop::new("python", &[bp], "SERVER"),
    ];
    let check = trace_tree::check_chains(&out.spans, &hops, &paths, None);
    stats_line(&format!(
        "STATS {}: {}; parent sources by hop: {:?}",
        env.test,
        check.stats,
        sources_by_hop(&check, &paths, hops.len())
    ));
    check.assert_ok(&out.spans);
    assert_eq!(
        check.stats,
        TreeStats {
            requests: REQUESTS,
            traces: REQUESTS,
            spans: 4 * REQUESTS,
            correctly_parented: 4 * REQUESTS,
            ..TreeStats::default()
        }
    );
    let backend_port = i64::from(backend.port());
    // curl starts the trace; nginx's server span is its child by the
    // connection (nothing is injected into TLS), nginx's upstream call the
    // child of the request its thread serves, and the backend's span the
    // child of the `traceparent` written into that plaintext call.
    let schemes = ["https", "https", "http", "http"];
    let sources = ["none", "connection", "thread", "injected"];
    for path in &paths {
        for (i, hop) in hops.iter().enumerate() {
            Check::new(check.span(path, i), format!("{} {}", hop.name, hop.kind))
                .name("GET /users/{id}")
                .str("url.scheme", schemes[i])
                .str(SOURCE, sources[i])
                .int("http.response.status_code", 200)
                .done();
        }
        Check::new(check.span(path, 2), "nginx CLIENT span")
            .int("server.port", backend_port)
            .done();
    }
    let mut ours = nginx_pids.clone();
    ours.extend([cp, bp]);
    out.only_from(&ours);
    assert_eq!(out.spans.len(), 4 * REQUESTS, "{}", dump(&out.spans));
    assert_tls_counters(counters);
    out.assert_clean();
}

/// `tracer.parent.source` of each hop's spans, over every request.
fn sources_by_hop(
    check: &trace_tree::ChainCheck,
    paths: &[String],
    hops: usize,
) -> Vec<BTreeMap<String, usize>> {
    (0..hops)
        .map(|i| {
            let mut sources = BTreeMap::new();
            for path in paths {
                let chain = check.chains.get(path);
                if let Some(span) = chain.and_then(|c| c.get(i)).and_then(Option::as_ref) {
                    let source = span.attr_str(SOURCE).unwrap_or("-").to_owned();
                    *sources.entry(source).or_default() += 1;
                }
            }
            sources
        })
        .collect()
}

/// Who calls the Go TLS fan-out server.
#[derive(Clone, Copy, Debug)]
enum FanCaller {
    /// `curl --http2`.
    Curl,
    /// `go/tls_client -h2` (Go's crypto/tls at both ends).
    GoClient,
}

/// The `go/fanout` front over TLS (HTTP/2 by ALPN) calling a plaintext
/// leaf: after one warm-up request (its calls get the server handler probe
/// attached), `REQUESTS` `/fanout?n=2` on one connection, each a trace of
/// the caller's span, the front's server span under it (by connection),
/// its 2 calls under that (by goroutine) and a leaf span under each call.
fn go_tls_fanout(env: &TestEnv, caller: FanCaller) {
    const REQUESTS: usize = 2;
    const FAN: usize = 2;
    let go = skip_unless!(env, apps::go_compiler());
    let Some(certs) = certs(env) else { return };
    // curl makes the warm-up request whoever calls next.
    if !require_tool(env, "curl") {
        return;
    }
    let bin = apps::go_binary(&go, "fanout").expect("building go/fanout");
    let receiver = receiver();
    let leaf = apps::go_fanout_server(&bin, None).expect("starting the leaf");
    let front = tls::go_tls_fanout(&bin, &certs, &leaf.base_url()).expect("starting the front");
    let (fp, lp) = (front.pid(), leaf.pid());
    let fan_url = tls::https_url(front.port(), &format!("/fanout?n={FAN}"));
    let urls = vec![fan_url; REQUESTS];
    let held = match caller {
        FanCaller::Curl => None,
        FanCaller::GoClient => {
            let client = apps::go_binary(&go, "tls_client").expect("building go/tls_client");
            let cmd = tls::go_tls_client(&client, &certs.ca, &urls, 1, true);
            Some(Proc::spawn_waiting("go-tls-client", cmd))
        }
    };
    let mut args = agent::pid_args(&[fp, lp]);
    match &held {
        None => args.extend(["--exe".to_owned(), "curl".to_owned()]),
        Some(proc) => args.extend(agent::pid_args(&[proc.pid()])),
    }
    let agent = start_agent(env, &receiver, &args);
    warm_up(&agent, &certs, &front);
    let cp = match held {
        None => {
            let (cp, transfers) = tls::curl_https(&certs.ca, &urls, &["--http2"]).expect("curl");
            for (i, t) in transfers.iter().enumerate() {
                assert_eq!(
                    (t.status, t.http_version.as_str(), t.connects),
                    (200, "2", u32::from(i == 0)),
                    "transfer {i}: HTTP/2 on one connection"
                );
            }
            cp
        }
        Some(proc) => {
            let finished = tls::release(proc);
            assert_eq!(statuses(&finished.stdout), vec![200; REQUESTS]);
            finished.pid
        }
    };
    // The warm-up's spans come too: 1 + FAN leaf spans.
    let out = finish(
        &receiver,
        agent,
        &[
            (&[cp], "CLIENT", REQUESTS),
            (&[fp], "SERVER", REQUESTS + 1),
            (&[lp], "SERVER", (REQUESTS + 1) * FAN),
        ],
    );
    let counters = TlsCounters::report(&out.exit, &env.test, REQUESTS + 1);

    let callers = exact(&out, &[cp], "CLIENT", REQUESTS, "caller");
    let fronts: Vec<ReceivedSpan> = spans_of(&out.spans, &[fp], "SERVER")
        .into_iter()
        .filter(|s| s.attr_str("url.path") == Some("/fanout"))
        .collect();
    assert_eq!(
        fronts.len(),
        REQUESTS,
        "front /fanout spans; counters {counters}; all spans:\n{}",
        dump(&out.spans)
    );
    for s in callers.iter().chain(&fronts) {
        Check::new(s, "caller or front span")
            .name("GET /fanout")
            .str("url.scheme", "https")
            .str("network.protocol.version", "2")
            .int("http.response.status_code", 200)
            .done();
    }
    assert_linked(&out, &fronts, &callers);
    // The measured requests' traces, without the warm-up's.
    let traces: Vec<&str> = fronts.iter().map(|s| s.trace_id.as_str()).collect();
    let measured: Vec<ReceivedSpan> = out
        .spans
        .iter()
        .filter(|s| traces.contains(&s.trace_id.as_str()))
        .cloned()
        .collect();
    let f = fanout::Fanout {
        front_pid: fp,
        leaf_pid: lp,
        front_path: "/fanout",
        call_path: "/leaf",
        fan: FAN,
    };
    let (stats, problems) = fanout::check(&measured, &f);
    stats_line(&format!("STATS {}: {stats}", env.test));
    assert!(
        problems.is_empty(),
        "{}",
        fanout::report(&env.test, &stats, &problems, &out.spans)
    );
    assert_eq!(
        stats,
        fanout::FanoutStats {
            requests: REQUESTS,
            traces: REQUESTS,
            spans: REQUESTS * (1 + 2 * FAN),
            correctly_parented: REQUESTS * 2 * FAN,
            ..fanout::FanoutStats::default()
        }
    );
    for call in measured
        .iter()
        .filter(|s| s.pid() == Some(fp) && s.is_client())
    {
        Check::new(call, "front CLIENT span")
            .str("url.scheme", "http")
            .str(SOURCE, "goroutine")
            .done();
    }
    assert_eq!(
        measured.len(),
        REQUESTS * (2 + 2 * FAN),
        "caller + front + calls + leaves"
    );
    assert_tls_counters(counters);
    out.assert_clean();
}

/// One `/nested?n=1` by curl (over TLS, HTTP/2): its call to the leaf gets
/// the front's server handler probe attached, which only later requests
/// pass. Its spans are in a trace of their own, left out of the checks.
fn warm_up(agent: &Agent, certs: &Certs, front: &Server) {
    let url = tls::https_url(front.port(), "/nested?n=1");
    let (_, transfers) = tls::curl_https(&certs.ca, &[url], &["--http2"]).expect("curl");
    assert_eq!(transfers[0].status, 200, "warm-up");
    let line = format!("go: pid {} makes outgoing calls: uprobe on", front.pid());
    if agent.wait_log(&line, Duration::from_secs(20)) {
        // The attach line is logged once the probe is in.
        std::thread::sleep(Duration::from_millis(200));
    } else {
        eprintln!("[tls] the agent never logged {line:?}: the checks below say what is missing");
    }
}

#[test]
fn go_https_h2_fanout_curl() {
    let env = require_root!();
    go_tls_fanout(&env, FanCaller::Curl);
}

#[test]
fn go_https_h2_fanout_go_client() {
    let env = require_root!();
    go_tls_fanout(&env, FanCaller::GoClient);
}

/// An incoming `traceparent` or `b3` over HTTPS is honored as over plain
/// HTTP (it is in the plaintext): nginx (OpenSSL) and a Go server
/// (crypto/tls, over HTTP/1.1 and HTTP/2) each get a request with each
/// from curl, which is not traced; every server span is in the header's
/// trace, the child of the header's span.
#[test]
fn https_servers_honor_incoming_traceparent_and_b3() {
    let env = require_root!();
    let go = skip_unless!(env, apps::go_compiler());
    if !require_tool(&env, "nginx") || !require_tool(&env, "curl") {
        return;
    }
    let Some(certs) = certs(&env) else { return };
    let bin = apps::go_binary(&go, "fanout").expect("building go/fanout");
    let receiver = receiver();
    let unused = apps::free_port(false).expect("a free port");
    let nginx = Nginx::start_tls(unused, &certs.cert, &certs.key).expect("starting nginx");
    let server = tls::go_tls_fanout(&bin, &certs, "http://127.0.0.1:9").expect("starting it");
    let mut pids = nginx.pids();
    pids.push(server.pid());
    let agent = start_agent(&env, &receiver, &agent::pid_args(&pids));
    let targets = [
        (tls::https_url(nginx.port(), "/hello"), "--http1.1"),
        (tls::https_url(server.port(), "/leaf"), "--http1.1"),
        (tls::https_url(server.port(), "/leaf"), "--http2"),
    ];
    // (trace id, parent span id) sent, one pair per request.
    let mut sent = Vec::new();
    for (url, protocol) in &targets {
        for b3 in [false, true] {
            let i = sent.len() + 1;
            let (trace, span) = (
                format!("{:032x}", 0x7ace_0000 + i),
                format!("{:016x}", 0x5a_0000 + i),
            );
            let header = if b3 {
                format!("b3: {trace}-{span}-1")
            } else {
                format!("traceparent: 00-{trace}-{span}-01")
            };
            let (_, transfers) = tls::curl_https(
                &certs.ca,
                std::slice::from_ref(url),
                &[protocol, "-H", &header],
            )
            .expect("curl");
            assert_eq!(transfers[0].status, 200, "{url} {protocol} {header}");
            sent.push((trace, span, header));
        }
    }
    let out = finish(&receiver, agent, &[(&pids, "SERVER", sent.len())]);
    let counters = TlsCounters::report(&out.exit, &env.test, sent.len());
    let servers = exact(&out, &pids, "SERVER", sent.len(), "servers");
    for (trace, span, header) in &sent {
        let found: Vec<&ReceivedSpan> = servers.iter().filter(|s| &s.trace_id == trace).collect();
        let [s] = found[..] else {
            panic!(
                "{header}: {} server spans in its trace:\n{}",
                found.len(),
                dump(&out.spans)
            );
        };
        Check::new(s, header)
            .that(
                s.parent_span_id.as_deref() == Some(span.as_str()),
                "its parent is not the header's span",
            )
            .str(SOURCE, "header")
            .str("url.scheme", "https")
            .int("http.response.status_code", 200)
            .done();
    }
    out.only_from(&pids);
    assert_tls_counters(counters);
    out.assert_clean();
}

/// A Go net/http TLS server's uprobe hits (its process alone is traced),
/// `REQUESTS` requests by curl on one kept connection with `protocol`
/// (`--http1.1`, `--http2`): a read is one trap where crypto/tls decrypts
/// a record (`readRecordOrCCS`'s RETs), however many Read calls drain it,
/// and a write call is one. Gives the TLS counters; every request's
/// server span is checked. `refused`: programs the agent is to take as
/// refused by the kernel.
fn go_https_server_hits(
    env: &TestEnv,
    protocol: &str,
    refused: &[&str],
) -> Option<(TlsCounters, String)> {
    let go = match apps::go_compiler() {
        Ok(go) => go,
        Err(reason) => {
            skip::skip(&env.test, &reason);
            return None;
        }
    };
    let certs = certs(env)?;
    if !require_tool(env, "curl") {
        return None;
    }
    let bin = apps::go_binary(&go, "fanout").expect("building go/fanout");
    let receiver = receiver();
    // Never called: /leaf answers on its own.
    let server = tls::go_tls_fanout(&bin, &certs, "http://127.0.0.1:9").expect("starting it");
    let mut args = agent::pid_args(&[server.pid()]);
    for program in refused {
        args.extend(["--fail-program".to_owned(), (*program).to_owned()]);
    }
    let agent = start_agent(env, &receiver, &args);
    let urls = vec![tls::https_url(server.port(), "/leaf"); REQUESTS];
    let (_, transfers) = tls::curl_https(&certs.ca, &urls, &[protocol]).expect("curl");
    let version = if protocol == "--http2" { "2" } else { "1.1" };
    for (i, t) in transfers.iter().enumerate() {
        assert_eq!(
            (t.status, t.http_version.as_str(), t.connects),
            (200, version, u32::from(i == 0)),
            "transfer {i}: {protocol} on one connection"
        );
    }
    let out = finish(&receiver, agent, &[(&[server.pid()], "SERVER", REQUESTS)]);
    let counters = TlsCounters::report(&out.exit, &env.test, REQUESTS);
    for s in exact(&out, &[server.pid()], "SERVER", REQUESTS, "server") {
        Check::new(&s, "server span")
            .name("GET /leaf")
            .str("url.scheme", "https")
            .str("network.protocol.version", version)
            .int("http.response.status_code", 200)
            .done();
    }
    assert_tls_counters(counters);
    out.assert_clean();
    Some((counters, out.exit.stderr))
}

/// Requests [`go_https_server_hits`] makes.
const REQUESTS: usize = 30;
/// A connection's own traps: its handshake's records (and HTTP/2's
/// preface and SETTINGS), the read that finds its end.
const CONNECTION_TRAPS: u64 = 10;

/// At most `per_request` TLS uprobe hits per request, besides the
/// connection's own.
fn assert_traps(counters: TlsCounters, per_request: u64) {
    assert!(
        counters.probe_hits <= per_request * REQUESTS as u64 + CONNECTION_TRAPS,
        "{counters}: over {per_request} uprobe hits per request for {REQUESTS} requests (and \
         {CONNECTION_TRAPS} for the connection)"
    );
}

/// Per request: the request's record, net/http's background read (its
/// record reader returns a deadline error when the handler is done) and
/// the response's write.
#[test]
fn go_https_server_http1_pays_three_traps_a_request() {
    let env = require_root!();
    if let Some((counters, _)) = go_https_server_hits(&env, "--http1.1", &[]) {
        assert_traps(counters, 3);
    }
}

/// HTTP/2: Go's server reads each frame's header and its payload in Read
/// calls of their own (4 or more a request), but they drain records: the
/// request's HEADERS, curl's WINDOW_UPDATE, the response's write.
#[test]
fn go_https_server_http2_pays_three_traps_a_request() {
    let env = require_root!();
    if let Some((counters, _)) = go_https_server_hits(&env, "--http2", &[]) {
        assert_traps(counters, 3);
    }
}

/// Without the record reader's program, Go reads fall back to Read's
/// RETs alone (one trap a read call: 3 a request over HTTP/1.1, the
/// background read's included); without that one too, to Read's entry
/// and RETs (two a read call: 5). Every span is there each time, and the
/// agent says what the reads cost.
#[test]
fn go_https_server_reads_fall_back_when_a_program_is_refused() {
    let env = require_root!();
    let record = "go_tls_record_exit";
    let read_exit = "go_tls_read_exit";
    let Some((counters, log)) = go_https_server_hits(&env, "--http1.1", &[record]) else {
        return;
    };
    assert_traps(counters, 3);
    assert!(log.contains("at Read's returns"), "{log}");
    assert!(
        log.contains("Go's TLS reads cost more uprobe traps"),
        "{log}"
    );
    let Some((counters, log)) = go_https_server_hits(&env, "--http1.1", &[record, read_exit])
    else {
        return;
    };
    assert_traps(counters, 5);
    assert!(log.contains("at Read's entry and returns"), "{log}");
}

/// A Go net/http client over TLS (HTTP/1.1, its process alone traced),
/// `REQUESTS` calls on one kept connection to the Go server: the write and
/// the response's record, one trap each, besides the client call's own
/// probe (`roundTrip`, not a TLS probe).
#[test]
fn go_https_client_pays_two_traps_a_request() {
    let env = require_root!();
    let go = skip_unless!(env, apps::go_compiler());
    let Some(certs) = certs(&env) else { return };
    let bin = apps::go_binary(&go, "fanout").expect("building go/fanout");
    let client = apps::go_binary(&go, "tls_client").expect("building go/tls_client");
    let receiver = receiver();
    let server = tls::go_tls_fanout(&bin, &certs, "http://127.0.0.1:9").expect("starting it");
    let urls = vec![tls::https_url(server.port(), "/leaf"); REQUESTS];
    let held = Proc::spawn_waiting(
        "go-tls-client",
        tls::go_tls_client(&client, &certs.ca, &urls, 1, false),
    );
    let agent = start_agent(&env, &receiver, &agent::pid_args(&[held.pid()]));
    let finished = tls::release(held);
    assert_eq!(statuses(&finished.stdout), vec![200; REQUESTS]);
    let cp = finished.pid;
    let out = finish(&receiver, agent, &[(&[cp], "CLIENT", REQUESTS)]);
    let counters = TlsCounters::report(&out.exit, &env.test, REQUESTS);
    for s in exact(&out, &[cp], "CLIENT", REQUESTS, "client") {
        Check::new(&s, "client span")
            .name("GET /leaf")
            .str("url.scheme", "https")
            .str("network.protocol.version", "1.1")
            .int("http.response.status_code", 200)
            .done();
    }
    assert_tls_counters(counters);
    out.assert_clean();
    assert_traps(counters, 2);
}

/// asyncio's TLS (`SSLObject` over memory BIOs: OpenSSL never makes a
/// syscall) at both ends, 20 requests at once on 20 connections: each
/// request's two spans present, the server's the child of the client's.
#[test]
fn python_asyncio_tls_20_concurrent() {
    const CONCURRENT: usize = 20;
    let env = require_root!();
    let Some(certs) = certs(&env) else { return };
    let receiver = receiver();
    let server = tls::asyncio_server(&certs).expect("starting the asyncio server");
    let sp = server.pid();
    let client = Proc::spawn_waiting(
        "asyncio-client",
        tls::asyncio_client(server.port(), &certs.ca, CONCURRENT),
    );
    let cp = client.pid();
    let agent = start_agent(&env, &receiver, &agent::pid_args(&[sp, cp]));
    let finished = tls::release(client);
    assert!(
        finished
            .stdout
            .contains(&format!("RESULT ok={CONCURRENT} failed=0")),
        "{}",
        finished.stdout
    );
    let out = finish(
        &receiver,
        agent,
        &[(&[sp], "SERVER", CONCURRENT), (&[cp], "CLIENT", CONCURRENT)],
    );
    let counters = TlsCounters::report(&out.exit, &env.test, CONCURRENT);

    let paths: Vec<String> = (0..CONCURRENT).map(|i| format!("/req/{i}")).collect();
    let hops = [
        Hop::new("client", &[cp], "CLIENT"),
        Hop::new("server", &[sp], "SERVER"),
    ];
    let check = trace_tree::check_chains(&out.spans, &hops, &paths, None);
    stats_line(&format!("STATS {}: {}", env.test, check.stats));
    check.assert_ok(&out.spans);
    assert_eq!(
        check.stats,
        TreeStats {
            requests: CONCURRENT,
            traces: CONCURRENT,
            spans: 2 * CONCURRENT,
            correctly_parented: 2 * CONCURRENT,
            ..TreeStats::default()
        }
    );
    for s in &out.spans {
        Check::new(s, "asyncio span")
            .name("GET /req/{id}")
            .str("url.scheme", "https")
            .int("http.response.status_code", 200)
            .done();
    }
    out.only_from(&[sp, cp]);
    assert_eq!(out.spans.len(), 2 * CONCURRENT);
    assert_tls_counters(counters);
    out.assert_clean();
}

/// Debian's grpcio (`python3-grpcio`, installed by `cargo xtask setup`):
/// unlike PyPI's wheel, which links BoringSSL in and strips it, it links
/// the system's libssl.so.3, so its TLS goes through OpenSSL's API. `None`
/// (skipped) when the package is not there.
fn debian_grpcio(env: &TestEnv) -> Option<()> {
    let out = Command::new(apps::python3())
        .args(["-c", "import grpc; print(grpc.__file__)"])
        .env_remove("PYTHONPATH")
        .output()
        .expect("running python3");
    if !out.status.success() {
        skip::skip(
            &env.test,
            "Debian's python3-grpcio is not installed (run `cargo xtask test`)",
        );
        return None;
    }
    let module = String::from_utf8_lossy(&out.stdout);
    assert!(
        module.starts_with("/usr/lib/python3/dist-packages/"),
        "grpc loads from {module:?}, not from Debian's python3-grpcio"
    );
    Some(())
}

/// Whether the process `pid` has the system's libssl.so.3 mapped.
fn maps_system_libssl(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .is_ok_and(|maps| maps.lines().any(|l| l.ends_with("/libssl.so.3")))
}

/// grpc_echo.py on Debian's grpcio: with no PYTHONPATH, so that the PyPI
/// grpcio the other tests use does not come first.
fn grpc_echo(args: &[&str], tls_files: &[(&str, &Path)]) -> Command {
    let mut cmd = integration_tests::chain::python("grpc_echo.py");
    cmd.args(args).env_remove("PYTHONPATH");
    for (flag, file) in tls_files {
        cmd.arg(flag).arg(file);
    }
    cmd
}

/// Calls per (span name, gRPC status code).
fn by_call(spans: &[ReceivedSpan]) -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::new();
    for s in spans {
        let code = s.attr_int("rpc.grpc.status_code").unwrap_or(-1);
        *out.entry((s.name.clone(), code)).or_default() += 1;
    }
    out
}

/// grpc_echo.py's server started by `cmd`, and the port it listens on.
fn grpc_echo_server(name: &str, cmd: Command) -> (Proc, u16) {
    let server = Proc::spawn(name, cmd, true).expect("starting grpcio");
    let Some(port) = server
        .stdout
        .wait_port("LISTENING ", Duration::from_secs(30))
    else {
        panic!("the grpcio server did not listen: {}", server.stdout.text());
    };
    (server, port)
}

/// What a grpcio TLS run gave: the spans, the two processes, the counters.
struct GrpcioRun {
    out: flow::Outcome,
    client: u32,
    server: u32,
    counters: TlsCounters,
}

impl GrpcioRun {
    /// The server's SERVER spans and the client's CLIENT spans.
    fn ends(&self) -> (Vec<ReceivedSpan>, Vec<ReceivedSpan>) {
        (
            spans_of(&self.out.spans, &[self.server], "SERVER"),
            spans_of(&self.out.spans, &[self.client], "CLIENT"),
        )
    }

    /// The counters and every span, for a failed assertion.
    fn context(&self) -> String {
        format!(
            "counters {}; all spans:\n{}",
            self.counters,
            dump(&self.out.spans)
        )
    }
}

/// Runs Debian's grpcio server and client with SSL credentials at both
/// ends, the client with `client_args`, making `calls` calls that all
/// succeed; waits until `spans` spans came from each end (or for quiet).
/// `None`: skipped.
fn grpcio_tls_run(
    env: &TestEnv,
    client_args: &[&str],
    calls: usize,
    spans: usize,
) -> Option<GrpcioRun> {
    debian_grpcio(env)?;
    let certs = certs(env)?;
    let receiver = receiver();
    let server_cmd = grpc_echo(
        &["server"],
        &[("--cert", &certs.cert), ("--key", &certs.key)],
    );
    let (server, port) = grpc_echo_server("grpc-tls-server", server_cmd);
    // What the tests are about: grpcio's TLS through the shared libssl.
    assert!(
        maps_system_libssl(server.pid()),
        "the grpcio server does not map the system's libssl.so.3"
    );
    let agent = start_agent(env, &receiver, &["--port".to_owned(), port.to_string()]);
    let target = format!("127.0.0.1:{port}");
    let mut args = vec!["client", &target];
    args.extend_from_slice(client_args);
    let client_cmd = grpc_echo(&args, &[("--ca", &certs.ca)]);
    let finished = apps::run("grpc-tls-client", client_cmd).expect("the grpcio client");
    assert!(
        finished
            .stdout
            .contains(&format!("RESULT ok={calls} failed=0")),
        "{}",
        finished.stdout
    );
    let (client, server) = (finished.pid, server.pid());
    let out = finish(
        &receiver,
        agent,
        &[(&[server], "SERVER", spans), (&[client], "CLIENT", spans)],
    );
    let counters = TlsCounters::report(&out.exit, &env.test, calls);
    Some(GrpcioRun {
        out,
        client,
        server,
        counters,
    })
}

/// grpcio (gRPC's C core, as Debian packages it: on the system's OpenSSL,
/// through memory BIOs) with SSL credentials at both ends, on one
/// connection: 10 unary calls one after another (one NOT_FOUND), 20 at
/// once (two NOT_FOUND), and one of each streaming kind: a span per call
/// per end, each server span the child of its client span.
#[test]
fn grpcio_over_tls() {
    const SEQUENTIAL: usize = 10;
    const CONCURRENT: usize = 20;
    let env = require_root!();
    let calls = SEQUENTIAL + CONCURRENT + 3;
    let args = [
        "--sequential",
        &SEQUENTIAL.to_string(),
        "--concurrent",
        &CONCURRENT.to_string(),
    ]
    .map(str::to_owned);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(run) = grpcio_tls_run(&env, &args, calls, calls) else {
        return;
    };
    let out = &run.out;
    // One in ten asks for a greeting that is not there (NOT_FOUND, 5).
    let missing = SEQUENTIAL / 10 + CONCURRENT / 10;
    let mut want = BTreeMap::from([
        (
            ("demo.Echo/Say".to_owned(), 0),
            SEQUENTIAL + CONCURRENT - missing,
        ),
        (("demo.Echo/Say".to_owned(), 5), missing),
    ]);
    for m in ["Count", "Collect", "Chat"] {
        want.insert((format!("demo.Echo/{m}"), 0), 1);
    }
    let (servers, clients) = run.ends();
    let context = || run.context();
    assert_eq!(by_call(&clients), want, "client spans; {}", context());
    assert_eq!(by_call(&servers), want, "server spans; {}", context());
    for s in &out.spans {
        // RPC spans carry no url.scheme: the TLS shows only in that they
        // are there at all.
        Check::new(s, "grpcio span")
            .str("rpc.system", "grpc")
            .str("rpc.service", "demo.Echo")
            .done();
    }
    assert_linked(out, &servers, &clients);
    assert_eq!(out.spans.len(), 2 * calls, "no other spans");
    assert_tls_counters(run.counters);
    out.assert_clean();
}

/// A known loss, counted: gRPC's C core seals a message over one TLS record
/// (16 KiB) in several SSL_write calls into its memory BIO, then sends them
/// in one socket write. Only the last call's plaintext is kept for that
/// write; the others are counted in `drop_tls_write_unsent`, never silent,
/// and the agent goes on. The 3 calls before the 64 KiB one keep their
/// spans at both ends.
#[test]
fn grpcio_over_tls_loses_a_large_message_countably() {
    const BEFORE: usize = 3;
    let env = require_root!();
    let args = ["--sequential", "3", "--big-kib", "64"];
    // The 3 calls, the large one, the 3 streaming ones.
    let calls = BEFORE + 1 + 3;
    let Some(run) = grpcio_tls_run(&env, &args, calls, BEFORE) else {
        return;
    };
    let out = &run.out;
    let (servers, clients) = run.ends();
    let context = || run.context();
    let first = BTreeMap::from([(("demo.Echo/Say".to_owned(), 0), BEFORE)]);
    let before = |spans: &[ReceivedSpan]| {
        let mut s = spans.to_vec();
        s.sort_by_key(|s| s.start_ns);
        s.truncate(BEFORE);
        by_call(&s)
    };
    assert_eq!(before(&clients), first, "client spans; {}", context());
    assert_eq!(before(&servers), first, "server spans; {}", context());
    assert!(
        run.counters.write_unsent > 0,
        "the lost writes are not counted; {}",
        context()
    );
    assert!(
        out.exit.status.success() && !out.exit.counters().is_empty(),
        "the agent did not exit cleanly: {}",
        out.exit.stderr
    );
}

/// grpcio from PyPI links BoringSSL in and strips it: there is nothing to
/// probe, and its TLS is not seen. The agent must say so rather than stay
/// silent: each end's connection is counted in `tls_connections_unseen`,
/// and each process is named once in a warning; no span, no drop.
#[test]
fn grpcio_wheel_over_tls_is_said_to_be_unseen() {
    let env = require_root!();
    let Some(packages) = std::env::var_os("TRACER_PYTHONPATH").filter(|d| !d.is_empty()) else {
        skip::skip(
            &env.test,
            "TRACER_PYTHONPATH is not set (run `cargo xtask test`)",
        );
        return;
    };
    // What the test is about: PyPI's grpcio, not Debian's. (The process
    // maps the system's libssl all the same, for Python's own `ssl`; grpcio
    // does not call it.)
    let module = Command::new(apps::python3())
        .args(["-c", "import grpc; print(grpc.__file__)"])
        .env("PYTHONPATH", &packages)
        .output()
        .expect("running python3");
    assert!(
        Path::new(String::from_utf8_lossy(&module.stdout).trim()).starts_with(&packages),
        "grpc does not load from {packages:?}: {}",
        String::from_utf8_lossy(&module.stderr)
    );
    let Some(certs) = certs(&env) else { return };
    let receiver = receiver();
    let mut server_cmd = grpc_echo(
        &["server"],
        &[("--cert", &certs.cert), ("--key", &certs.key)],
    );
    server_cmd.env("PYTHONPATH", &packages);
    let (server, port) = grpc_echo_server("grpc-wheel-server", server_cmd);
    let agent = start_agent(&env, &receiver, &["--port".to_owned(), port.to_string()]);
    let target = format!("127.0.0.1:{port}");
    let mut client_cmd = grpc_echo(
        &["client", &target, "--sequential", "3"],
        &[("--ca", &certs.ca)],
    );
    client_cmd.env("PYTHONPATH", &packages);
    let finished = apps::run("grpc-wheel-client", client_cmd).expect("the grpcio client");
    assert!(
        finished.stdout.contains("RESULT ok=6 failed=0"),
        "{}",
        finished.stdout
    );
    let (cp, sp) = (finished.pid, server.pid());
    // The server closes its end once the client is gone.
    std::thread::sleep(Duration::from_secs(2));
    let out = finish(&receiver, agent, &[]);
    let counters = TlsCounters::report(&out.exit, &env.test, 6);
    let ours: Vec<_> = out
        .spans
        .iter()
        .filter(|s| s.pid().is_some_and(|p| p == cp || p == sp))
        .collect();
    assert!(ours.is_empty(), "spans from unseen TLS: {ours:?}");
    assert_eq!(counters.connections_unseen, 2, "{counters}");
    for pid in [cp, sp] {
        let said = format!("tls: pid {pid} (");
        assert_eq!(
            out.exit.stderr.matches(&said).count(),
            1,
            "the agent does not name pid {pid} once:\n{}",
            out.exit.stderr
        );
    }
    out.assert_clean();
}

/// grpc-go (Debian's 1.33) with TLS credentials at both ends (Go's
/// crypto/tls): 5 unary Check calls on one connection, a span per call per
/// end, each server span the child of its client span.
#[test]
fn grpc_go_over_tls() {
    const CALLS: usize = 5;
    const CHECK: &str = "grpc.health.v1.Health/Check";
    let env = require_root!();
    let go = skip_unless!(env, apps::go_compiler());
    skip_unless!(env, apps::go_debian_libs());
    let Some(certs) = certs(&env) else { return };
    let server_bin = apps::go_binary(&go, "grpc_server").expect("building go/grpc_server");
    let client_bin = apps::go_binary(&go, "grpc_client").expect("building go/grpc_client");
    let receiver = receiver();
    let server = tls::go_grpc_tls_server(&server_bin, &certs).expect("starting grpc_server");
    let sp = server.pid();
    let mut cmd = apps::go_grpc_client(&client_bin, server.addr, apps::GrpcCall::CheckOk, CALLS);
    cmd.arg("-ca").arg(&certs.ca).arg("-wait");
    let held = Held::spawn("grpc-tls-client", cmd, |pid| {
        Some(format!("go: pid {pid}: requests followed by goroutine"))
    });
    let agent = start_agent(&env, &receiver, &agent::pid_args(&[sp, held.proc.pid()]));
    let finished = held.run(&agent);
    assert_eq!(finished.stdout.matches("CHECK ok SERVING").count(), CALLS);
    let cp = finished.pid;
    let out = finish(
        &receiver,
        agent,
        &[(&[sp], "SERVER", CALLS), (&[cp], "CLIENT", CALLS)],
    );
    let counters = TlsCounters::report(&out.exit, &env.test, CALLS);

    let servers = exact(&out, &[sp], "SERVER", CALLS, "grpc_server");
    let clients = exact(&out, &[cp], "CLIENT", CALLS, "grpc_client");
    for s in servers.iter().chain(&clients) {
        Check::new(s, "grpc-go span")
            .name(CHECK)
            .str("rpc.system", "grpc")
            .int("rpc.grpc.status_code", 0)
            .done();
    }
    assert_linked(&out, &servers, &clients);
    out.only_from(&[sp, cp]);
    assert_tls_counters(counters);
    out.assert_clean();
}
