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
    assert_eq!(pod["metadata"]["labels"][names::GATEWAY_ONLY], "true");
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

/// A third party's kind written before Kubernetes support: it compiles
/// unchanged, and the Kubernetes resource manager refuses its engines with
/// the kind's own words, before any call.
#[tokio::test]
async fn a_kind_without_a_kube_plan_is_refused_without_a_call() {
    use std::path::Path;

    use rucat_core::kind::{EngineKind, Kinds, Launch, LaunchPlan, LocalInstall};
    use rucat_core::resource::local::{LocalConfig, LocalSetupError};
    use rucat_core::{EngineSpec, EngineType, ResourceError};

    struct Files;

    #[async_trait::async_trait]
    impl EngineKind for Files {
        fn name(&self) -> &'static str {
            "Files"
        }
        fn check_version(&self, _version: &str) -> Result<(), String> {
            Ok(())
        }
        fn version_pattern(&self) -> &'static str {
            ".*"
        }
        fn reserved_configs(&self) -> &'static [&'static str] {
            &[]
        }
        fn served_by_gateway(&self, _version: &str) -> bool {
            false
        }
        async fn locate(&self, _config: &LocalConfig) -> Result<LocalInstall, LocalSetupError> {
            Err(LocalSetupError::KindUnavailable {
                kind: "Files".into(),
                reason: "not here".into(),
            })
        }
        fn process_marker(&self, _engine_dir: &Path) -> String {
            String::new()
        }
        fn launch_plan(&self, _launch: &Launch<'_>) -> Result<LaunchPlan, String> {
            Err("not here".into())
        }
    }

    let api = rucat_k8s_testserver::TestServer::start().await;
    let resources =
        rucat_k8s::KubernetesResourceManager::new(api.client(NS), support::k8s_config())
            .with_kinds(Kinds::builtin().clone().register(Files))
            .unwrap();
    let spec = EngineSpec {
        engine_type: EngineType::new("Files"),
        ..request("Sail", "0.7.2", &[]).validate().unwrap()
    };
    api.reset_calls();
    let err = resources.create(&spec).await.unwrap_err();
    assert!(
        matches!(&err, ResourceError::Rejected(reason) if reason == "Files engines cannot run on Kubernetes"),
        "{err:?}"
    );
    assert!(
        api.calls()
            .iter()
            .all(|c| c.is_watch() || c.verb == rucat_k8s_testserver::Verb::List),
        "nothing but the watch"
    );
    assert!(api.list(Resource::Pods).is_empty());
}

fn executor(id: &EngineId, n: u16) -> String {
    names::member_name(id, &format!("executor-{n}"))
}

/// A Ballista engine's pods as the server has them: the scheduler, then the
/// executors in order.
fn ballista_pods(cluster: &Cluster, id: &EngineId, executors: u16) -> Vec<serde_json::Value> {
    std::iter::once(names::object_name(id))
        .chain((1..=executors).map(|n| executor(id, n)))
        .filter_map(|name| cluster.api.get(NS, Resource::Pods, &name))
        .collect()
}

