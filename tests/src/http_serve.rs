//! The accept loop of the harness's small HTTP/1 servers (the OTLP and
//! Zipkin receivers, a static metrics page): one task per connection, each
//! request answered by `handle`.
use std::{convert::Infallible, future::Future, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves `listener` until the runtime stops; `name` prefixes errors.
pub async fn serve<F, Fut>(listener: TcpListener, name: &'static str, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("[{name}] accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await
            {
                eprintln!("[{name}] connection error: {e}");
            }
        });
    }
}
