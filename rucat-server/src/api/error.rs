//! The one error shape every failing API request gets, so clients handle
//! errors by a stable `error` kind instead of parsing text or status codes
//! alone:
//!
//! ```json
//! {"error": "invalid_request", "message": "name: must not be empty", "field": "name"}
//! ```
//!
//! `field` appears only for request validation errors, `state` only when an
//! action is refused because of the engine's state.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rucat_core::logs::OpenLogError;
use rucat_core::quota::QuotaKind;
use rucat_core::{EngineError, EngineState, QuotaExceeded, StoreError, ValidationError};
use serde::Serialize;
use utoipa::ToSchema;

/// Why an API request failed; converts into the HTTP response the client sees.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Syntactically broken input: malformed JSON, an id rucat could not have made.
    #[error("{0}")]
    BadRequest(String),
    /// Credentials are missing or wrong. `basic` and `bearer` say which
    /// schemes the challenge offers (Basic when neither is: a server behind
    /// a proxy still owes the client a challenge).
    #[error("authentication required")]
    Unauthorized { basic: bool, bearer: bool },
    /// The caller's address failed to log in too often (see
    /// `crate::auth`); it may try again in `retry_after_secs`.
    #[error("too many failed logins from your address; retry in {retry_after_secs} s")]
    TooManyFailedLogins { retry_after_secs: u64 },
    /// The caller may see the engine but not do this to it (a group member
    /// changing whom it is shared with: only its owner and admins may).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller is at a quota (see `rucat_core::quota`).
    #[error("{0}; stop or delete an engine first, or ask an admin for a larger quota")]
    QuotaExceeded(QuotaExceeded),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The action is not allowed in the engine's current state.
    #[error("{message}")]
    InvalidState { message: String, state: EngineState },
    /// Lost races too often; retrying later will likely succeed.
    #[error("{0}")]
    Contended(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("expected a request body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// Well-formed JSON that is not an acceptable request; `field` names the
    /// culprit when it is known.
    #[error("{message}")]
    Unprocessable {
        message: String,
        field: Option<String>,
    },
    /// The store cannot be reached; the details stay in the server log.
    #[error("the engine store is unavailable; try again later")]
    Unavailable,
    /// A bug or corrupt data; the details stay in the server log.
    #[error("internal server error")]
    Internal,
}

/// The machine-readable `error` field: what kind of failure, for clients
/// to branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    /// Too many failed logins from the caller's address (429).
    RateLimited,
    /// The caller may see the engine but not change it so (403).
    Forbidden,
    NotFound,
    /// The caller is at a quota (429, naming `quota`, `count` and `limit`).
    QuotaExceeded,
    MethodNotAllowed,
    InvalidState,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidRequest,
    /// The client did not send its request in time (408; see
    /// `rucat_monitor::http::bound_requests`, which answers it).
    RequestTimeout,
    Unavailable,
    Internal,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorKind,
    /// What went wrong, for people.
    pub message: String,
    /// The offending request field, for `invalid_request`, e.g. `name` or
    /// `configs.spark.master`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
    /// The engine's state, for `invalid_state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub state: Option<EngineState>,
    /// The quota reached, for `quota_exceeded`: `max_engines` or `max_running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<String>)]
    pub quota: Option<QuotaKind>,
    /// The caller's count against `quota` when the request was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub count: Option<u64>,
    /// The caller's limit for `quota`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub limit: Option<u64>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::TooManyFailedLogins { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidState { .. } | Self::Contended(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error` field.
    pub fn error_kind(&self) -> ErrorKind {
        match self {
            Self::BadRequest(_) => ErrorKind::BadRequest,
            Self::Unauthorized { .. } => ErrorKind::Unauthorized,
            Self::TooManyFailedLogins { .. } => ErrorKind::RateLimited,
            Self::Forbidden(_) => ErrorKind::Forbidden,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            Self::MethodNotAllowed => ErrorKind::MethodNotAllowed,
            Self::InvalidState { .. } => ErrorKind::InvalidState,
            Self::Contended(_) => ErrorKind::Conflict,
            Self::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            Self::UnsupportedMediaType => ErrorKind::UnsupportedMediaType,
            Self::Unprocessable { .. } => ErrorKind::InvalidRequest,
            Self::Unavailable => ErrorKind::Unavailable,
            Self::Internal => ErrorKind::Internal,
        }
    }

    /// The `error` field as text, e.g. `not_found`.
    pub fn kind(&self) -> &'static str {
        self.error_kind().as_str()
    }
}

