//! Watch semantics, checked with kube's own `Api::watch`, `watcher` and
//! `reflector`: event types, selector transitions, resuming, 410 Expired,
//! bookmarks, timeouts, streaming lists, and recovery after an outage.

mod common;

use std::time::Duration;

use common::{NS, api_error, eventually, headless_service, pod};
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rucat_k8s_testserver::{Resource, Retention, TestServer, Verb};
use serde_json::json;

fn pods(server: &TestServer) -> Api<Pod> {
    Api::default_namespaced(server.client(NS))
}

/// The next non-bookmark event, as (type, object name).
async fn next_event(
    stream: &mut (impl Stream<Item = kube::Result<WatchEvent<Pod>>> + Unpin),
) -> (String, String) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("an event within 10 s")
            .expect("no stream error")
            .expect("the stream continues");
        let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
        return match event {
            WatchEvent::Added(p) => ("ADDED".into(), name(&p)),
            WatchEvent::Modified(p) => ("MODIFIED".into(), name(&p)),
            WatchEvent::Deleted(p) => ("DELETED".into(), name(&p)),
            WatchEvent::Error(e) => ("ERROR".into(), format!("{} {}", e.code, e.reason)),
            WatchEvent::Bookmark(_) => continue,
        };
    }
}

fn ev(kind: &str, name: &str) -> (String, String) {
    (kind.to_owned(), name.to_owned())
}

/// A reflector over pods selected by `labels`, fed by kube's watcher with
/// its default backoff, polled in the background.
fn reflect(api: Api<Pod>, config: watcher::Config) -> Store<Pod> {
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    tokio::spawn(stream.for_each(|_| async {}));
    reader
}

fn phase(store: &Store<Pod>, name: &str) -> Option<String> {
    store
        .get(&ObjectRef::new(name).within(NS))
        .and_then(|p| p.status.as_ref()?.phase.clone())
}

fn names(store: &Store<Pod>) -> Vec<String> {
    let mut names: Vec<String> = store
        .state()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn raw_watch_sends_added_modified_deleted_and_selector_transitions() {
    let server = TestServer::start().await;
    let api = pods(&server);
    api.create(
        &PostParams::default(),
        &pod("before", json!({"app": "rucat"})),
    )
    .await
    .unwrap();
    let wp = WatchParams::default().labels("app=rucat");
    let mut stream = api.watch(&wp, "0").await.unwrap().boxed();
    // resourceVersion "0": the current state first.
    assert_eq!(next_event(&mut stream).await, ev("ADDED", "before"));

    api.create(&PostParams::default(), &pod("a", json!({"app": "rucat"})))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &pod("ignored", json!({"app": "other"})),
    )
    .await
    .unwrap();
    assert_eq!(next_event(&mut stream).await, ev("ADDED", "a"));

    server.set_pod_running(NS, "a").unwrap();
    // Binding (nodeName) and the kubelet's status are two writes.
    assert_eq!(next_event(&mut stream).await, ev("MODIFIED", "a"));
    assert_eq!(next_event(&mut stream).await, ev("MODIFIED", "a"));

    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    api.patch("a", &PatchParams::default(), &relabel("gone"))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        ev("DELETED", "a"),
        "leaving the selector"
    );
    api.patch("ignored", &PatchParams::default(), &relabel("rucat"))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        ev("ADDED", "ignored"),
        "entering the selector"
    );

    api.delete("ignored", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(next_event(&mut stream).await, ev("DELETED", "ignored"));
}

#[tokio::test]
async fn watch_from_a_resource_version_replays_what_came_after() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let a = api
        .create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &pod("b", json!({})))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let rv = a.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert_eq!(next_event(&mut stream).await, ev("ADDED", "b"));
    let deleted = ev("DELETED", "a");
    assert_eq!(next_event(&mut stream).await, deleted);
}

