//! HTTP: paths, methods, query parameters and bodies, mapped onto the
//! store; every request recorded as a [`Call`].
//!
//! One fallback handler parses the path itself, so every unknown path or
//! method gets the real server's `Status` body rather than axum's plain
//! text.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::calls::{Call, Verb};
use crate::logs;
use crate::query::Query;
use crate::resource::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::shared::Shared;
use crate::status::{ApiError, FieldError};
use crate::store::{DeleteOptions, Key, Part, PatchKind, Propagation};
use crate::watch::{self, Filter, Start, WatchSpec, present};

/// The real server's request body limit.
const BODY_LIMIT: usize = 3 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Version,
    ApiVersions,
    CoreResources,
    ApiGroups,
    Collection {
        resource: Resource,
        namespace: Option<String>,
        /// The deprecated `/api/v1/watch/...` form.
        watch_path: bool,
    },
    Object {
        resource: Resource,
        namespace: String,
        name: String,
        status: bool,
    },
    /// `/api/v1/namespaces/{ns}/pods/{name}/log`.
    PodLog {
        namespace: String,
        name: String,
    },
    Unknown,
}

fn parse_target(path: &str) -> Target {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (watch_path, rest) = match segments.as_slice() {
        ["api", "v1", "watch", rest @ ..] => (true, rest),
        ["api", "v1", rest @ ..] => (false, rest),
        ["version"] => return Target::Version,
        ["api"] => return Target::ApiVersions,
        ["apis"] => return Target::ApiGroups,
        _ => return Target::Unknown,
    };
    let resource = |plural: &str| Resource::from_plural(plural);
    match rest {
        [] if !watch_path => Target::CoreResources,
        [plural] => match resource(plural) {
            Some(resource) => Target::Collection {
                resource,
                namespace: None,
                watch_path,
            },
            None => Target::Unknown,
        },
        ["namespaces", ns, plural] => match resource(plural) {
            Some(resource) => Target::Collection {
                resource,
                namespace: Some((*ns).to_owned()),
                watch_path,
            },
            None => Target::Unknown,
        },
        ["namespaces", ns, plural, name] if !watch_path => match resource(plural) {
            Some(resource) => Target::Object {
                resource,
                namespace: (*ns).to_owned(),
                name: (*name).to_owned(),
                status: false,
            },
            None => Target::Unknown,
        },
        ["namespaces", ns, "pods", name, "log"] if !watch_path => Target::PodLog {
            namespace: (*ns).to_owned(),
            name: (*name).to_owned(),
        },
        ["namespaces", ns, plural, name, "status"] if !watch_path => match resource(plural) {
            Some(resource) if resource.has_status() => Target::Object {
                resource,
                namespace: (*ns).to_owned(),
                name: (*name).to_owned(),
                status: true,
            },
            _ => Target::Unknown,
        },
        _ => Target::Unknown,
    }
}

fn verb_of(method: &Method, target: &Target, query: &Query) -> Verb {
    let watching = |watch_path: bool| watch_path || query.flag("watch").unwrap_or(false);
    match (target, method) {
        (Target::Collection { watch_path, .. }, &Method::GET) if watching(*watch_path) => {
            Verb::Watch
        }
        (Target::Collection { .. }, &Method::GET) => Verb::List,
        (Target::Collection { .. }, &Method::POST) => Verb::Create,
        (Target::Collection { .. }, &Method::DELETE) => Verb::DeleteCollection,
        (Target::Object { .. } | Target::PodLog { .. }, &Method::GET) => Verb::Get,
        (Target::Object { .. }, &Method::PUT) => Verb::Update,
        (Target::Object { .. }, &Method::PATCH) => Verb::Patch,
        (Target::Object { status: false, .. }, &Method::DELETE) => Verb::Delete,
        _ => Verb::Other,
    }
}

