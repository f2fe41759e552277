//! The HTTP face of a rucat process for operators: liveness, readiness and
//! Prometheus metrics.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 `{"status": "ok"}` while the process serves at all |
//! | `GET /readyz` | 200 `{"status": "ok"}` if the store answers, else 503 `{"error": "unavailable", …}` |
//! | `GET /metrics` | the process's metrics in the OpenMetrics text format |
//!
//! Both binaries serve these — the monitor on its own `--listen` address,
//! the server beside its API — and never behind authentication: probes and
//! scrapers carry no credentials, and nothing here tells more than how many
//! engines are in each state.
//!
//! No client holds a connection or a handler forever: [`bound_requests`]
//! answers 408 to a request whose body stalls and 503 to one that takes too
//! long, and [`serve`] closes connections that send no request head in time.

mod limits;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use rucat_core::Store;
use rucat_core::metrics::{EngineStates, OPENMETRICS_CONTENT_TYPE};
use serde_json::json;

pub use limits::{HEADER_READ_TIMEOUT, REQUEST_TIMEOUT, RequestLimits, bound_requests, serve};

/// A process's metrics registry, with the engines-by-state gauges that are
/// read from the store at each scrape. Register the process's other metric
/// sets through [`Telemetry::registry_mut`] before sharing it.
pub struct Telemetry {
    store: Arc<dyn Store>,
    registry: Registry,
    engines: EngineStates,
}

impl Telemetry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let mut registry = Registry::default();
        let engines = EngineStates::register(&mut registry);
        Self {
            store,
            registry,
            engines,
        }
    }

    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Reads the engine counts and encodes every metric. A store that cannot
    /// be read does not fail the scrape: the other metrics still matter most
    /// then, and `rucat_store_up` says what happened.
    pub async fn render(&self) -> Result<String, std::fmt::Error> {
        if let Err(err) = self.engines.refresh(self.store.as_ref()).await {
            tracing::warn!(%err, "cannot count engines for the metrics");
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// `/healthz` and `/readyz` over `store`, without a fallback so that it can
/// be merged into another router.
pub fn health_router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(store)
}

/// `/metrics`, without a fallback so that it can be merged into another router.
pub fn metrics_router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(telemetry)
}

/// Health and metrics on their own, as the monitor binary serves them,
/// each request bounded by the default [`RequestLimits`].
pub fn router(telemetry: Arc<Telemetry>) -> Router {
    health_router(Arc::clone(telemetry.store()))
        .merge(metrics_router(telemetry))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(bound_requests))
}

/// The JSON error shape of the whole rucat HTTP surface.
pub fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": kind, "message": message})),
    )
        .into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(store): State<Arc<dyn Store>>) -> Response {
    match store.ping().await {
        Ok(()) => axum::Json(json!({"status": "ok"})).into_response(),
        Err(err) => {
            tracing::warn!(%err, "not ready: the store does not answer");
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the engine store is unavailable",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Response {
    match telemetry.render().await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(%err, "cannot encode the metrics");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal server error",
            )
        }
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed",
    )
}
