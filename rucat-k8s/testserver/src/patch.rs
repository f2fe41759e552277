//! The three patch formats the real server takes: JSON merge patch
//! (RFC 7386), strategic merge patch, and JSON patch (RFC 6902).
//!
//! Strategic merge differs from a merge patch only for lists: lists the
//! Kubernetes schema marks `patchStrategy: merge` are merged by their merge
//! key (containers by `name`, conditions by `type`, …) or, for lists of
//! scalars like `metadata.finalizers`, unioned. That difference matters —
//! a strategic patch of `{"metadata":{"finalizers":[]}}` removes nothing —
//! so it is emulated for the fields of the served resources.

use serde_json::{Map, Value};

use crate::resource::Resource;

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PatchError(pub(crate) String);

/// RFC 7386: objects merge recursively, `null` deletes, anything else
/// (lists included) replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// How a list at a schema path is patched.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ListStrategy {
    Replace,
    MergeByKey(&'static str),
    Union,
}

/// The `patchStrategy`/`patchMergeKey` of the list at `path` (field names
/// from the object root, list levels skipped).
fn list_strategy(resource: Resource, path: &[String]) -> ListStrategy {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match (resource, p.as_slice()) {
        (_, ["metadata", "finalizers"]) => ListStrategy::Union,
        (_, ["metadata", "ownerReferences"]) => ListStrategy::MergeByKey("uid"),
        (Resource::Pods, ["spec", c]) if is_container_list(c) => ListStrategy::MergeByKey("name"),
        (Resource::Pods, ["spec", c, field]) if is_container_list(c) => match *field {
            "ports" => ListStrategy::MergeByKey("containerPort"),
            "env" => ListStrategy::MergeByKey("name"),
            "volumeMounts" => ListStrategy::MergeByKey("mountPath"),
            "volumeDevices" => ListStrategy::MergeByKey("devicePath"),
            _ => ListStrategy::Replace,
        },
        (
            Resource::Pods,
            [
                "spec",
                "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims",
            ],
        ) => ListStrategy::MergeByKey("name"),
        (Resource::Pods, ["spec", "hostAliases"]) => ListStrategy::MergeByKey("ip"),
        (Resource::Pods, ["spec", "topologySpreadConstraints"]) => {
            ListStrategy::MergeByKey("topologyKey")
        }
        (Resource::Pods, ["status", "podIPs" | "hostIPs"]) => ListStrategy::MergeByKey("ip"),
        (Resource::Pods, ["status", "resourceClaimStatuses"]) => ListStrategy::MergeByKey("name"),
        (Resource::Pods | Resource::Services, ["status", "conditions"]) => {
            ListStrategy::MergeByKey("type")
        }
        (Resource::Services, ["spec", "ports"]) => ListStrategy::MergeByKey("port"),
        _ => ListStrategy::Replace,
    }
}

fn is_container_list(field: &str) -> bool {
    matches!(
        field,
        "containers" | "initContainers" | "ephemeralContainers"
    )
}

/// Applies a strategic merge patch, with the `$patch` (`replace`,
/// `delete`), `$deleteFromPrimitiveList/…` and `$retainKeys` directives;
/// `$setElementOrder/…` is accepted and ignored (list order is kept as
/// stored, new items appended).
pub(crate) fn strategic_merge(
    resource: Resource,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError(
            "a strategic merge patch must be a JSON object".into(),
        ));
    }
    let merged = merge_value(resource, &mut Vec::new(), Some(target), patch)?;
    Ok(merged.unwrap_or_else(|| Value::Object(Map::new())))
}

