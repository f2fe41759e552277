//! A third-party resource manager plugged into rucat's REST server: every
//! engine is a `python3 -m http.server`, and the whole lifecycle runs over
//! HTTP exactly as it does for Spark.
//!
//! Run: `cargo run -p rucat-examples --example command_plugin`. Exits non-zero
//! if any step does not behave.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rucat_core::{Engines, Monitor, MonitorConfig};
use rucat_examples::CommandResourceManager;
use rucat_store::SqliteStore;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let data = std::env::temp_dir().join(format!("rucat-plugin-{}", std::process::id()));
    let result = run(&data).await;
    let _ = std::fs::remove_dir_all(&data);
    result
}

async fn run(data: &std::path::Path) -> anyhow::Result<()> {
    // The wiring the rucat-server binary does, with our own resource manager.
    let store = Arc::new(SqliteStore::open(data.join("rucat.db"))?);
    let resources = Arc::new(CommandResourceManager::new(
        "python3",
        ["-m", "http.server", "{port}", "--bind", "127.0.0.1"],
    ));
    let config = MonitorConfig {
        check_interval: Duration::from_millis(200),
        ..MonitorConfig::default()
    };
    let monitor = Monitor::new(store.clone(), resources, config);
    let engines = Engines::new(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_monitor, monitor_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let monitor = tokio::spawn(monitor.run(async {
        let _ = monitor_stopped.await;
    }));
    let api = rucat_server::api::router(engines, None);
    let server = tokio::spawn(async move {
        axum::serve(listener, api)
            .with_graceful_shutdown(async {
                let _ = server_stopped.await;
            })
            .await
    });
    println!("rucat API with the command plugin at {base}");

    let http = reqwest::Client::new();
    let body = json!({"name": "web", "engine_type": "Spark", "version": "4.3.0"});
    let created: Value = http
        .post(format!("{base}/engine"))
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .context("POST /engine returns an id")?
        .to_owned();
    let engine = format!("{base}/engine/{id}");
    let info = wait_for(&http, &engine, "Running").await?;
    let endpoint = info["endpoint"]
        .as_str()
        .context("a running engine has an endpoint")?;
    let page = http.get(endpoint).send().await?;
    ensure!(
        page.status().is_success(),
        "the engine answers at {endpoint}"
    );
    println!("engine {id} is Running and serving {endpoint}");

    ensure!(
        http.post(format!("{engine}/stop"))
            .send()
            .await?
            .status()
            .is_success()
    );
    wait_for(&http, &engine, "Terminated").await?;
    ensure!(
        http.get(endpoint).send().await.is_err(),
        "the stopped engine no longer answers"
    );
    ensure!(http.delete(&engine).send().await?.status().is_success());
    ensure!(http.get(&engine).send().await?.status() == 404);
    println!("engine {id} stopped and deleted");

    let _ = stop_server.send(());
    let _ = stop_monitor.send(());
    monitor.await?;
    server.await??;
    Ok(())
}

async fn wait_for(http: &reqwest::Client, url: &str, state: &str) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let info: Value = http.get(url).send().await?.json().await?;
        if info["state"] == state {
            return Ok(info);
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("engine did not reach {state}: {info}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
