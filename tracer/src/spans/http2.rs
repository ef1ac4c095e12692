//! An HTTP/2 stream seen by one process → a gRPC span when it carries
//! gRPC, else an HTTP span like HTTP/1's.
use super::{
    clock::Clock,
    http::{self, Endpoints, HttpCall, HttpSpanOptions},
    record::SpanRecord,
    rpc,
};
use crate::{
    context::parent::SpanIdentity,
    process::ProcessInfo,
    protocols::{
        grpc,
        http2::{Direction, Exchange, Outcome},
    },
};

/// Whether the stream is a gRPC call (by its request's content-type, or
/// its response's when the request's was not kept).
pub fn is_grpc(ex: &Exchange) -> bool {
    ex.request
        .header("content-type")
        .or_else(|| ex.response.as_ref()?.field("content-type"))
        .is_some_and(grpc::is_grpc)
}

/// `route`: the server's own route for the request, if known (see
/// `HttpCall::route`).
pub fn build(
    ex: &Exchange,
    ends: &Endpoints,
    process: &ProcessInfo,
    clock: Clock,
    identity: SpanIdentity,
    opts: HttpSpanOptions,
    route: Option<&str>,
) -> SpanRecord {
    if is_grpc(ex) {
        return rpc::build(ex, ends, process, clock, identity);
    }
    let call = HttpCall {
        route,
        ..call_of(ex)
    };
    http::build_call(&call, ends, process, clock, identity, opts)
}

/// What the span (and the metrics) of a stream that is not gRPC are made of.
pub fn call_of(ex: &Exchange) -> HttpCall<'_> {
    let req = &ex.request;
    HttpCall {
        server: ex.request_direction == Direction::Ingress,
        method: req.method(),
        target: req.path(),
        scheme: req.header(":scheme").unwrap_or("http"),
        version: "2",
        host: req.header(":authority"),
        user_agent: req.header("user-agent"),
        status: ex.response.as_ref().and_then(|r| r.status),
        lost: lost_reason(ex.outcome),
        start: ex.request_start,
        end: ex.response_end.max(ex.request_end),
        request_body_bytes: ex.request_body_bytes,
        response_body_bytes: ex.response_body_bytes,
        route: None,
    }
}

