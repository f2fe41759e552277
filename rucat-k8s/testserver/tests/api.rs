//! Faithfulness of the request/response API, checked with kube itself as
//! the client: objects, errors, selectors, patches, the status
//! subresource, finalizers, garbage collection, call counting.

mod common;

use axum::http;
use common::{NS, api_error, headless_service, pod};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rucat_k8s_testserver::{Resource, TestServer, Verb};
use serde_json::json;

fn pods(server: &TestServer) -> Api<Pod> {
    Api::default_namespaced(server.client(NS))
}

fn services(server: &TestServer) -> Api<Service> {
    Api::default_namespaced(server.client(NS))
}

#[tokio::test]
async fn create_sets_server_fields_and_get_and_list_return_the_object() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let created = api
        .create(&PostParams::default(), &pod("a", json!({"app": "rucat"})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some(NS));
    assert!(meta.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert_eq!(meta.resource_version.as_deref(), Some("1"));
    assert!(meta.creation_timestamp.is_some());
    let status = created.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));

    let got = api.get("a").await.unwrap();
    assert_eq!(got, created);
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items, vec![created]);
    assert_eq!(list.metadata.resource_version.as_deref(), Some("1"));

    // The all-namespaces list sees it too, with kind and apiVersion.
    let all: Api<Pod> = Api::all(server.client(NS));
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // On the wire, list items have no kind/apiVersion (the list has).
    let request = http::Request::get(format!("/api/v1/namespaces/{NS}/pods"))
        .body(Vec::new())
        .unwrap();
    let text = server.client(NS).request_text(request).await.unwrap();
    let raw_list: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(raw_list["kind"], "PodList");
    assert!(raw_list["items"][0].get("kind").is_none());
    let raw = server.get(NS, Resource::Pods, "a").unwrap();
    assert_eq!(
        (raw["kind"].as_str(), raw["apiVersion"].as_str()),
        (Some("Pod"), Some("v1"))
    );
}

