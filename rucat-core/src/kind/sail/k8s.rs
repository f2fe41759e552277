//! Sail on Kubernetes: one pod running `sail spark server` on all its
//! addresses, behind a headless service.
//!
//! Sail checks no token, so its pod must be reachable by rucat's gateway
//! only ([`KubePlan::gateway_only`]): the Helm chart's NetworkPolicy admits
//! ingress to such pods from the rucat server's pods alone.
//! The image needs `sail` on its PATH (an image built as Sail's Docker guide
//! says, from `pysail`, has it); it runs Sail's local mode, like the local
//! kind, since `mode` is reserved.

use super::env_name;
use crate::kind::kube::{
    EnvPlan, KubeContext, KubeImage, KubePlan, PodPlan, PortPlan, Readiness, ServicePlan,
};

/// Sail's usual Spark Connect port.
pub const PORT: u16 = 50051;

/// The one image Sail engines run.
pub const IMAGES: &[KubeImage] = &[KubeImage {
    component: "server",
    default_template: "lakehq/sail:{version}",
}];

pub fn plan(context: &KubeContext<'_>) -> KubePlan {
    let port = PortPlan::new("spark-connect", PORT);
    let main = PodPlan {
        role: "server".to_owned(),
        container: "sail".to_owned(),
        image: "server",
        command: Some(vec!["sail".to_owned()]),
        args: [
            "spark",
            "server",
            "--ip",
            "0.0.0.0",
            "--port",
            &PORT.to_string(),
        ]
        .map(str::to_owned)
        .to_vec(),
        env: context
            .spec
            .configs
            .iter()
            .map(|(key, value)| EnvPlan::plain(env_name(key), value.clone()))
            .collect(),
        ports: vec![port.clone()],
        readiness: Readiness::Tcp { port: PORT },
        api_access: false,
    };
    KubePlan {
        main,
        members: Vec::new(),
        service: Some(ServicePlan { ports: vec![port] }),
        endpoint: format!("sc://{}:{PORT}", context.service_host),
        gateway_only: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Configs, EngineId, EngineSpec, EngineType};
    use crate::kind::EngineKind;
    use crate::kind::kube::EnvValue;

    #[test]
    fn sail_runs_one_server_pod_with_its_configs_as_sail_variables() {
        let spec = EngineSpec {
            id: EngineId::generate(),
            name: "s".into(),
            engine_type: EngineType::Sail,
            version: "0.7.2".into(),
            configs: Configs::from([("execution.batch_size".into(), "1024".into())]),
            token: Some(crate::token::EngineToken::generate().unwrap()),
        };
        let plan = super::super::Sail
            .kube_plan(&crate::kind::kube::tests::context(&spec))
            .unwrap();
        assert!(plan.gateway_only, "Sail checks no token");
        assert!(plan.members.is_empty());
        assert_eq!(plan.endpoint, "sc://rucat-x.ns.svc:50051");
        assert_eq!(
            plan.main.args,
            ["spark", "server", "--ip", "0.0.0.0", "--port", "50051"]
        );
        assert_eq!(
            plan.main.env,
            [EnvPlan::plain("SAIL_EXECUTION__BATCH_SIZE", "1024")]
        );
        assert!(
            !plan.main.env.iter().any(|e| e.value == EnvValue::Token),
            "Sail cannot check a token: it gets none"
        );
        assert_eq!(super::super::Sail.kube_images(), IMAGES);
    }
}
