//! Error bodies: the `Status` objects the real API server sends with every
//! failure.
//!
//! kube turns any non-2xx response whose body parses as a `Status` into
//! `kube::Error::Api(status)`, and code under test branches on `code` and
//! `reason` (`AlreadyExists`, `NotFound`, `Conflict`, …). So the shape,
//! the `reason` strings and the `details.kind` conventions (the resource's
//! plural for most errors, the Kind for `Invalid`) follow the real server.

use serde_json::{Map, Value, json};

use crate::resource::Resource;

/// A failed API operation, as the real API server would report it.
///
/// Returned over HTTP as a `Status` body with [`ApiError::code`] as the
/// HTTP status, and returned directly by the test-control methods of
/// [`TestServer`](crate::TestServer).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    code: u16,
    reason: String,
    message: String,
    details: Option<Value>,
}

/// One field-level cause of an `Invalid` (422) error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    field: String,
    reason: &'static str,
    detail: String,
}

impl FieldError {
    /// `field: Required value`
    pub(crate) fn required(field: impl Into<String>) -> Self {
        Self::required_because(field, "")
    }

    /// `field: Required value: why`
    pub(crate) fn required_because(field: impl Into<String>, why: &str) -> Self {
        let detail = if why.is_empty() {
            "Required value".to_owned()
        } else {
            format!("Required value: {why}")
        };
        Self {
            field: field.into(),
            reason: "FieldValueRequired",
            detail,
        }
    }