async fn wait_for_ballista_pods(cluster: &Cluster, id: &EngineId, executors: u16) {
    for _ in 0..1200 {
        if ballista_pods(cluster, id, executors).len() == usize::from(executors) + 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the pods of {id} were never all created");
}

async fn running_ballista(cluster: &Cluster, executors: u16) -> EngineId {
    let id = cluster
        .engines
        .create(request(
            "Ballista",
            "55.0.0",
            &[("executors", &executors.to_string())],
        ))
        .await
        .unwrap();
    wait_for_ballista_pods(cluster, &id, executors).await;
    cluster.set_running(&id);
    for n in 1..=executors {
        cluster.api.set_pod_running(NS, &executor(&id, n)).unwrap();
    }
    cluster.wait_for(&id, EngineState::Running).await;
    id
}

#[tokio::test]
async fn a_ballista_engine_runs_once_its_scheduler_and_every_executor_are_ready() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = cluster
        .engines
        .create(request(
            "Ballista",
            "55.0.0",
            &[("executors", "2"), ("executor.vcores", "4")],
        ))
        .await
        .unwrap();
    wait_for_ballista_pods(&cluster, &id, 2).await;
    let pods = ballista_pods(&cluster, &id, 2);
    let scheduler_uid = pods[0]["metadata"]["uid"].clone();
    for executor in &pods[1..] {
        let owner = &executor["metadata"]["ownerReferences"][0];
        assert_eq!(
            owner["uid"], scheduler_uid,
            "executors are owned by the scheduler pod"
        );
        assert_eq!(owner["kind"], "Pod");
        assert_eq!(
            executor["spec"]["containers"][0]["image"],
            "ghcr.io/apache/datafusion-ballista-executor:55.0.0"
        );
    }
    let service = cluster.service(&id).expect("the scheduler's service");
    assert_eq!(
        service["metadata"]["ownerReferences"][0]["uid"],
        scheduler_uid
    );
    assert_eq!(service["spec"]["ports"][0]["port"], 50050);
    assert!(
        cluster.api.list(Resource::Secrets).is_empty(),
        "no token to keep"
    );

    // Ready one by one: Running only with the last.
    cluster.api.reset_calls();
    cluster.set_running(&id);
    cluster.api.set_pod_running(NS, &executor(&id, 1)).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let waiting = cluster.engines.get(&id).await.unwrap();
    assert_eq!(
        waiting.state,
        EngineState::StartInProgress,
        "executor-2 is not ready"
    );
    assert!(matches!(
        cluster.resources.status(&id).await.unwrap(),
        ResourceStatus::Pending { reason: Some(reason) } if reason.contains("executor-2")
    ));
    cluster.api.set_pod_running(NS, &executor(&id, 2)).unwrap();
    let running = cluster.wait_for(&id, EngineState::Running).await;
    let name = names::object_name(&id);
    assert_eq!(
        running.endpoint,
        Some(format!("df://{name}.{NS}.svc:50050")),
        "the scheduler's service, not the gateway"
    );
    assert_eq!(
        cluster
            .api
            .count(rucat_k8s_testserver::Verb::Get, Resource::Pods)
            + cluster
                .api
                .count(rucat_k8s_testserver::Verb::List, Resource::Pods),
        0,
        "status comes from the watch cache, executors included"
    );

    cluster.engines.stop(&id).await.unwrap();
    cluster.wait_for(&id, EngineState::Terminated).await;
    assert!(
        cluster.api.list(Resource::Pods).is_empty(),
        "deleting the scheduler pod deleted its executors"
    );
    assert!(cluster.api.list(Resource::Services).is_empty());

    // A restart makes them all again.
    cluster.engines.restart(&id).await.unwrap();
    wait_for_ballista_pods(&cluster, &id, 2).await;
    cluster.set_running(&id);
    for n in 1..=2 {
        cluster.api.set_pod_running(NS, &executor(&id, n)).unwrap();
    }
    cluster.wait_for(&id, EngineState::Running).await;
    cluster.engines.stop(&id).await.unwrap();
    cluster.wait_for(&id, EngineState::Terminated).await;
    cluster.engines.delete(&id).await.unwrap();
    assert!(cluster.api.list(Resource::Pods).is_empty());
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_failing_executor_fails_the_ballista_engine_with_its_logs_reason() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = running_ballista(&cluster, 2).await;
    let failing = executor(&id, 2);
    cluster
        .api
        .append_pod_log(
            NS,
            &failing,
            "executor",
            &[
                "INFO ballista_executor: starting",
                "Error: Internal(\"Failed to connect to scheduler: transport error\")",
            ],
        )
        .unwrap();
    cluster
        .api
        .set_pod_failed(NS, &failing, 1, "Error")
        .unwrap();
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap();
    assert!(
        error.starts_with("the executor-2 container ended: Error (exit code 1); end of its log:\n"),
        "{error}"
    );
    assert!(error.contains("Failed to connect to scheduler"), "{error}");
    assert!(
        cluster.api.list(Resource::Pods).is_empty(),
        "all cleaned up"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_executor_deleted_while_running_fails_the_engine() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = running_ballista(&cluster, 1).await;
    let gone = executor(&id, 1);
    cluster.api.delete(NS, Resource::Pods, &gone).unwrap();
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap();
    assert!(error.contains(&gone), "{error}");
    assert!(cluster.pod(&id).is_none());
    cluster.shutdown().await;
}

/// A create retried after a crash between the scheduler pod and its
/// executors adopts what exists and creates only what is missing; again,
/// it changes nothing.
#[tokio::test]
async fn a_retried_ballista_create_adopts_what_exists_and_creates_what_is_missing() {
    use rucat_core::kind::Kinds;

    let cluster = Cluster::start(|_, _| {}).await;
    let spec = request("Ballista", "55.0.0", &[("executors", "3")])
        .validate()
        .unwrap();
    let config = support::k8s_config();
    let kind = Kinds::builtin().get(&spec.engine_type).unwrap();
    let plan = rucat_k8s::plan::plan_for(&spec, kind.as_ref(), &config).unwrap();
    // What the crashed attempt made: the scheduler pod and one executor.
    let api: Api<Pod> = Api::namespaced(cluster.api.client(NS), NS);
    let main = api
        .create(
            &Default::default(),
            &rucat_k8s::plan::main_pod(&spec, kind.as_ref(), &plan, &config),
        )
        .await
        .unwrap();
    let main_uid = main.metadata.uid.unwrap();
    let first = api
        .create(
            &Default::default(),
            &rucat_k8s::plan::member_pod(
                &spec,
                kind.as_ref(),
                &plan,
                &plan.members[0],
                &config,
                &main_uid,
            ),
        )
        .await
        .unwrap();

    let uids = || {
        ballista_pods(&cluster, &spec.id, 3)
            .iter()
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    for _ in 0..2 {
        cluster.resources.create(&spec).await.unwrap();
        let now = uids();
        assert_eq!(now.len(), 4, "the scheduler and 3 executors");
        assert_eq!(now[0], main_uid, "the scheduler pod is adopted");
        assert_eq!(
            now[1],
            first.metadata.uid.clone().unwrap(),
            "so is executor-1"
        );
        for executor in &ballista_pods(&cluster, &spec.id, 3)[1..] {
            assert_eq!(
                executor["metadata"]["ownerReferences"][0]["uid"],
                main_uid.as_str()
            );
        }
        assert_eq!(cluster.api.list(Resource::Services).len(), 1);
    }
    cluster.shutdown().await;
}

/// An executor of the engine's previous start, still terminating after its
/// scheduler pod went (here held by a finalizer), is not adopted by the new
/// start: the create says so and leaves nothing, and succeeds once it is
/// gone.
#[tokio::test]
async fn an_executor_of_an_earlier_start_is_waited_for_not_adopted() {
    use rucat_core::ResourceError;

    let cluster = Cluster::start(|_, _| {}).await;
    let spec = request("Ballista", "55.0.0", &[("executors", "1")])
        .validate()
        .unwrap();
    cluster.resources.create(&spec).await.unwrap();
    let old = executor(&spec.id, 1);
    cluster.api.add_finalizer(NS, Resource::Pods, &old).unwrap();
    cluster.resources.delete(&spec.id).await.unwrap();
    let lingering = cluster.api.get(NS, Resource::Pods, &old).unwrap();
    assert!(lingering["metadata"]["deletionTimestamp"].is_string());

    let err = cluster.resources.create(&spec).await.unwrap_err();
    assert!(
        matches!(&err, ResourceError::Unavailable(reason) if reason.contains("earlier start")),
        "{err:?}"
    );
    assert!(
        cluster.pod(&spec.id).is_none(),
        "the new scheduler pod is removed again"
    );

    cluster
        .api
        .remove_finalizers(NS, Resource::Pods, &old)
        .unwrap();
    cluster.resources.create(&spec).await.unwrap();
    let scheduler = cluster.pod(&spec.id).unwrap();
    let fresh = cluster.api.get(NS, Resource::Pods, &old).unwrap();
    assert_eq!(
        fresh["metadata"]["ownerReferences"][0]["uid"],
        scheduler["metadata"]["uid"]
    );
    cluster.shutdown().await;
}

/// A Ballista lifecycle with adoption and a failed executor's log needs no
/// access beyond what the Role grants for Spark (`rucat_k8s::rbac`).
#[tokio::test]
async fn ballista_needs_no_more_access_than_the_role_grants() {
    let cluster = Cluster::start(|_, _| {}).await;
    let spec = request("Ballista", "55.0.0", &[("executors", "2")])
        .validate()
        .unwrap();
    cluster.resources.create(&spec).await.unwrap();
    cluster.resources.create(&spec).await.unwrap(); // adopts all of it
    let failing = executor(&spec.id, 2);
    cluster
        .api
        .set_pod_running(NS, &names::object_name(&spec.id))
        .unwrap();
    cluster.api.set_pod_running(NS, &failing).unwrap();
    cluster
        .api
        .append_pod_log(NS, &failing, "executor", &["Error: boom"])
        .unwrap();
    cluster
        .api
        .set_pod_failed(NS, &failing, 1, "Error")
        .unwrap();
    loop {
        if let Ok(ResourceStatus::Failed { reason }) = cluster.resources.status(&spec.id).await {
            assert!(reason.contains("boom"), "{reason}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut log = cluster
        .resources
        .log(&spec.id, LogQuery::WHOLE)
        .await
        .unwrap()
        .expect("the scheduler's log");
    tokio::io::copy(&mut log, &mut tokio::io::sink())
        .await
        .unwrap();
    cluster.resources.delete(&spec.id).await.unwrap();

    let used = support::permissions_used(&cluster.api);
    let listed = support::permissions_granted();
    assert!(
        used.is_subset(&listed),
        "{:?}",
        used.difference(&listed).collect::<Vec<_>>()
    );
    for needed in [("pods", "create"), ("pods", "get"), ("pods/log", "get")] {
        assert!(
            used.contains(&(needed.0.to_owned(), needed.1.to_owned())),
            "{needed:?} was exercised"
        );
    }
    cluster.shutdown().await;
}
