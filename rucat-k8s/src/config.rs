//! `"resource_manager": {"Kubernetes": {...}}`: where and how engines run on
//! a cluster. Every field has a default, so `{"Kubernetes": {}}` runs
//! `apache/spark:{version}` drivers in the `default` namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Namespace of the engines' driver pods, services and executors.
    pub namespace: String,
    /// The driver and executor image for a Spark version; versions not listed
    /// use `image_template`.
    pub images: BTreeMap<String, String>,
    /// Image for versions not in `images`; `{version}` is replaced.
    pub image_template: String,
    pub image_pull_policy: Option<String>,
    /// Service account of the driver pods. The driver creates its executors,
    /// so it needs create/delete/list/watch on pods, services and configmaps
    /// in the namespace.
    pub service_account: Option<String>,
    /// Spark 3.5 images do not ship the Spark Connect server: it is fetched
    /// with `--packages` from these Maven coordinates (`{version}` replaced),
    /// unless the image for that version already has it (set this to "").
    /// Spark 4 bundles it and ignores this.
    pub spark35_connect_package: String,
    /// Where `spark-submit` is inside the image.
    pub spark_submit: String,
    /// Overrides for the driver pod.
    pub driver: PodOverrides,
    /// A driver pod still terminating this long (seconds) after its grace
    /// period ended is deleted again with a zero grace period, so a lost node
    /// cannot hold an engine in `TerminateInProgress` for ever.
    pub force_delete_after_secs: u64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            images: BTreeMap::new(),
            image_template: "apache/spark:{version}".to_owned(),
            image_pull_policy: None,
            service_account: None,
            spark35_connect_package: "org.apache.spark:spark-connect_2.12:{version}".to_owned(),
            spark_submit: "/opt/spark/bin/spark-submit".to_owned(),
            driver: PodOverrides::default(),
            force_delete_after_secs: 60,
        }
    }
}

/// What an operator may change on the driver pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PodOverrides {
    pub resources: Option<ResourceRequirements>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    /// Added to rucat's own labels (which win on a clash).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// How long the driver gets to stop (Kubernetes' default is 30 s).
    pub termination_grace_period_secs: Option<i64>,
}

impl KubernetesConfig {
    /// The image that runs a Spark version.
    pub fn image_for(&self, version: &str) -> String {
        self.images
            .get(version)
            .cloned()
            .unwrap_or_else(|| self.image_template.replace("{version}", version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_config_has_working_defaults() {
        let config: KubernetesConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, KubernetesConfig::default());
        assert_eq!(config.image_for("4.0.1"), "apache/spark:4.0.1");
    }

    #[test]
    fn images_per_version_win_over_the_template() {
        let config: KubernetesConfig = serde_json::from_str(
            r#"{"images": {"3.5.3": "registry.local/spark-connect:3.5.3"}, "image_template": "mirror/spark:{version}"}"#,
        )
        .unwrap();
        assert_eq!(
            config.image_for("3.5.3"),
            "registry.local/spark-connect:3.5.3"
        );
        assert_eq!(config.image_for("4.0.1"), "mirror/spark:4.0.1");
    }

    #[test]
    fn overrides_parse_as_kubernetes_json() {
        let config: KubernetesConfig = serde_json::from_str(
            r#"{"driver": {
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
                "node_selector": {"pool": "spark"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "spark", "effect": "NoSchedule"}],
                "labels": {"team": "data"},
                "annotations": {"cost-center": "42"}
            }}"#,
        )
        .unwrap();
        assert_eq!(
            config.driver.tolerations[0].key.as_deref(),
            Some("dedicated")
        );
        assert_eq!(config.driver.node_selector["pool"], "spark");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<KubernetesConfig>(r#"{"namespce": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("namespce"), "{err}");
    }
}
