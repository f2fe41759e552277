//! The `log` subresource, with kube's own `logs` and `log_stream` as the
//! client: selection, errors like the real server's, follow, and the log of
//! a pod being deleted.

mod common;

use std::time::Duration;

use common::{NS, api_error, pod};
use futures::{AsyncBufReadExt, AsyncReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use rucat_k8s_testserver::{Resource, TestServer, Verb};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// The next line of a log stream, failing the test if none comes in time.
async fn next<R: futures::AsyncBufRead + Unpin>(
    lines: &mut futures::io::Lines<R>,
) -> Option<String> {
    tokio::time::timeout(WAIT, lines.try_next())
        .await
        .expect("a line in time")
        .unwrap()
}

fn pods(server: &TestServer) -> Api<Pod> {
    Api::default_namespaced(server.client(NS))
}

fn params() -> LogParams {
    LogParams {
        container: Some("driver".into()),
        ..LogParams::default()
    }
}

async fn running_pod(server: &TestServer, name: &str) -> Api<Pod> {
    let api = pods(server);
    api.create(&PostParams::default(), &pod(name, json!({})))
        .await
        .unwrap();
    server.set_pod_running(NS, name).unwrap();
    api
}

#[tokio::test]
async fn a_running_containers_log_with_tail_since_limit_and_timestamps() {
    let server = TestServer::start().await;
    let api = running_pod(&server, "a").await;
    let at = |second: i64| Timestamp::from_second(1_800_000_000 + second).unwrap();
    server
        .append_pod_log_at(NS, "a", "driver", at(0), &["one", "two"])
        .unwrap();
    server
        .append_pod_log_at(NS, "a", "driver", at(10), &["three\nfour"])
        .unwrap();

    assert_eq!(
        api.logs("a", &params()).await.unwrap(),
        "one\ntwo\nthree\nfour\n"
    );
    // The only container is the default.
    assert_eq!(
        api.logs("a", &LogParams::default()).await.unwrap(),
        "one\ntwo\nthree\nfour\n"
    );
    let tail = LogParams {
        tail_lines: Some(3),
        ..params()
    };
    assert_eq!(api.logs("a", &tail).await.unwrap(), "two\nthree\nfour\n");
    let since = LogParams {
        since_time: Some(at(5)),
        ..params()
    };
    assert_eq!(api.logs("a", &since).await.unwrap(), "three\nfour\n");
    let both = LogParams {
        since_time: Some(at(0)),
        tail_lines: Some(1),
        ..params()
    };
    assert_eq!(api.logs("a", &both).await.unwrap(), "four\n");
    let limited = LogParams {
        limit_bytes: Some(6),
        ..params()
    };
    assert_eq!(api.logs("a", &limited).await.unwrap(), "one\ntw");
    let stamped = LogParams {
        timestamps: true,
        tail_lines: Some(1),
        ..params()
    };
    assert_eq!(
        api.logs("a", &stamped).await.unwrap(),
        format!("{} four\n", at(10))
    );

    // Recorded as a get of the pods/log subresource.
    let calls = server.calls();
    let call = calls.last().unwrap();
    assert!(call.is(Verb::Get, Resource::Pods));
    assert_eq!(call.subresource.as_deref(), Some("log"));
    assert_eq!(call.path, format!("/api/v1/namespaces/{NS}/pods/a/log"));
}

#[tokio::test]
async fn errors_are_the_real_servers() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let missing = api_error(api.logs("nope", &params()).await);
    assert_eq!(missing.code, 404);
    assert_eq!(missing.reason, "NotFound");
    assert_eq!(missing.message, "pods \"nope\" not found");

    api.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    // Not scheduled yet: an empty log.
    assert_eq!(api.logs("p", &params()).await.unwrap(), "");
    server
        .set_pod_waiting(NS, "p", "ContainerCreating", "")
        .unwrap();
    let waiting = api_error(api.logs("p", &params()).await);
    assert_eq!(waiting.code, 400);
    assert_eq!(waiting.reason, "BadRequest");
    assert_eq!(
        waiting.message,
        "container \"driver\" in pod \"p\" is waiting to start: ContainerCreating"
    );
    let other = LogParams {
        container: Some("sidecar".into()),
        ..LogParams::default()
    };
    let invalid = api_error(api.logs("p", &other).await);
    assert_eq!(invalid.code, 400);
    assert_eq!(invalid.message, "container sidecar is not valid for pod p");
    let negative = LogParams {
        tail_lines: Some(-1),
        ..params()
    };
    let negative = api_error(api.logs("p", &negative).await);
    assert_eq!(negative.code, 422);
    assert!(
        negative
            .message
            .starts_with("PodLogOptions \"p\" is invalid: tailLines")
    );
    assert_eq!(
        server
            .append_pod_log(NS, "p", "sidecar", &["x"])
            .unwrap_err()
            .code(),
        400
    );
    assert_eq!(
        server
            .append_pod_log(NS, "nope", "driver", &["x"])
            .unwrap_err()
            .code(),
        404
    );

    // A failed container's log stays readable.
    server.set_pod_running(NS, "p").unwrap();
    server
        .append_pod_log(NS, "p", "driver", &["Exception in thread \"main\""])
        .unwrap();
    server.set_pod_failed(NS, "p", 1, "Error").unwrap();
    assert_eq!(
        api.logs("p", &params()).await.unwrap(),
        "Exception in thread \"main\"\n"
    );
}

