//! Go HTTP/2 and gRPC middle tiers: a handler runs in a goroutine the
//! connection's goroutine starts, so its calls are found through the
//! server handler probe, attached to a Go process once it makes an outgoing
//! call. Checked per incoming call: the caller's span is the parent of the
//! middle tier's server span, which is the parent of every call its handler
//! made, each the parent of the downstream server span that answered it:
//! one trace, nothing cross-linked, also with 20 concurrent calls on one
//! HTTP/2 connection. For grpc-go (Debian's 1.33), net/http's bundled
//! HTTP/2 server (h2c, Go 1.24+) and golang.org/x/net/http2 (h2c), with
//! every Go version under test. A leaf server never gets the probe: 0 hits.
//!
//! Every test needs root, the agent binary (`TRACER_BIN`), Go toolchains
//! (`TRACER_GO_VERSIONS`) and Debian's grpc-go and x/net; without them it
//! prints `SKIPPED <test>: <reason>` and returns.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration_tests::{
    Protocol, ReceivedSpan, Receiver,
    agent::Agent,
    apps::{self, GrpcCall, GrpcMiddle},
    fanout, flow,
    otlp_receiver::dump,
    process::Proc,
    require_root,
    skip::TestEnv,
    skip_unless,
};

const CHECK: &str = "grpc.health.v1.Health/Check";
/// Downstream gRPC calls per incoming request, and HTTP ones.
const GRPC_CALLS: usize = 5;
const HTTP_CALLS: usize = 1;
const CONCURRENT: usize = 20;

