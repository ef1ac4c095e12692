//! Zipkin export end to end: the real agent exports the same spans over
//! OTLP and to a Zipkin stand-in, and the two are compared field by field;
//! a dead Zipkin endpoint costs Zipkin's spans (counted) and nothing else.
//!
//! Every test needs root and the agent binary (`TRACER_BIN`, set by `cargo
//! xtask test`); without them it prints `SKIPPED <test>: <reason>` and
//! returns. Tests that run the agent take a machine-wide lock, so they run
//! one at a time whatever the test thread count.
use std::{collections::BTreeSet, net::TcpListener, time::Duration};

use integration_tests::{
    AttrValue, Protocol, ReceivedSpan, Receiver,
    agent::Agent,
    apps::{self, PyServerOpts, Server},
    flow::{self, SPAN_TIMEOUT, client, server},
    require_root,
    skip::TestEnv,
    zipkin_receiver::{self, ZipkinReceiver, ZipkinSpan},
};

const SERVICE: &str = "py-zipkin";

/// Tags the exporter adds to every span besides the span's attributes.
const SCOPE_TAGS: [&str; 4] = [
    "otel.scope.name",
    "otel.scope.version",
    "otel.library.name",
    "otel.library.version",
];

fn start_agent(env: &TestEnv, receiver: &Receiver, zipkin_endpoint: &str, args: &[&str]) -> Agent {
    let mut full = vec!["--zipkin-endpoint", zipkin_endpoint];
    full.extend_from_slice(args);
    match Agent::start(&env.tracer_bin, &full, receiver, Protocol::Grpc) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

fn py_server() -> Server {
    let opts = PyServerOpts {
        env: vec![("OTEL_SERVICE_NAME".to_owned(), SERVICE.to_owned())],
        ..PyServerOpts::default()
    };
    apps::python_server(&opts).expect("starting the Python server")
}

/// One curl request; returns the curl pid after checking the status.
fn curl(url: &str, want_status: u16) -> u32 {
    let (finished, status, _) = apps::curl_request(&[url]).expect("running curl");
    assert_eq!(status, want_status, "status seen by curl for {url}");
    finished.pid
}

/// An OTLP attribute as the Zipkin tag it must become.
fn tag_text(value: &AttrValue) -> String {
    match value {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Double(d) => d.to_string(),
        other => panic!("no attribute of our HTTP spans is a {other}"),
    }
}

/// The Zipkin span with the OTLP span's id, checked field by field.
fn check_same(otlp: &ReceivedSpan, zipkin: &[ZipkinSpan]) {
    let found: Vec<&ZipkinSpan> = zipkin
        .iter()
        .filter(|z| z.str("id") == Some(otlp.span_id.as_str()))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "Zipkin spans with the id of {otlp}:\n{}",
        zipkin_receiver::dump(zipkin)
    );
    let z = found[0];
    let what = format!(
        "{} {}\n  OTLP:   {otlp}\n  Zipkin: {}",
        otlp.kind, otlp.name, z.0
    );

    assert_eq!(z.str("traceId"), Some(otlp.trace_id.as_str()), "{what}");
    assert_eq!(z.str("parentId"), otlp.parent_span_id.as_deref(), "{what}");
    assert_eq!(z.str("name"), Some(otlp.name.as_str()), "{what}");
    assert_eq!(z.str("kind"), Some(otlp.kind.as_str()), "{what}");
    // Whole microseconds, rounded down; a duration is at least 1.
    assert_eq!(z.u64("timestamp"), Some(otlp.start_ns / 1000), "{what}");
    let duration = ((otlp.end_ns - otlp.start_ns) / 1000).max(1);
    assert_eq!(z.u64("duration"), Some(duration), "{what}");
    assert_eq!(z.service_name(), otlp.res_str("service.name"), "{what}");
    if otlp.is_server() {
        assert_eq!(z.service_name(), Some(SERVICE), "{what}");
    }

    // The other end of the connection, as the kernel saw it: the client's
    // socket for a server span, the server's for a client span.
    let peer_ip = otlp
        .attr_str("network.peer.address")
        .unwrap_or_else(|| panic!("network.peer.address missing: {what}"));
    let peer_port = otlp
        .attr_int("network.peer.port")
        .unwrap_or_else(|| panic!("network.peer.port missing: {what}"));
    assert_eq!(
        z.remote(),
        &serde_json::json!({"ipv4": peer_ip, "port": peer_port}),
        "remoteEndpoint of {what}"
    );

    // Every attribute a tag of the same value, and nothing else but the
    // scope and the status.
    for key in [
        "http.request.method",
        "http.response.status_code",
        "url.path",
        "url.scheme",
        "server.address",
        "server.port",
    ] {
        assert!(otlp.attr(key).is_some(), "{key} missing in OTLP: {what}");
    }
    for (key, value) in &otlp.attributes {
        assert_eq!(
            z.tag(key),
            Some(tag_text(value).as_str()),
            "tag {key}: {what}"
        );
    }
    for key in SCOPE_TAGS {
        assert!(z.tag(key).is_some(), "tag {key} missing: {what}");
    }
    assert_eq!(
        z.tag("otel.scope.name"),
        Some(otlp.scope_name.as_str()),
        "{what}"
    );
    let status: &[&str] = match otlp.status_code.as_str() {
        "ERROR" => {
            assert_eq!(z.tag("otel.status_code"), Some("ERROR"), "{what}");
            assert_eq!(z.tag("error"), Some(otlp.status_message.as_str()), "{what}");
            &["otel.status_code", "error"]
        }
        "UNSET" => &[],
        other => panic!("status {other} of {what}"),
    };
    let tags: BTreeSet<&str> = z.0["tags"]
        .as_object()
        .unwrap_or_else(|| panic!("no tags: {what}"))
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = otlp
        .attributes
        .keys()
        .map(String::as_str)
        .chain(SCOPE_TAGS)
        .chain(status.iter().copied())
        .collect();
    assert_eq!(tags, expected, "tag keys of {what}");
}

