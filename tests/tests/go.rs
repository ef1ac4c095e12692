//! Go services traced by goroutine: a handler that fans out to goroutines
//! (directly, and through goroutines that make no syscall) gets every
//! outgoing call as its child, with no cross-links under 100 concurrent
//! requests, for every Go version under test, stripped or not; and Go
//! links with Python both ways.
//!
//! Every test needs root and the agent binary (`TRACER_BIN`), and Go
//! toolchains (`TRACER_GO_VERSIONS`, set by `cargo xtask test`); without
//! them a test prints `SKIPPED <test>: <reason>` and returns.
use std::{path::PathBuf, time::Duration};

use integration_tests::{
    Protocol, ReceivedSpan, Receiver,
    agent::Agent,
    apps::{self, Fanout},
    chain::Load,
    fanout::{self, FanoutStats},
    flow,
    process::Proc,
    require_root,
    skip::TestEnv,
    skip_unless,
};

const SOURCE: &str = "tracer.parent.source";

fn receiver() -> Receiver {
    Receiver::start().expect("starting the OTLP receiver")
}

fn start_agent(env: &TestEnv, receiver: &Receiver, pids: &[u32]) -> Agent {
    let args: Vec<String> = pids
        .iter()
        .flat_map(|p| ["--pid".to_owned(), p.to_string()])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match Agent::start(&env.tracer_bin, &args, receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

/// The agent said it follows `pid` by goroutine (it does so for running
/// processes before it reports ready).
fn assert_goroutine_tracking(agent: &Agent, pid: u32) {
    let log = agent.stderr();
    assert!(
        log.contains(&format!("go: pid {pid}: requests followed by goroutine")),
        "pid {pid} is not followed by goroutine:\n{log}"
    );
}

fn stats_line(test: &str, what: &str, stats: &FanoutStats) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "STATS {test} {what}: {stats}");
}

fn curl_ok(url: &str) {
    let (_, status, _) = apps::curl_request(&[url]).expect("running curl");
    assert_eq!(status, 200, "status of {url}");
}

fn check_fanout(
    test: &str,
    what: &str,
    spans: &[ReceivedSpan],
    f: &fanout::Fanout,
    requests: usize,
) -> FanoutStats {
    let (stats, problems) = fanout::check(spans, f);
    stats_line(test, what, &stats);
    assert!(
        problems.is_empty(),
        "{}",
        fanout::report(what, &stats, &problems, spans)
    );
    assert_eq!(
        stats,
        FanoutStats {
            requests,
            traces: requests,
            spans: requests * (1 + 2 * f.fan),
            correctly_parented: requests * 2 * f.fan,
            ..FanoutStats::default()
        },
        "{what}"
    );
    stats
}

/// A front and a leaf of `bin`, the agent on both, then one
/// `/fanout?n=<fan>` and one `/nested?n=<fan>`: each request's trace
/// checked with [`check_fanout`] (one front span, `fan` calls under it,
/// one downstream span under each call). Returns the outcome, the front
/// and leaf pids, and the two traces.
fn fan_out_and_nested(
    env: &TestEnv,
    bin: &std::path::Path,
    fan: usize,
    what: &str,
) -> (flow::Outcome, u32, u32, Vec<Vec<ReceivedSpan>>) {
    let receiver = receiver();
    let apps = Fanout::start(bin, bin).expect("starting the fan-out servers");
    let (front, leaf) = (apps.front.pid(), apps.leaf.pid());
    let agent = start_agent(env, &receiver, &[front, leaf]);
    assert_goroutine_tracking(&agent, front);
    curl_ok(&apps.fanout_url(fan));
    curl_ok(&apps.nested_url(fan));
    let out = flow::finish_at(&receiver, agent, 2 * (1 + 2 * fan));
    // Go code's syscalls keep their goroutine in R14: the TLS slot is only
    // for C code's (none here).
    for counter in ["go_goroutine_from_tls", "go_no_goroutine"] {
        assert_eq!(out.exit.counter(counter), 0, "{what}: {counter}");
    }
    let traces = ["/fanout", "/nested"]
        .into_iter()
        .map(|path| {
            // The two requests are separate traces: check each alone.
            let front_trace = out
                .spans
                .iter()
                .find(|s| s.pid() == Some(front) && s.attr_str("url.path") == Some(path))
                .map(|s| s.trace_id.clone())
                .unwrap_or_else(|| {
                    panic!(
                        "{what}: no {path} span:\n{}",
                        integration_tests::otlp_receiver::dump(&out.spans)
                    )
                });
            let trace: Vec<ReceivedSpan> = out
                .spans
                .iter()
                .filter(|s| s.trace_id == front_trace)
                .cloned()
                .collect();
            let f = fanout::Fanout {
                front_pid: front,
                leaf_pid: leaf,
                front_path: path,
                call_path: "/leaf",
                fan,
            };
            check_fanout(&env.test, &format!("{what} {path}"), &trace, &f, 1);
            trace
        })
        .collect();
    (out, front, leaf, traces)
}

