//! An HTTP exchange seen by one process (HTTP/1 or one HTTP/2 stream) → one
//! SERVER or CLIENT span with the stable HTTP semantic-convention attributes.
use std::{cell::RefCell, net::IpAddr, sync::Arc};

use opentelemetry::{
    KeyValue, StringValue, Value,
    trace::{SpanKind, Status},
};

use super::{bounded::Bounded, clock::Clock, record::SpanRecord, redact, route};
use crate::{
    context::parent::SpanIdentity,
    process::ProcessInfo,
    protocols::http1::{Direction, Exchange, Outcome, Version},
};

/// The two ends of the connection as this process sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
    /// The connection carries TLS (its plaintext came from the TLS
    /// library): `url.scheme` is `https`.
    pub tls: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct HttpSpanOptions {
    /// Export the query string (secrets redacted) in url.query / url.full.
    pub capture_query: bool,
}

/// Methods the semantic conventions know; others are reported as `_OTHER`.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
];

/// What an HTTP span is made of, whatever the protocol version.
#[derive(Clone, Copy, Debug)]
pub struct HttpCall<'a> {
    /// The process served the request (else it sent it).
    pub server: bool,
    pub method: &'a str,
    /// The request-target (HTTP/1) or `:path` (HTTP/2), query included.
    pub target: &'a str,
    pub scheme: &'a str,
    /// `network.protocol.version`: `1.1`, `2`.
    pub version: &'static str,
    /// The Host header or `:authority`.
    pub host: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The final response's status, when one was read.
    pub status: Option<u16>,
    /// Why there is no status (`error.type` then), e.g. `connection_closed`.
    pub lost: &'static str,
    /// ns, kernel clock.
    pub start: u64,
    pub end: u64,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// The server's own route for the request (a Go ServeMux pattern),
    /// else the route is templated from the path.
    pub route: Option<&'a str>,
}

pub fn build(
    ex: &Exchange,
    ends: &Endpoints,
    process: &ProcessInfo,
    clock: Clock,
    identity: SpanIdentity,
    opts: HttpSpanOptions,
) -> SpanRecord {
    build_call(&call_of(ex, ends), ends, process, clock, identity, opts)
}

/// What the span (and the metrics) of an HTTP/1 exchange on the
/// connection `ends` are made of.
pub fn call_of<'a>(ex: &'a Exchange, ends: &Endpoints) -> HttpCall<'a> {
    let req = &ex.request;
    HttpCall {
        server: ex.request_direction == Direction::Ingress,
        method: &req.method,
        target: &req.target,
        scheme: if ends.tls { "https" } else { "http" },
        version: match req.version {
            Version::Http10 => "1.0",
            Version::Http11 => "1.1",
        },
        host: req.header("host"),
        user_agent: req.header("user-agent"),
        status: ex.response.as_ref().map(|r| r.status),
        lost: match ex.outcome {
            Outcome::ConnectionClosed => "connection_closed",
            Outcome::Complete | Outcome::ResponseLost => "response_lost",
        },
        start: ex.request_start,
        end: ex.response_end.max(ex.request_end),
        request_body_bytes: ex.request_body_bytes,
        response_body_bytes: ex.response_body_bytes,
        route: None,
    }
}

/// `http.request.method`: the method when the conventions know it, else
/// `_OTHER`; the flag says whether it was known. Static either way: an
/// attribute value that needs no copy.
pub fn method_name(method: &str) -> (&'static str, bool) {
    match KNOWN_METHODS.iter().find(|&&m| m == method) {
        Some(&m) => (m, true),
        None => ("_OTHER", false),
    }
}

/// The scheme as a static string (both are), so that the attribute value
/// needs no copy.
fn scheme_value(scheme: &str) -> Value {
    match scheme {
        "http" => Value::from("http"),
        "https" => Value::from("https"),
        other => Value::from(other.to_owned()),
    }
}

/// Peer addresses already written out, shared by the spans that name them
/// (every span of a connection names the same peer twice): formatting an
/// address was a twentieth of the agent's CPU. Bounded: cleared when full.
pub(crate) fn ip_text(ip: IpAddr) -> StringValue {
    thread_local! {
        static TEXTS: RefCell<Bounded<IpAddr, Arc<str>>> = RefCell::new(Bounded::new(4096));
    }
    let (_, text) =
        TEXTS.with_borrow_mut(|texts| texts.get_or_insert(&ip, || (ip, ip.to_string().into())));
    StringValue::from(text)
}

