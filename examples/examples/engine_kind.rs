//! A third-party engine kind, embedded: a "Files" engine is `python3 -m
//! http.server` serving the engine's own work directory. The kind says how
//! to find and start it; installed at startup, it is accepted by request
//! validation like the built-in kinds, and the monitor drives it on the
//! unchanged local resource manager, which gives it a work directory, a
//! port, a log, readiness, stop and failure reasons as it does for Spark,
//! Sail and Ballista.
//!
//! Run: `cargo run -p rucat-examples --example engine_kind`. Needs Spark
//! (pyspark) as any local resource manager does. Exits non-zero if any
//! step does not behave.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use rucat_core::kind::{
    BIND_ADDRESS, EngineKind, Kinds, Launch, LaunchPlan, LocalInstall, Process,
};
use rucat_core::resource::local::{LocalConfig, LocalResourceManager, LocalSetupError};
use rucat_core::store::MemoryStore;
use rucat_core::{
    CreateEngineRequest, EngineError, EngineState, Engines, Identity, Monitor, MonitorConfig,
};

/// Static files over HTTP, one server per engine.
struct Files;

#[async_trait]
impl EngineKind for Files {
    fn name(&self) -> &'static str {
        "Files"
    }

    fn check_version(&self, version: &str) -> Result<(), String> {
        (version == "1.0.0")
            .then_some(())
            .ok_or_else(|| format!("Files {version:?}: only 1.0.0 exists"))
    }

    fn version_pattern(&self) -> &'static str {
        r"^1\.0\.0$"
    }

    fn reserved_configs(&self) -> &'static [&'static str] {
        &[]
    }

    /// Nothing to do with Spark Connect: users reach it directly.
    fn served_by_gateway(&self, _version: &str) -> bool {
        false
    }

    fn never_served_by_gateway(&self) -> bool {
        true
    }

    fn endpoint(&self, port: u16) -> String {
        format!("http://{BIND_ADDRESS}:{port}/")
    }

    async fn locate(&self, config: &LocalConfig) -> Result<LocalInstall, LocalSetupError> {
        Ok(LocalInstall {
            location: config.python.clone(),
            program: config.python.clone(),
            version: "1.0.0".into(),
        })
    }

    fn process_marker(&self, engine_dir: &Path) -> String {
        format!("--directory={}", engine_dir.display())
    }

    fn launch_plan(&self, launch: &Launch<'_>) -> Result<LaunchPlan, String> {
        let port = launch.port.to_string();
        let marker = self.process_marker(launch.engine_dir);
        let args = ["-m", "http.server", &port, "--bind", BIND_ADDRESS, &marker];
        let args = args.map(str::to_owned).to_vec();
        Ok(Process::new(&launch.install.program, args).into())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let work = std::env::temp_dir().join(format!("rucat-kind-{}", std::process::id()));
    let result = run(work.clone()).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run(work_dir: PathBuf) -> anyhow::Result<()> {
    // Installing is all it takes: nothing else of rucat is changed.
    if Kinds::builtin().clone().register(Files).install().is_err() {
        bail!("the kinds were installed already");
    }
    let config = LocalConfig {
        work_dir,
        stop_grace_secs: 2,
        ..LocalConfig::default()
    };
    let resources = Arc::new(LocalResourceManager::new(config).await?);
    let store = Arc::new(MemoryStore::new());
    let monitor = Monitor::new(store.clone(), resources, MonitorConfig::default());
    let (stop_monitor, stopped) = tokio::sync::oneshot::channel::<()>();
    let monitor = tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    let engines = Engines::new(store);
    let alice = Identity::user("alice", ["data"]);

    let bad = CreateEngineRequest {
        engine_type: "Files".into(),
        ..CreateEngineRequest::spark("files", "2.0.0")
    };
    let err = engines.create_as(&alice, bad).await.err();
    ensure!(
        matches!(&err, Some(EngineError::Invalid(e)) if e.field == "version"),
        "the kind checks its versions: {err:?}"
    );
    let request = CreateEngineRequest {
        engine_type: "Files".into(),
        ..CreateEngineRequest::spark("files", "1.0.0")
    };
    let id = engines.create_as(&alice, request).await?;
    let started = Instant::now();
    let running = engines
        .wait_for(&id, EngineState::Running, Duration::from_secs(20))
        .await?;
    let endpoint = running
        .endpoint
        .context("a running engine has an endpoint")?;
    let listing = reqwest::get(&endpoint).await?.text().await?;
    ensure!(
        listing.contains("engine.log"),
        "the engine serves its own work directory: {listing}"
    );
    println!(
        "a Files engine served {endpoint} after {:?}",
        started.elapsed()
    );

    engines.stop_as(&alice, &id).await?;
    engines
        .wait_for(&id, EngineState::Terminated, Duration::from_secs(20))
        .await?;
    reqwest::get(&endpoint)
        .await
        .err()
        .context("nothing listens after the stop")?;
    engines.delete_as(&alice, &id).await?;
    println!("stopped and deleted through rucat's lifecycle");
    let _ = stop_monitor.send(());
    monitor.await?;
    Ok(())
}
