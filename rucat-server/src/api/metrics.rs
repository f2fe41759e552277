//! HTTP metrics: requests and their latency by method, route and status.
//!
//! The route label is the route's pattern (`/engine/{id}`), never the
//! request's path, so engine ids cannot multiply the series; requests no route
//! matched share `unmatched`, and unusual methods share `other`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// API calls are store round trips: milliseconds, seconds when the store struggles.
const REQUEST_SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_SECONDS)
}

/// Cheap to clone: the metrics are shared.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(request_histogram),
        };
        registry.register(
            "rucat_http_requests",
            "HTTP requests answered, by method, route pattern and status",
            metrics.requests.clone(),
        );
        registry.register(
            "rucat_http_request_duration_seconds",
            "How long HTTP requests took to answer, by method, route pattern and status",
            metrics.duration.clone(),
        );
        metrics
    }
}

/// Middleware: counts and times every request. Layered over the whole
/// router, so it sees the route the router matched.
pub async fn record(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&labels).inc();
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}