#[tokio::test]
async fn a_compacted_resource_version_gets_410_expired() {
    let server = TestServer::builder()
        .event_retention(Retention::Last(1))
        .start()
        .await;
    let api = pods(&server);
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &pod(name, json!({})))
            .await
            .unwrap();
    }
    // Only the change at version 3 is kept: resuming from 2 works…
    let mut stream = api
        .watch(&WatchParams::default(), "2")
        .await
        .unwrap()
        .boxed();
    assert_eq!(next_event(&mut stream).await, ev("ADDED", "c"));
    // …from 1 it does not.
    let mut expired = api
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    assert_eq!(next_event(&mut expired).await, ev("ERROR", "410 Expired"));
    assert!(
        tokio::time::timeout(Duration::from_secs(5), expired.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends after the error"
    );
    // After a compaction nothing older than now can be resumed.
    server.compact();
    let mut expired = api
        .watch(&WatchParams::default(), "2")
        .await
        .unwrap()
        .boxed();
    assert_eq!(next_event(&mut expired).await, ev("ERROR", "410 Expired"));
    // A version from the future is refused.
    let too_new = api_error(api.watch(&WatchParams::default(), "99").await.map(|_| ()));
    assert_eq!(too_new.code, 504);
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let server = TestServer::builder()
        .bookmark_interval(Duration::from_millis(100))
        .start()
        .await;
    let api = pods(&server);
    api.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let events: Vec<WatchEvent<Pod>> = api
        .watch(&WatchParams::default().timeout(1), "1")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeoutSeconds ends the stream"
    );
    let bookmarks: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Bookmark(b) => Some(b.metadata.resource_version.clone()),
            _ => None,
        })
        .collect();
    assert!(bookmarks.len() >= 3, "{bookmarks:?}");
    assert!(bookmarks.iter().all(|rv| rv == "1"));

    let quiet: Vec<WatchEvent<Pod>> = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "1")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(quiet.is_empty());
}

#[tokio::test]
async fn reflector_converges_through_kubelet_changes_selector_exits_and_deletes() {
    let server = TestServer::start().await;
    let api = pods(&server);
    api.create(
        &PostParams::default(),
        &pod("early", json!({"app": "rucat"})),
    )
    .await
    .unwrap();
    let store = reflect(api.clone(), watcher::Config::default().labels("app=rucat"));
    store.wait_until_ready().await.unwrap();
    assert_eq!(names(&store), ["early"]);

    for (name, app) in [("a", "rucat"), ("b", "rucat"), ("other", "x")] {
        api.create(&PostParams::default(), &pod(name, json!({"app": app})))
            .await
            .unwrap();
    }
    eventually("a and b appear", || names(&store) == ["a", "b", "early"]).await;

    server.set_pod_running(NS, "a").unwrap();
    server.set_pod_failed(NS, "b", 137, "OOMKilled").unwrap();
    server
        .set_pod_unschedulable(
            NS,
            "early",
            "0/1 nodes are available: 1 Insufficient memory.",
        )
        .unwrap();
    eventually("statuses arrive", || {
        phase(&store, "a").as_deref() == Some("Running")
            && phase(&store, "b").as_deref() == Some("Failed")
    })
    .await;
    let a = store.get(&ObjectRef::new("a").within(NS)).unwrap();
    let status = a.status.as_ref().unwrap();
    assert!(status.pod_ip.is_some());
    assert_eq!(
        a.spec.as_ref().unwrap().node_name.as_deref(),
        Some(rucat_k8s_testserver::NODE_NAME)
    );
    let ready = status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    let b = store.get(&ObjectRef::new("b").within(NS)).unwrap();
    let terminated = b
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (137, Some("OOMKilled"))
    );
    eventually("unschedulable shows", || {
        store
            .get(&ObjectRef::new("early").within(NS))
            .and_then(|p| p.status.clone()?.conditions)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.reason.as_deref() == Some("Unschedulable"))
            })
    })
    .await;

    server
        .set_pod_waiting(NS, "early", "ImagePullBackOff", "Back-off pulling image")
        .unwrap();
    eventually("waiting reason shows", || {
        store
            .get(&ObjectRef::new("early").within(NS))
            .and_then(|p| p.status.clone()?.container_statuses)
            .is_some_and(|s| {
                s[0].state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("ImagePullBackOff")
            })
    })
    .await;

    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "moved"}}})),
    )
    .await
    .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    eventually("a left the selector, b was deleted", || {
        names(&store) == ["early"]
    })
    .await;
}

#[tokio::test]
async fn the_watcher_recovers_after_an_outage_and_sees_what_changed_meanwhile() {
    let server = TestServer::start().await;
    let api = pods(&server);
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &pod(name, json!({"app": "rucat"})))
            .await
            .unwrap();
    }
    let store = reflect(api.clone(), watcher::Config::default().labels("app=rucat"));
    store.wait_until_ready().await.unwrap();
    eventually("the watch is open", || server.open_watches() == 1).await;

    server.set_unavailable(true);
    eventually("the watch is closed", || server.open_watches() == 0).await;
    let down = api_error(api.get("a").await);
    assert_eq!(
        (down.code, down.reason.as_str()),
        (503, "ServiceUnavailable")
    );
    let down = api_error(api.list(&Default::default()).await);
    assert_eq!(down.code, 503);

    // Changes while the API is down (the kubelet and others carry on).
    server.set_pod_running(NS, "a").unwrap();
    server.delete(NS, Resource::Pods, "b").unwrap();
    let mut c = serde_json::to_value(pod("c", json!({"app": "rucat"}))).unwrap();
    c["metadata"]["namespace"] = json!(NS);
    server.create(NS, Resource::Pods, c).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(names(&store), ["a", "b"], "the cache is stale while down");

    server.set_unavailable(false);
    eventually("the cache catches up", || {
        names(&store) == ["a", "c"] && phase(&store, "a").as_deref() == Some("Running")
    })
    .await;
    assert!(server.count_where(|c| c.code == 503) >= 1);
}

