//! RED metrics and the service graph, end to end: the real agent traces a
//! Python server and client, and a real Prometheus scrapes the agent's
//! `/metrics` (Debian's prometheus); the OTLP test receiver takes the same
//! metrics over gRPC and HTTP/protobuf.
//!
//! Every test needs root and the agent binary; the Prometheus ones also
//! need Debian's prometheus package. Without them a test prints `SKIPPED
//! <test>: <reason>` and returns.
use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use integration_tests::{
    Protocol, Receiver,
    agent::{Agent, AgentExit},
    apps::{self, PyServerOpts, Server, TempDir},
    otlp_metrics::ReceivedPoint,
    process::Proc,
    prometheus::{self, Prometheus},
    require_root,
    skip::TestEnv,
};

/// Scrapes every second; the margin is for a loaded CI machine.
const TIMEOUT: Duration = Duration::from_secs(60);
const SERVER: &str = "shop";
const CLIENT: &str = "shopper";

/// The 200 requests of the Prometheus test: 150 × 200, 30 × 404 and
/// 20 × 500 over two routes, as (path, count, route, status).
const PLAN: [(&str, u64, &str, u16); 6] = [
    ("/orders/{i}?status=200", 100, "/orders/{id}", 200),
    ("/orders/{i}?status=404", 20, "/orders/{id}", 404),
    ("/orders/{i}?status=500", 10, "/orders/{id}", 500),
    ("/items/{i}?status=200", 50, "/items/{id}", 200),
    ("/items/{i}?status=404", 10, "/items/{id}", 404),
    ("/items/{i}?status=500", 10, "/items/{id}", 500),
];

fn shop() -> Server {
    apps::python_server(&PyServerOpts {
        env: vec![("OTEL_SERVICE_NAME".to_owned(), SERVER.to_owned())],
        ..PyServerOpts::default()
    })
    .expect("starting the Python server")
}

/// `plan_client.py` against `server`, as service `shopper`.
fn plan_client(server: &Server, plan: &[String], spread: Duration) -> String {
    let mut cmd = Command::new(apps::python3());
    cmd.arg("-u")
        .arg(apps::apps_dir().join("python/plan_client.py"))
        .arg(server.base_url())
        .args(["--spread", &format!("{:.3}", spread.as_secs_f64())])
        .env("OTEL_SERVICE_NAME", CLIENT);
    for entry in plan {
        cmd.args(["--plan", entry]);
    }
    let finished = Proc::spawn("plan-client", cmd, true)
        .and_then(|p| p.finish(Duration::from_secs(300)))
        .and_then(|f| f.ok())
        .expect("running the plan client");
    finished.stdout
}

fn plan_entries() -> Vec<String> {
    PLAN.iter()
        .map(|(path, count, _, _)| format!("{path}={count}"))
        .collect()
}

