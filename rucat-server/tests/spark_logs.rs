//! Engine logs with real parts (issue 15): the `rucat-server` binary with
//! users, real local Spark Connect engines, and `GET /engine/{id}/logs`
//! read while the engine runs, followed across its stop, served from the
//! archive for each attempt, kept after the engine is deleted until
//! retention removes them, and kept for an engine that failed.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::identities;
use support::processes::{RucatProcess, local_spark_version, processes_mentioning};

const START_TIMEOUT: Duration = Duration::from_secs(240);
/// How long deleted engines' logs are kept here, in seconds.
const DELETED_TTL_SECS: u64 = 4;

/// Alice owns the engines, Bob may not see them, Ada is an admin.
struct Users {
    alice: String,
    bob: String,
    ada: String,
}

/// A server with three users, local Spark engines and a short retention
/// for deleted engines' logs, swept every second.
fn server(data: &Path) -> (RucatProcess, Users) {
    let mut users = Vec::new();
    let mut tokens = Vec::new();
    for (name, role) in [("alice", "user"), ("bob", "user"), ("ada", "admin")] {
        let (token, digest) = identities::new_token();
        tokens.push(token);
        users.push(json!({"name": name, "token_sha256": digest, "role": role}));
    }
    let config = json!({
        "auth_provider": {"StaticUsers": {"users": users}},
        "logs": {"deleted_engine_ttl_secs": DELETED_TTL_SECS, "sweep_interval_secs": 1},
    });
    let path = data.join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let process = RucatProcess::server(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config-path",
        path.to_str().unwrap(),
    ]);
    let [alice, bob, ada] = <[String; 3]>::try_from(tokens).unwrap();
    (process, Users { alice, bob, ada })
}

