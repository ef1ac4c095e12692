//! The agent starts everywhere: every kernel program verifies well within
//! the verifier's limit on this kernel, and an optional part that cannot
//! load turns off only its feature (or, with `--require-all`, stops the
//! agent with a clear message).
//!
//! Needs root and the agent binary (`TRACER_BIN`, set by `cargo xtask
//! test`); without them each test prints `SKIPPED <test>: <reason>`.
use std::time::{Duration, Instant};

use integration_tests::{
    Protocol, Receiver,
    agent::{self, Agent},
    apps::{self, PyServerOpts},
    flow::{self, client, server},
    require_root,
};

/// The budget the project holds every kernel program to: 5x under the
/// kernel's 1,000,000 processed instructions (README, Limits).
const BUDGET: u32 = 200_000;

/// Every program the kernel object holds, attached or tail-called or
/// loaded on demand; the report must list each.
const PROGRAMS: &[&str] = &[
    "classify",
    "client_context",
    "client_decide",
    "client_h2",
    "enter_accept",
    "enter_close",
    "enter_connect",
    "enter_readv",
    "enter_recvmsg",
    "enter_sendfile",
    "enter_sendmsg",
    "enter_write",
    "enter_writev",
    "exit_io",
    "exit_read",
    "go_grpc_new_stream",
    "go_grpc_server_stream",
    "go_h2_server_std",
    "go_h2_server_xnet",
    "go_http_round_trip",
    "go_tls_read",
    "go_tls_read_exit",
    "go_tls_read_ret",
    "go_tls_record_exit",
    "go_tls_write",
    "inject_traceparent",
    "pass_ingress",
    "sched_exec",
    "sched_exit",
    "sched_fork",
    "server_context",
    "server_decide",
    "ssl_read",
    "ssl_read_ex",
    "ssl_read_ret",
    "ssl_write",
    "tls_classify",
    "tls_server_context",
    "tls_server_decide",
    "track_client_sockets",
];

/// One row of `tracer verifier-report`'s table.
struct Row {
    program: String,
    insns: u32,
    load_ms: f64,
    result: String,
}

fn rows(table: &str) -> Vec<Row> {
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            if cells.len() != 6 {
                return None;
            }
            Some(Row {
                program: cells[0].trim().to_owned(),
                insns: cells[2].trim().parse().ok()?,
                load_ms: cells[4].trim().parse().ok()?,
                result: cells[5].trim().to_owned(),
            })
        })
        .collect()
}

#[test]
fn every_kernel_program_verifies_within_the_budget() {
    let env = require_root!();
    let exit = agent::run_to_exit(
        &env.tracer_bin,
        &["verifier-report", "--budget", &BUDGET.to_string()],
        Duration::from_secs(600),
    )
    .expect("running tracer verifier-report");
    // The table goes to the test's output whatever the outcome.
    eprintln!("{}", exit.stdout);
    let rows = rows(&exit.stdout);
    for program in PROGRAMS {
        let Some(row) = rows.iter().find(|r| r.program == *program) else {
            panic!(
                "{program} is missing from the report:\n{}\n{}",
                exit.stdout, exit.stderr
            );
        };
        assert!(
            row.result == "ok" && row.insns <= BUDGET,
            "{program}: {} verified instructions ({}), budget {BUDGET}:\n{}\n{}",
            row.insns,
            row.result,
            exit.stdout,
            exit.stderr
        );
    }
    assert_eq!(
        rows.len(),
        PROGRAMS.len(),
        "a program was added: list it here\n{}",
        exit.stdout
    );
    assert!(
        exit.status.success(),
        "verifier-report failed:\n{}\n{}",
        exit.stdout,
        exit.stderr
    );
    let total: f64 = rows.iter().map(|r| r.load_ms).sum();
    eprintln!("every program verified within {BUDGET} instructions; {total:.0} ms of loading");
}

