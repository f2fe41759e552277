//! The `rucat-server` binary as a process: configuration, the SQLite store,
//! graceful shutdown, and that secrets stay out of its logs. No engine is
//! started here (that needs Spark; see `spark_e2e`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running `rucat-server` and everything it has logged so far.
struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rucat-server"));
    command
        .args(args)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let mut child = command(
            &[
                &["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"],
                args,
            ]
            .concat(),
        )
        .spawn()
        .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (found, url) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let (log, found) = (log.clone(), found.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("rucat server listening on http://") {
                        let url = line[at + "rucat server listening on ".len()..].trim();
                        let _ = found.send(url.to_owned());
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let url = url
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no address reported; log:\n{}", log.lock().unwrap()));
        Self { child, url, log }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGTERM, then the exit status and the whole log.
    fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                let log = self.log.lock().unwrap().clone();
                return (status.success(), log);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server did not exit on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write_config(dir: &Path, config: Value) -> String {
    let path = dir.join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn engines_survive_a_restart_in_the_sqlite_file() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let config = write_config(data.path(), json!({"embedded_monitor": false}));
    let args = ["--data-dir", data_dir, "--config-path", &config];
    let client = reqwest::Client::new();

    let server = Server::start(&args);
    let created: Value = client
        .post(server.url("/engine"))
        .json(&json!({"name": "kept", "engine_type": "Spark", "version": "4.0.1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let (ok, log) = server.terminate();
    assert!(ok, "exits cleanly on SIGTERM; log:\n{log}");
    assert!(
        data.path().join("rucat.db").is_file(),
        "the default database file"
    );

    let server = Server::start(&args);
    let list: Value = client
        .get(server.url("/engines"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([{"id": id}]));
    let info: Value = client
        .get(server.url(&format!("/engine/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["state"], "WaitToStart", "left as it was: {info}");
    assert!(server.terminate().0);
}

#[tokio::test]
async fn secrets_stay_out_of_the_log() {
    let data = tempfile::tempdir().unwrap();
    let (user, password, token) = ("log-user-q7", "log-password-q8", "log-token-q9");
    let config = write_config(
        data.path(),
        json!({
            "embedded_monitor": false,
            "data_dir": data.path(),
            "auth_provider": {"StaticAuthProviderConfig": {
                "username": user, "password": password, "bearer_token": token
            }}
        }),
    );
    let server = Server::start(&["--config-path", &config]);
    let client = reqwest::Client::new();
    let engines = || client.get(server.url("/engines"));
    let refused = [
        engines().send().await.unwrap(),
        engines()
            .basic_auth(user, Some("nope"))
            .send()
            .await
            .unwrap(),
        engines().bearer_auth(password).send().await.unwrap(),
    ];
    for response in refused {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let accepted = [
        engines()
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap(),
        engines().bearer_auth(token).send().await.unwrap(),
    ];
    for response in accepted {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let (ok, log) = server.terminate();
    assert!(ok, "{log}");
    assert!(
        log.contains("request"),
        "requests are logged at all:\n{log}"
    );
    for secret in [user, password, token] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// Every state-changing request is one audit line with the user, the
/// action, the engine and the outcome, refused ones included, and is
/// counted; reads are not audited; users are a label only up to the limit.
#[tokio::test]
async fn every_state_change_is_audited_and_counted() {
    let data = tempfile::tempdir().unwrap();
    let users: Vec<Value> = ["audit-alice", "audit-bob", "audit-carol"]
        .iter()
        .map(|name| json!({"name": name, "token_sha256": sha256_hex(&token_of(name))}))
        .collect();
    let config = write_config(
        data.path(),
        json!({
            "embedded_monitor": false,
            "data_dir": data.path(),
            "auth_provider": {"StaticUsers": {"users": users}},
            "quotas": {"users": {"audit-bob": {"max_engines": 0}}},
            "audit": {"user_metrics_limit": 2},
        }),
    );
    let server = Server::start(&["--config-path", &config]);
    let client = reqwest::Client::new();
    let as_user =
        |name: &str, request: reqwest::RequestBuilder| request.bearer_auth(token_of(name));
    let body = json!({"name": "a", "engine_type": "Spark", "version": "4.0.1"});

    let created: Value = as_user("audit-alice", client.post(server.url("/engine")))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let status = |r: reqwest::Response| r.status().as_u16();
    let alice_stop = as_user(
        "audit-alice",
        client.post(server.url(&format!("/engine/{id}/stop"))),
    );
    assert_eq!(status(alice_stop.send().await.unwrap()), 200);
    let bob_create = as_user("audit-bob", client.post(server.url("/engine"))).json(&body);
    assert_eq!(status(bob_create.send().await.unwrap()), 429);
    let carol_delete = as_user(
        "audit-carol",
        client.delete(server.url(&format!("/engine/{id}"))),
    );
    assert_eq!(status(carol_delete.send().await.unwrap()), 404);
    let alice_get = as_user(
        "audit-alice",
        client.get(server.url(&format!("/engine/{id}"))),
    );
    assert_eq!(status(alice_get.send().await.unwrap()), 200);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let (ok, log) = server.terminate();
    assert!(ok, "{log}");
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("rucat::audit")).collect();
    let expected = [
        ("audit-alice", "create", id.as_str(), "ok", "200"),
        ("audit-alice", "stop", id.as_str(), "ok", "200"),
        ("audit-bob", "create", "", "quota_exceeded", "429"),
        ("audit-carol", "delete", id.as_str(), "not_found", "404"),
    ];
    assert_eq!(
        audit.len(),
        expected.len(),
        "one line per change, none per read:\n{log}"
    );
    for (line, (user, action, engine, outcome, status)) in audit.iter().zip(expected) {
        for field in [
            format!("user=\"{user}\""),
            format!("action=\"{action}\""),
            format!("engine=\"{engine}\""),
            format!("outcome=\"{outcome}\""),
            format!("status={status}"),
        ] {
            assert!(line.contains(&field), "{field} in {line}");
        }
        assert!(!line.contains(&token_of(user)), "no secret: {line}");
    }
    // The first two users have labels of their own, the third shares `other`.
    for series in [
        r#"rucat_api_actions_total{action="create",outcome="ok",user="audit-alice"} 1"#,
        r#"rucat_api_actions_total{action="create",outcome="quota_exceeded",user="audit-bob"} 1"#,
        r#"rucat_api_actions_total{action="delete",outcome="not_found",user="other"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    assert!(!metrics.contains("audit-carol"), "{metrics}");
}

/// The token each audit test user has.
fn token_of(user: &str) -> String {
    format!("{user}-token-2f81c7d9e0a4b6")
}

fn sha256_hex(text: &str) -> String {
    rucat_server::auth::hash::token_digest_hex(text)
}

#[test]
fn config_errors_name_the_key_and_fail_the_start() {
    let data = tempfile::tempdir().unwrap();
    for (config, expected) in [
        (
            json!({"listen": "nowhere"}),
            "listen: invalid socket address",
        ),
        (
            json!({"embeded_monitor": false}),
            "embeded_monitor: unknown field `embeded_monitor`",
        ),
        (
            json!({"check_interval_secs": 0}),
            "check_interval_secs: must be at least 1",
        ),
        (json!({"lease_secs": 1}), "lease_secs: must be at least 3"),
        (
            json!({"database": {"Surreal": {"uri": "ws://127.0.0.1:1",
                "credentials": {"username": "root", "password": 97531}}}}),
            "database.Surreal.credentials.password: invalid type",
        ),
    ] {
        let path = write_config(data.path(), config);
        let output = command(&["--config-path", &path]).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains("97531"),
            "the password is not echoed: {stderr}"
        );
    }
    let output = command(&["--config-path", "/nonexistent/rucat.json"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/rucat.json"));
}

#[tokio::test]
async fn the_embedded_monitor_starts_and_stops_with_the_server() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&["--data-dir", data.path().to_str().unwrap()]);
    let response = reqwest::get(server.url("/engines")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (ok, log) = server.terminate();
    assert!(ok, "{log}");
    assert!(log.contains("monitor started"), "{log}");
    assert!(log.contains("stopping the embedded monitor"), "{log}");
}
