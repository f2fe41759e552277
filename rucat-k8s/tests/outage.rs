//! API server outages, as a real cluster has them: the server away for a
//! minute while other clients keep writing, and the watch's resourceVersion
//! compacted away meanwhile, so no watch can resume where it stopped (410).
//! rucat must not act on what it missed: no healthy engine may be failed or
//! its pod deleted, and it must catch up within its capped watch backoff.
//!
//! The outage is real time (60 s), as the issue that found this measured it:
//! it lets the watch's retries reach their cap, which is what made recovery
//! slow with kube's default backoff.

mod support;

use std::time::{Duration, Instant};

use rucat_core::{EngineId, EngineState, ResourceError, ResourceManager, ResourceStatus};
use rucat_k8s::backoff::Backoff;
use rucat_k8s::names;
use rucat_k8s_testserver::{Resource, Verb};
use serde_json::json;
use support::{Cluster, NS};

const OUTAGE: Duration = Duration::from_secs(60);

/// Long enough for a create that was retried through the outage: the
/// monitor's own backoff (up to 60 s) decides when it tries again.
const AFTER_OUTAGE: Duration = Duration::from_secs(120);

/// Other clients' writes: objects come and go, bumping the resourceVersion.
fn other_clients_write(cluster: &Cluster, round: usize) {
    let name = format!("other-{round}");
    cluster
        .api
        .create(
            NS,
            Resource::ConfigMaps,
            json!({"metadata": {"name": name}, "data": {"round": round.to_string()}}),
        )
        .unwrap();
    if round % 2 == 1 {
        cluster
            .api
            .delete(NS, Resource::ConfigMaps, &format!("other-{}", round - 1))
            .unwrap();
    }
}

fn healthy(state: EngineState) -> bool {
    matches!(
        state,
        EngineState::TriggerStart | EngineState::StartInProgress | EngineState::Running
    )
}

async fn assert_untouched(cluster: &Cluster, ids: &[&EngineId], when: &str) {
    for id in ids {
        assert!(cluster.pod(id).is_some(), "{when}: the pod of {id} is gone");
        assert!(
            cluster.service(id).is_some(),
            "{when}: the service of {id} is gone"
        );
        let engine = cluster.engines.get(id).await.unwrap();
        assert!(
            healthy(engine.state),
            "{when}: {id} is {} ({:?})",
            engine.state,
            engine.error
        );
    }
}

#[tokio::test]
async fn no_healthy_engine_is_touched_across_an_outage_and_the_cache_catches_up_at_once() {
    let cluster = Cluster::start(|_, _| {}).await;
    let running = cluster.running_engine().await;
    let starting = cluster.create().await;
    cluster.wait_for_pod(&starting).await;
    cluster
        .wait_for(&starting, EngineState::StartInProgress)
        .await;
    cluster.api.reset_calls();

    cluster.api.set_unavailable(true);
    let outage = Instant::now();
    let created_during = cluster.create().await;
    // The node makes the starting engine's pod ready while rucat cannot see.
    cluster.set_running(&starting);
    let mut round = 0;
    while outage.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_secs(1)).await;
        other_clients_write(&cluster, round);
        round += 1;
        assert_untouched(&cluster, &[&running, &starting], "during the outage").await;
        assert!(
            matches!(
                cluster.resources.status(&starting).await,
                Err(ResourceError::Unavailable(_))
            ),
            "a cache that lost its watch does not answer"
        );
    }
    // etcd compacts: no watch can resume from before the outage.
    cluster.api.compact();
    let lists_during_outage = cluster.api.count(Verb::List, Resource::Pods);

    cluster.api.set_unavailable(false);
    let back = Instant::now();
    // Created the moment the server is back, before rucat's cache caught
    // up: the engine the issue saw deleted 30 s later as "missing".
    let created_after = cluster.create().await;
    loop {
        if let Ok(ResourceStatus::Running { .. }) = cluster.resources.status(&starting).await {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the driver pod cache did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovery = back.elapsed();
    eprintln!(
        "driver pod cache current {recovery:?} after a {OUTAGE:?} outage; {lists_during_outage} lists during it"
    );
    assert!(
        recovery <= Backoff::WATCH.max() + Duration::from_millis(500),
        "recovery took {recovery:?}"
    );
    // Capped backoff: about one list per cap, neither a storm nor silence.
    let max_lists = (OUTAGE.as_millis() / Backoff::WATCH.max().as_millis()) as usize + 6;
    assert!(
        (max_lists / 2..=max_lists).contains(&lists_during_outage),
        "{lists_during_outage} lists in a {OUTAGE:?} outage"
    );
    let ready = cluster.wait_for(&starting, EngineState::Running).await;
    assert_eq!(
        ready.endpoint,
        Some(names::endpoint(&starting, NS)),
        "the pod that became ready during the outage is Running"
    );

    for id in [&created_after, &created_during] {
        cluster.wait_for_pod(id).await;
        cluster.set_running(id);
        cluster
            .engines
            .wait_for(id, EngineState::Running, AFTER_OUTAGE)
            .await
            .unwrap();
    }
    // Long past the create grace period of the engine created after the
    // outage: it is still there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_untouched(
        &cluster,
        &[&running, &starting, &created_during, &created_after],
        "after the outage",
    )
    .await;
    assert_eq!(cluster.api.count(Verb::Delete, Resource::Pods), 0);
    assert_eq!(cluster.api.count(Verb::Delete, Resource::Services), 0);
    assert_eq!(
        cluster
            .api
            .count_where(|c| c.is(Verb::Create, Resource::Pods) && c.code == 201),
        2,
        "one pod for each engine created around the outage; the others untouched"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_watch_that_cannot_resume_relists_and_then_sees_what_changed() {
    let cluster = Cluster::start(|_, _| {}).await;
    let kept = cluster.running_engine().await;
    let removed = cluster.running_engine().await;

    // The connection drops; meanwhile someone deletes a driver pod and etcd
    // compacts, so the watch's resume gets 410 Gone.
    cluster.api.reset_calls();
    cluster.api.close_watches();
    cluster
        .api
        .delete(NS, Resource::Pods, &names::object_name(&removed))
        .unwrap();
    cluster.api.compact();

    let clean = cluster.wait_for(&removed, EngineState::ErrorClean).await;
    assert!(
        clean.error.as_deref().unwrap().contains("disappeared"),
        "{:?}",
        clean.error
    );
    assert!(
        cluster.api.count(Verb::Watch, Resource::Pods) >= 1
            && cluster.api.count(Verb::List, Resource::Pods) >= 1,
        "the watch tried to resume, then listed again: {:?}",
        cluster.api.calls()
    );
    let still = cluster.engines.get(&kept).await.unwrap();
    assert_eq!(still.state, EngineState::Running);
    assert!(cluster.pod(&kept).is_some());
    cluster.shutdown().await;
}
