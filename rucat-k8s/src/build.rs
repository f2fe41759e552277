//! Building an engine's driver pod and service: pure functions from the
//! engine spec and the configuration, tested against golden JSON.
//!
//! The driver runs the Spark Connect server in client mode; Spark itself
//! creates the executors through the `spark.kubernetes.*` settings, labelled
//! as the engine's executors and owned by the driver pod, so deleting the
//! driver pod removes everything. The headless service gives the driver a
//! stable DNS name for executors (`spark.driver.host`) and for clients. The
//! engine's token reaches the driver from a Secret (never in the pod spec,
//! which anyone who may read pods can see), owned by the pod like the service.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, Pod, PodSpec, Probe, Secret, SecretKeySelector,
    Service, ServicePort, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rucat_core::{EngineSpec, EngineToken};

use crate::config::KubernetesConfig;
use crate::names::{self, BLOCK_MANAGER_PORT, CONNECT_PORT, DRIVER_PORT, UI_PORT};

/// The named ports of the driver, exposed by both the pod and the service.
const PORTS: [(&str, i32); 4] = [
    ("spark-connect", CONNECT_PORT),
    ("spark-ui", UI_PORT),
    ("driver", DRIVER_PORT),
    ("blockmanager", BLOCK_MANAGER_PORT),
];

/// The driver pod of an engine.
pub fn driver_pod(spec: &EngineSpec, config: &KubernetesConfig) -> Pod {
    let name = names::object_name(&spec.id);
    let mut labels = config.driver.labels.clone();
    labels.extend(names::labels(&spec.id, names::DRIVER));
    let mut annotations = config.driver.annotations.clone();
    annotations.insert(names::ENGINE_NAME.to_owned(), spec.name.clone());
    let overrides = &config.driver;
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_owned()),
            service_account_name: config.service_account.clone(),
            node_selector: non_empty(overrides.node_selector.clone()),
            tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
            // Engines need no environment variables for every service in the namespace.
            enable_service_links: Some(false),
            termination_grace_period_seconds: overrides.termination_grace_period_secs,
            containers: vec![Container {
                name: names::CONTAINER.to_owned(),
                image: Some(config.image_for(&spec.version)),
                image_pull_policy: config.image_pull_policy.clone(),
                // The image's entrypoint runs these (apache/spark's does, under tini).
                args: Some(spark_submit_args(spec, config)),
                ports: Some(
                    PORTS
                        .iter()
                        .map(|(name, port)| ContainerPort {
                            name: Some((*name).to_owned()),
                            container_port: *port,
                            ..ContainerPort::default()
                        })
                        .collect(),
                ),
                readiness_probe: Some(Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(CONNECT_PORT),
                        ..TCPSocketAction::default()
                    }),
                    period_seconds: Some(2),
                    ..Probe::default()
                }),
                resources: overrides.resources.clone(),
                env: spec.token.as_ref().map(|_| vec![token_env(&spec.id)]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// Spark Connect's token variable, read from the engine's Secret.
fn token_env(id: &rucat_core::EngineId) -> EnvVar {
    EnvVar {
        name: names::TOKEN_ENV.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names::object_name(id),
                key: names::TOKEN_KEY.to_owned(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
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

/// The headless service in front of the driver, owned by the driver pod.
pub fn service(spec: &EngineSpec, config: &KubernetesConfig, pod_uid: &str) -> Service {
    let mut selector = names::labels(&spec.id, names::DRIVER);
    selector.remove(names::MANAGED_BY);
    Service {
        metadata: owned_by_the_pod(spec, config, pod_uid),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(selector),
            // Executors must resolve the driver before Spark Connect is ready.
            publish_not_ready_addresses: Some(true),
            ports: Some(
                PORTS
                    .iter()
                    .map(|(name, port)| ServicePort {
                        name: Some((*name).to_owned()),
                        port: *port,
                        target_port: Some(IntOrString::Int(*port)),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// `spark-submit` arguments of the driver. The user's configs come first and
/// rucat's after them: spark-submit keeps the last value of a key, so the
/// settings that make the engine reachable and cleanable always win.
pub fn spark_submit_args(spec: &EngineSpec, config: &KubernetesConfig) -> Vec<String> {
    let name = names::object_name(&spec.id);
    let namespace = &config.namespace;
    let mut args: Vec<String> = [
        config.spark_submit.as_str(),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master",
        "k8s://https://kubernetes.default.svc",
        "--deploy-mode",
        "client",
        "--name",
        &name,
    ]
    .map(str::to_owned)
    .to_vec();
    if spec.version.starts_with("3.5.") && !config.spark35_connect_package.is_empty() {
        args.push("--packages".to_owned());
        args.push(
            config
                .spark35_connect_package
                .replace("{version}", &spec.version),
        );
    }
    let mut confs: Vec<(String, String)> = spec
        .configs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !spec
        .configs
        .contains_key("spark.kubernetes.container.image")
    {
        confs.push((
            "spark.kubernetes.container.image".to_owned(),
            config.image_for(&spec.version),
        ));
    }
    let executor_labels = names::labels(&spec.id, names::EXECUTOR);
    let ours: BTreeMap<String, String> = [
        ("spark.kubernetes.namespace".to_owned(), namespace.clone()),
        ("spark.kubernetes.driver.pod.name".to_owned(), name.clone()),
        (
            "spark.kubernetes.executor.podNamePrefix".to_owned(),
            name.clone(),
        ),
        (
            "spark.driver.host".to_owned(),
            format!("{name}.{namespace}.svc"),
        ),
        ("spark.driver.bindAddress".to_owned(), "0.0.0.0".to_owned()),
        ("spark.driver.port".to_owned(), DRIVER_PORT.to_string()),
        (
            "spark.blockManager.port".to_owned(),
            BLOCK_MANAGER_PORT.to_string(),
        ),
        ("spark.ui.port".to_owned(), UI_PORT.to_string()),
        (
            "spark.connect.grpc.binding.port".to_owned(),
            CONNECT_PORT.to_string(),
        ),
        // `--packages` resolves into Ivy's cache; the image's home may not be writable.
        ("spark.jars.ivy".to_owned(), "/tmp/.ivy2".to_owned()),
    ]
    .into_iter()
    .chain(config.service_account.iter().map(|sa| {
        (
            "spark.kubernetes.authenticate.driver.serviceAccountName".to_owned(),
            sa.clone(),
        )
    }))
    .chain(
        executor_labels
            .into_iter()
            .map(|(k, v)| (format!("spark.kubernetes.executor.label.{k}"), v)),
    )
    .collect();
    confs.extend(ours);
    for (key, value) in confs {
        args.push("--conf".to_owned());
        args.push(format!("{key}={value}"));
    }
    args
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
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
