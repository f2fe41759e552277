//! The REST API of the original rucat, over [`Engines`]:
//!
//! | method and path              | success                              |
//! |------------------------------|--------------------------------------|
//! | `POST /engine`               | 200 `{"id": "<id>"}`                 |
//! | `GET /engine/{id}`           | 200 engine info                      |
//! | `GET /engines`               | 200 `[{"id": "<id>"}, …]`, oldest first, a page at a time (`limit`, `after`, `state`; `Link` to the next page) |
//! | `POST /engine/{id}/stop`     | 200, empty body                      |
//! | `POST /engine/{id}/restart`  | 200, empty body                      |
//! | `DELETE /engine/{id}`        | 200, empty body                      |
//! | `GET /engine/{id}/logs`      | 200 `text/plain`, streamed ([`with_logs`]) |
//!
//! Every failure is a JSON [`ApiError`]. Every request is bounded in time
//! ([`with_timeouts`]): a body that stalls gets `408 request_timeout`, an
//! answer that takes too long `503 unavailable`. Beside the API, never behind
//! authentication: `GET /healthz`, `GET /readyz` (`rucat_monitor::http`),
//! `GET /openapi.json` ([`openapi`]) and, in [`observed_router`], `GET /metrics`.

mod audit;
mod error;
mod extract;
mod handlers;
mod log;
mod metrics;
pub mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use rucat_core::Engines;
use rucat_core::logs::EngineLogs;
use rucat_monitor::http::{
    RequestLimits, Telemetry, bound_requests, health_router, metrics_router,
};

use crate::auth::{self, StaticAuth};
use crate::gateway::Advertised;

pub use audit::Audit;
pub use error::{ApiError, ErrorBody, ErrorKind};
pub use handlers::EngineRef;
pub use metrics::HttpMetrics;
pub use openapi::Security;

/// Largest accepted request body. A create request is a few hundred bytes;
/// the limit only keeps a client from making the server buffer much more.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API as a router ready to serve, with `/healthz`, `/readyz` and
/// `/openapi.json`. With `auth`, every other request (including ones to
/// unknown paths) must authenticate first.
pub fn router(engines: Engines, auth: Option<StaticAuth>) -> Router {
    build(engines, auth, None)
}

/// [`router`] plus `/metrics`, serving `telemetry`, and HTTP metrics
/// recorded into `http` (registered into `telemetry`'s registry).
pub fn observed_router(
    engines: Engines,
    auth: Option<StaticAuth>,
    telemetry: Arc<Telemetry>,
    http: HttpMetrics,
) -> Router {
    build(engines, auth, Some((telemetry, http)))
}

/// Bounds `router`'s requests by `limits` instead of the defaults
/// ([`RequestLimits::default`]): a request whose body has not arrived
/// within `limits.body` gets 408 `request_timeout`; one not answered within
/// `limits.request` gets 408 if its handler is still waiting for the body,
/// else 503 `unavailable` with `Retry-After`. A slow handler is the
/// server's fault (typically a slow or unreachable store), as 503 says and
/// as a store that cannot be reached is answered already; 408 tells the
/// client that it was the slow one.
pub fn with_timeouts(router: Router, limits: RequestLimits) -> Router {
    router.layer(axum::Extension(limits))
}

/// Counts the audited actions of `router` (see [`audit`]) into `audit`'s
/// metrics; without it they are only logged.
pub fn with_audit(router: Router, audit: Audit) -> Router {
    router.layer(axum::Extension(audit))
}

/// Serves `GET /engine/{id}/logs` from `logs`; without it, that route
/// answers 404 (an embedding that keeps no logs).
pub fn with_logs(router: Router, logs: EngineLogs) -> Router {
    router.layer(axum::Extension(logs))
}

/// Makes `router` show a Running engine's endpoint as the gateway's
/// connection string for it (see [`crate::gateway`]) instead of the
/// engine's own address.
pub fn through_gateway(router: Router, gateway: Advertised) -> Router {
    router.layer(axum::Extension(gateway))
}

fn build(
    engines: Engines,
    auth: Option<StaticAuth>,
    observed: Option<(Arc<Telemetry>, HttpMetrics)>,
) -> Router {
    let security = match &auth {
        None => Security::OPEN,
        Some(auth) => Security {
            required: true,
            basic: auth.offers_basic(),
            bearer: auth.offers_bearer(),
        },
    };
    let store = Arc::clone(engines.store());
    let idle = *engines.idle_policy();
    let mut api = Router::new()
        .route("/engine", post(handlers::create))
        .route(
            "/engine/{id}",
            get(handlers::get)
                .delete(handlers::delete)
                .patch(handlers::update),
        )
        .route("/engine/{id}/stop", post(handlers::stop))
        .route("/engine/{id}/restart", post(handlers::restart))
        .route("/engine/{id}/logs", get(handlers::logs))
        .route("/engines", get(handlers::list))
        .fallback(handlers::not_found)
        // After the routes: it applies to those registered before it.
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Inside authentication, which tells it who asked.
        .layer(middleware::from_fn(audit::audit));
    // Puts the caller's `Identity` into every request's extensions
    // (`Identity::anonymous()` without auth), or refuses the request.
    api = api.layer(middleware::from_fn_with_state(auth, auth::require_auth));
    // Merged after the auth layer, so probes, scrapers and API clients
    // fetching the document need no credentials.
    let mut router = api
        .with_state(engines)
        .merge(health_router(store))
        .merge(openapi::router(security, &idle));
    let mut http_metrics = None;
    if let Some((telemetry, http)) = observed {
        router = router.merge(metrics_router(telemetry));
        http_metrics = Some(http);
    }
    // Inside the metrics and the log, which so see timed-out requests too;
    // outside the routes, so that authentication counts as well.
    router = router.layer(middleware::from_fn(bound_requests));
    if let Some(http) = http_metrics {
        router = router.layer(middleware::from_fn_with_state(http, metrics::record));
    }
    router.layer(middleware::from_fn(log::log_requests))
}