/// The agent on `pids`, and on processes running `client` (the clients,
/// started later and let go once the agent follows them: see [`run`]).
fn start_agent(env: &TestEnv, receiver: &Receiver, pids: &[u32], client: &Path) -> Agent {
    let mut args: Vec<String> = pids
        .iter()
        .flat_map(|p| ["--pid".to_owned(), p.to_string()])
        .collect();
    let name = client.file_name().and_then(|n| n.to_str()).expect("a name");
    args.extend(["--exe".to_owned(), name.to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match Agent::start(&env.tracer_bin, &args, receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

fn build(go: &Path, version: &str, program: &str) -> PathBuf {
    apps::go_program(go, version, program, false)
        .unwrap_or_else(|e| panic!("building {program} with Go {version}: {e:#}"))
}

/// Runs a client command (`-wait` appended) to completion once the agent
/// follows it, from its first byte and with its uprobes in; panics on
/// failure.
fn run(agent: &Agent, mut cmd: Command) {
    cmd.arg("-wait");
    let mut client = Proc::spawn_waiting("client", cmd);
    let pid = client.pid();
    assert!(
        agent.wait_log(
            &format!("go: pid {pid}: requests followed by goroutine"),
            Duration::from_secs(20)
        ),
        "client {pid} not followed:\n{}",
        agent.stderr()
    );
    client.write_stdin("go\n").expect("letting the client go");
    let out = client
        .finish(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("client: {e:#}"));
    assert!(out.status.success(), "client failed: {}", out.stderr);
}

/// The first incoming call made the middle tier call out: the agent then
/// attaches its server probe, which only later requests pass.
fn wait_for_probe(agent: &Agent, pid: u32) {
    assert!(
        agent.wait_log(
            &format!("go: pid {pid} makes outgoing calls: uprobe on"),
            Duration::from_secs(20)
        ),
        "no server probe on pid {pid}:\n{}",
        agent.stderr()
    );
    // The attach line is logged once the probe is in.
    std::thread::sleep(Duration::from_millis(200));
}

/// One downstream service of the middle tier.
struct Downstream {
    pid: u32,
    /// `url.path` or, for RPC spans, the span name.
    call: &'static str,
    /// Calls per incoming request.
    count: usize,
}

/// What [`check`] counted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Incoming calls looked at (caller client spans).
    requests: usize,
    traces: usize,
    spans: usize,
    correctly_parented: usize,
    wrongly_parented: usize,
    cross_linked: usize,
    /// gRPC calls missing from their request's trace: their HEADERS went
    /// out before the call's uprobe ran, so they started new traces
    /// (counted by the agent as `go_grpc_stream_late`; never a wrong
    /// parent).
    late: usize,
}

fn call_of(s: &ReceivedSpan) -> &str {
    s.attr_str("url.path").unwrap_or(&s.name)
}

/// Each of `callers`' client spans (one per incoming call) must have in its
/// trace exactly: the middle tier's server span as its child; under that,
/// the calls to each downstream; under each call, that downstream's server
/// span; nothing else, and no parent outside the trace.
fn check(
    spans: &[ReceivedSpan],
    callers: &[u32],
    middle: u32,
    downstream: &[Downstream],
) -> (Counts, Vec<String>) {
    let mut counts = Counts::default();
    let mut problems = Vec::new();
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let children = |parent: &ReceivedSpan| -> Vec<&ReceivedSpan> {
        spans
            .iter()
            .filter(|s| s.parent_span_id.as_deref() == Some(parent.span_id.as_str()))
            .collect()
    };
    let incoming: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.is_client() && s.pid().is_some_and(|p| callers.contains(&p)))
        .collect();
    counts.requests = incoming.len();
    counts.traces = incoming
        .iter()
        .map(|s| s.trace_id.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    let per_request = 2 + 2 * downstream.iter().map(|d| d.count).sum::<usize>();
    for caller in incoming {
        let trace: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.trace_id == caller.trace_id)
            .collect();
        counts.spans += trace.len();
        let mut missing = 0;
        for s in &trace {
            if let Some(p) = s.parent_span_id.as_deref()
                && by_id.get(p).is_none_or(|p| p.trace_id != s.trace_id)
                && s.span_id != caller.span_id
            {
                counts.cross_linked += 1;
                problems.push(format!("{s}: parent {p} not in its trace"));
            }
        }
        let servers: Vec<&ReceivedSpan> = children(caller)
            .into_iter()
            .filter(|s| s.is_server() && s.pid() == Some(middle))
            .collect();
        let [server] = servers[..] else {
            counts.wrongly_parented += 1;
            problems.push(format!(
                "{caller}: {} middle-tier server children",
                servers.len()
            ));
            continue;
        };
        counts.correctly_parented += 1;
        let calls = children(server);
        for d in downstream {
            let made: Vec<&&ReceivedSpan> = calls
                .iter()
                .filter(|c| c.is_client() && c.pid() == Some(middle) && call_of(c) == d.call)
                .collect();
            counts.correctly_parented += made.len().min(d.count);
            if made.len() < d.count && d.call == CHECK {
                missing += d.count - made.len();
            } else if made.len() != d.count {
                counts.wrongly_parented += d.count.abs_diff(made.len());
                problems.push(format!(
                    "{server}: {} calls to {} under it, expected {}",
                    made.len(),
                    d.call,
                    d.count
                ));
            }
            for call in made {
                let answered: Vec<&ReceivedSpan> = children(call)
                    .into_iter()
                    .filter(|s| s.is_server() && s.pid() == Some(d.pid))
                    .collect();
                if answered.len() == 1 {
                    counts.correctly_parented += 1;
                } else {
                    counts.wrongly_parented += 1;
                    problems.push(format!(
                        "{call}: {} downstream server children",
                        answered.len()
                    ));
                }
            }
        }
        counts.late += missing;
        if trace.len() != per_request - 2 * missing {
            problems.push(format!(
                "{caller}: {} spans in its trace, expected {}",
                trace.len(),
                per_request - 2 * missing
            ));
        }
    }
    (counts, problems)
}

/// `check`, and every count as expected for `requests` incoming calls
/// (after one warm-up call that made `warm_up_calls` gRPC calls before the
/// probe was attached: new traces).
#[expect(
    clippy::too_many_arguments,
    reason = "each case differs in all of them"
)]
fn assert_nested(
    test: &str,
    what: &str,
    out: &flow::Outcome,
    callers: &[u32],
    middle: u32,
    downstream: &[Downstream],
    requests: usize,
    warm_up_calls: usize,
) {
    let (spans, exit) = (&out.spans[..], &out.exit);
    let (counts, problems) = check(spans, callers, middle, downstream);
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "STATS {test} {what}: {counts:?}");
    let per_request = 2 + 2 * downstream.iter().map(|d| d.count).sum::<usize>();
    assert!(
        problems.is_empty(),
        "{}",
        fanout::report(what, &format!("{counts:?}"), &problems, spans)
    );
    let late = counts.late;
    assert_eq!(
        counts,
        Counts {
            requests,
            traces: requests,
            spans: requests * per_request - 2 * late,
            correctly_parented: requests * (per_request - 1) - 2 * late,
            late,
            ..Counts::default()
        },
        "{what}"
    );
    // Only gRPC calls the agent counted as late may be missing (the
    // warm-up's calls may be late too), each the root of a trace of its own
    // with its downstream span.
    assert!(
        late as u64 <= exit.counter("go_grpc_stream_late"),
        "{what}: {late} late calls, the agent counted {}",
        exit.counter("go_grpc_stream_late")
    );
    let roots = spans
        .iter()
        .filter(|s| s.is_client() && s.pid() == Some(middle) && s.name == CHECK)
        .filter(|s| s.parent_span_id.is_none())
        .count();
    assert_eq!(
        roots,
        warm_up_calls + late,
        "{what}: gRPC calls that are roots"
    );
}

