//! The `/metrics` endpoint: a small HTTP/1 server (hyper) that answers
//! every scrape with a fresh encoding of the registry.
use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::prometheus_text::CONTENT_TYPE as TEXT_FORMAT, registry::Registry,
};
use tokio::{net::TcpListener, task::JoinHandle};

/// Binds `addr` and serves until the task is aborted. Fails only when the
/// address cannot be bound.
pub async fn spawn(
    addr: SocketAddr,
    registry: Registry,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for Prometheus"))?;
    let local = listener.local_addr().context("no local address")?;
    let registry = Arc::new(registry);
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait it out.
                    log::warn!("prometheus endpoint: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, Arc::clone(&registry)));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    log::debug!("prometheus endpoint: connection ended: {e}");
                }
            });
        }
    });
    Ok((local, task))
}

async fn answer(
    req: Request<Incoming>,
    registry: Arc<Registry>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    if req.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: metrics are at /metrics\n".to_owned(),
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_owned(),
        ));
    }
    // Encoding takes the aggregation's lock briefly; off the runtime's
    // worker so a large scrape never stalls the event reader.
    let encoded = tokio::task::spawn_blocking(move || super::prometheus::encode(&registry)).await;
    Ok(match encoded {
        Ok(Ok(text)) => reply(StatusCode::OK, TEXT_FORMAT, text),
        _ => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "cannot encode the metrics\n".to_owned(),
        ),
    })
}
