//! The monitor archiving Kubernetes drivers' logs before it deletes their
//! pods, against the Kubernetes API test server with the test playing the
//! kubelet: a user's stop, and a pod deleted by someone else (within its
//! grace period the log is still there to archive).

mod support;

use std::sync::Arc;

use rucat_core::logs::{FsLogArchive, LogArchive, Retention};
use rucat_core::{EngineId, EngineState};
use rucat_k8s::names;
use rucat_k8s_testserver::{Resource, TestServer};
use support::{Cluster, NS};
use tokio::io::AsyncReadExt;

async fn archived(archive: &FsLogArchive, id: &EngineId, attempt: u32) -> String {
    let mut file = archive
        .open(id, attempt)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("attempt {attempt} of {id} is archived"));
    let mut text = String::new();
    file.reader.read_to_string(&mut text).await.unwrap();
    text
}

async fn cluster_archiving(
    api: TestServer,
    grace_secs: i64,
) -> (Cluster, Arc<FsLogArchive>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let archive = Arc::new(FsLogArchive::new(dir.path(), Retention::default()));
    let shared: Arc<dyn LogArchive> = archive.clone();
    let cluster = Cluster::start_archiving(api, Some(shared), |_, k8s| {
        k8s.driver.termination_grace_period_secs = Some(grace_secs);
    })
    .await;
    (cluster, archive, dir)
}

#[tokio::test]
async fn a_stopped_drivers_log_is_archived_before_its_pod_is_deleted() {
    // Pods go at once when deleted (no grace period), so the log in the
    // archive can only have been read before the delete.
    let api = TestServer::start().await;
    let (cluster, archive, _dir) = cluster_archiving(api, 1).await;
    let id = cluster.running_engine().await;
    let pod = names::object_name(&id);
    cluster
        .api
        .append_pod_log(
            NS,
            &pod,
            names::CONTAINER,
            &[
                "26/12/01 10:00:00 INFO SparkConnectServer: Spark Connect server started",
                "26/12/01 10:00:05 INFO SparkConnectService: new session",
            ],
        )
        .unwrap();
    cluster.engines.stop(&id).await.unwrap();
    cluster.wait_for(&id, EngineState::Terminated).await;
    assert!(cluster.pod(&id).is_none(), "the pod is deleted");
    let log = archived(&archive, &id, 1).await;
    assert!(
        log.contains("INFO SparkConnectServer: Spark Connect server started\n")
            && log.ends_with("INFO SparkConnectService: new session\n"),
        "{log:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_pod_deleted_by_someone_else_leaves_its_last_lines_in_the_archive() {
    let api = TestServer::builder()
        .kubelet_ends_grace_periods(true)
        .start()
        .await;
    let (cluster, archive, _dir) = cluster_archiving(api, 2).await;
    let id = cluster.running_engine().await;
    let pod = names::object_name(&id);
    cluster
        .api
        .append_pod_log(
            NS,
            &pod,
            names::CONTAINER,
            &["26/12/01 10:00:00 INFO serving"],
        )
        .unwrap();
    cluster
        .api
        .append_pod_log(
            NS,
            &pod,
            names::CONTAINER,
            &["26/12/01 10:00:09 INFO the last line before the deletion"],
        )
        .unwrap();
    // `kubectl delete pod` (an eviction, a drain): the pod terminates for
    // its grace period, then goes.
    cluster.api.delete(NS, Resource::Pods, &pod).unwrap();
    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    assert!(clean.error.is_some());
    assert!(cluster.pod(&id).is_none());
    let log = archived(&archive, &id, 1).await;
    assert!(
        log.ends_with("26/12/01 10:00:09 INFO the last line before the deletion\n"),
        "{log:?}"
    );
    cluster.shutdown().await;
}
