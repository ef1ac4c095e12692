//! HTTP/1.x end to end: the real agent traces real servers and clients, and
//! the spans it exports over OTLP are checked exactly (counts and values).
//!
//! Every test needs root and the agent binary (`TRACER_BIN`, set by `cargo
//! xtask test`); without them it prints `SKIPPED <test>: <reason>` and
//! returns. Tests that run the agent take a machine-wide lock, so they run
//! one at a time whatever the test thread count.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Duration,
};

use integration_tests::{
    Protocol, ReceivedSpan, Receiver,
    agent::{self, Agent},
    apps::{self, PyServerOpts, Server},
    flow::{self, Outcome, client, server},
    process::Proc,
    require_root, skip,
    skip::TestEnv,
    skip_unless,
    spans::Check,
};

const GET_USER: &str = "GET /users/{id}";

fn receiver() -> Receiver {
    Receiver::start().expect("starting the OTLP receiver")
}

fn start_agent(env: &TestEnv, receiver: &Receiver, protocol: Protocol, args: &[&str]) -> Agent {
    match Agent::start(&env.tracer_bin, args, receiver, protocol) {
        Ok(agent) => agent,
        Err(e) => panic!("{}: starting the agent: {e:#}", env.test),
    }
}

fn py_server(service_name: Option<&str>) -> Server {
    let mut opts = PyServerOpts::default();
    if let Some(name) = service_name {
        opts.env
            .push(("OTEL_SERVICE_NAME".to_owned(), name.to_owned()));
    }
    apps::python_server(&opts).expect("starting the Python server")
}

/// One curl request; returns (curl pid, local port) after checking the
/// status curl saw.
/// A client that printed `marker` and waits for "go" on stdin: start the
/// agent tracing it and the server `sp`, release it, and wait for it.
fn release_held_client(
    env: &TestEnv,
    receiver: &Receiver,
    sp: u32,
    mut client_proc: Proc,
    marker: &str,
) -> (Agent, integration_tests::process::Finished) {
    assert!(
        client_proc
            .stdout
            .wait_line(Duration::from_secs(20), |l| l.trim() == marker),
        "the client did not print {marker}: {}",
        client_proc.stdout.text()
    );
    let cp = client_proc.pid();
    let agent = start_agent(
        env,
        receiver,
        Protocol::Grpc,
        &["--pid", &sp.to_string(), "--pid", &cp.to_string()],
    );
    client_proc
        .write_stdin("go\n")
        .expect("releasing the client");
    let finished = client_proc
        .finish(apps::CLIENT_TIMEOUT)
        .and_then(|f| f.ok())
        .expect("client");
    (agent, finished)
}

fn curl(args: &[&str], want_status: u16) -> (u32, u16) {
    let (finished, status, local_port) = apps::curl_request(args).expect("running curl");
    assert_eq!(status, want_status, "status seen by curl for {args:?}");
    (finished.pid, local_port)
}

fn curl_path() -> PathBuf {
    let path = apps::tool("curl").expect("curl");
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// `STATUS <code>` lines printed by the test clients.
fn statuses(stdout: &str) -> Vec<u16> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("STATUS "))
        .map(|s| s.trim().parse().expect("a status code"))
        .collect()
}

fn local_port(stdout: &str) -> i64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("LOCAL_PORT "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no LOCAL_PORT line in {stdout:?}"))
}

fn int_attr(span: &ReceivedSpan, key: &str) -> i64 {
    span.attr_int(key)
        .unwrap_or_else(|| panic!("{key} missing or not an int in {span}"))
}

fn str_attr<'a>(span: &'a ReceivedSpan, key: &str) -> &'a str {
    span.attr_str(key)
        .unwrap_or_else(|| panic!("{key} missing or not a string in {span}"))
}

/// Checks shared by every HTTP span: request line, scheme, protocol
/// version, timing, and no query string by default.
fn http_span<'a>(span: &'a ReceivedSpan, what: &str, method: &str, path: &str) -> Check<'a> {
    let full_has_query = span.attr_str("url.full").is_some_and(|u| u.contains('?'));
    Check::new(span, what)
        .str("http.request.method", method)
        .str("url.path", path)
        .str("url.scheme", "http")
        .str("network.protocol.version", "1.1")
        .absent("url.query")
        .that(!full_has_query, "url.full carries the query string")
        .timed()
}

/// Resource of a process the test started.
fn resource_check<'a>(
    check: Check<'a>,
    pid: u32,
    service: &str,
    exe_name: &str,
    exe_path: &str,
) -> Check<'a> {
    check
        .res_str("service.name", service)
        .res_int("process.pid", i64::from(pid))
        .res_str("process.executable.name", exe_name)
        .res_str("process.executable.path", exe_path)
        .res_str("host.name", &apps::host_name())
        .res_present("telemetry.sdk.name")
}

fn exe_of(pid: u32) -> (String, String) {
    let name = apps::exe_name(pid).expect("exe name");
    let path = apps::exe_path(pid).expect("exe path");
    (name, path.to_string_lossy().into_owned())
}

#[test]
fn python_server_curl_client() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(Some("py-server"));
    let sp = server_app.pid();
    let port = i64::from(server_app.port());
    let (exe_name, exe_path) = exe_of(sp);
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &sp.to_string(), "--exe", "curl"],
    );

    let (cp, curl_port) = curl(&[&server_app.url("/users/42")], 200);
    let out = flow::finish(&receiver, agent, &[server(sp, 1), client(cp, 1)]);

    let s = out.one(sp, "SERVER");
    let check = http_span(&s, "python SERVER span", "GET", "/users/42")
        .name(GET_USER)
        .kind("SERVER")
        .status("UNSET")
        .str("http.route", "/users/{id}")
        .int("http.response.status_code", 200)
        .str("server.address", "127.0.0.1")
        .int("server.port", port)
        .str("client.address", "127.0.0.1")
        .str("network.peer.address", "127.0.0.1")
        .int("network.peer.port", i64::from(curl_port))
        .str_prefix("user_agent.original", "curl/")
        .absent("error.type");
    resource_check(check, sp, "py-server", &exe_name, &exe_path).done();

    let c = out.one(cp, "CLIENT");
    let check = http_span(&c, "curl CLIENT span", "GET", "/users/42")
        .name(GET_USER)
        .kind("CLIENT")
        .status("UNSET")
        .int("http.response.status_code", 200)
        .str("server.address", "127.0.0.1")
        .int("server.port", port)
        .str("network.peer.address", "127.0.0.1")
        .int("network.peer.port", port)
        .str_prefix("user_agent.original", "curl/")
        .absent("error.type");
    resource_check(check, cp, "curl", "curl", &curl_path().to_string_lossy()).done();

    assert_eq!(
        flow_count(&out, sp, "CLIENT") + flow_count(&out, cp, "SERVER"),
        0
    );
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

