//! The object store: objects as JSON, one global resourceVersion counter,
//! and the event log that watches replay.
//!
//! Every write bumps the counter by exactly one and appends exactly one log
//! entry carrying that resourceVersion, so a watcher that has seen entries
//! up to RV N has seen every change up to N — which is what makes resuming
//! a watch from any resourceVersion handed out (object, list or bookmark)
//! correct. Writes that change nothing bump nothing, as on the real server.
//!
//! All the write semantics live here (create, update, patch, delete with
//! finalizers, graceful pod deletion, owner-reference garbage collection),
//! independent of HTTP, so the test controls take the same paths as
//! requests.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::defaults;
use crate::ids;
use crate::logs::{LogLine, PodLogs};
use crate::object::{
    OwnerRef, finalizers, is_deleting, meta_mut, meta_str, owner_refs, remove_owner_refs,
    set_resource_version,
};
use crate::patch::{json_patch, merge_patch, strategic_merge};
use crate::resource::Resource;
use crate::status::{ApiError, FieldError};
use crate::validation;

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) resource: Resource,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl Key {
    pub(crate) fn new(resource: Resource, namespace: &str, name: &str) -> Self {
        Self {
            resource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// What a logged change did to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One logged write. `object` is the object after the write (for a
/// deletion: its last state, carrying the deletion's resourceVersion);
/// `prev` the object before, which watchers need to tell whether it left
/// their selector.
#[derive(Debug, Clone)]
pub(crate) struct LogEntry {
    pub(crate) rv: u64,
    pub(crate) change: Change,
    pub(crate) resource: Resource,
    pub(crate) namespace: String,
    pub(crate) object: Value,
    pub(crate) prev: Option<Value>,
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The main resource: everything but `.status` (for resources with a
    /// status subresource).
    Main,
    /// The `/status` subresource: `.status` only.
    Status,
}

/// The patch formats, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply,
}

/// `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// The `DeleteOptions` the server honours.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    pub(crate) grace_period_seconds: Option<i64>,
    pub(crate) propagation: Propagation,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_rv: Option<String>,
    pub(crate) dry_run: bool,
}

/// How many log entries to keep; older ones are compacted away and
/// watches from before them get 410 Expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Keep every event (the default): no watch is ever too old.
    #[default]
    All,
    /// Keep the newest N events.
    Last(usize),
}

pub(crate) struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    log: VecDeque<LogEntry>,
    /// Every entry with rv <= this has been dropped from the log.
    compacted_through: u64,
    retention: Retention,
    /// Whether DELETE of a scheduled, running pod waits for the kubelet.
    pub(crate) graceful_pod_deletion: bool,
    /// Pods deleted gracefully whose termination the kubelet has not
    /// confirmed yet, with the end of their grace period.
    awaiting_kubelet: BTreeMap<Key, Instant>,
    /// Whether the kubelet confirms each graceful deletion when its grace
    /// period ends (see [`Store::finish_due_terminations`]).
    pub(crate) kubelet_ends_grace_periods: bool,
    next_service_ip: u32,
    next_pod_ip: u32,
    /// What each pod's containers wrote; removed with the pod.
    logs: BTreeMap<Key, PodLogs>,
}

/// Fills in or checks `apiVersion`, `kind` and `metadata.namespace` of a
/// request body, as the real server's decoder and namespace check do.
fn prepare_body(resource: Resource, body: Value, namespace: &str) -> Result<Value, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: the body must be a JSON object",
            kind = resource.kind()
        )));
    };
    match map.get("apiVersion") {
        None | Some(Value::Null) => {
            map.insert("apiVersion".into(), json!("v1"));
        }
        Some(v) if v == "v1" => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version (v1)",
                v.as_str().unwrap_or_default()
            )));
        }
    }
    match map.get("kind") {
        None | Some(Value::Null) => {
            map.insert("kind".into(), json!(resource.kind()));
        }
        Some(k) if k == resource.kind() => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                k.as_str().unwrap_or_default(),
                resource.kind()
            )));
        }
    }
    let mut object = Value::Object(map);
    let meta = meta_mut(&mut object);
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != namespace => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => {
            meta.insert("namespace".into(), json!(namespace));
        }
    }
    Ok(object)
}

