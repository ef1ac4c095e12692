//! HTTP/2 from the implementation bundled in Go's net/http (not
//! golang.org/x/net), without TLS: `go/h2std`, a fan-out server whose
//! server takes HTTP/1.1 and prior-knowledge h2c and whose client speaks
//! h2c only (`http.Protocols.SetUnencryptedHTTP2`, Go 1.24+). A handler's
//! calls, made from goroutines, are streams of one h2c connection to the
//! leaf, whose HEADERS the bundled client writes from a goroutine of its
//! own per request (`http2clientStream.doRequest`, started by the calling
//! goroutine). Calls are children of the request whether the handler's
//! goroutine makes them itself or from goroutines it starts: the writer
//! goroutine's start function (`g.startpc`) marks it as one of those
//! per-request writers, whose whole ancestry is the caller's.
//!
//! Every test needs root, the agent binary (`TRACER_BIN`) and a Go 1.24+
//! toolchain in `TRACER_GO_VERSIONS`; without them it prints
//! `SKIPPED <test>: <reason>` and returns.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use integration_tests::{
    Protocol, ReceivedSpan, Receiver,
    agent::Agent,
    apps::{self, Fanout},
    chain::{self, Load},
    fanout::{self, FanoutStats},
    flow,
    otlp_receiver::dump,
    process::Proc,
    require_root,
    skip::TestEnv,
    skip_unless,
};

const SOURCE: &str = "tracer.parent.source";
const VERSION: &str = "network.protocol.version";
/// `http.Protocols` and unencrypted HTTP/2 in net/http.
const MIN_GO_MINOR: u32 = 24;

fn start_agent(env: &TestEnv, receiver: &Receiver, pids: &[u32], extra: &[&str]) -> Agent {
    let args: Vec<String> = pids
        .iter()
        .flat_map(|p| ["--pid".to_owned(), p.to_string()])
        .collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    match Agent::start(&env.tracer_bin, &args, receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

/// `h2std` built with every Go 1.24+ under test (`Err`: no such Go, a
/// reason to skip; a failed build panics: that is a failure, not a skip).
fn programs() -> Result<Vec<(String, PathBuf)>, String> {
    Ok(apps::go_versions_since(MIN_GO_MINOR)?
        .into_iter()
        .map(|(version, go)| {
            let bin = apps::go_program(&go, &version, "h2std", false)
                .unwrap_or_else(|e| panic!("building h2std with Go {version}: {e:#}"));
            (version, bin)
        })
        .collect())
}

/// Starts the leaf and the front (both `h2std`: same command line as
/// `go/fanout`), then the agent on both (with `extra` arguments), which
/// follows them by goroutine.
fn start(env: &TestEnv, receiver: &Receiver, bin: &Path, extra: &[&str]) -> (Fanout, Agent) {
    let apps = Fanout::start(bin, bin).expect("starting the h2std servers");
    let pids = [apps.front.pid(), apps.leaf.pid()];
    let agent = start_agent(env, receiver, &pids, extra);
    let log = agent.stderr();
    for pid in pids {
        assert!(
            log.contains(&format!("go: pid {pid}: requests followed by goroutine")),
            "pid {pid} is not followed by goroutine:\n{log}"
        );
    }
    (apps, agent)
}

fn spans_of<'a>(spans: &'a [ReceivedSpan], pid: u32, kind: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.pid() == Some(pid) && s.kind == kind)
        .collect()
}

