//! The REST API of the original rucat, over [`Engines`]:
//!
//! | method and path              | success                              |
//! |------------------------------|--------------------------------------|
//! | `POST /engine`               | 200 `{"id": "<id>"}`                 |
//! | `GET /engine/{id}`           | 200 engine info                      |
//! | `GET /engines`               | 200 `[{"id": "<id>"}, …]`, oldest first |
//! | `POST /engine/{id}/stop`     | 200, empty body                      |
//! | `POST /engine/{id}/restart`  | 200, empty body                      |
//! | `DELETE /engine/{id}`        | 200, empty body                      |
//!
//! Every failure is a JSON [`ApiError`].

mod error;
mod extract;
mod handlers;
mod log;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use rucat_core::Engines;

use crate::auth::{self, StaticAuth};

pub use error::ApiError;
pub use handlers::EngineRef;

/// Largest accepted request body. A create request is a few hundred bytes;
/// the limit only keeps a client from making the server buffer much more.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API as a router ready to serve. With `auth`, every request
/// (including ones to unknown paths) must authenticate first.
pub fn router(engines: Engines, auth: Option<StaticAuth>) -> Router {
    let mut router = Router::new()
        .route("/engine", post(handlers::create))
        .route("/engine/{id}", get(handlers::get).delete(handlers::delete))
        .route("/engine/{id}/stop", post(handlers::stop))
        .route("/engine/{id}/restart", post(handlers::restart))
        .route("/engines", get(handlers::list))
        .fallback(handlers::not_found)
        // After the routes: it applies to those registered before it.
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    if let Some(auth) = auth {
        router = router.layer(middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require_auth,
        ));
    }
    router
        .layer(middleware::from_fn(log::log_requests))
        .with_state(engines)
}
