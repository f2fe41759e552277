//! A third-party engine kind on rucat's local resource manager: a "Files"
//! engine is `python3 -m http.server` serving the engine's own work
//! directory. The kind says how to find and start it; the local resource
//! manager, unchanged, gives it a work directory, a port, a log, readiness,
//! stop and failure reasons as it does for Spark and Sail.
//!
//! Run: `cargo run -p rucat-examples --example engine_kind`. Needs Spark
//! (pyspark) as any local resource manager does. Exits non-zero if any
//! step does not behave.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use rucat_core::kind::{
    BIND_ADDRESS, EngineKind, Kinds, Launch, LaunchPlan, LocalInstall, Process,
};
use rucat_core::resource::local::{LocalConfig, LocalResourceManager, LocalSetupError};
use rucat_core::{CreateEngineRequest, EngineType, ResourceManager, ResourceStatus};

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
    let config = LocalConfig {
        work_dir,
        stop_grace_secs: 2,
        ..LocalConfig::default()
    };
    // Registering is all it takes: the resource manager is not changed.
    let kinds = Kinds::builtin().clone().register(Files);
    let resources = LocalResourceManager::with_kinds(config, kinds).await?;

    let mut spec = CreateEngineRequest::spark("files", "4.3.0").validate()?;
    spec.engine_type = EngineType::new("Files");
    spec.version = "1.0.0".into();
    resources.create(&spec).await?;
    let started = Instant::now();
    let endpoint = loop {
        match resources.status(&spec.id).await? {
            ResourceStatus::Running { endpoint } => break endpoint,
            ResourceStatus::Failed { reason } => bail!("the engine failed: {reason}"),
            _ if started.elapsed() > Duration::from_secs(20) => bail!("never Running"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let listing = reqwest::get(&endpoint).await?.text().await?;
    ensure!(
        listing.contains("engine.log"),
        "the engine serves its own work directory: {listing}"
    );
    println!(
        "a Files engine served {endpoint} after {:?}",
        started.elapsed()
    );

    resources.delete(&spec.id).await?;
    ensure!(
        resources.status(&spec.id).await? == ResourceStatus::Gone,
        "deleted"
    );
    reqwest::get(&endpoint)
        .await
        .err()
        .context("nothing listens after the delete")?;
    Ok(())
}