/// --exe selects a process in the kernel, as it executes: before its first
/// instruction, not when the agent gets to its exec event. curl is run
/// through symlinks whose own name (short, longer than a task name, or a
/// full path) is the one selected: the agent's match of /proc/PID/exe
/// (curl) never selects them, so every span of theirs comes from the
/// kernel's selection. Symlinks that only begin like a selected name are
/// not selected.
#[test]
fn exe_is_selected_by_the_kernel_at_exec() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let dir = apps::TempDir::new("exe-select").expect("a temporary directory");
    let long = "selected-by-a-long-file-name-curl";
    let by_path = dir.path.join("by-path-curl");
    let by_path_arg = by_path.to_string_lossy().into_owned();
    // (file name, selected, run by a relative path: the kernel sees
    // `./name`, shorter than the long selected name that shares its task
    // name, which must not hide it)
    let links = [
        ("sel-curl", true, false),
        (long, true, false),
        ("selected-by-a-l-2", true, true),
        ("by-path-curl", true, false),
        ("sel-curl-not", false, true),
        ("selected-by-a-long-file-name-curl-not", false, false),
    ];
    for (name, ..) in &links {
        std::os::unix::fs::symlink(curl_path(), dir.path.join(name)).expect("a symlink to curl");
    }
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &[
            "--pid",
            &sp.to_string(),
            "--exe",
            "sel-curl",
            "--exe",
            long,
            "--exe",
            "selected-by-a-l-2",
            "--exe",
            &by_path_arg,
        ],
    );
    let url = server_app.url("/users/42");
    let mut selected = Vec::new();
    let mut unselected = Vec::new();
    for (name, wanted, relative) in &links {
        let mut cmd = if *relative {
            let mut cmd = std::process::Command::new(format!("./{name}"));
            cmd.current_dir(&dir.path);
            cmd
        } else {
            std::process::Command::new(dir.path.join(name))
        };
        cmd.args(["-s", "--max-time", "30", "-o", "/dev/null", &url]);
        let finished = apps::run(name, cmd).expect("curl through a symlink");
        if *wanted {
            selected.push(finished.pid);
        } else {
            unselected.push(finished.pid);
        }
    }
    let mut wants = vec![server(sp, links.len())];
    wants.extend(selected.iter().map(|&pid| client(pid, 1)));
    let out = flow::finish(&receiver, agent, &wants);
    let selected_names = links.iter().filter(|(_, wanted, _)| *wanted);
    for (pid, (name, ..)) in selected.iter().zip(selected_names) {
        let c = out.one(*pid, "CLIENT");
        http_span(&c, name, "GET", "/users/42")
            .kind("CLIENT")
            .int("http.response.status_code", 200)
            .done();
    }
    for pid in &unselected {
        assert_eq!(
            flow_count(&out, *pid, "CLIENT"),
            0,
            "pid {pid} was not selected"
        );
    }
    let mut traced = selected.clone();
    traced.push(sp);
    out.only_from(&traced);
    out.assert_clean();
}

fn flow_count(out: &Outcome, pid: u32, kind: &str) -> usize {
    integration_tests::spans::count(&out.spans, pid, kind)
}

#[test]
fn python_server_urllib_client_10_requests() {
    let env = require_root!();
    let receiver = receiver();
    // No OTEL_SERVICE_NAME: the service is named after the executable.
    let server_app = py_server(None);
    let sp = server_app.pid();
    let (exe_name, exe_path) = exe_of(sp);
    // The client is a python process too, so it is selected by pid: it
    // starts first and waits for a line on stdin before sending anything.
    let client_proc = Proc::spawn(
        "py-client",
        apps::python_client(&[
            "urllib",
            &server_app.url("/users/7"),
            "--count",
            "10",
            "--wait",
        ]),
        true,
    )
    .expect("spawning the client");
    let cp = client_proc.pid();
    let (agent, finished) = release_held_client(&env, &receiver, sp, client_proc, "WAITING");
    assert_eq!(statuses(&finished.stdout), vec![200; 10]);

    let out = flow::finish(&receiver, agent, &[server(sp, 10), client(cp, 10)]);
    let servers = out.exact(server(sp, 10));
    let clients = out.exact(client(cp, 10));
    for s in &servers {
        let check = http_span(s, "python SERVER span", "GET", "/users/7")
            .name(GET_USER)
            .status("UNSET")
            .str("http.route", "/users/{id}")
            .int("http.response.status_code", 200)
            .str("client.address", "127.0.0.1")
            .str_prefix("user_agent.original", "Python-urllib/");
        resource_check(check, sp, &exe_name, &exe_name, &exe_path).done();
    }
    for c in &clients {
        http_span(c, "urllib CLIENT span", "GET", "/users/7")
            .name(GET_USER)
            .status("UNSET")
            .int("http.response.status_code", 200)
            .int("server.port", i64::from(server_app.port()))
            .int("network.peer.port", i64::from(server_app.port()))
            .str_prefix("user_agent.original", "Python-urllib/")
            .res_int("process.pid", i64::from(cp))
            .done();
    }
    // urllib opens a connection per request.
    let peer_ports: BTreeSet<i64> = servers
        .iter()
        .map(|s| int_attr(s, "network.peer.port"))
        .collect();
    assert_eq!(peer_ports.len(), 10, "one connection per request");
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

#[test]
fn keepalive_100_requests_on_one_connection() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &["--pid", &sp.to_string()]);

    let port = server_app.port().to_string();
    let finished = apps::run(
        "py-raw",
        apps::python_client(&["raw", "127.0.0.1", &port, "--count", "100", "/hello"]),
    )
    .expect("client");
    assert_eq!(statuses(&finished.stdout), vec![200; 100]);
    let client_port = local_port(&finished.stdout);

    let out = flow::finish(&receiver, agent, &[server(sp, 100)]);
    for s in out.exact(server(sp, 100)) {
        http_span(&s, "keep-alive SERVER span", "GET", "/hello")
            .name("GET /hello")
            .status("UNSET")
            .int("http.response.status_code", 200)
            .int("network.peer.port", client_port)
            .str("user_agent.original", "tracer-test-raw/1")
            .done();
    }
    out.only_from(&[sp]);
    out.assert_clean();
}

