//! What one finished exchange contributes to the metrics: its instrument,
//! attributes, duration and body sizes. Pure: built from the parsers' output
//! with the same rules as the spans (`spans::http`, `spans::rpc`), borrowing
//! everything but the route, which is templated into the caller's buffer.
use crate::{
    protocols::{grpc, http1, http2},
    spans::{
        http::{self, Endpoints, HttpCall},
        http2 as http2_spans, route,
    },
};

use super::attributes::{Attrs, ErrorType, Instrument};

/// One exchange, as the metrics see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation<'a> {
    pub instrument: Instrument,
    pub attrs: Attrs<'a>,
    /// Seconds from the request's first byte to the response's last.
    pub duration: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// `error.type` is set (what the service graph counts as failed).
    pub failed: bool,
}

/// An HTTP/1 exchange.
pub fn http1<'a>(
    ex: &'a http1::Exchange,
    ends: &Endpoints,
    route_buf: &'a mut String,
) -> Observation<'a> {
    http_call(&http::call_of(ex, ends), ends, route_buf)
}

/// An HTTP/2 stream: gRPC or plain HTTP.
pub fn http2<'a>(
    ex: &'a http2::Exchange,
    ends: &Endpoints,
    route_buf: &'a mut String,
    route: Option<&'a str>,
) -> Observation<'a> {
    if http2_spans::is_grpc(ex) {
        rpc(ex, ends)
    } else {
        let call = HttpCall {
            route,
            ..http2_spans::call_of(ex)
        };
        http_call(&call, ends, route_buf)
    }
}

fn http_call<'a>(
    call: &HttpCall<'a>,
    ends: &Endpoints,
    route_buf: &'a mut String,
) -> Observation<'a> {
    let (path, _) = http::split_target(call.target);
    let (method, _) = http::method_name(call.method);
    let error = match call.status {
        Some(code) if http::is_error_status(code, call.server) => ErrorType::Status(code),
        Some(_) => ErrorType::None,
        None => ErrorType::Named(call.lost),
    };
    let (instrument, route, server) = if call.server {
        match call.route {
            Some(route) => {
                route_buf.clear();
                route_buf.push_str(route);
            }
            None => route::cached_into(path, route_buf),
        }
        (Instrument::HttpServer, route_buf.as_str(), None)
    } else {
        let server = http::server_endpoint_ref(false, call.host, ends);
        (Instrument::HttpClient, "", Some(server))
    };
    Observation {
        instrument,
        attrs: Attrs {
            method,
            status: call.status,
            route,
            server,
            error,
            protocol_version: call.version,
            scheme: call.scheme,
            rpc_service: "",
            rpc_method: "",
            grpc_code: None,
        },
        duration: seconds(call.start, call.end),
        request_bytes: call.request_body_bytes,
        response_bytes: call.response_body_bytes,
        failed: error != ErrorType::None,
    }
}

fn rpc<'a>(ex: &'a http2::Exchange, ends: &Endpoints) -> Observation<'a> {
    let server = ex.request_direction == http2::Direction::Ingress;
    let name = grpc::parse_path(ex.request.path());
    let response = ex.response.as_ref();
    let rst = match ex.outcome {
        http2::Outcome::Reset { error_code } => error_code,
        _ => None,
    };
    let code = grpc::status_of(
        response.and_then(|r| r.field("grpc-status")),
        response.and_then(|r| r.status),
        rst,
    );
    let error = match code {
        Some(c) if is_rpc_error(c, server) => match c.static_name() {
            Some(name) => ErrorType::Named(name),
            None => ErrorType::Code(c.0),
        },
        Some(_) => ErrorType::None,
        None => ErrorType::Named(http2_spans::lost_reason(ex.outcome)),
    };
    let (instrument, server_end) = if server {
        (Instrument::RpcServer, None)
    } else {
        let end = http::server_endpoint_ref(false, ex.request.header(":authority"), ends);
        (Instrument::RpcClient, Some(end))
    };
    let end = ex.response_end.max(ex.request_end);
    Observation {
        instrument,
        attrs: Attrs {
            method: "",
            status: None,
            route: "",
            server: server_end,
            error,
            protocol_version: "",
            scheme: "",
            rpc_service: name.map_or("", |n| n.service),
            rpc_method: name.map_or("", |n| n.method),
            grpc_code: code.map(|c| c.0),
        },
        duration: seconds(ex.request_start, end),
        request_bytes: ex.request_body_bytes,
        response_bytes: ex.response_body_bytes,
        failed: error != ErrorType::None,
    }
}

/// As `spans::rpc`: a client fails on any status but OK, a server only on
/// the codes that blame it.
fn is_rpc_error(code: grpc::Code, server: bool) -> bool {
    if server {
        grpc::is_server_error(code)
    } else {
        code != grpc::Code::OK
    }
}

fn seconds(start_ns: u64, end_ns: u64) -> f64 {
    end_ns.saturating_sub(start_ns) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{
        protocols::http1::{Direction, Outcome, RequestHead, ResponseHead, Version},
        spans::http::ServerAddress,
    };

    fn ends() -> Endpoints {
        Endpoints {
            local: (Ipv4Addr::LOCALHOST.into(), 40_000),
            remote: (Ipv4Addr::new(10, 0, 0, 2).into(), 8080),
            tls: false,
        }
    }

    fn exchange(
        dir: Direction,
        method: &str,
        target: &str,
        status: Option<u16>,
    ) -> http1::Exchange {
        http1::Exchange {
            request_direction: dir,
            request: RequestHead {
                method: method.into(),
                target: target.into(),
                version: Version::Http11,
                headers: vec![("host", "api.test".into())],
            },
            response: status.map(|s| ResponseHead {
                status: s,
                version: Version::Http11,
                headers: vec![],
            }),
            request_start: 1_000_000,
            request_end: 2_000_000,
            response_start: 3_000_000,
            response_end: 251_000_000,
            request_body_bytes: 3,
            response_body_bytes: 5,
            outcome: if status.is_some() {
                Outcome::Complete
            } else {
                Outcome::ConnectionClosed
            },
        }
    }

    #[test]
    fn server_exchange_has_route_and_status() {
        let ex = exchange(Direction::Ingress, "GET", "/users/42?token=x", Some(500));
        let mut buf = String::new();
        let o = http1(&ex, &ends(), &mut buf);
        assert_eq!(o.instrument, Instrument::HttpServer);
        assert_eq!(o.attrs.route, "/users/{id}");
        assert_eq!(o.attrs.server, None);
        assert_eq!(o.attrs.error, ErrorType::Status(500));
        assert!(o.failed);
        assert!((o.duration - 0.25).abs() < 1e-9);
        assert_eq!((o.request_bytes, o.response_bytes), (3, 5));
    }

    #[test]
    fn client_exchange_has_server_and_no_route() {
        let ex = exchange(Direction::Egress, "BREW", "/pot/1", None);
        let mut buf = String::new();
        let o = http1(&ex, &ends(), &mut buf);
        assert_eq!(o.instrument, Instrument::HttpClient);
        assert_eq!(o.attrs.method, "_OTHER");
        assert_eq!(o.attrs.route, "");
        assert_eq!(
            o.attrs.server,
            Some((ServerAddress::Name("api.test"), 8080))
        );
        assert_eq!(o.attrs.error, ErrorType::Named("connection_closed"));
        let ex = exchange(Direction::Egress, "GET", "/", Some(404));
        let o = http1(&ex, &ends(), &mut buf);
        assert_eq!(o.attrs.error, ErrorType::Status(404));
    }
}