/// The probe's own counters: one hit per incoming request that passed it,
/// each read its caller's header, none failed.
fn assert_hits(exit: &integration_tests::agent::AgentExit, what: &str, requests: usize) {
    let hits = exit.counter("go_server_probe_hits");
    eprintln!("STATS {what}: go_server_probe_hits={hits} for {requests} requests");
    assert_eq!(hits, requests as u64, "{what}: probe hits");
    assert_eq!(
        exit.counter("go_server_stream_header"),
        requests as u64,
        "{what}: headers read"
    );
    assert_eq!(exit.counter("go_server_stream_failed"), 0, "{what}");
    assert_eq!(exit.counter("go_server_context_conflicts"), 0, "{what}");
}

/// One `go/grpc_middle` run: a gRPC leaf and an HTTP leaf (Python), the
/// middle tier calling them (`grpc_calls` gRPC calls and one HTTP call per
/// request), the agent on all three and on `client_bin`'s processes; then
/// `client(middle, n, concurrent)` run once (the
/// warm-up: its calls get the probe attached), 3 times, and 20 times at
/// once. Checks what every run checks and gives back the outcome.
struct MiddleRun {
    out: flow::Outcome,
    mid: u32,
    requests: usize,
}

fn run_middle(
    env: &TestEnv,
    what: &str,
    (middle_bin, leaf_bin): (&Path, &Path),
    grpc_calls: usize,
    client_bin: &Path,
    client: &dyn Fn(&GrpcMiddle, usize, bool) -> Command,
    call: &str,
) -> MiddleRun {
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let leaf = apps::go_grpc_server(leaf_bin).expect("starting the gRPC leaf");
    let py = apps::python_server(&apps::PyServerOpts::default()).expect("python server");
    let mut middle = GrpcMiddle::start(
        middle_bin,
        leaf.addr,
        &py.url("/users/7"),
        grpc_calls,
        HTTP_CALLS,
    )
    .expect("starting the middle tier");
    let mid = middle.server.pid();
    let servers = [leaf.pid(), py.pid(), mid];
    let agent = start_agent(env, &receiver, &servers, client_bin);
    apps::connect_grpc_fanout(&mut middle.server).expect("middle tier dials the leaf");
    run(&agent, client(&middle, 1, false));
    wait_for_probe(&agent, mid);
    let before = receiver.spans().len();
    run(&agent, client(&middle, 3, false));
    run(&agent, client(&middle, CONCURRENT, true));
    let requests = 3 + CONCURRENT;
    let per_request = 2 + 2 * (grpc_calls + HTTP_CALLS);
    let out = flow::finish_at(&receiver, agent, before + requests * per_request);
    let log = &out.exit.stderr;
    assert!(
        !log.contains(&format!("go: pid {} makes outgoing calls", leaf.pid())),
        "the leaf got the probe:\n{log}"
    );
    let callers = measured_callers(&out.spans, call, &servers);
    assert_nested(
        &env.test,
        what,
        &out,
        &callers,
        mid,
        &[
            Downstream {
                pid: leaf.pid(),
                call: CHECK,
                count: grpc_calls,
            },
            Downstream {
                pid: py.pid(),
                call: "/users/7",
                count: HTTP_CALLS,
            },
        ],
        requests,
        grpc_calls,
    );
    assert_hits(&out.exit, what, requests);
    MiddleRun { out, mid, requests }
}

