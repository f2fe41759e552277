//! Spark's driver pod and service, as the Spark kind plans them
//! ([`rucat_core::kind::spark::k8s`]) and [`crate::plan`] builds them for
//! every kind, and the engine's token Secret: pure functions of the engine
//! spec and the configuration, tested against golden JSON (which did not
//! change when Spark's pods moved into its kind).
//!
//! The Secret holds the token of the engine's start, for kinds whose plan
//! reads it (Spark): never in the pod spec, which anyone who may read pods
//! can see. It is owned by the driver pod like the service.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rucat_core::kind::kube::KubePlan;
use rucat_core::kind::spark::{self, Spark};
use rucat_core::{EngineSpec, EngineToken};

use crate::config::KubernetesConfig;
use crate::{names, plan};

fn spark_plan(spec: &EngineSpec, config: &KubernetesConfig) -> KubePlan {
    plan::with_context(spec, &Spark, config, spark::k8s::plan)
}

/// The driver pod of a Spark engine.
pub fn driver_pod(spec: &EngineSpec, config: &KubernetesConfig) -> Pod {
    plan::main_pod(spec, &Spark, &spark_plan(spec, config), config)
}

/// `spark-submit` arguments of a Spark engine's driver.
pub fn spark_submit_args(spec: &EngineSpec, config: &KubernetesConfig) -> Vec<String> {
    spark_plan(spec, config).main.args
}

/// Metadata of an object that belongs to the driver pod (`pod_uid`), so
/// that deleting the pod garbage-collects it.
fn owned_by_the_pod(spec: &EngineSpec, config: &KubernetesConfig, pod_uid: &str) -> ObjectMeta {
    let name = names::object_name(&spec.id);
    ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(config.namespace.clone()),
        labels: Some(names::labels(&spec.id, names::DRIVER)),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            name,
            uid: pod_uid.to_owned(),
            ..OwnerReference::default()
        }]),
        ..ObjectMeta::default()
    }
}

/// The Secret holding the engine's token, owned by the driver pod.
pub fn secret(
    spec: &EngineSpec,
    config: &KubernetesConfig,
    pod_uid: &str,
    token: &EngineToken,
) -> Secret {
    Secret {
        metadata: owned_by_the_pod(spec, config, pod_uid),
        type_: Some("Opaque".to_owned()),
        string_data: Some(BTreeMap::from([(
            names::TOKEN_KEY.to_owned(),
            token.expose().to_owned(),
        )])),
        ..Secret::default()
    }
}

/// The headless service in front of a Spark engine's driver, owned by the
/// driver pod.
pub fn service(spec: &EngineSpec, config: &KubernetesConfig, pod_uid: &str) -> Service {
    let plan = spark_plan(spec, config);
    let ports = plan.service.unwrap_or_default();
    plan::service(spec, &ports, config, pod_uid)
}

#[cfg(test)]
pub(crate) mod tests {
    use rucat_core::engine::Configs;
    use rucat_core::{EngineId, EngineType};

    use super::*;

    fn spec(version: &str) -> EngineSpec {
        EngineSpec {
            id: "0123456789abcdef0123456789abcdef"
                .parse::<EngineId>()
                .unwrap(),
            name: "etl".to_owned(),
            engine_type: EngineType::Spark,
            version: version.to_owned(),
            configs: Configs::from([
                ("spark.executor.instances".to_owned(), "2".to_owned()),
                ("spark.executor.memory".to_owned(), "2g".to_owned()),
            ]),
            token: None,
        }
    }

    pub(crate) fn config() -> KubernetesConfig {
        serde_json::from_str(
            r#"{
                "namespace": "spark",
                "service_account": "rucat-spark",
                "images": {"3.5.3": "apache/spark:3.5.3-scala2.12-java17-ubuntu"},
                "driver": {
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
                    "node_selector": {"pool": "spark"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "spark", "effect": "NoSchedule"}],
                    "labels": {"team": "data", "rucat.io/role": "not-allowed"},
                    "annotations": {"cost-center": "42"}
                }
            }"#,
        )
        .unwrap()
    }

    fn golden(name: &str, value: serde_json::Value) {
        crate::golden::check(name, value);
    }

    #[test]
    fn driver_pod_for_spark_4() {
        golden(
            "driver_pod_spark4.json",
            serde_json::to_value(driver_pod(&spec("4.0.1"), &config())).unwrap(),
        );
    }

    fn with_token(mut spec: EngineSpec) -> EngineSpec {
        spec.token = Some(serde_json::from_str("\"0123abcd\"").unwrap());
        spec
    }

    #[test]
    fn the_token_comes_from_the_engines_secret_not_the_pod_spec() {
        let spec = with_token(spec("4.0.1"));
        let pod = serde_json::to_value(driver_pod(&spec, &config())).unwrap();
        golden("driver_pod_spark4_token.json", pod.clone());
        assert!(!pod.to_string().contains("0123abcd"));
        let secret = secret(&spec, &config(), "pod-uid-1", spec.token.as_ref().unwrap());
        golden("secret.json", serde_json::to_value(secret).unwrap());
    }

    #[test]
    fn driver_pod_for_spark_3_5_fetches_the_connect_jar() {
        golden(
            "driver_pod_spark35.json",
            serde_json::to_value(driver_pod(&spec("3.5.3"), &config())).unwrap(),
        );
    }

    #[test]
    fn service_is_headless_and_owned_by_the_pod() {
        golden(
            "service.json",
            serde_json::to_value(service(&spec("4.0.1"), &config(), "pod-uid-1")).unwrap(),
        );
    }

    #[test]
    fn rucat_settings_come_last_so_they_win() {
        let mut s = spec("4.0.1");
        s.configs.insert("spark.ui.port".to_owned(), "1".to_owned());
        let args = spark_submit_args(&s, &KubernetesConfig::default());
        let last_ui = args
            .iter()
            .rposition(|a| a.starts_with("spark.ui.port="))
            .unwrap();
        assert_eq!(args[last_ui], "spark.ui.port=4040");
        assert!(
            !args.iter().any(|a| a == "--packages"),
            "Spark 4 bundles Spark Connect"
        );
    }

    #[test]
    fn rucat_labels_win_over_extra_labels() {
        let pod = driver_pod(&spec("4.0.1"), &config());
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[names::ROLE], names::DRIVER);
        assert_eq!(labels["team"], "data");
    }
}