#[test]
fn zipkin_spans_match_the_otlp_spans() {
    let env = require_root!();
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let zipkin = ZipkinReceiver::start().expect("starting the Zipkin receiver");
    let server_app = py_server();
    let sp = server_app.pid();
    let agent = start_agent(
        &env,
        &receiver,
        &zipkin.endpoint(),
        &["--pid", &sp.to_string(), "--exe", "curl"],
    );

    let ok = curl(&server_app.url("/users/42"), 200);
    let failed = curl(&server_app.url("/status/500"), 500);
    // Zipkin gets its copy in the same batches; wait for it before the
    // agent stops, so this is not only the shutdown flush.
    let zipkin_waited = zipkin.wait_for(SPAN_TIMEOUT, |spans| spans.len() >= 4);
    let out = flow::finish(
        &receiver,
        agent,
        &[server(sp, 2), client(ok, 1), client(failed, 1)],
    );
    if let Err(e) = zipkin_waited {
        panic!("{e:#}\nagent stderr:\n{}", out.exit.stderr);
    }

    let otlp = out.exact(server(sp, 2));
    let clients = [out.one(ok, "CLIENT"), out.one(failed, "CLIENT")];
    let zipkin_spans = zipkin.spans();
    assert_eq!(
        zipkin_spans.len(),
        4,
        "{}",
        zipkin_receiver::dump(&zipkin_spans)
    );
    assert!(zipkin.errors().is_empty(), "refused: {:?}", zipkin.errors());
    for span in otlp.iter().chain(&clients) {
        check_same(span, &zipkin_spans);
    }

    // The 500 really was an error on both ends, and the 200 was not.
    let errors = otlp
        .iter()
        .chain(&clients)
        .filter(|s| s.status_code == "ERROR")
        .count();
    assert_eq!(
        errors,
        2,
        "{}",
        integration_tests::otlp_receiver::dump(&out.spans)
    );
    let ok_server = otlp
        .iter()
        .find(|s| s.attr_str("url.path") == Some("/users/42"))
        .expect("the server span of /users/42");
    assert_eq!(ok_server.res_str("service.name"), Some(SERVICE));

    out.only_from(&[sp, ok, failed]);
    out.assert_clean();
    assert_eq!(out.exit.counter("spans_exported"), 4);
    assert_eq!(out.exit.counter("zipkin_spans_exported"), 4);
    assert_eq!(out.exit.counter("zipkin_export_errors"), 0);
}

/// A port that was just free and is now closed: connects are refused.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn a_dead_zipkin_endpoint_costs_only_zipkin_spans() {
    let env = require_root!();
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let dead = format!("http://127.0.0.1:{}/api/v2/spans", closed_port());
    let server_app = py_server();
    let sp = server_app.pid();
    let agent = start_agent(&env, &receiver, &dead, &["--pid", &sp.to_string()]);

    for _ in 0..3 {
        curl(&server_app.url("/hello"), 200);
    }
    if let Err(e) = receiver.wait_for(SPAN_TIMEOUT, |s| s.len() >= 3) {
        panic!("{e:#}\nagent stderr:\n{}", agent.stderr());
    }
    // Zipkin has failed by now, and the agent goes on tracing and
    // exporting over OTLP.
    assert!(
        agent.wait_log("Zipkin export to", Duration::from_secs(10)),
        "no Zipkin failure logged:\n{}",
        agent.stderr()
    );
    for _ in 0..3 {
        curl(&server_app.url("/hello"), 200);
    }
    let out = flow::finish(&receiver, agent, &[server(sp, 6)]);
    out.exact(server(sp, 6));
    out.only_from(&[sp]);

    let exit = &out.exit;
    assert!(
        exit.status.success(),
        "agent exit {}\n{}",
        exit.status,
        exit.stderr
    );
    let counters = exit.counters();
    assert_eq!(exit.counter("spans_exported"), 6, "{counters:?}");
    assert_eq!(exit.counter("export_errors"), 0, "{counters:?}");
    assert!(
        exit.counter("drop_zipkin_export_failed") > 0,
        "{counters:?}"
    );
    assert!(exit.counter("zipkin_export_errors") > 0, "{counters:?}");
    assert_eq!(exit.counter("zipkin_spans_exported"), 0, "{counters:?}");
    // Every Zipkin span is accounted for, and nothing else was lost.
    assert_eq!(
        exit.counter("drop_zipkin_export_failed") + exit.counter("drop_zipkin_buffer_full"),
        6,
        "{counters:?}"
    );
    let other_drops: Vec<_> = exit
        .nonzero_drops()
        .into_keys()
        .filter(|k| !k.starts_with("drop_zipkin_"))
        .collect();
    assert!(other_drops.is_empty(), "{counters:?}\n{}", exit.stderr);
}