/// A Go gRPC middle tier (grpc-go) whose handler makes 5 gRPC calls and 1
/// HTTP call, called 3 times one after another and then 20 times at once
/// over one connection, with every Go version under test: one trace per
/// incoming call, every call under the request that made it. The gRPC
/// leaf, which makes no calls, never gets the probe.
#[test]
fn grpc_middle_tier_nests_its_handlers_calls() {
    let env = require_root!();
    skip_unless!(env, apps::go_debian_libs());
    let versions = skip_unless!(env, apps::go_versions());
    let (first, go) = &versions[0];
    let leaf_bin = build(go, first, "grpc_server");
    let client_bin = build(go, first, "grpc_client");
    let client = |middle: &GrpcMiddle, n: usize, concurrent: bool| {
        let mut cmd = apps::go_grpc_client(&client_bin, middle.server.addr, GrpcCall::CheckOk, n);
        if concurrent {
            cmd.arg("-concurrent");
        }
        cmd
    };
    for (version, go) in &versions {
        let middle_bin = build(go, version, "grpc_middle");
        let run = run_middle(
            &env,
            &format!("grpc-go Go {version}"),
            (&middle_bin, &leaf_bin),
            GRPC_CALLS,
            &client_bin,
            &client,
            CHECK,
        );
        run.out.assert_clean();
    }
}

/// The same through HTTP/2 servers: golang.org/x/net/http2 (h2c, every Go
/// under test) and net/http's bundled one (h2c, Go 1.24+). 3 requests one
/// after another, then 20 concurrent streams of one connection; `http.route`
/// from ServeMux's pattern where Go has it (1.23+).
#[test]
fn http2_middle_tiers_nest_their_handlers_calls() {
    let env = require_root!();
    skip_unless!(env, apps::go_debian_libs());
    let versions = skip_unless!(env, apps::go_versions());
    let (first, go) = &versions[0];
    let leaf_bin = build(go, first, "grpc_server");
    let client_bin = build(go, first, "h2c_client");
    let h2c = |url: &str, n: usize, concurrent: bool| {
        apps::go_h2c_client(&client_bin, &[url], n, concurrent)
    };
    for (version, go) in &versions {
        // x/net: grpc_middle's /work/7 over h2c.
        let middle_bin = build(go, version, "grpc_middle");
        let what = format!("x/net/http2 Go {version}");
        let MiddleRun { out, mid, requests } = run_middle(
            &env,
            &what,
            (&middle_bin, &leaf_bin),
            2,
            &client_bin,
            &|m, n, concurrent| h2c(&m.work_url(), n, concurrent),
            "/work/7",
        );
        // Requests that passed the probe take their route from ServeMux's
        // pattern (Go 1.23+); the warm-up's is templated from its path.
        let (pattern, templated) = if minor(version) >= 23 {
            (requests, 1)
        } else {
            (0, requests + 1)
        };
        let expected: BTreeMap<String, usize> = [("/work/", pattern), ("/work/{id}", templated)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.to_owned(), n))
            .collect();
        assert_eq!(routes_of(&out.spans, mid), expected, "{what}: routes");
        assert_eq!(out.exit.counter("go_routes_read"), pattern as u64, "{what}");
        out.assert_clean();
    }
    // Stripped too: the standard library's members then come from the
    // offsets table of its Go release.
    let std_versions = skip_unless!(env, apps::go_versions_since(24));
    for ((version, go), stripped) in std_versions.iter().flat_map(|v| [(v, false), (v, true)]) {
        let bin = apps::go_program(go, version, "h2std", stripped)
            .unwrap_or_else(|e| panic!("building h2std with Go {version}: {e:#}"));
        let receiver = Receiver::start().expect("starting the OTLP receiver");
        let apps = apps::Fanout::start(&bin, &bin).expect("starting the h2std servers");
        let (front, leaf) = (apps.front.pid(), apps.leaf.pid());
        let agent = start_agent(&env, &receiver, &[front, leaf], &client_bin);
        let url = apps.front.url("/serial?n=2");
        run(&agent, h2c(&url, 1, false));
        wait_for_probe(&agent, front);
        let before = receiver.spans().len();
        run(&agent, h2c(&url, 3, false));
        run(&agent, h2c(&url, CONCURRENT, true));
        // A route with a ServeMux wildcard.
        run(&agent, h2c(&apps.front.url("/things/abc"), 1, false));
        let requests = 3 + CONCURRENT;
        let out = flow::finish_at(&receiver, agent, before + requests * (2 + 2 * 2) + 2);
        let callers = measured_callers(&out.spans, "/serial", &[front, leaf]);
        let what = format!(
            "net/http bundled HTTP/2 Go {version}{}",
            if stripped { " stripped" } else { "" }
        );
        let routes = routes_of(&out.spans, front);
        assert_eq!(routes.get("/things/{name}"), Some(&1), "{what}: {routes:?}");
        assert_eq!(
            routes.get("/serial"),
            Some(&(requests + 1)),
            "{what}: {routes:?}"
        );
        assert_eq!(
            out.exit.counter("go_routes_read"),
            requests as u64 + 1,
            "{what}"
        );
        assert_eq!(out.exit.counter("go_routes_unread"), 0, "{what}");
        assert_nested(
            &env.test,
            &what,
            &out,
            &callers,
            front,
            &[Downstream {
                pid: leaf,
                call: "/leaf",
                count: 2,
            }],
            requests,
            0,
        );
        // The /things request passed the probe too.
        assert_hits(&out.exit, &what, requests + 1);
        out.assert_clean();
    }
}