fn call_for(parts: &Parts, target: &Target, verb: Verb) -> Call {
    let (resource, namespace, name, subresource) = match target {
        Target::Collection {
            resource,
            namespace,
            ..
        } => (Some(*resource), namespace.clone(), None, None),
        Target::Object {
            resource,
            namespace,
            name,
            status,
        } => (
            Some(*resource),
            Some(namespace.clone()),
            Some(name.clone()),
            status.then(|| "status".to_owned()),
        ),
        Target::PodLog { namespace, name } => (
            Some(Resource::Pods),
            Some(namespace.clone()),
            Some(name.clone()),
            Some("log".to_owned()),
        ),
        _ => (None, None, None, None),
    };
    Call {
        verb,
        resource,
        namespace,
        name,
        subresource,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        code: 0,
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query().unwrap_or_default());
    let target = parse_target(parts.uri.path());
    let verb = verb_of(&parts.method, &target, &query);
    let mut call = call_for(&parts, &target, verb);
    let response = if shared.is_unavailable() {
        error_response(&ApiError::unavailable())
    } else if let Some(injected) = shared.take_injected(&call) {
        error_response(&injected)
    } else {
        dispatch(&shared, &parts, body, target, verb, &query)
            .await
            .unwrap_or_else(|e| error_response(&e))
    };
    call.code = response.status().as_u16();
    tracing::debug!(method = %call.method, path = %call.path, query = %call.query, code = call.code, "k8s test server");
    shared.record(call);
    response
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.code(), &error.to_status())
}

/// Whether the client asked for `PartialObjectMetadata` (kube's
/// `*_metadata` calls and metadata watchers).
fn wants_metadata_only(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=PartialObjectMetadata"))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

async fn read_json(body: Body) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| ApiError::too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

/// Reads a create/update body, which must be JSON.
async fn read_object(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    if !ct.is_empty() && ct != "application/json" && ct != "*/*" {
        return Err(ApiError::unsupported_media_type(&ct, &["application/json"]));
    }
    read_json(body).await
}

async fn dispatch(
    shared: &Arc<Shared>,
    parts: &Parts,
    body: Body,
    target: Target,
    verb: Verb,
    query: &Query,
) -> Result<Response, ApiError> {
    let metadata_only = wants_metadata_only(&parts.headers);
    let method = &parts.method;
    match target {
        Target::Unknown => Err(ApiError::path_not_found()),
        Target::Version if method == Method::GET => Ok(json_response(200, &version())),
        Target::ApiVersions if method == Method::GET => Ok(json_response(200, &api_versions())),
        Target::CoreResources if method == Method::GET => Ok(json_response(200, &core_resources())),
        Target::ApiGroups if method == Method::GET => Ok(json_response(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        )),
        Target::Collection {
            resource,
            namespace,
            ..
        } => {
            let filter = filter(resource, namespace.clone(), query)?;
            match (verb, namespace) {
                (Verb::Watch, _) => watch_response(shared, filter, query, metadata_only),
                (Verb::List, _) => list(shared, &filter, query, metadata_only)
                    .map(|list| json_response(200, &list)),
                (Verb::Create, Some(ns)) => {
                    let object = read_object(&parts.headers, body).await?;
                    let dry_run = query.dry_run()?;
                    let created = shared.write(|s| s.create(resource, &ns, object, dry_run))?;
                    Ok(json_response(201, &present(&created, metadata_only)))
                }
                (Verb::DeleteCollection, Some(ns)) => {
                    let options = delete_options(query, body).await?;
                    let deleted = shared.write(|s| {
                        s.delete_collection(resource, &ns, |o| filter.selects(o), &options)
                    })?;
                    let rv = shared.read(|s| s.rv());
                    Ok(json_response(
                        200,
                        &list_body(resource, deleted, rv, None, metadata_only),
                    ))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        Target::Object {
            resource,
            namespace,
            name,
            status,
        } => {
            let key = Key::new(resource, &namespace, &name);
            let part = if status { Part::Status } else { Part::Main };
            let object = match verb {
                Verb::Get => shared
                    .read(|s| s.get(&key).cloned())
                    .ok_or_else(|| ApiError::not_found(resource, &name))?,
                Verb::Update => {
                    let object = read_object(&parts.headers, body).await?;
                    let dry_run = query.dry_run()?;
                    shared.write(|s| s.update(&key, object, part, dry_run))?
                }
                Verb::Patch => {
                    let kind = patch_kind(&parts.headers, query)?;
                    let patch = read_json(body).await?;
                    let dry_run = query.dry_run()?;
                    let (object, created) =
                        shared.write(|s| s.patch(&key, kind, &patch, part, dry_run))?;
                    let code = if created { 201 } else { 200 };
                    return Ok(json_response(code, &present(&object, metadata_only)));
                }
                Verb::Delete => {
                    let options = delete_options(query, body).await?;
                    shared.write(|s| s.delete(&key, &options))?
                }
                _ => return Err(ApiError::method_not_allowed()),
            };
            Ok(json_response(200, &present(&object, metadata_only)))
        }
        Target::PodLog { namespace, name } if verb == Verb::Get => {
            logs::respond(shared, &namespace, &name, query)
        }
        Target::Version
        | Target::ApiVersions
        | Target::CoreResources
        | Target::ApiGroups
        | Target::PodLog { .. } => Err(ApiError::method_not_allowed()),
    }
}

fn filter(
    resource: Resource,
    namespace: Option<String>,
    query: &Query,
) -> Result<Filter, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(resource, query.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    Ok(Filter {
        resource,
        namespace,
        labels,
        fields,
    })
}

fn parse_rv(value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: {value:?}: strconv.ParseUint: parsing {value:?}: invalid syntax"
        ))
    })
}