/// Checks that the body names the object of the URL (filling the name in
/// when the body leaves it out).
fn check_name(key: &Key, object: &mut Value) -> Result<(), ApiError> {
    let meta = meta_mut(object);
    match meta.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() && name != key.name => Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            key.name
        ))),
        _ => {
            meta.insert("name".into(), json!(key.name));
            Ok(())
        }
    }
}

/// Server-owned metadata survives any update.
fn keep_server_metadata(old: &Value, new: &mut Value) {
    let meta = meta_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "generation",
    ] {
        match old.get("metadata").and_then(|m| m.get(field)) {
            Some(v) => meta.insert(field.to_owned(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
    meta.remove("managedFields");
}

fn set_field(object: &mut Value, field: &str, value: Option<Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(v) => map.insert(field.to_owned(), v),
            None => map.remove(field),
        };
    }
}

impl Store {
    pub(crate) fn new(retention: Retention) -> Self {
        Self {
            objects: BTreeMap::new(),
            rv: 0,
            log: VecDeque::new(),
            compacted_through: 0,
            retention,
            graceful_pod_deletion: false,
            awaiting_kubelet: BTreeMap::new(),
            kubelet_ends_grace_periods: false,
            next_service_ip: 10,
            next_pod_ip: 10,
            logs: BTreeMap::new(),
        }
    }

    /// The current (newest) resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// The objects of `resource`, in one namespace or all, in key order.
    pub(crate) fn objects_of(
        &self,
        resource: Resource,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter().filter(move |(k, _)| {
            k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns)
        })
    }

    /// The logged changes after `cursor`, or `Err(oldest)` when some of
    /// them have been compacted away (the oldest resourceVersion a watch
    /// can still start from is then `oldest`).
    pub(crate) fn changes_after(
        &self,
        cursor: u64,
    ) -> Result<impl Iterator<Item = &LogEntry>, u64> {
        if cursor < self.compacted_through {
            return Err(self.compacted_through);
        }
        let start = self.log.partition_point(|e| e.rv <= cursor);
        Ok(self.log.range(start..))
    }

    /// The oldest resourceVersion a watch can resume from.
    pub(crate) fn compacted_through(&self) -> u64 {
        self.compacted_through
    }

    /// Drops the whole event log, like an etcd compaction: every watch
    /// from an older resourceVersion now gets 410 Expired.
    pub(crate) fn compact(&mut self) {
        self.log.clear();
        self.compacted_through = self.rv;
    }

    pub(crate) fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
        self.trim_log();
    }

    fn trim_log(&mut self) {
        if let Retention::Last(keep) = self.retention {
            while self.log.len() > keep {
                if let Some(dropped) = self.log.pop_front() {
                    self.compacted_through = dropped.rv;
                }
            }
        }
    }

    fn push_log(&mut self, entry: LogEntry) {
        self.log.push_back(entry);
        self.trim_log();
    }

    /// Stores `object` at a new resourceVersion and logs the change.
    fn commit(&mut self, key: &Key, mut object: Value, prev: Option<Value>) -> Value {
        self.rv += 1;
        set_resource_version(&mut object, self.rv);
        self.objects.insert(key.clone(), object.clone());
        self.push_log(LogEntry {
            rv: self.rv,
            change: if prev.is_some() {
                Change::Modified
            } else {
                Change::Added
            },
            resource: key.resource,
            namespace: key.namespace.clone(),
            object: object.clone(),
            prev,
        });
        object
    }

    /// Removes an object at a new resourceVersion and logs the deletion.
    fn remove(&mut self, key: &Key) -> Option<Value> {
        let prev = self.objects.remove(key)?;
        self.awaiting_kubelet.remove(key);
        self.logs.remove(key);
        self.rv += 1;
        let mut object = prev.clone();
        set_resource_version(&mut object, self.rv);
        self.push_log(LogEntry {
            rv: self.rv,
            change: Change::Deleted,
            resource: key.resource,
            namespace: key.namespace.clone(),
            object: object.clone(),
            prev: Some(prev),
        });
        Some(object)
    }

    fn allocate_service_ip(&mut self) -> String {
        let n = self.next_service_ip;
        self.next_service_ip += 1;
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    /// A fresh pod IP, for the kubelet harness.
    pub(crate) fn allocate_pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip += 1;
        format!("10.244.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    fn current(&self, key: &Key) -> Result<Value, ApiError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key.resource, &key.name))
    }

    /// POST: creates an object in `namespace`.
    pub(crate) fn create(
        &mut self,
        resource: Resource,
        namespace: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let object = prepare_body(resource, body, namespace)?;
        if meta_str(&object, "resourceVersion").is_some() {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut object = resource.normalize(object)?;
        let name = match meta_str(&object, "name") {
            Some(name) => name.to_owned(),
            None => match meta_str(&object, "generateName") {
                Some(prefix) => {
                    let prefix: String = prefix.chars().take(58).collect();
                    let mut name = format!("{prefix}{}", ids::name_suffix());
                    while self
                        .objects
                        .contains_key(&Key::new(resource, namespace, &name))
                    {
                        name = format!("{prefix}{}", ids::name_suffix());
                    }
                    name
                }
                None => {
                    return Err(ApiError::invalid(
                        resource,
                        "",
                        vec![FieldError::required_because(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            },
        };
        let meta = meta_mut(&mut object);
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(ids::uid()));
        meta.insert("creationTimestamp".into(), json!(ids::now()));
        for server_owned in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
            "generation",
        ] {
            meta.remove(server_owned);
        }
        defaults::on_create(resource, &mut object, || self.allocate_service_ip());
        let errors = validation::validate(resource, &object);
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource, &name, errors));
        }
        let key = Key::new(resource, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(resource, &name));
        }
        if dry_run {
            return Ok(object);
        }
        let stored = self.commit(&key, object, None);
        self.collect_garbage();
        Ok(stored)
    }

    /// PUT: replaces the main resource or its status.
    pub(crate) fn update(
        &mut self,
        key: &Key,
        body: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let old = self.current(key)?;
        let mut body = prepare_body(key.resource, body, &key.namespace)?;
        check_name(key, &mut body)?;
        let body = key.resource.normalize(body)?;
        self.write_update(key, old, body, part, dry_run)
    }

    /// PATCH: applies a patch to the stored object, then writes the result
    /// as an update (so preconditions, defaulting and validation hold the
    /// same). An apply patch of a missing object creates it; `created` in
    /// the result says so.
    pub(crate) fn patch(
        &mut self,
        key: &Key,
        kind: PatchKind,
        patch: &Value,
        part: Part,
        dry_run: bool,
    ) -> Result<(Value, bool), ApiError> {
        if kind == PatchKind::Apply {
            for (field, expected) in [("apiVersion", "v1"), ("kind", key.resource.kind())] {
                if patch.get(field).and_then(Value::as_str) != Some(expected) {
                    return Err(ApiError::bad_request(format!(
                        "{field} must be {expected:?} in an apply patch"
                    )));
                }
            }
        }
        let old = match self.objects.get(key) {
            Some(old) => old.clone(),
            None if kind == PatchKind::Apply && part == Part::Main => {
                let mut body = patch.clone();
                check_name(key, &mut body)?;
                let created = self.create(key.resource, &key.namespace, body, dry_run)?;
                return Ok((created, true));
            }
            None => return Err(ApiError::not_found(key.resource, &key.name)),
        };
        let patched = match kind {
            PatchKind::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                let mut target = old.clone();
                merge_patch(&mut target, patch);
                target
            }
            PatchKind::Strategic | PatchKind::Apply => strategic_merge(key.resource, &old, patch)
                .map_err(|e| ApiError::unprocessable(e.0))?,
            PatchKind::Json => json_patch(&old, patch).map_err(|e| ApiError::unprocessable(e.0))?,
        };
        let mut body = prepare_body(key.resource, patched, &key.namespace)?;
        check_name(key, &mut body)?;
        let body = key.resource.normalize(body)?;
        self.write_update(key, old, body, part, dry_run)
            .map(|o| (o, false))
    }

    /// Applies `change` to the stored object's status through the status
    /// subresource's write path (as the kubelet does).
    pub(crate) fn update_status(
        &mut self,
        key: &Key,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let old = self.current(key)?;
        let mut body = old.clone();
        change(&mut body);
        self.write_update(key, old, body, Part::Status, false)
    }

    /// Applies `change` to the whole stored object as a main-resource
    /// update (for test controls such as adding a finalizer).
    pub(crate) fn update_with(
        &mut self,
        key: &Key,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let old = self.current(key)?;
        let mut body = old.clone();
        change(&mut body);
        self.write_update(key, old, body, Part::Main, false)
    }

    fn write_update(
        &mut self,
        key: &Key,
        old: Value,
        body: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let resource = key.resource;
        if let Some(rv) = meta_str(&body, "resourceVersion")
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(resource, &key.name));
        }
        if let (Some(given), Some(stored)) = (meta_str(&body, "uid"), meta_str(&old, "uid"))
            && given != stored
        {
            return Err(ApiError::conflict_because(
                resource,
                &key.name,
                &format!(
                    "Precondition failed: UID in precondition: {given}, UID in object meta: {stored}"
                ),
            ));
        }
        let mut new = match part {
            Part::Main => {
                let mut new = body;
                if resource.has_status() {
                    set_field(&mut new, "status", old.get("status").cloned());
                }
                keep_server_metadata(&old, &mut new);
                defaults::on_update(resource, &old, &mut new);
                new
            }
            Part::Status => {
                let mut new = old.clone();
                set_field(&mut new, "status", body.get("status").cloned());
                new
            }
        };
        set_field(&mut new, "kind", Some(json!(resource.kind())));
        set_field(&mut new, "apiVersion", Some(json!("v1")));
        let mut errors = Vec::new();
        if part == Part::Main {
            errors.extend(validation::validate(resource, &new));
            errors.extend(validation::validate_update(resource, &old, &new));
        }
        if is_deleting(&old) {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                errors.push(FieldError::forbidden(
                    "metadata.finalizers",
                    &format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource, &key.name, errors));
        }
        if new == old || dry_run {
            return Ok(new);
        }
        let stored = self.commit(key, new, Some(old));
        self.finish_deletion_if_released(key);
        self.collect_garbage();
        Ok(stored)
    }

    /// Removes a deleting object once nothing holds it any more: no
    /// finalizers, and (for a gracefully deleted pod) the kubelet done.
    fn finish_deletion_if_released(&mut self, key: &Key) {
        let released = self.objects.get(key).is_some_and(|o| {
            is_deleting(o) && finalizers(o).is_empty() && !self.awaiting_kubelet.contains_key(key)
        });
        if released {
            self.remove(key);
        }
    }

    /// DELETE one object.
    pub(crate) fn delete(&mut self, key: &Key, options: &DeleteOptions) -> Result<Value, ApiError> {
        let object = self.current(key)?;
        if let Some(uid) = &options.precondition_uid
            && meta_str(&object, "uid") != Some(uid.as_str())
        {
            return Err(ApiError::conflict_because(
                key.resource,
                &key.name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&object, "uid").unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &options.precondition_rv
            && meta_str(&object, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::conflict_because(
                key.resource,
                &key.name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&object, "resourceVersion").unwrap_or_default()
                ),
            ));
        }
        if options.dry_run {
            return Ok(object);
        }
        let uid = meta_str(&object, "uid").unwrap_or_default().to_owned();
        match options.propagation {
            Propagation::Orphan => self.orphan_dependents(&uid),
            Propagation::Foreground => {
                for dependent in self.dependents_of(&uid) {
                    self.delete_one(&dependent, None);
                }
            }
            Propagation::Background => {}
        }
        let result = self.delete_one(key, options.grace_period_seconds);
        self.collect_garbage();
        Ok(result)
    }

    /// DELETE a collection: every object of `resource` in `namespace` that
    /// `selected` accepts.
    pub(crate) fn delete_collection(
        &mut self,
        resource: Resource,
        namespace: &str,
        selected: impl Fn(&Value) -> bool,
        options: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let keys: Vec<Key> = self
            .objects_of(resource, Some(namespace))
            .filter(|(_, o)| selected(o))
            .map(|(k, _)| k.clone())
            .collect();
        let mut deleted = Vec::new();
        for key in keys {
            if self.objects.contains_key(&key) {
                deleted.push(self.delete(&key, options)?);
            }
        }
        Ok(deleted)
    }

    /// Deletes one object without garbage collection: marks it deleting
    /// when finalizers (or, for pods, the kubelet) hold it, removes it
    /// otherwise. Returns the object as the DELETE response shows it.
    fn delete_one(&mut self, key: &Key, grace: Option<i64>) -> Value {
        let Some(object) = self.objects.get(key).cloned() else {
            return Value::Null;
        };
        let held_by_finalizers = !finalizers(&object).is_empty();
        let awaiting = self.awaiting_kubelet.contains_key(key);
        if awaiting && grace == Some(0) {
            // Force deletion: the kubelet's confirmation is no longer needed.
            self.awaiting_kubelet.remove(key);
            if !held_by_finalizers {
                return self.remove(key).unwrap_or(object);
            }
            return object;
        }
        if is_deleting(&object) {
            return object;
        }
        let graceful = key.resource == Resource::Pods
            && self.graceful_pod_deletion
            && grace != Some(0)
            && pod_runs_on_a_node(&object);
        if graceful {
            let seconds = grace
                .or_else(|| object["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30);
            let mut marked = object.clone();
            let meta = meta_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(ids::now_plus(seconds)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(seconds));
            let seconds_left = u64::try_from(seconds).unwrap_or(0);
            self.awaiting_kubelet.insert(
                key.clone(),
                Instant::now() + Duration::from_secs(seconds_left),
            );
            return self.commit(key, marked, Some(object));
        }
        if held_by_finalizers {
            let mut marked = object.clone();
            let meta = meta_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(ids::now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            return self.commit(key, marked, Some(object));
        }
        self.remove(key).unwrap_or(object)
    }

    /// The kubelet's confirmation that a gracefully deleted pod's
    /// containers have stopped: the pod goes (unless finalizers hold it).
    pub(crate) fn complete_pod_termination(&mut self, key: &Key) -> Result<(), ApiError> {
        self.current(key)?;
        self.awaiting_kubelet.remove(key);
        self.finish_deletion_if_released(key);
        self.collect_garbage();
        Ok(())
    }

    /// The kubelet side of graceful deletion when
    /// `kubelet_ends_grace_periods` is on: a pod whose grace period has
    /// ended by `now` is confirmed terminated (its containers were killed).
    pub(crate) fn finish_due_terminations(&mut self, now: Instant) {
        if !self.kubelet_ends_grace_periods {
            return;
        }
        let due: Vec<Key> = self
            .awaiting_kubelet
            .iter()
            .filter(|(_, end)| **end <= now)
            .map(|(key, _)| key.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        for key in due {
            self.awaiting_kubelet.remove(&key);
            self.finish_deletion_if_released(&key);
        }
        self.collect_garbage();
    }

    /// The lines `container` of the pod at `key` wrote (none if it wrote
    /// none, or there is no such pod).
    pub(crate) fn log_lines(&self, key: &Key, container: &str) -> &[LogLine] {
        self.logs
            .get(key)
            .and_then(|pod| pod.get(container))
            .map_or(&[], Vec::as_slice)
    }

    /// The kubelet harness: `container` of the pod at `key` writes `lines`.
    /// The pod must exist and have that container; lines are kept in time
    /// order (a line stamped earlier than the last is stamped with the
    /// last's time, as a log file's order is its time order).
    pub(crate) fn append_log(
        &mut self,
        key: &Key,
        container: &str,
        lines: impl IntoIterator<Item = LogLine>,
    ) -> Result<(), ApiError> {
        let pod = self.current(key)?;
        let has_container = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == container);
        if !has_container {
            return Err(ApiError::bad_request(format!(
                "container {container} is not valid for pod {}",
                key.name
            )));
        }
        let written = self
            .logs
            .entry(key.clone())
            .or_default()
            .entry(container.to_owned())
            .or_default();
        for mut line in lines {
            if let Some(last) = written.last() {
                line.time = line.time.max(last.time);
            }
            written.push(line);
        }
        Ok(())
    }

    /// The scheduler's binding: sets `spec.nodeName` and the PodScheduled
    /// condition in one write, as the `binding` subresource does. No-op
    /// for a pod already bound.
    pub(crate) fn bind_pod(&mut self, key: &Key, node: &str) -> Result<Value, ApiError> {
        let old = self.current(key)?;
        if old["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            return Ok(old);
        }
        let mut new = old.clone();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("nodeName".into(), json!(node));
        }
        let condition = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": ids::now()});
        let status_patch = json!({"status": {"conditions": [condition]}});
        let new = strategic_merge(Resource::Pods, &new, &status_patch)
            .map_err(|e| ApiError::internal(e.0))?;
        Ok(self.commit(key, new, Some(old)))
    }

    fn dependents_of(&self, owner_uid: &str) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(_, o)| owner_refs(o).iter().any(|r| r.uid == owner_uid))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn orphan_dependents(&mut self, owner_uid: &str) {
        for key in self.dependents_of(owner_uid) {
            if let Some(old) = self.objects.get(&key).cloned() {
                let mut new = old.clone();
                remove_owner_refs(&mut new, &[owner_uid.to_owned()]);
                self.commit(&key, new, Some(old));
            }
        }
    }

    /// Whether an owner reference names a stored object, or a kind this
    /// server does not store (which it cannot judge, so keeps).
    fn owner_present(&self, namespace: &str, owner: &OwnerRef) -> bool {
        match Resource::from_kind(&owner.kind) {
            Some(resource) if owner.api_version == "v1" => self
                .objects
                .get(&Key::new(resource, namespace, &owner.name))
                .is_some_and(|o| meta_str(o, "uid") == Some(owner.uid.as_str())),
            _ => true,
        }
    }

    /// The garbage collector, run to a fixed point after every write:
    /// an object all of whose owners are gone is deleted (background
    /// propagation); one with some owners gone loses those references.
    /// The real collector does the same asynchronously, shortly after.
    fn collect_garbage(&mut self) {
        enum Action {
            Delete(Key),
            Strip(Key, Vec<String>),
        }
        // Each action deletes, marks deleting, or strips references, so
        // this terminates; the bound guards against a logic error.
        for _ in 0..10_000 {
            let mut action = None;
            for (key, object) in &self.objects {
                let refs = owner_refs(object);
                if refs.is_empty() {
                    continue;
                }
                let gone: Vec<String> = refs
                    .iter()
                    .filter(|r| !self.owner_present(&key.namespace, r))
                    .map(|r| r.uid.clone())
                    .collect();
                if gone.is_empty() {
                    continue;
                }
                if gone.len() < refs.len() {
                    action = Some(Action::Strip(key.clone(), gone));
                    break;
                }
                if !is_deleting(object) {
                    action = Some(Action::Delete(key.clone()));
                    break;
                }
            }
            match action {
                None => return,
                Some(Action::Delete(key)) => {
                    self.delete_one(&key, None);
                }
                Some(Action::Strip(key, uids)) => {
                    if let Some(old) = self.objects.get(&key).cloned() {
                        let mut new = old.clone();
                        remove_owner_refs(&mut new, &uids);
                        self.commit(&key, new, Some(old));
                    }
                }
            }
        }
        tracing::error!("garbage collection did not settle");
    }
}

