//! The chaos test's REST client: every request goes to one of the servers at
//! random, and answers are reduced to what the test reasons about.

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Stop,
    Restart,
    Delete,
}

/// How a user action was answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200: the action was recorded.
    Done,
    /// 409 `invalid_state`: not allowed in `state`, nothing changed.
    Refused { state: String },
}

/// What `GET /engine/{id}` says.
#[derive(Debug)]
pub enum Seen {
    State {
        state: String,
        error: Option<String>,
    },
    NotFound,
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    servers: Vec<String>,
}

impl Api {
    pub fn new(servers: Vec<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            servers,
        }
    }

    fn url(&self, rng: &mut Rng, path: &str) -> String {
        let server = &self.servers[rng.below(self.servers.len() as u64) as usize];
        format!("{server}{path}")
    }

    pub async fn create(&self, rng: &mut Rng, name: &str) -> anyhow::Result<String> {
        let body = json!({"name": name, "engine_type": "Spark", "version": "4.3.0"});
        let response = self
            .http
            .post(self.url(rng, "/engine"))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status != StatusCode::OK {
            bail!("create answered {status}: {body}");
        }
        Ok(body["id"].as_str().context("an id")?.to_owned())
    }

    /// Sends the action, again if it lost too many races (409 `conflict`),
    /// which means it did not happen.
    pub async fn act(&self, rng: &mut Rng, id: &str, action: Action) -> anyhow::Result<Answer> {
        loop {
            let request = match action {
                Action::Stop => self.http.post(self.url(rng, &format!("/engine/{id}/stop"))),
                Action::Restart => self
                    .http
                    .post(self.url(rng, &format!("/engine/{id}/restart"))),
                Action::Delete => self.http.delete(self.url(rng, &format!("/engine/{id}"))),
            };
            let response = request.send().await?;
            let status = response.status();
            if status == StatusCode::OK {
                return Ok(Answer::Done);
            }
            let body: Value = response.json().await?;
            match (status, body["error"].as_str()) {
                (StatusCode::CONFLICT, Some("invalid_state")) => {
                    let state = body["state"].as_str().context("a state")?.to_owned();
                    return Ok(Answer::Refused { state });
                }
                (StatusCode::CONFLICT, Some("conflict")) => continue,
                _ => bail!("{action:?} of {id} answered {status}: {body}"),
            }
        }
    }

    pub async fn get(&self, rng: &mut Rng, id: &str) -> anyhow::Result<Seen> {
        let response = self
            .http
            .get(self.url(rng, &format!("/engine/{id}")))
            .send()
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(Seen::NotFound);
        }
        let body: Value = response.json().await?;
        if status != StatusCode::OK {
            bail!("GET {id} answered {status}: {body}");
        }
        Ok(Seen::State {
            state: body["state"].as_str().context("a state")?.to_owned(),
            error: body["error"].as_str().map(str::to_owned),
        })
    }

    /// The ids `GET /engines` lists on `server`.
    pub async fn list(&self, server: usize) -> anyhow::Result<Vec<String>> {
        let response = self
            .http
            .get(format!("{}/engines", self.servers[server]))
            .send()
            .await?;
        let body: Value = response.json().await?;
        body.as_array()
            .context("a list")?
            .iter()
            .map(|e| Ok(e["id"].as_str().context("an id")?.to_owned()))
            .collect()
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }
}