#[test]
fn pipelined_requests_in_one_send() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &["--pid", &sp.to_string()]);

    let port = server_app.port().to_string();
    let paths = ["/hello", "/status/404", "/users/1", "/status/500", "/hello"];
    let mut args = vec!["raw", "127.0.0.1", port.as_str(), "--pipeline"];
    args.extend(paths);
    let finished = apps::run("py-raw", apps::python_client(&args)).expect("client");
    assert_eq!(statuses(&finished.stdout), vec![200, 404, 200, 500, 200]);
    let client_port = local_port(&finished.stdout);

    let out = flow::finish(&receiver, agent, &[server(sp, 5)]);
    let spans = out.exact(server(sp, 5));
    let mut got: Vec<(String, String, i64, String)> = spans
        .iter()
        .map(|s| {
            (
                str_attr(s, "url.path").to_owned(),
                s.name.clone(),
                int_attr(s, "http.response.status_code"),
                s.status_code.clone(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, i64, String)> = vec![
        ("/hello".into(), "GET /hello".into(), 200, "UNSET".into()),
        ("/hello".into(), "GET /hello".into(), 200, "UNSET".into()),
        (
            "/status/404".into(),
            "GET /status/{id}".into(),
            404,
            "UNSET".into(),
        ),
        (
            "/status/500".into(),
            "GET /status/{id}".into(),
            500,
            "ERROR".into(),
        ),
        ("/users/1".into(), GET_USER.into(), 200, "UNSET".into()),
    ];
    want.sort();
    assert_eq!(
        got,
        want,
        "pipelined spans:\n{}",
        integration_tests::otlp_receiver::dump(&spans)
    );
    for s in &spans {
        Check::new(s, "pipelined SERVER span")
            .int("network.peer.port", client_port)
            .done();
    }
    out.only_from(&[sp]);
    out.assert_clean();
}

/// A 1 MiB file for request bodies.
fn one_mib_file(dir: &apps::TempDir) -> String {
    let path = dir.path.join("body.bin");
    std::fs::write(&path, vec![b'a'; 1 << 20]).expect("writing the body file");
    path.to_string_lossy().into_owned()
}

#[test]
fn chunked_big_and_posted_bodies() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let dir = apps::TempDir::new("tracer-body").expect("temp dir");
    let body = format!("@{}", one_mib_file(&dir));
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &sp.to_string(), "--exe", "curl"],
    );

    let (c1, _) = curl(&[&server_app.url("/chunked?n=50")], 200);
    let (c2, _) = curl(&[&server_app.url("/big?bytes=1048576")], 200);
    // `Expect:` off: 100-continue has a test of its own.
    let (c3, _) = curl(
        &[
            "-X",
            "POST",
            "-H",
            "Expect:",
            "--data-binary",
            &body,
            &server_app.url("/echo"),
        ],
        200,
    );

    let out = flow::finish(
        &receiver,
        agent,
        &[server(sp, 3), client(c1, 1), client(c2, 1), client(c3, 1)],
    );
    let servers = out.exact(server(sp, 3));
    let by_path: BTreeMap<&str, &ReceivedSpan> = servers
        .iter()
        .map(|s| (str_attr(s, "url.path"), s))
        .collect();
    assert_eq!(
        by_path.keys().copied().collect::<Vec<_>>(),
        vec!["/big", "/chunked", "/echo"],
        "server span paths (no query strings)"
    );
    for (path, method, pid) in [
        ("/chunked", "GET", c1),
        ("/big", "GET", c2),
        ("/echo", "POST", c3),
    ] {
        let name = format!("{method} {path}");
        http_span(by_path[path], "SERVER span", method, path)
            .name(&name)
            .status("UNSET")
            .str("http.route", path)
            .int("http.response.status_code", 200)
            .done();
        let c = out.one(pid, "CLIENT");
        http_span(&c, "curl CLIENT span", method, path)
            .name(&name)
            .status("UNSET")
            .int("http.response.status_code", 200)
            .done();
    }
    out.only_from(&[sp, c1, c2, c3]);
    out.assert_clean();
}

#[test]
fn expect_100_continue_post() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let dir = apps::TempDir::new("tracer-body").expect("temp dir");
    let body = format!("@{}", one_mib_file(&dir));
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &sp.to_string(), "--exe", "curl"],
    );

    // The interim 100 Continue must not end the exchange.
    let (cp, _) = curl(
        &[
            "-X",
            "POST",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &body,
            &server_app.url("/echo"),
        ],
        200,
    );
    let out = flow::finish(&receiver, agent, &[server(sp, 1), client(cp, 1)]);
    for (span, what) in [
        (out.one(sp, "SERVER"), "SERVER"),
        (out.one(cp, "CLIENT"), "CLIENT"),
    ] {
        http_span(&span, what, "POST", "/echo")
            .name("POST /echo")
            .status("UNSET")
            .int("http.response.status_code", 200)
            .done();
    }
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

