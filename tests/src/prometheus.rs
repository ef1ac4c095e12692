//! A real Prometheus for the metrics tests: Debian's `/usr/bin/prometheus`
//! on a free port of 127.0.0.1 with storage in a temporary directory,
//! scraping one target every second and evaluating the rules a test gives.
//! Never the system's own instance (the Debian package may run one on
//! :9090): what that one scrapes and keeps is nobody's test data.
//!
//! The HTTP API answers are parsed into plain values (labels as a
//! `BTreeMap`), so tests compare them directly.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::{
    apps::{TempDir, free_port},
    process::Proc,
    skip::{is_executable, repo_root},
};

/// Where Debian's `prometheus` package puts its programs.
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
pub const PROMTOOL_BIN: &str = "/usr/bin/promtool";

/// The example alerting rules, relative to the repository root, and their
/// promtool unit tests.
pub const EXAMPLE_RULES: &str = "deploy/prometheus/tracer-alerts.yml";
pub const EXAMPLE_RULES_TESTS: &str = "deploy/prometheus/tracer-alerts.test.yml";

/// The scrape job's name (the `job` label of every scraped series).
pub const JOB: &str = "tracer";

/// Prometheus replays no WAL here, but on a loaded 2-CPU machine its start
/// still takes a few seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Every API call answers from memory; this only stops a hung server from
/// hanging the test.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How much of Prometheus's log goes into an error message.
const STDERR_TAIL_LINES: usize = 30;

/// One sample of an instant query: the series' labels and its value.
/// A scalar result is one sample with no labels.
pub type Sample = (BTreeMap<String, String>, f64);

/// A scrape target as `/api/v1/targets` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub scrape_pool: String,
    pub scrape_url: String,
    /// "up", "down" or "unknown" (not scraped yet).
    pub health: String,
    pub last_error: String,
    pub labels: BTreeMap<String, String>,
}

/// An active alert as `/api/v1/alerts` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The `alertname` label.
    pub name: String,
    /// "pending" or "firing" (inactive alerts are not listed).
    pub state: String,
    /// Every label, `alertname` included.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The value of the expression when the alert was last evaluated.
    pub value: String,
}

impl Alert {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// One rule as `/api/v1/rules` reports it: mainly for failure messages
/// (a rule whose expression fails at evaluation shows up only here).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleStatus {
    pub group: String,
    pub name: String,
    /// "alerting" or "recording".
    pub kind: String,
    /// "ok", "err" or "unknown".
    pub health: String,
    pub last_error: String,
    /// Alerting rules only: "inactive", "pending" or "firing".
    pub state: String,
}

/// A running Prometheus. Dropping it kills the process, then removes its
/// storage (fields drop in order).
pub struct Prometheus {
    proc: Proc,
    dir: TempDir,
    base_url: String,
    target: String,
    client: reqwest::blocking::Client,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://127.0.0.1:{target_port}/metrics`
    /// every second, evaluating `rules` (a rules file) every second if
    /// given, and waits until it is ready.
    pub fn start(target_port: u16, rules: Option<&Path>) -> anyhow::Result<Prometheus> {
        let bin = prometheus_bin().map_err(anyhow::Error::msg)?;
        let dir = TempDir::new("tracer-prometheus")?;
        let target = format!("127.0.0.1:{target_port}");
        let config = config_yaml(&target, rules)?;
        let config_path = dir.path.join("prometheus.yml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        // Prometheus is on 127.0.0.1: an HTTP(S)_PROXY from the environment
        // (CI machines may set one) must not carry these requests away.
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(HTTP_TIMEOUT)
            .build()
            .context("building the HTTP client")?;

        // The free port may be taken again before Prometheus binds it:
        // Prometheus then exits at once, and another port is tried.
        let mut last_error = None;
        for attempt in 0..3 {
            let port = free_port(false)?;
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path.join(format!("data-{attempt}")).display()
                ))
                .arg("--log.level=warn");
            let mut proc = Proc::spawn("prometheus", cmd, false)?;
            let base_url = format!("http://127.0.0.1:{port}");
            match wait_ready(&client, &mut proc, &base_url) {
                Ok(()) => {
                    return Ok(Prometheus {
                        proc,
                        dir,
                        base_url,
                        target,
                        client,
                    });
                }
                Err(e) => {
                    proc.kill();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("prometheus did not start")))
    }