/// Attribute values that repeat from span to span (a connection's Host and
/// User-Agent, a server's paths), kept once and shared by the spans that
/// carry them: a lookup costs less than the allocation and free of a copy
/// per span. Bounded: cleared when full, and long values are not kept.
pub(crate) fn shared_text(text: &str) -> StringValue {
    const MAX_LEN: usize = 256;
    thread_local! {
        static TEXTS: RefCell<Bounded<Arc<str>, ()>> = RefCell::new(Bounded::new(4096));
    }
    if text.len() > MAX_LEN {
        return StringValue::from(text.to_owned());
    }
    let (shared, ()) =
        TEXTS.with_borrow_mut(|texts| texts.get_or_insert(text, || (text.into(), ())));
    StringValue::from(shared)
}

/// Whether an exchange with this final status failed: any 5xx, and for a
/// client any 4xx too (HTTP semantic conventions).
pub const fn is_error_status(status: u16, server: bool) -> bool {
    status >= 500 || (!server && status >= 400)
}

pub fn build_call(
    call: &HttpCall<'_>,
    ends: &Endpoints,
    process: &ProcessInfo,
    clock: Clock,
    identity: SpanIdentity,
    opts: HttpSpanOptions,
) -> SpanRecord {
    let server = call.server;
    let (path, query) = split_target(call.target);
    let (method, known) = method_name(call.method);
    let (path_value, route) = path_and_route(path, call.route);

    let mut attrs = Vec::with_capacity(16);
    attrs.push(KeyValue::new("http.request.method", method));
    if !known {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            call.method.to_owned(),
        ));
    }
    attrs.push(KeyValue::new("url.path", path_value));
    attrs.push(KeyValue::new("url.scheme", scheme_value(call.scheme)));
    let query = query
        .filter(|q| opts.capture_query && !q.is_empty())
        .map(redact::query);
    if let Some(q) = &query {
        attrs.push(KeyValue::new("url.query", q.clone()));
    }
    attrs.push(KeyValue::new("network.protocol.version", call.version));
    let peer = ip_text(ends.remote.0);
    attrs.push(KeyValue::new("network.peer.address", peer.clone()));
    attrs.push(KeyValue::new("network.peer.port", i64::from(ends.remote.1)));

    let (server_address, server_port) = server_endpoint(server, call.host, ends);
    attrs.push(KeyValue::new("server.address", server_address.clone()));
    let server_address = server_address.as_str();
    attrs.push(KeyValue::new("server.port", i64::from(server_port)));
    let name = span_name(if known { method } else { "HTTP" }, route.as_str());
    if server {
        attrs.push(KeyValue::new("http.route", route));
        attrs.push(KeyValue::new("client.address", peer));
    } else {
        attrs.push(KeyValue::new("url.template", route));
        let host = if server_address.contains(':') {
            format!("[{server_address}]")
        } else {
            server_address.to_owned()
        };
        let mut full = format!("{}://{host}:{server_port}{path}", call.scheme);
        if let Some(q) = &query {
            full.push('?');
            full.push_str(q);
        }
        attrs.push(KeyValue::new("url.full", full));
    }
    if let Some(ua) = call.user_agent {
        attrs.push(KeyValue::new("user_agent.original", shared_text(ua)));
    }

    if let Some(code) = call.status {
        attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
    }
    let error_type = match call.status {
        Some(code) if is_error_status(code, server) => Some(code.to_string()),
        Some(_) => None,
        None => Some(call.lost.to_owned()),
    };
    let status = match &error_type {
        Some(e) => {
            attrs.push(KeyValue::new("error.type", e.clone()));
            Status::error(String::new())
        }
        None => Status::Unset,
    };
    push_identity(&mut attrs, &identity);
    if call.request_body_bytes > 0 {
        attrs.push(KeyValue::new(
            "http.request.body.size",
            call.request_body_bytes as i64,
        ));
    }
    if call.response_body_bytes > 0 {
        attrs.push(KeyValue::new(
            "http.response.body.size",
            call.response_body_bytes as i64,
        ));
    }

    let kind = if server {
        SpanKind::Server
    } else {
        SpanKind::Client
    };
    let end = call.end.max(call.start);
    SpanRecord::new(
        identity,
        name,
        kind,
        (clock, call.start, end),
        attrs,
        status,
        process,
    )
}