#[test]
fn error_statuses_on_server_and_client_spans() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &sp.to_string(), "--exe", "curl"],
    );

    let (c500, _) = curl(&[&server_app.url("/status/500")], 500);
    let (c404, _) = curl(&[&server_app.url("/status/404")], 404);
    let out = flow::finish(
        &receiver,
        agent,
        &[server(sp, 2), client(c500, 1), client(c404, 1)],
    );

    let servers = out.exact(server(sp, 2));
    let by_path: BTreeMap<&str, &ReceivedSpan> = servers
        .iter()
        .map(|s| (str_attr(s, "url.path"), s))
        .collect();
    let s500 = by_path
        .get("/status/500")
        .expect("a server span for /status/500");
    let s404 = by_path
        .get("/status/404")
        .expect("a server span for /status/404");
    http_span(s500, "5xx SERVER span", "GET", "/status/500")
        .name("GET /status/{id}")
        .status("ERROR")
        .str("error.type", "500")
        .int("http.response.status_code", 500)
        .done();
    http_span(s404, "4xx SERVER span", "GET", "/status/404")
        .name("GET /status/{id}")
        .status("UNSET")
        .absent("error.type")
        .int("http.response.status_code", 404)
        .done();
    http_span(
        &out.one(c500, "CLIENT"),
        "5xx CLIENT span",
        "GET",
        "/status/500",
    )
    .status("ERROR")
    .str("error.type", "500")
    .int("http.response.status_code", 500)
    .done();
    http_span(
        &out.one(c404, "CLIENT"),
        "4xx CLIENT span",
        "GET",
        "/status/404",
    )
    .status("ERROR")
    .str("error.type", "404")
    .int("http.response.status_code", 404)
    .done();
    out.only_from(&[sp, c500, c404]);
    out.assert_clean();
}

#[test]
fn head_and_http10_requests() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &sp.to_string(), "--exe", "curl"],
    );

    let (head, _) = curl(&["-I", &server_app.url("/hello")], 200);
    let (http10, _) = curl(&["--http1.0", &server_app.url("/users/3")], 200);
    let out = flow::finish(
        &receiver,
        agent,
        &[server(sp, 2), client(head, 1), client(http10, 1)],
    );
    let servers = out.exact(server(sp, 2));
    let by_method: BTreeMap<&str, &ReceivedSpan> = servers
        .iter()
        .map(|s| (str_attr(s, "http.request.method"), s))
        .collect();
    for (span, what) in [
        (by_method.get("HEAD").copied().cloned(), "HEAD SERVER span"),
        (Some(out.one(head, "CLIENT")), "HEAD CLIENT span"),
    ] {
        let span = span.unwrap_or_else(|| panic!("no {what}"));
        http_span(&span, what, "HEAD", "/hello")
            .name("HEAD /hello")
            .status("UNSET")
            .int("http.response.status_code", 200)
            .done();
    }
    for (span, what) in [
        (
            by_method.get("GET").copied().cloned(),
            "HTTP/1.0 SERVER span",
        ),
        (Some(out.one(http10, "CLIENT")), "HTTP/1.0 CLIENT span"),
    ] {
        let span = span.unwrap_or_else(|| panic!("no {what}"));
        Check::new(&span, what)
            .name(GET_USER)
            .str("url.path", "/users/3")
            .str("network.protocol.version", "1.0")
            .int("http.response.status_code", 200)
            .done();
    }
    out.assert_clean();
}

/// A process whose main thread ends while another thread serves on (the
/// kernel keeps the process; its leader is a zombie) has not exited: its
/// requests before and after are traced alike, as one process. The kernel
/// says a process ended when its last thread does, not its first.
/// Whether the main thread of `pid` has ended while the process lives on:
/// its state in /proc (the field after the parenthesised name) is Z.
fn leader_is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            Some(rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn server_whose_main_thread_ends_is_still_traced() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = apps::python_server(&PyServerOpts {
        main_thread_leaves: true,
        ..PyServerOpts::default()
    })
    .expect("starting the Python server");
    let sp = server_app.pid();
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &["--pid", &sp.to_string()]);
    curl(&[&server_app.url("/users/1")], 200);
    curl(&[&server_app.url("/leave-main-thread")], 200);
    // The leader's state in /proc turns to Z once its thread is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !leader_is_zombie(sp) {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {sp}'s main thread never became a zombie"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for id in 2..=3 {
        curl(&[&server_app.url(&format!("/users/{id}"))], 200);
    }
    let out = flow::finish(&receiver, agent, &[server(sp, 4)]);
    let spans = out.exact(server(sp, 4));
    let paths: Vec<&str> = spans.iter().map(|s| str_attr(s, "url.path")).collect();
    assert_eq!(
        paths,
        ["/users/1", "/leave-main-thread", "/users/2", "/users/3"],
        "server spans"
    );
    // One process throughout: the same resource before and after.
    for span in &spans {
        assert_eq!(span.resource, spans[0].resource, "{span}");
    }
    assert_eq!(spans[0].res_int("process.pid"), Some(i64::from(sp)));
    out.only_from(&[sp]);
    out.assert_clean();
}

#[test]
fn ipv6_loopback() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = apps::python_server(&PyServerOpts {
        ipv6: true,
        ..PyServerOpts::default()
    })
    .expect("starting the Python server on ::1");
    let sp = server_app.pid();
    let port = i64::from(server_app.port());
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &sp.to_string(), "--exe", "curl"],
    );

    let url = server_app.url("/users/5");
    assert!(url.starts_with("http://[::1]:"), "{url}");
    let (cp, curl_port) = curl(&[&url], 200);
    let out = flow::finish(&receiver, agent, &[server(sp, 1), client(cp, 1)]);
    http_span(
        &out.one(sp, "SERVER"),
        "IPv6 SERVER span",
        "GET",
        "/users/5",
    )
    .name(GET_USER)
    .int("http.response.status_code", 200)
    .str("server.address", "::1")
    .int("server.port", port)
    .str("client.address", "::1")
    .str("network.peer.address", "::1")
    .int("network.peer.port", i64::from(curl_port))
    .done();
    http_span(
        &out.one(cp, "CLIENT"),
        "IPv6 CLIENT span",
        "GET",
        "/users/5",
    )
    .name(GET_USER)
    .int("http.response.status_code", 200)
    .str("server.address", "::1")
    .int("server.port", port)
    .str("network.peer.address", "::1")
    .int("network.peer.port", port)
    .done();
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

