//! End to end with real parts: the `rucat-server` binary, a SQLite file, local
//! Spark Connect servers from pyspark, and a pyspark client.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::processes::{RucatProcess, local_spark_version, processes_mentioning, spark_query};

const START_TIMEOUT: Duration = Duration::from_secs(240);

struct Api {
    client: reqwest::Client,
}

impl Api {
    fn new() -> Self {
        Self {
            client: reqwest::Client::new(),
        }
    }

    async fn create(&self, server: &RucatProcess, configs: Value) -> String {
        let body = json!({"name": "e2e", "engine_type": "Spark", "version": local_spark_version(), "configs": configs});
        let response = self
            .client
            .post(server.url("/engine"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let created: Value = response.json().await.unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, server: &RucatProcess, id: &str) -> reqwest::Response {
        self.client
            .get(server.url(&format!("/engine/{id}")))
            .send()
            .await
            .unwrap()
    }

    async fn action(&self, server: &RucatProcess, id: &str, action: &str) {
        let response = match action {
            "delete" => {
                self.client
                    .delete(server.url(&format!("/engine/{id}")))
                    .send()
                    .await
            }
            _ => {
                self.client
                    .post(server.url(&format!("/engine/{id}/{action}")))
                    .send()
                    .await
            }
        }
        .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{action}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    async fn wait_for(&self, server: &RucatProcess, id: &str, state: &str) -> Value {
        let started = Instant::now();
        loop {
            let info: Value = self.get(server, id).await.json().await.unwrap();
            if info["state"] == state {
                return info;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "never reached {state}: {info}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Blocking python runs on a blocking thread so the test's runtime stays free.
async fn query(endpoint: String) -> String {
    tokio::task::spawn_blocking(move || spark_query(&endpoint))
        .await
        .unwrap()
}

#[tokio::test]
async fn spark_engine_lifecycle_through_the_server() {
    let data = tempfile::tempdir().unwrap();
    let server = RucatProcess::server(&["--data-dir", data.path().to_str().unwrap()]);
    let api = Api::new();

    let id = api
        .create(&server, json!({"spark.executor.instances": "1"}))
        .await;
    let info = api.wait_for(&server, &id, "Running").await;
    let endpoint = info["endpoint"]
        .as_str()
        .expect("a running engine has an endpoint")
        .to_owned();
    assert!(
        endpoint.starts_with("sc://localhost:")
            && endpoint.ends_with(&format!("/;x-rucat-engine-id={id}")),
        "users connect through the gateway: {endpoint}"
    );
    assert_eq!(query(endpoint).await, "499500");

    api.action(&server, &id, "stop").await;
    let stopped = api.wait_for(&server, &id, "Terminated").await;
    assert!(stopped.get("endpoint").is_none());
    assert_eq!(
        processes_mentioning(&id),
        Vec::<u32>::new(),
        "the JVM is gone"
    );

    api.action(&server, &id, "restart").await;
    let info = api.wait_for(&server, &id, "Running").await;
    assert_eq!(
        query(info["endpoint"].as_str().unwrap().to_owned()).await,
        "499500"
    );

    api.action(&server, &id, "stop").await;
    api.wait_for(&server, &id, "Terminated").await;
    api.action(&server, &id, "delete").await;
    assert_eq!(api.get(&server, &id).await.status(), 404);
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new());
    assert!(
        !data.path().join("engines").join(&id).exists(),
        "no work directory left"
    );
    assert!(
        server.terminate(),
        "the server shuts down cleanly on SIGTERM"
    );
}

#[tokio::test]
async fn spark_engine_with_a_bad_config_ends_in_error_clean() {
    let data = tempfile::tempdir().unwrap();
    let server = RucatProcess::server(&["--data-dir", data.path().to_str().unwrap()]);
    let api = Api::new();

    let id = api
        .create(&server, json!({"spark.driver.memory": "lots"}))
        .await;
    let info = api.wait_for(&server, &id, "ErrorClean").await;
    let error = info["error"].as_str().expect("the reason is recorded");
    assert!(
        error.contains("lots") || error.to_lowercase().contains("memory"),
        "{error}"
    );
    assert_eq!(
        processes_mentioning(&id),
        Vec::<u32>::new(),
        "no process left behind"
    );
    assert!(
        !data.path().join("engines").join(&id).exists(),
        "no work directory left"
    );

    api.action(&server, &id, "delete").await;
    assert_eq!(api.get(&server, &id).await.status(), 404);
    assert!(server.terminate());
}

#[tokio::test]
async fn spark_server_and_monitor_as_two_processes_share_one_sqlite_file() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let config = data.path().join("server.json");
    std::fs::write(&config, r#"{"embedded_monitor": false}"#).unwrap();
    let server = RucatProcess::server(&[
        "--data-dir",
        data_dir,
        "--config-path",
        config.to_str().unwrap(),
    ]);
    let monitor = RucatProcess::monitor(&["--data-dir", data_dir]);
    let api = Api::new();

    let id = api.create(&server, json!({})).await;
    let info = api.wait_for(&server, &id, "Running").await;
    assert_eq!(
        query(info["endpoint"].as_str().unwrap().to_owned()).await,
        "499500"
    );
    let jvms = processes_mentioning(&id);
    assert!(!jvms.is_empty());
    assert!(!jvms.contains(&server.pid()) && !jvms.contains(&monitor.pid()));

    api.action(&server, &id, "stop").await;
    api.wait_for(&server, &id, "Terminated").await;
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new());
    api.action(&server, &id, "delete").await;
    assert!(
        monitor.terminate(),
        "the monitor shuts down cleanly on SIGTERM"
    );
    assert!(server.terminate());
}
