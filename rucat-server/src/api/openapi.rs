//! The OpenAPI 3.1 document of the HTTP surface, generated from the code —
//! the handlers' `utoipa::path` attributes and the request and response
//! types, some of which live in `rucat-core` (its `openapi` feature) — and
//! served at `GET /openapi.json`.
//!
//! The document follows the server's configuration: with authentication,
//! the engine routes name the Basic (and, if a token is configured, Bearer)
//! security schemes and their 401; without, neither appears. Health, metrics
//! and this document are never behind authentication.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rucat_core::{CreateEngineRequest, EngineInfo, EngineState, EngineType, IdlePolicy};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};

use super::error::{ApiError, ErrorBody, ErrorKind};
use super::handlers::{self, EngineRef, EngineUpdate};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rucat",
        description = "A control plane for Spark Connect engines. Engine-changing requests are \
            accepted at once and carried out by a monitor; poll `GET /engine/{id}` for the state."
    ),
    paths(
        handlers::create,
        handlers::list,
        handlers::get,
        handlers::stop,
        handlers::restart,
        handlers::delete,
        handlers::update,
        handlers::logs,
        healthz,
        readyz,
        metrics,
        openapi_json,
    ),
    components(schemas(
        CreateEngineRequest,
        EngineInfo,
        EngineRef,
        EngineState,
        EngineType,
        EngineUpdate,
        ErrorBody,
        ErrorKind,
    )),
    tags(
        (name = "engines", description = "Creating, inspecting, stopping, restarting and deleting engines"),
        (name = "operations", description = "Health, readiness, metrics and this document; never behind authentication"),
    )
)]
struct ApiDoc;

/// `{"status": "ok"}`, as `/healthz` and a ready `/readyz` answer (see
/// `rucat_monitor::http`, which serves them).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes a body that rucat_monitor::http builds
struct Status {
    #[schema(example = "ok")]
    status: String,
}

// The operations below are served by `rucat_monitor::http` and by
// [`router`]; these functions only carry their descriptions.

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness: 200 while the process serves",
    responses((status = 200, description = "Alive", body = Status))
)]
#[allow(dead_code)]
async fn healthz() {}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness: 200 when the store answers",
    responses(
        (status = 200, description = "The store answers", body = Status),
        (status = 503, description = "The store cannot be reached (`unavailable`)", body = ErrorBody),
    )
)]
#[allow(dead_code)]
async fn readyz() {}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics in the OpenMetrics text format",
    responses(
        (status = 200, description = "Every metric of this process", body = String, content_type = "application/openmetrics-text"),
        (status = 500, description = "The metrics cannot be encoded (`internal`)", body = ErrorBody),
    )
)]
#[allow(dead_code)]
async fn metrics() {}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
#[allow(dead_code)]
async fn openapi_json() {}

/// How the API is protected, for the document: which HTTP schemes the
/// configured identity providers accept (a trusted proxy header is no
/// scheme a client can use, so a server with only that names none, but its
/// routes still answer 401 and 429).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// Whether requests must authenticate at all.
    pub required: bool,
    pub basic: bool,
    pub bearer: bool,
}

impl Security {
    pub const OPEN: Self = Self {
        required: false,
        basic: false,
        bearer: false,
    };
}

/// The document for a server with `security`.
pub fn document(security: Security, idle: &IdlePolicy) -> Result<Value, serde_json::Error> {
    let mut doc = ApiDoc::openapi();
    require_auth(&mut doc, security);
    let mut doc = serde_json::to_value(doc)?;
    link_created_engines(&mut doc);
    idle_timeouts(&mut doc, idle);
    log_parameters(&mut doc);
    engine_kinds(&mut doc);
    Ok(doc)
}

/// A create request is one of the known kinds, each with its own versions
/// and config keys (see `rucat_core::openapi::kind_variants`). Added to the
/// JSON: utoipa cannot tie one field's schema to another's value.
fn engine_kinds(doc: &mut Value) {
    if let Some(Value::Object(create)) = doc.pointer_mut("/components/schemas/CreateEngineRequest")
    {
        create.insert(
            "oneOf".to_owned(),
            Value::Array(rucat_core::openapi::kind_variants()),
        );
    }
}

/// The query parameters of `GET /engine/{id}/logs` exactly as the server
/// reads them (see `extract::LogsQuery`), so that what the document allows
/// is accepted and what it does not is refused. Added to the JSON: utoipa
/// cannot say "a date-time or a duration".
fn log_parameters(doc: &mut Value) {
    let Some(Value::Array(parameters)) =
        doc.pointer_mut("/paths/~1engine~1{id}~1logs/get/parameters")
    else {
        return;
    };
    for parameter in parameters {
        let schema = match parameter["name"].as_str() {
            Some("tail") => {
                json!({"type": "integer", "minimum": 0, "maximum": super::extract::MAX_TAIL})
            }
            Some("since") => json!({"anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "pattern": "^[0-9]{1,9}[smhd]$"},
            ]}),
            Some("follow") => json!({"type": "boolean"}),
            Some("attempt") => json!({"type": "integer", "minimum": 1, "maximum": u32::MAX}),
            _ => continue,
        };
        parameter["schema"] = schema;
    }
}