#[test]
fn go_server_and_go_client() {
    const N: usize = 20;
    let env = require_root!();
    let go = skip_unless!(env, apps::go_compiler());
    let server_bin = apps::go_binary(&go, "server").expect("building the Go server");
    let client_bin = apps::go_binary(&go, "client").expect("building the Go client");
    let receiver = receiver();
    let server_app = apps::go_server(&server_bin).expect("starting the Go server");
    let sp = server_app.pid();
    let port = i64::from(server_app.port());
    let client_name = client_bin
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &sp.to_string(), "--exe", &client_name],
    );

    let finished = apps::run(
        "go-client",
        apps::go_client(&client_bin, &server_app.url("/users/"), N),
    )
    .expect("Go client");
    assert_eq!(statuses(&finished.stdout), vec![200; N]);
    let cp = finished.pid;

    let out = flow::finish(&receiver, agent, &[server(sp, N), client(cp, N)]);
    let servers = out.exact(server(sp, N));
    let clients = out.exact(client(cp, N));
    let want_paths: BTreeSet<String> = (1..=N).map(|i| format!("/users/{i}")).collect();
    for (spans, kind) in [(&servers, "SERVER"), (&clients, "CLIENT")] {
        let paths: BTreeSet<String> = spans
            .iter()
            .map(|s| str_attr(s, "url.path").to_owned())
            .collect();
        assert_eq!(paths, want_paths, "url.path of the Go {kind} spans");
        for s in spans.iter() {
            let path = str_attr(s, "url.path").to_owned();
            http_span(s, &format!("Go {kind} span"), "GET", &path)
                .name(GET_USER)
                .status("UNSET")
                .int("http.response.status_code", 200)
                .int("server.port", port)
                .str_prefix("user_agent.original", "Go-http-client/")
                .done();
        }
    }
    let server_name = apps::exe_name(sp).expect("exe name");
    for s in &servers {
        Check::new(s, "Go SERVER span")
            .str("http.route", "/users/{id}")
            .res_str("service.name", &server_name)
            .done();
    }
    for c in &clients {
        Check::new(c, "Go CLIENT span")
            .int("network.peer.port", port)
            .res_str("service.name", &client_name)
            .done();
    }
    // One keep-alive connection.
    let peer_ports: BTreeSet<i64> = servers
        .iter()
        .map(|s| int_attr(s, "network.peer.port"))
        .collect();
    assert_eq!(peer_ports.len(), 1, "the Go client reuses one connection");
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

/// The Go server and client built with every installed Go version
/// (`TRACER_GO_VERSIONS`), all traced by one agent: struct layouts and
/// calling conventions differ between versions.
#[test]
fn go_programs_of_every_installed_go_version() {
    const N: usize = 5;
    let env = require_root!();
    let versions = skip_unless!(env, apps::go_versions());
    let receiver = receiver();
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    let mut args = Vec::new();
    for (version, go) in &versions {
        let tag = version.replace('.', "_");
        let server_bin = apps::go_binary_named(go, "server", &format!("tt-go{tag}-server"))
            .unwrap_or_else(|e| panic!("building the Go {version} server: {e:#}"));
        let client_bin = apps::go_binary_named(go, "client", &format!("tt-go{tag}-client"))
            .unwrap_or_else(|e| panic!("building the Go {version} client: {e:#}"));
        let server_app = apps::go_server(&server_bin).expect("starting a Go server");
        args.extend(["--pid".to_owned(), server_app.pid().to_string()]);
        args.extend(["--exe".to_owned(), format!("tt-go{tag}-client")]);
        servers.push((version.clone(), server_app));
        clients.push(client_bin);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &args);

    let mut wants = Vec::new();
    let mut runs = Vec::new();
    for ((version, server_app), client_bin) in servers.iter().zip(&clients) {
        let finished = apps::run(
            "go-client",
            apps::go_client(client_bin, &server_app.url("/users/"), N),
        )
        .unwrap_or_else(|e| panic!("Go {version} client: {e:#}"));
        assert_eq!(statuses(&finished.stdout), vec![200; N]);
        wants.extend([server(server_app.pid(), N), client(finished.pid, N)]);
        runs.push((version, server_app.pid(), finished.pid));
    }
    let out = flow::finish(&receiver, agent, &wants);
    for (version, sp, cp) in runs {
        for (pid, kind) in [(sp, "SERVER"), (cp, "CLIENT")] {
            for span in out.exact(flow::Want {
                pid,
                kind,
                count: N,
            }) {
                Check::new(&span, format!("Go {version} {kind} span"))
                    .name(GET_USER)
                    .str("http.request.method", "GET")
                    .int("http.response.status_code", 200)
                    .done();
            }
        }
    }
    out.assert_clean();
}

/// curl → nginx → python, with nginx, python and curl traced.
struct ProxyRun {
    out: Outcome,
    curl: u32,
    nginx: Vec<u32>,
    backend: u32,
    nginx_port: i64,
    backend_port: i64,
}

fn run_through_nginx(env: &TestEnv) -> Option<ProxyRun> {
    if let Err(reason) = apps::tool("nginx") {
        skip::skip(&env.test, &reason);
        return None;
    }
    let receiver = receiver();
    let backend = py_server(Some("py-backend"));
    let bp = backend.pid();
    let nginx = apps::Nginx::start(backend.port()).expect("starting nginx");
    let agent = start_agent(
        env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &bp.to_string(), "--exe", "nginx", "--exe", "curl"],
    );
    let (cp, _) = curl(
        &[&format!("http://127.0.0.1:{}/users/7", nginx.port())],
        200,
    );
    let nginx_pids = nginx.pids();
    let out = flow::finish_when(&receiver, agent, |spans| {
        let from_nginx = |kind: &str| {
            spans
                .iter()
                .filter(|s| s.kind == kind && s.pid().is_some_and(|p| nginx_pids.contains(&p)))
                .count()
        };
        integration_tests::spans::count(spans, bp, "SERVER") >= 1
            && integration_tests::spans::count(spans, cp, "CLIENT") >= 1
            && from_nginx("SERVER") >= 1
            && from_nginx("CLIENT") >= 1
    });
    Some(ProxyRun {
        out,
        curl: cp,
        nginx: nginx_pids,
        backend: bp,
        nginx_port: i64::from(nginx.port()),
        backend_port: i64::from(backend.port()),
    })
}

