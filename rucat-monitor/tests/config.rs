//! The `rucat-monitor` binary refuses a bad config file at start, naming
//! the file and the key path, and never echoing a secret.

use std::process::{Command, Stdio};

use serde_json::json;

#[test]
fn config_errors_name_the_key_path_and_fail_the_start() {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("monitor.json");
    for (config, expected) in [
        (
            json!({"listen": "nowhere"}),
            "listen: invalid socket address",
        ),
        (
            json!({"lease_sec": 30}),
            "lease_sec: unknown field `lease_sec`",
        ),
        (
            json!({"max_concurrent": 0}),
            "max_concurrent: must be at least 1",
        ),
        (
            json!({"database": {"Surreal": {"uri": "ws://127.0.0.1:1",
                "credentials": {"username": "root", "password": 97531}}}}),
            "database.Surreal.credentials.password: invalid type",
        ),
    ] {
        std::fs::write(&path, config.to_string()).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_rucat-monitor"))
            .arg("--config-path")
            .arg(&path)
            .arg("--data-dir")
            .arg(data.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("config file {}: {expected}", path.display())),
            "{stderr}"
        );
        assert!(
            !stderr.contains("97531"),
            "the password is not echoed: {stderr}"
        );
    }
}