fn list_body(
    resource: Resource,
    items: Vec<Value>,
    rv: u64,
    more: Option<(String, usize)>,
    metadata_only: bool,
) -> Value {
    let (kind, api_version) = if metadata_only {
        ("PartialObjectMetadataList".to_owned(), "meta.k8s.io/v1")
    } else {
        (resource.list_kind(), "v1")
    };
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if let Some((token, remaining)) = more {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(remaining);
    }
    // Like the real server, list items carry no kind/apiVersion of their
    // own (kubernetes/kubernetes#3030): the list's kind says it.
    let items: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut item = present(o, metadata_only);
            if !metadata_only && let Some(map) = item.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            item
        })
        .collect();
    json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items })
}

/// LIST, with the real server's resourceVersion semantics (unset: newest;
/// `NotOlderThan` or legacy: at least that version; `Exact`: exactly it)
/// and `limit`/`continue` paging; a continued list reports the first
/// page's resourceVersion, so a watch from it misses nothing.
fn list(
    shared: &Shared,
    filter: &Filter,
    query: &Query,
    metadata_only: bool,
) -> Result<Value, ApiError> {
    let rv_param = query.get("resourceVersion").filter(|v| !v.is_empty());
    let rv_match = query.get("resourceVersionMatch").filter(|v| !v.is_empty());
    let limit = query.integer("limit")?.filter(|l| *l > 0);
    let continue_token = query.get("continue").filter(|v| !v.is_empty());
    match (rv_match, rv_param) {
        (Some(m), _) if m != "NotOlderThan" && m != "Exact" => {
            return Err(ApiError::invalid_options(
                "ListOptions",
                vec![FieldError::not_supported(
                    "resourceVersionMatch",
                    &json!(m),
                    &["Exact", "NotOlderThan"],
                )],
            ));
        }
        (Some(_), None) => {
            return Err(ApiError::invalid_options(
                "ListOptions",
                vec![FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                )],
            ));
        }
        _ => {}
    }
    shared.read(|store| {
        let current = store.rv();
        if let Some(rv) = rv_param {
            let requested = parse_rv(rv)?;
            if requested > current {
                return Err(ApiError::resource_version_too_large(requested, current));
            }
            if rv_match == Some("Exact") && requested != current {
                return Err(ApiError::expired(format!(
                    "too old resource version: {requested} ({current})"
                )));
            }
        }
        // From the watch cache (resourceVersion "0") the real server
        // ignores limit.
        let paged = limit.filter(|_| rv_param != Some("0") || continue_token.is_some());
        let (snapshot, after) = match continue_token {
            None => (current, None),
            Some(token) => {
                let bad = || ApiError::bad_request("continue key is not valid: malformed token");
                let (rv, rest) = token.split_once('/').ok_or_else(bad)?;
                let rv: u64 = rv.parse().map_err(|_| bad())?;
                let (ns, name) = rest.split_once('/').ok_or_else(bad)?;
                if rv < store.compacted_through() {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some((ns.to_owned(), name.to_owned())))
            }
        };
        let mut selected: Vec<(&Key, &Value)> = store
            .objects_of(filter.resource, filter.namespace.as_deref())
            .filter(|(k, _)| {
                after
                    .as_ref()
                    .is_none_or(|(ns, name)| (&k.namespace, &k.name) > (ns, name))
            })
            .filter(|(_, o)| filter.selects(o))
            .collect();
        let mut more = None;
        if let Some(limit) = paged.and_then(|l| usize::try_from(l).ok())
            && selected.len() > limit
        {
            let remaining = selected.len() - limit;
            selected.truncate(limit);
            if let Some((last, _)) = selected.last() {
                more = Some((format!("{snapshot}/{}/{}", last.namespace, last.name), remaining));
            }
        }
        let items = selected.into_iter().map(|(_, o)| o.clone()).collect();
        Ok(list_body(filter.resource, items, snapshot, more, metadata_only))
    })
}