impl ProxyRun {
    fn nginx_span(&self, kind: &str) -> ReceivedSpan {
        let found: Vec<&ReceivedSpan> = self
            .out
            .spans
            .iter()
            .filter(|s| s.kind == kind && s.pid().is_some_and(|p| self.nginx.contains(&p)))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one nginx {kind} span; all spans:\n{}",
            integration_tests::otlp_receiver::dump(&self.out.spans)
        );
        found[0].clone()
    }
}

#[test]
fn nginx_reverse_proxy() {
    let env = require_root!();
    let Some(run) = run_through_nginx(&env) else {
        return;
    };
    let curl_span = run.out.one(run.curl, "CLIENT");
    let nginx_server = run.nginx_span("SERVER");
    let nginx_client = run.nginx_span("CLIENT");
    let backend = run.out.one(run.backend, "SERVER");
    let (nginx_port, backend_port) = (run.nginx_port, run.backend_port);

    http_span(&curl_span, "curl CLIENT span", "GET", "/users/7")
        .name(GET_USER)
        .int("http.response.status_code", 200)
        .int("server.port", nginx_port)
        .int("network.peer.port", nginx_port)
        .done();
    http_span(&nginx_server, "nginx SERVER span", "GET", "/users/7")
        .name(GET_USER)
        .status("UNSET")
        .int("http.response.status_code", 200)
        .int("server.port", nginx_port)
        .str("client.address", "127.0.0.1")
        .str_prefix("user_agent.original", "curl/")
        .res_str("service.name", "nginx")
        .res_str("process.executable.name", "nginx")
        .done();
    http_span(&nginx_client, "nginx CLIENT span", "GET", "/users/7")
        .name(GET_USER)
        .status("UNSET")
        .int("http.response.status_code", 200)
        .str("server.address", "127.0.0.1")
        .int("server.port", backend_port)
        .int("network.peer.port", backend_port)
        .res_str("service.name", "nginx")
        .done();
    http_span(&backend, "python SERVER span", "GET", "/users/7")
        .name(GET_USER)
        .status("UNSET")
        .int("http.response.status_code", 200)
        .str("server.address", "127.0.0.1")
        .int("server.port", backend_port)
        .res_str("service.name", "py-backend")
        .done();
    // Other nginx or curl processes on the machine match `--exe` too: count
    // only ours.
    let mut ours = run.nginx.clone();
    ours.extend([run.curl, run.backend]);
    let from_ours = run
        .out
        .spans
        .iter()
        .filter(|s| s.pid().is_some_and(|p| ours.contains(&p)))
        .count();
    assert_eq!(
        from_ours,
        4,
        "spans:\n{}",
        integration_tests::otlp_receiver::dump(&run.out.spans)
    );
    run.out.assert_clean();
}

/// Not in the first contract but in the design: one trace from curl
/// through nginx to python, each span the child of the one before.
#[test]
fn trace_context_through_nginx() {
    let env = require_root!();
    let Some(run) = run_through_nginx(&env) else {
        return;
    };
    let curl_span = run.out.one(run.curl, "CLIENT");
    let nginx_server = run.nginx_span("SERVER");
    let nginx_client = run.nginx_span("CLIENT");
    let backend = run.out.one(run.backend, "SERVER");
    let chain = [&curl_span, &nginx_server, &nginx_client, &backend];
    let listing = integration_tests::otlp_receiver::dump(&run.out.spans);
    for span in &chain {
        assert_eq!(span.trace_id, curl_span.trace_id, "one trace:\n{listing}");
    }
    assert_eq!(
        curl_span.parent_span_id, None,
        "curl starts the trace:\n{listing}"
    );
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].parent_span_id.as_deref(),
            Some(pair[0].span_id.as_str()),
            "{} is the parent of {}:\n{listing}",
            pair[0].name,
            pair[1].name
        );
    }
    run.out.assert_clean();
}

/// What a span says, minus what differs between two runs of the same
/// traffic (ids, times, ephemeral ports, pids of short-lived clients).
fn normalized(span: &ReceivedSpan) -> String {
    let mut attributes = span.attributes.clone();
    if span.is_server() {
        attributes.remove("network.peer.port");
    }
    let mut resource = span.resource.clone();
    if span.is_client() {
        // A new curl each run: its pid, and so its instance id, differ.
        resource.remove("process.pid");
        resource.remove("service.instance.id");
        // And it may be gone before the agent reads its /proc entry: its
        // path is then unknown (its name still comes from the kernel).
        resource.remove("process.executable.path");
    }
    format!(
        "{} {} {} {:?} {:?}",
        span.kind, span.name, span.status_code, attributes, resource
    )
}

#[test]
fn both_otlp_transports_give_the_same_spans() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(Some("py-server"));
    let sp = server_app.pid();
    let mut runs = Vec::new();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        receiver.clear();
        let agent = start_agent(
            &env,
            &receiver,
            protocol,
            &["--pid", &sp.to_string(), "--exe", "curl"],
        );
        let (c1, _) = curl(&[&server_app.url("/users/42")], 200);
        let (c2, _) = curl(&[&server_app.url("/status/503")], 503);
        let out = flow::finish(
            &receiver,
            agent,
            &[server(sp, 2), client(c1, 1), client(c2, 1)],
        );
        out.exact(server(sp, 2));
        out.exact(client(c1, 1));
        out.exact(client(c2, 1));
        out.only_from(&[sp, c1, c2]);
        for span in &out.spans {
            assert_eq!(
                span.transport, protocol,
                "span arrived over the other transport: {span}"
            );
        }
        let stats = receiver.stats();
        match protocol {
            Protocol::Grpc => assert!(
                stats.grpc_requests > 0 && stats.http_requests == 0,
                "{stats:?}"
            ),
            Protocol::HttpProtobuf => assert!(
                stats.http_requests > 0 && stats.grpc_requests == 0,
                "{stats:?}"
            ),
        }
        assert!(
            stats.errors.is_empty(),
            "receiver errors: {:?}",
            stats.errors
        );
        out.assert_clean();
        let mut spans: Vec<String> = out.spans.iter().map(normalized).collect();
        spans.sort();
        runs.push(spans);
    }
    assert_eq!(
        runs[0], runs[1],
        "gRPC (left) and HTTP/protobuf (right) differ"
    );
}

