//! `"resource_manager": {"Kubernetes": {...}}`: where and how engines run on
//! a cluster. Every field has a default, so `{"Kubernetes": {}}` runs
//! `apache/spark:{version}` drivers in the `default` namespace.
//!
//! The top-level image keys are Spark's (they predate other kinds, and stay
//! as they are); other kinds' images are under `kinds`, by kind and then by
//! the component the kind names (see
//! [`rucat_core::kind::EngineKind::kube_images`]), each with the same
//! `images`/`image_template` pair as Spark's:
//!
//! ```json
//! {"kinds": {
//!     "Sail": {"server": {"image_template": "registry.local/sail:{version}"}},
//!     "Ballista": {"scheduler": {"images": {"50.0.0": "registry.local/ballista-scheduler:50"}},
//!                  "executor": {"image_template": "registry.local/ballista-executor:{version}"}}
//! }}
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use rucat_core::kind::{EngineKind, Kinds, spark};
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
    /// The other kinds than Spark, by kind and then by component (see
    /// [`ComponentConfig`]). A component not listed uses the kind's default
    /// image and the `driver` overrides.
    pub kinds: BTreeMap<String, BTreeMap<String, ComponentConfig>>,
}

/// One component of a kind (e.g. Ballista's `executor`): its image per
/// version, and its resources when they differ from the other pods' (a
/// Ballista executor does the work its scheduler only plans).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentConfig {
    /// The image for a version; versions not listed use `image_template`.
    pub images: BTreeMap<String, String>,
    /// `{version}` is replaced; if unset, the kind's default template.
    pub image_template: Option<String>,
    /// The container's requests and limits, instead of `driver.resources`.
    pub resources: Option<ResourceRequirements>,
}

/// A `kinds` entry that names no known kind or component: a typo that
/// would otherwise silently run the default image.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("resource_manager.Kubernetes.kinds: {0}")]
pub struct KindsConfigError(String);

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
            kinds: BTreeMap::new(),
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

impl KubernetesConfig {
    /// The image of `kind`'s component `image` for `version`: the
    /// operator's choice, else the kind's default template. Spark's are the
    /// top-level `images` and `image_template`.
    pub fn kind_image_for(&self, kind: &dyn EngineKind, image: &str, version: &str) -> String {
        if kind.name() == spark::NAME {
            return self.image_for(version);
        }
        let choice = self.kinds.get(kind.name()).and_then(|c| c.get(image));
        if let Some(fixed) = choice.and_then(|c| c.images.get(version)) {
            return fixed.clone();
        }
        let template = choice
            .and_then(|c| c.image_template.as_deref())
            .or_else(|| {
                kind.kube_images()
                    .iter()
                    .find(|i| i.component == image)
                    .map(|i| i.default_template)
            })
            // A plan naming an image its kind does not list: the kind's bug,
            // shown in the pod's pull error rather than a panic.
            .unwrap_or("{version}");
        template.replace("{version}", version)
    }

    /// The kind's own settings (see
    /// [`rucat_core::kind::kube::KubeContext::settings`]): Spark's are
    /// top-level keys, which predate other kinds; other kinds have none yet.
    pub fn kind_settings(&self, kind: &dyn EngineKind) -> BTreeMap<String, String> {
        if kind.name() != spark::NAME {
            return BTreeMap::new();
        }
        BTreeMap::from([
            (
                spark::k8s::SPARK_SUBMIT.0.to_owned(),
                self.spark_submit.clone(),
            ),
            (
                spark::k8s::SPARK35_CONNECT_PACKAGE.0.to_owned(),
                self.spark35_connect_package.clone(),
            ),
        ])
    }

    /// The resources of `kind`'s component `image`: its own, else the
    /// `driver` overrides'.
    pub fn kind_resources_for(
        &self,
        kind: &dyn EngineKind,
        image: &str,
    ) -> Option<ResourceRequirements> {
        self.kinds
            .get(kind.name())
            .and_then(|c| c.get(image))
            .and_then(|c| c.resources.clone())
            .or_else(|| self.driver.resources.clone())
    }

    /// Whether every `kinds` entry names a kind of `kinds` and one of its
    /// images; Spark's images are the top-level keys.
    pub fn check_kinds(&self, kinds: &Kinds) -> Result<(), KindsConfigError> {
        for (name, images) in &self.kinds {
            let Some(kind) = kinds
                .by_name(name)
                .filter(|k| !k.kube_images().is_empty() && k.name() != spark::NAME)
            else {
                return Err(KindsConfigError(format!(
                    "{name:?} is not a kind with images of its own on Kubernetes (known: {}; Spark's are the top-level images and image_template)",
                    kinds
                        .iter()
                        .filter(|k| !k.kube_images().is_empty() && k.name() != spark::NAME)
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            for component in images.keys() {
                let known: Vec<&str> = kind.kube_images().iter().map(|i| i.component).collect();
                if !known.contains(&component.as_str()) {
                    return Err(KindsConfigError(format!(
                        "{name} has no image {component:?}; its images are {}",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(())
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
    fn kinds_images_per_component_and_version_fall_back_to_the_kinds_default() {
        let config: KubernetesConfig = serde_json::from_str(
            r#"{"kinds": {"Sail": {"server": {"images": {"0.7.2": "r/sail:fixed"}, "image_template": "m/sail:{version}"}}}}"#,
        )
        .unwrap();
        let sail = rucat_core::kind::sail::Sail;
        assert_eq!(
            config.kind_image_for(&sail, "server", "0.7.2"),
            "r/sail:fixed"
        );
        assert_eq!(
            config.kind_image_for(&sail, "server", "0.8.0"),
            "m/sail:0.8.0"
        );
        assert_eq!(
            KubernetesConfig::default().kind_image_for(&sail, "server", "0.8.0"),
            "lakehq/sail:0.8.0"
        );
        assert_eq!(config.check_kinds(Kinds::builtin()), Ok(()));
    }

    #[test]
    fn kinds_entries_that_name_nothing_are_refused() {
        for (json, says) in [
            (r#"{"kinds": {"Sali": {}}}"#, "\"Sali\" is not a kind"),
            (r#"{"kinds": {"Spark": {}}}"#, "top-level images"),
            (
                r#"{"kinds": {"Sail": {"sever": {}}}}"#,
                "Sail has no image \"sever\"",
            ),
        ] {
            let config: KubernetesConfig = serde_json::from_str(json).unwrap();
            let err = config.check_kinds(Kinds::builtin()).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
        let typo = serde_json::from_str::<KubernetesConfig>(
            r#"{"kinds": {"Sail": {"server": {"image_templat": "x"}}}}"#,
        );
        assert!(typo.is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<KubernetesConfig>(r#"{"namespce": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("namespce"), "{err}");
    }
}