/// `{method} {route}`, without the formatting machinery (a tenth of
/// building the span).
pub(crate) fn span_name(method: &str, route: &str) -> String {
    let mut name = String::with_capacity(method.len() + 1 + route.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(route);
    name
}

/// `url.path` and the route (the server's own, else templated from the
/// path). A path that templates to itself, the common case, is one string
/// shared by both attributes.
fn path_and_route(path: &str, own_route: Option<&str>) -> (StringValue, StringValue) {
    if let Some(r) = own_route {
        return (shared_text(path), shared_text(r));
    }
    let (path, route) = route::cached(path);
    (StringValue::from(path), StringValue::from(route))
}

/// `server.address` and `server.port`: the Host header (or `:authority`)
/// when present, else the address the connection reached.
pub fn server_endpoint(server: bool, host: Option<&str>, ends: &Endpoints) -> (StringValue, u16) {
    match server_endpoint_ref(server, host, ends) {
        (ServerAddress::Name(name), port) => (shared_text(name), port),
        (ServerAddress::Ip(ip), port) => (ip_text(ip), port),
    }
}

/// `server.address` without a copy: a name from the header, or the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerAddress<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

/// [`server_endpoint`], borrowing the name from the header.
pub fn server_endpoint_ref<'a>(
    server: bool,
    host: Option<&'a str>,
    ends: &Endpoints,
) -> (ServerAddress<'a>, u16) {
    let server_end = if server { ends.local } else { ends.remote };
    match host.and_then(parse_host) {
        Some((host, port)) => (ServerAddress::Name(host), port.unwrap_or(server_end.1)),
        None => (ServerAddress::Ip(server_end.0), server_end.1),
    }
}

/// How the parent was found, and whether the kernel injected this span's
/// context.
pub fn push_identity(attrs: &mut Vec<KeyValue>, identity: &SpanIdentity) {
    attrs.push(KeyValue::new(
        "tracer.parent.source",
        identity.source.as_str(),
    ));
    if identity.injected {
        attrs.push(KeyValue::new("tracer.context.injected", true));
    }
}