#[tokio::test]
async fn errors_come_back_as_kube_api_errors_with_the_real_reasons() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let p = pod("a", json!({}));
    api.create(&PostParams::default(), &p).await.unwrap();

    let exists = api_error(api.create(&PostParams::default(), &p).await);
    assert_eq!(
        (exists.code, exists.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(exists.message, "pods \"a\" already exists");
    assert_eq!(exists.details.as_ref().unwrap().kind, "pods");

    let missing = api_error(api.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "pods \"nope\" not found");
    let missing = api_error(api.delete("nope", &DeleteParams::default()).await);
    assert_eq!(missing.code, 404);

    let mut nameless = pod("x", json!({}));
    nameless.metadata.name = None;
    let invalid = api_error(api.create(&PostParams::default(), &nameless).await);
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));

    let mut no_containers = pod("y", json!({}));
    no_containers.spec.as_mut().unwrap().containers.clear();
    let invalid = api_error(api.create(&PostParams::default(), &no_containers).await);
    assert_eq!(invalid.code, 422);
    assert!(
        invalid.message.contains("spec.containers: Required value"),
        "{}",
        invalid.message
    );

    let bad_name = api_error(
        api.create(&PostParams::default(), &pod("Bad_Name", json!({})))
            .await,
    );
    assert_eq!(bad_name.code, 422);

    let mut stale = api.get("a").await.unwrap();
    stale.metadata.resource_version = Some("1".into());
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
    let conflict = api_error(api.replace("a", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn generate_name_and_dry_run() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let mut p = pod("x", json!({}));
    p.metadata.name = None;
    p.metadata.generate_name = Some("driver-".into());
    let created = api.create(&PostParams::default(), &p).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(
        name.starts_with("driver-") && name.len() == "driver-".len() + 5,
        "{name}"
    );

    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    api.create(&dry, &pod("dry", json!({}))).await.unwrap();
    assert!(server.get(NS, Resource::Pods, "dry").is_none());
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let server = TestServer::start().await;
    let api = pods(&server);
    for (name, labels) in [
        ("a", json!({"app": "rucat", "tier": "driver"})),
        ("b", json!({"app": "rucat", "tier": "executor"})),
        ("c", json!({"app": "other"})),
        ("d", json!({})),
    ] {
        api.create(&PostParams::default(), &pod(name, labels))
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<Pod>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    };
    let select = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(api.list(&select("app=rucat")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        names(api.list(&select("app=rucat,tier!=executor")).await.unwrap()),
        ["a"]
    );
    assert_eq!(
        names(api.list(&select("app")).await.unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(names(api.list(&select("!app")).await.unwrap()), ["d"]);
    assert_eq!(
        names(api.list(&select("app in (other,x)")).await.unwrap()),
        ["c"]
    );
    assert_eq!(
        names(api.list(&select("app notin (rucat)")).await.unwrap()),
        ["c", "d"]
    );
    let by_name = ListParams::default().fields("metadata.name=b");
    assert_eq!(names(api.list(&by_name).await.unwrap()), ["b"]);

    let bad = api_error(api.list(&select("app in (")).await);
    assert_eq!(bad.code, 400);
    let bad = api_error(
        api.list(&ListParams::default().fields("spec.bogus=1"))
            .await,
    );
    assert_eq!(bad.code, 400);

    // Paging: kube's limit/continue walk the whole list.
    let page = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    let token = page.metadata.continue_.clone().unwrap();
    let rest = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(rest.clone()), ["d"]);
    assert_eq!(
        rest.metadata.resource_version,
        page.metadata.resource_version
    );
}

#[tokio::test]
async fn main_resource_writes_ignore_status_and_the_status_subresource_changes_only_status() {
    let server = TestServer::start().await;
    let api = pods(&server);
    api.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();

    // Main resource: labels change, status does not.
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"x": "1"}}, "status": {"phase": "Running"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.labels().get("x").map(String::as_str), Some("1"));
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Pending"));

    // Status subresource: status changes, labels do not.
    let patched = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"x": "2"}}, "status": {"phase": "Running"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.labels().get("x").map(String::as_str), Some("1"));
    assert_eq!(
        patched.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_eq!(api.get_status("a").await.unwrap(), patched);

    // replace_status with the object read back.
    let mut current = patched;
    current.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let replaced = api
        .replace_status("a", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Succeeded"));

    // A replace of the main resource keeps the stored status.
    let mut current = api.get("a").await.unwrap();
    current.status.as_mut().unwrap().phase = Some("Failed".into());
    let replaced = api
        .replace("a", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Succeeded"));

    // The pod spec is frozen (but images may change).
    let frozen = api_error(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"containers": [{"name": "driver", "args": ["x"]}]}})),
        )
        .await,
    );
    assert_eq!(frozen.code, 422);
    let reimaged = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "driver", "image": "spark:4"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        reimaged.spec.unwrap().containers[0].image.as_deref(),
        Some("spark:4")
    );
}

#[tokio::test]
async fn writes_that_change_nothing_keep_the_resource_version() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let created = api
        .create(&PostParams::default(), &pod("a", json!({"k": "v"})))
        .await
        .unwrap();
    let same = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"k": "v"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(server.resource_version(), 1);
}