/// The agent tracing both ends of the server's connections, serving
/// Prometheus on a free port; `extra` appended.
fn start_agent(
    env: &TestEnv,
    receiver: &Receiver,
    server: &Server,
    extra: &[&str],
) -> (Agent, u16) {
    let port = apps::free_port(false).expect("a free port");
    let mut args = vec![
        "--port".to_owned(),
        server.port().to_string(),
        "--prometheus-port".to_owned(),
        port.to_string(),
        "--prometheus-address".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start(&env.tracer_bin, &args, receiver, Protocol::Grpc)
        .unwrap_or_else(|e| panic!("{}: starting the agent: {e:#}", env.test));
    (agent, port)
}

fn stop(agent: Agent) -> AgentExit {
    let exit = agent.stop().expect("stopping the agent");
    exit.check_clean().expect("a clean agent exit");
    exit
}

fn have_prometheus(env: &TestEnv) -> bool {
    match prometheus::prometheus_bin().and_then(|_| prometheus::promtool_bin()) {
        Ok(_) => true,
        Err(reason) => {
            integration_tests::skip::skip(&env.test, &reason);
            false
        }
    }
}

/// The sum of each sample's value by the given labels.
fn by_labels(samples: &[prometheus::Sample], keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for (labels, value) in samples {
        let key = keys
            .iter()
            .map(|k| labels.get(*k).cloned().unwrap_or_default())
            .collect();
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

fn total(samples: &[prometheus::Sample]) -> f64 {
    samples.iter().map(|(_, v)| v).sum()
}

#[test]
fn prometheus_counts_every_request_by_route_and_status() {
    let env = require_root!();
    if !have_prometheus(&env) {
        return;
    }
    let receiver = Receiver::start().expect("receiver");
    let server = shop();
    // Sampling off: metrics count every request whatever is sampled.
    let (agent, port) = start_agent(&env, &receiver, &server, &["--sampler", "always_off"]);
    let prom = Prometheus::start(port, None).expect("starting Prometheus");
    prom.wait_for_targets_up(TIMEOUT)
        .expect("Prometheus scrapes the agent");

    let result = plan_client(&server, &plan_entries(), Duration::ZERO);
    assert!(result.contains("RESULT 200=150 404=30 500=20"), "{result}");

    let query = format!(
        "sum by (http_route, http_response_status_code) \
         (http_server_request_duration_seconds_count{{service_name=\"{SERVER}\"}})"
    );
    let samples = prom
        .wait_for(&query, TIMEOUT, |s| total(s) >= 200.0)
        .expect("the server's requests reach Prometheus");
    let mut want = BTreeMap::new();
    for (_, count, route, status) in PLAN {
        *want
            .entry(vec![route.to_owned(), status.to_string()])
            .or_insert(0.0) += count as f64;
    }
    assert_eq!(
        by_labels(&samples, &["http_route", "http_response_status_code"]),
        want,
        "server requests by route and status"
    );

    // The client side, by status (server.address is the Host header).
    let query = format!(
        "sum by (http_response_status_code, server_port) \
         (http_client_request_duration_seconds_count{{service_name=\"{CLIENT}\"}})"
    );
    let samples = prom
        .wait_for(&query, TIMEOUT, |s| total(s) >= 200.0)
        .expect("the client's requests reach Prometheus");
    let port_label = server.port().to_string();
    let got = by_labels(&samples, &["http_response_status_code", "server_port"]);
    for (status, count) in [("200", 150.0), ("404", 30.0), ("500", 20.0)] {
        assert_eq!(
            got.get(&vec![status.to_owned(), port_label.clone()]),
            Some(&count),
            "client requests with status {status}: {got:?}"
        );
    }

    // histogram_quantile answers, within the histogram's buckets.
    let query = format!(
        "histogram_quantile(0.9, sum by (le, http_route) \
         (http_server_request_duration_seconds_bucket{{service_name=\"{SERVER}\"}}))"
    );
    let samples = prom.query(&query).expect("histogram_quantile");
    assert_eq!(samples.len(), 2, "one quantile per route: {samples:?}");
    for (labels, value) in &samples {
        assert!(
            value.is_finite() && *value > 0.0 && *value <= 10.0,
            "p90 of {labels:?} = {value}"
        );
    }

    // The service graph edge between the two traced services.
    let edge = format!("{{client=\"{CLIENT}\",server=\"{SERVER}\"}}");
    let samples = prom
        .wait_for(
            &format!("sum(traces_service_graph_request_total{edge})"),
            TIMEOUT,
            |s| total(s) >= 200.0,
        )
        .expect("the service graph edge");
    assert_eq!(total(&samples), 200.0, "requests on the edge");
    // A client fails on 4xx and 5xx, a server on 5xx: 50 failed calls.
    let failed = prom
        .query(&format!(
            "sum(traces_service_graph_request_failed_total{edge})"
        ))
        .expect("failed requests on the edge");
    assert_eq!(total(&failed), 50.0, "failed requests on the edge");
    let server_seconds = prom
        .query(&format!(
            "sum(traces_service_graph_request_server_seconds_count{edge})"
        ))
        .expect("server seconds");
    assert_eq!(total(&server_seconds), 200.0);

    // The resource joins through target_info; the agent's own counters are
    // there too.
    let info = prom
        .query(&format!(
            "target_info{{service_name=\"{SERVER}\",process_pid=\"{}\"}}",
            server.pid()
        ))
        .expect("target_info");
    assert_eq!(info.len(), 1, "{info:?}");
    let spans = prom
        .query("tracer_http_exchanges_total")
        .expect("the agent's counters");
    assert!(total(&spans) >= 400.0, "{spans:?}");
    let unsampled = prom
        .query("tracer_spans_unsampled_total")
        .expect("unsampled");
    assert!(
        total(&unsampled) >= 400.0,
        "always_off: every span unsampled: {unsampled:?}"
    );

    drop(prom);
    let exit = stop(agent);
    assert_eq!(
        exit.counter("spans_created"),
        0,
        "always_off exports no span"
    );
    assert_eq!(receiver.spans().len(), 0);
}

#[test]
fn the_example_5xx_alert_fires() {
    let env = require_root!();
    if !have_prometheus(&env) {
        return;
    }
    let dir = TempDir::new("tracer-alert").expect("temp dir");
    let rules = prometheus::rules_for_test(&prometheus::example_rules(), &dir.path)
        .expect("the example rules with short windows");
    let receiver = Receiver::start().expect("receiver");
    let server = shop();
    let (agent, port) = start_agent(&env, &receiver, &server, &[]);
    let prom = Prometheus::start(port, Some(&rules)).expect("starting Prometheus");
    prom.wait_for_targets_up(TIMEOUT)
        .expect("Prometheus scrapes the agent");

    // A rate needs samples before and after: the requests go on over
    // several scrapes. One /checkout in four fails.
    let plan = [
        "/checkout/{i}?status=200=45".to_owned(),
        "/checkout/{i}?status=503=15".to_owned(),
    ];
    plan_client(&server, &plan, Duration::from_secs(12));
    let alert = prom
        .wait_for_alert("TracerHighServerErrorRatio", "firing", TIMEOUT)
        .expect("the 5xx alert fires");
    assert_eq!(alert.label("service_name"), Some(SERVER), "{alert:?}");
    assert_eq!(
        alert.label("http_route"),
        Some("/checkout/{id}"),
        "{alert:?}"
    );
    assert_eq!(alert.label("severity"), Some("warning"), "{alert:?}");
    drop(prom);
    stop(agent);
}

/// The newest point of each series (cumulative temporality).
fn latest(points: &[ReceivedPoint]) -> Vec<ReceivedPoint> {
    let mut by_series = BTreeMap::new();
    for p in points {
        by_series.insert(p.series_key(), p.clone());
    }
    by_series.into_values().collect()
}

/// The cumulative count of `name`'s points by status code, for `service`:
/// the newest point of each series.
fn counts_by_status(points: &[ReceivedPoint], service: &str) -> BTreeMap<i64, u64> {
    let mut out = BTreeMap::new();
    for p in points
        .iter()
        .filter(|p| p.res_str("service.name") == Some(service))
    {
        let count = p.histogram().map_or(0, |h| h.count);
        *out.entry(p.attr_int("http.response.status_code").unwrap_or(0))
            .or_insert(0) += count;
    }
    out
}

#[test]
fn otlp_metrics_over_both_transports_ignore_sampling() {
    let env = require_root!();
    let plan = [
        "/pay/{i}?status=200=15".to_owned(),
        "/pay/{i}?status=500=5".to_owned(),
    ];
    let want = BTreeMap::from([(200, 15), (500, 5)]);
    for (protocol, sampler, temporality) in [
        (Protocol::Grpc, "always_off", "cumulative"),
        (Protocol::HttpProtobuf, "always_off", "cumulative"),
        (Protocol::Grpc, "always_on", "cumulative"),
        (Protocol::HttpProtobuf, "always_on", "delta"),
    ] {
        let what = format!("{protocol:?}, {sampler}, {temporality}");
        let receiver = Receiver::start().expect("receiver");
        let server = shop();
        let mut cmd_env = vec![
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                temporality,
            ),
        ];
        cmd_env.push(("OTEL_METRICS_EXPORTER", "otlp"));
        let endpoint = receiver.endpoint(protocol);
        let port = server.port().to_string();
        let agent = Agent::start_with_env(
            &env.tracer_bin,
            &[
                "--otlp-endpoint",
                &endpoint,
                "--otlp-protocol",
                protocol.flag_value(),
                "--port",
                &port,
                "--sampler",
                sampler,
            ],
            &cmd_env,
        )
        .unwrap_or_else(|e| panic!("{what}: starting the agent: {e:#}"));
        plan_client(&server, &plan, Duration::ZERO);
        let name = "http.server.request.duration";
        if temporality == "delta" {
            receiver.wait_for_metric(name, TIMEOUT, |p| {
                counts_by_status(p, SERVER).values().sum::<u64>() >= 20
            })
        } else {
            receiver.wait_for_metric(name, TIMEOUT, |p| {
                counts_by_status(&latest(p), SERVER).values().sum::<u64>() >= 20
            })
        }
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        // Both sides' spans (when sampled) reach the receiver before the
        // counts are compared with them.
        if sampler == "always_on" {
            let _ = receiver.wait_for(TIMEOUT, |spans| spans.len() >= 40);
        }
        let exit = stop(agent);
        let points = if temporality == "delta" {
            // Every delta since the first: their sum is the total.
            receiver.metric_points(name)
        } else {
            receiver.latest_metric_points(name)
        };
        assert_eq!(counts_by_status(&points, SERVER), want, "{what}");
        let shop_points: Vec<&ReceivedPoint> = points
            .iter()
            .filter(|p| p.res_str("service.name") == Some(SERVER))
            .collect();
        for p in &shop_points {
            assert_eq!(p.transport, protocol, "{what}");
            assert_eq!(p.unit, "s", "{what}");
            assert_eq!(p.attr_str("http.route"), Some("/pay/{id}"), "{what}: {p:?}");
            assert_eq!(p.attr_str("http.request.method"), Some("GET"), "{what}");
            let temporality_seen = format!("{:?}", p.temporality).to_lowercase();
            assert!(temporality_seen.contains(temporality), "{what}: {p:?}");
            let h = p.histogram().expect("a histogram");
            assert_eq!(h.explicit_bounds.len(), 14, "semconv buckets");
            assert_eq!(h.bucket_counts.iter().sum::<u64>(), h.count, "{what}");
        }
        let error_points: Vec<_> = shop_points
            .iter()
            .filter(|p| p.attr_str("error.type") == Some("500"))
            .collect();
        assert!(!error_points.is_empty(), "{what}: error.type on 5xx");
        let client = receiver.latest_metric_points("http.client.request.duration");
        assert!(
            client
                .iter()
                .any(|p| p.res_str("service.name") == Some(CLIENT)
                    && p.attr_int("server.port") == Some(i64::from(server.port()))),
            "{what}: client metrics"
        );
        let spans = receiver.spans();
        if sampler == "always_off" {
            assert!(spans.is_empty(), "{what}: no span exported");
        } else {
            assert_eq!(spans.len(), 40, "{what}: both sides of 20 requests");
        }
        assert!(exit.counter("metric_points_exported") > 0, "{what}");
    }
}

/// One `GET /metrics` of the agent.
fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n")
        .expect("asking for /metrics");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("reading /metrics");
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    text
}

/// The `_count` samples of the server's duration histogram.
fn server_series(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| {
            l.starts_with("http_server_request_duration_seconds_count{")
                && l.contains(&format!("service_name=\"{SERVER}\""))
        })
        .map(|l| {
            let (labels, value) = l.rsplit_once(' ').expect("a sample");
            (labels.to_owned(), value.parse().expect("a count"))
        })
        .collect()
}