fn watch_response(
    shared: &Arc<Shared>,
    filter: Filter,
    query: &Query,
    metadata_only: bool,
) -> Result<Response, ApiError> {
    let bookmarks = query.flag("allowWatchBookmarks")?;
    let initial_events = query.flag("sendInitialEvents")?;
    let rv = query.get("resourceVersion").filter(|v| !v.is_empty());
    let rv_match = query.get("resourceVersionMatch").filter(|v| !v.is_empty());
    let mut problems = Vec::new();
    if initial_events {
        if !bookmarks {
            problems.push(FieldError::forbidden(
                "allowWatchBookmarks",
                "allowWatchBookmarks must be set to true when sendInitialEvents is specified",
            ));
        }
        if rv_match != Some("NotOlderThan") {
            problems.push(FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
    } else if rv_match.is_some() {
        problems.push(FieldError::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid_options("ListOptions", problems));
    }
    let start = match rv {
        _ if initial_events => Start::CurrentState { end_bookmark: true },
        None | Some("0") => Start::CurrentState {
            end_bookmark: false,
        },
        Some(rv) => {
            let requested = parse_rv(rv)?;
            let current = shared.read(|s| s.rv());
            if requested > current {
                return Err(ApiError::resource_version_too_large(requested, current));
            }
            Start::After(requested)
        }
    };
    let timeout = query
        .integer("timeoutSeconds")?
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs);
    let spec = WatchSpec {
        filter,
        start,
        bookmarks,
        timeout,
        metadata_only,
    };
    let stream = watch::open(shared.clone(), spec);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(format!("building the watch response: {e}")))
}

