//! The REST API over real HTTP, without authentication.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{TestServer, create_body, expect_error, parts};
use reqwest::{Method, StatusCode};
use rucat_core::{EngineId, EngineRecord, EngineState, Limits, Store, StoreError, Timestamp};
use serde_json::{Value, json};

#[tokio::test]
async fn create_then_get_shows_the_engine() {
    let server = TestServer::start(None).await;
    let id = server.create("etl-1").await;
    let response = server
        .request(Method::GET, &format!("/engine/{id}"))
        .send()
        .await
        .unwrap();
    let (status, _, body) = parts(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["name"], "etl-1");
    assert_eq!(body["engine_type"], "Spark");
    assert_eq!(body["version"], "3.5.3");
    assert_eq!(body["state"], "WaitToStart");
    assert_eq!(body["configs"], json!({"spark.executor.instances": "1"}));
    assert!(body["create_time"].as_str().is_some(), "{body}");
    assert!(body.get("endpoint").is_none(), "{body}");
    assert!(body.get("error").is_none(), "{body}");
}

#[tokio::test]
async fn create_answers_only_the_id() {
    let server = TestServer::start(None).await;
    let response = server
        .request(Method::POST, "/engine")
        .json(&json!({"name": "a", "engine_type": "Spark", "version": "4.0.1"}))
        .send()
        .await
        .unwrap();
    let (status, _, body) = parts(response).await;
    assert_eq!(status, StatusCode::OK);
    let object = body.as_object().unwrap();
    assert_eq!(object.len(), 1, "{body}");
    assert!(body["id"].as_str().unwrap().parse::<EngineId>().is_ok());
}

#[tokio::test]
async fn list_shows_ids_oldest_first() {
    let server = TestServer::start(None).await;
    let response = server
        .request(Method::GET, "/engines")
        .send()
        .await
        .unwrap();
    let (status, _, body) = parts(response).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));

    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(server.create(name).await);
        // Distinct creation milliseconds, so "oldest first" is well defined.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let response = server
        .request(Method::GET, "/engines")
        .send()
        .await
        .unwrap();
    let (status, _, body) = parts(response).await;
    assert_eq!(status, StatusCode::OK);
    let expected: Vec<Value> = ids.iter().map(|id| json!({"id": id.as_str()})).collect();
    assert_eq!(body, Value::Array(expected));
}

/// The URL of the `rel="next"` page in a `Link` header, if any.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().unwrap();
    let (url, rel) = link.split_once(">;").expect("<url>; rel=\"next\"");
    assert_eq!(rel.trim(), "rel=\"next\"", "{link}");
    Some(url.strip_prefix('<').expect("<url>").to_owned())
}

/// A page of `GET path`: its ids and the next page's URL.
async fn page(server: &TestServer, path: &str) -> (Vec<String>, Option<String>) {
    let response = server.request(Method::GET, path).send().await.unwrap();
    let (status, headers, body) = parts(response).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let ids = body
        .as_array()
        .unwrap_or_else(|| panic!("{path}: not an array: {body}"))
        .iter()
        .map(|entry| {
            assert_eq!(entry.as_object().unwrap().len(), 1, "{entry}");
            entry["id"].as_str().unwrap().to_owned()
        })
        .collect();
    (ids, next_link(&headers))
}

/// Every page from `path` on, following `Link` headers.
async fn walk(server: &TestServer, path: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        let (page_ids, link) = page(server, &path).await;
        ids.extend(page_ids);
        next = link;
    }
    ids
}