/// Pods only terminate gracefully when a kubelet runs them: unscheduled or
/// finished pods are deleted at once, as the real pod strategy does.
fn pod_runs_on_a_node(pod: &Value) -> bool {
    let scheduled = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    scheduled && !finished
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    }

    fn key(name: &str) -> Key {
        Key::new(Resource::Pods, "ns", name)
    }

    #[test]
    fn every_write_bumps_the_version_once_and_is_logged() {
        let mut s = Store::new(Retention::All);
        let created = s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        assert_eq!(created["metadata"]["resourceVersion"], "1");
        s.update_with(&key("a"), |o| {
            o["metadata"]["labels"] = json!({"x": "y"});
        })
        .unwrap();
        assert_eq!(s.rv(), 2);
        // A write that changes nothing changes no version.
        s.update_with(&key("a"), |_| {}).unwrap();
        assert_eq!(s.rv(), 2);
        s.delete(&key("a"), &DeleteOptions::default()).unwrap();
        let changes: Vec<Change> = s.changes_after(0).unwrap().map(|e| e.change).collect();
        assert_eq!(changes, [Change::Added, Change::Modified, Change::Deleted]);
        assert_eq!(s.changes_after(2).unwrap().count(), 1);
    }

    #[test]
    fn retention_compacts_the_log() {
        let mut s = Store::new(Retention::Last(1));
        s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        s.create(Resource::Pods, "ns", pod("b"), false).unwrap();
        assert_eq!(s.changes_after(0).err(), Some(1));
        assert_eq!(s.changes_after(1).unwrap().count(), 1);
        s.compact();
        assert_eq!(s.changes_after(1).err(), Some(2));
    }

    #[test]
    fn main_resource_updates_keep_the_status() {
        let mut s = Store::new(Retention::All);
        s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        let out = s
            .update_with(&key("a"), |o| o["status"] = json!({"phase": "Running"}))
            .unwrap();
        assert_eq!(out["status"]["phase"], "Pending");
        let out = s
            .update_status(&key("a"), |o| {
                o["status"] = json!({"phase": "Running"});
                o["metadata"]["labels"] = json!({"ignored": "yes"});
            })
            .unwrap();
        assert_eq!(out["status"]["phase"], "Running");
        assert!(out["metadata"].get("labels").is_none());
    }

    #[test]
    fn finalizers_hold_deletion_until_cleared() {
        let mut s = Store::new(Retention::All);
        let mut p = pod("a");
        p["metadata"]["finalizers"] = json!(["x.io/hold"]);
        s.create(Resource::Pods, "ns", p, false).unwrap();
        let forced = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        let marked = s.delete(&key("a"), &forced).unwrap();
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        assert!(
            s.get(&key("a")).is_some(),
            "finalizers hold even a forced delete"
        );
        let err = s
            .update_with(&key("a"), |o| {
                o["metadata"]["finalizers"] = json!(["x.io/hold", "y.io/new"])
            })
            .unwrap_err();
        assert_eq!(err.code(), 422);
        s.update_with(&key("a"), |o| o["metadata"]["finalizers"] = json!([]))
            .unwrap();
        assert!(s.get(&key("a")).is_none());
    }

    #[test]
    fn deleting_an_owner_collects_its_dependents() {
        let mut s = Store::new(Retention::All);
        let owner = s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        let svc = json!({"metadata": {"name": "s", "ownerReferences": [{"apiVersion": "v1",
            "kind": "Pod", "name": "a", "uid": owner["metadata"]["uid"]}]},
            "spec": {"clusterIP": "None"}});
        s.create(Resource::Services, "ns", svc, false).unwrap();
        s.delete(&key("a"), &DeleteOptions::default()).unwrap();
        assert!(s.get(&Key::new(Resource::Services, "ns", "s")).is_none());
    }

    #[test]
    fn graceful_pod_deletion_waits_for_the_kubelet_or_force() {
        let mut s = Store::new(Retention::All);
        s.graceful_pod_deletion = true;
        s.create(Resource::Pods, "ns", pod("a"), false).unwrap();
        s.bind_pod(&key("a"), "node").unwrap();
        let marked = s.delete(&key("a"), &DeleteOptions::default()).unwrap();
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(s.get(&key("a")).is_some());
        let forced = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        s.delete(&key("a"), &forced).unwrap();
        assert!(s.get(&key("a")).is_none());
    }
}
