//! What the metrics tests record: HTTP/1 exchanges, span identities and
//! processes, built alike everywhere.
use std::sync::Arc;

use crate::{
    context::parent::{ParentSource, SpanIdentity},
    process::{ProcessInfo, info::ProcDetails},
    protocols::http1::{Direction, Exchange, Outcome, RequestHead, ResponseHead, Version},
    spans::http::Endpoints,
};

/// A GET of `target` to `back:8080` answered with `status`: 30 ms, a
/// 100-byte response body.
pub fn exchange(dir: Direction, target: &str, status: u16) -> Exchange {
    Exchange {
        request_direction: dir,
        request: RequestHead {
            method: "GET".into(),
            target: target.into(),
            version: Version::Http11,
            headers: vec![("host", "back:8080".into())],
        },
        response: Some(ResponseHead {
            status,
            version: Version::Http11,
            headers: vec![],
        }),
        request_start: 0,
        request_end: 1_000,
        response_start: 2_000,
        response_end: 30_000_000,
        request_body_bytes: 0,
        response_body_bytes: 100,
        outcome: Outcome::Complete,
    }
}

/// Span `span` (a child of `parent`, else a root), unsampled: metrics
/// count it all the same.
pub fn identity(span: u64, parent: Option<u64>) -> SpanIdentity {
    SpanIdentity {
        trace_id: [1; 16],
        span_id: span.to_be_bytes(),
        parent_span_id: parent.map(u64::to_be_bytes),
        parent_is_remote: parent.is_some(),
        sampled: false,
        trace_state: None,
        source: ParentSource::None,
        injected: false,
    }
}

/// Process `pid` of service `name` on host `host-a`.
pub fn service(pid: u32, name: &str) -> Arc<ProcessInfo> {
    let details = ProcDetails {
        env_service_name: Some(name.into()),
        ..ProcDetails::default()
    };
    Arc::new(ProcessInfo::new(pid, details, "host-a"))
}

/// Both ends on loopback, the server on 8080.
pub fn ends() -> Endpoints {
    Endpoints {
        local: ([127, 0, 0, 1].into(), 8080),
        remote: ([127, 0, 0, 1].into(), 40_000),
        tls: false,
    }
}