/// Scrapes until the server's series count `requests` in all (the agent
/// reads the ring buffer in bursts), for at most 20 s; the last scrape.
fn scrape_until(port: u16, requests: u64) -> String {
    let mut text = scrape(port);
    for _ in 0..100 {
        if server_series(&text).iter().map(|(_, c)| c).sum::<u64>() >= requests {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        text = scrape(port);
    }
    text
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn cardinality_is_bounded_and_the_fold_is_counted() {
    let env = require_root!();
    let receiver = Receiver::start().expect("receiver");
    let server = shop();
    let limit = 100;
    let (agent, port) = start_agent(
        &env,
        &receiver,
        &server,
        &[
            "--metrics-cardinality-limit",
            &limit.to_string(),
            "--no-otlp",
        ],
    );

    // 5,000 distinct paths, one route.
    plan_client(
        &server,
        &["/orders/{i}?status=200=5000".to_owned()],
        Duration::ZERO,
    );
    let text = scrape_until(port, 5000);
    let series = server_series(&text);
    assert_eq!(series.len(), 1, "one series for one route: {series:?}");
    assert!(
        series[0].0.contains("http_route=\"/orders/{id}\""),
        "{series:?}"
    );
    assert_eq!(series[0].1, 5000);

    // 5,000 distinct routes: at most the limit, then the overflow series.
    plan_client(
        &server,
        &["/catalog/{w}?status=200=5000".to_owned()],
        Duration::ZERO,
    );
    let text = scrape_until(port, 10_000);
    let series = server_series(&text);
    let counted: u64 = series.iter().map(|(_, c)| c).sum();
    assert_eq!(counted, 10_000, "every request counted once");
    let overflow: Vec<_> = series
        .iter()
        .filter(|(l, _)| l.contains("otel_metric_overflow=\"true\""))
        .collect();
    assert_eq!(overflow.len(), 1, "one overflow series");
    // The client process (one series per status) shares nothing with the
    // server's limit: the server holds exactly `limit` series.
    assert_eq!(
        series.len(),
        limit + 1,
        "the limit plus the overflow series"
    );
    let folded = counter(&text, "tracer_metrics_series_folded_total");
    assert_eq!(overflow[0].1, folded, "every fold is counted");
    // The server's 100 series: /orders/{id} and 99 /catalog routes; the
    // rest of the 5,000 /catalog requests folded.
    assert_eq!(folded, 5000 - 99);
    let gauge = counter(&text, "tracer_metric_series");
    assert!(gauge >= limit as u64, "series held: {gauge}");
    stop(agent);
}

#[test]
fn grpc_calls_are_rpc_metrics() {
    let env = require_root!();
    let Some(pythonpath) = std::env::var_os("TRACER_PYTHONPATH").filter(|p| !p.is_empty()) else {
        integration_tests::skip::skip(
            &env.test,
            "TRACER_PYTHONPATH is not set (run `cargo xtask test`)",
        );
        return;
    };
    let script = apps::apps_dir().join("python/grpc_echo.py");
    let echo = |args: &[&str], service: &str| {
        let mut cmd = Command::new(apps::python3());
        cmd.arg("-u")
            .arg(&script)
            .args(args)
            .env("PYTHONPATH", &pythonpath)
            .env("OTEL_SERVICE_NAME", service);
        cmd
    };
    let server = Proc::spawn("grpc-server", echo(&["server"], "echo-server"), true)
        .expect("starting the gRPC server");
    let Some(port) = server
        .stdout
        .wait_port("LISTENING ", Duration::from_secs(30))
    else {
        panic!("the gRPC server did not listen: {}", server.stdout.text());
    };
    let receiver = Receiver::start().expect("receiver");
    let port_arg = port.to_string();
    let endpoint = receiver.endpoint(Protocol::Grpc);
    let agent = Agent::start_with_env(
        &env.tracer_bin,
        &["--otlp-endpoint", &endpoint, "--port", &port_arg],
        &[("OTEL_METRIC_EXPORT_INTERVAL", "500")],
    )
    .unwrap_or_else(|e| panic!("starting the agent: {e:#}"));
    let target = format!("127.0.0.1:{port}");
    let client = Proc::spawn(
        "grpc-client",
        echo(&["client", &target, "--sequential", "20"], "echo-client"),
        true,
    )
    .and_then(|p| p.finish(Duration::from_secs(120)))
    .and_then(|f| f.ok())
    .expect("the gRPC client");
    assert!(
        client.stdout.contains("RESULT ok=23 failed=0"),
        "{}",
        client.stdout
    );

    // 20 Say (2 of them NOT_FOUND), one Count, Collect and Chat.
    let want = BTreeMap::from([
        (("Chat".to_owned(), 0), 1),
        (("Collect".to_owned(), 0), 1),
        (("Count".to_owned(), 0), 1),
        (("Say".to_owned(), 0), 18),
        (("Say".to_owned(), 5), 2),
    ]);
    let calls = |points: &[ReceivedPoint], service: &str| {
        let mut out = BTreeMap::new();
        for p in latest(points)
            .iter()
            .filter(|p| p.res_str("service.name") == Some(service))
        {
            let key = (
                p.attr_str("rpc.method").unwrap_or_default().to_owned(),
                p.attr_int("rpc.grpc.status_code").unwrap_or(-1),
            );
            *out.entry(key).or_insert(0) += p.histogram().map_or(0, |h| h.count);
        }
        out
    };
    for (name, service) in [
        ("rpc.server.call.duration", "echo-server"),
        ("rpc.client.call.duration", "echo-client"),
    ] {
        let points = receiver
            .wait_for_metric(name, TIMEOUT, |p| calls(p, service) == want)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        for p in latest(&points)
            .iter()
            .filter(|p| p.res_str("service.name") == Some(service))
        {
            assert_eq!(p.attr_str("rpc.system"), Some("grpc"), "{p}");
            assert_eq!(p.attr_str("rpc.service"), Some("demo.Echo"), "{p}");
            assert_eq!(p.unit, "s", "{p}");
            // NOT_FOUND is the caller's fault: an error for the client only.
            let not_found = p.attr_int("rpc.grpc.status_code") == Some(5);
            let client_side = name.starts_with("rpc.client");
            assert_eq!(
                p.attr_str("error.type"),
                (not_found && client_side).then_some("NOT_FOUND"),
                "{p}"
            );
            if client_side {
                assert_eq!(p.attr_int("server.port"), Some(i64::from(port)), "{p}");
            }
        }
    }
    stop(agent);
}
