//! A small, faithful Kubernetes API server for tests.
//!
//! Tests of Kubernetes code should drive the real client (kube) over real
//! HTTP against something that behaves like the API server — real JSON,
//! resourceVersions, label selectors, watch streams, the status
//! subresource, finalizers, owner-reference garbage collection — rather
//! than a mocked trait that only agrees with the code's own assumptions.
//! This crate is that server, in-process, for core/v1 `pods`, `services`,
//! `configmaps` and `secrets`.
//!
//! ```no_run
//! # async fn demo() {
//! use k8s_openapi::api::core::v1::Pod;
//! use rucat_k8s_testserver::TestServer;
//!
//! let server = TestServer::start().await;
//! let pods: kube::Api<Pod> = kube::Api::default_namespaced(server.client("rucat"));
//! // … create a pod through `pods`, then play the kubelet:
//! server.set_pod_running("rucat", "driver").unwrap();
//! # }
//! ```
//!
//! Beyond the API, the [`TestServer`] handle plays the kubelet
//! ([`TestServer::set_pod_running`] and friends, container logs with
//! [`TestServer::append_pod_log`], and graceful deletions
//! that end with their grace period:
//! [`TestServer::set_kubelet_ends_grace_periods`]), injects faults
//! ([`TestServer::set_unavailable`], [`TestServer::compact`],
//! [`TestServer::close_watches`], [`TestServer::fail_next`],
//! [`TestServer::fail_always`]) and records every request with its
//! User-Agent ([`TestServer::calls`], [`TestServer::count`]).
//!
//! # What is emulated
//!
//! - Paths `/api/v1/namespaces/{ns}/{resource}[/{name}[/status]]`,
//!   `/api/v1/namespaces/{ns}/pods/{name}/log` (see the `logs` module:
//!   `container`, `tailLines`, `sinceTime`, `sinceSeconds`, `limitBytes`,
//!   `timestamps`, `follow`; 404 for an unknown pod, the kubelet's 400 for
//!   a container that has not started, an empty log for an unscheduled
//!   pod; the log of a pod being deleted is served until it is removed), the
//!   all-namespace lists `/api/v1/{resource}`, the legacy
//!   `/api/v1/watch/...` form, `/version`, and discovery (`/api`,
//!   `/api/v1`, `/apis`). Anything else: 404 (405 for a wrong method), with
//!   a `Status` body like every error.
//! - Create (201; `generateName`; 409 `AlreadyExists`; 422 `Invalid` for a
//!   missing or malformed name, bad labels, a pod without containers or
//!   images, a service without ports unless headless; 400 for malformed
//!   JSON, wrong field types, or a body whose namespace, kind or
//!   apiVersion differs from the URL's; 500 for a create carrying a
//!   resourceVersion, as the real server answers). Objects are decoded
//!   into the k8s-openapi 1.33 types and back, so fields Kubernetes does
//!   not know are dropped, as the real server drops them. Defaulting as
//!   on a cluster (pod `restartPolicy`, `dnsPolicy`, pull policies, default
//!   tolerations, `qosClass`; service cluster IPs, `targetPort`; secret
//!   `stringData` → `data`), and a created pod's status is reset to
//!   `Pending`, a service's to empty: clients cannot create with a status.
//! - Get, list (label selectors with `=`, `==`, `!=`, `in`, `notin`,
//!   exists, `!`, `>`, `<`; field selectors over the fields the real
//!   server allows per resource, 400 for others; `limit`/`continue` paging
//!   at the first page's resourceVersion; `resourceVersion` +
//!   `resourceVersionMatch` semantics). List items carry no
//!   `kind`/`apiVersion`, as on the real server.
//! - Update (PUT) with optimistic concurrency (409 `Conflict` on a stale
//!   `resourceVersion` or UID), and patch: JSON merge, strategic merge
//!   (lists merged by their schema merge keys, finalizers unioned, the
//!   `$patch`/`$deleteFromPrimitiveList`/`$retainKeys` directives), JSON
//!   patch (RFC 6902), and apply (see below); 415 for any other type.
//!   Main-resource writes cannot change `.status`; `/status` writes change
//!   only `.status`. Pod specs are immutable except images, active
//!   deadline and tolerations (422); a service's cluster IP cannot change.
//!   Writes that change nothing keep the resourceVersion and emit nothing.
//! - Delete: 404 if missing; preconditions; `dryRun`. Finalizers hold an
//!   object (deletionTimestamp set, `MODIFIED`) until they are cleared —
//!   even a `gracePeriodSeconds=0` delete does not remove it, and no new
//!   finalizers may be added meanwhile. With
//!   [`TestServer::set_graceful_pod_deletion`], a scheduled running pod
//!   stays terminating until the kubelet harness confirms or a forced
//!   delete. Owner references are garbage collected: when an owner goes,
//!   dependents go (`DELETED` events), dependents with other live owners
//!   lose the dangling reference, and a reference to a pod or service that
//!   does not exist is collected at once; `Orphan` propagation strips the
//!   references instead.
//! - One global resourceVersion counter, bumped once per write. Watches
//!   (`watch=true`/`1`): newline-delimited `ADDED`/`MODIFIED`/`DELETED`
//!   events over a chunked response; from resourceVersion unset or `0`,
//!   the current state as `ADDED` first; from N, the logged changes after
//!   N, or a single `ERROR` 410 `Expired` when they have been compacted
//!   away ([`Retention`], [`TestServer::compact`]); an object leaving the
//!   selector arrives as `DELETED` (its previous content), one entering as
//!   `ADDED`; `BOOKMARK`s when allowed (and a last one at the timeout);
//!   `timeoutSeconds`; streaming lists (`sendInitialEvents=true` with the
//!   `k8s.io/initial-events-end` bookmark); metadata-only
//!   (`PartialObjectMetadata`) responses when the `Accept` header asks.
//!
//! # What differs from a real API server
//!
//! - Only core/v1 pods, services, configmaps and secrets; every namespace
//!   exists implicitly; no auth, RBAC, admission webhooks, quotas, events,
//!   `managedFields`, `generation`, or other subresources (`exec`,
//!   `binding`, `eviction`); logs have no `previous` (the harness never
//!   restarts a container) and no rotation.
//! - Only a subset of validation and defaulting (above); YAML and protobuf
//!   bodies are refused (kube sends JSON).
//! - Server-side apply is approximated as create-or-strategic-merge with
//!   a required `fieldManager`: there is no field ownership, so fields a
//!   manager stops applying are not removed, and there are no apply
//!   conflicts.
//! - Garbage collection is synchronous (the real collector acts shortly
//!   after), and `Foreground` propagation deletes the dependents and then
//!   the owner without the visible `foregroundDeletion` finalizer.
//! - Without graceful pod deletion (the default), an unheld pod is removed
//!   at once, as if its kubelet confirmed immediately.
//! - A list with `resourceVersionMatch=Exact` succeeds only at the newest
//!   resourceVersion (older ones get 410); continued lists show current
//!   objects, reported at the first page's resourceVersion.
//! - A watch or list from a resourceVersion newer than the server's gets
//!   504 at once (the real server waits up to 3 s first).
//! - Bookmarks come every [`TestServerBuilder::bookmark_interval`] (1 s by
//!   default, about a minute on a real server).