#[test]
fn selection_by_pid_traces_only_that_process() {
    let env = require_root!();
    let receiver = receiver();
    let traced = py_server(None);
    let untraced = py_server(None);
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &["--pid", &traced.pid().to_string()],
    );

    curl(&[&traced.url("/hello")], 200);
    curl(&[&untraced.url("/hello")], 200);
    let out = flow::finish(&receiver, agent, &[server(traced.pid(), 1)]);
    out.exact(server(traced.pid(), 1));
    assert_eq!(
        out.spans.len(),
        1,
        "only the selected process is traced:\n{}",
        integration_tests::otlp_receiver::dump(&out.spans)
    );
    out.assert_clean();
}

#[test]
fn selection_by_exe_traces_only_curl() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &["--exe", "curl"]);

    let (cp, _) = curl(&[&server_app.url("/hello")], 200);
    let py = apps::run(
        "py-client",
        apps::python_client(&["urllib", &server_app.url("/hello")]),
    )
    .expect("python client");
    let out = flow::finish(&receiver, agent, &[client(cp, 1)]);
    http_span(&out.one(cp, "CLIENT"), "curl CLIENT span", "GET", "/hello")
        .name("GET /hello")
        .res_str("service.name", "curl")
        .done();
    for pid in [sp, py.pid] {
        assert!(
            integration_tests::spans::of_pid(&out.spans, pid).is_empty(),
            "pid {pid} is not selected:\n{}",
            integration_tests::otlp_receiver::dump(&out.spans)
        );
    }
    for span in &out.spans {
        assert_eq!(
            span.res_str("process.executable.name"),
            Some("curl"),
            "{span}"
        );
    }
    out.assert_clean();
}

#[test]
fn selection_by_port_traces_both_ends_of_that_port() {
    let env = require_root!();
    let receiver = receiver();
    let selected = py_server(None);
    let other = py_server(None);
    let port = selected.port().to_string();
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &["--port", &port]);

    let (c1, _) = curl(&[&selected.url("/hello")], 200);
    let (c2, _) = curl(&[&other.url("/hello")], 200);
    let out = flow::finish(
        &receiver,
        agent,
        &[server(selected.pid(), 1), client(c1, 1)],
    );
    for span in [out.one(selected.pid(), "SERVER"), out.one(c1, "CLIENT")] {
        Check::new(&span, "span on the selected port")
            .name("GET /hello")
            .int("server.port", i64::from(selected.port()))
            .done();
    }
    for pid in [other.pid(), c2] {
        assert!(
            integration_tests::spans::of_pid(&out.spans, pid).is_empty(),
            "pid {pid} only used another port:\n{}",
            integration_tests::otlp_receiver::dump(&out.spans)
        );
    }
    assert_eq!(
        out.spans.len(),
        2,
        "{}",
        integration_tests::otlp_receiver::dump(&out.spans)
    );
    out.assert_clean();
}

#[test]
fn process_started_after_the_agent_is_traced_by_exe() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    // A copy of curl under a name nothing else on the machine has.
    let dir = apps::TempDir::new("tracer-late").expect("temp dir");
    let late = dir.path.join("tt-late-curl");
    std::fs::copy(curl_path(), &late).expect("copying curl");
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &["--exe", "tt-late-curl"]);

    let mut pids = Vec::new();
    for _ in 0..3 {
        let mut cmd = std::process::Command::new(&late);
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "30",
            &server_app.url("/users/9"),
        ]);
        pids.push(apps::run("tt-late-curl", cmd).expect("late curl").pid);
    }
    let wants: Vec<_> = pids.iter().map(|&p| client(p, 1)).collect();
    let out = flow::finish(&receiver, agent, &wants);
    for &pid in &pids {
        http_span(
            &out.one(pid, "CLIENT"),
            "late curl CLIENT span",
            "GET",
            "/users/9",
        )
        .name(GET_USER)
        .int("http.response.status_code", 200)
        .res_str("service.name", "tt-late-curl")
        .res_str("process.executable.name", "tt-late-curl")
        .done();
    }
    out.only_from(&pids);
    out.assert_clean();
}

