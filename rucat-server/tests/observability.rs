//! Health, readiness, metrics and the OpenAPI document of the REST server,
//! over real HTTP.

mod common;

use rucat_core::store::Unreachable;
use std::sync::Arc;

use common::{TestServer, create_body, parts};
use reqwest::{Client, Method, StatusCode};
use rucat_core::store::MemoryStore;
use rucat_core::{EngineId, EngineState, Engines, Store};
use rucat_monitor::http::Telemetry;
use rucat_server::api::{self, HttpMetrics};
use rucat_server::auth::{StaticAuth, StaticAuthProviderConfig};
use serde_json::{Value, json};

fn auth(bearer: bool) -> StaticAuth {
    serde_json::from_value::<StaticAuthProviderConfig>(json!({
        "username": "admin",
        "password": "secret",
        "bearer_token": if bearer { Some("token") } else { None },
    }))
    .unwrap()
    .into()
}

/// The server as the binary runs it: with `/metrics` and HTTP metrics.
async fn observed(store: Arc<dyn Store>, auth: Option<StaticAuth>) -> String {
    let mut telemetry = Telemetry::new(store.clone());
    let http = HttpMetrics::register(telemetry.registry_mut());
    let router = api::observed_router(Engines::new(store), auth, Arc::new(telemetry), http);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn get(url: String) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    parts(Client::new().get(url).send().await.unwrap()).await
}

#[tokio::test]
async fn healthz_is_ok_and_readyz_follows_the_store() {
    let server = TestServer::start(None).await;
    for path in ["/healthz", "/readyz"] {
        let response = server.request(Method::GET, path).send().await.unwrap();
        let (status, _, body) = parts(response).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"status": "ok"})),
            "{path}"
        );
    }

    let server = TestServer::with_store(Arc::new(Unreachable), None).await;
    let response = server
        .request(Method::GET, "/healthz")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "alive even without a store"
    );
    let response = server.request(Method::GET, "/readyz").send().await.unwrap();
    let (status, headers, body) = parts(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(body["message"].as_str().is_some(), "{body}");
    assert!(!body.to_string().contains("/secret/path"), "{body}");
}

