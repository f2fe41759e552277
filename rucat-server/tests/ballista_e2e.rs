//! Ballista engines end to end with real parts: the `rucat-server` binary, a
//! SQLite file, local `ballista-scheduler` and `ballista-executor` processes
//! built from the crates registry, and a real Ballista client
//! (`rucat-ballista-client`, the `ballista` crate's `SessionContext::remote`)
//! that talks to the scheduler and fetches results from the executors.
//!
//! The binaries are built by `scripts/test` (`rucat-core/ballista-cluster`),
//! which exports their directory as `RUCAT_BALLISTA_BIN_DIR`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::processes::{KillEnginesOnPanic, RucatProcess, processes_mentioning};
use support::rest::Api;

/// Ballista is ready within a second or two; this is for a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(90);
const VERSION: &str = "55.0.0";
/// sum(id) over range(1000), as the Spark and Sail tests ask.
const SUM: &str = "SELECT sum(v) FROM (SELECT unnest(range(1000)) AS v)";
/// Run in stages by the executors: an aggregate whose groups are shuffled,
/// then sorted.
const GROUPED: &str =
    "SELECT v % 3 AS k, count(*) FROM (SELECT unnest(range(30)) AS v) GROUP BY k ORDER BY k";

fn bin_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("RUCAT_BALLISTA_BIN_DIR").expect(
        "RUCAT_BALLISTA_BIN_DIR names the built Ballista binaries: run the tests with scripts/test",
    ))
}

/// A server whose local resource manager runs the built Ballista.
fn server(data: &Path) -> RucatProcess {
    let config = json!({"resource_manager": {"Local": {
        "work_dir": data.join("engines"), "ballista_bin_dir": bin_dir()}}});
    let path = data.join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    RucatProcess::server(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config-path",
        path.to_str().unwrap(),
    ])
}

/// Runs `sql` against the scheduler at `endpoint` with the real client; its
/// rows, one line each.
async fn query(endpoint: &str, sql: &str) -> String {
    let client = bin_dir().join("rucat-ballista-client");
    let (endpoint, sql) = (endpoint.to_owned(), sql.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(client)
            .args([&endpoint, &sql])
            .output()
            .expect("rucat-ballista-client runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn ballista_engine_lifecycle_through_the_server() {
    let data = tempfile::tempdir().unwrap();
    let _engines = KillEnginesOnPanic(data.path().display().to_string());
    let server = server(data.path());
    let api = Api::new(&server, START_TIMEOUT);
    let engine_dir = |id: &str| data.path().join("engines").join(id);

    let configs = json!({"executors": "2", "executor.vcores": "2"});
    let started = Instant::now();
    let id = api.created("Ballista", VERSION, configs).await;
    let info = api.wait_for(&id, "Running").await;
    eprintln!("Ballista: create -> Running {:?}", started.elapsed());
    let endpoint = info["endpoint"].as_str().expect("an endpoint").to_owned();
    assert!(
        endpoint.starts_with("df://127.0.0.1:"),
        "users reach the scheduler directly: {endpoint}"
    );
    assert_eq!(info["engine_type"], "Ballista");
    assert_eq!(
        processes_mentioning(&id).len(),
        3,
        "a scheduler and two executors"
    );
    for log in ["engine.log", "executor-1.log", "executor-2.log"] {
        assert!(engine_dir(&id).join(log).is_file(), "{log}");
    }
    assert_eq!(query(&endpoint, SUM).await, "499500");
    assert_eq!(query(&endpoint, GROUPED).await, "0,10\n1,10\n2,10");

    api.action(&id, "stop").await;
    let stopped = api.wait_for(&id, "Terminated").await;
    assert!(stopped.get("endpoint").is_none());
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new(), "all gone");

    api.action(&id, "restart").await;
    let info = api.wait_for(&id, "Running").await;
    assert_eq!(
        query(info["endpoint"].as_str().unwrap(), SUM).await,
        "499500"
    );

    api.action(&id, "stop").await;
    api.wait_for(&id, "Terminated").await;
    api.action(&id, "delete").await;
    assert_eq!(api.get(&id).await.status(), 404);
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new());
    assert!(!engine_dir(&id).exists(), "no work directory left");
    assert!(server.terminate());
}

#[tokio::test]
async fn ballista_engine_fails_with_an_executors_reason() {
    let data = tempfile::tempdir().unwrap();
    let _engines = KillEnginesOnPanic(data.path().display().to_string());
    let server = server(data.path());
    let api = Api::new(&server, START_TIMEOUT);

    // Refused before anything is recorded: flags rucat sets, and keys that
    // are not Ballista's.
    for (key, field) in [
        ("executor.bind-host", "configs.executor.bind-host"),
        ("scheduler.bind-port", "configs.scheduler.bind-port"),
        ("executors", "configs.executors"),
        ("spark.executor.cores", "configs.spark.executor.cores"),
    ] {
        let response = api.create("Ballista", VERSION, json!({ key: "0" })).await;
        assert_eq!(response.status(), 422, "{key}");
        let body = response.text().await.unwrap();
        assert!(body.contains(field), "{body}");
    }

    // Ballista reads its flags when it starts: a value it cannot parse
    // fails the executors, and the engine says which and why.
    let configs = json!({"executors": "1", "executor.memory-pool-size": "lots"});
    let id = api.created("Ballista", VERSION, configs).await;
    let info = api.wait_for(&id, "ErrorClean").await;
    let error = info["error"].as_str().expect("the reason is recorded");
    assert!(
        error.starts_with("executor-1: Ballista exited with code") && error.contains("lots"),
        "{error}"
    );
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new(), "none left");
    assert!(!data.path().join("engines").join(&id).exists());

    // An executor that dies while Running fails the engine too.
    let id = api
        .created("Ballista", VERSION, json!({"executors": "2"}))
        .await;
    api.wait_for(&id, "Running").await;
    let executor = processes_mentioning(&id)
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("executor-2"))
        })
        .expect("executor-2 runs");
    Command::new("kill")
        .args(["-9", &executor.to_string()])
        .status()
        .unwrap();
    let info = api.wait_for(&id, "ErrorClean").await;
    let error = info["error"].as_str().unwrap();
    assert!(
        error.starts_with("executor-2: Ballista was killed by signal 9"),
        "{error}"
    );
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new(), "none left");
    api.action(&id, "delete").await;
    assert_eq!(api.get(&id).await.status(), 404);
    assert!(server.terminate());
}
