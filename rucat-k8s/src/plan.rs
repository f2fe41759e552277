//! Pods and services from a kind's [`KubePlan`]: pure functions, tested
//! against golden JSON, that add what rucat decides for every kind — names,
//! labels, ownership, the operator's overrides — to what the kind said.
//!
//! The main pod is named like the engine (`rucat-<id>`) and labelled as its
//! driver. Member pods (`rucat-<id>-<role>`) and the service are owned by
//! it: deleting the main pod removes everything, and a create retried after
//! a crash finds each by name. Pods the plan gives no API access get no
//! service account token: only Spark's driver, which creates its own
//! executors, needs one.
//!
//! What a pod without a label or annotation would mean is not written
//! (the role `driver`, the endpoint `sc://<service>:<first port>`), so
//! Spark's driver pod is exactly what it was before kinds were pluggable.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, Pod,
    PodSpec, Probe, SecretKeySelector, Service, ServicePort, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rucat_core::EngineSpec;
use rucat_core::kind::EngineKind;
use rucat_core::kind::kube::{
    EnvValue, KubeContext, KubePlan, PodPlan, PortPlan, Readiness, ServicePlan,
};

use crate::config::KubernetesConfig;
use crate::names;

/// The plan of `kind` for `spec`, in the context `config` gives it.
pub fn plan_for(
    spec: &EngineSpec,
    kind: &dyn EngineKind,
    config: &KubernetesConfig,
) -> Result<KubePlan, String> {
    with_context(spec, kind, config, |context| kind.kube_plan(context))
}

