//! Static authentication, as in the original rucat: when an `auth_provider`
//! is configured, every request must carry `Authorization: Basic …` with the
//! configured user and password, or `Authorization: Bearer …` with the
//! configured token. Without one the API is open.

mod check;
mod config;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

pub use check::StaticAuth;
pub use config::{AuthProviderConfig, StaticAuthProviderConfig};
pub use rucat_core::Secret;

impl From<AuthProviderConfig> for StaticAuth {
    fn from(config: AuthProviderConfig) -> Self {
        match config {
            AuthProviderConfig::StaticAuthProviderConfig(config) => config.into(),
        }
    }
}

/// Middleware: lets the request through only with valid credentials, else
/// answers 401 with a challenge. The header's content is never logged.
pub async fn require_auth(
    State(auth): State<Arc<StaticAuth>>,
    req: Request,
    next: Next,
) -> Response {
    let allowed = req
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|value| auth.allows(value.as_bytes()));
    if allowed {
        next.run(req).await
    } else {
        tracing::debug!(method = %req.method(), path = req.uri().path(), "unauthenticated request refused");
        ApiError::Unauthorized {
            bearer: auth.offers_bearer(),
        }
        .into_response()
    }
}
