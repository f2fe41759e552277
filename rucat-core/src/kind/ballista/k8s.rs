//! Ballista on Kubernetes: a scheduler pod behind a headless service, and
//! the executor pods, owned by the scheduler pod (deleting it deletes
//! them), each registering with the scheduler at the service's name.
//!
//! Executors advertise their pod IP (`$(POD_IP)`): clients fetch results
//! from them over Arrow Flight directly, so Ballista endpoints
//! (`df://<service>:50050`) do not go through rucat's gateway and clients
//! must run inside the cluster (or route to pod IPs). The images run their
//! entrypoints (upstream's pass the arguments to `ballista-scheduler` and
//! `ballista-executor`); an executor is ready when its health port answers
//! `GET /readyz`.

use super::Settings;
use crate::kind::kube::{
    EnvPlan, EnvValue, KubeContext, KubeImage, KubePlan, PodPlan, PortPlan, Readiness, ServicePlan,
};

pub const SCHEDULER_PORT: u16 = 50050;
/// An executor's Arrow Flight port (results to clients and other executors).
pub const FLIGHT_PORT: u16 = 50051;
/// An executor's gRPC port (the scheduler's calls).
pub const GRPC_PORT: u16 = 50052;
/// An executor's health port (`/readyz`).
pub const HEALTH_PORT: u16 = 50053;
/// How long an executor waits for the scheduler, which starts beside it.
const CONNECT_TIMEOUT_SECS: &str = "60";

/// Upstream publishes both images for each release.
pub const IMAGES: &[KubeImage] = &[
    KubeImage {
        component: "scheduler",
        default_template: "ghcr.io/apache/datafusion-ballista-scheduler:{version}",
    },
    KubeImage {
        component: "executor",
        default_template: "ghcr.io/apache/datafusion-ballista-executor:{version}",
    },
];

pub fn plan(context: &KubeContext<'_>) -> Result<KubePlan, String> {
    let settings = Settings::from_configs(&context.spec.configs).map_err(|e| e.to_string())?;
    let host = context.service_host;
    let scheduler_port = PortPlan::new("scheduler", SCHEDULER_PORT);
    let mut scheduler_args: Vec<String> = [
        "--bind-host",
        "0.0.0.0",
        "--external-host",
        host,
        "--bind-port",
        &SCHEDULER_PORT.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    scheduler_args.extend(settings.scheduler_args.iter().cloned());
    let main = PodPlan {
        role: "scheduler".to_owned(),
        container: "scheduler".to_owned(),
        image: "scheduler",
        command: None,
        args: scheduler_args,
        env: Vec::new(),
        ports: vec![scheduler_port.clone()],
        readiness: Readiness::Tcp {
            port: SCHEDULER_PORT,
        },
        api_access: false,
    };
    let mut executor_args: Vec<String> = [
        "--bind-host",
        "0.0.0.0",
        "--external-host",
        "$(POD_IP)",
        "--scheduler-host",
        host,
        "--scheduler-port",
        &SCHEDULER_PORT.to_string(),
        "--bind-port",
        &FLIGHT_PORT.to_string(),
        "--bind-grpc-port",
        &GRPC_PORT.to_string(),
        "--bind-health-port",
        &HEALTH_PORT.to_string(),
        "--scheduler-connect-timeout-seconds",
        CONNECT_TIMEOUT_SECS,
    ]
    .map(str::to_owned)
    .to_vec();
    executor_args.extend(settings.executor_args.iter().cloned());
    let members = (1..=settings.executors)
        .map(|n| PodPlan {
            role: format!("executor-{n}"),
            container: "executor".to_owned(),
            image: "executor",
            command: None,
            args: executor_args.clone(),
            env: vec![EnvPlan {
                name: "POD_IP".to_owned(),
                value: EnvValue::PodIp,
            }],
            ports: vec![
                PortPlan::new("flight", FLIGHT_PORT),
                PortPlan::new("grpc", GRPC_PORT),
                PortPlan::new("health", HEALTH_PORT),
            ],
            readiness: Readiness::Http {
                path: "/readyz".to_owned(),
                port: HEALTH_PORT,
            },
            api_access: false,
        })
        .collect();
    Ok(KubePlan {
        main,
        members,
        service: Some(ServicePlan {
            ports: vec![scheduler_port],
        }),
        endpoint: format!("df://{host}:{SCHEDULER_PORT}"),
        // Clients reach it directly: the gateway does not serve it.
        gateway_only: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Configs, EngineId, EngineSpec, EngineType};
    use crate::kind::EngineKind;

    fn spec(configs: &[(&str, &str)]) -> EngineSpec {
        EngineSpec {
            id: EngineId::generate(),
            name: "b".into(),
            engine_type: EngineType::new(super::super::NAME),
            version: "55.0.0".into(),
            configs: configs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Configs>(),
            token: None,
        }
    }

    fn plan_of(spec: &EngineSpec) -> Result<KubePlan, String> {
        super::super::Ballista.kube_plan(&crate::kind::kube::tests::context(spec))
    }

    #[test]
    fn a_scheduler_and_its_executors_with_the_users_flags_last() {
        let spec = spec(&[
            ("executors", "3"),
            ("executor.vcores", "4"),
            ("scheduler.scheduler-policy", "push-staged"),
        ]);
        let plan = plan_of(&spec).unwrap();
        assert_eq!(plan.endpoint, "df://rucat-x.ns.svc:50050");
        assert_eq!(
            plan.main.args,
            [
                "--bind-host",
                "0.0.0.0",
                "--external-host",
                "rucat-x.ns.svc",
                "--bind-port",
                "50050",
                "--scheduler-policy=push-staged"
            ]
        );
        let roles: Vec<&str> = plan.members.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["executor-1", "executor-2", "executor-3"]);
        let executor = &plan.members[0];
        assert_eq!(executor.args.last().unwrap(), "--vcores=4");
        assert!(
            executor
                .args
                .windows(2)
                .any(|w| w == ["--scheduler-host", "rucat-x.ns.svc"])
        );
        assert!(
            executor
                .args
                .windows(2)
                .any(|w| w == ["--external-host", "$(POD_IP)"])
        );
        assert_eq!(
            executor.readiness,
            Readiness::Http {
                path: "/readyz".into(),
                port: HEALTH_PORT
            }
        );
        assert_eq!(super::super::Ballista.kube_images(), IMAGES);
    }

    #[test]
    fn two_executors_by_default_and_bad_configs_are_refused() {
        assert_eq!(plan_of(&spec(&[])).unwrap().members.len(), 2);
        let err = plan_of(&spec(&[("executors", "0")])).unwrap_err();
        assert!(err.contains("configs.executors"), "{err}");
    }
}
