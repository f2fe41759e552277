//! End to end on a real SurrealDB server: a `rucat-server` without an
//! embedded monitor and a `rucat-monitor`, two processes sharing the remote
//! store, with the `Markers` resource manager so engines start at once. The
//! SurrealDB server is killed and restarted mid-run (SurrealKV storage, same
//! port): both processes ride it out and no engine is lost.

mod support;
#[allow(dead_code)]
#[path = "../../rucat-store/tests/support/surreal_server.rs"]
mod surreal_server;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::processes::{RucatProcess, race_creates_against_quota};
use surreal_server::{PASS, Storage, SurrealServer, USER, unique_database};

const TIMEOUT: Duration = Duration::from_secs(60);

fn write_config(path: &Path, config: &Value) {
    std::fs::write(path, config.to_string()).unwrap();
}

async fn state(client: &reqwest::Client, server: &RucatProcess, id: &str) -> Option<Value> {
    let response = client
        .get(server.url(&format!("/engine/{id}")))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

async fn wait_for(client: &reqwest::Client, server: &RucatProcess, id: &str, want: &str) {
    let started = Instant::now();
    loop {
        let info = state(client, server, id).await;
        if info.as_ref().is_some_and(|i| i["state"] == want) {
            return;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "never reached {want}: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Retries a request while the store is down (the server answers 5xx).
async fn post_until_ok(client: &reqwest::Client, url: &str) {
    let started = Instant::now();
    loop {
        if let Ok(response) = client.post(url).send().await {
            if response.status() == 200 {
                return;
            }
            assert!(
                response.status().is_server_error() && started.elapsed() < TIMEOUT,
                "{url}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_monitor_share_a_surrealdb_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut surreal = SurrealServer::start(Storage::SurrealKv(dir.path().join("surreal")));
    let database = json!({"Surreal": {
        "uri": surreal.uri(),
        "credentials": {"username": USER, "password": PASS},
        "namespace": "rucat",
        "database": unique_database("e2e"),
    }});
    let markers = json!({"Markers": {"dir": dir.path().join("markers")}});
    let server_config = dir.path().join("server.json");
    let monitor_config = dir.path().join("monitor.json");
    write_config(
        &server_config,
        &json!({"embedded_monitor": false, "database": database, "resource_manager": markers}),
    );
    write_config(
        &monitor_config,
        &json!({"check_interval_secs": 1, "database": database, "resource_manager": markers}),
    );
    let data_dir = dir.path().to_str().unwrap();
    let server = RucatProcess::server(&[
        "--data-dir",
        data_dir,
        "--config-path",
        server_config.to_str().unwrap(),
    ]);
    let monitor = RucatProcess::monitor(&[
        "--data-dir",
        data_dir,
        "--config-path",
        monitor_config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let client = reqwest::Client::new();

    let body =
        json!({"name": "surreal-e2e", "engine_type": "Spark", "version": "4.3.0", "configs": {}});
    let response = client
        .post(server.url("/engine"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    wait_for(&client, &server, &id, "Running").await;

    // The database goes away under both processes and comes back.
    surreal.kill();
    let down = client
        .get(server.url(&format!("/engine/{id}")))
        .send()
        .await
        .unwrap();
    assert!(
        down.status().is_server_error(),
        "a read with the store down is a server error, not {}",
        down.status()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    surreal.restart();

    wait_for(&client, &server, &id, "Running").await;
    post_until_ok(&client, &server.url(&format!("/engine/{id}/stop"))).await;
    wait_for(&client, &server, &id, "Terminated").await;
    let response = client
        .delete(server.url(&format!("/engine/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let gone = client
        .get(server.url(&format!("/engine/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    assert!(!server.panicked() && !monitor.panicked());
    assert!(monitor.terminate(), "the monitor stops cleanly");
    assert!(server.terminate(), "the server stops cleanly");
}

/// Two servers on one SurrealDB server, 20 creates at once by one user
/// against a limit of 3: exactly 3 engines; the rest 429 naming the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hold_across_two_servers_on_a_surrealdb_server() {
    let dir = tempfile::tempdir().unwrap();
    let surreal = SurrealServer::start(Storage::SurrealKv(dir.path().join("surreal")));
    let token = "quota-user-token-7d1e90c4b2a8f356";
    let config = json!({
        "embedded_monitor": false,
        "database": {"Surreal": {
            "uri": surreal.uri(),
            "credentials": {"username": USER, "password": PASS},
            "namespace": "rucat",
            "database": unique_database("quota"),
        }},
        "auth_provider": {"StaticUsers": {"users": [{"name": "dana",
            "token_sha256": rucat_server::auth::hash::token_digest_hex(token)}]}},
        "quotas": {"default": {"max_engines": 3}},
    });
    let path = dir.path().join("server.json");
    write_config(&path, &config);
    let args = [
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--config-path",
        path.to_str().unwrap(),
    ];
    let servers = [RucatProcess::server(&args), RucatProcess::server(&args)];
    let client = reqwest::Client::new();
    race_creates_against_quota(&servers, token, 20, 3).await;
    let listed: Vec<Value> = client
        .get(servers[1].url("/engines"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    for server in servers {
        assert!(server.terminate(), "stops cleanly");
    }
}