/// `tracer.parent.source` of each span, counted: "goroutine=5".
fn sources(spans: &[&ReceivedSpan]) -> String {
    let mut counts = BTreeMap::<&str, usize>::new();
    for s in spans {
        *counts.entry(s.attr_str(SOURCE).unwrap_or("-")).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(test: &str, what: &str, line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{what} {test}: {line}");
}

/// The front logged each of `fronts` (path, count) over HTTP/1.1 (from
/// curl or the load client), the leaf `calls` `/leaf` requests, all over
/// HTTP/2.
fn assert_protocols(apps: &Fanout, fronts: &[(&str, usize)], calls: usize) {
    let front = apps.front.proc.stderr.text();
    for (path, count) in fronts {
        assert_eq!(
            front.matches(&format!("GET {path} HTTP/1.1")).count(),
            *count,
            "front log:\n{front}"
        );
    }
    let leaf = apps.leaf.proc.stderr.text();
    assert_eq!(
        leaf.matches("GET /leaf HTTP/2.0").count(),
        calls,
        "leaf log:\n{leaf}"
    );
    assert!(!leaf.contains("HTTP/1.1"), "leaf log:\n{leaf}");
}

/// The spans of the traces of the front's `path` requests, and the others.
fn split_by_front(
    spans: &[ReceivedSpan],
    front: u32,
    path: &str,
) -> (Vec<ReceivedSpan>, Vec<ReceivedSpan>) {
    let traces: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.pid() == Some(front) && s.kind == "SERVER")
        .filter(|s| s.attr_str("url.path") == Some(path))
        .map(|s| s.trace_id.as_str())
        .collect();
    spans
        .iter()
        .cloned()
        .partition(|s| traces.contains(s.trace_id.as_str()))
}

/// Counts, protocol versions and parent sources of `requests` front
/// requests of `f.fan` calls each; reports the sources seen.
fn check_spans(
    test: &str,
    what: &str,
    spans: &[ReceivedSpan],
    f: &fanout::Fanout,
    requests: usize,
) {
    let fronts = spans_of(spans, f.front_pid, "SERVER");
    let calls = spans_of(spans, f.front_pid, "CLIENT");
    let leaves = spans_of(spans, f.leaf_pid, "SERVER");
    report(
        test,
        "SOURCES",
        &format!(
            "{what}: front server {{{}}} client {{{}}} leaf server {{{}}}",
            sources(&fronts),
            sources(&calls),
            sources(&leaves)
        ),
    );
    assert_eq!(fronts.len(), requests, "{what}:\n{}", dump(spans));
    assert_eq!(calls.len(), requests * f.fan, "{what}:\n{}", dump(spans));
    assert_eq!(leaves.len(), requests * f.fan, "{what}:\n{}", dump(spans));
    for s in &fronts {
        assert_eq!(s.attr_str("url.path"), Some(f.front_path), "{what}: {s}");
        assert_eq!(s.attr_str(VERSION), Some("1.1"), "{what}: {s}");
        assert_eq!(s.attr_str(SOURCE), Some("none"), "{what}: {s}");
    }
    for s in calls.iter().chain(&leaves) {
        assert_eq!(s.attr_str("url.path"), Some(f.call_path), "{what}: {s}");
        assert_eq!(s.attr_str(VERSION), Some("2"), "{what}: {s}");
    }
    // The leaf reads the traceparent sk_msg wrote into each HEADERS frame.
    for s in &leaves {
        assert_eq!(s.attr_str(SOURCE), Some("injected"), "{what}: {s}");
    }
}

fn problems_text(problems: &[String]) -> String {
    problems
        .iter()
        .take(30)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Requests whose handler made its calls itself (`/serial`) or from
/// goroutines it started (`/fanout`): every call the child of its request
/// (found by goroutine: the writer goroutine's parent, or an older
/// ancestor, is the handler's), every leaf span the child of its call.
fn check_nested(
    test: &str,
    what: &str,
    spans: &[ReceivedSpan],
    f: &fanout::Fanout,
    requests: usize,
) -> FanoutStats {
    check_spans(test, what, spans, f, requests);
    let (stats, problems) = fanout::check(spans, f);
    report(test, "STATS", &format!("{what}: {stats}"));
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s) ({stats}):\n  {}\nall spans:\n{}",
        problems.len(),
        problems_text(&problems),
        dump(spans)
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
    for s in spans_of(spans, f.front_pid, "CLIENT") {
        assert_eq!(s.attr_str(SOURCE), Some("goroutine"), "{what}: {s}");
    }
    stats
}

fn fanout_spec(apps: &Fanout, front_path: &'static str, fan: usize) -> fanout::Fanout<'static> {
    fanout::Fanout {
        front_pid: apps.front.pid(),
        leaf_pid: apps.leaf.pid(),
        front_path,
        call_path: "/leaf",
        fan,
    }
}

/// For every Go 1.24+ under test, one HTTP/1.1 request whose handler calls
/// the leaf 5 times itself, one after another (`/serial`), and one whose
/// handler fans out to 5 goroutines (`/fanout`), every call an HTTP/2
/// stream of the bundled client: 1 server span, 5 client spans, 5 leaf
/// server spans each, every call the child of its request.
#[test]
fn bundled_h2c_calls_from_handlers_and_goroutines() {
    const FAN: usize = 5;
    let env = require_root!();
    let programs = skip_unless!(env, programs());
    for (version, bin) in &programs {
        let what = format!("Go {version}");
        let receiver = Receiver::start().expect("starting the OTLP receiver");
        let (apps, agent) = start(&env, &receiver, bin, &[]);
        let (front, leaf) = (apps.front.pid(), apps.leaf.pid());
        for path in ["/serial", "/fanout"] {
            let url = apps.front.url(&format!("{path}?n={FAN}"));
            let (_, status, _) = apps::curl_request(&[&url]).expect("running curl");
            assert_eq!(status, 200, "{what}: {url}");
        }
        let out = flow::finish_at(&receiver, agent, 2 * (1 + 2 * FAN));
        assert_protocols(&apps, &[("/serial", 1), ("/fanout", 1)], 2 * FAN);
        let (serial, fanned) = split_by_front(&out.spans, front, "/serial");
        check_nested(
            &env.test,
            &format!("{what} /serial"),
            &serial,
            &fanout_spec(&apps, "/serial", FAN),
            1,
        );
        check_nested(
            &env.test,
            &format!("{what} /fanout"),
            &fanned,
            &fanout_spec(&apps, "/fanout", FAN),
            1,
        );
        assert_eq!(out.spans.len(), 2 * (1 + 2 * FAN), "{what}: no other span");
        out.only_from(&[front, leaf]);
        out.assert_clean();
    }
}

/// 20 concurrent `/fanout?n=5` and 20 concurrent `/serial?n=5` at once,
/// every call a stream of the h2c connection(s) to the leaf: 440 spans, 0
/// cross-links, every call the child of its request.
///
/// At the default capture: the kernel captures sockets it knows to be
/// HTTP/2 in full. The leaf's net/http server reads the preface's first
/// line on its own (an HTTP/1 request line to it), then the rest: that
/// line alone marks the socket, or its later batched writes would lose
/// their framing (`drop_http2_desync`).
#[test]
fn twenty_concurrent_bundled_h2c_fan_outs_zero_cross_links() {
    const FAN: usize = 5;
    const REQUESTS: usize = 20;
    let env = require_root!();
    let programs = skip_unless!(env, programs());
    let (version, bin) = &programs[0];
    let what = format!("Go {version} {REQUESTS} concurrent");
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let (apps, agent) = start(&env, &receiver, bin, &[]);
    let (front, leaf) = (apps.front.pid(), apps.leaf.pid());
    let loads: Vec<(Load, Proc)> = ["/serial", "/fanout"]
        .iter()
        .map(|path| {
            let load = Load::concurrent(REQUESTS, &format!("{path}?n={FAN}"));
            let proc = Proc::spawn(
                "load",
                chain::load_client(&apps.front.base_url(), &load),
                true,
            )
            .expect("starting the load client");
            (load, proc)
        })
        .collect();
    for (load, proc) in loads {
        let finished = proc
            .finish(apps::CLIENT_TIMEOUT)
            .and_then(|f| f.ok())
            .expect("load client");
        load.assert_all_ok(&finished.stdout);
    }
    let out = flow::finish_at(&receiver, agent, 2 * REQUESTS * (1 + 2 * FAN));
    assert_protocols(
        &apps,
        &[("/serial", REQUESTS), ("/fanout", REQUESTS)],
        2 * REQUESTS * FAN,
    );
    let (serial, fanned) = split_by_front(&out.spans, front, "/serial");
    let stats = check_nested(
        &env.test,
        &format!("{what} /serial"),
        &serial,
        &fanout_spec(&apps, "/serial", FAN),
        REQUESTS,
    );
    assert_eq!((stats.wrongly_parented, stats.cross_linked), (0, 0));
    let stats = check_nested(
        &env.test,
        &format!("{what} /fanout"),
        &fanned,
        &fanout_spec(&apps, "/fanout", FAN),
        REQUESTS,
    );
    assert_eq!((stats.wrongly_parented, stats.cross_linked), (0, 0));
    assert_eq!(out.spans.len(), 2 * REQUESTS * (1 + 2 * FAN));
    out.only_from(&[front, leaf]);
    out.assert_clean();
}