/// Every Go version under test, stripped and not: one request fanning out
/// to 5 goroutines and one through goroutines that make no syscall
/// (nested), each call the child of the request, each downstream server
/// span the child of its call.
#[test]
fn fan_out_to_goroutines_every_go_version_stripped_or_not() {
    const FAN: usize = 5;
    let env = require_root!();
    let versions = skip_unless!(env, apps::go_versions());
    for (version, go) in &versions {
        for stripped in [false, true] {
            let what = format!("Go {version}{}", if stripped { " stripped" } else { "" });
            let bin = apps::go_program(go, version, "fanout", stripped)
                .unwrap_or_else(|e| panic!("building fanout with {what}: {e:#}"));
            let (out, front, leaf, traces) = fan_out_and_nested(&env, &bin, FAN, &what);
            for trace in &traces {
                for call in trace
                    .iter()
                    .filter(|s| s.pid() == Some(front) && s.kind == "CLIENT")
                {
                    assert_eq!(call.attr_str(SOURCE), Some("goroutine"), "{what}: {call}");
                }
                // The writer goroutine's request carried the traceparent
                // sk_msg wrote for the calling goroutine's context.
                for downstream in trace.iter().filter(|s| s.pid() == Some(leaf)) {
                    assert_eq!(
                        downstream.attr_str(SOURCE),
                        Some("injected"),
                        "{what}: {downstream}"
                    );
                }
            }
            assert_eq!(out.spans.len(), 2 * (1 + 2 * FAN), "{what}: no other span");
            out.only_from(&[front, leaf]);
            out.assert_clean();
        }
    }
}

/// 100 concurrent requests, each fanning out to 5 goroutines over shared
/// keep-alive connections: 1,100 spans, every one in its request's trace.
#[test]
fn hundred_concurrent_fan_outs_zero_cross_links() {
    const FAN: usize = 5;
    const REQUESTS: usize = 100;
    let env = require_root!();
    let bin = skip_unless!(env, default_fanout());
    let receiver = receiver();
    let apps = Fanout::start(&bin, &bin).expect("starting the fan-out servers");
    let (front, leaf) = (apps.front.pid(), apps.leaf.pid());
    let agent = start_agent(&env, &receiver, &[front, leaf]);
    Load::concurrent(REQUESTS, &format!("/fanout?n={FAN}")).run_ok(&apps.front.base_url());
    let out = flow::finish_at(&receiver, agent, REQUESTS * (1 + 2 * FAN));
    let f = fanout::Fanout {
        front_pid: front,
        leaf_pid: leaf,
        front_path: "/fanout",
        call_path: "/leaf",
        fan: FAN,
    };
    let stats = check_fanout(&env.test, "100 concurrent", &out.spans, &f, REQUESTS);
    assert_eq!(stats.cross_linked, 0);
    assert_eq!(out.spans.len(), REQUESTS * (1 + 2 * FAN));
    out.assert_clean();
}

/// A Go service started after the agent (selected by executable) is
/// followed by goroutine once the agent has inspected it.
#[test]
fn go_service_started_after_the_agent() {
    const FAN: usize = 3;
    let env = require_root!();
    let bin = skip_unless!(env, default_fanout());
    let receiver = receiver();
    let exe = bin
        .file_name()
        .and_then(|n| n.to_str())
        .expect("binary name");
    let agent = match Agent::start(&env.tracer_bin, &["--exe", exe], &receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    };
    let apps = Fanout::start(&bin, &bin).expect("starting the fan-out servers");
    let (front, leaf) = (apps.front.pid(), apps.leaf.pid());
    for pid in [front, leaf] {
        assert!(
            agent.wait_log(
                &format!("go: pid {pid}: requests followed by goroutine"),
                Duration::from_secs(10)
            ),
            "pid {pid} not instrumented:\n{}",
            agent.stderr()
        );
    }
    curl_ok(&apps.fanout_url(FAN));
    let out = flow::finish_at(&receiver, agent, 1 + 2 * FAN);
    let f = fanout::Fanout {
        front_pid: front,
        leaf_pid: leaf,
        front_path: "/fanout",
        call_path: "/leaf",
        fan: FAN,
    };
    check_fanout(&env.test, "started after", &out.spans, &f, 1);
    out.only_from(&[front, leaf]);
    out.assert_clean();
}