fn patch_kind(headers: &HeaderMap, query: &Query) -> Result<PatchKind, ApiError> {
    let ct = content_type(headers);
    let kind = match ct.as_str() {
        "application/merge-patch+json" => PatchKind::Merge,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/json-patch+json" => PatchKind::Json,
        "application/apply-patch+yaml" => PatchKind::Apply,
        other => {
            return Err(ApiError::unsupported_media_type(
                other,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                    "application/strategic-merge-patch+json",
                ],
            ));
        }
    };
    let force = query.flag("force")?;
    let manager = query.get("fieldManager").filter(|m| !m.is_empty());
    let mut problems = Vec::new();
    if kind == PatchKind::Apply && manager.is_none() {
        problems.push(FieldError::required_because(
            "fieldManager",
            "is required for apply patch",
        ));
    }
    if kind != PatchKind::Apply && force {
        problems.push(FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if problems.is_empty() {
        Ok(kind)
    } else {
        Err(ApiError::invalid_options("PatchOptions", problems))
    }
}

/// `DeleteOptions` from the body (kube sends them there) and the query
/// (kubectl and curl users send them there); the body wins.
async fn delete_options(query: &Query, body: Body) -> Result<DeleteOptions, ApiError> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| ApiError::too_large())?;
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    let grace_period_seconds = match body.get("gracePeriodSeconds") {
        Some(v) if !v.is_null() => Some(
            v.as_i64()
                .ok_or_else(|| ApiError::bad_request("gracePeriodSeconds must be an integer"))?,
        ),
        _ => query.integer("gracePeriodSeconds")?,
    };
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| query.get("propagationPolicy"));
    let propagation = match policy {
        None | Some("" | "Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::invalid_options(
                "DeleteOptions",
                vec![FieldError::not_supported(
                    "propagationPolicy",
                    &json!(other),
                    &["Foreground", "Background", "Orphan"],
                )],
            ));
        }
    };
    let propagation = match body.get("orphanDependents").and_then(Value::as_bool) {
        Some(true) if policy.is_none() => Propagation::Orphan,
        _ => propagation,
    };
    let precondition = |field: &str| {
        body.pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let dry_run = match body.get("dryRun") {
        Some(Value::Array(modes)) => modes.iter().any(|m| m == "All"),
        _ => query.dry_run()?,
    };
    Ok(DeleteOptions {
        grace_period_seconds,
        propagation,
        precondition_uid: precondition("uid"),
        precondition_rv: precondition("resourceVersion"),
        dry_run,
    })
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0",
        "gitCommit": "60a317eadfcb839692a5551a3ede4d3d1b9f1f6c",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:06:22Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
    })
}

fn core_resources() -> Value {
    let mut resources = Vec::new();
    for r in Resource::ALL {
        resources.push(json!({
            "name": r.plural(),
            "singularName": r.singular(),
            "namespaced": true,
            "kind": r.kind(),
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": r.short_names(),
        }));
        if r == Resource::Pods {
            resources.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
        }
        if r.has_status() {
            resources.push(json!({
                "name": format!("{}/status", r.plural()),
                "singularName": "",
                "namespaced": true,
                "kind": r.kind(),
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({ "kind": "APIResourceList", "groupVersion": "v1", "resources": resources })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_target("/version"), Target::Version);
        assert_eq!(
            parse_target("/api/v1/pods"),
            Target::Collection {
                resource: Resource::Pods,
                namespace: None,
                watch_path: false
            }
        );
        assert_eq!(
            parse_target("/api/v1/watch/namespaces/ns/services"),
            Target::Collection {
                resource: Resource::Services,
                namespace: Some("ns".into()),
                watch_path: true
            }
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/ns/pods/p/status"),
            Target::Object {
                resource: Resource::Pods,
                namespace: "ns".into(),
                name: "p".into(),
                status: true
            }
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/ns/configmaps/c/status"),
            Target::Unknown
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/ns/pods/p/log"),
            Target::PodLog {
                namespace: "ns".into(),
                name: "p".into()
            }
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/ns/services/s/log"),
            Target::Unknown
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/ns/deployments"),
            Target::Unknown
        );
        assert_eq!(parse_target("/apis/apps/v1/deployments"), Target::Unknown);
    }

    #[test]
    fn verbs() {
        let coll = parse_target("/api/v1/namespaces/ns/pods");
        let one = parse_target("/api/v1/namespaces/ns/pods/p");
        let q = Query::parse("watch=1");
        assert_eq!(verb_of(&Method::GET, &coll, &q), Verb::Watch);
        assert_eq!(verb_of(&Method::GET, &coll, &Query::default()), Verb::List);
        assert_eq!(verb_of(&Method::GET, &one, &Query::default()), Verb::Get);
        assert_eq!(
            verb_of(&Method::DELETE, &coll, &Query::default()),
            Verb::DeleteCollection
        );
        assert_eq!(verb_of(&Method::POST, &one, &Query::default()), Verb::Other);
    }
}