/// Returns `None` when the patch deletes the value.
fn merge_value(
    resource: Resource,
    path: &mut Vec<String>,
    target: Option<&Value>,
    patch: &Value,
) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(p) => merge_map(resource, path, target, p),
        Value::Array(items) => {
            let current = target
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let merged = match list_strategy(resource, path) {
                ListStrategy::Replace => items
                    .iter()
                    .map(|i| merge_value(resource, path, None, i))
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>, _>>()?,
                ListStrategy::Union => {
                    let mut out = current.to_vec();
                    for i in items {
                        if !out.contains(i) {
                            out.push(i.clone());
                        }
                    }
                    out
                }
                ListStrategy::MergeByKey(key) => merge_keyed(resource, path, current, items, key)?,
            };
            Ok(Some(Value::Array(merged)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

fn merge_map(
    resource: Resource,
    path: &mut Vec<String>,
    target: Option<&Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Value>, PatchError> {
    match patch.get("$patch").map(|d| d.as_str()) {
        None => {}
        Some(Some("delete")) => return Ok(None),
        Some(Some("replace")) => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            return merge_map(resource, path, None, &replaced);
        }
        Some(other) => {
            return Err(PatchError(format!("unknown patch type: {other:?}")));
        }
    }
    let mut out = match target {
        Some(Value::Object(t)) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = v.as_array().map(Vec::as_slice).unwrap_or_default();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        path.push(k.clone());
        let merged = merge_value(resource, path, out.get(k), v);
        path.pop();
        match merged? {
            Some(m) => {
                out.insert(k.clone(), m);
            }
            None => {
                out.remove(k);
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        out.retain(|k, _| keep.iter().any(|r| r.as_str() == Some(k)));
    }
    Ok(Some(Value::Object(out)))
}

fn merge_keyed(
    resource: Resource,
    path: &mut Vec<String>,
    current: &[Value],
    items: &[Value],
    key: &str,
) -> Result<Vec<Value>, PatchError> {
    let directive = |i: &Value| i.get("$patch").and_then(Value::as_str).map(str::to_owned);
    if items
        .iter()
        .any(|i| directive(i).as_deref() == Some("replace"))
    {
        return items
            .iter()
            .filter(|i| directive(i).as_deref() != Some("replace"))
            .map(|i| merge_value(resource, path, None, i))
            .filter_map(Result::transpose)
            .collect();
    }
    let mut out = current.to_vec();
    for item in items {
        let Some(id) = item.get(key) else {
            return Err(PatchError(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        let position = out.iter().position(|o| o.get(key) == Some(id));
        if directive(item).as_deref() == Some("delete") {
            out.retain(|o| o.get(key) != Some(id));
            continue;
        }
        let merged = merge_value(resource, path, position.map(|p| &out[p]), item)?;
        match (position, merged) {
            (Some(p), Some(m)) => out[p] = m,
            (Some(p), None) => {
                out.remove(p);
            }
            (None, Some(m)) => out.push(m),
            (None, None) => {}
        }
    }
    Ok(out)
}

/// RFC 6902 JSON patch: `add`, `remove`, `replace`, `move`, `copy`, `test`.
pub(crate) fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError("a JSON patch must be a JSON array of operations".into()))?;
    let mut doc = target.clone();
    for op in ops {
        let name = op["op"].as_str().unwrap_or_default();
        let path = op["path"]
            .as_str()
            .ok_or_else(|| PatchError(format!("operation {op} has no path")))?;
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| PatchError(format!("operation {op} has no from")))
        };
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError(format!("operation {op} has no value")))
        };
        match name {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let moved = remove(&mut doc, from()?)?;
                add(&mut doc, path, moved)?;
            }
            "copy" => {
                let copied = doc.pointer(from()?).cloned().ok_or_else(|| {
                    PatchError(format!("missing value at {}", from().unwrap_or_default()))
                })?;
                add(&mut doc, path, copied)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(PatchError(format!("testing value {path} failed")));
                }
            }
            other => return Err(PatchError(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(doc)
}

fn split_pointer(path: &str) -> Result<(String, String), PatchError> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| PatchError(format!("invalid JSON pointer {path:?}")))?;
    Ok((
        parent.to_owned(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let index = if last == "-" {
                list.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= list.len())
                    .ok_or_else(|| PatchError(format!("invalid index {last:?} in {path:?}")))?
            };
            list.insert(index, value);
            Ok(())
        }
        _ => Err(PatchError(format!("doc is missing path: {path:?}"))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split_pointer(path)?;
    let missing = || PatchError(format!("doc is missing path: {path:?}"));
    match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => map.remove(&last).ok_or_else(missing),
        Some(Value::Array(list)) => {
            let index = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < list.len())
                .ok_or_else(missing)?;
            Ok(list.remove(index))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merge_unions_finalizers_and_null_clears_them() {
        let obj = json!({"metadata": {"finalizers": ["a"]}});
        let kept = strategic_merge(
            Resource::Pods,
            &obj,
            &json!({"metadata": {"finalizers": []}}),
        )
        .unwrap();
        assert_eq!(kept["metadata"]["finalizers"], json!(["a"]));
        let added = strategic_merge(
            Resource::Pods,
            &obj,
            &json!({"metadata": {"finalizers": ["b", "a"]}}),
        )
        .unwrap();
        assert_eq!(added["metadata"]["finalizers"], json!(["a", "b"]));
        let cleared = strategic_merge(
            Resource::Pods,
            &obj,
            &json!({"metadata": {"finalizers": null}}),
        )
        .unwrap();
        assert!(cleared["metadata"].get("finalizers").is_none());
        let deleted = strategic_merge(
            Resource::Pods,
            &obj,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(deleted["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn strategic_merge_merges_conditions_by_type() {
        let pod = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}});
        let out = strategic_merge(Resource::Pods, &pod, &patch).unwrap();
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"},
                   {"type": "Initialized", "status": "True"}])
        );
    }

    #[test]
    fn strategic_merge_directives() {
        let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let deleted = strategic_merge(
            Resource::Pods,
            &pod,
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(
            deleted["spec"]["containers"],
            json!([{"name": "b", "image": "y"}])
        );
        let replaced = strategic_merge(
            Resource::Pods,
            &pod,
            &json!({"spec": {"containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}]}}),
        )
        .unwrap();
        assert_eq!(
            replaced["spec"]["containers"],
            json!([{"name": "c", "image": "z"}])
        );
        let err = strategic_merge(
            Resource::Pods,
            &pod,
            &json!({"spec": {"containers": [{"image": "q"}]}}),
        );
        assert!(err.is_err());
    }

    #[test]
    fn unlisted_lists_are_replaced() {
        let pod = json!({"spec": {"containers": [{"name": "a", "args": ["1", "2"]}]}});
        let out = strategic_merge(
            Resource::Pods,
            &pod,
            &json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["3"]));
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]}});
        let out = json_patch(
            &doc,
            &json!([
                {"op": "test", "path": "/metadata/labels/a", "value": "1"},
                {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
                {"op": "remove", "path": "/metadata/finalizers/0"},
                {"op": "replace", "path": "/metadata/labels/a", "value": "3"},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "y"},
                {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/d"},
                {"op": "move", "from": "/metadata/labels/d", "path": "/metadata/labels/e"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a": "3", "b/c": "2", "e": "3"}, "finalizers": ["y"]}})
        );
        assert!(
            json_patch(
                &doc,
                &json!([{"op": "test", "path": "/metadata/labels/a", "value": "2"}])
            )
            .is_err()
        );
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
