//! Health and metrics over HTTP: the router with a store that is down, and
//! the `rucat-monitor` binary serving them on its `--listen` address.

use rucat_core::store::Unreachable;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use rucat_core::Store;
use rucat_core::store::MemoryStore;
use rucat_monitor::http::{Telemetry, router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Status, content type and body of one request to the router.
async fn call(store: Arc<dyn Store>, method: &str, path: &str) -> (StatusCode, String, String) {
    let app = router(Arc::new(Telemetry::new(store)));
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn a_live_process_with_a_store_that_is_down_is_not_ready() {
    let (status, _, body) = call(Arc::new(Unreachable), "GET", "/healthz").await;
    assert_eq!(
        (status, json_of(&body)),
        (StatusCode::OK, json!({"status": "ok"}))
    );

    let (status, content_type, body) = call(Arc::new(Unreachable), "GET", "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/json");
    let body = json_of(&body);
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(!body.to_string().contains("/secret/path"), "{body}");

    let (status, _, body) = call(Arc::new(Unreachable), "GET", "/metrics").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "metrics are served without the store"
    );
    assert!(body.contains("rucat_store_up 0\n"), "{body}");
    assert!(!body.contains("rucat_engines{"), "{body}");
}

#[tokio::test]
async fn a_ready_process_reports_engines_by_state() {
    let (status, _, body) = call(Arc::new(MemoryStore::new()), "GET", "/readyz").await;
    assert_eq!(
        (status, json_of(&body)),
        (StatusCode::OK, json!({"status": "ok"}))
    );

    let (status, content_type, body) = call(Arc::new(MemoryStore::new()), "GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(
        body.contains("rucat_engines{state=\"WaitToStart\"} 0\n"),
        "{body}"
    );
    assert!(body.contains("rucat_store_up 1\n"), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let (status, _, body) = call(Arc::new(MemoryStore::new()), "GET", "/engines").await;
    assert_eq!(
        (status, json_of(&body)["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, _, body) = call(Arc::new(MemoryStore::new()), "POST", "/healthz").await;
    assert_eq!(
        (status, json_of(&body)["error"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed"))
    );
}

/// The monitor binary as a child process, killed if the test fails first.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn the_binary_serves_health_and_metrics_on_its_listen_address() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_rucat-monitor"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (found, url) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[rucat-monitor] {line}");
            if let Some(at) = line.find("metrics on http://") {
                let _ = found.send(line[at + "metrics on ".len()..].trim().to_owned());
            }
        }
    });
    let url = url
        .recv_timeout(Duration::from_secs(60))
        .expect("the monitor reports its address");
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let response = client.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "rucat_engines{state=\"Running\"} 0\n",
        "rucat_store_up 1\n",
        "rucat_monitor_claim_conflicts_total 0\n",
        "rucat_monitor_lease_takeovers_total 0\n",
        "rucat_monitor_releases_refused_total 0\n",
        "rucat_resource_manager_call_duration_seconds_count{operation=\"create\"} 0\n",
    ] {
        assert!(metrics.contains(expected), "{expected}:\n{metrics}");
    }

    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    for _ in 0..300 {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "SIGTERM stops it cleanly: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the monitor did not stop on SIGTERM");
}
