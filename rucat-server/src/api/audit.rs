//! The audit trail: one structured line for every request that tries to
//! change an engine (create, stop, restart, delete, share), whoever it came
//! from and however it ended, under the tracing target `rucat::audit` so it
//! can be routed apart from the rest of the log. Reads are not audited.
//!
//! The same requests are counted in `rucat_api_actions_total` by action and
//! outcome. The user is a label only when configured
//! (`audit.user_metrics_limit`), and then only for that many distinct users;
//! later ones share `other`, so a crowd of users (or of JWT subjects) cannot
//! multiply the series without bound.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rucat_core::{EngineId, Identity};

use super::error::ErrorKind;

/// The engine a request acted on when its path does not name it (a create):
/// put into the response's extensions by the handler.
#[derive(Clone, Debug)]
pub struct ActedOn(pub EngineId);

/// What the audit trail calls each state-changing route.
fn action(method: &Method, route: &str, query: Option<&str>) -> Option<&'static str> {
    let forced = query.is_some_and(|q| q.split('&').any(|p| p == "force=true"));
    Some(match (method.as_str(), route) {
        ("POST", "/engine") => "create",
        ("POST", "/engine/{id}/stop") => "stop",
        ("POST", "/engine/{id}/restart") => "restart",
        ("DELETE", "/engine/{id}") if forced => "force_delete",
        ("DELETE", "/engine/{id}") => "delete",
        ("PATCH", "/engine/{id}") => "update",
        _ => return None,
    })
}

/// The engine id in a path `/engine/<id>[/…]`, if well formed.
fn engine_in_path(path: &str) -> Option<EngineId> {
    path.strip_prefix("/engine/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
    outcome: &'static str,
    user: String,
}

/// Cheap to clone: shared.
#[derive(Clone, Debug)]
pub struct Audit {
    actions: Family<ActionLabels, Counter>,
    users: Arc<UserLabels>,
}

/// Which users have a label of their own: the first `limit` seen.
#[derive(Debug)]
struct UserLabels {
    limit: usize,
    seen: Mutex<HashSet<String>>,
}

/// The `user` label when users are not labels.
const ANY_USER: &str = "";
/// The `user` label of users past the limit.
const OTHER_USERS: &str = "other";

impl UserLabels {
    fn label(&self, user: &str) -> String {
        if self.limit == 0 {
            return ANY_USER.to_owned();
        }
        let Ok(mut seen) = self.seen.lock() else {
            return OTHER_USERS.to_owned();
        };
        if seen.contains(user) || (seen.len() < self.limit && seen.insert(user.to_owned())) {
            user.to_owned()
        } else {
            OTHER_USERS.to_owned()
        }
    }
}

impl Audit {
    /// Creates the counter and registers it into `registry`; up to
    /// `user_metrics_limit` users get a label of their own.
    pub fn register(registry: &mut Registry, user_metrics_limit: usize) -> Self {
        let audit = Self {
            actions: Family::default(),
            users: Arc::new(UserLabels {
                limit: user_metrics_limit,
                seen: Mutex::new(HashSet::new()),
            }),
        };
        registry.register(
            "rucat_api_actions",
            "Requests to change engines, by action, outcome (ok or the error kind) and, when configured, user",
            audit.actions.clone(),
        );
        audit
    }
}

/// Middleware, inside authentication (it needs the caller's [`Identity`])
/// and outside the routes (it needs the outcome of each). Counts into the
/// [`Audit`] found in the request's extensions (see [`super::with_audit`]).
pub async fn audit(req: Request, next: Next) -> Response {
    let audit = req.extensions().get::<Audit>().cloned();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let Some(action) = route
        .as_ref()
        .and_then(|r| action(req.method(), r.as_str(), req.uri().query()))
    else {
        return next.run(req).await;
    };
    let user = req
        .extensions()
        .get::<Identity>()
        .map_or_else(|| "unknown".to_owned(), |who| who.name.clone());
    let in_path = engine_in_path(req.uri().path());
    let response = next.run(req).await;
    let engine = in_path.or_else(|| response.extensions().get::<ActedOn>().map(|a| a.0.clone()));
    let status = response.status();
    let outcome = if status.is_success() {
        "ok"
    } else {
        response
            .extensions()
            .get::<ErrorKind>()
            .map_or("error", |kind| kind.as_str())
    };
    let engine = engine.as_ref().map_or("", EngineId::as_str);
    tracing::info!(
        target: "rucat::audit",
        user = user.as_str(),
        action,
        engine,
        outcome,
        status = status.as_u16(),
        "audit"
    );
    if let Some(audit) = audit {
        audit
            .actions
            .get_or_create(&ActionLabels {
                action,
                outcome,
                user: audit.users.label(&user),
            })
            .inc();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changing_routes_are_named() {
        let cases = [
            (Method::POST, "/engine", None, Some("create")),
            (Method::POST, "/engine/{id}/stop", None, Some("stop")),
            (Method::POST, "/engine/{id}/restart", None, Some("restart")),
            (Method::DELETE, "/engine/{id}", None, Some("delete")),
            (
                Method::DELETE,
                "/engine/{id}",
                Some("force=true"),
                Some("force_delete"),
            ),
            (
                Method::DELETE,
                "/engine/{id}",
                Some("force=false"),
                Some("delete"),
            ),
            (Method::PATCH, "/engine/{id}", None, Some("update")),
            (Method::GET, "/engine/{id}", None, None),
            (Method::GET, "/engines", None, None),
            (Method::POST, "/engines", None, None),
        ];
        for (method, route, query, expected) in cases {
            assert_eq!(action(&method, route, query), expected, "{method} {route}");
        }
    }

    #[test]
    fn engine_ids_come_from_the_path() {
        let id = EngineId::generate();
        assert_eq!(engine_in_path(&format!("/engine/{id}")), Some(id.clone()));
        assert_eq!(
            engine_in_path(&format!("/engine/{id}/stop")),
            Some(id.clone())
        );
        assert_eq!(engine_in_path("/engine"), None);
        assert_eq!(engine_in_path("/engine/not-an-id/stop"), None);
    }

    #[test]
    fn user_labels_are_bounded() {
        let off = UserLabels {
            limit: 0,
            seen: Mutex::new(HashSet::new()),
        };
        assert_eq!(off.label("alice"), ANY_USER);
        let two = UserLabels {
            limit: 2,
            seen: Mutex::new(HashSet::new()),
        };
        assert_eq!(two.label("alice"), "alice");
        assert_eq!(two.label("bob"), "bob");
        assert_eq!(two.label("carol"), OTHER_USERS);
        assert_eq!(two.label("alice"), "alice", "a labelled user keeps it");
        assert_eq!(two.seen.lock().unwrap().len(), 2);
    }
}