#[tokio::test]
async fn strategic_merge_apply_and_unsupported_patch_types() {
    let server = TestServer::start().await;
    let api = pods(&server);
    let mut p = pod("a", json!({}));
    p.metadata.finalizers = Some(vec!["rucat.io/a".into()]);
    api.create(&PostParams::default(), &p).await.unwrap();

    // Strategic merge unions finalizers; a merge patch replaces them.
    let s = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"finalizers": ["rucat.io/b"]}})),
        )
        .await
        .unwrap();
    assert_eq!(s.finalizers(), ["rucat.io/a", "rucat.io/b"]);
    let m = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["rucat.io/c"]}})),
        )
        .await
        .unwrap();
    assert_eq!(m.finalizers(), ["rucat.io/c"]);

    // Server-side apply (approximated) creates and updates.
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client(NS));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}, "data": {"a": "1"}});
    let applied = cms
        .patch("conf", &PatchParams::apply("rucat"), &Patch::Apply(&cm))
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["a"], "1");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}, "data": {"b": "2"}});
    let applied = cms
        .patch("conf", &PatchParams::apply("rucat"), &Patch::Apply(&cm))
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["b"], "2");
    let no_manager = api_error(
        cms.patch("conf", &PatchParams::default(), &Patch::Apply(&cm))
            .await,
    );
    assert_eq!(no_manager.code, 422);

    // Any other content type is refused with 415.
    let request = http::Request::patch(format!("/api/v1/namespaces/{NS}/pods/a"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(b"{}".to_vec())
        .unwrap();
    let refused = api_error(server.client(NS).request_text(request).await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (415, "UnsupportedMediaType")
    );

    // JSON patch (RFC 6902) over raw HTTP.
    let request = http::Request::patch(format!("/api/v1/namespaces/{NS}/pods/a"))
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(br#"[{"op":"add","path":"/metadata/labels","value":{"j":"p"}}]"#.to_vec())
        .unwrap();
    let text = server.client(NS).request_text(request).await.unwrap();
    assert!(text.contains(r#""j":"p""#), "{text}");
}

#[tokio::test]
async fn malformed_bodies_unknown_paths_and_version() {
    let server = TestServer::start().await;
    let client = server.client(NS);
    let request = http::Request::post(format!("/api/v1/namespaces/{NS}/pods"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    let bad = api_error(client.request_text(request).await);
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));

    let request = http::Request::get(format!("/api/v1/namespaces/{NS}/deployments"))
        .body(Vec::new())
        .unwrap();
    let unknown = api_error(client.request_text(request).await);
    assert_eq!((unknown.code, unknown.reason.as_str()), (404, "NotFound"));

    let request = http::Request::post("/api/v1/pods")
        .body(b"{}".to_vec())
        .unwrap();
    let not_allowed = api_error(client.request_text(request).await);
    assert_eq!(not_allowed.code, 405);

    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
}

#[tokio::test]
async fn services_are_defaulted_and_headless_ones_keep_cluster_ip_none() {
    let server = TestServer::start().await;
    let api = services(&server);
    let svc = api
        .create(&PostParams::default(), &headless_service("driver", None))
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.unwrap()[0].protocol.as_deref(), Some("TCP"));

    let mut ported = headless_service("ported", None);
    ported.spec.as_mut().unwrap().cluster_ip = None;
    let created = api.create(&PostParams::default(), &ported).await.unwrap();
    assert!(
        created
            .spec
            .unwrap()
            .cluster_ip
            .unwrap()
            .starts_with("10.96.")
    );

    let bad = api_error(
        api.create(&PostParams::default(), &headless_service("1bad", None))
            .await,
    );
    assert_eq!(bad.code, 422, "service names are DNS-1035 labels");
}

#[tokio::test]
async fn finalizers_hold_deletion_until_cleared() {
    let server = TestServer::start().await;
    let api = pods(&server);
    api.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    server.add_finalizer(NS, Resource::Pods, "a").unwrap();

    let deleting = api
        .delete("a", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    // Finalizers hold the object even against a forced delete.
    api.delete("a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let still = api.get("a").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    // No new finalizers while deleting.
    let refused = api_error(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"finalizers": ["x.io/new"]}})),
        )
        .await,
    );
    assert_eq!(refused.code, 422);

    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(api.get("a").await).code, 404);
}

#[tokio::test]
async fn graceful_pod_deletion_waits_for_the_kubelet_unless_forced() {
    let server = TestServer::builder()
        .graceful_pod_deletion(true)
        .start()
        .await;
    let api = pods(&server);
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &pod(name, json!({})))
            .await
            .unwrap();
        server.set_pod_running(NS, name).unwrap();
    }
    let terminating = api
        .delete("a", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    assert!(api.get("a").await.is_ok());
    server.complete_pod_termination(NS, "a").unwrap();
    assert_eq!(api_error(api.get("a").await).code, 404);

    api.delete("b", &DeleteParams::default()).await.unwrap();
    api.delete("b", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(api_error(api.get("b").await).code, 404);

    // Pods no kubelet runs go at once.
    api.create(&PostParams::default(), &pod("c", json!({})))
        .await
        .unwrap();
    api.delete("c", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("c").await).code, 404);
}

