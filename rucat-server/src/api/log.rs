//! One log line per request, so operators see traffic and failures without
//! a tracing layer dependency. Only method, path and status are logged:
//! headers (and so credentials) and bodies never are.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

pub async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_millis();
    if response.status().is_server_error() {
        tracing::warn!(%method, %path, status, elapsed_ms, "request failed");
    } else {
        tracing::info!(%method, %path, status, elapsed_ms, "request");
    }
    response
}