mod calls;
mod defaults;
mod ids;
mod kubelet;
mod logs;
mod object;
mod patch;
mod query;
mod resource;
mod routes;
mod selector;
mod shared;
mod status;
mod store;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

pub use calls::{Call, Verb};
pub use kubelet::{HOST_IP, NODE_NAME};
pub use resource::{Resource, UnknownResource};
pub use selector::{FieldSelector, LabelSelector, SelectorError};
pub use status::ApiError;
pub use store::Retention;

use shared::Shared;
use store::{DeleteOptions, Key};

/// The finalizer [`TestServer::add_finalizer`] adds.
pub const TEST_FINALIZER: &str = "testserver.rucat.io/hold";

/// Options for a [`TestServer`]; see [`TestServer::builder`].
#[derive(Debug, Clone)]
pub struct TestServerBuilder {
    retention: Retention,
    bookmark_interval: Duration,
    graceful_pod_deletion: bool,
    kubelet_ends_grace_periods: bool,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        Self {
            retention: Retention::All,
            bookmark_interval: Duration::from_secs(1),
            graceful_pod_deletion: false,
            kubelet_ends_grace_periods: false,
        }
    }
}

impl TestServerBuilder {
    /// How many watch events to keep for resuming watches (default: all).
    /// With fewer, a watch from an older resourceVersion gets 410 Expired,
    /// as after an etcd compaction.
    pub fn event_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How often watches that allow bookmarks get one (default 1 s; the
    /// real server sends them about once a minute).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Start with graceful pod deletion on; see
    /// [`TestServer::set_graceful_pod_deletion`].
    pub fn graceful_pod_deletion(mut self, on: bool) -> Self {
        self.graceful_pod_deletion = on;
        self
    }

    /// Start with graceful pod deletion on and the kubelet confirming each
    /// one when its grace period ends; see
    /// [`TestServer::set_kubelet_ends_grace_periods`].
    pub fn kubelet_ends_grace_periods(mut self, on: bool) -> Self {
        self.graceful_pod_deletion |= on;
        self.kubelet_ends_grace_periods = on;
        self
    }

    /// Binds 127.0.0.1 on a free port and serves in a background task of
    /// the current tokio runtime.
    pub async fn try_start(self) -> std::io::Result<TestServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(self.retention, self.bookmark_interval));
        shared.write(|s| {
            s.graceful_pod_deletion = self.graceful_pod_deletion;
            s.kubelet_ends_grace_periods = self.kubelet_ends_grace_periods;
        });
        tokio::spawn(kubelet::end_grace_periods(Arc::downgrade(&shared)));
        let (shutdown, stop) = oneshot::channel::<()>();
        let app = routes::router(shared.clone());
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // Dropping the sender counts as the signal too.
                    let _ = stop.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "kubernetes test server stopped with an error");
            }
        });
        Ok(TestServer {
            shared,
            addr,
            shutdown: Some(shutdown),
        })
    }

    /// [`Self::try_start`], panicking if no local port can be bound.
    pub async fn start(self) -> TestServer {
        match self.try_start().await {
            Ok(server) => server,
            Err(e) => panic!("cannot start the kubernetes test server: {e}"),
        }
    }
}

