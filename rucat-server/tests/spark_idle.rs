//! Idle engines with real parts (issue 14): the `rucat-server` binary with
//! auth, real local Spark Connect engines, and real pyspark clients going
//! through the gateway. Engines with a short idle timeout stay up while a
//! query runs, stop once nobody uses them, and come back when a client
//! connects; once for two clients at once; never from ErrorClean; and with
//! two servers on one store, a query open on one keeps the other's monitor
//! from stopping the engine.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use rucat_core::Timestamp;
use serde_json::{Value, json};
use support::processes::{RucatProcess, local_spark_version, processes_mentioning, pyspark};

const START_TIMEOUT: Duration = Duration::from_secs(240);
const USER_TOKEN: &str = "user-token-7f3a";

/// The idle timeout the servers give engines, in seconds: short, at least
/// three activity intervals, and longer than a loaded machine takes to
/// start a pyspark client once an engine is Running (the tests assert that
/// an engine stays Running from then on).
const IDLE_SECS: u64 = 12;
/// How long the long queries run: well past the idle timeout.
const QUERY_SECS: u64 = 30;

/// The idle settings of every server here: activity written every second.
fn idle_config() -> Value {
    json!({"idle": {"timeout_secs": IDLE_SECS, "activity_interval_secs": 1, "resume_wait_secs": 180}})
}

/// A server with auth (`USER_TOKEN` is the seed admin's bearer token), local
/// Spark engines, [`idle_config`] and `extra_config`; its config file is
/// `name`.json in `data`, its store `data`/rucat.db (shared by servers
/// started on the same `data`).
fn server(data: &Path, name: &str, extra_config: Value) -> RucatProcess {
    let mut config = json!({"auth_provider": {
        "StaticAuthProviderConfig": {"username": "admin", "password": "pw", "bearer_token": USER_TOKEN}}});
    let config_map = config.as_object_mut().unwrap();
    config_map.extend(idle_config().as_object().unwrap().clone());
    config_map.extend(extra_config.as_object().unwrap().clone());
    let path = data.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    RucatProcess::server(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config-path",
        path.to_str().unwrap(),
    ])
}