/// `idle_timeout_secs` as this server accepts it, which depends on its
/// idle policy: 0 (never, unless a maximum is set) or from the least to
/// the most it allows; and, on a create, 0 only for Spark 3.5, which
/// clients reach directly. Added to the JSON: utoipa knows only constants.
fn idle_timeouts(doc: &mut Value, idle: &IdlePolicy) {
    let min = idle.min_timeout().as_secs();
    let max = idle
        .max_timeout
        .map_or(rucat_core::idle::MAX_TIMEOUT_SECS, |m| m.as_secs());
    let mut allowed = vec![json!({"type": "null"})];
    if idle.max_timeout.is_none() {
        allowed.push(json!({"type": "integer", "enum": [0]}));
    }
    allowed.push(json!({"type": "integer", "minimum": min, "maximum": max}));
    for schema in ["CreateEngineRequest", "EngineUpdate"] {
        let pointer = format!("/components/schemas/{schema}/properties/idle_timeout_secs");
        if let Some(Value::Object(field)) = doc.pointer_mut(&pointer) {
            for key in ["type", "format", "minimum", "maximum"] {
                field.remove(key);
            }
            field.insert("anyOf".to_owned(), Value::Array(allowed.clone()));
        }
    }
    if let Some(Value::Object(create)) = doc.pointer_mut("/components/schemas/CreateEngineRequest")
    {
        create.insert(
            "if".to_owned(),
            json!({"properties": {"version": {"type": "string", "pattern": "^3\\."}}, "required": ["version"]}),
        );
        create.insert(
            "then".to_owned(),
            json!({"properties": {"idle_timeout_secs": {"enum": [null, 0]}}}),
        );
    }
}

fn require_auth(doc: &mut Document, security: Security) {
    if !security.required {
        return;
    }
    let schemes: Vec<&str> = [("basic", security.basic), ("bearer", security.bearer)]
        .into_iter()
        .filter_map(|(scheme, offered)| offered.then_some(scheme))
        .collect();
    let components = doc.components.get_or_insert_with(Default::default);
    let http = |scheme| SecurityScheme::Http(HttpBuilder::new().scheme(scheme).build());
    if security.basic {
        components.add_security_scheme("basic", http(HttpAuthScheme::Basic));
    }
    if security.bearer {
        components.add_security_scheme("bearer", http(HttpAuthScheme::Bearer));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/engine") {
            continue;
        }
        for operation in operations(item) {
            if !schemes.is_empty() {
                // Any one scheme is enough: one requirement per scheme.
                operation.security = Some(
                    schemes
                        .iter()
                        .map(|scheme| SecurityRequirement::new(*scheme, Vec::<String>::new()))
                        .collect(),
                );
            }
            let responses = &mut operation.responses.responses;
            responses.insert("401".to_owned(), unauthorized().into());
            // A route that already answers 429 (a quota) says both reasons.
            let quota = match responses.get("429") {
                Some(utoipa::openapi::RefOr::T(existing)) => Some(existing.description.clone()),
                _ => None,
            };
            responses.insert("429".to_owned(), rate_limited(quota).into());
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Error")))
        .build()
}

fn rate_limited(also: Option<String>) -> utoipa::openapi::Response {
    let own = "Too many failed logins from the caller's address (`rate_limited`); retry after `Retry-After` seconds";
    let description = match also {
        Some(also) if !also.contains("rate_limited") => format!("{also}; or: {own}"),
        Some(also) => also,
        None => own.to_owned(),
    };
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content())
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .description(Some("Seconds to wait (with `rate_limited`)"))
                .build(),
        )
        .build()
}

fn unauthorized() -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description("No valid credentials (`unauthorized`)")
        .content("application/json", error_content())
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .description(Some("The schemes the server accepts"))
                .build(),
        )
        .build()
}

/// Links from a created engine's id to the operations on it, so that
/// clients and stateful API testers can follow an engine through its life.
/// Added to the JSON rather than through utoipa: utoipa 5 serializes a
/// link's `operationId` as `operation_id`, which no tool reads.
fn link_created_engines(doc: &mut Value) {
    let Some(created) = doc
        .pointer_mut("/paths/~1engine/post/responses/200")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let links: serde_json::Map<String, Value> = [
        ("GetEngine", "getEngine"),
        ("StopEngine", "stopEngine"),
        ("RestartEngine", "restartEngine"),
        ("DeleteEngine", "deleteEngine"),
        ("GetEngineLogs", "getEngineLogs"),
    ]
    .into_iter()
    .map(|(name, operation_id)| {
        let link = json!({"operationId": operation_id, "parameters": {"id": "$response.body#/id"}});
        (name.to_owned(), link)
    })
    .collect();
    created.insert("links".to_owned(), Value::Object(links));
}

/// `GET /openapi.json`, serving the document for `security`, serialized once.
pub fn router(security: Security, idle: &IdlePolicy) -> Router {
    let json = match document(security, idle).and_then(|doc| serde_json::to_vec(&doc)) {
        Ok(json) => Some(Bytes::from(json)),
        Err(err) => {
            tracing::error!(%err, "cannot serialize the OpenAPI document");
            None
        }
    };
    Router::new()
        .route("/openapi.json", get(serve))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(Arc::new(json))
}

async fn serve(State(json): State<Arc<Option<Bytes>>>) -> Response {
    match json.as_ref() {
        Some(json) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json.clone(),
        )
            .into_response(),
        None => ApiError::Internal.into_response(),
    }
}