/// A running test API server. It stops (and ends its watch streams) when
/// dropped.
///
/// The test controls are synchronous: they act on the store at once, and
/// watchers see their effect as events like any other write.
pub struct TestServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.close_watches();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl TestServer {
    /// Starts a server with the default options.
    pub async fn start() -> TestServer {
        Self::builder().start().await
    }

    /// Options for a server to start.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `kube::Config::new(url)` with `namespace` as the default namespace:
    /// plain HTTP, no auth, and kube's defaults otherwise — including its
    /// retry of 429/503/504 responses, which would hide an outage from
    /// [`Self::set_unavailable`] behind minutes of retries.
    pub fn config(&self, namespace: &str) -> kube::Config {
        let url = self
            .url()
            .parse()
            .unwrap_or_else(|e| panic!("the server's own URL does not parse: {e}"));
        let mut config = kube::Config::new(url);
        config.default_namespace = namespace.to_owned();
        config
    }

    /// A client for this server with `namespace` as its default namespace:
    /// [`Self::config`] without kube's default retry, so a 503 reaches the
    /// code under test at once. Build one from [`Self::config`] to keep the
    /// retries. Needs a tokio runtime.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let mut config = self.config(namespace);
        config.default_retry = false;
        kube::Client::try_from(config)
            .unwrap_or_else(|e| panic!("cannot build a client for the test server: {e}"))
    }

    /// The stored object, as a GET would return it.
    pub fn get(&self, namespace: &str, resource: Resource, name: &str) -> Option<Value> {
        let key = Key::new(resource, namespace, name);
        self.shared.read(|s| s.get(&key).cloned())
    }

    /// Every stored object of `resource`, in all namespaces, ordered by
    /// namespace and name.
    pub fn list(&self, resource: Resource) -> Vec<Value> {
        self.shared.read(|s| {
            s.objects_of(resource, None)
                .map(|(_, o)| o.clone())
                .collect()
        })
    }

    /// Creates an object as a POST would (defaulting, validation, events).
    pub fn create(
        &self,
        namespace: &str,
        resource: Resource,
        object: Value,
    ) -> Result<Value, ApiError> {
        self.shared
            .write(|s| s.create(resource, namespace, object, false))
    }

    /// Deletes an object as a DELETE without options would — as if someone
    /// else (`kubectl delete`, an eviction) removed it.
    pub fn delete(
        &self,
        namespace: &str,
        resource: Resource,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = Key::new(resource, namespace, name);
        self.shared
            .write(|s| s.delete(&key, &DeleteOptions::default()))
    }

    /// Adds [`TEST_FINALIZER`], so a later delete leaves the object
    /// terminating (deletionTimestamp set) until
    /// [`Self::remove_finalizers`] or a client clears it.
    pub fn add_finalizer(
        &self,
        namespace: &str,
        resource: Resource,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.update(namespace, resource, name, |o| {
            let meta = object::meta_mut(o);
            let list = meta
                .entry("finalizers")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list
                && !list.iter().any(|f| f == TEST_FINALIZER)
            {
                list.push(Value::String(TEST_FINALIZER.to_owned()));
            }
        })
    }

    /// Clears every finalizer; an object being deleted then goes.
    pub fn remove_finalizers(
        &self,
        namespace: &str,
        resource: Resource,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.update(namespace, resource, name, |o| {
            object::meta_mut(o).remove("finalizers");
        })
    }

    /// Changes the object as a PUT of the main resource would (status
    /// changes are ignored; see [`Self::update_status`]).
    pub fn update(
        &self,
        namespace: &str,
        resource: Resource,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let key = Key::new(resource, namespace, name);
        self.shared.write(|s| s.update_with(&key, change))
    }

    /// Changes the object's `.status` as a PUT of the status subresource
    /// would (other changes are ignored).
    pub fn update_status(
        &self,
        namespace: &str,
        resource: Resource,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let key = Key::new(resource, namespace, name);
        self.shared.write(|s| s.update_status(&key, change))
    }

    /// The newest resourceVersion (the global write counter).
    pub fn resource_version(&self) -> u64 {
        self.shared.read(|s| s.rv())
    }

    /// While on, every request — new watches included — gets 503
    /// `ServiceUnavailable`, and turning it on ends the open watch
    /// streams. The test controls keep working, so tests can change state
    /// "while the API is down" and check that clients catch up after.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.set_unavailable(unavailable);
    }

    /// Answers the next `verb` request on `resource` with an error of
    /// `code` and `reason` (e.g. 403 `Forbidden`, as RBAC would), without
    /// touching the store: for testing what a client does when one step of
    /// a multi-step operation fails.
    pub fn fail_next(&self, verb: Verb, resource: Resource, code: u16, reason: &str) {
        self.shared
            .inject(verb, resource, ApiError::injected(code, reason));
    }

    /// Ends every open watch stream (as an API server restart or a load
    /// balancer would); clients must resume.
    pub fn close_watches(&self) {
        self.shared.close_watches();
    }

    /// The number of watch streams open now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches()
    }

    /// Drops the event log, like an etcd compaction: watches from any
    /// resourceVersion older than now get 410 Expired and must relist.
    pub fn compact(&self) {
        self.shared.write(store::Store::compact);
    }

    /// Changes how many events are kept for resuming watches.
    pub fn set_event_retention(&self, retention: Retention) {
        self.shared.write(|s| s.set_retention(retention));
    }

    /// With graceful pod deletion on, deleting a scheduled, unfinished pod
    /// behaves as on a real node: the pod gets a deletionTimestamp and
    /// stays (terminating) until [`Self::complete_pod_termination`] or a
    /// DELETE with `gracePeriodSeconds=0` (force). Off (the default), pods
    /// go at once unless finalizers hold them.
    pub fn set_graceful_pod_deletion(&self, on: bool) {
        self.shared.write(|s| s.graceful_pod_deletion = on);
    }

    /// With this on (it implies graceful pod deletion), the kubelet
    /// harness confirms each graceful deletion when the pod's grace period
    /// (`terminationGracePeriodSeconds`, or the delete's own) ends, as a
    /// node does for a container that ignores SIGTERM: the pod stays, with
    /// its `deletionTimestamp`, for the whole grace period, then goes.
    pub fn set_kubelet_ends_grace_periods(&self, on: bool) {
        self.shared.write(|s| {
            s.graceful_pod_deletion |= on;
            s.kubelet_ends_grace_periods = on;
        });
    }

    /// Answers every `verb` request on `resource` with an error of `code`
    /// and `reason` until [`Self::clear_failures`] — a missing RBAC rule
    /// (403 `Forbidden`), a webhook that refuses everything — without
    /// touching the store. One-off failures ([`Self::fail_next`]) come
    /// first.
    pub fn fail_always(&self, verb: Verb, resource: Resource, code: u16, reason: &str) {
        self.shared
            .inject_standing(verb, resource, ApiError::injected(code, reason));
    }

    /// Ends every failure set by [`Self::fail_always`].
    pub fn clear_failures(&self) {
        self.shared.clear_standing();
    }

    /// Every request received since the start or [`Self::reset_calls`].
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls()
    }

    /// How many requests used `verb` on `resource`. `count(Verb::Get,
    /// Resource::Pods)` counts reads of single pods (polling), which a
    /// watch-fed cache avoids.
    pub fn count(&self, verb: Verb, resource: Resource) -> usize {
        self.count_where(|c| c.is(verb, resource))
    }

    /// How many requests satisfy `predicate`.
    pub fn count_where(&self, predicate: impl Fn(&Call) -> bool) -> usize {
        self.shared.calls().iter().filter(|c| predicate(c)).count()
    }

    /// Forgets the recorded requests.
    pub fn reset_calls(&self) {
        self.shared.reset_calls();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<TestServer>();
    }
}
