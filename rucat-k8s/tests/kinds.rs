//! Engine kinds other than Spark on Kubernetes, end to end against the
//! Kubernetes API test server (real HTTP, JSON and watch streams), the test
//! playing the kubelet: the objects each kind's plan becomes, and their
//! lifecycle through the monitor.

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rucat_core::resource::LogQuery;
use rucat_core::{CreateEngineRequest, EngineId, EngineState, ResourceManager, ResourceStatus};
use rucat_k8s::names;
use rucat_k8s_testserver::Resource;
use support::{Cluster, NS};
use tokio::io::AsyncReadExt;

fn request(engine_type: &str, version: &str, configs: &[(&str, &str)]) -> CreateEngineRequest {
    let mut request = CreateEngineRequest::spark("kind-engine", version);
    request.engine_type = engine_type.to_owned();
    request.configs = configs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    request
}

async fn read_log(cluster: &Cluster, id: &EngineId) -> String {
    let mut log = cluster
        .resources
        .log(id, LogQuery::WHOLE)
        .await
        .unwrap()
        .expect("a log");
    let mut text = String::new();
    log.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn a_sail_engine_is_a_server_pod_and_a_service_from_create_to_delete() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = cluster
        .engines
        .create(request(
            "Sail",
            "0.7.2",
            &[("execution.batch_size", "1024")],
        ))
        .await
        .unwrap();
    cluster.wait_for_pod(&id).await;
    cluster.wait_for(&id, EngineState::StartInProgress).await;

    let pod = cluster.pod(&id).unwrap();
    assert_eq!(pod["metadata"]["labels"][names::ENGINE_TYPE], "Sail");
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], "lakehq/sail:0.7.2");
    assert_eq!(container["command"][0], "sail");
    assert_eq!(container["env"][0]["name"], "SAIL_EXECUTION__BATCH_SIZE");
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    let service = cluster
        .service(&id)
        .expect("the service is created with the pod");
    assert_eq!(
        service["metadata"]["ownerReferences"][0]["uid"],
        pod["metadata"]["uid"]
    );
    assert!(
        cluster.api.list(Resource::Secrets).is_empty(),
        "Sail cannot check a token: no Secret for one"
    );

    let name = names::object_name(&id);
    cluster.set_running(&id);
    let running = cluster.wait_for(&id, EngineState::Running).await;
    assert_eq!(
        running.endpoint,
        Some(format!("sc://{name}.{NS}.svc:50051")),
        "the gateway dials the service"
    );
    cluster
        .api
        .append_pod_log(NS, &name, "sail", &["Sail Spark Connect server listening"])
        .unwrap();
    assert!(
        read_log(&cluster, &id).await.contains("listening"),
        "the sail container's log"
    );

    cluster.engines.stop(&id).await.unwrap();
    cluster.wait_for(&id, EngineState::Terminated).await;
    assert!(cluster.pod(&id).is_none() && cluster.service(&id).is_none());
    cluster.engines.delete(&id).await.unwrap();
    assert!(cluster.api.list(Resource::Pods).is_empty());
    assert!(cluster.api.list(Resource::Services).is_empty());
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_failing_sail_server_fails_the_engine_with_its_logs_reason() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = cluster
        .engines
        .create(request("Sail", "0.7.2", &[("execution.batch_size", "x")]))
        .await
        .unwrap();
    cluster.wait_for_pod(&id).await;
    let name = names::object_name(&id);
    cluster.set_running(&id);
    cluster
        .api
        .append_pod_log(
            NS,
            &name,
            "sail",
            &["Error: invalid configuration: execution.batch_size: invalid digit found in string"],
        )
        .unwrap();
    cluster.api.set_pod_failed(NS, &name, 1, "Error").unwrap();
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap();
    assert!(
        error.starts_with("the server container ended: Error (exit code 1)"),
        "{error}"
    );
    assert!(error.contains("invalid digit found in string"), "{error}");
    cluster.shutdown().await;
}

/// Pods are read through kube, as another process of the cluster would.
async fn pods(cluster: &Cluster) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(cluster.api.client(NS), NS);
    api.list(&Default::default()).await.unwrap().items
}

#[tokio::test]
async fn sail_status_is_answered_from_the_watch() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = cluster
        .engines
        .create(request("Sail", "0.7.2", &[]))
        .await
        .unwrap();
    cluster.wait_for_pod(&id).await;
    assert_eq!(pods(&cluster).await.len(), 1);
    assert!(matches!(
        cluster.resources.status(&id).await.unwrap(),
        ResourceStatus::Pending { .. }
    ));
    cluster.shutdown().await;
}
