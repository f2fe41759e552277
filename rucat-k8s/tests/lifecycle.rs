//! The monitor and the Kubernetes resource manager driving engines end to end
//! against the Kubernetes API test server (real HTTP, JSON and watch streams),
//! with the test playing the kubelet: lifecycle, failures, adoption.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::Api;
use kube::api::PostParams;
use rucat_core::resource::LogQuery;
use rucat_core::{
    CreateEngineRequest, EngineId, EngineState, EngineToken, ResourceError, ResourceManager,
    ResourceStatus,
};
use rucat_k8s::{KubernetesConfig, KubernetesResourceManager, build, names};
use rucat_k8s_testserver::{Resource, TestServer, Verb};
use support::{Cluster, NS};

#[tokio::test]
async fn full_lifecycle_without_polling_the_api_server() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = cluster.create().await;
    cluster.wait_for_pod(&id).await;
    cluster.wait_for(&id, EngineState::StartInProgress).await;

    // The pod and its service, as built, with the service owned by the pod.
    let pod = cluster.pod(&id).unwrap();
    assert_eq!(pod["metadata"]["labels"][names::MANAGED_BY], "rucat");
    assert_eq!(pod["metadata"]["labels"][names::ENGINE_ID], id.to_string());
    assert_eq!(pod["spec"]["serviceAccountName"], "rucat-spark");
    let service = cluster
        .service(&id)
        .expect("the service is created with the pod");
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(
        service["metadata"]["ownerReferences"][0]["uid"],
        pod["metadata"]["uid"]
    );

    cluster.api.reset_calls();
    cluster
        .api
        .set_pod_running(NS, &names::object_name(&id))
        .unwrap();
    let running = cluster.wait_for(&id, EngineState::Running).await;
    assert_eq!(
        running.endpoint,
        Some(format!("sc://rucat-{id}.{NS}.svc:15002"))
    );
    // Let the monitor check the running engine several times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cluster.api.count(Verb::Get, Resource::Pods),
        0,
        "status comes from the watch cache"
    );
    assert_eq!(cluster.api.count(Verb::List, Resource::Pods), 0);

    cluster.engines.stop(&id).await.unwrap();
    cluster.wait_for(&id, EngineState::Terminated).await;
    assert!(
        cluster.pod(&id).is_none() && cluster.service(&id).is_none(),
        "pod and service deleted"
    );

    cluster.engines.restart(&id).await.unwrap();
    cluster.wait_for_pod(&id).await;
    cluster
        .api
        .set_pod_running(NS, &names::object_name(&id))
        .unwrap();
    cluster.wait_for(&id, EngineState::Running).await;
    cluster.engines.stop(&id).await.unwrap();
    cluster.wait_for(&id, EngineState::Terminated).await;
    cluster.engines.delete(&id).await.unwrap();
    assert!(cluster.api.list(Resource::Pods).is_empty());
    assert!(cluster.api.list(Resource::Services).is_empty());
    let calls = cluster.api.calls();
    assert!(!calls.is_empty());
    for call in calls {
        assert_eq!(
            call.user_agent.as_deref(),
            Some(rucat_k8s::agent::USER_AGENT),
            "{call:?}"
        );
    }
    cluster.shutdown().await;
}

