//! One handler per endpoint of the original rucat API. Each only translates
//! between HTTP and [`Engines`]; the rules live in `rucat-core`.
//!
//! The `utoipa::path` attributes describe each route for the OpenAPI
//! document (see [`super::openapi`]); the error statuses they list are the
//! ones the handler's extractors and [`ApiError`] conversions can produce.
//! Handlers that act on one engine run in an `engine` span with its `id`,
//! as the monitor's passes do, so one engine's log lines can be followed
//! across the API and the monitor.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rucat_core::logs::EngineLogs;
use rucat_core::store::PageQuery;
use rucat_core::{
    CreateEngineRequest, EngineChanges, EngineId, EngineInfo, EngineState, Engines, Identity,
};
use serde::{Deserialize, Serialize};
use tokio_util::io::ReaderStream;
use tracing::{Instrument, Span, info, info_span, warn};
use utoipa::ToSchema;

use super::audit::ActedOn;
use super::error::{ApiError, ErrorBody};
use super::extract::{EnginePath, Force, Json, ListQuery, LogsQuery};
use crate::gateway::Advertised;

/// `{"id": "<engine id>"}`: the answer to a create, and one entry of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineRef {
    pub id: EngineId,
}

type JsonResult<T> = Result<axum::Json<T>, ApiError>;

fn engine_span(id: &EngineId) -> Span {
    info_span!("engine", id = %id)
}

