//! The Prometheus harness itself, against a static `/metrics` page served
//! from the test: scraping, queries, target health and alerting rules work
//! end to end before any test relies on them for the agent's metrics.
//! Needs Debian's prometheus package, not root and not the agent.
use std::{convert::Infallible, path::Path, time::Duration};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use integration_tests::{
    apps::{TempDir, free_port},
    function_name, http_serve,
    prometheus::{self, Prometheus},
    skip::skip,
};
use tokio::{net::TcpListener, runtime::Runtime};

const METRICS: &str = "\
# HELP demo_requests_total Requests served.
# TYPE demo_requests_total counter
demo_requests_total{route=\"/a\"} 3
";

/// With a 1 s scrape and evaluation interval, everything below settles in a
/// few seconds; the margin is for a loaded CI machine.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A static `/metrics` page on 127.0.0.1, served until dropped.
struct MetricsPage {
    port: u16,
    _runtime: Runtime,
}

impl MetricsPage {
    fn serve(text: &'static str) -> anyhow::Result<MetricsPage> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("building the metrics page's runtime")?;
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("binding the metrics page")?;
        let port = listener.local_addr()?.port();
        runtime.spawn(http_serve::serve(
            listener,
            "metrics-page",
            move |_req| async move {
                let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(
                        "text/plain; version=0.0.4; charset=utf-8",
                    ),
                );
                Ok::<_, Infallible>(response)
            },
        ));
        Ok(MetricsPage {
            port,
            _runtime: runtime,
        })
    }
}

/// Prints why and gives false when prometheus is not installed.
fn have_prometheus(test: &str) -> bool {
    match prometheus::prometheus_bin().and_then(|_| prometheus::promtool_bin()) {
        Ok(_) => true,
        Err(reason) => {
            skip(test, &reason);
            false
        }
    }
}

#[test]
fn scrapes_and_queries() -> anyhow::Result<()> {
    if !have_prometheus(function_name!()) {
        return Ok(());
    }
    let page = MetricsPage::serve(METRICS)?;
    let prom = Prometheus::start(page.port, None)?;
    let targets = prom.wait_for_targets_up(TIMEOUT)?;
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(
        targets[0].scrape_url,
        format!("http://127.0.0.1:{}/metrics", page.port)
    );

    let sum = prom.wait_for("sum(demo_requests_total)", TIMEOUT, |s| !s.is_empty())?;
    assert_eq!(sum.len(), 1, "{sum:?}");
    assert!(sum[0].0.is_empty(), "a sum has no labels: {sum:?}");
    assert_eq!(sum[0].1, 3.0);

    let series = prom.query("demo_requests_total")?;
    assert_eq!(series.len(), 1, "{series:?}");
    let labels = &series[0].0;
    assert_eq!(labels.get("route").map(String::as_str), Some("/a"));
    assert_eq!(labels.get("job").map(String::as_str), Some(prometheus::JOB));
    assert_eq!(
        labels.get("instance").map(String::as_str),
        Some(prom.target())
    );

    assert_eq!(
        prom.query("scalar(sum(demo_requests_total)) * 2")?[0].1,
        6.0
    );
    let err = prom.query("sum((").unwrap_err();
    assert!(format!("{err:#}").contains("parse error"), "{err:#}");
    Ok(())
}

#[test]
fn alert_fires() -> anyhow::Result<()> {
    if !have_prometheus(function_name!()) {
        return Ok(());
    }
    let dir = TempDir::new("tracer-harness-rules")?;
    let rules = dir.path.join("demo.yml");
    write_rules(&rules)?;
    let checked = prometheus::promtool_check_rules(&rules)?;
    assert_eq!(prometheus::rules_found(&checked), Some(1), "{checked}");

    let page = MetricsPage::serve(METRICS)?;
    let prom = Prometheus::start(page.port, Some(&rules))?;
    let alert = prom.wait_for_alert("DemoRequestsSeen", "firing", TIMEOUT)?;
    assert_eq!(alert.label("route"), Some("/a"));
    assert_eq!(alert.label("severity"), Some("warning"));
    assert_eq!(
        alert.annotations.get("summary").map(String::as_str),
        Some("3 requests on /a")
    );
    let rules = prom.rules()?;
    assert!(
        rules.iter().all(|r| r.health == "ok"),
        "a rule failed to evaluate: {rules:?}"
    );
    Ok(())
}

fn write_rules(path: &Path) -> anyhow::Result<()> {
    let rules = r#"groups:
  - name: demo
    rules:
      - alert: DemoRequestsSeen
        expr: demo_requests_total > 0
        for: 1s
        labels:
          severity: warning
        annotations:
          summary: "{{ $value }} requests on {{ $labels.route }}"
"#;
    std::fs::write(path, rules).with_context(|| format!("writing {}", path.display()))
}

/// A target nobody serves is reported down, with Prometheus's scrape error
/// in the message (what a test of the agent shows when its endpoint is off).
#[test]
fn a_target_down_is_explained() -> anyhow::Result<()> {
    if !have_prometheus(function_name!()) {
        return Ok(());
    }
    let port = free_port(false)?;
    let prom = Prometheus::start(port, None)?;
    // Prometheus hands new targets to its scrapers every 5 s: give it time
    // for a first scrape, whose error the message must carry.
    let err = prom
        .wait_for_targets_up(Duration::from_secs(10))
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("health=down"), "{message}");
    assert!(message.contains("connection refused"), "{message}");
    Ok(())
}

#[test]
fn promtool_rejects_a_broken_rule() -> anyhow::Result<()> {
    if !have_prometheus(function_name!()) {
        return Ok(());
    }
    let dir = TempDir::new("tracer-harness-rules")?;
    let rules = dir.path.join("broken.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: sum((\n",
    )?;
    let err = prometheus::promtool_check_rules(&rules).unwrap_err();
    assert!(format!("{err:#}").contains("parse error"), "{err:#}");
    Ok(())
}