/// `http.route` of `pid`'s server spans, counted.
fn routes_of(spans: &[ReceivedSpan], pid: u32) -> BTreeMap<String, usize> {
    let mut routes = BTreeMap::new();
    for s in spans
        .iter()
        .filter(|s| s.is_server() && s.pid() == Some(pid))
    {
        let route = s.attr_str("http.route").unwrap_or("-").to_owned();
        *routes.entry(route).or_default() += 1;
    }
    routes
}

/// 25 of `1.25.5`.
fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The client processes that called `path` more than once: the measured
/// ones (the first made one call, which only got the probe attached, and
/// may have gone by before the agent selected its process).
fn measured_callers(spans: &[ReceivedSpan], path: &str, servers: &[u32]) -> Vec<u32> {
    let mut calls: BTreeMap<u32, usize> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.is_client() && call_of(s) == path) {
        if let Some(pid) = s.pid().filter(|p| !servers.contains(p)) {
            *calls.entry(pid).or_default() += 1;
        }
    }
    let callers: Vec<u32> = calls
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(callers.len(), 2, "client processes: {callers:?}");
    callers
}

/// A stripped grpc-go middle tier (no DWARF: grpc-go's layout is not
/// guessed): no server probe, a log line saying why, and its handler's
/// calls start new traces, as before.
#[test]
fn stripped_grpc_middle_tier_keeps_new_traces() {
    let env = require_root!();
    skip_unless!(env, apps::go_debian_libs());
    let versions = skip_unless!(env, apps::go_versions());
    let (version, go) = &versions[0];
    let leaf_bin = build(go, version, "grpc_server");
    let client_bin = build(go, version, "grpc_client");
    let middle_bin = apps::go_program(go, version, "grpc_middle", true)
        .unwrap_or_else(|e| panic!("building a stripped grpc_middle: {e:#}"));
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let leaf = apps::go_grpc_server(&leaf_bin).expect("starting the gRPC leaf");
    let py = apps::python_server(&apps::PyServerOpts::default()).expect("python server");
    let mut middle = GrpcMiddle::start(&middle_bin, leaf.addr, &py.url("/users/7"), 1, 0)
        .expect("starting the middle tier");
    let mid = middle.server.pid();
    let agent = start_agent(&env, &receiver, &[leaf.pid(), mid], &client_bin);
    apps::connect_grpc_fanout(&mut middle.server).expect("middle tier dials the leaf");
    run(
        &agent,
        apps::go_grpc_client(&client_bin, middle.server.addr, GrpcCall::CheckOk, 3),
    );
    assert!(
        agent.wait_log(
            &format!(
                "go: pid {mid}: no server handler probe: \
                 google.golang.org/grpc.(*Server).handleStream: no DWARF"
            ),
            Duration::from_secs(20)
        ),
        "no word on the missing probe:\n{}",
        agent.stderr()
    );
    let out = flow::finish(
        &receiver,
        agent,
        &[flow::server(mid, 3), flow::client(mid, 3)],
    );
    let servers = out.exact(flow::server(mid, 3));
    for call in out.exact(flow::client(mid, 3)) {
        assert!(
            servers
                .iter()
                .all(|s| call.parent_span_id.as_deref() != Some(s.span_id.as_str())),
            "{call} nested without a probe:\n{}",
            dump(&out.spans)
        );
    }
    assert_eq!(out.exit.counter("go_server_probe_hits"), 0);
    out.assert_clean();
}
