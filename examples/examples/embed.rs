//! Embedding rucat in a Rust program, with no HTTP server: a SQLite store, the
//! local Spark resource manager and a monitor in this process, driven through
//! the same `Engines` operations the REST API uses, as the identities the
//! program knows, with their quotas.
//!
//! Run: `cargo run -p rucat-examples --example embed` (needs pyspark and Java
//! 17: `scripts/install-deps`). Exits non-zero if anything goes wrong.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rucat_core::resource::local::{LocalConfig, LocalResourceManager};
use rucat_core::{
    CreateEngineRequest, EngineError, EngineState, Engines, Identity, Monitor, MonitorConfig,
    Quotas,
};
use rucat_store::sqlite::SqliteStore;

/// A Spark Connect server is ready in about 5 s; leave room for a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(240);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let data = std::env::temp_dir().join(format!("rucat-embed-{}", std::process::id()));
    let result = run(&data).await;
    let _ = std::fs::remove_dir_all(&data);
    result
}

async fn run(data: &Path) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open(data.join("rucat.db"))?);
    let local = LocalConfig {
        work_dir: data.join("engines"),
        ..LocalConfig::default()
    };
    let resources = Arc::new(LocalResourceManager::new(local).await?);
    let spark_version = resources.spark_version().to_owned();

    let monitor = Monitor::new(store.clone(), resources, MonitorConfig::default());
    // The store's change feed tells the monitor of every change at once.
    // One engine starting or running at once per user.
    let quotas: Quotas = serde_json::from_str(r#"{"default": {"max_running": 1}}"#)?;
    let engines = Engines::new(store).with_quotas(quotas);
    let (alice, bob, carol) = (
        Identity::user("alice", ["data"]),
        Identity::user("bob", ["data"]),
        Identity::user("carol", ["ops"]),
    );
    let (stop_monitor, stopped) = tokio::sync::oneshot::channel::<()>();
    let monitor = tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));

    let request = CreateEngineRequest::spark("embedded", spark_version.clone())
        .with_config("spark.sql.shuffle.partitions", "4")
        .shared_with("data");
    let id = engines.create_as(&alice, request).await?;
    println!("alice created engine {id}, shared with the group data");
    // bob is in `data`; carol is not, and to her the engine does not exist.
    engines.get_as(&bob, &id).await?;
    anyhow::ensure!(
        matches!(
            engines.get_as(&carol, &id).await,
            Err(EngineError::NotFound(_))
        ),
        "carol must not see alice's engine"
    );
    // A second engine would be alice's second one starting: refused.
    let second = CreateEngineRequest::spark("second", spark_version);
    match engines.create_as(&alice, second).await {
        Err(EngineError::QuotaExceeded(quota)) => println!("alice's second engine: {quota}"),
        other => anyhow::bail!("expected alice's quota to refuse, got {other:?}"),
    }
    let running = engines
        .wait_for(&id, EngineState::Running, START_TIMEOUT)
        .await?;
    let endpoint = running
        .endpoint
        .context("a running engine has an endpoint")?;
    println!("engine {id} is running; connect with SparkSession.builder.remote({endpoint:?})");

    engines.stop_as(&bob, &id).await?;
    engines
        .wait_for(&id, EngineState::Terminated, STOP_TIMEOUT)
        .await?;
    engines.delete_as(&alice, &id).await?;
    println!("engine {id} stopped by bob and deleted by alice");

    let _ = stop_monitor.send(());
    monitor.await?;
    Ok(())
}
