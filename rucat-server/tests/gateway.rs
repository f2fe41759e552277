//! The gateway's refusals, each as the gRPC status a real Spark Connect
//! client (pyspark's generated stubs over grpcio) receives: the gateway runs
//! in-process over a real SQLite file holding engines in the states each case
//! needs, and listens on a real port.

mod support;

use std::sync::Arc;

use rucat_core::{CreateEngineRequest, EngineRecord, EngineState, Engines, Store, Timestamp};
use rucat_server::auth::{AuthProviderConfig, StaticAuth};
use rucat_server::gateway::{Activity, Gateway, GatewayMetrics};
use rucat_store::DatabaseConfig;
use serde_json::{Value, json};
use support::processes::pyspark;

struct Fixture {
    endpoint: String,
    store: Arc<dyn Store>,
    registry: prometheus_client::registry::Registry,
    _dir: tempfile::TempDir,
}

async fn gateway() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = rucat_store::open_store(&DatabaseConfig::Sqlite {
        path: dir.path().join("rucat.db"),
    })
    .await
    .unwrap();
    let auth: AuthProviderConfig = serde_json::from_value(json!({"StaticAuthProviderConfig":
        {"username": "admin", "password": "pw", "bearer_token": "user-token"}}))
    .unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let activity = Activity::with_metrics(GatewayMetrics::register(&mut registry));
    let gateway = Gateway::new(
        Engines::new(Arc::clone(&store)),
        Some(StaticAuth::from(auth)),
        activity,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("sc://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(gateway.serve(listener, None, std::future::pending()));
    Fixture {
        endpoint,
        store,
        registry,
        _dir: dir,
    }
}

/// Records an engine in `state`, Running ones at `endpoint`.
async fn engine(
    store: &Arc<dyn Store>,
    state: EngineState,
    version: &str,
    endpoint: &str,
) -> String {
    let spec = CreateEngineRequest::spark("g", version).validate().unwrap();
    let mut record = EngineRecord::new(spec, Timestamp::now());
    record.enter(state, Timestamp::now());
    record.endpoint = Some(endpoint.to_owned());
    store.insert(&record).await.unwrap();
    record.id().to_string()
}

/// One RPC with `metadata`; the status code and message it got.
async fn rpc(endpoint: &str, metadata: Value) -> (String, String) {
    let (endpoint, metadata) = (endpoint.to_owned(), metadata.to_string());
    let answer = tokio::task::spawn_blocking(move || {
        pyspark(&["rpc", &endpoint, &metadata], &[]).expect("the client runs")
    })
    .await
    .unwrap();
    (
        answer["code"].as_str().unwrap().to_owned(),
        answer["details"].as_str().unwrap().to_owned(),
    )
}

fn bearer(token: &str) -> Value {
    json!(["authorization", format!("Bearer {token}")])
}

fn engine_id(id: &str) -> Value {
    json!(["x-rucat-engine-id", id])
}

#[tokio::test]
async fn every_refusal_is_a_grpc_status_that_says_what_to_do() {
    let fx = gateway().await;
    let closed_port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let unreachable = engine(
        &fx.store,
        EngineState::Running,
        "4.3.0",
        &format!("sc://127.0.0.1:{closed_port}"),
    )
    .await;
    let stopped = engine(&fx.store, EngineState::Terminated, "4.3.0", "").await;
    let starting = engine(&fx.store, EngineState::StartInProgress, "4.3.0", "").await;
    let old_spark = engine(&fx.store, EngineState::Running, "3.5.3", "sc://127.0.0.1:1").await;
    let ballista = {
        let request = CreateEngineRequest {
            engine_type: "Ballista".into(),
            ..CreateEngineRequest::spark("b", "55.0.0")
        };
        let mut record = EngineRecord::new(request.validate().unwrap(), Timestamp::now());
        record.enter(EngineState::Running, Timestamp::now());
        record.endpoint = Some("df://127.0.0.1:1".into());
        fx.store.insert(&record).await.unwrap();
        record.id().to_string()
    };
    let unknown = rucat_core::EngineId::generate().to_string();

    let cases = [
        (
            json!([engine_id(&unreachable)]),
            "UNAUTHENTICATED",
            ";token=",
        ),
        (
            json!([bearer("wrong"), engine_id(&unreachable)]),
            "UNAUTHENTICATED",
            ";token=",
        ),
        (
            json!([bearer("user-token")]),
            "INVALID_ARGUMENT",
            ";x-rucat-engine-id=<engine id>",
        ),
        (
            json!([bearer("user-token"), engine_id("not-an-id")]),
            "INVALID_ARGUMENT",
            "x-rucat-engine-id: an engine id is 32 lowercase hexadecimal digits",
        ),
        (
            json!([bearer("user-token"), engine_id(&unknown)]),
            "NOT_FOUND",
            &format!("x-rucat-engine-id: no engine {unknown}"),
        ),
        (
            json!([bearer("user-token"), engine_id(&stopped)]),
            "FAILED_PRECONDITION",
            "is Terminated, not Running: it was stopped; start it with POST /engine/{id}/restart",
        ),
        (
            json!([bearer("user-token"), engine_id(&starting)]),
            "FAILED_PRECONDITION",
            "is StartInProgress, not Running: it is starting",
        ),
        (
            json!([bearer("user-token"), engine_id(&old_spark)]),
            "FAILED_PRECONDITION",
            "runs Spark 3.5.3, whose Spark Connect server cannot check a token",
        ),
        (
            json!([bearer("user-token"), engine_id(&ballista)]),
            "FAILED_PRECONDITION",
            "runs Ballista 55.0.0, which is not reached through rucat's gateway; connect to the endpoint that GET /engine/",
        ),
        (
            json!([bearer("user-token"), engine_id(&unreachable)]),
            "UNAVAILABLE",
            "is not reachable (cannot connect to it); retry in a moment",
        ),
    ];
    for (metadata, code, message) in cases {
        let (got_code, details) = rpc(&fx.endpoint, metadata.clone()).await;
        assert_eq!(got_code, code, "{metadata}: {details}");
        assert!(details.contains(message), "{metadata}: {details}");
        assert!(!details.contains("user-token"), "{details}");
    }

    let mut metrics = String::new();
    prometheus_client::encoding::text::encode(&mut metrics, &fx.registry).unwrap();
    for (reason, count) in [
        ("unauthenticated", 2),
        ("no_engine_id", 2),
        ("unknown_engine", 1),
        ("not_running", 2),
        ("unsupported_engine", 2),
        ("unreachable", 1),
    ] {
        let line = format!("rucat_gateway_refusals_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}