#[tokio::test]
async fn link_headers_lead_through_every_engine_once() {
    let server = TestServer::start(None).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(server.create(&format!("e{i}")).await.to_string());
    }
    // Without parameters: the seed's shape, every engine, no Link.
    let (all, link) = page(&server, "/engines").await;
    assert_eq!((all, link), (ids.clone(), None));

    // Pages of 7: 7, 7, 6, the last one not full and without a Link.
    let (first, link) = page(&server, "/engines?limit=7").await;
    assert_eq!(first, ids[..7]);
    let link = link.expect("a full page links to the next");
    assert_eq!(link, format!("/engines?after={}&limit=7", ids[6]));
    assert_eq!(walk(&server, "/engines?limit=7").await, ids);
    // Pages of 5 end with a full page: the page after it is empty.
    let (last, link) = page(&server, &format!("/engines?after={}&limit=5", ids[14])).await;
    assert_eq!(last, ids[15..]);
    let (empty, end) = page(&server, &link.expect("a full last page links on")).await;
    assert_eq!((empty, end), (vec![], None));

    // While engines are created and deleted between pages, each engine that
    // exists for the whole walk is listed exactly once, in order.
    let mut walked: Vec<String> = Vec::new();
    let mut next = Some("/engines?limit=3".to_owned());
    let mut deleted = Vec::new();
    let mut round = 0;
    while let Some(path) = next {
        let (page_ids, link) = page(&server, &path).await;
        walked.extend(page_ids);
        next = link;
        // Delete one not yet reached, create one (it sorts last).
        if let Some(ahead) = ids
            .iter()
            .rev()
            .find(|id| !walked.contains(id) && !deleted.contains(*id))
        {
            let response = server
                .request(Method::DELETE, &format!("/engine/{ahead}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            deleted.push(ahead.clone());
        }
        server.create(&format!("new{round}")).await;
        round += 1;
        assert!(round < 100, "the walk ends");
    }
    for pair in walked.windows(2) {
        assert!(pair[0] < pair[1], "in id order, never twice: {pair:?}");
    }
    for id in ids.iter().filter(|id| !deleted.contains(*id)) {
        assert!(walked.contains(id), "lasting engine {id} missed");
    }
    for id in &deleted {
        assert!(!walked.contains(id), "deleted before its page: {id}");
    }
}

#[tokio::test]
async fn without_a_limit_pages_hold_1000_engines() {
    let server = TestServer::start(None).await;
    let mut ids = Vec::new();
    for i in 0..1001 {
        let record = EngineRecord::new(
            rucat_core::EngineSpec {
                id: EngineId::generate(),
                name: format!("e{i}"),
                engine_type: rucat_core::EngineType::Spark,
                version: "4.3.0".to_owned(),
                configs: Default::default(),
                token: None,
            },
            Timestamp::now(),
        );
        server.store.insert(&record).await.unwrap();
        ids.push(record.id().to_string());
    }
    let (first, link) = page(&server, "/engines").await;
    assert_eq!(first, ids[..1000]);
    let link = link.expect("the rest is a Link away");
    assert_eq!(link, format!("/engines?after={}&limit=1000", ids[999]));
    let (rest, end) = page(&server, &link).await;
    assert_eq!((rest, end), (ids[1000..].to_vec(), None));
}

#[tokio::test]
async fn engines_are_filtered_by_state() {
    let server = TestServer::start(None).await;
    let mut by_state: Vec<(String, &str)> = Vec::new();
    for (i, state) in [
        EngineState::Terminated,
        EngineState::WaitToStart,
        EngineState::Running,
        EngineState::Terminated,
        EngineState::Running,
        EngineState::ErrorClean,
    ]
    .into_iter()
    .enumerate()
    {
        let id = server.create(&format!("e{i}")).await;
        if state != EngineState::WaitToStart {
            server.force(&id, state, |_| {}).await;
        }
        by_state.push((id.to_string(), state.name()));
    }
    let in_states = |names: &[&str]| -> Vec<String> {
        by_state
            .iter()
            .filter(|(_, state)| names.contains(state))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let terminated = page(&server, "/engines?state=Terminated").await;
    assert_eq!(terminated, (in_states(&["Terminated"]), None));
    let both = in_states(&["Running", "Terminated"]);
    for query in [
        "state=Running,Terminated",
        "state=Terminated&state=Running",
        "state=Running%2CTerminated",
    ] {
        assert_eq!(
            page(&server, &format!("/engines?{query}")).await,
            (both.clone(), None)
        );
    }
    // The Link keeps the filter.
    let (first, link) = page(&server, "/engines?state=Running&state=Terminated&limit=1").await;
    assert_eq!(first, both[..1]);
    let link = link.unwrap();
    assert_eq!(
        link,
        format!(
            "/engines?after={}&limit=1&state=Running,Terminated",
            both[0]
        )
    );
    assert_eq!(
        walk(&server, "/engines?state=Running&state=Terminated&limit=1").await,
        both
    );
    assert_eq!(
        page(&server, "/engines?state=StartInProgress").await,
        (vec![], None)
    );
}

#[tokio::test]
async fn bad_list_parameters_are_422_naming_the_parameter() {
    let server = TestServer::start(None).await;
    server.create("a").await;
    let cases = [
        (
            "limit=0",
            "limit",
            "limit: must be a whole number from 1 to 10000",
        ),
        (
            "limit=10001",
            "limit",
            "limit: must be a whole number from 1 to 10000",
        ),
        (
            "limit=ten",
            "limit",
            "limit: must be a whole number from 1 to 10000",
        ),
        (
            "after=nope",
            "after",
            "after: an engine id is 32 lowercase hexadecimal digits",
        ),
        (
            "state=Running,Sleeping",
            "state",
            "state: unknown state \"Sleeping\"; the states are WaitToStart, TriggerStart, StartInProgress, Running,",
        ),
    ];
    for (query, field, message) in cases {
        let response = server
            .request(Method::GET, &format!("/engines?{query}"))
            .send()
            .await
            .unwrap();
        let body = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        assert_eq!(body["field"], field, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().starts_with(message),
            "{query}: {body}"
        );
    }
    // The largest page is allowed.
    assert_eq!(page(&server, "/engines?limit=10000").await.0.len(), 1);
}

async fn state_of(server: &TestServer, id: &EngineId) -> Value {
    let response = server
        .request(Method::GET, &format!("/engine/{id}"))
        .send()
        .await
        .unwrap();
    parts(response).await.2["state"].clone()
}

#[tokio::test]
async fn stop_restart_delete_follow_the_lifecycle() {
    let server = TestServer::start(None).await;
    let id = server.create("a").await;
    for (method, path, state) in [
        (
            Method::POST,
            format!("/engine/{id}/stop"),
            Some("Terminated"),
        ),
        (
            Method::POST,
            format!("/engine/{id}/restart"),
            Some("WaitToStart"),
        ),
        (
            Method::POST,
            format!("/engine/{id}/stop"),
            Some("Terminated"),
        ),
        (Method::DELETE, format!("/engine/{id}"), None),
    ] {
        let response = server.request(method, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.text().await.unwrap(), "", "{path}: empty body");
        if let Some(state) = state {
            assert_eq!(state_of(&server, &id).await, state);
        }
    }
    let response = server
        .request(Method::GET, &format!("/engine/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = server
        .request(Method::GET, "/engines")
        .send()
        .await
        .unwrap();
    assert_eq!(parts(response).await.2, json!([]));
}

#[tokio::test]
async fn restart_of_a_stopping_engine_returns_it_to_running() {
    let server = TestServer::start(None).await;
    let id = server.create("a").await;
    server
        .force(&id, EngineState::Running, |r| {
            r.endpoint = Some("sc://127.0.0.1:15002".into())
        })
        .await;
    let stop = server
        .request(Method::POST, &format!("/engine/{id}/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), StatusCode::OK);
    assert_eq!(state_of(&server, &id).await, "WaitToTerminate");
    let restart = server
        .request(Method::POST, &format!("/engine/{id}/restart"))
        .send()
        .await
        .unwrap();
    assert_eq!(restart.status(), StatusCode::OK);
    assert_eq!(state_of(&server, &id).await, "Running");
}

#[tokio::test]
async fn endpoint_shows_only_while_running() {
    let server = TestServer::start(None).await;
    let id = server.create("a").await;
    server
        .force(&id, EngineState::Running, |r| {
            r.endpoint = Some("sc://127.0.0.1:15002".into())
        })
        .await;
    let get = || async {
        let response = server
            .request(Method::GET, &format!("/engine/{id}"))
            .send()
            .await
            .unwrap();
        parts(response).await.2
    };
    let body = get().await;
    assert_eq!(body["state"], "Running");
    assert_eq!(body["endpoint"], "sc://127.0.0.1:15002");

    // Stopping keeps the endpoint in the record, but it is no longer shown.
    server
        .force(&id, EngineState::WaitToTerminate, |_| {})
        .await;
    let record = server.store.get(&id).await.unwrap().unwrap();
    assert!(record.endpoint.is_some());
    let body = get().await;
    assert_eq!(body["state"], "WaitToTerminate");
    assert!(body.get("endpoint").is_none(), "{body}");
}

#[tokio::test]
async fn error_shows_only_in_error_states() {
    let server = TestServer::start(None).await;
    let id = server.create("a").await;
    // A stale error on a healthy engine is not shown.
    server
        .force(&id, EngineState::StartInProgress, |r| {
            r.error = Some("old".into())
        })
        .await;
    let url = format!("/engine/{id}");
    let body = parts(server.request(Method::GET, &url).send().await.unwrap())
        .await
        .2;
    assert!(body.get("error").is_none(), "{body}");

    server
        .force(&id, EngineState::ErrorClean, |r| {
            r.error = Some("spark-submit exited with 1".into())
        })
        .await;
    let (status, _, body) = parts(server.request(Method::GET, &url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "ErrorClean");
    assert_eq!(body["error"], "spark-submit exited with 1");
    assert!(body.get("endpoint").is_none(), "{body}");
    // An engine in ErrorClean can be deleted.
    let response = server.request(Method::DELETE, &url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn force_delete_is_the_way_out_of_a_cleanup_that_cannot_finish() {
    let server = TestServer::start(None).await;
    let id = server.create("a").await;
    let url = format!("/engine/{id}");
    let forced = format!("{url}?force=true");
    server.force(&id, EngineState::Running, |_| {}).await;
    let response = server
        .request(Method::DELETE, &forced)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::CONFLICT, "invalid_state").await;

    let blocked = "Kubernetes forbids rucat to create the driver pod: forbidden (403 Forbidden); cleanup blocked, retrying: Kubernetes forbids rucat to delete the driver pod: forbidden (403 Forbidden); until it succeeds, these may remain: pod rucat-x and service rucat-x in namespace spark";
    server
        .force(&id, EngineState::ErrorTriggerClean, |r| {
            r.error = Some(blocked.into())
        })
        .await;
    let body = parts(server.request(Method::GET, &url).send().await.unwrap())
        .await
        .2;
    assert_eq!(body["error"], blocked, "the engine shows why it is stuck");
    let response = server.request(Method::DELETE, &url).send().await.unwrap();
    expect_error(response, StatusCode::CONFLICT, "invalid_state").await;
    let response = server
        .request(Method::DELETE, &format!("{url}?force=maybe"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "bad_request").await;

    let response = server
        .request(Method::DELETE, &forced)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = server.request(Method::GET, &url).send().await.unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = TestServer::start(None).await;
    for body in ["{", "", "not json", r#"{"name": "a",}"#] {
        let response = server
            .request(Method::POST, "/engine")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}

#[tokio::test]
async fn malformed_ids_are_400() {
    let server = TestServer::start(None).await;
    for (method, path) in [
        (Method::GET, "/engine/not-an-id"),
        (Method::GET, "/engine/ABCDEF0123456789ABCDEF0123456789"),
        (Method::GET, "/engine/..%2F..%2Fetc%2Fpasswd"),
        (Method::GET, "/engine/%FF"),
        (Method::POST, "/engine/123/stop"),
        (Method::POST, "/engine/123/restart"),
        (Method::DELETE, "/engine/123"),
    ] {
        let response = server.request(method, path).send().await.unwrap();
        let body = expect_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(
            body["message"].as_str().unwrap().contains("engine id") || path.contains("%FF"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn unknown_engines_are_404() {
    let server = TestServer::start(None).await;
    let id = EngineId::generate();
    for (method, path) in [
        (Method::GET, format!("/engine/{id}")),
        (Method::POST, format!("/engine/{id}/stop")),
        (Method::POST, format!("/engine/{id}/restart")),
        (Method::DELETE, format!("/engine/{id}")),
    ] {
        let response = server.request(method, &path).send().await.unwrap();
        let body = expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
        assert!(
            body["message"].as_str().unwrap().contains(id.as_str()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let server = TestServer::start(None).await;
    for path in ["/", "/engine/", "/nope", "/engines/x", "/engine/x/y/z"] {
        let response = server.request(Method::GET, path).send().await.unwrap();
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let server = TestServer::start(None).await;
    let id = EngineId::generate();
    for (method, path, allow) in [
        (Method::GET, "/engine".to_owned(), "POST"),
        (
            Method::PUT,
            format!("/engine/{id}"),
            "GET,HEAD,DELETE,PATCH",
        ),
        (Method::GET, format!("/engine/{id}/stop"), "POST"),
        (Method::DELETE, format!("/engine/{id}/restart"), "POST"),
        (Method::POST, "/engines".to_owned(), "GET,HEAD"),
    ] {
        let response = server.request(method, &path).send().await.unwrap();
        let headers = response.headers().clone();
        expect_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
        assert_eq!(headers.get("allow").unwrap(), allow, "{path}");
    }
}

#[tokio::test]
async fn actions_invalid_in_the_state_are_409_naming_the_state() {
    let server = TestServer::start(None).await;
    let id = server.create("a").await;
    let restart = format!("/engine/{id}/restart");
    let response = server.request(Method::POST, &restart).send().await.unwrap();
    let body = expect_error(response, StatusCode::CONFLICT, "invalid_state").await;
    assert_eq!(body["state"], "WaitToStart");
    assert!(
        body["message"].as_str().unwrap().contains("RESTART"),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("WaitToStart"),
        "{body}"
    );

    let stop = format!("/engine/{id}/stop");
    assert_eq!(
        server
            .request(Method::POST, &stop)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let response = server.request(Method::POST, &stop).send().await.unwrap();
    let body = expect_error(response, StatusCode::CONFLICT, "invalid_state").await;
    assert_eq!(body["state"], "Terminated");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("in state Terminated"),
        "{body}"
    );

    server.force(&id, EngineState::Running, |_| {}).await;
    let response = server
        .request(Method::DELETE, &format!("/engine/{id}"))
        .send()
        .await
        .unwrap();
    let body = expect_error(response, StatusCode::CONFLICT, "invalid_state").await;
    assert_eq!(body["state"], "Running");
    assert_eq!(state_of(&server, &id).await, "Running", "nothing changed");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let server = TestServer::start(None).await;
    let mut body = create_body("a");
    body["configs"]["spark.big"] = Value::String("x".repeat(rucat_server::api::MAX_BODY_BYTES));
    let response = server
        .request(Method::POST, "/engine")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Also without a Content-Length: the limit applies while reading.
    let response = raw_chunked_post(&server, &serde_json::to_vec(&body).unwrap()).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");
}

/// POSTs `body` with chunked transfer encoding, which reqwest without its
/// `stream` feature cannot, and returns the raw response.
async fn raw_chunked_post(server: &TestServer, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /engine HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let mut request = head.into_bytes();
    for chunk in body.chunks(4096) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

async fn post_create(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .request(Method::POST, "/engine")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn invalid_requests_are_422_naming_the_field() {
    let server = TestServer::start(None).await;
    let cases = [
        (
            json!({"name": "", "engine_type": "Spark", "version": "3.5.3"}),
            "name",
            "name: must not be empty",
        ),
        (
            json!({"name": "Bad_Name", "engine_type": "Spark", "version": "3.5.3"}),
            "name",
            "name: may contain only",
        ),
        (
            json!({"name": "a", "engine_type": "Flink", "version": "1.0.0"}),
            "engine_type",
            "engine_type: unknown engine type",
        ),
        (
            json!({"name": "a", "engine_type": "Spark", "version": "2.4.8"}),
            "version",
            "version: Spark version",
        ),
        (
            json!({"name": "a", "engine_type": "Spark", "version": "3.5.3", "configs": {"spark.master": "local"}}),
            "configs.spark.master",
            "configs.spark.master: is set by rucat",
        ),
    ];
    for (body, field, message) in cases {
        let response = post_create(&server, body).await;
        let body = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        assert_eq!(body["field"], field, "{body}");
        assert!(
            body["message"].as_str().unwrap().starts_with(message),
            "{body}"
        );
    }
    let response = server
        .request(Method::GET, "/engines")
        .send()
        .await
        .unwrap();
    assert_eq!(parts(response).await.2, json!([]), "nothing was recorded");
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_are_422() {
    let server = TestServer::start(None).await;
    let mut unknown = create_body("a");
    unknown["config"] = json!({});
    let response = post_create(&server, unknown).await;
    let body = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    )
    .await;
    assert_eq!(body["field"], "config");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `config`"),
        "{body}"
    );

    let response = post_create(&server, json!({"name": "a", "engine_type": "Spark"})).await;
    let body = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    )
    .await;
    assert_eq!(body["field"], "version");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("missing field `version`"),
        "{body}"
    );

    for wrong in [
        json!({"name": 5, "engine_type": "Spark", "version": "3.5.3"}),
        json!({"name": "a", "engine_type": "Spark", "version": "3.5.3", "configs": {"k": 1}}),
        json!([1, 2]),
        json!("a"),
    ] {
        let response = post_create(&server, wrong.clone()).await;
        let body = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        assert!(
            body["message"].as_str().unwrap().contains("invalid type"),
            "{wrong}: {body}"
        );
    }
}

#[tokio::test]
async fn bodies_that_are_not_json_are_415() {
    let server = TestServer::start(None).await;
    let text = create_body("a").to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = server.request(Method::POST, "/engine").body(text.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        expect_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    let response = server
        .request(Method::POST, "/engine")
        .header("content-type", "application/json; charset=utf-8")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// A store that fails every call the same way.
struct BrokenStore(fn() -> StoreError);

#[async_trait]
impl Store for BrokenStore {
    async fn insert(&self, _: &EngineRecord) -> Result<(), StoreError> {
        Err((self.0)())
    }
    async fn insert_within(&self, _: &EngineRecord, _: &Limits) -> Result<(), StoreError> {
        Err((self.0)())
    }
    async fn compare_and_swap_within(
        &self,
        _: u64,
        _: &EngineRecord,
        _: &Limits,
    ) -> Result<u64, StoreError> {
        Err((self.0)())
    }
    async fn get(&self, _: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        Err((self.0)())
    }
    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        Err((self.0)())
    }
    async fn compare_and_swap(&self, _: u64, _: &EngineRecord) -> Result<u64, StoreError> {
        Err((self.0)())
    }
    async fn delete(&self, _: &EngineId, _: u64) -> Result<(), StoreError> {
        Err((self.0)())
    }
    async fn due(&self, _: Timestamp, _: usize) -> Result<Vec<EngineRecord>, StoreError> {
        Err((self.0)())
    }
}

#[tokio::test]
async fn an_unavailable_store_is_503_without_details() {
    let store = Arc::new(BrokenStore(|| {
        StoreError::Unavailable("disk I/O at /secret/path".into())
    }));
    let server = TestServer::with_store(store, None).await;
    let id = EngineId::generate();
    let responses = [
        server
            .request(Method::GET, "/engines")
            .send()
            .await
            .unwrap(),
        server
            .request(Method::GET, &format!("/engine/{id}"))
            .send()
            .await
            .unwrap(),
        server
            .request(Method::POST, &format!("/engine/{id}/stop"))
            .send()
            .await
            .unwrap(),
        post_create(&server, create_body("a")).await,
    ];
    for response in responses {
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
        let body = expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
        assert!(!body.to_string().contains("/secret/path"), "{body}");
    }
}

#[tokio::test]
async fn corrupt_data_is_500_without_details() {
    let store = Arc::new(BrokenStore(|| StoreError::Corrupt {
        id: "x".into(),
        reason: "bad bytes in row".into(),
    }));
    let server = TestServer::with_store(store, None).await;
    let response = server
        .request(Method::GET, "/engines")
        .send()
        .await
        .unwrap();
    let body = expect_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
    assert!(!body.to_string().contains("bad bytes"), "{body}");
}

/// A memory store whose compare-and-swap always loses the race.
struct RacyStore(rucat_core::store::MemoryStore);

#[async_trait]
impl Store for RacyStore {
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
        self.0.insert(record).await
    }
    async fn insert_within(
        &self,
        record: &EngineRecord,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        self.0.insert_within(record, limits).await
    }
    async fn compare_and_swap_within(
        &self,
        _: u64,
        next: &EngineRecord,
        _: &Limits,
    ) -> Result<u64, StoreError> {
        Err(StoreError::Conflict(next.id().clone()))
    }
    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        self.0.get(id).await
    }
    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        self.0.list().await
    }
    async fn compare_and_swap(&self, _: u64, next: &EngineRecord) -> Result<u64, StoreError> {
        Err(StoreError::Conflict(next.id().clone()))
    }
    async fn delete(&self, id: &EngineId, _: u64) -> Result<(), StoreError> {
        Err(StoreError::Conflict(id.clone()))
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError> {
        self.0.due(now, limit).await
    }
}

#[tokio::test]
async fn endless_contention_is_409() {
    let store = Arc::new(RacyStore(rucat_core::store::MemoryStore::new()));
    let server = TestServer::with_store(store, None).await;
    let id = server.create("a").await;
    let response = server
        .request(Method::POST, &format!("/engine/{id}/stop"))
        .send()
        .await
        .unwrap();
    let body = expect_error(response, StatusCode::CONFLICT, "conflict").await;
    assert!(body.get("state").is_none(), "{body}");
}

/// Idle timeouts over the API: chosen at creation within the server's
/// policy, shown by GET, changed by PATCH, and a stop says who stopped it.
#[tokio::test]
async fn idle_settings_are_requested_shown_and_changed() {
    let policy = rucat_core::IdlePolicy {
        default_timeout: std::time::Duration::from_secs(1800),
        max_timeout: Some(std::time::Duration::from_secs(7200)),
        activity_interval: std::time::Duration::from_secs(10),
    };
    let engines = rucat_core::Engines::new(Arc::new(rucat_core::store::MemoryStore::new()))
        .with_idle_policy(policy);
    let server = TestServer::with_engines(engines, None).await;
    let spark4 = json!({"name": "a", "engine_type": "Spark", "version": "4.0.1"});
    let with = |extra: Value| {
        let mut body = spark4.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (body, reason) in [
        (with(json!({"idle_timeout_secs": 5})), "at least 30"),
        (with(json!({"idle_timeout_secs": 9000})), "at most 7200"),
        (with(json!({"idle_timeout_secs": 0})), "never"),
        (
            json!({"name": "b", "engine_type": "Spark", "version": "3.5.3", "idle_timeout_secs": 600}),
            "directly",
        ),
    ] {
        let (status, _, error) = parts(post_create(&server, body.clone()).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["field"], "idle_timeout_secs", "{error}");
        assert!(
            error["message"].as_str().unwrap().contains(reason),
            "{body}: {error}"
        );
    }
    for body in [
        with(json!({"idle_timeout_secs": -1})),
        with(json!({"idle_timeout_secs": "600"})),
        with(json!({"auto_resume": "yes"})),
    ] {
        let (status, _, _) = parts(post_create(&server, body.clone()).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    let (status, _, created) = parts(post_create(&server, spark4.clone()).await).await;
    assert_eq!(status, StatusCode::OK);
    let id: EngineId = created["id"].as_str().unwrap().parse().unwrap();
    let shown = engine_of(&server, &id).await;
    assert_eq!(shown["idle_timeout_secs"], 1800, "{shown}");
    assert_eq!(shown["auto_resume"], false, "{shown}");
    assert!(shown.get("last_activity").is_none(), "{shown}");
    assert!(shown.get("stopped_reason").is_none(), "{shown}");

    let patch = |body: Value| {
        server
            .request(Method::PATCH, &format!("/engine/{id}"))
            .json(&body)
            .send()
    };
    let (status, _, changed) = parts(
        patch(json!({"idle_timeout_secs": 600, "auto_resume": true}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (&changed["idle_timeout_secs"], &changed["auto_resume"]),
        (&json!(600), &json!(true))
    );
    let (status, _, same) = parts(patch(json!({})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same, changed, "an empty change changes nothing");
    let (status, _, error) = parts(patch(json!({"idle_timeout_secs": 1})).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["field"], "idle_timeout_secs");
    // JSON's other spellings: a whole float is a number of seconds; an
    // array is no body of fields, and null is no list of groups.
    let (status, _, whole) = parts(patch(json!({"idle_timeout_secs": 900.0})).await.unwrap()).await;
    assert_eq!(
        (status, &whole["idle_timeout_secs"]),
        (StatusCode::OK, &json!(900))
    );
    for wrong in [
        json!([null, null]),
        json!({"idle_timeout_secs": 900.5}),
        json!({"share_with_groups": null}),
    ] {
        let (status, _, _) = parts(patch(wrong.clone()).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong}");
    }
    // A Spark 3.5 engine is reached directly: it cannot be idle-tracked.
    let (_, _, old) = parts(
        post_create(
            &server,
            json!({"name": "b", "engine_type": "Spark", "version": "3.5.3"}),
        )
        .await,
    )
    .await;
    let old_id = old["id"].as_str().unwrap();
    let response = server
        .request(Method::PATCH, &format!("/engine/{old_id}"))
        .json(&json!({"idle_timeout_secs": 600}))
        .send()
        .await
        .unwrap();
    let (status, _, error) = parts(response).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("directly"),
        "{error}"
    );

    let stop = server
        .request(Method::POST, &format!("/engine/{id}/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), StatusCode::OK);
    let stopped = engine_of(&server, &id).await;
    assert_eq!(stopped["state"], "Terminated");
    assert!(
        stopped["stopped_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("stopped by ")),
        "{stopped}"
    );
}

async fn engine_of(server: &TestServer, id: &EngineId) -> Value {
    let response = server
        .request(Method::GET, &format!("/engine/{id}"))
        .send()
        .await
        .unwrap();
    parts(response).await.2
}
