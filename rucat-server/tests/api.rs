//! The REST API over real HTTP, without authentication.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{TestServer, create_body, expect_error, parts};
use reqwest::{Method, StatusCode};
use rucat_core::{EngineId, EngineRecord, EngineState, Store, StoreError, Timestamp};
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
        (Method::PUT, format!("/engine/{id}"), "GET,HEAD,DELETE"),
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