#[tokio::test]
async fn the_kubelet_can_end_graceful_deletions_with_their_grace_period() {
    let server = TestServer::builder()
        .kubelet_ends_grace_periods(true)
        .start()
        .await;
    let api = pods(&server);
    let mut spec = pod("a", json!({}));
    spec.spec.as_mut().unwrap().termination_grace_period_seconds = Some(1);
    api.create(&PostParams::default(), &spec).await.unwrap();
    server.set_pod_running(NS, "a").unwrap();
    let deleted = std::time::Instant::now();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let terminating = api.get("a").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    while api.get("a").await.is_ok() {
        assert!(
            deleted.elapsed() < std::time::Duration::from_secs(5),
            "the pod outlived its grace period"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        deleted.elapsed() >= std::time::Duration::from_millis(900),
        "the pod stayed for its grace period: {:?}",
        deleted.elapsed()
    );
}

#[tokio::test]
async fn standing_failures_answer_every_matching_call_until_cleared() {
    let server = TestServer::start().await;
    let api = pods(&server);
    server.fail_always(Verb::Create, Resource::Pods, 403, "Forbidden");
    server.fail_next(Verb::Create, Resource::Pods, 500, "InternalError");
    assert_eq!(
        api_error(
            api.create(&PostParams::default(), &pod("a", json!({})))
                .await
        )
        .code,
        500,
        "a one-off failure comes first"
    );
    for _ in 0..2 {
        let refused = api_error(
            api.create(&PostParams::default(), &pod("a", json!({})))
                .await,
        );
        assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));
    }
    assert!(server.list(Resource::Pods).is_empty());
    assert_eq!(
        api_error(api.get("a").await).code,
        404,
        "other verbs are not affected"
    );
    server.clear_failures();
    api.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
}

#[tokio::test]
async fn calls_record_the_user_agent() {
    let server = TestServer::start().await;
    let mut config = server.config(NS);
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("rucat/test"),
    ));
    let api: Api<Pod> = Api::default_namespaced(kube::Client::try_from(config).unwrap());
    let _ = api.get("missing").await;
    assert_eq!(server.calls()[0].user_agent.as_deref(), Some("rucat/test"));
}

#[tokio::test]
async fn deleting_the_owner_pod_garbage_collects_its_service() {
    let server = TestServer::start().await;
    let (pods, services) = (pods(&server), services(&server));
    let owner = pods
        .create(&PostParams::default(), &pod("driver", json!({})))
        .await
        .unwrap();
    services
        .create(
            &PostParams::default(),
            &headless_service("driver", Some(&owner)),
        )
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &headless_service("unowned", None))
        .await
        .unwrap();

    pods.delete("driver", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(services.get("driver").await).code, 404);
    assert!(services.get("unowned").await.is_ok());

    // An owner reference to a pod that does not exist is collected at once.
    let ghost = pod("ghost", json!({}));
    let mut ghost_owned = headless_service("orphan", Some(&ghost));
    ghost_owned.metadata.owner_references.as_mut().unwrap()[0].uid = "no-such-uid".into();
    services
        .create(&PostParams::default(), &ghost_owned)
        .await
        .unwrap();
    assert_eq!(api_error(services.get("orphan").await).code, 404);

    // Orphan propagation keeps the dependent and drops the reference.
    let owner = pods
        .create(&PostParams::default(), &pod("keep", json!({})))
        .await
        .unwrap();
    services
        .create(
            &PostParams::default(),
            &headless_service("kept", Some(&owner)),
        )
        .await
        .unwrap();
    pods.delete("keep", &DeleteParams::orphan()).await.unwrap();
    let kept = services.get("kept").await.unwrap();
    assert!(kept.metadata.owner_references.is_none());
}

#[tokio::test]
async fn call_counting_tells_single_gets_from_lists_and_watches() {
    let server = TestServer::start().await;
    let api = pods(&server);
    api.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    api.get("a").await.unwrap();
    api.get_status("a").await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    let _ = api.get("missing").await;

    assert_eq!(server.count(Verb::Create, Resource::Pods), 1);
    assert_eq!(server.count(Verb::Get, Resource::Pods), 3);
    assert_eq!(server.count(Verb::List, Resource::Pods), 1);
    assert_eq!(server.count(Verb::Get, Resource::Services), 0);
    assert_eq!(
        server.count_where(|c| c.verb == Verb::Get
            && c.name.as_deref() == Some("missing")
            && c.code == 404),
        1
    );
    let calls = server.calls();
    assert_eq!(calls[0].path, format!("/api/v1/namespaces/{NS}/pods"));
    assert_eq!(calls[2].subresource.as_deref(), Some("status"));

    server.reset_calls();
    assert!(server.calls().is_empty());
}

#[tokio::test]
async fn secrets_and_configmaps_round_trip() {
    let server = TestServer::start().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::default_namespaced(server.client(NS));
    let secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "stringData": {"token": "hello"}}),
    )
    .unwrap();
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert_eq!(created.data.unwrap()["token"].0, b"hello");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.string_data.is_none());
}
