//! A Zipkin collector stand-in on 127.0.0.1: accepts `POST /api/v2/spans`
//! with a JSON array of v2 spans (as the agent's `--zipkin-endpoint` sends
//! them), keeps every span as JSON, and answers 202 like Zipkin does.
//! Anything else is answered with an error and recorded, so a test can say
//! what was wrong with a request instead of just missing spans.
use std::{
    net::SocketAddr,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Response, StatusCode, body::Incoming};
use serde_json::Value;
use tokio::{net::TcpListener, runtime::Runtime};

use crate::http_serve;

/// Zipkin's conventional span endpoint, the only path served.
pub const SPANS_PATH: &str = "/api/v2/spans";
/// Largest body accepted; the agent's batches are far smaller.
const MAX_BODY: usize = 64 << 20;

/// One received span; fields are read from the JSON as the tests need them.
#[derive(Clone, Debug, PartialEq)]
pub struct ZipkinSpan(pub Value);

impl ZipkinSpan {
    /// A top-level string field (`traceId`, `id`, `parentId`, `name`, `kind`).
    pub fn str(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }

    /// A top-level number field (`timestamp`, `duration`).
    pub fn u64(&self, field: &str) -> Option<u64> {
        self.0.get(field).and_then(Value::as_u64)
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.0.get("tags")?.get(key)?.as_str()
    }

    pub fn service_name(&self) -> Option<&str> {
        self.0.get("localEndpoint")?.get("serviceName")?.as_str()
    }

    /// `remoteEndpoint`, or Null when absent.
    pub fn remote(&self) -> &Value {
        self.0.get("remoteEndpoint").unwrap_or(&Value::Null)
    }
}

/// Spans one a line, for failure messages.
pub fn dump(spans: &[ZipkinSpan]) -> String {
    if spans.is_empty() {
        return "  (no spans)".to_owned();
    }
    spans.iter().map(|s| format!("  {}\n", s.0)).collect()
}

#[derive(Default)]
struct StoreInner {
    spans: Vec<ZipkinSpan>,
    requests: u64,
    errors: Vec<String>,
}

#[derive(Default)]
struct Store {
    inner: Mutex<StoreInner>,
    changed: Condvar,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        // A panicking test thread must not hide the spans from the others.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, spans: Vec<Value>) {
        let mut inner = self.lock();
        inner.requests += 1;
        inner.spans.extend(spans.into_iter().map(ZipkinSpan));
        drop(inner);
        self.changed.notify_all();
    }

    fn error(&self, message: String) {
        self.lock().errors.push(message);
        self.changed.notify_all();
    }
}

/// The collector; its server runs on a runtime of its own, so tests stay
/// plain synchronous functions.
pub struct ZipkinReceiver {
    store: Arc<Store>,
    addr: SocketAddr,
    runtime: Option<Runtime>,
}

impl ZipkinReceiver {
    /// Starts the server on an ephemeral port of 127.0.0.1.
    pub fn start() -> anyhow::Result<ZipkinReceiver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("zipkin-receiver")
            .enable_all()
            .build()
            .context("building the Zipkin receiver's runtime")?;
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Store::default());
        let served = store.clone();
        runtime.spawn(http_serve::serve(listener, "zipkin-receiver", move |req| {
            handle(req, served.clone())
        }));
        Ok(ZipkinReceiver {
            store,
            addr,
            runtime: Some(runtime),
        })
    }

    /// The URL to give the agent's `--zipkin-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}{SPANS_PATH}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ZipkinSpan> {
        self.store.lock().spans.clone()
    }

    /// Requests accepted so far.
    pub fn requests(&self) -> u64 {
        self.store.lock().requests
    }

    /// Requests refused (bad method, path, type or body), one line each.
    pub fn errors(&self) -> Vec<String> {
        self.store.lock().errors.clone()
    }

    /// Waits until `predicate` holds for the received spans and returns
    /// them; on timeout, an error that lists what did arrive.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&[ZipkinSpan]) -> bool,
    ) -> anyhow::Result<Vec<ZipkinSpan>> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.store.lock();
        loop {
            if predicate(&inner.spans) {
                return Ok(inner.spans.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for Zipkin spans; received {} span(s) \
                     in {} request(s), refused requests {:?}:\n{}",
                    inner.spans.len(),
                    inner.requests,
                    inner.errors,
                    dump(&inner.spans)
                );
            }
            let wait = (deadline - now).min(Duration::from_millis(200));
            inner = self
                .store
                .changed
                .wait_timeout(inner, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for ZipkinReceiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    store: Arc<Store>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        Ok(response)
    };
    let what = format!("{} {}", req.method(), req.uri().path());
    let refuse = |status: StatusCode, why: String| {
        store.error(format!("{what}: {why}"));
        reply(status, why)
    };
    if req.method() != hyper::Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "not a POST".into());
    }
    if req.uri().path() != SPANS_PATH {
        return refuse(StatusCode::NOT_FOUND, format!("not {SPANS_PATH}"));
    }
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !content_type.starts_with("application/json") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-type {content_type:?}"),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(spans)) => {
            store.add(spans);
            reply(StatusCode::ACCEPTED, String::new())
        }
        Ok(other) => refuse(
            StatusCode::BAD_REQUEST,
            format!("body is not a JSON array: {other}"),
        ),
        Err(e) => refuse(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    }
}
