//! The driver's log through the Kubernetes resource manager, against the
//! Kubernetes API test server (real HTTP through kube), with the test
//! playing the kubelet and writing the driver's output: reading with tail
//! and since, following, the failure reason quoting the log, and a pod
//! deleted by someone else.

mod support;

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp as JiffTimestamp};
use rucat_core::logs::Selection;
use rucat_core::resource::{LiveLog, LogQuery};
use rucat_core::{EngineId, EngineSpec, EngineState, ResourceError, ResourceManager, Timestamp};
use rucat_k8s::{KubernetesResourceManager, names};
use rucat_k8s_testserver::{Resource, TestServer};
use support::{Cluster, NS, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

fn spec() -> EngineSpec {
    EngineSpec {
        id: EngineId::generate(),
        name: "logs".into(),
        engine_type: rucat_core::EngineType::Spark,
        version: "4.0.1".into(),
        configs: Default::default(),
        token: None,
    }
}

fn manager(api: &TestServer) -> KubernetesResourceManager {
    KubernetesResourceManager::new(support::client(api), support::k8s_config())
}

async fn read_all(log: LiveLog) -> String {
    let mut text = String::new();
    let mut log = log;
    tokio::time::timeout(WAIT, log.read_to_string(&mut text))
        .await
        .expect("the log ends in time")
        .unwrap();
    text
}

async fn log(resources: &KubernetesResourceManager, id: &EngineId, selection: Selection) -> String {
    let query = LogQuery {
        selection,
        follow: false,
    };
    read_all(resources.log(id, query).await.unwrap().expect("a log")).await
}

/// A driver pod created by `resources`, running.
async fn running_driver(api: &TestServer, resources: &KubernetesResourceManager) -> EngineSpec {
    let spec = spec();
    resources.create(&spec).await.unwrap();
    api.set_pod_running(NS, &names::object_name(&spec.id))
        .unwrap();
    spec
}

#[tokio::test]
async fn a_running_drivers_log_whole_tail_and_since() {
    let api = TestServer::start().await;
    let resources = manager(&api);
    let spec = running_driver(&api, &resources).await;
    let pod = names::object_name(&spec.id);
    let start = JiffTimestamp::now() - SignedDuration::from_secs(60);
    api.append_pod_log_at(
        NS,
        &pod,
        names::CONTAINER,
        start,
        &[
            "26/01/01 10:00:00 INFO SparkContext: Running Spark version 4.0.1",
            "starting",
        ],
    )
    .unwrap();
    let later = start + SignedDuration::from_secs(30);
    api.append_pod_log_at(
        NS,
        &pod,
        names::CONTAINER,
        later,
        &["26/01/01 10:00:30 INFO SparkConnectServer: Spark Connect server started"],
    )
    .unwrap();

    let whole = log(&resources, &spec.id, Selection::All).await;
    assert_eq!(
        whole,
        "26/01/01 10:00:00 INFO SparkContext: Running Spark version 4.0.1\nstarting\n\
         26/01/01 10:00:30 INFO SparkConnectServer: Spark Connect server started\n"
    );
    assert_eq!(
        log(&resources, &spec.id, Selection::Tail(2)).await,
        "starting\n26/01/01 10:00:30 INFO SparkConnectServer: Spark Connect server started\n"
    );
    let since = Timestamp::from_millis((later - SignedDuration::from_secs(5)).as_millisecond());
    assert_eq!(
        log(&resources, &spec.id, Selection::Since(since)).await,
        "26/01/01 10:00:30 INFO SparkConnectServer: Spark Connect server started\n"
    );
    let calls = api.calls();
    let read = calls
        .iter()
        .rfind(|c| c.subresource.as_deref() == Some("log"))
        .unwrap();
    assert!(
        read.query
            .contains(&format!("container={}", names::CONTAINER)),
        "the driver container's log: {}",
        read.query
    );
}

#[tokio::test]
async fn no_log_before_the_driver_starts_and_unavailable_when_the_api_is() {
    let api = TestServer::start().await;
    let resources = manager(&api);
    let spec = spec();
    // No pod at all.
    assert!(
        resources
            .log(&spec.id, LogQuery::WHOLE)
            .await
            .unwrap()
            .is_none()
    );
    resources.create(&spec).await.unwrap();
    let pod = names::object_name(&spec.id);
    // Not scheduled yet.
    assert!(
        resources
            .log(&spec.id, LogQuery::WHOLE)
            .await
            .unwrap()
            .is_none()
    );
    // Scheduled, its container being created: the kubelet's 400.
    api.set_pod_waiting(NS, &pod, "ContainerCreating", "")
        .unwrap();
    assert!(
        resources
            .log(&spec.id, LogQuery::WHOLE)
            .await
            .unwrap()
            .is_none()
    );

    api.set_unavailable(true);
    assert!(matches!(
        resources.log(&spec.id, LogQuery::WHOLE).await,
        Err(ResourceError::Unavailable(_))
    ));
    api.set_unavailable(false);
    api.set_pod_running(NS, &pod).unwrap();
    assert_eq!(log(&resources, &spec.id, Selection::All).await, "");
}

#[tokio::test]
async fn follow_delivers_later_lines_and_ends_with_the_container() {
    let api = TestServer::start().await;
    let resources = manager(&api);
    let spec = running_driver(&api, &resources).await;
    let pod = names::object_name(&spec.id);
    api.append_pod_log(NS, &pod, names::CONTAINER, &["before"])
        .unwrap();
    let follow = LogQuery {
        selection: Selection::All,
        follow: true,
    };
    let stream = resources.log(&spec.id, follow).await.unwrap().unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut next = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
    };
    assert_eq!(next().await.as_deref(), Some("before"));
    // Written after the stream started.
    api.append_pod_log(NS, &pod, names::CONTAINER, &["after the request"])
        .unwrap();
    assert_eq!(next().await.as_deref(), Some("after the request"));
    api.append_pod_log(NS, &pod, names::CONTAINER, &["the last line"])
        .unwrap();
    api.set_pod_failed(NS, &pod, 1, "Error").unwrap();
    assert_eq!(next().await.as_deref(), Some("the last line"));
    assert_eq!(next().await, None, "the stream ends with the container");
}

