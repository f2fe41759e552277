//! `rucat-monitor`: drives engines through their lifecycle, beside any number
//! of servers and other monitors sharing the same store, and serves its
//! health and metrics over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rucat_core::Monitor;
use rucat_core::metrics::{MonitorMetrics, ResourceMetrics};
use rucat_core::resource::MeasuredResourceManager;
use rucat_monitor::config::MonitorFileConfig;
use rucat_monitor::http::{self, Telemetry};
use rucat_monitor::{DEFAULT_DATA_DIR, build_log_archive, build_resource_manager, process};
use tokio::sync::watch;

#[derive(Parser)]
#[command(version, about = "The rucat state monitor")]
struct Args {
    /// JSON config file (`check_interval_secs`, `database`, `resource_manager`, …).
    #[arg(long)]
    config_path: Option<PathBuf>,
    /// Directory of the default SQLite file and local engines.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Where to serve /healthz, /readyz and /metrics (overrides the file's
    /// `listen`; default 127.0.0.1:3001).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    process::init_tracing();
    let args = Args::parse();
    let config = match &args.config_path {
        Some(path) => MonitorFileConfig::load(path)?,
        None => MonitorFileConfig::default(),
    };
    let store = rucat_store::open_store(&config.database_or_default(&args.data_dir))
        .await
        .context("cannot open the database")?;
    let resources = build_resource_manager(&config.resource_manager_or_default(&args.data_dir))
        .await
        .context("cannot set up the resource manager")?;

    let mut telemetry = Telemetry::new(store.clone());
    let monitor_metrics = Arc::new(MonitorMetrics::register(telemetry.registry_mut()));
    let resource_metrics = Arc::new(ResourceMetrics::register(telemetry.registry_mut()));
    let resources = Arc::new(MeasuredResourceManager::new(resources, resource_metrics));
    let logs =
        build_log_archive(&config.logs, &args.data_dir).context("cannot set up the log archive")?;
    let monitor = Monitor::new(store, resources, config.monitor_config())
        .with_metrics(monitor_metrics)
        .with_log_archive(Arc::clone(&logs));

    let listen = args.listen.unwrap_or(config.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;

    // A signal stops both the monitor and the HTTP server.
    let (stop, stopping) = watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    };
    let server = tokio::spawn(http::serve(
        listener,
        http::router(Arc::new(telemetry)),
        http::HEADER_READ_TIMEOUT,
        stopped(),
    ));
    tracing::info!("rucat monitor serving health and metrics on http://{addr}");
    let signals = tokio::spawn(async move {
        process::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let sweeper = tokio::spawn(rucat_core::logs::sweep_every(
        logs,
        config.logs.sweep_interval(),
        stopped(),
    ));
    monitor.run(stopped()).await;
    sweeper.abort();
    signals.abort();
    server
        .await
        .context("the health and metrics server panicked")?;
    Ok(())
}
