//! Extractors that fail with [`ApiError`] instead of axum's plain-text
//! rejections, so malformed input gets the same JSON error shape as every
//! other failure.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use rucat_core::EngineId;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::MAX_BODY_BYTES;
use super::error::ApiError;

/// A JSON request body. Unlike `axum::Json` it tells apart broken JSON (400)
/// from JSON of the wrong shape (422) with serde's own message, which names
/// the offending field.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                }
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        serde_json::from_slice(&body).map(Json).map_err(json_error)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_error(err: serde_json::Error) -> ApiError {
    match err.classify() {
        Category::Data => ApiError::Unprocessable {
            field: named_field(&err.to_string()),
            message: err.to_string(),
        },
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::BadRequest(format!("malformed JSON: {err}"))
        }
    }
}

/// The field in serde's "missing field `x`" / "unknown field `x`" messages.
fn named_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

/// The `{id}` of an engine route, already checked to be an id rucat could
/// have generated; anything else is a 400, never a store lookup.
#[derive(Debug)]
pub struct EnginePath(pub EngineId);

impl<S: Send + Sync> FromRequestParts<S> for EnginePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        raw.parse()
            .map(EnginePath)
            .map_err(|err| ApiError::BadRequest(format!("invalid engine id: {err}")))
    }
}

/// `?force=true` on `DELETE /engine/{id}`: forget an engine whose cleanup
/// cannot finish. Absent or `false` is a plain delete; any other value is a
/// 400, so a typo never forces by accident or silently does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Force(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Force {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        force(parts.uri.query().unwrap_or_default()).map(Force)
    }
}

fn force(query: &str) -> Result<bool, ApiError> {
    let mut force = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "force" {
            force = match value {
                "true" => true,
                "false" => false,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "force must be true or false, not {other:?}"
                    )));
                }
            };
        }
    }
    Ok(force)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn force_is_true_only_when_asked_for() {
        assert!(!force("").unwrap());
        assert!(!force("force=false").unwrap());
        assert!(!force("other=1").unwrap());
        assert!(force("force=true").unwrap());
        assert!(force("x=1&force=true").unwrap());
        assert!(force("force=yes").is_err());
        assert!(force("force").is_err());
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        headers
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.rucat+json",
        ] {
            assert!(is_json(&headers(ok)), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "json"] {
            assert!(!is_json(&headers(bad)), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn fields_are_named_from_serde_messages() {
        assert_eq!(
            named_field("missing field `name` at line 1 column 2").as_deref(),
            Some("name")
        );
        assert_eq!(
            named_field("unknown field `config`, expected one of `name`").as_deref(),
            Some("config")
        );
        assert_eq!(named_field("invalid type: integer `1`"), None);
    }
}