struct Api<'a> {
    server: &'a RucatProcess,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(server: &'a RucatProcess) -> Self {
        Self {
            server,
            client: reqwest::Client::new(),
        }
    }

    async fn create(&self, token: &str, configs: Value) -> String {
        let body = json!({"name": "logs", "engine_type": "Spark",
            "version": local_spark_version(), "configs": configs});
        let response = self
            .client
            .post(self.server.url("/engine"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let created: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    async fn post(&self, token: &str, path: &str) {
        let response = self
            .client
            .post(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "POST {path}");
    }

    async fn delete(&self, token: &str, id: &str) {
        let response = self
            .client
            .delete(self.server.url(&format!("/engine/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "DELETE {id}");
    }

    async fn info(&self, token: &str, id: &str) -> Value {
        self.client
            .get(self.server.url(&format!("/engine/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_for(&self, token: &str, id: &str, state: &str) -> Value {
        let started = Instant::now();
        loop {
            let info = self.info(token, id).await;
            if info["state"] == state {
                return info;
            }
            assert!(started.elapsed() < START_TIMEOUT, "never {state}: {info}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /engine/{id}/logs?query`: the status, the log source header and
    /// the body.
    async fn logs(&self, token: &str, id: &str, query: &str) -> (u16, String, String) {
        let response = self.logs_response(token, id, query).await;
        let status = response.status().as_u16();
        let source = response
            .headers()
            .get("x-rucat-log-source")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, source, response.text().await.unwrap())
    }

    async fn logs_response(&self, token: &str, id: &str, query: &str) -> reqwest::Response {
        self.client
            .get(self.server.url(&format!("/engine/{id}/logs?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// What Spark logs as it starts: proof that a log is Spark's own.
const STARTUP_LINE: &str = "Running Spark version";

#[tokio::test]
async fn spark_logs_are_served_live_followed_archived_and_kept_after_deletion() {
    let data = tempfile::tempdir().unwrap();
    let (server, users) = server(data.path());
    let api = Api::new(&server);
    let id = api.create(&users.alice, json!({})).await;
    api.wait_for(&users.alice, &id, "Running").await;

    // While Running: Spark's startup lines, live, for the owner and an admin.
    let (status, source, text) = api.logs(&users.alice, &id, "").await;
    assert_eq!((status, source.as_str()), (200, "live"), "{text}");
    assert!(text.contains(STARTUP_LINE), "{text}");
    let (status, _, _) = api.logs(&users.ada, &id, "tail=1").await;
    assert_eq!(status, 200);
    let (status, _, body) = api.logs(&users.bob, &id, "").await;
    assert_eq!(status, 404, "another user's engine does not exist: {body}");
    let (_, _, tail) = api.logs(&users.alice, &id, "tail=3").await;
    assert_eq!(tail.lines().count(), 3, "{tail:?}");
    assert!(text.ends_with(&tail) || text.contains(&tail), "{tail:?}");

    // Followed: the stream stays open, and brings Spark's shutdown lines,
    // written after the request, then ends with the engine.
    let mut follow = api
        .logs_response(&users.alice, &id, "follow=true&tail=0")
        .await;
    assert_eq!(follow.status(), 200);
    let followed = tokio::spawn(async move {
        let mut text = Vec::new();
        while let Some(chunk) = follow.chunk().await.unwrap() {
            text.extend_from_slice(&chunk);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.post(&users.alice, &format!("/engine/{id}/stop")).await;
    api.wait_for(&users.alice, &id, "Terminated").await;
    let followed = tokio::time::timeout(Duration::from_secs(60), followed)
        .await
        .expect("a follow ends when the engine's process does")
        .unwrap();
    assert!(
        followed.contains("Invoking stop() from shutdown hook"),
        "{followed}"
    );
    assert!(!followed.contains(STARTUP_LINE), "tail=0 starts at the end");

    // Stopped: the archive serves attempt 1.
    let (status, source, archived) = api.logs(&users.alice, &id, "").await;
    assert_eq!((status, source.as_str()), (200, "archive"), "{archived}");
    assert!(archived.contains(STARTUP_LINE), "{archived}");

    // Restarted: attempt 2 is live, attempt 1 still archived, both listed.
    api.post(&users.alice, &format!("/engine/{id}/restart"))
        .await;
    let info = api.wait_for(&users.alice, &id, "Running").await;
    let numbers: Vec<u64> = info["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "{info}");
    let (_, source, _) = api.logs(&users.alice, &id, "attempt=2").await;
    assert_eq!(source, "live");
    let (status, source, first) = api.logs(&users.alice, &id, "attempt=1").await;
    assert_eq!((status, source.as_str()), (200, "archive"));
    assert_eq!(first, archived);

    // Bad parameters are 422s naming the parameter.
    for (query, field) in [
        ("tail=many", "tail"),
        ("since=10 minutes", "since"),
        ("attempt=0", "attempt"),
        ("follow=yes", "follow"),
        ("since=yesterday", "since"),
        ("lines=3", "lines"),
    ] {
        let (status, _, body) = api.logs(&users.alice, &id, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let (status, _, body) = api.logs(&users.alice, &id, "attempt=9").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no attempt 9"), "{body}");

    // Deleted: the owner still reads the archived logs, others still do
    // not, until retention removes them.
    api.post(&users.alice, &format!("/engine/{id}/stop")).await;
    api.wait_for(&users.alice, &id, "Terminated").await;
    assert!(processes_mentioning(&id).is_empty(), "no JVM left");
    api.delete(&users.alice, &id).await;
    let (status, source, after_delete) = api.logs(&users.alice, &id, "attempt=1").await;
    assert_eq!(
        (status, source.as_str()),
        (200, "archive"),
        "{after_delete}"
    );
    assert_eq!(after_delete, archived);
    let (status, _, _) = api.logs(&users.bob, &id, "attempt=1").await;
    assert_eq!(status, 404);
    let deleted = Instant::now();
    loop {
        let (status, _, body) = api.logs(&users.alice, &id, "").await;
        if status == 404 {
            assert!(
                deleted.elapsed() >= Duration::from_secs(DELETED_TTL_SECS - 1),
                "removed before its time: {body}"
            );
            break;
        }
        assert!(deleted.elapsed() < Duration::from_secs(60), "never removed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(server.terminate(), "clean shutdown");
}

#[tokio::test]
async fn a_failed_spark_engine_keeps_its_log() {
    let data = tempfile::tempdir().unwrap();
    let (server, users) = server(data.path());
    let api = Api::new(&server);
    let id = api
        .create(&users.alice, json!({"spark.driver.memory": "lots"}))
        .await;
    let info = api.wait_for(&users.alice, &id, "ErrorClean").await;
    let error = info["error"].as_str().unwrap_or_default();
    assert!(error.contains("Invalid maximum heap size"), "{info}");
    let (status, source, text) = api.logs(&users.alice, &id, "").await;
    assert_eq!((status, source.as_str()), (200, "archive"), "{text}");
    assert!(
        text.contains("Invalid maximum heap size: -Xmxlots"),
        "{text}"
    );
    assert!(server.terminate(), "clean shutdown");
}
