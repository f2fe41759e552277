//! The validation the real API server applies to writes (422 `Invalid`),
//! for the rules a resource manager plausibly trips over: object names,
//! label syntax, required pod/service fields, and what an update may not
//! change. Anything not checked here is accepted, so this errs towards
//! permissive.

use serde_json::{Value, json};

use crate::resource::Resource;
use crate::status::FieldError;

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: lower-case alphanumerics and '-', alphanumeric at both
/// ends, at most 63 characters.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum(c) || c == '-')
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// RFC 1035 label (service names): like an RFC 1123 label but starting
/// with a letter.
pub(crate) fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_name_part(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| ok(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(ok)
        && s.ends_with(ok)
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain.
pub(crate) fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty() && is_dns1123_subdomain(prefix) && is_name_part(name)
        }
        None => is_name_part(s),
    }
}

/// A label value: empty, or a name part of at most 63 characters.
pub(crate) fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

fn name_problem(resource: Resource, name: &str) -> Option<&'static str> {
    match resource {
        Resource::Services if !is_dns1035_label(name) => Some(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
        Resource::Pods | Resource::ConfigMaps | Resource::Secrets
            if !is_dns1123_subdomain(name) =>
        {
            Some(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        }
        _ => None,
    }
}

fn validate_metadata(resource: Resource, object: &Value, errors: &mut Vec<FieldError>) {
    let meta = &object["metadata"];
    if let Some(name) = meta["name"].as_str()
        && let Some(why) = name_problem(resource, name)
    {
        errors.push(FieldError::invalid("metadata.name", &json!(name), why));
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    &json!(k),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            if !v.as_str().is_some_and(is_label_value) {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        for k in annotations.keys().filter(|k| !is_qualified_name(k)) {
            errors.push(FieldError::invalid(
                "metadata.annotations",
                &json!(k),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
    }
    if let Some(finalizers) = meta["finalizers"].as_array() {
        for (i, f) in finalizers.iter().enumerate() {
            if !f.as_str().is_some_and(is_qualified_name) {
                errors.push(FieldError::invalid(
                    format!("metadata.finalizers[{i}]"),
                    f,
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
        }
    }
}

fn validate_containers(spec: &Value, field: &str, required: bool, errors: &mut Vec<FieldError>) {
    let containers = spec[field]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if required && containers.is_empty() {
        errors.push(FieldError::required(format!("spec.{field}")));
    }
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let path = format!("spec.{field}[{i}]");
        match c["name"].as_str() {
            None | Some("") => errors.push(FieldError::required(format!("{path}.name"))),
            Some(name) if !is_dns1123_label(name) => errors.push(FieldError::invalid(
                format!("{path}.name"),
                &json!(name),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            )),
            Some(name) if seen.contains(&name) => {
                errors.push(FieldError::duplicate(format!("{path}.name"), &json!(name)));
            }
            Some(name) => seen.push(name),
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            errors.push(FieldError::required(format!("{path}.image")));
        }
        for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
            let port = &p["containerPort"];
            if !port.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                errors.push(FieldError::invalid(
                    format!("{path}.ports[{j}].containerPort"),
                    port,
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
    }
}

fn validate_pod(pod: &Value, errors: &mut Vec<FieldError>) {
    let spec = &pod["spec"];
    validate_containers(spec, "containers", true, errors);
    validate_containers(spec, "initContainers", false, errors);
    let policy = &spec["restartPolicy"];
    if let Some(p) = policy.as_str()
        && !["Always", "OnFailure", "Never"].contains(&p)
    {
        errors.push(FieldError::not_supported(
            "spec.restartPolicy",
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
}

fn validate_service(service: &Value, errors: &mut Vec<FieldError>) {
    let spec = &service["spec"];
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !TYPES.contains(&kind) {
        errors.push(FieldError::not_supported(
            "spec.type",
            &spec["type"],
            &TYPES,
        ));
    }
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports = spec["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errors.push(FieldError::required("spec.ports"));
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        match p["name"].as_str() {
            None | Some("") if ports.len() > 1 => {
                errors.push(FieldError::required(format!("{path}.name")))
            }
            Some(name) if names.contains(&name) => {
                errors.push(FieldError::duplicate(format!("{path}.name"), &json!(name)));
            }
            Some(name) if !name.is_empty() && !is_dns1123_label(name) => {
                errors.push(FieldError::invalid(
                    format!("{path}.name"),
                    &json!(name),
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                ));
            }
            Some(name) => names.push(name),
            None => {}
        }
        if !p["port"].as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
            errors.push(FieldError::invalid(
                format!("{path}.port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
    if let Some(selector) = spec["selector"].as_object() {
        for (k, v) in selector {
            if !is_qualified_name(k) || !v.as_str().is_some_and(is_label_value) {
                errors.push(FieldError::invalid(
                    "spec.selector",
                    v,
                    "invalid label selector",
                ));
            }
        }
    }
}

/// Validates an object about to be stored (create or update).
pub(crate) fn validate(resource: Resource, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_metadata(resource, object, &mut errors);
    match resource {
        Resource::Pods => validate_pod(object, &mut errors),
        Resource::Services => validate_service(object, &mut errors),
        Resource::ConfigMaps | Resource::Secrets => {}
    }
    errors
}

/// The pod-spec fields an update may change; everything else is frozen
/// once the pod exists.
fn mutable_pod_spec_parts(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("activeDeadlineSeconds");
        map.remove("tolerations");
        map.remove("schedulingGates");
        for field in ["containers", "initContainers"] {
            if let Some(containers) = map.get_mut(field).and_then(Value::as_array_mut) {
                for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
    }
    spec
}

/// Checks what an update may not change, given the stored `old` and the
/// defaulted `new`.
pub(crate) fn validate_update(resource: Resource, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match resource {
        Resource::Pods => {
            if mutable_pod_spec_parts(&old["spec"]) != mutable_pod_spec_parts(&new["spec"]) {
                errors.push(FieldError::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        Resource::Services => {
            let (o, n) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
            if o != n {
                errors.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    n,
                    "may not change once set",
                ));
            }
        }
        Resource::ConfigMaps | Resource::Secrets => {
            if old.get("immutable") == Some(&json!(true)) && (old.get("data") != new.get("data")) {
                errors.push(FieldError::forbidden(
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("rucat-driver-1"));
        assert!(!is_dns1123_label("Rucat"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(is_dns1035_label("svc-1"));
        assert!(!is_dns1035_label("1svc"));
    }

    #[test]
    fn label_syntax() {
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("Engine_ID"));
        assert!(!is_qualified_name("/x"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(is_label_value(""));
        assert!(!is_label_value("has space"));
    }

    #[test]
    fn pods_need_containers_with_images() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        let errors = validate(Resource::Pods, &pod);
        assert_eq!(
            errors,
            vec![FieldError::required("spec.containers[0].image")]
        );
        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(
            validate(Resource::Pods, &pod),
            vec![FieldError::required("spec.containers")]
        );
    }

    #[test]
    fn headless_services_need_no_ports() {
        let svc = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None"}});
        assert!(validate(Resource::Services, &svc).is_empty());
        let svc = json!({"metadata": {"name": "s"}, "spec": {}});
        assert_eq!(
            validate(Resource::Services, &svc),
            vec![FieldError::required("spec.ports")]
        );
    }

    #[test]
    fn pod_spec_is_frozen_except_images() {
        let old = json!({"spec": {"containers": [{"name": "c", "image": "a"}]}});
        let image = json!({"spec": {"containers": [{"name": "c", "image": "b"}]}});
        let args = json!({"spec": {"containers": [{"name": "c", "image": "a", "args": ["x"]}]}});
        assert!(validate_update(Resource::Pods, &old, &image).is_empty());
        assert_eq!(validate_update(Resource::Pods, &old, &args).len(), 1);
    }
}
