//! A real HTTP server on a free local port, for the API tests.

#![allow(dead_code)]

use std::sync::Arc;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use rucat_core::store::MemoryStore;
use rucat_core::{EngineId, EngineRecord, EngineState, Engines, Store, Timestamp};
use rucat_server::api;
use rucat_server::auth::StaticAuth;
use serde_json::{Value, json};

pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: Client,
}

impl TestServer {
    pub async fn start(auth: Option<StaticAuth>) -> Self {
        Self::with_store(Arc::new(MemoryStore::new()), auth).await
    }

    pub async fn with_store(store: Arc<dyn Store>, auth: Option<StaticAuth>) -> Self {
        Self::with_engines(Engines::new(store), auth).await
    }

    pub async fn with_engines(engines: Engines, auth: Option<StaticAuth>) -> Self {
        let store = Arc::clone(engines.store());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = api::router(engines, auth);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            base: format!("http://{addr}"),
            store,
            client: Client::new(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn create(&self, name: &str) -> EngineId {
        let response = self
            .request(Method::POST, "/engine")
            .json(&create_body(name))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Puts an engine into `state` directly in the store, as a monitor would.
    pub async fn force(
        &self,
        id: &EngineId,
        state: EngineState,
        edit: impl FnOnce(&mut EngineRecord),
    ) {
        let mut record = self.store.get(id).await.unwrap().unwrap();
        let revision = record.revision;
        record.enter(state, Timestamp::now());
        edit(&mut record);
        self.store
            .compare_and_swap(revision, &record)
            .await
            .unwrap();
    }
}

pub fn create_body(name: &str) -> Value {
    json!({
        "name": name,
        "engine_type": "Spark",
        "version": "3.5.3",
        "configs": {"spark.executor.instances": "1"}
    })
}

/// Status, headers and the body parsed as JSON (`Null` if empty).
pub async fn parts(response: Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, headers, body)
}

/// Asserts the error shape and returns the body for further checks.
pub async fn expect_error(response: Response, status: StatusCode, kind: &str) -> Value {
    let (got, headers, body) = parts(response).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json",
        "{body}"
    );
    assert_eq!(body["error"], kind, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}