/// `error.type` for a stream that ended without a (readable) response.
pub const fn lost_reason(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Complete => "response_lost",
        Outcome::Reset { .. } => "stream_reset",
        Outcome::Refused => "refused_stream",
        Outcome::ConnectionClosed => "connection_closed",
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use opentelemetry::{
        Value,
        trace::{SpanKind, Status},
    };

    use super::*;
    use crate::{
        process::info::ProcDetails,
        protocols::http2::{Request, Response},
        spans::ids::IdGenerator,
    };

    fn fields(f: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        f.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    }

    fn exchange(
        dir: Direction,
        request: &[(&'static str, &str)],
        response: Option<&[(&'static str, &str)]>,
        outcome: Outcome,
    ) -> Exchange {
        Exchange {
            stream_id: 1,
            request_direction: dir,
            request: Request {
                headers: fields(request).into(),
            },
            response: response.map(|r| Response {
                status: r
                    .iter()
                    .find(|(n, _)| *n == ":status")
                    .and_then(|(_, v)| v.parse().ok()),
                headers: fields(r),
                trailers: Vec::new(),
            }),
            request_start: 1_000,
            request_end: 2_000,
            response_start: 3_000,
            response_end: 4_000,
            request_body_bytes: 7,
            response_body_bytes: 9,
            outcome,
        }
    }

    fn span(ex: &Exchange) -> SpanRecord {
        span_with_route(ex, None)
    }

    fn span_with_route(ex: &Exchange, route: Option<&str>) -> SpanRecord {
        let process = ProcessInfo::new(1, ProcDetails::default(), "h");
        let ends = Endpoints {
            local: (Ipv4Addr::LOCALHOST.into(), 40_000),
            remote: (Ipv4Addr::new(10, 0, 0, 2).into(), 50_051),
            tls: false,
        };
        let (identity, _) = crate::context::parent::choose(
            None,
            &ex.request.headers,
            &mut IdGenerator::new(),
            |_| false,
        );
        build(
            ex,
            &ends,
            &process,
            Clock::new(),
            identity,
            HttpSpanOptions::default(),
            route,
        )
    }

    fn attr<'a>(s: &'a SpanRecord, k: &str) -> Option<&'a Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| &kv.value)
    }

    const GRPC: &[(&str, &str)] = &[
        (":method", "POST"),
        (":path", "/pkg.Svc/Do"),
        (":authority", "svc:50051"),
        ("content-type", "application/grpc+proto"),
    ];

    fn grpc_status(code: &str) -> Vec<(&str, &str)> {
        vec![
            (":status", "200"),
            ("grpc-status", code),
            ("grpc-message", "it%20failed"),
        ]
    }

    #[test]
    fn grpc_error_rules_differ_by_side() {
        let not_found = grpc_status("5");
        let deadline = grpc_status("4");
        for (dir, resp, error) in [
            (Direction::Egress, &not_found, true),
            (Direction::Ingress, &not_found, false),
            (Direction::Ingress, &deadline, true),
        ] {
            let s = span(&exchange(dir, GRPC, Some(resp), Outcome::Complete));
            assert_eq!(s.name, "pkg.Svc/Do");
            assert_eq!(attr(&s, "rpc.system").unwrap().as_str(), "grpc");
            assert_eq!(attr(&s, "rpc.service").unwrap().as_str(), "pkg.Svc");
            assert_eq!(attr(&s, "rpc.method").unwrap().as_str(), "Do");
            assert_eq!(attr(&s, "server.address").unwrap().as_str(), "svc");
            if error {
                assert_eq!(s.status, Status::error("it failed"));
                assert!(attr(&s, "error.type").is_some());
            } else {
                assert_eq!(s.status, Status::Unset, "{dir:?} {resp:?}");
                assert!(attr(&s, "error.type").is_none());
            }
        }
        let s = span(&exchange(
            Direction::Ingress,
            GRPC,
            Some(&deadline),
            Outcome::Complete,
        ));
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(attr(&s, "rpc.grpc.status_code"), Some(&Value::I64(4)));
        assert_eq!(
            attr(&s, "error.type").unwrap().as_str(),
            "DEADLINE_EXCEEDED"
        );
    }

    #[test]
    fn grpc_calls_cut_short() {
        let s = span(&exchange(
            Direction::Egress,
            GRPC,
            None,
            Outcome::ConnectionClosed,
        ));
        assert!(attr(&s, "rpc.grpc.status_code").is_none());
        assert_eq!(
            attr(&s, "error.type").unwrap().as_str(),
            "connection_closed"
        );
        assert!(matches!(s.status, Status::Error { .. }));
        let reset = Outcome::Reset {
            error_code: Some(8),
        };
        let s = span(&exchange(
            Direction::Egress,
            GRPC,
            Some(&[(":status", "200")]),
            reset,
        ));
        assert_eq!(
            attr(&s, "rpc.grpc.status_code"),
            Some(&Value::I64(1)),
            "CANCELLED"
        );
        let s = span(&exchange(
            Direction::Ingress,
            GRPC,
            Some(&[(":status", "200")]),
            reset,
        ));
        assert_eq!(
            s.status,
            Status::Unset,
            "a cancelled call is not the server's fault"
        );
        let s = span(&exchange(
            Direction::Egress,
            GRPC,
            Some(&[(":status", "503")]),
            Outcome::Complete,
        ));
        assert_eq!(attr(&s, "rpc.grpc.status_code"), Some(&Value::I64(14)));
    }

    #[test]
    fn plain_http2_is_an_http_span() {
        let req = [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/users/42?token=x"),
            (":authority", "api.test"),
            ("user-agent", "ua/1"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ];
        let s = span(&exchange(
            Direction::Egress,
            &req,
            Some(&[(":status", "404")]),
            Outcome::Complete,
        ));
        assert_eq!(s.name, "GET /users/{id}");
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!(attr(&s, "network.protocol.version").unwrap().as_str(), "2");
        assert_eq!(
            attr(&s, "url.full").unwrap().as_str(),
            "https://api.test:50051/users/42"
        );
        assert_eq!(attr(&s, "error.type").unwrap().as_str(), "404");
        assert_eq!(attr(&s, "http.request.body.size"), Some(&Value::I64(7)));
        assert_eq!(attr(&s, "tracer.parent.source").unwrap().as_str(), "header");
        assert_eq!(s.parent_span_id.unwrap()[0], 0xb7);
        let s = span(&exchange(
            Direction::Ingress,
            &req,
            None,
            Outcome::Reset { error_code: None },
        ));
        assert_eq!(attr(&s, "error.type").unwrap().as_str(), "stream_reset");
        assert_eq!(attr(&s, "http.route").unwrap().as_str(), "/users/{id}");
        // The server's own route (a Go ServeMux pattern) wins over the
        // template of the path.
        let ex = exchange(
            Direction::Ingress,
            &req,
            Some(&[(":status", "200")]),
            Outcome::Complete,
        );
        let s = span_with_route(&ex, Some("/users/"));
        assert_eq!(attr(&s, "http.route").unwrap().as_str(), "/users/");
        assert_eq!(s.name, "GET /users/");
    }
}