const FAILING_LOG: &[&str] = &[
    "26/01/01 10:00:00 INFO SparkContext: Running Spark version 4.0.1",
    "26/01/01 10:00:01 INFO ResourceUtils: ==============================================================",
    "26/01/01 10:00:01 INFO SparkContext: Submitted application: Spark Connect server",
    "Exception in thread \"main\" java.lang.IllegalArgumentException: spark.sql.shuffle.partitions should be positive, but got -1",
    "\tat org.apache.spark.internal.config.ConfigBuilder.checkValue(ConfigBuilder.scala:42)",
    "\tat org.apache.spark.sql.connect.service.SparkConnectServer$.main(SparkConnectServer.scala:34)",
    "26/01/01 10:00:02 INFO ShutdownHookManager: Shutdown hook called",
];

/// The calls that read a log for a failure reason (its tail).
fn reason_reads(api: &TestServer, pod: &str) -> usize {
    api.count_where(|c| {
        c.subresource.as_deref() == Some("log")
            && c.name.as_deref() == Some(pod)
            && c.query.contains("tailLines=200")
    })
}

#[tokio::test]
async fn a_driver_exiting_with_an_error_fails_with_its_logs_relevant_lines() {
    let cluster = Cluster::start(|_, _| {}).await;
    let id = cluster.running_engine().await;
    let pod = names::object_name(&id);
    let mut noise: Vec<String> = (0..50)
        .map(|i| format!("26/01/01 10:00:00 INFO Utils: routine line {i}"))
        .collect();
    noise.extend(FAILING_LOG.iter().map(|l| (*l).to_owned()));
    let noise: Vec<&str> = noise.iter().map(String::as_str).collect();
    cluster
        .api
        .append_pod_log(NS, &pod, names::CONTAINER, &noise)
        .unwrap();
    cluster.api.set_pod_failed(NS, &pod, 1, "Error").unwrap();

    let clean = cluster.wait_for(&id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap();
    assert!(
        error.starts_with("the driver container ended: Error (exit code 1); end of its log:\n"),
        "{error}"
    );
    assert!(
        error.contains(
            "Exception in thread \"main\" java.lang.IllegalArgumentException: spark.sql.shuffle.partitions should be positive, but got -1"
        ),
        "{error}"
    );
    assert!(
        !error.contains("routine line"),
        "only the relevant lines: {error}"
    );
    assert!(!error.contains("\tat "), "no stack frames: {error}");
    assert_eq!(reason_reads(&cluster.api, &pod), 1, "the log is read once");
    assert!(cluster.pod(&id).is_none(), "and the pod is deleted");
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_failure_reason_is_read_once_per_pod_and_not_for_oom_kills() {
    let api = TestServer::start().await;
    let resources = manager(&api);
    let spec = running_driver(&api, &resources).await;
    let pod = names::object_name(&spec.id);
    api.append_pod_log(NS, &pod, names::CONTAINER, FAILING_LOG)
        .unwrap();
    api.set_pod_failed(NS, &pod, 1, "Error").unwrap();
    let failed = async || loop {
        if let Ok(rucat_core::ResourceStatus::Failed { reason }) = resources.status(&spec.id).await
        {
            return reason;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first = failed().await;
    assert!(first.contains("IllegalArgumentException"), "{first}");
    for _ in 0..5 {
        assert_eq!(failed().await, first);
    }
    assert_eq!(reason_reads(&api, &pod), 1);

    // OOMKilled: the reason says it all, the log is not read.
    let oom = running_driver(&api, &resources).await;
    let oom_pod = names::object_name(&oom.id);
    api.append_pod_log(NS, &oom_pod, names::CONTAINER, &["26/01/01 INFO working"])
        .unwrap();
    api.set_pod_failed(NS, &oom_pod, 137, "OOMKilled").unwrap();
    loop {
        if let Ok(rucat_core::ResourceStatus::Failed { reason }) = resources.status(&oom.id).await {
            assert_eq!(
                reason,
                "the driver container ended: OOMKilled (exit code 137)"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reason_reads(&api, &oom_pod), 0);
}

#[tokio::test]
async fn a_terminating_pods_log_is_readable_until_it_is_removed() {
    let api = TestServer::builder()
        .graceful_pod_deletion(true)
        .start()
        .await;
    let resources = manager(&api);
    let spec = running_driver(&api, &resources).await;
    let pod = names::object_name(&spec.id);
    api.append_pod_log(NS, &pod, names::CONTAINER, &["serving", "still serving"])
        .unwrap();
    // Someone else deletes the pod: it terminates for its grace period.
    api.delete(NS, Resource::Pods, &pod).unwrap();
    assert!(
        api.get(NS, Resource::Pods, &pod).unwrap()["metadata"]["deletionTimestamp"].is_string()
    );
    api.append_pod_log(NS, &pod, names::CONTAINER, &["shutting down"])
        .unwrap();
    assert_eq!(
        log(&resources, &spec.id, Selection::All).await,
        "serving\nstill serving\nshutting down\n"
    );
    assert_eq!(
        log(&resources, &spec.id, Selection::Tail(1)).await,
        "shutting down\n"
    );

    api.complete_pod_termination(NS, &pod).unwrap();
    assert!(api.get(NS, Resource::Pods, &pod).is_none());
    assert!(
        resources
            .log(&spec.id, LogQuery::WHOLE)
            .await
            .unwrap()
            .is_none(),
        "gone with the pod"
    );
}