    /// `http://127.0.0.1:PORT` of the API and web UI.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `127.0.0.1:PORT` of the scrape target (its `instance` label).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The temporary directory with the config and the storage.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// What Prometheus logged (warnings and errors only).
    pub fn stderr(&self) -> String {
        self.proc.stderr.text()
    }

    /// Evaluates `promql` now (`/api/v1/query`): an instant vector gives
    /// one sample per series, a scalar one sample without labels; any other
    /// result type is an error.
    pub fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let body = self.get("/api/v1/query", &[("query", promql)])?;
        parse_query(&body).with_context(|| format!("query {promql:?}"))
    }

    /// Polls `promql` until `predicate` holds for its samples and returns
    /// them; on timeout, an error with the last answer and the target's
    /// health (an empty answer is most often a target that is down).
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        mut predicate: impl FnMut(&[Sample]) -> bool,
    ) -> anyhow::Result<Vec<Sample>> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.query(promql);
            if let Ok(samples) = &last
                && predicate(samples)
            {
                return Ok(samples.clone());
            }
            if Instant::now() >= deadline {
                let last = match last {
                    Ok(samples) => format_samples(&samples),
                    Err(e) => format!("error: {e:#}"),
                };
                bail!(
                    "timed out after {timeout:?} waiting on {promql:?}; last answer:\n{last}\n\
                     targets:\n{}",
                    self.describe_targets()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Every active scrape target (`/api/v1/targets`).
    pub fn targets(&self) -> anyhow::Result<Vec<Target>> {
        let body = self.get("/api/v1/targets", &[])?;
        parse_targets(&body)
    }

    /// Waits until every scrape target has been scraped successfully
    /// (`health == "up"`); on timeout, an error with each target's last
    /// scrape error.
    pub fn wait_for_targets_up(&self, timeout: Duration) -> anyhow::Result<Vec<Target>> {
        let deadline = Instant::now() + timeout;
        loop {
            let targets = self.targets();
            if let Ok(targets) = &targets
                && !targets.is_empty()
                && targets.iter().all(|t| t.health == "up")
            {
                return Ok(targets.clone());
            }
            if Instant::now() >= deadline {
                bail!(
                    "scrape target {} not up after {timeout:?}:\n{}\nprometheus stderr:\n{}",
                    self.target,
                    self.describe_targets(),
                    tail(&self.stderr(), STDERR_TAIL_LINES)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Every pending or firing alert (`/api/v1/alerts`).
    pub fn alerts(&self) -> anyhow::Result<Vec<Alert>> {
        let body = self.get("/api/v1/alerts", &[])?;
        parse_alerts(&body)
    }

    /// Every loaded rule with its health (`/api/v1/rules`).
    pub fn rules(&self) -> anyhow::Result<Vec<RuleStatus>> {
        let body = self.get("/api/v1/rules", &[])?;
        parse_rules(&body)
    }

    /// Waits until an alert named `name` is in `state` ("pending" or
    /// "firing") and returns the first such; on timeout, an error listing
    /// the active alerts and every rule's health.
    pub fn wait_for_alert(
        &self,
        name: &str,
        state: &str,
        timeout: Duration,
    ) -> anyhow::Result<Alert> {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.alerts();
            if let Ok(alerts) = &alerts
                && let Some(alert) = alerts.iter().find(|a| a.name == name && a.state == state)
            {
                return Ok(alert.clone());
            }
            if Instant::now() >= deadline {
                let alerts = match alerts {
                    Ok(alerts) if alerts.is_empty() => "  (none)".to_owned(),
                    Ok(alerts) => alerts
                        .iter()
                        .map(|a| format!("  {} {} {:?}\n", a.name, a.state, a.labels))
                        .collect(),
                    Err(e) => format!("  error: {e:#}"),
                };
                let rules = match self.rules() {
                    Ok(rules) => rules
                        .iter()
                        .map(|r| {
                            format!(
                                "  {}/{} {} health={} state={} {}\n",
                                r.group, r.name, r.kind, r.health, r.state, r.last_error
                            )
                        })
                        .collect(),
                    Err(e) => format!("  error: {e:#}"),
                };
                bail!(
                    "alert {name} not {state} after {timeout:?}; active alerts:\n{alerts}\n\
                     rules:\n{rules}targets:\n{}",
                    self.describe_targets()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// GETs an API path; the body whatever the status (API errors come as
    /// JSON with status 400/422/503, and the parser reports them).
    fn get(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<String> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base_url), params)
            .with_context(|| format!("building the URL for {path}"))?;
        let response = self
            .client
            .get(url.clone())
            .send()
            .with_context(|| format!("GET {url}"))?;
        response
            .text()
            .with_context(|| format!("reading the answer to GET {url}"))
    }

    fn describe_targets(&self) -> String {
        match self.targets() {
            Ok(targets) if targets.is_empty() => "  (no targets)".to_owned(),
            Ok(targets) => targets
                .iter()
                .map(|t| {
                    format!(
                        "  {} {} health={} last_error={:?}\n",
                        t.scrape_pool, t.scrape_url, t.health, t.last_error
                    )
                })
                .collect(),
            Err(e) => format!("  error: {e:#}"),
        }
    }
}

/// Waits until Prometheus answers `/-/ready` with 200 (it has loaded its
/// config and storage); errors early if it exits.
fn wait_ready(
    client: &reqwest::blocking::Client,
    proc: &mut Proc,
    base_url: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let url = format!("{base_url}/-/ready");
    loop {
        if let Some(status) = proc.try_wait()? {
            bail!(
                "prometheus exited with {status} before it was ready on {base_url}; stderr:\n{}",
                tail(&proc.stderr.text(), STDERR_TAIL_LINES)
            );
        }
        let last = match client.get(&url).send() {
            Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(()),
            Ok(response) => format!("HTTP {}", response.status()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!(
                "prometheus not ready on {url} after {READY_TIMEOUT:?} (last: {last}); \
                 stderr:\n{}",
                tail(&proc.stderr.text(), STDERR_TAIL_LINES)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The prometheus binary, or why the test cannot run.
pub fn prometheus_bin() -> Result<PathBuf, String> {
    installed(PROMETHEUS_BIN)
}

/// The promtool binary, or why the test cannot run.
pub fn promtool_bin() -> Result<PathBuf, String> {
    installed(PROMTOOL_BIN)
}

fn installed(path: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(format!(
            "{} is not installed (Debian package prometheus; `cargo xtask setup` installs it)",
            path.display()
        ))
    }
}

/// Runs `promtool check rules FILE`: its output when the file is valid,
/// else an error carrying the output.
pub fn promtool_check_rules(path: &Path) -> anyhow::Result<String> {
    promtool(&["check", "rules"], path)
}

fn promtool(command: &[&str], path: &Path) -> anyhow::Result<String> {
    let promtool = promtool_bin().map_err(anyhow::Error::msg)?;
    let command_line = command.join(" ");
    let out = Command::new(&promtool)
        .args(command)
        .arg(path)
        .output()
        .with_context(|| format!("running {} {command_line}", promtool.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "promtool {command_line} {} failed ({}):\n{text}",
            path.display(),
            out.status
        );
    }
    Ok(text)
}

/// Runs `promtool test rules FILE` (rule unit tests): its output when
/// every test passes, else an error carrying the output.
pub fn promtool_test_rules(path: &Path) -> anyhow::Result<String> {
    promtool(&["test", "rules"], path)
}

/// `<repo>/deploy/prometheus/tracer-alerts.yml`.
pub fn example_rules() -> PathBuf {
    repo_root().join(EXAMPLE_RULES)
}

/// The number of rules promtool found, summed over its
/// `SUCCESS: N rules found` lines (one per file checked).
pub fn rules_found(promtool_output: &str) -> Option<usize> {
    let counts: Vec<usize> = promtool_output
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("SUCCESS: ")?
                .strip_suffix(" rules found")?
                .parse()
                .ok()
        })
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// The rule windows and `for:` durations a test waits through, and what
/// [`rules_for_test`] makes of them. A 15 s window still holds a dozen
/// samples at the tests' 1 s scrape interval, enough for `rate()`.
pub const TEST_SUBSTITUTIONS: &[(&str, &str)] = &[
    ("[5m]", "[15s]"),
    ("for: 5m", "for: 1s"),
    ("for: 10m", "for: 1s"),
];

/// Writes a copy of the rules file `path` into `out_dir` with the
/// durations of [`TEST_SUBSTITUTIONS`] shortened, so a test sees an alert
/// fire within seconds; returns the copy's path. Errors if the file uses
/// none of those spellings (the substitution would silently do nothing).
pub fn rules_for_test(path: &Path, out_dir: &Path) -> anyhow::Result<PathBuf> {
    let original =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let shortened = shorten_durations(&original);
    if shortened == original {
        bail!(
            "{} uses none of {:?}: nothing to shorten for a test",
            path.display(),
            TEST_SUBSTITUTIONS
                .iter()
                .map(|(from, _)| from)
                .collect::<Vec<_>>()
        );
    }
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let out = out_dir.join(name);
    std::fs::write(&out, shortened).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

fn shorten_durations(rules: &str) -> String {
    TEST_SUBSTITUTIONS
        .iter()
        .fold(rules.to_owned(), |text, (from, to)| text.replace(from, to))
}

fn config_yaml(target: &str, rules: Option<&Path>) -> anyhow::Result<String> {
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    if let Some(rules) = rules {
        // Prometheus resolves a relative path against the config's
        // directory, a temporary one: make it absolute.
        let rules =
            std::path::absolute(rules).with_context(|| format!("resolving {}", rules.display()))?;
        config.push_str(&format!(
            "rule_files:\n  - {}\n",
            yaml_string(&rules.to_string_lossy())
        ));
    }
    config.push_str(&format!(
        "scrape_configs:\n  - job_name: {JOB}\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: [{}]\n",
        yaml_string(target)
    ));
    Ok(config)
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn yaml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    if all.is_empty() {
        "  (nothing)".to_owned()
    } else {
        all[start..].join("\n")
    }
}

fn format_samples(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "  (empty)".to_owned();
    }
    samples
        .iter()
        .map(|(labels, value)| format!("  {labels:?} {value}\n"))
        .collect()
}

/// The envelope of every API answer.
#[derive(Deserialize)]
struct ApiResponse<T> {
    status: String,
    data: Option<T>,
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(default)]
    error: String,
}

fn parse_api<T: for<'de> Deserialize<'de>>(body: &str) -> anyhow::Result<T> {
    let response: ApiResponse<T> = serde_json::from_str(body)
        .with_context(|| format!("not a Prometheus API answer: {}", truncate(body)))?;
    if response.status != "success" {
        bail!(
            "Prometheus answered {}: {} {}",
            response.status,
            response.error_type,
            response.error
        );
    }
    response
        .data
        .context("Prometheus answered success without data")
}

fn truncate(body: &str) -> &str {
    match body.char_indices().nth(500) {
        Some((end, _)) => &body[..end],
        None => body,
    }
}

/// Prometheus sends sample values as strings ("3", "NaN", "+Inf").
fn parse_value(value: &str) -> anyhow::Result<f64> {
    value
        .parse()
        .with_context(|| format!("sample value {value:?} is not a number"))
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum QueryData {
    Vector(Vec<VectorSample>),
    Scalar((f64, String)),
    Matrix(serde::de::IgnoredAny),
    String(serde_json::Value),
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// Absent for a native histogram sample (it has `histogram` instead).
    value: Option<(f64, String)>,
}

fn parse_query(body: &str) -> anyhow::Result<Vec<Sample>> {
    match parse_api::<QueryData>(body)? {
        QueryData::Vector(samples) => samples
            .into_iter()
            .map(|s| {
                let (_, value) = s.value.with_context(|| {
                    format!(
                        "sample {:?} has no float value (a native histogram?)",
                        s.metric
                    )
                })?;
                Ok((s.metric, parse_value(&value)?))
            })
            .collect(),
        QueryData::Scalar((_, value)) => Ok(vec![(BTreeMap::new(), parse_value(&value)?)]),
        QueryData::Matrix(_) => bail!("a range vector result; query an instant vector"),
        QueryData::String(s) => bail!("a string result ({s}); query an instant vector"),
    }
}

#[derive(Deserialize)]
struct TargetsData {
    #[serde(rename = "activeTargets", default)]
    active_targets: Vec<TargetJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetJson {
    #[serde(default)]
    scrape_pool: String,
    #[serde(default)]
    scrape_url: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    last_error: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn parse_targets(body: &str) -> anyhow::Result<Vec<Target>> {
    let data: TargetsData = parse_api(body)?;
    Ok(data
        .active_targets
        .into_iter()
        .map(|t| Target {
            scrape_pool: t.scrape_pool,
            scrape_url: t.scrape_url,
            health: t.health,
            last_error: t.last_error,
            labels: t.labels,
        })
        .collect())
}

#[derive(Deserialize)]
struct AlertsData {
    #[serde(default)]
    alerts: Vec<AlertJson>,
}

#[derive(Deserialize)]
struct AlertJson {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    value: String,
}

fn parse_alerts(body: &str) -> anyhow::Result<Vec<Alert>> {
    let data: AlertsData = parse_api(body)?;
    Ok(data
        .alerts
        .into_iter()
        .map(|a| Alert {
            name: a.labels.get("alertname").cloned().unwrap_or_default(),
            state: a.state,
            labels: a.labels,
            annotations: a.annotations,
            value: a.value,
        })
        .collect())
}

#[derive(Deserialize)]
struct RulesData {
    #[serde(default)]
    groups: Vec<RuleGroupJson>,
}

#[derive(Deserialize)]
struct RuleGroupJson {
    name: String,
    #[serde(default)]
    rules: Vec<RuleJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleJson {
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    last_error: String,
    #[serde(default)]
    state: String,
}

fn parse_rules(body: &str) -> anyhow::Result<Vec<RuleStatus>> {
    let data: RulesData = parse_api(body)?;
    Ok(data
        .groups
        .into_iter()
        .flat_map(|group| {
            let name = group.name;
            group.rules.into_iter().map(move |r| RuleStatus {
                group: name.clone(),
                name: r.name,
                kind: r.kind,
                health: r.health,
                last_error: r.last_error,
                state: r.state,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Answers captured from Debian's Prometheus 2.42 on this project's
    // machines (timestamps and host names as they came).

    const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"demo_requests_total","instance":"127.0.0.1:18777","job":"tracer","route":"/a"},"value":[1796525517.783,"3"]}]}}"#;
    const EMPTY_SUM: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    const INF: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"127.0.0.1:18777","job":"tracer","route":"/a"},"value":[1796525517.822,"+Inf"]},{"metric":{"route":"/b"},"value":[1796525517.822,"NaN"]}]}}"#;
    const SCALAR: &str =
        r#"{"status":"success","data":{"resultType":"scalar","result":[1796525517.789,"2"]}}"#;
    const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"demo_requests_total","instance":"127.0.0.1:18777","job":"tracer","route":"/a"},"values":[[1796525519.280,"3"],[1796525520.280,"3"]]}]}}"#;
    const STRING: &str =
        r#"{"status":"success","data":{"resultType":"string","result":[1796525517.805,"x"]}}"#;
    const BAD_QUERY: &str = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:6: parse error: unclosed left parenthesis"}"#;
    const TARGETS: &str = r#"{"status":"success","data":{"activeTargets":[{"discoveredLabels":{"__address__":"127.0.0.1:18778","__metrics_path__":"/metrics","__scheme__":"http","__scrape_interval__":"1s","__scrape_timeout__":"1s","job":"down"},"labels":{"instance":"127.0.0.1:18778","job":"down"},"scrapePool":"down","scrapeUrl":"http://127.0.0.1:18778/metrics","globalUrl":"http://vm:18778/metrics","lastError":"Get \"http://127.0.0.1:18778/metrics\": dial tcp 127.0.0.1:18778: connect: connection refused","lastScrape":"2026-12-06T02:51:57.474214147Z","lastScrapeDuration":0.00038967,"health":"down","scrapeInterval":"1s","scrapeTimeout":"1s"},{"discoveredLabels":{"__address__":"127.0.0.1:18777","__metrics_path__":"/metrics","__scheme__":"http","__scrape_interval__":"1s","__scrape_timeout__":"1s","job":"tracer"},"labels":{"instance":"127.0.0.1:18777","job":"tracer"},"scrapePool":"tracer","scrapeUrl":"http://127.0.0.1:18777/metrics","globalUrl":"http://vm:18777/metrics","lastError":"","lastScrape":"2026-12-06T02:51:57.280447725Z","lastScrapeDuration":0.005245027,"health":"up","scrapeInterval":"1s","scrapeTimeout":"1s"}],"droppedTargets":[]}}"#;
    const ALERTS: &str = r#"{"status":"success","data":{"alerts":[{"labels":{"alertname":"DemoRequests","instance":"127.0.0.1:18777","job":"tracer","route":"/a","severity":"warning"},"annotations":{"summary":"route /a"},"state":"pending","activeAt":"2026-12-06T02:51:57.519803792Z","value":"3e+00"},{"labels":{"alertname":"DemoBroken"},"annotations":{},"state":"firing","activeAt":"2026-12-06T02:51:57.519803792Z","value":"4e+00"}]}}"#;
    const RULES: &str = r#"{"status":"success","data":{"groups":[{"name":"demo","file":"/tmp/promcap/rules.yml","rules":[{"state":"pending","name":"DemoRequests","query":"demo_requests_total \u003e 0","duration":1,"keepFiringFor":0,"labels":{"severity":"warning"},"annotations":{"summary":"route {{ $labels.route }}"},"alerts":[{"labels":{"alertname":"DemoRequests","instance":"127.0.0.1:18777","job":"tracer","route":"/a","severity":"warning"},"annotations":{"summary":"route /a"},"state":"pending","activeAt":"2026-12-06T02:51:57.519803792Z","value":"3e+00"}],"health":"ok","evaluationTime":0.000370351,"lastEvaluation":"2026-12-06T02:51:57.520880305Z","type":"alerting"},{"name":"demo:rate","query":"rate(x[1m])","labels":{},"health":"err","lastError":"many-to-many matching not allowed","evaluationTime":0.0001,"lastEvaluation":"2026-12-06T02:51:57.521252519Z","type":"recording"}],"interval":1,"limit":0,"evaluationTime":0.00049688,"lastEvaluation":"2026-12-06T02:51:57.520868938Z"}]}}"#;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_an_instant_vector() {
        let samples = parse_query(VECTOR).unwrap();
        assert_eq!(
            samples,
            vec![(
                labels(&[
                    ("__name__", "demo_requests_total"),
                    ("instance", "127.0.0.1:18777"),
                    ("job", "tracer"),
                    ("route", "/a"),
                ]),
                3.0
            )]
        );
        assert!(parse_query(EMPTY_SUM).unwrap().is_empty());
    }

    #[test]
    fn parses_special_values() {
        let samples = parse_query(INF).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].1, f64::INFINITY);
        assert!(samples[1].1.is_nan());
    }

    #[test]
    fn a_scalar_is_one_unlabelled_sample() {
        assert_eq!(parse_query(SCALAR).unwrap(), vec![(BTreeMap::new(), 2.0)]);
    }

    #[test]
    fn other_results_and_api_errors_are_errors() {
        let err = parse_query(MATRIX).unwrap_err().to_string();
        assert!(err.contains("range vector"), "{err}");
        let err = parse_query(STRING).unwrap_err().to_string();
        assert!(err.contains("string result"), "{err}");
        let err = parse_query(BAD_QUERY).unwrap_err().to_string();
        assert!(err.contains("bad_data"), "{err}");
        assert!(err.contains("unclosed left parenthesis"), "{err}");
        let err = format!("{:#}", parse_query("404 page not found").unwrap_err());
        assert!(err.contains("404 page not found"), "{err}");
    }

    #[test]
    fn parses_targets() {
        let targets = parse_targets(TARGETS).unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].scrape_pool, "down");
        assert_eq!(targets[0].health, "down");
        assert!(
            targets[0].last_error.contains("connection refused"),
            "{:?}",
            targets[0]
        );
        assert_eq!(
            targets[1],
            Target {
                scrape_pool: "tracer".into(),
                scrape_url: "http://127.0.0.1:18777/metrics".into(),
                health: "up".into(),
                last_error: String::new(),
                labels: labels(&[("instance", "127.0.0.1:18777"), ("job", "tracer")]),
            }
        );
    }

    #[test]
    fn parses_alerts() {
        let alerts = parse_alerts(ALERTS).unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].name, "DemoRequests");
        assert_eq!(alerts[0].state, "pending");
        assert_eq!(alerts[0].label("route"), Some("/a"));
        assert_eq!(alerts[0].label("severity"), Some("warning"));
        assert_eq!(
            alerts[0].annotations.get("summary").map(String::as_str),
            Some("route /a")
        );
        assert_eq!(alerts[0].value, "3e+00");
        assert_eq!(
            (alerts[1].name.as_str(), alerts[1].state.as_str()),
            ("DemoBroken", "firing")
        );
    }

    #[test]
    fn parses_rules() {
        let rules = parse_rules(RULES).unwrap();
        assert_eq!(
            rules,
            vec![
                RuleStatus {
                    group: "demo".into(),
                    name: "DemoRequests".into(),
                    kind: "alerting".into(),
                    health: "ok".into(),
                    last_error: String::new(),
                    state: "pending".into(),
                },
                RuleStatus {
                    group: "demo".into(),
                    name: "demo:rate".into(),
                    kind: "recording".into(),
                    health: "err".into(),
                    last_error: "many-to-many matching not allowed".into(),
                    state: String::new(),
                },
            ]
        );
    }

    #[test]
    fn counts_rules_found() {
        assert_eq!(
            rules_found("Checking rules.yml\n  SUCCESS: 4 rules found\n\n"),
            Some(4)
        );
        assert_eq!(
            rules_found(
                "Checking a.yml\n  SUCCESS: 1 rules found\nChecking b.yml\n  SUCCESS: 2 rules found\n"
            ),
            Some(3)
        );
        assert_eq!(rules_found("Checking bad.yml\n  FAILED:\n"), None);
    }

    #[test]
    fn shortens_windows_and_for_durations() {
        let rules =
            "expr: sum(rate(x[5m])) > 0\n        for: 5m\n      - expr: y[5m]\n        for: 10m\n";
        assert_eq!(
            shorten_durations(rules),
            "expr: sum(rate(x[15s])) > 0\n        for: 1s\n      - expr: y[15s]\n        for: 1s\n"
        );
    }

    #[test]
    fn rules_for_test_writes_a_shortened_copy() {
        let dir = TempDir::new("tracer-rules-test").unwrap();
        let original = dir.path.join("in").join("alerts.yml");
        std::fs::create_dir_all(original.parent().unwrap()).unwrap();
        std::fs::write(&original, "expr: increase(x[5m]) > 0\nfor: 5m\n").unwrap();
        let copy = rules_for_test(&original, &dir.path).unwrap();
        assert_eq!(copy, dir.path.join("alerts.yml"));
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "expr: increase(x[15s]) > 0\nfor: 1s\n"
        );
        std::fs::write(&original, "expr: x > 0\n").unwrap();
        let err = rules_for_test(&original, &dir.path).unwrap_err();
        assert!(err.to_string().contains("nothing to shorten"), "{err}");
    }

    #[test]
    fn config_scrapes_the_target_and_loads_rules() {
        let config = config_yaml("127.0.0.1:9", Some(Path::new("/r/alerts.yml"))).unwrap();
        assert_eq!(
            config,
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - \"/r/alerts.yml\"\n\
             scrape_configs:\n  - job_name: tracer\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [\"127.0.0.1:9\"]\n"
        );
        let config = config_yaml("127.0.0.1:9", None).unwrap();
        assert!(!config.contains("rule_files"), "{config}");
    }
}