/// The driver gets the engine's token from a Secret that only rucat and
/// the pod's own account read, never from its spec (which anyone who may
/// list pods sees); each start has its own, and it goes with the pod.
#[tokio::test]
async fn the_token_reaches_the_driver_through_a_secret_owned_by_its_pod() {
    let cluster = Cluster::start(|_, _| {}).await;
    let secrets: Api<Secret> = Api::namespaced(cluster.api.client(NS), NS);
    let id = cluster.create().await;
    let name = names::object_name(&id);
    let mut seen = Vec::new();
    for _ in 0..2 {
        cluster.wait_for_pod(&id).await;
        cluster.set_running(&id);
        let running = cluster.wait_for(&id, EngineState::Running).await;
        let token = running
            .spec
            .token
            .expect("the monitor gave the start a token");
        let pod = cluster.pod(&id).unwrap();
        assert!(
            !pod.to_string().contains(token.expose()),
            "the token is not in the pod"
        );
        let env = &pod["spec"]["containers"][0]["env"][0];
        assert_eq!(env["name"], names::TOKEN_ENV);
        assert_eq!(env["valueFrom"]["secretKeyRef"]["name"], name.as_str());
        assert_eq!(env["valueFrom"]["secretKeyRef"]["key"], names::TOKEN_KEY);
        let secret = secrets.get(&name).await.unwrap();
        assert_eq!(
            secret.data.unwrap()[names::TOKEN_KEY].0,
            token.expose().as_bytes()
        );
        assert_eq!(
            secret.metadata.owner_references.unwrap()[0].uid,
            pod["metadata"]["uid"].as_str().unwrap()
        );
        seen.push(token);

        cluster.api.reset_calls();
        cluster.engines.stop(&id).await.unwrap();
        cluster.wait_for(&id, EngineState::Terminated).await;
        assert!(
            cluster.api.get(NS, Resource::Secrets, &name).is_none(),
            "the Secret goes with its pod"
        );
        assert_eq!(
            cluster.api.count_where(|c| matches!(c.verb, Verb::Delete)),
            2,
            "stopping still costs 2 writes"
        );
        cluster.engines.restart(&id).await.unwrap();
    }
    assert_ne!(seen[0], seen[1], "each start has its own token");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_driver_that_fails_while_running_is_cleaned_up_with_its_reason() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = cluster.create().await;
    cluster.wait_for_pod(&id).await;
    cluster
        .api
        .set_pod_running(NS, &names::object_name(&id))
        .unwrap();
    cluster.wait_for(&id, EngineState::Running).await;

    cluster
        .api
        .set_pod_failed(NS, &names::object_name(&id), 137, "OOMKilled")
        .unwrap();
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap();
    assert!(
        error.contains("OOMKilled") && error.contains("137"),
        "{error}"
    );
    assert!(cluster.pod(&id).is_none() && cluster.service(&id).is_none());
    cluster.engines.delete(&id).await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_driver_stuck_pending_fails_at_the_deadline_with_the_last_reason() {
    let cluster =
        Cluster::start(|monitor, _| monitor.start_deadline = Duration::from_secs(2)).await;
    let id = cluster.create().await;
    cluster.wait_for_pod(&id).await;
    let message = "0/3 nodes are available: 3 Insufficient memory.";
    cluster
        .api
        .set_pod_unschedulable(NS, &names::object_name(&id), message)
        .unwrap();
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap();
    assert!(error.contains("start deadline"), "{error}");
    assert!(
        error.contains(&format!("Unschedulable: {message}")),
        "{error}"
    );
    assert!(cluster.pod(&id).is_none() && cluster.service(&id).is_none());
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_the_reason_at_the_deadline() {
    let cluster =
        Cluster::start(|monitor, _| monitor.start_deadline = Duration::from_secs(2)).await;
    let id = cluster.create().await;
    cluster.wait_for_pod(&id).await;
    cluster
        .api
        .set_pod_waiting(
            NS,
            &names::object_name(&id),
            "ImagePullBackOff",
            "Back-off pulling image \"apache/spark:4.0.1\"",
        )
        .unwrap();
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    assert!(
        clean
            .error
            .unwrap()
            .contains("ImagePullBackOff: Back-off pulling image")
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_api_server_is_retried_without_corrupting_state() {
    let cluster = Cluster::start(|_, _| {}).await;
    // Running engine first: during the outage the cache keeps serving it.
    let running = cluster.create().await;
    cluster.wait_for_pod(&running).await;
    cluster
        .api
        .set_pod_running(NS, &names::object_name(&running))
        .unwrap();
    cluster.wait_for(&running, EngineState::Running).await;

    cluster.api.set_unavailable(true);
    let created_during_outage = cluster.create().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = cluster.engines.get(&created_during_outage).await.unwrap();
    assert!(
        matches!(
            waiting.state,
            EngineState::WaitToStart | EngineState::TriggerStart
        ),
        "nothing moved on a failed create: {:?}",
        waiting.state
    );
    assert!(
        waiting.retries > 0 || waiting.lease.is_some(),
        "the monitor is retrying"
    );
    assert_eq!(waiting.error, None);
    let still = cluster.engines.get(&running).await.unwrap();
    assert_eq!(
        still.state,
        EngineState::Running,
        "the outage does not fail running engines"
    );

    cluster.api.set_unavailable(false);
    cluster.wait_for_pod(&created_during_outage).await;
    cluster
        .api
        .set_pod_running(NS, &names::object_name(&created_during_outage))
        .unwrap();
    cluster
        .wait_for(&created_during_outage, EngineState::Running)
        .await;
    assert_eq!(
        cluster.api.list(Resource::Pods).len(),
        2,
        "one pod per engine, none twice"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_pod_stuck_terminating_is_force_deleted_without_hanging_the_monitor() {
    let api = TestServer::builder()
        .graceful_pod_deletion(true)
        .start()
        .await;
    let cluster = Cluster::start_on(api, |_, k8s| {
        k8s.driver.termination_grace_period_secs = Some(1);
        k8s.force_delete_after_secs = 1;
    })
    .await;
    let stuck = cluster.create().await;
    cluster.wait_for_pod(&stuck).await;
    cluster
        .api
        .set_pod_running(NS, &names::object_name(&stuck))
        .unwrap();
    cluster.wait_for(&stuck, EngineState::Running).await;

    cluster.engines.stop(&stuck).await.unwrap();
    cluster
        .wait_for(&stuck, EngineState::TerminateInProgress)
        .await;
    assert!(
        cluster.pod(&stuck).unwrap()["metadata"]["deletionTimestamp"].is_string(),
        "terminating"
    );
    // Meanwhile the monitor keeps serving other engines.
    let other = cluster.create().await;
    cluster.wait_for_pod(&other).await;
    cluster
        .api
        .set_pod_running(NS, &names::object_name(&other))
        .unwrap();
    cluster.wait_for(&other, EngineState::Running).await;
    // The kubelet never confirms the deletion: only the monitor's delete with
    // no grace period, once the pod is `force_delete_after_secs` past its
    // grace period, removes it.
    cluster.wait_for(&stuck, EngineState::Terminated).await;
    assert!(cluster.pod(&stuck).is_none());
    cluster.shutdown().await;
}

fn spec(version: &str) -> rucat_core::EngineSpec {
    CreateEngineRequest::spark("direct", version)
        .validate()
        .unwrap()
}

#[tokio::test]
async fn create_adopts_an_existing_driver_pod() {
    let api = TestServer::start().await;
    let config = KubernetesConfig {
        namespace: NS.into(),
        ..KubernetesConfig::default()
    };
    let resources = KubernetesResourceManager::new(api.client(NS), config.clone());
    let spec = spec("4.0.1");
    // A monitor created the pod, then died before creating the service.
    let pods: Api<Pod> = Api::namespaced(api.client(NS), NS);
    let existing = pods
        .create(&PostParams::default(), &build::driver_pod(&spec, &config))
        .await
        .unwrap();

    resources.create(&spec).await.unwrap();
    resources.create(&spec).await.unwrap(); // and again: still one of each
    assert_eq!(api.list(Resource::Pods).len(), 1);
    let services: Api<Service> = Api::namespaced(api.client(NS), NS);
    let service = services.get(&names::object_name(&spec.id)).await.unwrap();
    let owner = &service.metadata.owner_references.unwrap()[0];
    assert_eq!(
        Some(owner.uid.clone()),
        existing.metadata.uid,
        "the service belongs to the adopted pod"
    );
}

/// The calls of a lifecycle with adoption use exactly the access
/// `rbac::PERMISSIONS` lists (which the Helm chart's Role grants).
#[tokio::test]
async fn the_calls_need_exactly_the_listed_permissions() {
    let api = TestServer::start().await;
    let config = support::k8s_config();
    let resources = KubernetesResourceManager::new(support::client(&api), config.clone());
    let mut spec = spec("4.0.1");
    spec.token = Some(EngineToken::generate().unwrap());
    // Someone created the pod already: rucat adopts it; and a Secret of an
    // earlier start is left: rucat makes it this start's.
    let pod = serde_json::to_value(build::driver_pod(&spec, &config)).unwrap();
    let pod = api.create(NS, Resource::Pods, pod).unwrap();
    let stale = EngineToken::generate().unwrap();
    let mut secret = build::secret(&spec, &config, "no-pod", &stale);
    // (The test server collects an object whose owner is gone at once.)
    secret.metadata.owner_references = None;
    api.create(NS, Resource::Secrets, serde_json::to_value(secret).unwrap())
        .unwrap();
    resources.create(&spec).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(api.client(NS), NS);
    let secret = secrets.get(&names::object_name(&spec.id)).await.unwrap();
    assert_eq!(
        secret.data.unwrap()[names::TOKEN_KEY].0,
        spec.token.as_ref().unwrap().expose().as_bytes()
    );
    assert_eq!(
        secret.metadata.owner_references.unwrap()[0].uid,
        pod["metadata"]["uid"].as_str().unwrap()
    );
    api.set_pod_running(NS, &names::object_name(&spec.id))
        .unwrap();
    while !matches!(
        resources.status(&spec.id).await,
        Ok(ResourceStatus::Running { .. })
    ) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The monitor reads the log before it deletes.
    let mut log = resources
        .log(&spec.id, LogQuery::WHOLE)
        .await
        .unwrap()
        .expect("a running driver has a log");
    tokio::io::copy(&mut log, &mut tokio::io::sink())
        .await
        .unwrap();
    resources.delete(&spec.id).await.unwrap();

    let used = support::permissions_used(&api);
    let listed = support::permissions_granted();
    assert_eq!(used, listed);
}

#[tokio::test]
async fn a_failed_service_creation_removes_the_pod() {
    let api = TestServer::start().await;
    let config = KubernetesConfig {
        namespace: NS.into(),
        ..KubernetesConfig::default()
    };
    let resources = KubernetesResourceManager::new(api.client(NS), config);
    let spec = spec("4.0.1");
    api.fail_next(Verb::Create, Resource::Services, 403, "Forbidden");
    let err = resources.create(&spec).await.unwrap_err();
    assert!(
        matches!(err, ResourceError::Rejected(ref m) if m.contains("Forbidden")),
        "{err:?}"
    );
    assert!(
        api.list(Resource::Pods).is_empty(),
        "the pod of a failed create is removed"
    );
    assert!(api.list(Resource::Services).is_empty());
}

#[tokio::test]
async fn delete_is_idempotent_and_status_needs_a_synced_cache() {
    let api = TestServer::start().await;
    let config = KubernetesConfig {
        namespace: NS.into(),
        ..KubernetesConfig::default()
    };
    api.set_unavailable(true);
    let resources = KubernetesResourceManager::new(api.client(NS), config);
    let id = EngineId::generate();
    assert!(
        matches!(
            resources.status(&id).await,
            Err(ResourceError::Unavailable(_))
        ),
        "not synced yet"
    );
    api.set_unavailable(false);
    for _ in 0..200 {
        if resources.status(&id).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(resources.status(&id).await.unwrap(), ResourceStatus::Gone);
    resources.delete(&id).await.unwrap();
    resources.delete(&id).await.unwrap();
}

#[tokio::test]
async fn kinds_it_does_not_know_are_refused_without_a_call() {
    let api = TestServer::start().await;
    let config = KubernetesConfig {
        namespace: NS.into(),
        ..KubernetesConfig::default()
    };
    let resources = KubernetesResourceManager::new(api.client(NS), config);
    let mut spec = CreateEngineRequest::spark("s", "4.3.0").validate().unwrap();
    spec.engine_type = rucat_core::EngineType::new("Flink");
    spec.version = "2.0.0".into();
    let err = resources.create(&spec).await.unwrap_err();
    assert!(
        matches!(&err, ResourceError::Rejected(reason) if reason.contains("knows no engine kind Flink")),
        "{err:?}"
    );
    assert!(api.list(Resource::Pods).is_empty());
}