#[tokio::test]
async fn follow_streams_appended_lines_until_the_container_ends() {
    let server = TestServer::start().await;
    let api = running_pod(&server, "f").await;
    server
        .append_pod_log(NS, "f", "driver", &["before"])
        .unwrap();
    let follow = LogParams {
        follow: true,
        ..params()
    };
    let mut lines = api.log_stream("f", &follow).await.unwrap().lines();
    assert_eq!(next(&mut lines).await.as_deref(), Some("before"));
    server
        .append_pod_log(NS, "f", "driver", &["after"])
        .unwrap();
    assert_eq!(next(&mut lines).await.as_deref(), Some("after"));
    server.append_pod_log(NS, "f", "driver", &["last"]).unwrap();
    server.set_pod_failed(NS, "f", 1, "Error").unwrap();
    assert_eq!(next(&mut lines).await.as_deref(), Some("last"));
    assert_eq!(next(&mut lines).await, None, "ends with the container");

    // Following a container that has ended returns its log and ends.
    let mut all = String::new();
    api.log_stream("f", &follow)
        .await
        .unwrap()
        .read_to_string(&mut all)
        .await
        .unwrap();
    assert_eq!(all, "before\nafter\nlast\n");
}

#[tokio::test]
async fn a_terminating_pod_serves_its_log_until_it_is_removed() {
    let server = TestServer::builder()
        .graceful_pod_deletion(true)
        .start()
        .await;
    let api = running_pod(&server, "t").await;
    server
        .append_pod_log(NS, "t", "driver", &["working"])
        .unwrap();
    let follow = LogParams {
        follow: true,
        ..params()
    };
    let mut lines = api.log_stream("t", &follow).await.unwrap().lines();
    assert_eq!(lines.try_next().await.unwrap().as_deref(), Some("working"));
    api.delete("t", &DeleteParams::default()).await.unwrap();
    let terminating = api.get("t").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    server
        .append_pod_log(NS, "t", "driver", &["shutting down"])
        .unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, lines.try_next())
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("shutting down")
    );
    assert_eq!(
        api.logs("t", &params()).await.unwrap(),
        "working\nshutting down\n"
    );

    server.complete_pod_termination(NS, "t").unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, lines.try_next())
            .await
            .unwrap()
            .unwrap(),
        None,
        "the follow ends when the pod is removed"
    );
    assert_eq!(api_error(api.logs("t", &params()).await).code, 404);

    // A new pod of the same name starts with an empty log.
    running_pod(&server, "t").await;
    assert_eq!(api.logs("t", &params()).await.unwrap(), "");
}

#[tokio::test]
async fn follow_honours_limit_bytes_and_ends_with_the_server() {
    let server = TestServer::start().await;
    let api = running_pod(&server, "l").await;
    let limited = LogParams {
        follow: true,
        limit_bytes: Some(8),
        ..params()
    };
    let mut stream = api.log_stream("l", &limited).await.unwrap();
    server
        .append_pod_log(NS, "l", "driver", &["12345"])
        .unwrap();
    server
        .append_pod_log(NS, "l", "driver", &["67890"])
        .unwrap();
    let mut got = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, "12345\n67");

    let follow = LogParams {
        follow: true,
        ..params()
    };
    let mut open = api.log_stream("l", &follow).await.unwrap();
    server.close_watches();
    let mut rest = String::new();
    tokio::time::timeout(WAIT, open.read_to_string(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, "12345\n67890\n");
}
