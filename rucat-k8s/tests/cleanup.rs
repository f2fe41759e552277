//! Stopping and cleaning up engines as on a real cluster: pods that take
//! their grace period to terminate, and an account Kubernetes forbids to
//! create or delete (a missing Role).

mod support;

use std::time::{Duration, Instant};

use rucat_core::{EngineError, EngineId, EngineState};
use rucat_k8s::names;
use rucat_k8s_testserver::{Resource, TestServer, Verb};
use support::{Cluster, NS};

fn is_write(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
    )
}

/// Waits until the engine's error says `text`.
async fn wait_for_error(cluster: &Cluster, id: &EngineId, text: &str) -> String {
    let started = Instant::now();
    loop {
        let engine = cluster.engines.get(id).await.unwrap();
        if let Some(error) = engine.error.filter(|e| e.contains(text)) {
            return error;
        }
        assert!(
            started.elapsed() < support::WAIT,
            "{id} is {} with error {:?}",
            engine.state,
            cluster.engines.get(id).await.unwrap().error
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stop_costs_two_writes_however_long_the_pod_takes_to_terminate() {
    // Kubernetes' default grace period (30 s), ended by the node.
    let api = TestServer::builder()
        .kubelet_ends_grace_periods(true)
        .start()
        .await;
    let cluster = Cluster::start_on(api, |_, _| {}).await;
    let id = cluster.running_engine().await;
    assert_eq!(
        cluster.pod(&id).unwrap()["spec"]["terminationGracePeriodSeconds"],
        30
    );

    cluster.api.reset_calls();
    let stopped = Instant::now();
    cluster.engines.stop(&id).await.unwrap();
    cluster
        .wait_for(&id, EngineState::TerminateInProgress)
        .await;
    assert!(
        cluster.pod(&id).unwrap()["metadata"]["deletionTimestamp"].is_string(),
        "the pod terminates for its grace period"
    );
    cluster
        .engines
        .wait_for(&id, EngineState::Terminated, Duration::from_secs(45))
        .await
        .unwrap();
    let took = stopped.elapsed();
    assert!(took >= Duration::from_secs(28), "terminated after {took:?}");

    let writes: Vec<_> = cluster
        .api
        .calls()
        .into_iter()
        .filter(|c| is_write(c.verb))
        .collect();
    eprintln!(
        "a stop with a 30 s termination took {took:?} and {} writes",
        writes.len()
    );
    assert_eq!(writes.len(), 2, "{writes:#?}");
    assert!(
        writes
            .iter()
            .all(|c| c.verb == Verb::Delete && c.code == 200)
    );
    assert_eq!(writes[0].resource, Some(Resource::Pods));
    assert_eq!(writes[1].resource, Some(Resource::Services));
    assert_eq!(
        cluster.api.count(Verb::Get, Resource::Pods),
        0,
        "waiting costs no reads either"
    );
    assert!(cluster.pod(&id).is_none() && cluster.service(&id).is_none());
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_pod_deleted_by_someone_else_is_cleaned_up_as_it_terminates() {
    let api = TestServer::builder()
        .kubelet_ends_grace_periods(true)
        .start()
        .await;
    let cluster = Cluster::start_on(api, |_, k8s| {
        k8s.driver.termination_grace_period_secs = Some(2);
    })
    .await;
    let id = cluster.running_engine().await;
    cluster.api.reset_calls();
    // `kubectl delete pod`, or an eviction.
    cluster
        .api
        .delete(NS, Resource::Pods, &names::object_name(&id))
        .unwrap();
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    assert!(
        clean.error.as_deref().unwrap().contains("being deleted"),
        "{:?}",
        clean.error
    );
    assert!(cluster.pod(&id).is_none() && cluster.service(&id).is_none());
    assert!(
        cluster.api.count(Verb::Delete, Resource::Pods) <= 1,
        "the terminating pod is waited for, not deleted again and again"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_forbidden_create_fails_the_engine_saying_so() {
    let cluster = Cluster::start(|_, _| {}).await;
    cluster
        .api
        .fail_always(Verb::Create, Resource::Pods, 403, "Forbidden");
    let id = cluster.create().await;
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap();
    assert!(
        error.starts_with("Kubernetes forbids rucat to create the driver pod")
            && error.contains("403 Forbidden"),
        "{error}"
    );
    assert!(
        !error.contains("cleanup blocked"),
        "deleting what was never made is no trouble: {error}"
    );
    cluster.engines.delete(&id).await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_cleanup_kubernetes_forbids_shows_why_and_force_delete_is_the_way_out() {
    let cluster = Cluster::start(|_, _| {}).await;
    for (verb, resource) in [
        (Verb::Create, Resource::Pods),
        (Verb::Delete, Resource::Pods),
        (Verb::Delete, Resource::Services),
    ] {
        cluster.api.fail_always(verb, resource, 403, "Forbidden");
    }
    let id = cluster.create().await;
    let error = wait_for_error(&cluster, &id, "cleanup blocked").await;
    let name = names::object_name(&id);
    assert!(
        error.starts_with("Kubernetes forbids rucat to create the driver pod"),
        "the engine's own reason stays first: {error}"
    );
    assert!(
        error.contains(
            "cleanup blocked, retrying: Kubernetes forbids rucat to delete the driver pod"
        ),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "may remain: pod {name} and service {name} in namespace {NS}"
        )),
        "{error}"
    );
    let stuck = cluster.engines.get(&id).await.unwrap();
    assert!(stuck.state.is_cleaning_up(), "{}", stuck.state);
    for refused in [
        cluster.engines.stop(&id).await,
        cluster.engines.delete(&id).await,
    ] {
        assert!(
            matches!(refused, Err(EngineError::InvalidState { .. })),
            "{refused:?}"
        );
    }

    let forgotten = cluster.engines.force_delete(&id).await.unwrap();
    assert!(forgotten.error.unwrap().contains("may remain"));
    assert!(matches!(
        cluster.engines.get(&id).await,
        Err(EngineError::NotFound(_))
    ));
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_stop_kubernetes_forbids_is_retried_showing_why_until_it_is_allowed() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = cluster.running_engine().await;
    cluster
        .api
        .fail_always(Verb::Delete, Resource::Pods, 403, "Forbidden");
    cluster.engines.stop(&id).await.unwrap();
    let error = wait_for_error(&cluster, &id, "cleanup blocked").await;
    assert!(
        error.contains("forbids rucat to delete the driver pod"),
        "{error}"
    );
    assert!(cluster.pod(&id).is_some());

    // The administrator fixes the Role.
    cluster.api.clear_failures();
    let stopped = cluster
        .engines
        .wait_for(&id, EngineState::Terminated, Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(stopped.error, None);
    assert!(cluster.pod(&id).is_none() && cluster.service(&id).is_none());
    cluster.shutdown().await;
}