/// A cgo binary (linked with the C library by gcc) and a PIE binary
/// (loaded at a random address: the goroutine table's address is
/// relocated per process) are followed by goroutine as a plain one is:
/// fan-out and nested fan-out nest under their request.
#[test]
fn fan_out_in_cgo_and_pie_binaries() {
    const FAN: usize = 3;
    let env = require_root!();
    skip_unless!(
        env,
        apps::which("gcc").ok_or("no C compiler (gcc) for a cgo build")
    );
    let versions = skip_unless!(env, apps::go_versions());
    let (version, go) = versions.first().expect("a Go version");
    for build in [apps::Build::Cgo, apps::Build::Pie] {
        let bin = apps::go_program_as(go, version, "fanout", build)
            .unwrap_or_else(|e| panic!("building fanout ({build:?}): {e:#}"));
        let (out, ..) = fan_out_and_nested(&env, &bin, FAN, &format!("{build:?}"));
        out.assert_clean();
    }
}

/// The fan-out program built with the default Go version.
fn default_fanout() -> Result<PathBuf, String> {
    let versions = apps::go_versions()?;
    let (version, go) = versions.first().ok_or("no Go version to test")?;
    // A failed build is a failure, not a reason to skip.
    Ok(apps::go_program(go, version, "fanout", false)
        .unwrap_or_else(|e| panic!("building fanout with Go {version}: {e:#}")))
}

/// A Python client calls a Go server whose handler calls a Python server
/// from goroutines: one trace per request, linked both ways.
#[test]
fn go_and_python_linked_both_ways() {
    const FAN: usize = 2;
    const REQUESTS: usize = 3;
    let env = require_root!();
    let bin = skip_unless!(env, default_fanout());
    let receiver = receiver();
    let py = apps::python_server(&apps::PyServerOpts::default()).expect("python server");
    let front = apps::go_fanout_server(&bin, Some(&py.base_url())).expect("starting the Go server");
    let client = Proc::spawn_waiting(
        "py-client",
        apps::python_client(&[
            "urllib",
            &front.url(&format!("/fanout?n={FAN}")),
            "--count",
            &REQUESTS.to_string(),
            "--wait",
        ]),
    );
    let client_pid = client.pid();
    let agent = start_agent(&env, &receiver, &[py.pid(), front.pid(), client_pid]);
    assert_goroutine_tracking(&agent, front.pid());
    let mut client = client;
    client.write_stdin("go\n").expect("starting the client");
    let finished = client
        .finish(apps::CLIENT_TIMEOUT)
        .and_then(|f| f.ok())
        .expect("python client");
    assert_eq!(finished.stdout.matches("STATUS 200").count(), REQUESTS);
    let out = flow::finish_at(&receiver, agent, REQUESTS * (2 + 2 * FAN));
    // Python client → Go server.
    let go_servers: Vec<&ReceivedSpan> = out
        .spans
        .iter()
        .filter(|s| s.pid() == Some(front.pid()) && s.kind == "SERVER")
        .collect();
    assert_eq!(go_servers.len(), REQUESTS);
    for server in &go_servers {
        let parent = out
            .spans
            .iter()
            .find(|s| Some(&s.span_id) == server.parent_span_id.as_ref())
            .unwrap_or_else(|| panic!("Go server span without its Python caller: {server}"));
        assert_eq!(parent.pid(), Some(client_pid), "{server}");
        assert_eq!(parent.kind, "CLIENT");
        assert_eq!(parent.trace_id, server.trace_id);
    }
    // Go client (from goroutines) → Python server.
    let f = fanout::Fanout {
        front_pid: front.pid(),
        leaf_pid: py.pid(),
        front_path: "/fanout",
        call_path: "/leaf",
        fan: FAN,
    };
    let inner: Vec<ReceivedSpan> = out
        .spans
        .iter()
        .filter(|s| s.pid() != Some(client_pid))
        .cloned()
        .collect();
    check_fanout(&env.test, "python→go→python", &inner, &f, REQUESTS);
    assert_eq!(out.spans.len(), REQUESTS * (2 + 2 * FAN));
    out.assert_clean();
}