#[test]
fn keepalive_connection_opened_before_the_agent() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let port = server_app.port().to_string();
    // One request before the agent starts, then a pause; after it, a first
    // request whose read the server thread had already entered before the
    // agent attached (a syscall tracepoint cannot see a read in flight), and
    // three more that must all be traced.
    let client_proc = Proc::spawn(
        "py-raw",
        apps::python_client(&[
            "raw",
            "127.0.0.1",
            &port,
            "--pause-after",
            "1",
            "/users/10",
            "/warmup",
            "/users/11",
            "/users/12",
            "/users/13",
        ]),
        true,
    )
    .expect("client");
    let cp = client_proc.pid();
    let (agent, finished) = release_held_client(&env, &receiver, sp, client_proc, "PAUSED");
    let statuses = statuses(&finished.stdout);
    assert_eq!(statuses.len(), 5, "{}", finished.stdout);
    let client_port = local_port(&finished.stdout);

    let out = flow::finish_when(&receiver, agent, |spans| {
        let users = |kind: &str, pid: u32| {
            spans
                .iter()
                .filter(|s| {
                    s.kind == kind
                        && s.pid() == Some(pid)
                        && s.attr_str("url.path")
                            .is_some_and(|p| p.starts_with("/users/1"))
                })
                .count()
        };
        users("SERVER", sp) >= 3 && users("CLIENT", cp) >= 3
    });
    let of = |kind: &str, pid: u32, path: &str| -> Vec<ReceivedSpan> {
        out.spans
            .iter()
            .filter(|s| {
                s.kind == kind && s.pid() == Some(pid) && s.attr_str("url.path") == Some(path)
            })
            .cloned()
            .collect()
    };
    for path in ["/users/11", "/users/12", "/users/13"] {
        let servers = of("SERVER", sp, path);
        assert_eq!(servers.len(), 1, "SERVER spans for {path}");
        http_span(
            &servers[0],
            "SERVER span on the older connection",
            "GET",
            path,
        )
        .name(GET_USER)
        .int("http.response.status_code", i64::from(statuses[2]))
        .int("network.peer.port", client_port)
        .done();
        let clients = of("CLIENT", cp, path);
        assert_eq!(clients.len(), 1, "CLIENT spans for {path}");
        http_span(
            &clients[0],
            "CLIENT span on the older connection",
            "GET",
            path,
        )
        .name(GET_USER)
        .int("network.peer.port", i64::from(server_app.port()))
        .done();
    }
    // The client was idle at attach, so it saw its warm-up request whole.
    assert_eq!(of("CLIENT", cp, "/warmup").len(), 1);
    let warmup_server = of("SERVER", sp, "/warmup").len();
    assert!(warmup_server <= 1);
    assert!(of("SERVER", sp, "/users/10").is_empty() && of("CLIENT", cp, "/users/10").is_empty());
    out.only_from(&[sp, cp]);
    // A warm-up request the server missed leaves its response unpaired:
    // counted as one parse drop, never silent.
    let mut drops = out.exit.nonzero_drops();
    let unpaired = drops.remove("drop_http_parse_error").unwrap_or(0);
    assert_eq!(unpaired, 1 - warmup_server as u64, "{}", out.exit.stderr);
    assert!(
        drops.is_empty(),
        "unexpected drops {drops:?}\n{}",
        out.exit.stderr
    );
    assert!(out.exit.status.success());
}

#[test]
fn exit_summary_counts_what_was_exported() {
    let env = require_root!();
    let receiver = receiver();
    let server_app = py_server(None);
    let sp = server_app.pid();
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &["--pid", &sp.to_string()]);
    for _ in 0..5 {
        curl(&[&server_app.url("/hello")], 200);
    }
    let out = flow::finish(&receiver, agent, &[server(sp, 5)]);
    out.exact(server(sp, 5));
    out.assert_clean();
    let counters = agent::parse_counters(&out.exit.stderr).expect("a counter summary");
    assert_eq!(
        out.exit.counter("spans_exported"),
        5,
        "spans_exported vs the 5 received; counters {counters:?}"
    );
    assert!(
        out.exit.counter("spans_created") >= 5,
        "spans_created; counters {counters:?}"
    );
    assert_eq!(
        out.exit.counter("export_errors"),
        0,
        "counters {counters:?}"
    );
}

/// A traced client socket (in the tracer's SockHash, for `traceparent`
/// injection) still says how much is waiting to be read: with sk_msg alone
/// the kernel answered FIONREAD from an empty queue (0), and nginx, which
/// sizes its reads with it, stalled on upstream responses larger than its
/// buffer.
#[test]
fn a_traced_client_socket_reports_what_is_waiting_to_be_read() {
    let env = require_root!();
    let receiver = receiver();
    let mut cmd = std::process::Command::new(apps::python3());
    cmd.arg("-u")
        .arg(apps::apps_dir().join("python/fionread_client.py"));
    let mut proc = Proc::spawn("fionread", cmd, true).expect("starting the client");
    let Some(port) = proc.stdout.wait_port("PORT ", Duration::from_secs(20)) else {
        panic!("{}", proc.stdout.text());
    };
    let port = port.to_string();
    let agent = start_agent(&env, &receiver, Protocol::Grpc, &["--port", &port]);
    proc.write_stdin("go\n").expect("releasing the client");
    let finished = proc.finish(apps::CLIENT_TIMEOUT).expect("the client");
    let exit = agent.stop().expect("stopping the agent");
    assert!(exit.status.success(), "{}", exit.stderr);
    assert_eq!(
        finished.stdout.lines().find(|l| l.starts_with("FIONREAD")),
        Some("FIONREAD 100000"),
        "{}",
        finished.stdout
    );
}

/// nginx proxying a 1 MiB response while it and its upstream are traced:
/// its upstream socket is in the tracer's SockHash, and the whole body
/// arrives (see the FIONREAD test above).
#[test]
fn nginx_proxies_a_large_response_while_traced() {
    let env = require_root!();
    if let Err(reason) = apps::tool("nginx") {
        skip::skip(&env.test, &reason);
        return;
    }
    let receiver = receiver();
    let backend = py_server(Some("py-backend"));
    let nginx = apps::Nginx::start(backend.port()).expect("starting nginx");
    let agent = start_agent(
        &env,
        &receiver,
        Protocol::Grpc,
        &[
            "--pid",
            &backend.pid().to_string(),
            "--exe",
            "nginx",
            "--exe",
            "curl",
        ],
    );
    let url = format!("http://127.0.0.1:{}/big?bytes=1048576", nginx.port());
    let finished = apps::curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        &url,
    ])
    .expect("curl through nginx");
    assert_eq!(finished.stdout.trim(), "200 1048576", "curl's view");
    let bp = backend.pid();
    let out = flow::finish(&receiver, agent, &[server(bp, 1), client(finished.pid, 1)]);
    let s = out.one(bp, "SERVER");
    assert_eq!(s.attr_int("http.response.status_code"), Some(200), "{s}");
    out.assert_clean();
}

#[test]
fn bad_flag_is_rejected() {
    let Some(bin) = skip::require_binary(integration_tests::function_name!()) else {
        return;
    };
    for (args, mention) in [
        (&["--otlp-protocol", "foo"][..], "otlp-protocol"),
        (&["--no-such-flag"][..], "--no-such-flag"),
    ] {
        let exit =
            agent::run_to_exit(&bin, args, Duration::from_secs(30)).expect("running the agent");
        assert!(
            !exit.status.success(),
            "{args:?} was accepted:\n{}",
            exit.stderr
        );
        assert!(
            exit.stderr.contains(mention),
            "the error for {args:?} does not mention {mention:?}:\n{}",
            exit.stderr
        );
    }
}
