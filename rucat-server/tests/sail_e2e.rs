//! Sail engines end to end with real parts: the `rucat-server` binary, a
//! SQLite file, local `sail spark server` processes from pysail, and a real
//! pyspark client going through rucat's gateway.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::processes::{KillEnginesOnPanic, RucatProcess, processes_mentioning, pyspark};
use support::rest;

/// Sail opens its port within milliseconds; this is for a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The Python that runs Sail: `scripts/install-deps`'s venv, whose pyspark
/// is one Sail 0.7 supports (it refuses the system's pyspark 4.3).
fn sail_python() -> PathBuf {
    let tools = std::env::var_os("RUCAT_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/rucat-tools"),
        PathBuf::from,
    );
    tools.join("sail-venv/bin/python")
}

/// A server whose local resource manager runs Sail with [`sail_python`].
fn server(data: &Path) -> RucatProcess {
    server_with(data, json!({}))
}

/// [`server`] with more top-level config, e.g. `idle`.
fn server_with(data: &Path, extra: Value) -> RucatProcess {
    let mut config = json!({"resource_manager": {"Local": {
        "work_dir": data.join("engines"), "sail_python": sail_python()}}});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    let path = data.join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    RucatProcess::server(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config-path",
        path.to_str().unwrap(),
    ])
}

/// The version of the pysail the local resource manager will run.
fn local_sail_version() -> String {
    let out = Command::new(sail_python())
        .args(["-c", "import pysail; print(pysail.__version__)"])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pysail is installed in {} (scripts/install-deps)",
        sail_python().display()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The REST API, for Sail engines of the local version.
struct Api<'a>(rest::Api<'a>);

impl<'a> Api<'a> {
    fn new(server: &'a RucatProcess) -> Self {
        Self(rest::Api::new(server, START_TIMEOUT))
    }

    async fn create(&self, configs: Value) -> reqwest::Response {
        self.0.create("Sail", &local_sail_version(), configs).await
    }

    async fn created(&self, configs: Value) -> String {
        self.0.created("Sail", &local_sail_version(), configs).await
    }
}

impl<'a> std::ops::Deref for Api<'a> {
    type Target = rest::Api<'a>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// sum(id) over range(1000) through `endpoint` with a real pyspark client.
async fn sum(endpoint: &str) -> Value {
    let endpoint = endpoint.to_owned();
    tokio::task::spawn_blocking(move || {
        pyspark(&["sum", &endpoint], &[]).unwrap_or_else(|stderr| panic!("sum failed: {stderr}"))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn sail_engine_lifecycle_through_the_server_and_gateway() {
    let data = tempfile::tempdir().unwrap();
    let _engines = KillEnginesOnPanic(data.path().display().to_string());
    let server = server(data.path());
    let api = Api::new(&server);

    let started = Instant::now();
    let id = api.created(json!({"execution.batch_size": "4096"})).await;
    let info = api.wait_for(&id, "Running").await;
    let to_running = started.elapsed();
    let endpoint = info["endpoint"].as_str().expect("an endpoint").to_owned();
    assert!(
        endpoint.starts_with("sc://localhost:")
            && endpoint.ends_with(&format!("/;x-rucat-engine-id={id}")),
        "users connect through the gateway: {endpoint}"
    );
    assert_eq!(info["engine_type"], "Sail");
    let engine = processes_mentioning(&format!(
        "--directory={}",
        data.path().join("engines").join(&id).display()
    ));
    assert_eq!(engine.len(), 1, "one sail process: {engine:?}");
    let query_started = Instant::now();
    assert_eq!(sum(&endpoint).await, json!(499500));
    eprintln!(
        "Sail: create -> Running {to_running:?}; first query {:?}",
        query_started.elapsed()
    );

    api.action(&id, "stop").await;
    let stopped = api.wait_for(&id, "Terminated").await;
    assert!(stopped.get("endpoint").is_none());
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new(), "sail is gone");

    api.action(&id, "restart").await;
    let info = api.wait_for(&id, "Running").await;
    assert_eq!(sum(info["endpoint"].as_str().unwrap()).await, json!(499500));

    api.action(&id, "stop").await;
    api.wait_for(&id, "Terminated").await;
    api.action(&id, "delete").await;
    assert_eq!(api.get(&id).await.status(), 404);
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new());
    assert!(
        !data.path().join("engines").join(&id).exists(),
        "no work directory left"
    );
    assert!(server.terminate());
}

#[tokio::test]
async fn sail_engine_with_a_bad_config_ends_in_error_clean_with_sails_reason() {
    let data = tempfile::tempdir().unwrap();
    let _engines = KillEnginesOnPanic(data.path().display().to_string());
    let server = server(data.path());
    let api = Api::new(&server);

    // Refused before anything is recorded: a key rucat reserves, and one
    // not in Sail's form.
    for (key, field) in [
        ("mode", "configs.mode"),
        ("Execution.x", "configs.Execution.x"),
    ] {
        let response = api.create(json!({ key: "x" })).await;
        assert_eq!(response.status(), 422, "{key}");
        let body = response.text().await.unwrap();
        assert!(body.contains(field), "{body}");
    }

    // Sail reads its configs when it starts: a value of the wrong type
    // fails the engine, and its log says why.
    let id = api.created(json!({"execution.batch_size": "lots"})).await;
    let info = api.wait_for(&id, "ErrorClean").await;
    let error = info["error"].as_str().expect("the reason is recorded");
    assert!(
        error.starts_with("Sail exited with code") && error.contains("\"lots\""),
        "{error}"
    );
    assert_eq!(
        processes_mentioning(&id),
        Vec::<u32>::new(),
        "no process left behind"
    );
    assert!(!data.path().join("engines").join(&id).exists());
    api.action(&id, "delete").await;
    assert_eq!(api.get(&id).await.status(), 404);
    assert!(server.terminate());
}

/// Sail engines are idle-stopped and resumed like Spark 4's: the gateway
/// sees their use.
#[tokio::test]
async fn an_idle_sail_engine_is_stopped_and_resumed_by_its_next_query() {
    const IDLE_SECS: u64 = 5;
    let data = tempfile::tempdir().unwrap();
    let idle = json!({"idle": {"timeout_secs": IDLE_SECS, "activity_interval_secs": 1}});
    let _engines = KillEnginesOnPanic(data.path().display().to_string());
    let server = server_with(data.path(), idle);
    let api = Api::new(&server);

    let id = api.created(json!({})).await;
    let info = api.wait_for(&id, "Running").await;
    assert_eq!(info["idle_timeout_secs"], IDLE_SECS);
    let endpoint = info["endpoint"].as_str().unwrap().to_owned();
    assert_eq!(sum(&endpoint).await, json!(499500));
    let used = Instant::now();

    let stopped = api.wait_for(&id, "Terminated").await;
    assert!(
        used.elapsed() >= Duration::from_secs(IDLE_SECS - 1),
        "stopped {:?} after its last use",
        used.elapsed()
    );
    let reason = stopped["stopped_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("idle for "), "{stopped}");
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new(), "sail is gone");

    // A stock client's next query brings it back and is answered.
    assert_eq!(sum(&endpoint).await, json!(499500));
    let info: Value = api.get(&id).await.json().await.unwrap();
    assert_eq!(info["state"], "Running", "{info}");
    assert_eq!(info["attempts"].as_array().map(Vec::len), Some(2), "{info}");

    api.action(&id, "stop").await;
    api.wait_for(&id, "Terminated").await;
    api.action(&id, "delete").await;
    assert!(server.terminate());
}