/// (path, query) of a request-target in origin form (`/a?b`) or absolute
/// form (`http://h/a?b`, as sent to proxies).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    // Origin form, by far the most common, needs no search for a scheme.
    let scheme_end = if target.starts_with('/') {
        None
    } else {
        target.find("://")
    };
    let target = match scheme_end {
        Some(i) => {
            let rest = &target[i + 3..];
            rest.find('/').map_or("/", |p| &rest[p..])
        }
        None => target,
    };
    let target = target.split('#').next().unwrap_or(target);
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// `host[:port]` or `[v6]:port` from a Host header.
fn parse_host(h: &str) -> Option<(&str, Option<u16>)> {
    let h = h.trim();
    if h.is_empty() {
        return None;
    }
    if let Some(rest) = h.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((addr, port));
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, port.parse().ok())),
        _ => Some((h, None)),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{
        process::info::ProcDetails,
        protocols::http1::{RequestHead, ResponseHead},
        spans::ids::IdGenerator,
    };

    fn exchange(dir: Direction, target: &str, status: Option<u16>) -> Exchange {
        Exchange {
            request_direction: dir,
            request: RequestHead {
                method: "GET".into(),
                target: target.into(),
                version: Version::Http11,
                headers: vec![
                    ("host", "example.test:8080".into()),
                    ("user-agent", "curl/8.0".into()),
                    ("authorization", "Bearer secret".into()),
                ],
            },
            response: status.map(|s| ResponseHead {
                status: s,
                version: Version::Http11,
                headers: vec![],
            }),
            request_start: 1_000,
            request_end: 2_000,
            response_start: 3_000,
            response_end: 4_000,
            request_body_bytes: 0,
            response_body_bytes: 5,
            outcome: if status.is_some() {
                Outcome::Complete
            } else {
                Outcome::ConnectionClosed
            },
        }
    }

    fn attr<'a>(s: &'a SpanRecord, k: &str) -> Option<&'a opentelemetry::Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| &kv.value)
    }

    fn build_one(dir: Direction, target: &str, status: Option<u16>, q: bool) -> SpanRecord {
        let process = ProcessInfo::new(1, ProcDetails::default(), "h");
        let ends = Endpoints {
            local: (Ipv4Addr::LOCALHOST.into(), 8080),
            remote: (Ipv4Addr::new(10, 0, 0, 2).into(), 40000),
            tls: false,
        };
        let (identity, _) =
            crate::context::parent::choose(None, &[], &mut IdGenerator::new(), |_| false);
        build(
            &exchange(dir, target, status),
            &ends,
            &process,
            Clock::new(),
            identity,
            HttpSpanOptions { capture_query: q },
        )
    }

    #[test]
    fn server_span_attributes() {
        let s = build_one(Direction::Ingress, "/users/42?token=x", Some(200), false);
        assert_eq!(s.name, "GET /users/{id}");
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(attr(&s, "url.path").unwrap().as_str(), "/users/42");
        assert_eq!(attr(&s, "http.route").unwrap().as_str(), "/users/{id}");
        assert_eq!(attr(&s, "server.address").unwrap().as_str(), "example.test");
        assert_eq!(
            attr(&s, "server.port"),
            Some(&opentelemetry::Value::I64(8080))
        );
        assert_eq!(attr(&s, "client.address").unwrap().as_str(), "10.0.0.2");
        assert_eq!(
            attr(&s, "http.response.status_code"),
            Some(&opentelemetry::Value::I64(200))
        );
        assert!(
            attr(&s, "url.query").is_none(),
            "query not exported by default"
        );
        assert!(
            s.attributes
                .iter()
                .all(|kv| !kv.value.as_str().contains("secret"))
        );
        assert_eq!(s.status, Status::Unset);
    }

    #[test]
    fn client_span_errors_and_redacted_query() {
        let s = build_one(Direction::Egress, "/a?token=abc&x=1", Some(404), true);
        assert_eq!(s.kind, SpanKind::Client);
        assert!(matches!(s.status, Status::Error { .. }));
        assert_eq!(attr(&s, "error.type").unwrap().as_str(), "404");
        assert_eq!(
            attr(&s, "url.full").unwrap().as_str(),
            "http://example.test:8080/a?token=REDACTED&x=1"
        );
        assert!(attr(&s, "http.route").is_none());
        let s = build_one(Direction::Ingress, "/a", Some(404), false);
        assert_eq!(s.status, Status::Unset, "4xx is not a server error");
        let s = build_one(Direction::Ingress, "/a", Some(503), false);
        assert_eq!(attr(&s, "error.type").unwrap().as_str(), "503");
        let s = build_one(Direction::Egress, "/a", None, false);
        assert_eq!(
            attr(&s, "error.type").unwrap().as_str(),
            "connection_closed"
        );
    }

    #[test]
    fn repeated_values_are_shared_and_long_ones_copied() {
        let a = shared_text("curl/8.0");
        let b = shared_text(&String::from("curl/8.0"));
        assert_eq!(a.as_str(), "curl/8.0");
        assert!(
            std::ptr::eq(a.as_str(), b.as_str()),
            "one copy for both spans"
        );
        let long = "x".repeat(300);
        let (c, d) = (shared_text(&long), shared_text(&long));
        assert_eq!(c.as_str(), long);
        assert!(
            !std::ptr::eq(c.as_str(), d.as_str()),
            "long values are not kept"
        );
        // Past the bound the table starts over; values stay right.
        for i in 0..10_000 {
            assert_eq!(
                shared_text(&format!("/item/{i}")).as_str(),
                format!("/item/{i}")
            );
        }
        assert_eq!(shared_text("curl/8.0").as_str(), "curl/8.0");
        assert_eq!(span_name("GET", "/users/{id}"), "GET /users/{id}");
    }

    #[test]
    fn targets_and_hosts() {
        assert_eq!(split_target("/a/b?c=d"), ("/a/b", Some("c=d")));
        assert_eq!(split_target("http://h:1/x?y"), ("/x", Some("y")));
        assert_eq!(split_target("http://h"), ("/", None));
        assert_eq!(parse_host("[::1]:8080"), Some(("::1", Some(8080))));
        assert_eq!(parse_host("h"), Some(("h", None)));
        assert_eq!(parse_host("h:80"), Some(("h", Some(80))));
    }
}