impl ErrorKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::QuotaExceeded => "quota_exceeded",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidState => "invalid_state",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidRequest => "invalid_request",
            Self::RequestTimeout => rucat_monitor::http::REQUEST_TIMEOUT,
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.error_kind(),
            message: self.to_string(),
            field: match &self {
                Self::Unprocessable { field, .. } => field.clone(),
                _ => None,
            },
            state: match &self {
                Self::InvalidState { state, .. } => Some(*state),
                _ => None,
            },
            quota: None,
            count: None,
            limit: None,
        };
        let body = match &self {
            Self::QuotaExceeded(q) => ErrorBody {
                quota: Some(q.quota),
                count: Some(q.count),
                limit: Some(q.limit),
                ..body
            },
            _ => body,
        };
        let mut response = (self.status(), Json(body)).into_response();
        // For the audit trail, which reports the outcome of each action.
        response.extensions_mut().insert(self.error_kind());
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized { basic, bearer } => {
                if basic || !bearer {
                    headers.append(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Basic realm="rucat", charset="UTF-8""#),
                    );
                }
                if bearer {
                    headers.append(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Bearer realm="rucat""#),
                    );
                }
            }
            Self::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TooManyFailedLogins { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        Self::Unprocessable {
            message: err.to_string(),
            field: Some(err.field),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Invalid(v) => v.into(),
            EngineError::NotFound(_) => Self::NotFound(err.to_string()),
            EngineError::InvalidState { state, .. } => Self::InvalidState {
                message: err.to_string(),
                state,
            },
            // Like contention, a conflict with the engine as it is.
            EngineError::Contended(_) | EngineError::NotIdleTracked(_) => {
                Self::Contended(err.to_string())
            }
            EngineError::QuotaExceeded(quota) => Self::QuotaExceeded(quota),
            EngineError::Forbidden { .. } => Self::Forbidden(err.to_string()),
            EngineError::Store(store) => store.into(),
        }
    }
}

impl From<OpenLogError> for ApiError {
    fn from(err: OpenLogError) -> Self {
        match err {
            OpenLogError::Engine(engine) => engine.into(),
            OpenLogError::NoLog(why) => Self::NotFound(why),
            OpenLogError::Resource(_) | OpenLogError::Archive(_) => {
                tracing::warn!(error = %err, "engine log unavailable");
                Self::Unavailable
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(_) => Self::NotFound(err.to_string()),
            StoreError::Conflict(_) => Self::Contended(err.to_string()),
            StoreError::QuotaExceeded(quota) => Self::QuotaExceeded(quota),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, "engine store unavailable");
                Self::Unavailable
            }
            StoreError::AlreadyExists(_) | StoreError::Corrupt { .. } => {
                tracing::error!(error = %err, "internal store error");
                Self::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rucat_core::EngineId;

    #[test]
    fn engine_errors_map_to_statuses() {
        let id = EngineId::generate();
        let cases = [
            (
                EngineError::NotFound(id.clone()),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                EngineError::InvalidState {
                    id: id.clone(),
                    action: rucat_core::Event::Stop,
                    state: EngineState::Terminated,
                },
                StatusCode::CONFLICT,
                "invalid_state",
            ),
            (
                EngineError::Contended(id.clone()),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                EngineError::Store(StoreError::Unavailable("db down".into())),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                EngineError::Store(StoreError::Corrupt {
                    id: id.to_string(),
                    reason: "bad json".into(),
                }),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
            (
                EngineError::Store(StoreError::Conflict(id.clone())),
                StatusCode::CONFLICT,
                "conflict",
            ),
        ];
        for (err, status, kind) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.status(), api.kind()), (status, kind), "{api:?}");
        }
    }

    #[test]
    fn kinds_serialize_as_their_names() {
        use ErrorKind::*;
        for kind in [
            BadRequest,
            Unauthorized,
            RateLimited,
            Forbidden,
            NotFound,
            QuotaExceeded,
            MethodNotAllowed,
            InvalidState,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            InvalidRequest,
            RequestTimeout,
            Unavailable,
            Internal,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn internal_details_are_not_returned() {
        let api = ApiError::from(StoreError::Unavailable("password=hunter2".into()));
        assert!(!api.to_string().contains("hunter2"));
        let api = ApiError::from(StoreError::Corrupt {
            id: "x".into(),
            reason: "secret".into(),
        });
        assert!(!api.to_string().contains("secret"));
    }
}
