//! A gRPC call seen by one process → one SERVER or CLIENT span with the
//! OpenTelemetry RPC semantic-convention attributes for gRPC.
use opentelemetry::{
    KeyValue,
    trace::{SpanKind, Status},
};

use super::{
    clock::Clock,
    http::{self, Endpoints},
    http2::lost_reason,
    record::SpanRecord,
};
use crate::{
    context::parent::SpanIdentity,
    process::ProcessInfo,
    protocols::{
        grpc::{self, Code},
        http2::{Direction, Exchange, Outcome},
    },
};

/// Longer `grpc-message`s are cut to this many characters in the status.
const MAX_MESSAGE_CHARS: usize = 256;

pub fn build(
    ex: &Exchange,
    ends: &Endpoints,
    process: &ProcessInfo,
    clock: Clock,
    identity: SpanIdentity,
) -> SpanRecord {
    let server = ex.request_direction == Direction::Ingress;
    let path = ex.request.path();
    let name = grpc::parse_path(path);

    let mut attrs = Vec::with_capacity(12);
    attrs.push(KeyValue::new("rpc.system", "grpc"));
    if let Some(n) = name {
        attrs.push(KeyValue::new("rpc.service", n.service.to_owned()));
        attrs.push(KeyValue::new("rpc.method", n.method.to_owned()));
    }
    let (server_address, server_port) =
        http::server_endpoint(server, ex.request.header(":authority"), ends);
    attrs.push(KeyValue::new("server.address", server_address));
    attrs.push(KeyValue::new("server.port", i64::from(server_port)));
    attrs.push(KeyValue::new(
        "network.peer.address",
        http::ip_text(ends.remote.0),
    ));
    attrs.push(KeyValue::new("network.peer.port", i64::from(ends.remote.1)));

    let response = ex.response.as_ref();
    let rst = match ex.outcome {
        Outcome::Reset { error_code } => error_code,
        _ => None,
    };
    let code = grpc::status_of(
        response.and_then(|r| r.field("grpc-status")),
        response.and_then(|r| r.status),
        rst,
    );
    if let Some(code) = code {
        attrs.push(KeyValue::new("rpc.grpc.status_code", i64::from(code.0)));
    }
    let error_type = match code {
        Some(c) if is_error(c, server) => Some(c.name()),
        Some(_) => None,
        None => Some(lost_reason(ex.outcome).to_owned()),
    };
    let status = match error_type {
        Some(e) => {
            attrs.push(KeyValue::new("error.type", e));
            let message = response
                .and_then(|r| r.field("grpc-message"))
                .map(|m| {
                    grpc::decode_message(m)
                        .chars()
                        .take(MAX_MESSAGE_CHARS)
                        .collect::<String>()
                })
                .unwrap_or_default();
            Status::error(message)
        }
        None => Status::Unset,
    };
    http::push_identity(&mut attrs, &identity);

    let name = name.map_or_else(
        || path.trim_start_matches('/').to_owned(),
        |n| format!("{}/{}", n.service, n.method),
    );
    let kind = if server {
        SpanKind::Server
    } else {
        SpanKind::Client
    };
    let end = ex.response_end.max(ex.request_end).max(ex.request_start);
    SpanRecord::new(
        identity,
        name,
        kind,
        (clock, ex.request_start, end),
        attrs,
        status,
        process,
    )
}

/// Client spans fail on any non-OK status; server spans only on the codes
/// that blame the server.
fn is_error(code: Code, server: bool) -> bool {
    if server {
        grpc::is_server_error(code)
    } else {
        code != Code::OK
    }
}
