//! Schemathesis fuzzes the real `rucat-server` binary against the OpenAPI
//! document it serves: every route, with schema-valid and invalid input and
//! by following the document's links (create, then get, stop, restart,
//! delete), checking that nothing is a server error and that every status,
//! content type, header and body is the one the document promises.
//!
//! Engines need no Spark here. The open server runs its embedded monitor on
//! the marker-file resource manager, whose engines are Running as soon as
//! they are created, so the fuzzer meets engines in every stage of a quick
//! lifecycle; the authenticated one runs no monitor, so its engines stay in
//! `WaitToStart`.
//! The run is bounded (`RUCAT_FUZZ_EXAMPLES` cases per operation and phase,
//! 150 by default) and seeded (`RUCAT_FUZZ_SEED`, fixed by default so CI
//! repeats the same cases; set another to explore). Schemathesis is installed
//! by `scripts/install-deps`.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::processes::RucatProcess;

const DEFAULT_EXAMPLES: &str = "150";
const DEFAULT_SEED: &str = "20261124";

fn schemathesis() -> Command {
    let mut command = Command::new("python3");
    command.args(["-m", "schemathesis.cli"]);
    command
}

fn ensure_schemathesis() {
    let found = schemathesis()
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "schemathesis is not installed; run scripts/install-deps"
    );
}

/// Starts a server on a fresh data directory with `config` (JSON).
fn server(dir: &Path, config: &str) -> RucatProcess {
    let config_path = dir.join("server.json");
    std::fs::write(&config_path, config).unwrap();
    let data_dir = dir.join("data");
    RucatProcess::server(&[
        "--config-path",
        config_path.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ])
}

/// Runs schemathesis against `server`'s document with `extra` arguments,
/// in `dir` (hypothesis keeps its example database in the working directory).
fn fuzz(server: &RucatProcess, dir: &Path, extra: &[&str]) -> Output {
    let examples = std::env::var("RUCAT_FUZZ_EXAMPLES").unwrap_or(DEFAULT_EXAMPLES.into());
    let seed = std::env::var("RUCAT_FUZZ_SEED").unwrap_or(DEFAULT_SEED.into());
    let output = schemathesis()
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(["run", &server.url("/openapi.json")])
        .args(["--checks", "all"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--request-timeout", "10", "--max-failures", "20"])
        .args(extra)
        .output()
        .expect("run schemathesis");
    let text = String::from_utf8_lossy(&output.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// After a fuzz run, the HTTP metrics name routes by pattern only: no engine
/// id, and none of the fuzzer's junk paths, became a label value.
fn assert_routes_are_patterns(metrics: &str) {
    let routes: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("rucat_http_requests_total{"))
        .filter_map(|line| line.split("route=\"").nth(1)?.split('"').next())
        .collect();
    assert!(!routes.is_empty(), "{metrics}");
    let known = [
        "/engine",
        "/engine/{id}",
        "/engine/{id}/stop",
        "/engine/{id}/restart",
        "/engine/{id}/logs",
        "/engines",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "unmatched",
    ];
    for route in routes {
        assert!(known.contains(&route), "unexpected route label {route:?}");
    }
}

#[tokio::test]
async fn the_open_api_keeps_the_promises_of_its_document() {
    ensure_schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let markers = dir.path().join("markers");
    let config = serde_json::json!({
        "resource_manager": {"Markers": {"dir": markers}},
        "check_interval_secs": 1,
    });
    let server = server(dir.path(), &config.to_string());
    let output = fuzz(&server, dir.path(), &[]);
    assert!(
        output.status.success(),
        "schemathesis found failures (above)"
    );

    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_routes_are_patterns(&metrics);
    // The embedded monitor drove the fuzzer's engines, and said so.
    let started = r#"rucat_engine_transitions_total{from="StartInProgress",to="Running"} "#;
    assert!(metrics.contains(started), "{metrics}");
    assert!(server.terminate(), "the server stops cleanly after fuzzing");
}

/// With authentication configured the document names the schemes, the 401s
/// and the 429s, and schemathesis also checks that requests without
/// credentials are refused. It fuzzes as a user with a quota, so ownership
/// and quota refusals are met too.
#[tokio::test]
async fn the_authenticated_api_keeps_the_promises_of_its_document() {
    ensure_schemathesis();
    let dir = tempfile::tempdir().unwrap();
    // A user (not an admin) with an argon2 password, made by the binary's
    // own command, and a quota the fuzzer's creates run into.
    let hash = support::processes::password_hash("fuzz-secret");
    let config = serde_json::json!({
        "embedded_monitor": false,
        "auth_provider": {
            "StaticAuthProviderConfig": {"username": "admin", "password": "admin-secret"},
            "StaticUsers": {"users": [{"name": "fuzz", "password_hash": hash, "groups": ["g"]}]},
        },
        "quotas": {"default": {"max_engines": 40}},
    });
    let server = server(dir.path(), &config.to_string());
    let output = fuzz(&server, dir.path(), &["--auth", "fuzz:fuzz-secret"]);
    assert!(
        output.status.success(),
        "schemathesis found failures (above)"
    );
    assert!(server.terminate(), "the server stops cleanly after fuzzing");
}