#[tokio::test]
async fn the_watcher_relists_after_compaction() {
    let server = TestServer::start().await;
    let api = pods(&server);
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &pod(name, json!({})))
            .await
            .unwrap();
    }
    let store = reflect(api.clone(), watcher::Config::default());
    store.wait_until_ready().await.unwrap();
    eventually("the watch is open", || server.open_watches() == 1).await;

    server.set_unavailable(true);
    eventually("the watch is closed", || server.open_watches() == 0).await;
    server.delete(NS, Resource::Pods, "b").unwrap();
    server.set_pod_running(NS, "a").unwrap();
    server.compact();
    server.reset_calls();
    server.set_unavailable(false);

    eventually("relisted", || {
        names(&store) == ["a"] && phase(&store, "a").as_deref() == Some("Running")
    })
    .await;
    assert!(
        server.count(Verb::List, Resource::Pods) >= 1,
        "{:#?}",
        server.calls()
    );
}

#[tokio::test]
async fn close_watches_makes_watchers_resume_without_losing_changes() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let store = reflect(api.clone(), watcher::Config::default());
    store.wait_until_ready().await.unwrap();
    for round in 0..3 {
        eventually("the watch is open", || server.open_watches() == 1).await;
        server.close_watches();
        api.create(
            &PostParams::default(),
            &pod(&format!("p{round}"), json!({})),
        )
        .await
        .unwrap();
    }
    eventually("all seen", || names(&store) == ["p0", "p1", "p2"]).await;
}

#[tokio::test]
async fn streaming_lists_and_metadata_watchers_work() {
    let server = TestServer::start().await;
    let api = pods(&server);
    api.create(&PostParams::default(), &pod("a", json!({"app": "rucat"})))
        .await
        .unwrap();
    let streaming = reflect(api.clone(), watcher::Config::default().streaming_lists());
    streaming.wait_until_ready().await.unwrap();
    assert_eq!(names(&streaming), ["a"]);
    api.create(&PostParams::default(), &pod("b", json!({"app": "rucat"})))
        .await
        .unwrap();
    eventually("b streams in", || names(&streaming) == ["a", "b"]).await;

    let metadata: Api<PartialObjectMeta<Pod>> = Api::default_namespaced(server.client(NS));
    let seen: Vec<String> = watcher(metadata, watcher::Config::default())
        .applied_objects()
        .take(2)
        .map_ok(|m| m.metadata.name.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(seen, ["a", "b"]);
    let watched = server.calls().into_iter().rfind(|c| c.is_watch()).unwrap();
    assert_eq!(watched.resource, Some(Resource::Pods));
}

#[tokio::test]
async fn status_reads_from_a_reflector_make_no_per_pod_gets() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let store = reflect(api.clone(), watcher::Config::default().labels("app=rucat"));
    store.wait_until_ready().await.unwrap();
    server.reset_calls();
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &pod(name, json!({"app": "rucat"})))
            .await
            .unwrap();
        server.set_pod_running(NS, name).unwrap();
    }
    eventually("all running", || {
        ["a", "b", "c"]
            .iter()
            .all(|n| phase(&store, n).as_deref() == Some("Running"))
    })
    .await;
    assert_eq!(server.count(Verb::Get, Resource::Pods), 0);
    assert_eq!(server.count(Verb::Create, Resource::Pods), 3);
}

#[tokio::test]
async fn service_watchers_see_garbage_collection() {
    let server = TestServer::start().await;
    let client = server.client(NS);
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::all(client);
    let owner = pods
        .create(&PostParams::default(), &pod("driver", json!({})))
        .await
        .unwrap();
    Api::<Service>::namespaced(server.client(NS), NS)
        .create(
            &PostParams::default(),
            &headless_service("driver", Some(&owner)),
        )
        .await
        .unwrap();
    let mut stream = services
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let first = stream.try_next().await.unwrap().unwrap();
    assert!(matches!(first, WatchEvent::Added(_)));
    pods.delete("driver", &DeleteParams::default())
        .await
        .unwrap();
    loop {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Deleted(s) => {
                assert_eq!(s.metadata.name.as_deref(), Some("driver"));
                break;
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
