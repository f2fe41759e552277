//! Embedding rucat in a Rust program, with no HTTP server: a SQLite store, the
//! local Spark resource manager and a monitor in this process, driven through
//! the same `Engines` operations the REST API uses.
//!
//! Run: `cargo run -p rucat-examples --example embed` (needs pyspark and Java
//! 17: `scripts/install-deps`). Exits non-zero if anything goes wrong.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rucat_core::resource::local::{LocalConfig, LocalResourceManager};
use rucat_core::{CreateEngineRequest, EngineId, EngineState, Engines, Monitor, MonitorConfig};
use rucat_store::sqlite::SqliteStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let data = std::env::temp_dir().join(format!("rucat-embed-{}", std::process::id()));
    let result = run(&data).await;
    let _ = std::fs::remove_dir_all(&data);
    result
}

async fn run(data: &std::path::Path) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open(data.join("rucat.db"))?);
    let local = LocalConfig {
        work_dir: data.join("engines"),
        ..LocalConfig::default()
    };
    let resources = Arc::new(LocalResourceManager::new(local).await?);
    let spark_version = resources.spark_version().to_owned();

    let monitor = Monitor::new(store.clone(), resources, MonitorConfig::default());
    let engines = Engines::new(store).with_waker(monitor.waker());
    let (stop_monitor, stopped) = tokio::sync::oneshot::channel::<()>();
    let monitor = tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));

    let id = engines
        .create(CreateEngineRequest {
            name: "embedded".into(),
            engine_type: "Spark".into(),
            version: spark_version,
            configs: BTreeMap::from([("spark.sql.shuffle.partitions".into(), "4".into())]),
        })
        .await?;
    println!("created engine {id}");
    let running = wait_for(&engines, &id, EngineState::Running).await?;
    let endpoint = running
        .endpoint
        .context("a running engine has an endpoint")?;
    println!("engine {id} is running; connect with SparkSession.builder.remote({endpoint:?})");

    engines.stop(&id).await?;
    wait_for(&engines, &id, EngineState::Terminated).await?;
    engines.delete(&id).await?;
    println!("engine {id} stopped and deleted");

    let _ = stop_monitor.send(());
    monitor.await?;
    Ok(())
}

async fn wait_for(
    engines: &Engines,
    id: &EngineId,
    state: EngineState,
) -> anyhow::Result<rucat_core::EngineRecord> {
    let started = Instant::now();
    loop {
        let record = engines.get(id).await?;
        if record.state == state {
            return Ok(record);
        }
        if record.state.is_error() {
            bail!("engine {id} failed: {}", record.error.unwrap_or_default());
        }
        if started.elapsed() > Duration::from_secs(240) {
            bail!("engine {id} is still {} after 240 s", record.state);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