#[tokio::test]
async fn probes_scrapes_and_the_document_need_no_credentials() {
    let base = observed(Arc::new(MemoryStore::new()), Some(auth(true))).await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let response = Client::new()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // Everything else still needs them, unknown paths included.
    for path in ["/engines", "/nowhere"] {
        let (status, _, body) = get(format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn wrong_methods_on_health_routes_are_json_405s() {
    let server = TestServer::start(None).await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let response = server.request(Method::POST, path).send().await.unwrap();
        let (status, _, body) = parts(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(body["error"], "method_not_allowed", "{path}");
    }
}

#[tokio::test]
async fn http_metrics_name_route_patterns_never_ids() {
    let store = Arc::new(MemoryStore::new());
    let base = observed(store.clone(), None).await;
    let client = Client::new();
    let created: Value = client
        .post(format!("{base}/engine"))
        .json(&create_body("seen"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let absent = EngineId::generate();
    for path in [
        format!("/engine/{id}"),
        format!("/engine/{absent}"),
        "/engine/not-an-id".to_owned(),
        format!("/engine/{id}/stop"),
        "/no/such/route".to_owned(),
    ] {
        let method = if path.ends_with("/stop") {
            Method::POST
        } else {
            Method::GET
        };
        client
            .request(method, format!("{base}{path}"))
            .send()
            .await
            .unwrap();
    }

    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let metrics = response.text().await.unwrap();
    for sample in [
        r#"rucat_http_requests_total{method="POST",route="/engine",status="200"} 1"#,
        r#"rucat_http_requests_total{method="GET",route="/engine/{id}",status="200"} 1"#,
        r#"rucat_http_requests_total{method="GET",route="/engine/{id}",status="404"} 1"#,
        r#"rucat_http_requests_total{method="GET",route="/engine/{id}",status="400"} 1"#,
        r#"rucat_http_requests_total{method="POST",route="/engine/{id}/stop",status="200"} 1"#,
        r#"rucat_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"rucat_http_request_duration_seconds_count{method="GET",route="/engine/{id}",status="200"} 1"#,
        // Stopped before any monitor saw it.
        r#"rucat_engines{state="Terminated"} 1"#,
        r#"rucat_engines{state="Running"} 0"#,
        "rucat_store_up 1",
    ] {
        assert!(metrics.contains(sample), "{sample}\n{metrics}");
    }
    assert!(
        !metrics.contains(&id),
        "an engine id in the metrics:\n{metrics}"
    );
    assert!(!metrics.contains(absent.as_str()));
    assert!(!metrics.contains("not-an-id") && !metrics.contains("/no/such"));
}

#[tokio::test]
async fn the_document_describes_every_route_with_its_errors() {
    let server = TestServer::start(None).await;
    let response = server
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap();
    let (status, headers, doc) = parts(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");

    let error_schema = json!({"$ref": "#/components/schemas/Error"});
    for (path, method, errors) in [
        (
            "/engine",
            "post",
            &["400", "413", "415", "422", "500", "503"][..],
        ),
        ("/engines", "get", &["500", "503"]),
        ("/engine/{id}", "get", &["400", "404", "500", "503"]),
        (
            "/engine/{id}",
            "delete",
            &["400", "404", "409", "500", "503"],
        ),
        (
            "/engine/{id}/stop",
            "post",
            &["400", "404", "409", "500", "503"],
        ),
        (
            "/engine/{id}/restart",
            "post",
            &["400", "404", "409", "500", "503"],
        ),
    ] {
        let operation = &doc["paths"][path][method];
        let responses = operation["responses"].as_object().unwrap_or_else(|| {
            panic!("{method} {path} is not described");
        });
        assert!(responses.contains_key("200"), "{method} {path}");
        assert!(!responses.contains_key("401"), "no 401 without auth");
        assert!(operation.get("security").is_none());
        for status in errors {
            assert_eq!(
                responses[*status]["content"]["application/json"]["schema"], error_schema,
                "{method} {path} {status}"
            );
        }
    }
    assert_eq!(
        doc["paths"]["/engine/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/EngineInfo"})
    );
    assert!(doc["components"].get("securitySchemes").is_none());

    let schemas = &doc["components"]["schemas"];
    let states: Vec<&str> = schemas["EngineState"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let all: Vec<&str> = EngineState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(states, all);
    let info = &schemas["EngineInfo"];
    let required: Vec<&str> = info["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(!required.contains(&"endpoint") && !required.contains(&"error"));
    assert!(required.contains(&"state") && required.contains(&"id"));
    let error = &schemas["Error"];
    assert_eq!(error["required"], json!(["error", "message"]));
    for field in ["error", "message", "field", "state"] {
        assert!(error["properties"].get(field).is_some(), "{field}");
    }
    assert_eq!(
        schemas["CreateEngineRequest"]["additionalProperties"],
        false
    );
}

#[tokio::test]
async fn with_auth_the_document_names_the_schemes_and_401s() {
    for (bearer, schemes) in [(false, &["basic"][..]), (true, &["basic", "bearer"])] {
        let base = observed(Arc::new(MemoryStore::new()), Some(auth(bearer))).await;
        let (_, _, doc) = get(format!("{base}/openapi.json")).await;
        let defined: Vec<&String> = doc["components"]["securitySchemes"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(defined, schemes.to_vec());
        let stop = &doc["paths"]["/engine/{id}/stop"]["post"];
        assert!(stop["responses"].get("401").is_some());
        let required: Vec<Value> = schemes.iter().map(|s| json!({*s: []})).collect();
        assert_eq!(stop["security"], Value::Array(required));
        let health = &doc["paths"]["/healthz"]["get"];
        assert!(health.get("security").is_none() && health["responses"].get("401").is_none());
    }
}
