//! Spark on Kubernetes: a Spark Connect driver pod in client mode, behind a
//! headless service. Spark itself creates the executors through the
//! `spark.kubernetes.*` settings, labelled as the engine's executors and
//! owned by the driver pod, so deleting the driver pod removes everything;
//! the driver therefore needs Kubernetes API access (the operator's service
//! account). The service gives the driver a stable DNS name for executors
//! (`spark.driver.host`) and for clients. The engine's token reaches the
//! driver from the engine's Secret.

use std::collections::BTreeMap;

use crate::kind::kube::{
    EnvPlan, EnvValue, KubeContext, KubeImage, KubePlan, PodPlan, PortPlan, Readiness, ServicePlan,
};

/// The Spark Connect gRPC port.
pub const CONNECT_PORT: u16 = 15002;
pub const UI_PORT: u16 = 4040;
/// Fixed so the headless service can expose them to executors.
pub const DRIVER_PORT: u16 = 7078;
pub const BLOCK_MANAGER_PORT: u16 = 7079;
/// The driver's container.
pub const CONTAINER: &str = "spark-connect";
/// Where Spark Connect reads the token it demands from clients.
pub const TOKEN_ENV: &str = "SPARK_CONNECT_AUTHENTICATE_TOKEN";
/// The label the executors carry for their role.
pub const EXECUTOR_ROLE: &str = "executor";

/// The driver's and the executors' image. Operators set Spark's images
/// with the Kubernetes configuration's top-level `images` and
/// `image_template`, which predate other kinds.
pub const IMAGES: &[KubeImage] = &[KubeImage {
    component: "spark",
    default_template: "apache/spark:{version}",
}];

/// The settings of the operator's configuration Spark reads (see
/// [`KubeContext::settings`]) and their defaults.
pub const SPARK_SUBMIT: (&str, &str) = ("spark_submit", "/opt/spark/bin/spark-submit");
pub const SPARK35_CONNECT_PACKAGE: (&str, &str) = (
    "spark35_connect_package",
    "org.apache.spark:spark-connect_2.12:{version}",
);

/// The named ports of the driver, exposed by both the pod and the service.
const PORTS: [(&str, u16); 4] = [
    ("spark-connect", CONNECT_PORT),
    ("spark-ui", UI_PORT),
    ("driver", DRIVER_PORT),
    ("blockmanager", BLOCK_MANAGER_PORT),
];

pub fn plan(context: &KubeContext<'_>) -> KubePlan {
    let ports: Vec<PortPlan> = PORTS
        .iter()
        .map(|(name, port)| PortPlan::new(*name, *port))
        .collect();
    let env = context
        .spec
        .token
        .as_ref()
        .map(|_| EnvPlan {
            name: TOKEN_ENV.to_owned(),
            value: EnvValue::Token,
        })
        .into_iter()
        .collect();
    KubePlan {
        main: PodPlan {
            role: "driver".to_owned(),
            container: CONTAINER.to_owned(),
            image: "spark",
            // The image's entrypoint runs these (apache/spark's does, under tini).
            command: None,
            args: spark_submit_args(context),
            env,
            ports: ports.clone(),
            readiness: Readiness::Tcp { port: CONNECT_PORT },
            api_access: true,
        },
        members: Vec::new(),
        service: Some(ServicePlan { ports }),
        endpoint: format!("sc://{}:{CONNECT_PORT}", context.service_host),
        gateway_only: false,
    }
}

/// `spark-submit` arguments of the driver. The user's configs come first and
/// rucat's after them: spark-submit keeps the last value of a key, so the
/// settings that make the engine reachable and cleanable always win.
pub fn spark_submit_args(context: &KubeContext<'_>) -> Vec<String> {
    let spec = context.spec;
    let setting = |(key, default): (&str, &'static str)| {
        context
            .settings
            .get(key)
            .map_or(default.to_owned(), Clone::clone)
    };
    let name = context.name;
    let namespace = context.namespace;
    let mut args: Vec<String> = [
        setting(SPARK_SUBMIT).as_str(),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master",
        "k8s://https://kubernetes.default.svc",
        "--deploy-mode",
        "client",
        "--name",
        name,
    ]
    .map(str::to_owned)
    .to_vec();
    let package = setting(SPARK35_CONNECT_PACKAGE);
    if spec.version.starts_with("3.5.") && !package.is_empty() {
        args.push("--packages".to_owned());
        args.push(package.replace("{version}", &spec.version));
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
            (context.image)("spark"),
        ));
    }
    let ours: BTreeMap<String, String> = [
        (
            "spark.kubernetes.namespace".to_owned(),
            namespace.to_owned(),
        ),
        (
            "spark.kubernetes.driver.pod.name".to_owned(),
            name.to_owned(),
        ),
        (
            "spark.kubernetes.executor.podNamePrefix".to_owned(),
            name.to_owned(),
        ),
        (
            "spark.driver.host".to_owned(),
            context.service_host.to_owned(),
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
    .chain(context.service_account.iter().map(|sa| {
        (
            "spark.kubernetes.authenticate.driver.serviceAccountName".to_owned(),
            (*sa).to_owned(),
        )
    }))
    .chain(
        context
            .labels(EXECUTOR_ROLE)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Configs, EngineId, EngineSpec, EngineType};
    use crate::kind::EngineKind;
    use crate::kind::kube::tests::context;

    fn spec(version: &str) -> EngineSpec {
        EngineSpec {
            id: EngineId::generate(),
            name: "s".into(),
            engine_type: EngineType::Spark,
            version: version.into(),
            configs: Configs::from([("spark.ui.port".into(), "1".into())]),
            token: None,
        }
    }

    #[test]
    fn a_driver_with_api_access_whose_confs_win_over_the_users() {
        let spec = spec("3.5.3");
        let plan = super::super::Spark.kube_plan(&context(&spec)).unwrap();
        assert!(plan.main.api_access, "the driver creates its executors");
        assert!(plan.members.is_empty() && !plan.gateway_only);
        assert_eq!(plan.endpoint, "sc://rucat-x.ns.svc:15002");
        assert!(plan.main.env.is_empty(), "no token, no variable");
        let args = &plan.main.args;
        assert_eq!(args[0], SPARK_SUBMIT.1, "the default spark-submit");
        assert!(
            args.windows(2)
                .any(|w| w == ["--packages", "org.apache.spark:spark-connect_2.12:3.5.3"]),
            "Spark 3.5 fetches Spark Connect"
        );
        let last_ui = args
            .iter()
            .rposition(|a| a.starts_with("spark.ui.port="))
            .unwrap();
        assert_eq!(args[last_ui], "spark.ui.port=4040");
        assert!(args.contains(&"spark.kubernetes.container.image=spark:image".to_owned()));
        assert!(args.contains(&"spark.kubernetes.executor.label.role=executor".to_owned()));
    }
}