/// `f` of the context `config` gives `kind`'s plan for `spec`.
pub fn with_context<R>(
    spec: &EngineSpec,
    kind: &dyn EngineKind,
    config: &KubernetesConfig,
    f: impl FnOnce(&KubeContext<'_>) -> R,
) -> R {
    let name = names::object_name(&spec.id);
    let service_host = names::service_host(&spec.id, &config.namespace);
    let settings = config.kind_settings(kind);
    let image = |component: &str| config.kind_image_for(kind, component, &spec.version);
    let labels = |role: &str| names::labels(&spec.id, role);
    f(&KubeContext {
        spec,
        name: &name,
        namespace: &config.namespace,
        service_host: &service_host,
        service_account: config.service_account.as_deref(),
        image: &image,
        labels_for: &labels,
        settings: &settings,
    })
}

/// The endpoint of a main pod without [`names::ENDPOINT`]:
/// `sc://<service_host>:<its first container port>`.
pub fn default_endpoint(pod: &Pod, service_host: &str) -> Option<String> {
    let port = pod
        .spec
        .as_ref()?
        .containers
        .first()?
        .ports
        .as_ref()?
        .first()?
        .container_port;
    Some(format!("sc://{service_host}:{port}"))
}

/// The engine's main pod; `plan.members` are listed on it (see
/// [`names::MEMBERS`]) so its status can be read without a list.
pub fn main_pod(
    spec: &EngineSpec,
    kind: &dyn EngineKind,
    plan: &KubePlan,
    config: &KubernetesConfig,
) -> Pod {
    let mut annotations = BTreeMap::new();
    let implied = plan.main.ports.first().map(|p| {
        format!(
            "sc://{}:{}",
            names::service_host(&spec.id, &config.namespace),
            p.port
        )
    });
    if implied.as_deref() != Some(plan.endpoint.as_str()) {
        annotations.insert(names::ENDPOINT.to_owned(), plan.endpoint.clone());
    }
    if !plan.members.is_empty() {
        annotations.insert(
            names::MEMBERS.to_owned(),
            member_names(spec, plan).join(","),
        );
    }
    let meta = pod_meta(
        spec,
        plan,
        &plan.main,
        config,
        names::object_name(&spec.id),
        names::DRIVER,
        annotations,
    );
    pod(spec, kind, &plan.main, config, meta)
}

/// The names of the member pods of `plan`, in its order.
pub fn member_names(spec: &EngineSpec, plan: &KubePlan) -> Vec<String> {
    plan.members
        .iter()
        .map(|m| names::member_name(&spec.id, &m.role))
        .collect()
}

/// A member pod, owned by the main pod `main_uid`.
pub fn member_pod(
    spec: &EngineSpec,
    kind: &dyn EngineKind,
    plan: &KubePlan,
    member: &PodPlan,
    config: &KubernetesConfig,
    main_uid: &str,
) -> Pod {
    let mut meta = pod_meta(
        spec,
        plan,
        member,
        config,
        names::member_name(&spec.id, &member.role),
        names::MEMBER,
        BTreeMap::new(),
    );
    meta.owner_references = Some(vec![owner(spec, main_uid)]);
    pod(spec, kind, member, config, meta)
}

/// The headless service in front of the main pod, owned by it.
pub fn service(
    spec: &EngineSpec,
    plan: &ServicePlan,
    config: &KubernetesConfig,
    main_uid: &str,
) -> Service {
    let labels = names::labels(&spec.id, names::DRIVER);
    let mut selector = names::labels(&spec.id, names::DRIVER);
    selector.remove(names::MANAGED_BY);
    Service {
        metadata: ObjectMeta {
            name: Some(names::object_name(&spec.id)),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner(spec, main_uid)]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(selector),
            // The engine's other pods may resolve the main pod while it starts.
            publish_not_ready_addresses: Some(true),
            ports: Some(
                plan.ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(p.name.clone()),
                        port: i32::from(p.port),
                        target_port: Some(IntOrString::Int(i32::from(p.port))),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Whether a pod of `plan` reads the engine's token (from its Secret).
pub fn uses_token(plan: &KubePlan) -> bool {
    std::iter::once(&plan.main)
        .chain(&plan.members)
        .flat_map(|p| &p.env)
        .any(|e| e.value == EnvValue::Token)
}

fn owner(spec: &EngineSpec, main_uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        name: names::object_name(&spec.id),
        uid: main_uid.to_owned(),
        ..OwnerReference::default()
    }
}

/// Metadata of one of the engine's pods: the operator's labels and
/// annotations, then rucat's, which win on a clash.
fn pod_meta(
    spec: &EngineSpec,
    engine: &KubePlan,
    plan: &PodPlan,
    config: &KubernetesConfig,
    name: String,
    role: &str,
    extra_annotations: BTreeMap<String, String>,
) -> ObjectMeta {
    let mut labels = config.driver.labels.clone();
    labels.extend(names::labels(&spec.id, role));
    if plan.role != names::DRIVER {
        labels.insert(names::PART.to_owned(), plan.role.clone());
    }
    if engine.gateway_only {
        labels.insert(names::GATEWAY_ONLY.to_owned(), "true".to_owned());
    }
    let mut annotations = config.driver.annotations.clone();
    annotations.insert(names::ENGINE_NAME.to_owned(), spec.name.clone());
    annotations.extend(extra_annotations);
    ObjectMeta {
        name: Some(name),
        namespace: Some(config.namespace.clone()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

fn pod(
    spec: &EngineSpec,
    kind: &dyn EngineKind,
    plan: &PodPlan,
    config: &KubernetesConfig,
    metadata: ObjectMeta,
) -> Pod {
    let overrides = &config.driver;
    Pod {
        metadata,
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_owned()),
            service_account_name: config.service_account.clone().filter(|_| plan.api_access),
            automount_service_account_token: (!plan.api_access).then_some(false),
            node_selector: (!overrides.node_selector.is_empty())
                .then(|| overrides.node_selector.clone()),
            tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
            enable_service_links: Some(false),
            termination_grace_period_seconds: overrides.termination_grace_period_secs,
            containers: vec![Container {
                name: plan.container.clone(),
                image: Some(config.kind_image_for(kind, plan.image, &spec.version)),
                image_pull_policy: config.image_pull_policy.clone(),
                command: plan.command.clone(),
                args: Some(plan.args.clone()),
                ports: Some(plan.ports.iter().map(container_port).collect()),
                readiness_probe: Some(probe(&plan.readiness)),
                resources: config.kind_resources_for(kind, plan.image),
                env: (!plan.env.is_empty()).then(|| {
                    plan.env
                        .iter()
                        .map(|e| env_var(spec, &e.name, &e.value))
                        .collect()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn container_port(port: &PortPlan) -> ContainerPort {
    ContainerPort {
        name: Some(port.name.clone()),
        container_port: i32::from(port.port),
        ..ContainerPort::default()
    }
}

fn probe(readiness: &Readiness) -> Probe {
    let mut probe = Probe {
        period_seconds: Some(2),
        ..Probe::default()
    };
    match readiness {
        Readiness::Tcp { port } => {
            probe.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(*port)),
                ..TCPSocketAction::default()
            });
        }
        Readiness::Http { path, port } => {
            probe.http_get = Some(HTTPGetAction {
                path: Some(path.clone()),
                port: IntOrString::Int(i32::from(*port)),
                ..HTTPGetAction::default()
            });
        }
    }
    probe
}

fn env_var(spec: &EngineSpec, name: &str, value: &EnvValue) -> EnvVar {
    let from = |source: EnvVarSource| EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(source),
    };
    match value {
        EnvValue::Plain(value) => EnvVar {
            name: name.to_owned(),
            value: Some(value.clone()),
            value_from: None,
        },
        EnvValue::Token => from(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names::object_name(&spec.id),
                key: names::TOKEN_KEY.to_owned(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        EnvValue::PodIp => from(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "status.podIP".to_owned(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use rucat_core::engine::Configs;
    use rucat_core::kind::Kinds;
    use rucat_core::{EngineId, EngineType};

    use super::*;
    use crate::golden;

    fn spec(engine_type: EngineType, version: &str, configs: &[(&str, &str)]) -> EngineSpec {
        EngineSpec {
            id: "0123456789abcdef0123456789abcdef"
                .parse::<EngineId>()
                .unwrap(),
            name: "etl".to_owned(),
            engine_type,
            version: version.to_owned(),
            configs: configs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Configs>(),
            token: Some(serde_json::from_str("\"0123abcd\"").unwrap()),
        }
    }

    /// The Spark golden tests' configuration: every override set.
    fn config() -> KubernetesConfig {
        crate::build::tests::config()
    }

    fn plan_of(spec: &EngineSpec, config: &KubernetesConfig) -> (Arc<dyn EngineKind>, KubePlan) {
        let kind = Arc::clone(Kinds::builtin().get(&spec.engine_type).unwrap());
        let plan = plan_for(spec, kind.as_ref(), config).unwrap();
        (kind, plan)
    }

    use std::sync::Arc;

    #[test]
    fn sail_pod_and_service() {
        let spec = spec(
            EngineType::Sail,
            "0.7.2",
            &[("execution.batch_size", "1024")],
        );
        let config = config();
        let (kind, plan) = plan_of(&spec, &config);
        let pod = serde_json::to_value(main_pod(&spec, kind.as_ref(), &plan, &config)).unwrap();
        golden::check("sail_pod.json", pod.clone());
        assert!(!pod.to_string().contains("0123abcd"), "no token in the pod");
        assert!(!uses_token(&plan), "Sail cannot check a token");
        let service = plan.service.as_ref().unwrap();
        golden::check(
            "sail_service.json",
            serde_json::to_value(super::service(&spec, service, &config, "pod-uid-1")).unwrap(),
        );
    }

    #[test]
    fn sail_images_follow_the_kinds_section() {
        let spec = spec(EngineType::Sail, "0.8.0", &[]);
        let mut config = config();
        let (kind, plan) = plan_of(&spec, &config);
        let image = |config: &KubernetesConfig| {
            main_pod(&spec, kind.as_ref(), &plan, config)
                .spec
                .unwrap()
                .containers[0]
                .image
                .clone()
                .unwrap()
        };
        assert_eq!(image(&config), "lakehq/sail:0.8.0");
        config.kinds =
            serde_json::from_str(r#"{"Sail": {"server": {"images": {"0.8.0": "r/sail:pinned"}}}}"#)
                .unwrap();
        assert_eq!(image(&config), "r/sail:pinned");
    }

    #[test]
    fn ballista_scheduler_service_and_executor() {
        let spec = spec(
            EngineType::Ballista,
            "55.0.0",
            &[
                ("executors", "2"),
                ("executor.vcores", "4"),
                ("scheduler.scheduler-policy", "push-staged"),
            ],
        );
        let config = config();
        let (kind, plan) = plan_of(&spec, &config);
        assert_eq!(plan.members.len(), 2);
        assert!(!uses_token(&plan), "Ballista cannot check a token");
        golden::check(
            "ballista_scheduler_pod.json",
            serde_json::to_value(main_pod(&spec, kind.as_ref(), &plan, &config)).unwrap(),
        );
        golden::check(
            "ballista_service.json",
            serde_json::to_value(super::service(
                &spec,
                plan.service.as_ref().unwrap(),
                &config,
                "pod-uid-1",
            ))
            .unwrap(),
        );
        golden::check(
            "ballista_executor_pod.json",
            serde_json::to_value(member_pod(
                &spec,
                kind.as_ref(),
                &plan,
                &plan.members[0],
                &config,
                "pod-uid-1",
            ))
            .unwrap(),
        );
        let second = member_pod(
            &spec,
            kind.as_ref(),
            &plan,
            &plan.members[1],
            &config,
            "pod-uid-1",
        );
        assert_eq!(
            second.metadata.name.as_deref(),
            Some("rucat-0123456789abcdef0123456789abcdef-executor-2")
        );
    }

    #[test]
    fn a_component_may_have_resources_of_its_own() {
        let spec = spec(EngineType::Ballista, "55.0.0", &[("executors", "1")]);
        let mut config = config();
        config.kinds = serde_json::from_str(
            r#"{"Ballista": {"executor": {"resources": {"limits": {"memory": "8Gi"}}}}}"#,
        )
        .unwrap();
        let (kind, plan) = plan_of(&spec, &config);
        let memory_limit = |pod: Pod| {
            let resources = pod.spec.unwrap().containers[0].resources.clone().unwrap();
            resources.limits.unwrap()["memory"].0.clone()
        };
        let executor = member_pod(
            &spec,
            kind.as_ref(),
            &plan,
            &plan.members[0],
            &config,
            "uid",
        );
        assert_eq!(memory_limit(executor), "8Gi");
        let scheduler = main_pod(&spec, kind.as_ref(), &plan, &config);
        assert_eq!(memory_limit(scheduler), "1Gi", "the driver overrides'");
    }

    #[test]
    fn rucat_labels_win_and_pods_get_no_api_access() {
        let spec = spec(EngineType::Sail, "0.7.2", &[]);
        let config = config();
        let (kind, plan) = plan_of(&spec, &config);
        let pod = main_pod(&spec, kind.as_ref(), &plan, &config);
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[names::ROLE], names::DRIVER);
        assert_eq!(labels[names::GATEWAY_ONLY], "true");
        assert_eq!(labels["team"], "data");
        let pod_spec = pod.spec.unwrap();
        assert_eq!(pod_spec.automount_service_account_token, Some(false));
        assert_eq!(pod_spec.service_account_name, None);
    }
}