#[test]
fn every_feature_is_on_at_start() {
    let env = require_root!();
    let started = Instant::now();
    let agent = Agent::start_raw(&env.tracer_bin, &["--no-otlp", "--pid", "1"])
        .expect("starting the agent");
    eprintln!("agent ready after {:?}", started.elapsed());
    let exit = agent.stop().expect("stopping the agent");
    let features = exit
        .stderr
        .lines()
        .find(|l| l.contains("features: "))
        .unwrap_or_else(|| panic!("no features line:\n{}", exit.stderr));
    for feature in [
        "http1",
        "http2",
        "context",
        "inject",
        "inject-http2",
        "go-http-calls",
        "go-grpc-calls",
        "go-server-handlers",
        "tls",
    ] {
        assert!(
            features.split_whitespace().any(|w| w == feature),
            "{feature} is not on: {features}\n{}",
            exit.stderr
        );
    }
    assert!(!features.contains("off:"), "{features}");
    assert!(
        !exit.stderr.contains(" off ("),
        "a feature was turned off:\n{}",
        exit.stderr
    );
    assert!(exit.status.success(), "{}", exit.stderr);
}

#[test]
fn a_refused_optional_program_turns_off_only_its_features() {
    let env = require_root!();
    let receiver = Receiver::start().expect("starting the OTLP receiver");
    let server_app =
        apps::python_server(&PyServerOpts::default()).expect("starting the Python server");
    let sp = server_app.pid();
    let agent = Agent::start(
        &env.tracer_bin,
        &[
            "--pid",
            &sp.to_string(),
            "--exe",
            "curl",
            "--fail-program",
            "client_context",
            "--fail-program",
            "go_grpc_new_stream",
        ],
        &receiver,
        Protocol::Grpc,
    )
    .expect("the agent starts without those programs");
    let (finished, status, _) =
        apps::curl_request(&[&server_app.url("/users/7")]).expect("running curl");
    assert_eq!(status, 200);
    let cp = finished.pid;
    let out = flow::finish(&receiver, agent, &[server(sp, 1), client(cp, 1)]);

    // It said what is off and why, one line per feature.
    let stderr = &out.exit.stderr;
    let warned = |needle: &str| {
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains(needle) && l.contains("client_context"))
    };
    assert!(warned("off (context)"), "no context warning:\n{stderr}");
    assert!(warned("off (inject)"), "no inject warning:\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("off (go-grpc-calls)")),
        "no go-grpc-calls warning:\n{stderr}"
    );
    let features = stderr
        .lines()
        .find(|l| l.contains("features: "))
        .unwrap_or_else(|| panic!("no features line:\n{stderr}"));
    assert!(
        features.contains(
            "features: http1 http2 inject-http2 go-http-calls go-server-handlers tls (off: \
             context inject go-grpc-calls)"
        ),
        "{features}"
    );

    // HTTP/1 spans still come, both ends, with the right request.
    for (pid, kind) in [(sp, "SERVER"), (cp, "CLIENT")] {
        let span = out.one(pid, kind);
        assert_eq!(span.name, "GET /users/{id}", "{span}");
        assert_eq!(
            span.attr_int("http.response.status_code"),
            Some(200),
            "{span}"
        );
    }
    out.only_from(&[sp, cp]);
    out.assert_clean();
}

#[test]
fn require_all_makes_a_refused_program_fatal() {
    let env = require_root!();
    let exit = agent::run_to_exit(
        &env.tracer_bin,
        &["--no-otlp", "--require-all", "--fail-program", "classify"],
        Duration::from_secs(60),
    )
    .expect("running the agent");
    assert_eq!(exit.status.code(), Some(1), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("--require-all") && exit.stderr.contains("classify"),
        "the error does not say what failed:\n{}",
        exit.stderr
    );
    assert!(
        !exit.stderr.lines().any(agent::is_ready_line),
        "it became ready:\n{}",
        exit.stderr
    );
}