/// The REST calls the tests need, over plain HTTP with the bearer token.
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

    /// Creates a Spark engine with `extra` fields in its request.
    async fn create(&self, extra: Value) -> String {
        let mut body =
            json!({"name": "idle", "engine_type": "Spark", "version": local_spark_version()});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let response = self
            .client
            .post(self.server.url("/engine"))
            .bearer_auth(USER_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let created: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    async fn text(&self, path: &str) -> String {
        self.client
            .get(self.server.url(path))
            .bearer_auth(USER_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn info(&self, id: &str) -> Value {
        let text = self.text(&format!("/engine/{id}")).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Waits for `state`; the engine's info then.
    async fn wait_for(&self, id: &str, state: &str) -> Value {
        let started = Instant::now();
        loop {
            let info = self.info(id).await;
            if info["state"] == state {
                return info;
            }
            assert!(started.elapsed() < START_TIMEOUT, "never {state}: {info}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for Running; the engine's endpoint (on this server's gateway)
    /// with the user's token.
    async fn running(&self, id: &str) -> String {
        let info = self.wait_for(id, "Running").await;
        let endpoint = info["endpoint"].as_str().unwrap();
        format!("{endpoint};token={USER_TOKEN}")
    }

    /// Stops `id` and waits until it is Terminated and its JVM gone:
    /// engines outlive a server that is shut down, so a test must stop its
    /// own.
    async fn stop(&self, id: &str) {
        let response = self
            .client
            .post(self.server.url(&format!("/engine/{id}/stop")))
            .bearer_auth(USER_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "stop {id}");
        self.wait_for(id, "Terminated").await;
        no_jvm_left(id);
    }

    /// The value of the series of `name` whose labels include all of
    /// `labels`, summed over the series that match; 0 if there is none.
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.text("/metrics").await, name, labels)
    }
}

/// The value of `name{labels…}` in a Prometheus text exposition, summed
/// over the series whose labels include all of `labels`; 0 if none.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = series_name == name
                && labels.iter().all(|(k, v)| {
                    series_labels
                        .split(',')
                        .any(|pair| pair == format!("{k}=\"{v}\""))
                });
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Asserts that no process mentions the engine `id`: a Terminated engine's
/// JVM is gone.
fn no_jvm_left(id: &str) {
    assert_eq!(processes_mentioning(id), Vec::<u32>::new(), "{id}'s JVM");
}

/// Asserts that the engine `id`'s JVM runs (its command line names it).
fn jvm_runs(id: &str) {
    assert!(!processes_mentioning(id).is_empty(), "no JVM for {id}");
}

/// Runs the pyspark client on a blocking thread; panics with its stderr if it fails.
async fn client(args: &[&str]) -> Value {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pyspark(&args, &[]).unwrap_or_else(|stderr| panic!("{args:?} failed: {stderr}"))
    })
    .await
    .unwrap()
}

/// An engine's `last_activity`, if it has one.
fn last_activity(info: &Value) -> Option<Timestamp> {
    info.get("last_activity")
        .map(|at| serde_json::from_value(at.clone()).unwrap_or_else(|e| panic!("{e}: {info}")))
}

/// Runs a query of `QUERY_SECS` through `endpoint` while watching `id`
/// through `watch` (possibly another server): the engine must be Running
/// every time it is looked at, from before the client starts until the
/// query has answered. Returns the first and the last `last_activity`
/// seen while the query ran.
async fn long_query_keeps_it_running(
    watch: &Api<'_>,
    id: &str,
    endpoint: &str,
) -> (Timestamp, Timestamp) {
    let args = [
        "sleep".to_owned(),
        endpoint.to_owned(),
        QUERY_SECS.to_string(),
    ];
    let query = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        client(&args).await
    });
    let started = Instant::now();
    let mut activity = Vec::new();
    while !query.is_finished() {
        let info = watch.info(id).await;
        assert_eq!(
            info["state"],
            "Running",
            "stopped {:?} into a query that is still running: {info}",
            started.elapsed()
        );
        activity.extend(last_activity(&info));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let answer = query.await.unwrap();
    assert_eq!(answer["rows"], QUERY_SECS, "{answer}");
    assert!(
        answer["seconds"].as_f64().unwrap() >= (QUERY_SECS - 1) as f64,
        "the query ran well past the idle timeout: {answer}"
    );
    let info = watch.info(id).await;
    assert_eq!(info["state"], "Running", "right after the query: {info}");
    activity.extend(last_activity(&info));
    let (first, last) = (activity.first().copied(), activity.last().copied());
    let (Some(first), Some(last)) = (first, last) else {
        panic!("no activity recorded while the query ran: {info}")
    };
    // The open stream was written about while it lasted, not just once.
    assert!(
        last.since(first) >= Duration::from_secs(QUERY_SECS - IDLE_SECS),
        "activity was recorded from {first} to {last} only, over a {QUERY_SECS} s query"
    );
    (first, last)
}

/// Waits until `id` is idle-stopped after its last use at `idle_from`
/// (an instant taken when the last client was done): not much before the
/// idle timeout has passed, and then Terminated for idleness with its JVM
/// gone. Its info once Terminated.
async fn stopped_for_idleness(api: &Api<'_>, id: &str, idle_from: Instant) -> Value {
    let mut left_running = None;
    loop {
        let info = api.info(id).await;
        if info["state"] != "Running" && left_running.is_none() {
            left_running = Some(idle_from.elapsed());
        }
        if info["state"] == "Terminated" {
            break;
        }
        assert!(
            idle_from.elapsed() < START_TIMEOUT,
            "never stopped for idleness: {info}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let left_running = left_running.unwrap();
    // Activity is up to an interval (1 s) behind, and the last client's
    // exit took a moment of its own.
    assert!(
        left_running >= Duration::from_secs(IDLE_SECS - 2),
        "stopped {left_running:?} after its last use, with an idle timeout of {IDLE_SECS} s"
    );
    let info = api.info(id).await;
    assert!(
        info["stopped_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("idle for ")),
        "{info}"
    );
    assert!(last_activity(&info).is_some(), "{info}");
    assert!(info.get("endpoint").is_none(), "{info}");
    no_jvm_left(id);
    info
}

const RESUMES: &str = "rucat_gateway_resumes_total";
const IDLE_STOPS: &str = "rucat_engine_idle_stops_total";
const TRANSITIONS: &str = "rucat_engine_transitions_total";
const RESTARTS: [(&str, &str); 2] = [("from", "Terminated"), ("to", "WaitToStart")];

#[tokio::test]
async fn spark_idle_engine_runs_through_a_long_query_stops_when_idle_and_resumes_on_connect() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path(), "server", json!({}));
    let api = Api::new(&server);

    // One engine that never stops, and then one with the default timeout
    // (started one after the other: two JVMs starting at once are slow).
    let never = api.create(json!({"idle_timeout_secs": 0})).await;
    api.running(&never).await;
    let id = api.create(json!({})).await;
    let endpoint = api.running(&id).await;
    jvm_runs(&id);
    let info = api.info(&id).await;
    assert_eq!(info["idle_timeout_secs"], IDLE_SECS, "{info}");
    assert_eq!(info["auto_resume"], false, "{info}");
    assert_eq!(api.info(&never).await["idle_timeout_secs"], 0);

    // A query longer than the timeout keeps it Running.
    long_query_keeps_it_running(&api, &id, &endpoint).await;

    // Once nobody uses it, it stops for idleness; the one that never stops
    // does not, though it has been idle longer.
    stopped_for_idleness(&api, &id, Instant::now()).await;
    let info = api.info(&never).await;
    assert_eq!(info["state"], "Running", "{info}");
    assert_eq!(info["idle_timeout_secs"], 0, "{info}");
    assert!(info.get("stopped_reason").is_none(), "{info}");
    assert_eq!(api.metric(IDLE_STOPS, &[]).await, 1.0);
    assert_eq!(api.metric(RESUMES, &[]).await, 0.0);

    // Stock pyspark with the same endpoint brings it back, and is answered.
    let restarts = api.metric(TRANSITIONS, &RESTARTS).await;
    let started = Instant::now();
    assert_eq!(client(&["sum", &endpoint]).await, json!(499500));
    let took = started.elapsed();
    let info = api.info(&id).await;
    assert_eq!(info["state"], "Running", "{info}");
    assert!(info.get("stopped_reason").is_none(), "{info}");
    jvm_runs(&id);
    assert_eq!(api.metric(RESUMES, &[]).await, 1.0);
    assert_eq!(api.metric(TRANSITIONS, &RESTARTS).await, restarts + 1.0);
    assert_eq!(
        api.metric("rucat_gateway_resume_wait_seconds_count", &[])
            .await,
        1.0
    );
    eprintln!("resumed and answered in {took:?}");
    // Two attempts: the first stopped for idleness, the second running.
    let attempts = info["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{info}");
    assert_eq!(attempts[0]["outcome"], "Stopped", "{info}");
    assert!(
        attempts[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("idle for ")),
        "{info}"
    );
    assert_eq!(attempts[1]["number"], 2, "{info}");
    assert!(attempts[1]["running_at"].is_string() && attempts[1].get("ended_at").is_none());

    // Idle again: two clients at once restart it once, and both are answered.
    stopped_for_idleness(&api, &id, Instant::now()).await;
    assert_eq!(api.metric(IDLE_STOPS, &[]).await, 2.0);
    let restarts = api.metric(TRANSITIONS, &RESTARTS).await;
    let sum = ["sum", endpoint.as_str()];
    let (first, second) = tokio::join!(client(&sum), client(&sum));
    assert_eq!((first, second), (json!(499500), json!(499500)));
    assert_eq!(api.info(&id).await["state"], "Running");
    assert_eq!(api.metric(RESUMES, &[]).await, 2.0, "one resume for both");
    assert_eq!(
        api.metric(TRANSITIONS, &RESTARTS).await,
        restarts + 1.0,
        "one restart for both"
    );
    assert_eq!(api.info(&never).await["state"], "Running", "never stops");

    api.stop(&id).await;
    api.stop(&never).await;
    assert!(server.terminate());
}

#[tokio::test]
async fn spark_idle_a_query_open_on_one_server_keeps_another_servers_monitor_from_stopping_it() {
    let data = tempfile::tempdir().unwrap();
    // B runs the monitor; A only serves, on the same store.
    let b = server(data.path(), "b", json!({}));
    let a = server(data.path(), "a", json!({"embedded_monitor": false}));
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    let id = api_b.create(json!({})).await;
    api_b.running(&id).await;
    let through_a = api_a.running(&id).await;
    jvm_runs(&id);
    assert_ne!(a.gateway, b.gateway, "each server has a gateway of its own");
    assert!(
        through_a.contains(&format!(":{}/", port_of(&a))),
        "{through_a}"
    );

    // B's monitor decides, while only A sees the query.
    long_query_keeps_it_running(&api_b, &id, &through_a).await;
    let idle_from = Instant::now();
    let rpcs = ("engine", id.as_str());
    assert_eq!(
        api_b.metric("rucat_gateway_rpcs_total", &[rpcs]).await,
        0.0,
        "B's gateway saw nothing of it"
    );
    assert!(api_a.metric("rucat_gateway_rpcs_total", &[rpcs]).await >= 1.0);
    assert!(
        api_a
            .metric("rucat_gateway_activity_writes_total", &[])
            .await
            >= 2.0
    );

    // Once idle, B's monitor stops it.
    stopped_for_idleness(&api_b, &id, idle_from).await;
    assert_eq!(api_b.metric(IDLE_STOPS, &[]).await, 1.0);
    assert!(a.terminate());
    assert!(b.terminate());
}

/// The port of `server`'s gateway.
fn port_of(server: &RucatProcess) -> u16 {
    let gateway = server.gateway.as_deref().expect("a gateway");
    gateway.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn spark_idle_an_engine_in_error_clean_is_not_resumed() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path(), "server", json!({}));
    let api = Api::new(&server);
    let id = api
        .create(json!({"configs": {"spark.driver.memory": "lots"}, "auto_resume": true}))
        .await;
    let info = api.wait_for(&id, "ErrorClean").await;
    assert_eq!(info["auto_resume"], true, "{info}");
    let transitions = api.metric(TRANSITIONS, &[]).await;

    let endpoint = format!(
        "sc://localhost:{}/;x-rucat-engine-id={id};token={USER_TOKEN}",
        port_of(&server)
    );
    let answer = client(&["sum-or-error", &endpoint]).await;
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("FAILED_PRECONDITION")
            && error.contains(&format!("engine {id} is ErrorClean"))
            && error.contains("failed"),
        "{answer}"
    );

    assert!(
        api.metric("rucat_gateway_refusals_total", &[("reason", "not_running")])
            .await
            >= 1.0
    );

    // Nothing was started, then or since.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let info = api.info(&id).await;
    assert_eq!(info["state"], "ErrorClean", "{info}");
    assert_eq!(api.metric(RESUMES, &[]).await, 0.0);
    assert_eq!(api.metric(TRANSITIONS, &[]).await, transitions);
    assert_eq!(processes_mentioning(&id), Vec::<u32>::new());
    assert!(server.terminate());
}