    /// `field: Invalid value: "value": why`
    pub(crate) fn invalid(field: impl Into<String>, value: &Value, why: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            detail: format!("Invalid value: {shown}: {why}"),
        }
    }

    /// `field: Forbidden: why`
    pub(crate) fn forbidden(field: impl Into<String>, why: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueForbidden",
            detail: format!("Forbidden: {why}"),
        }
    }

    /// `field: Duplicate value: "value"`
    pub(crate) fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueDuplicate",
            detail: format!("Duplicate value: {value}"),
        }
    }

    /// `field: Unsupported value: "value": supported values: …`
    pub(crate) fn not_supported(field: impl Into<String>, value: &Value, allowed: &[&str]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        Self {
            field: field.into(),
            reason: "FieldValueNotSupported",
            detail: format!(
                "Unsupported value: {value}: supported values: {}",
                allowed.join(", ")
            ),
        }
    }

    fn rendered(&self) -> String {
        format!("{}: {}", self.field, self.detail)
    }
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>, details: Option<Value>) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details,
        }
    }

    /// The HTTP status code, also `Status.code`.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// `Status.reason`, e.g. `NotFound`; empty where the real server sends
    /// none (its internal errors).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// `Status.message`, worded like the real server's.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Status` object sent as the response body (and inside watch
    /// `ERROR` events).
    pub fn to_status(&self) -> Value {
        let mut status = Map::new();
        status.insert("kind".into(), json!("Status"));
        status.insert("apiVersion".into(), json!("v1"));
        status.insert("metadata".into(), json!({}));
        status.insert("status".into(), json!("Failure"));
        status.insert("message".into(), json!(self.message));
        if !self.reason.is_empty() {
            status.insert("reason".into(), json!(self.reason));
        }
        if let Some(details) = &self.details {
            status.insert("details".into(), details.clone());
        }
        status.insert("code".into(), json!(self.code));
        Value::Object(status)
    }

    fn named(resource: Resource, name: &str) -> Value {
        json!({ "name": name, "kind": resource.plural() })
    }

    /// 404 for a named object that does not exist.
    pub(crate) fn not_found(resource: Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", resource.plural()),
            Some(Self::named(resource, name)),
        )
    }

    /// 404 for a path the server does not serve.
    pub(crate) fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        )
    }

    /// 409 for a create whose name is taken.
    pub(crate) fn already_exists(resource: Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", resource.plural()),
            Some(Self::named(resource, name)),
        )
    }

    /// 409 for a write whose resourceVersion precondition is stale.
    pub(crate) fn conflict(resource: Resource, name: &str) -> Self {
        Self::conflict_because(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 with a specific explanation (e.g. a failed UID precondition).
    pub(crate) fn conflict_because(resource: Resource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                resource.plural()
            ),
            Some(Self::named(resource, name)),
        )
    }

    /// 422 with field causes; the message lists them like the real server
    /// (one cause bare, several in brackets).
    pub(crate) fn invalid(resource: Resource, name: &str, causes: Vec<FieldError>) -> Self {
        let rendered: Vec<String> = causes.iter().map(FieldError::rendered).collect();
        let list = if rendered.len() == 1 {
            rendered.join("")
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({ "reason": c.reason, "message": c.detail, "field": c.field }))
            .collect();
        Self::new(
            422,
            "Invalid",
            format!("{} {name:?} is invalid: {list}", resource.kind()),
            Some(json!({ "name": name, "kind": resource.kind(), "causes": causes })),
        )
    }

    /// 422 for invalid request options (the real server validates
    /// `ListOptions` the same way it validates objects).
    pub(crate) fn invalid_options(kind: &str, causes: Vec<FieldError>) -> Self {
        let rendered: Vec<String> = causes.iter().map(FieldError::rendered).collect();
        let list = if rendered.len() == 1 {
            rendered.join("")
        } else {
            format!("[{}]", rendered.join(", "))
        };
        Self::new(
            422,
            "Invalid",
            format!("{kind}.meta.k8s.io {:?} is invalid: {list}", ""),
            Some(json!({ "group": "meta.k8s.io", "kind": kind })),
        )
    }

    /// 422 for invalid `PodLogOptions` (a negative `tailLines`, …).
    pub(crate) fn invalid_pod_log_options(pod: &str, causes: Vec<FieldError>) -> Self {
        let rendered: Vec<String> = causes.iter().map(FieldError::rendered).collect();
        let list = if rendered.len() == 1 {
            rendered.join("")
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({ "reason": c.reason, "message": c.detail, "field": c.field }))
            .collect();
        Self::new(
            422,
            "Invalid",
            format!("PodLogOptions {pod:?} is invalid: {list}"),
            Some(json!({ "name": pod, "kind": "PodLogOptions", "causes": causes })),
        )
    }

    /// 400, e.g. malformed JSON or a selector that does not parse.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// 422 for a patch that cannot be applied (a failed JSON-patch `test`,
    /// a list item without its merge key).
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message, None)
    }

    /// 410 Expired: the requested resourceVersion has been compacted away.
    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message, None)
    }

    /// 504 for a resourceVersion newer than the server's, as the real
    /// server answers once its wait for that version times out.
    pub(crate) fn resource_version_too_large(requested: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
            Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1
            })),
        )
    }

    /// 405 for a method the path does not support.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        )
    }

    /// 415 for a body in a media type the endpoint does not take.
    pub(crate) fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    /// 413 for a body over the real server's 3 MiB limit.
    pub(crate) fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
            None,
        )
    }

    /// 503 while [`TestServer::set_unavailable`](crate::TestServer::set_unavailable) is on.
    pub(crate) fn unavailable() -> Self {
        Self::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            Some(json!({})),
        )
    }

    /// A refusal a test asked for with [`TestServer::fail_next`](crate::TestServer::fail_next).
    pub(crate) fn injected(code: u16, reason: &str) -> Self {
        Self::new(
            code,
            reason,
            format!("injected by the test: {reason}"),
            Some(json!({})),
        )
    }

    /// 500 as the real server sends it for storage-level refusals: no reason.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "", message, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_exists_has_the_real_servers_shape() {
        let status = ApiError::already_exists(Resource::Pods, "x").to_status();
        assert_eq!(
            status,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"pods \"x\" already exists","reason":"AlreadyExists",
                "details":{"name":"x","kind":"pods"},"code":409})
        );
    }

    #[test]
    fn invalid_lists_several_causes_in_brackets() {
        let err = ApiError::invalid(
            Resource::Pods,
            "p",
            vec![
                FieldError::required("spec.containers"),
                FieldError::forbidden("spec", "no"),
            ],
        );
        assert_eq!(err.code(), 422);
        assert_eq!(
            err.message(),
            "Pod \"p\" is invalid: [spec.containers: Required value, spec: Forbidden: no]"
        );
        assert_eq!(err.to_status()["details"]["kind"], "Pod");
    }

    #[test]
    fn internal_errors_carry_no_reason() {
        let status = ApiError::internal("boom").to_status();
        assert!(status.get("reason").is_none());
        assert_eq!(status["code"], 500);
    }
}
