//! The REST calls the end-to-end tests of engine kinds make, as an
//! anonymous user of a server without authentication.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::processes::RucatProcess;

pub struct Api<'a> {
    server: &'a RucatProcess,
    client: reqwest::Client,
    /// How long an engine may take to reach a state.
    timeout: Duration,
}

impl<'a> Api<'a> {
    pub fn new(server: &'a RucatProcess, timeout: Duration) -> Self {
        Self {
            server,
            client: reqwest::Client::new(),
            timeout,
        }
    }

    pub async fn create(&self, kind: &str, version: &str, configs: Value) -> reqwest::Response {
        let body = json!({"name": kind.to_lowercase(), "engine_type": kind,
            "version": version, "configs": configs});
        self.client
            .post(self.server.url("/engine"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates an engine and returns its id.
    pub async fn created(&self, kind: &str, version: &str, configs: Value) -> String {
        let response = self.create(kind, version, configs).await;
        assert_eq!(response.status(), 200);
        let created: Value = response.json().await.unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, id: &str) -> reqwest::Response {
        self.client
            .get(self.server.url(&format!("/engine/{id}")))
            .send()
            .await
            .unwrap()
    }

    /// `stop`, `restart` or `delete`, which must succeed.
    pub async fn action(&self, id: &str, action: &str) {
        let url = |path: String| self.server.url(&path);
        let response = match action {
            "delete" => self.client.delete(url(format!("/engine/{id}"))),
            _ => self.client.post(url(format!("/engine/{id}/{action}"))),
        }
        .send()
        .await
        .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{action}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    pub async fn wait_for(&self, id: &str, state: &str) -> Value {
        let started = Instant::now();
        loop {
            let info: Value = self.get(id).await.json().await.unwrap();
            if info["state"] == state {
                return info;
            }
            assert!(
                started.elapsed() < self.timeout,
                "never reached {state}: {info}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