#[utoipa::path(
    post,
    path = "/engine",
    operation_id = "createEngine",
    tag = "engines",
    summary = "Create an engine",
    description = "Records a new engine in `WaitToStart`, owned by the caller; a monitor starts it. Poll `GET /engine/{id}` for its state. `share_with_groups` lets members of those groups see and act on it too.",
    request_body = CreateEngineRequest,
    responses(
        (status = 200, description = "The engine was recorded", body = EngineRef),
        (status = 400, description = "Malformed JSON (`bad_request`)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB (`payload_too_large`)", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `http.body_read_timeout_secs` (`request_timeout`)", body = ErrorBody),
        (status = 415, description = "Body not sent as `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "A field is not acceptable (`invalid_request`, naming `field`)", body = ErrorBody),
        (status = 429, description = "The caller is at a quota (`quota_exceeded`, naming `quota`, `count` and `limit`)", body = ErrorBody),
        (status = 500, description = "A bug or corrupt data (`internal`)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached, or the answer took longer than `http.request_timeout_secs`; retry (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn create(
    State(engines): State<Engines>,
    Extension(who): Extension<Identity>,
    Json(request): Json<CreateEngineRequest>,
) -> Result<Response, ApiError> {
    let id = engines.create_as(&who, request).await?;
    info!(parent: &engine_span(&id), owner = %who, "engine created");
    let mut response = axum::Json(EngineRef { id: id.clone() }).into_response();
    response.extensions_mut().insert(ActedOn(id));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/engine/{id}",
    operation_id = "getEngine",
    tag = "engines",
    summary = "Get an engine",
    params(("id" = EngineId, Path, description = "The engine's id")),
    responses(
        (status = 200, description = "The engine", body = EngineInfo),
        (status = 400, description = "Malformed engine id (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such engine, or one the caller may not see (`not_found`)", body = ErrorBody),
        (status = 500, description = "A bug or corrupt data (`internal`)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached, or the answer took longer than `http.request_timeout_secs`; retry (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn get(
    State(engines): State<Engines>,
    gateway: Option<Extension<Advertised>>,
    Extension(who): Extension<Identity>,
    EnginePath(id): EnginePath,
) -> JsonResult<EngineInfo> {
    let span = engine_span(&id);
    async move {
        let record = engines.get_as(&who, &id).await?;
        Ok(axum::Json(info_of(&record, gateway)))
    }
    .instrument(span)
    .await
}

#[utoipa::path(
    get,
    path = "/engine/{id}/logs",
    operation_id = "getEngineLogs",
    tag = "engines",
    summary = "Read an engine's log",
    description = "The driver log of the engine's latest attempt (or of `attempt`), as plain text: read live while the attempt runs, from the log archive once it ended (kept for the last attempts, and for a while after the engine is deleted). `tail` or `since` pick the last lines or the lines from a time; `follow=true` keeps the response open and streams new lines until the engine's process ends. The engine's secrets are never shown. The `X-Rucat-Log-Attempt` and `X-Rucat-Log-Source` (`live` or `archive`) headers say what was served.",
    params(
        ("id" = EngineId, Path, description = "The engine's id"),
        ("tail" = Option<usize>, Query, description = "Only the last this many lines (0 to 1000000)"),
        ("since" = Option<String>, Query, description = "Only the lines logged from this time: an RFC 3339 date-time (`2026-12-01T10:00:00Z`) or a whole number of seconds, minutes, hours or days back from now (`90s`, `10m`, `2h`, `7d`); with `tail`, the last lines of those"),
        ("follow" = Option<bool>, Query, description = "Keep streaming new lines until the engine's process ends"),
        ("attempt" = Option<u32>, Query, description = "Which start of the engine, from 1 (see `attempts` in the engine); the latest by default"),
    ),
    responses(
        (status = 200, description = "The log", content_type = "text/plain", body = String),
        (status = 400, description = "Not an engine id (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such engine, or none the caller may see; or no log (`not_found`, with the reason: not started yet, no such attempt, not kept)", body = ErrorBody),
        (status = 422, description = "A parameter is not acceptable (`invalid_request`, naming `field`)", body = ErrorBody),
        (status = 503, description = "The store, the platform or the log archive cannot be reached; retry (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn logs(
    Extension(who): Extension<Identity>,
    EnginePath(id): EnginePath,
    LogsQuery(request): LogsQuery,
    logs: Option<Extension<EngineLogs>>,
) -> Result<Response, ApiError> {
    let Some(Extension(logs)) = logs else {
        return Err(ApiError::NotFound(
            "this server keeps no engine logs".to_owned(),
        ));
    };
    let body = logs
        .open(&who, &id, request)
        .instrument(engine_span(&id))
        .await?;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (LOG_ATTEMPT.clone(), HeaderValue::from(body.attempt)),
        (
            LOG_SOURCE.clone(),
            HeaderValue::from_static(body.source.name()),
        ),
    ];
    let stream = ReaderStream::with_capacity(body.reader, LOG_CHUNK);
    Ok((headers, axum::body::Body::from_stream(stream)).into_response())
}

/// Bytes read from a log per chunk of the response.
const LOG_CHUNK: usize = 64 * 1024;
static LOG_ATTEMPT: HeaderName = HeaderName::from_static("x-rucat-log-attempt");
static LOG_SOURCE: HeaderName = HeaderName::from_static("x-rucat-log-source");

/// The engine as users see it. Users reach Spark Connect engines through
/// the gateway; their own address is for the gateway alone (and refuses
/// clients without its token, or is loopback only). Engines of kinds that
/// are not Spark Connect (Ballista: `df://`) are reached at their own
/// address.
fn info_of(
    record: &rucat_core::EngineRecord,
    gateway: Option<Extension<Advertised>>,
) -> EngineInfo {
    let mut info = EngineInfo::from(record);
    if let (Some(Extension(gateway)), Some(endpoint)) = (gateway, &mut info.endpoint) {
        if endpoint.starts_with("sc://") {
            *endpoint = gateway.endpoint(record.id());
        }
    }
    info
}

/// The body of `PATCH /engine/{id}`: what may change after creation. A
/// field left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineUpdate {
    /// Replaces the groups whose members may see and act on the engine
    /// (at most 32 names of 1 to 64 characters, without whitespace or
    /// control characters); `[]` shares with nobody.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = rucat_core::openapi::groups_schema)]
    pub share_with_groups: Option<Vec<String>>,
    /// The engine's new idle timeout in seconds, 0 for never, within the
    /// server's `idle` limits; a Running engine's idleness is judged
    /// against it from now on.
    #[serde(default, deserialize_with = "rucat_core::request::whole_number")]
    #[schema(minimum = 0, maximum = 31_536_000)]
    pub idle_timeout_secs: Option<u64>,
    /// Whether a client's connection restarts the engine whatever stopped it.
    #[serde(default)]
    pub auto_resume: Option<bool>,
}

/// A field that may be left out but not given as `null`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[utoipa::path(
    patch,
    path = "/engine/{id}",
    operation_id = "updateEngine",
    tag = "engines",
    summary = "Change whom an engine is shared with, its idle timeout or auto_resume",
    description = "Only the engine's owner and admins may; a group member who sees the engine gets 403. Fields left out stay as they are. Answers the engine as `GET /engine/{id}` would.",
    params(("id" = EngineId, Path, description = "The engine's id")),
    request_body = EngineUpdate,
    responses(
        (status = 200, description = "The engine, as changed", body = EngineInfo),
        (status = 400, description = "Malformed engine id or JSON (`bad_request`)", body = ErrorBody),
        (status = 403, description = "The caller sees the engine but is not its owner nor an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such engine, or one the caller may not see (`not_found`)", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `http.body_read_timeout_secs` (`request_timeout`)", body = ErrorBody),
        (status = 409, description = "The engine kept changing, or it is a Spark 3.5 engine (reached directly, so never idle-stopped) given an idle_timeout_secs above 0 (`conflict`)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB (`payload_too_large`)", body = ErrorBody),
        (status = 415, description = "Body not sent as `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "A field is not acceptable (`invalid_request`, naming `field`, e.g. `share_with_groups[1]` or `idle_timeout_secs`)", body = ErrorBody),
        (status = 500, description = "A bug or corrupt data (`internal`)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached, or the answer took longer than `http.request_timeout_secs`; retry (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn update(
    State(engines): State<Engines>,
    gateway: Option<Extension<Advertised>>,
    Extension(who): Extension<Identity>,
    EnginePath(id): EnginePath,
    Json(update): Json<EngineUpdate>,
) -> JsonResult<EngineInfo> {
    let span = engine_span(&id);
    async move {
        let changes = EngineChanges {
            share_with_groups: update.share_with_groups,
            idle_timeout_secs: update.idle_timeout_secs,
            auto_resume: update.auto_resume,
        };
        engines.update_as(&who, &id, changes).await?;
        info!(by = %who, "engine changed");
        let record = engines.get_as(&who, &id).await?;
        Ok(axum::Json(info_of(&record, gateway)))
    }
    .instrument(span)
    .await
}

#[utoipa::path(
    get,
    path = "/engines",
    operation_id = "listEngines",
    tag = "engines",
    summary = "List engines, oldest first, a page at a time",
    description = "The engines the caller may see (an admin: all; a user: their own and those shared with their groups), by id in id order, which is creation order, at most `limit` of them (1000 without `limit`). When the page is full, a `Link` header (RFC 8288) gives the next page: `</engines?after=<last id>&limit=<limit>[&state=…]>; rel=\"next\"`, relative to this URL. Follow it until an answer has no `Link` (the last page may be empty) to list every engine exactly once, even while engines are created and deleted: pages continue after the last id seen, so engines created during the walk appear at its end, and one deleted before its page is reached does not appear.",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "At most this many engines (default 1000)"),
        ("after" = Option<EngineId>, Query, description = "Only engines whose id sorts after this one: the last id of the previous page"),
        ("state" = Option<Vec<EngineState>>, Query, style = Form, explode, description = "Only engines in one of these states; repeat it (`state=Running&state=Terminated`) or separate names with commas"),
        ("owner" = Option<String>, Query, min_length = 1, max_length = 256, description = "Only engines this user owns (among those the caller may see)"),
    ),
    responses(
        (status = 200, description = "A page of engine ids, oldest first", body = Vec<EngineRef>,
            headers(("Link" = String, description = "With a full page: the next page, as `</engines?after=…&limit=…>; rel=\"next\"`"))),
        (status = 422, description = "A parameter is not acceptable (`invalid_request`, naming `field`: `limit`, `after`, `state` or `owner`)", body = ErrorBody),
        (status = 500, description = "A bug or corrupt data (`internal`)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached, or the answer took longer than `http.request_timeout_secs`; retry (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn list(
    State(engines): State<Engines>,
    Extension(who): Extension<Identity>,
    ListQuery(query): ListQuery,
) -> Result<Response, ApiError> {
    let ids = engines.page_ids_as(&who, &query).await?;
    let next = match ids.last() {
        Some(last) if ids.len() >= query.limit => Some(next_page(&query, last)?),
        _ => None,
    };
    let body = axum::Json(
        ids.into_iter()
            .map(|id| EngineRef { id })
            .collect::<Vec<_>>(),
    );
    Ok(match next {
        Some(link) => ([(header::LINK, link)], body).into_response(),
        None => body.into_response(),
    })
}

/// The `Link` header value naming the page after the one that ended with
/// `last`. Ids and state names need no escaping in a URL; an owner may.
fn next_page(query: &PageQuery, last: &EngineId) -> Result<HeaderValue, ApiError> {
    let mut url = format!("/engines?after={last}&limit={}", query.limit);
    if !query.states.is_empty() {
        let names: Vec<&str> = query.states.iter().map(|s| s.name()).collect();
        url.push_str("&state=");
        url.push_str(&names.join(","));
    }
    if let Some(owner) = &query.owner {
        url.push_str("&owner=");
        url.push_str(&percent_encode(owner));
    }
    // Cannot fail: ids, numbers and state names are ASCII letters and digits.
    HeaderValue::try_from(format!("<{url}>; rel=\"next\"")).map_err(|_| ApiError::Internal)
}

/// The original API returns nothing for the actions: 200 with an empty body.
#[utoipa::path(
    post,
    path = "/engine/{id}/stop",
    operation_id = "stopEngine",
    tag = "engines",
    summary = "Stop an engine",
    description = "`Running`/`StartInProgress` → `WaitToTerminate` (a monitor then terminates it); `WaitToStart` → `Terminated`.",
    params(("id" = EngineId, Path, description = "The engine's id")),
    responses(
        (status = 200, description = "The stop was recorded; empty body"),
        (status = 400, description = "Malformed engine id (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such engine, or one the caller may not see (`not_found`)", body = ErrorBody),
        (status = 409, description = "Not allowed in the engine's state (`invalid_state`, naming `state`), or the engine kept changing (`conflict`)", body = ErrorBody),
        (status = 500, description = "A bug or corrupt data (`internal`)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached, or the answer took longer than `http.request_timeout_secs`; retry (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn stop(
    State(engines): State<Engines>,
    Extension(who): Extension<Identity>,
    EnginePath(id): EnginePath,
) -> Result<(), ApiError> {
    let span = engine_span(&id);
    async move {
        engines.stop_as(&who, &id).await?;
        info!("engine stop requested");
        Ok(())
    }
    .instrument(span)
    .await
}

#[utoipa::path(
    post,
    path = "/engine/{id}/restart",
    operation_id = "restartEngine",
    tag = "engines",
    summary = "Restart an engine",
    description = "`Terminated` → `WaitToStart`; `WaitToTerminate` → `Running`. Counts against the owner's `max_running` quota.",
    params(("id" = EngineId, Path, description = "The engine's id")),
    responses(
        (status = 200, description = "The restart was recorded; empty body"),
        (status = 400, description = "Malformed engine id (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such engine, or one the caller may not see (`not_found`)", body = ErrorBody),
        (status = 409, description = "Not allowed in the engine's state (`invalid_state`, naming `state`), or the engine kept changing (`conflict`)", body = ErrorBody),
        (status = 429, description = "The engine's owner is at the `max_running` quota (`quota_exceeded`, naming `quota`, `count` and `limit`)", body = ErrorBody),
        (status = 500, description = "A bug or corrupt data (`internal`)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached, or the answer took longer than `http.request_timeout_secs`; retry (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn restart(
    State(engines): State<Engines>,
    Extension(who): Extension<Identity>,
    EnginePath(id): EnginePath,
) -> Result<(), ApiError> {
    let span = engine_span(&id);
    async move {
        engines.restart_as(&who, &id).await?;
        info!("engine restart requested");
        Ok(())
    }
    .instrument(span)
    .await
}

#[utoipa::path(
    delete,
    path = "/engine/{id}",
    operation_id = "deleteEngine",
    tag = "engines",
    summary = "Delete an engine",
    description = "Allowed only in `Terminated`, `ErrorClean` and `WaitToStart`, where the engine holds no resources. With `force=true` also while its resources are being released (`WaitToTerminate`, `TriggerTermination`, `TerminateInProgress`, `ErrorWaitToClean`, `ErrorTriggerClean`, `ErrorCleanInProgress`): the way out of a cleanup that cannot finish (its `error` says why). The engine is forgotten without waiting; what may remain is logged by the server, and named in the engine's `error` when its cleanup failed.",
    params(
        ("id" = EngineId, Path, description = "The engine's id"),
        ("force" = Option<bool>, Query, description = "Forget the engine even while its cleanup has not finished; its resources may remain"),
    ),
    responses(
        (status = 200, description = "The engine is gone; empty body"),
        (status = 400, description = "Malformed engine id, `force` neither `true` nor `false`, or a parameter other than `force` (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such engine, or one the caller may not see (`not_found`)", body = ErrorBody),
        (status = 409, description = "Not allowed in the engine's state (`invalid_state`, naming `state`), or the engine kept changing (`conflict`)", body = ErrorBody),
        (status = 500, description = "A bug or corrupt data (`internal`)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached, or the answer took longer than `http.request_timeout_secs`; retry (`unavailable`)", body = ErrorBody),
    )
)]
pub async fn delete(
    State(engines): State<Engines>,
    Extension(who): Extension<Identity>,
    EnginePath(id): EnginePath,
    Force(force): Force,
) -> Result<(), ApiError> {
    let span = engine_span(&id);
    async move {
        if !force {
            engines.delete_as(&who, &id).await?;
            info!("engine deleted");
            return Ok(());
        }
        let removed = engines.force_delete_as(&who, &id).await?;
        if removed.state.is_cleaning_up() {
            warn!(
                state = %removed.state,
                error = removed.error.as_deref().unwrap_or("none"),
                "engine force-deleted before its cleanup finished: its resources may remain (the error names them if the cleanup failed)"
            );
        } else {
            info!("engine deleted");
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// For paths no route knows.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

/// For known paths asked with a method they do not support.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `text` as a query value: unreserved characters (RFC 3986) as they are,
/// every other byte as `%XX`, which [`super::extract`] decodes back.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
