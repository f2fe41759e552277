//! Defaulting, as the real server applies it to every write (and its
//! admission plugins apply to every create), so objects read back look like
//! a cluster's: a pod gets `restartPolicy`, `dnsPolicy`, per-container
//! pull policy…, a service gets a cluster IP, a created pod's status is
//! reset to `Pending` with its QoS class.

use serde_json::{Map, Value, json};

use crate::resource::Resource;

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_owned(), value);
    }
}

fn object_mut<'a>(parent: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let map = parent.as_object_mut()?;
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_owned(), json!({}));
    }
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// Images without a tag, or tagged `latest`, are pulled always; others if
/// not present (digests count as tags).
fn pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let Some(c) = c.as_object_mut() else { return };
    if let Some(image) = c.get("image").and_then(Value::as_str) {
        let policy = pull_policy(image);
        set_default(c, "imagePullPolicy", json!(policy));
    }
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut)
        && let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned()
    {
        // Requests default to limits.
        let requests = object_mut_in(resources, "requests");
        for (k, v) in limits {
            set_default(requests, &k, v);
        }
    }
    for port in c
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        set_default(port, "protocol", json!("TCP"));
    }
}

fn object_mut_in<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_owned(), json!({}));
    }
    match map.get_mut(key) {
        Some(Value::Object(inner)) => inner,
        _ => unreachable!("just inserted an object"),
    }
}

fn default_pod(pod: &mut Value) {
    let Some(spec) = object_mut(pod, "spec") else {
        return;
    };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        set_default(spec, "serviceAccount", sa);
    }
    for field in ["containers", "initContainers"] {
        for c in spec
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            default_container(c);
        }
    }
}

/// `BestEffort` without any cpu/memory request or limit, `Guaranteed` when
/// every container's cpu and memory limits equal its requests, else
/// `Burstable`.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod["spec"][f].as_array())
        .flatten()
        .collect();
    let quantity =
        |c: &Value, kind: &str, r: &str| c["resources"][kind][r].as_str().map(str::to_owned);
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            ["cpu", "memory"]
                .iter()
                .any(|r| quantity(c, k, r).is_some())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = quantity(c, "limits", r);
            limit.is_some() && limit == quantity(c, "requests", r)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn default_service(service: &mut Value) {
    let Some(spec) = object_mut(service, "spec") else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    if !external {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        set_default(port, "protocol", json!("TCP"));
        if let Some(p) = port.get("port").cloned() {
            set_default(port, "targetPort", p);
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn default_secret(secret: &mut Value) {
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    set_default(map, "type", json!("Opaque"));
    // stringData is write-only: merged into data, never stored.
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = object_mut_in(map, "data");
        for (k, v) in string_data {
            data.insert(k, json!(base64(v.as_str().unwrap_or_default().as_bytes())));
        }
    }
}

/// Defaulting applied to every write of the main resource.
pub(crate) fn on_write(resource: Resource, object: &mut Value) {
    match resource {
        Resource::Pods => default_pod(object),
        Resource::Services => default_service(object),
        Resource::Secrets => default_secret(object),
        Resource::ConfigMaps => {}
    }
}

/// Defaulting and admission applied to creates only: the service account,
/// priority and default tolerations admission plugins for pods, cluster
/// IP allocation for services, and the reset status every created pod or
/// service starts with.
pub(crate) fn on_create(
    resource: Resource,
    object: &mut Value,
    allocate_ip: impl FnOnce() -> String,
) {
    on_write(resource, object);
    match resource {
        Resource::Pods => {
            if let Some(spec) = object_mut(object, "spec") {
                set_default(spec, "serviceAccountName", json!("default"));
                set_default(spec, "serviceAccount", json!("default"));
                set_default(spec, "priority", json!(0));
                set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
                set_default(
                    spec,
                    "tolerations",
                    json!([
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                    ]),
                );
            }
            let qos = qos_class(object);
            if let Some(map) = object.as_object_mut() {
                map.insert(
                    "status".into(),
                    json!({"phase": "Pending", "qosClass": qos}),
                );
            }
        }
        Resource::Services => {
            if let Some(spec) = object_mut(object, "spec") {
                let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
                if !external {
                    let ip = match spec.get("clusterIP").and_then(Value::as_str) {
                        Some(ip) if !ip.is_empty() => ip.to_owned(),
                        _ => allocate_ip(),
                    };
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                    set_default(spec, "ipFamilies", json!(["IPv4"]));
                    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                }
            }
            if let Some(map) = object.as_object_mut() {
                map.insert("status".into(), json!({"loadBalancer": {}}));
            }
        }
        Resource::ConfigMaps | Resource::Secrets => {}
    }
}

/// Defaulting applied to updates of the main resource: everything of
/// [`on_write`], plus the allocated service fields carried over from the
/// stored object when the update leaves them out.
pub(crate) fn on_update(resource: Resource, old: &Value, new: &mut Value) {
    on_write(resource, new);
    if resource == Resource::Services
        && let Some(spec) = object_mut(new, "spec")
    {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            let missing = spec
                .get(field)
                .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
            if missing && let Some(old_value) = old["spec"].get(field) {
                spec.insert(field.to_owned(), old_value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies() {
        assert_eq!(pull_policy("spark"), "Always");
        assert_eq!(pull_policy("spark:latest"), "Always");
        assert_eq!(pull_policy("spark:3.5"), "IfNotPresent");
        assert_eq!(pull_policy("reg:5000/spark"), "Always");
        assert_eq!(pull_policy("spark@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn created_pods_start_pending_with_a_qos_class() {
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "i:1",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": "Running"}});
        on_create(Resource::Pods, &mut pod, || unreachable!());
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "1"
        );
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn qos_classes() {
        let best = json!({"spec": {"containers": [{"resources": {}}]}});
        assert_eq!(qos_class(&best), "BestEffort");
        let burst = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&burst), "Burstable");
    }

    #[test]
    fn services_get_a_cluster_ip_unless_headless() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        on_create(Resource::Services, &mut svc, || "10.96.0.10".into());
        assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        on_create(Resource::Services, &mut headless, || unreachable!());
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let mut s = json!({"stringData": {"a": "hello", "b": "hi", "c": "h"}});
        on_write(Resource::Secrets, &mut s);
        assert_eq!(
            s,
            json!({"type": "Opaque", "data": {"a": "aGVsbG8=", "b": "aGk=", "c": "aA=="}})
        );
    }
}
