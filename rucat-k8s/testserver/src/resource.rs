//! The resource types the server knows, and what is fixed per type: names
//! in URLs, kinds, whether there is a status subresource, which fields a
//! field selector may name, and the typed schema every write must fit.

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::status::ApiError;

/// A core/v1 resource type served by the test server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `pods` (`Pod`), with a `status` subresource.
    Pods,
    /// `services` (`Service`), with a `status` subresource.
    Services,
    /// `configmaps` (`ConfigMap`).
    ConfigMaps,
    /// `secrets` (`Secret`).
    Secrets,
}

impl Resource {
    /// Every served resource type.
    pub const ALL: [Resource; 4] = [
        Resource::Pods,
        Resource::Services,
        Resource::ConfigMaps,
        Resource::Secrets,
    ];

    /// The lower-case plural used in URLs, e.g. `pods`.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Services => "services",
            Resource::ConfigMaps => "configmaps",
            Resource::Secrets => "secrets",
        }
    }

    /// The `kind` of one object, e.g. `Pod`.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::Services => "Service",
            Resource::ConfigMaps => "ConfigMap",
            Resource::Secrets => "Secret",
        }
    }

    /// The `kind` of a list, e.g. `PodList`.
    pub fn list_kind(self) -> String {
        format!("{}List", self.kind())
    }

    /// The resource whose URL plural is `plural`.
    pub fn from_plural(plural: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.plural() == plural)
    }

    /// The resource whose object kind is `kind` (for owner references).
    pub(crate) fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.kind() == kind)
    }

    pub(crate) fn singular(self) -> &'static str {
        match self {
            Resource::Pods => "pod",
            Resource::Services => "service",
            Resource::ConfigMaps => "configmap",
            Resource::Secrets => "secret",
        }
    }

    pub(crate) fn short_names(self) -> &'static [&'static str] {
        match self {
            Resource::Pods => &["po"],
            Resource::Services => &["svc"],
            Resource::ConfigMaps => &["cm"],
            Resource::Secrets => &[],
        }
    }

    /// Whether writes to the main resource leave `.status` alone and a
    /// `/status` subresource exists, as for the real pods and services.
    pub fn has_status(self) -> bool {
        matches!(self, Resource::Pods | Resource::Services)
    }

    /// The fields a field selector may name; the real server answers 400
    /// for any other.
    pub(crate) fn selectable_fields(self) -> &'static [&'static str] {
        match self {
            Resource::Pods => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Resource::Secrets => &["metadata.name", "metadata.namespace", "type"],
            Resource::Services | Resource::ConfigMaps => &["metadata.name", "metadata.namespace"],
        }
    }

    /// The value a field selector compares, rendered as the real server
    /// does: absent fields are the empty string, booleans are words.
    pub(crate) fn field_value(self, object: &Value, field: &str) -> String {
        let mut current = object;
        for part in field.split('.') {
            match current.get(part) {
                Some(next) => current = next,
                None => return String::new(),
            }
        }
        match current {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        }
    }

    /// Decodes `object` into the k8s-openapi type and back, so a write the
    /// real server could not decode fails the same way (400), and fields
    /// Kubernetes 1.33 does not know are dropped, as the real server drops
    /// them.
    pub(crate) fn normalize(self, object: Value) -> Result<Value, ApiError> {
        match self {
            Resource::Pods => roundtrip::<Pod>(self, object),
            Resource::Services => roundtrip::<Service>(self, object),
            Resource::ConfigMaps => roundtrip::<ConfigMap>(self, object),
            Resource::Secrets => roundtrip::<Secret>(self, object),
        }
    }
}

fn roundtrip<T: DeserializeOwned + serde::Serialize>(
    resource: Resource,
    object: Value,
) -> Result<Value, ApiError> {
    let typed: T = serde_json::from_value(object).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {e}",
            kind = resource.kind()
        ))
    })?;
    serde_json::to_value(typed)
        .map_err(|e| ApiError::internal(format!("re-encoding {}: {e}", resource.kind())))
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}

impl FromStr for Resource {
    type Err = UnknownResource;

    /// Accepts the plural (`pods`), the singular (`pod`) or the kind (`Pod`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.plural() == s || r.singular() == s || r.kind() == s)
            .ok_or_else(|| UnknownResource(s.to_owned()))
    }
}

/// A name that is not one of the served [`Resource`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the test server does not serve {0:?}")]
pub struct UnknownResource(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_parse_in_every_spelling() {
        for s in ["pods", "pod", "Pod"] {
            assert_eq!(s.parse::<Resource>(), Ok(Resource::Pods));
        }
        assert!("deployments".parse::<Resource>().is_err());
    }

    #[test]
    fn field_values_render_like_the_real_server() {
        let pod = json!({"spec": {"hostNetwork": true}, "status": {"phase": "Running"}});
        assert_eq!(Resource::Pods.field_value(&pod, "status.phase"), "Running");
        assert_eq!(Resource::Pods.field_value(&pod, "spec.hostNetwork"), "true");
        assert_eq!(Resource::Pods.field_value(&pod, "spec.nodeName"), "");
    }

    #[test]
    fn normalize_rejects_wrong_types_and_drops_unknown_fields() {
        let bad = json!({"metadata": {"name": "p"}, "spec": {"containers": "no"}});
        let err = Resource::Pods.normalize(bad).unwrap_err();
        assert_eq!(err.code(), 400);
        let odd = json!({"metadata": {"name": "c"}, "data": {"a": "b"}, "bogus": 1});
        let out = Resource::ConfigMaps.normalize(odd).unwrap();
        assert!(out.get("bogus").is_none());
        assert_eq!(out["data"]["a"], "b");
    }
}
