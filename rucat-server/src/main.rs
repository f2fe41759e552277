//! `rucat-server`: the REST API, and by default an embedded monitor that
//! drives the engines, in one process.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rucat_core::metrics::{MonitorMetrics, ResourceMetrics};
use rucat_core::resource::MeasuredResourceManager;
use rucat_core::{Engines, Monitor, MonitorConfig};
use rucat_monitor::http::Telemetry;
use rucat_monitor::{build_resource_manager, process};
use rucat_server::api::{self, HttpMetrics};
use rucat_server::auth::StaticAuth;
use rucat_server::config::{self, Cli};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    process::init_tracing();
    let cli = Cli::parse();
    let settings = config::load(&cli)?;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        embedded_monitor = settings.embedded_monitor,
        auth = settings.auth.is_some(),
        "configuration loaded"
    );

    let store = rucat_store::open_store(&settings.database)
        .await
        .context("cannot open the database")?;
    // One registry for the process: lifecycle transitions made by users
    // (here) and by the embedded monitor, its resource manager, and HTTP.
    let mut telemetry = Telemetry::new(store.clone());
    let lifecycle = Arc::new(MonitorMetrics::register(telemetry.registry_mut()));
    let http_metrics = HttpMetrics::register(telemetry.registry_mut());
    let engines = Engines::new(store.clone()).with_metrics(Arc::clone(&lifecycle));

    // Everything stops when this turns true: on a signal, or if the
    // embedded monitor dies (a server without it would accept engines that
    // nothing ever starts).
    let (stop, stopping) = watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    };

    let monitor = if settings.embedded_monitor {
        let resources = build_resource_manager(&settings.resource_manager)
            .await
            .context("cannot set up the resource manager")?;
        let resources = Arc::new(MeasuredResourceManager::new(
            resources,
            Arc::new(ResourceMetrics::register(telemetry.registry_mut())),
        ));
        let config = MonitorConfig {
            check_interval: settings.check_interval,
            ..MonitorConfig::default()
        };
        // The store's change feed tells it of every API write at once.
        let monitor = Monitor::new(store, resources, config).with_metrics(lifecycle);
        Some(tokio::spawn(monitor.run(stopped())))
    } else {
        None
    };

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let router = api::observed_router(
        engines,
        settings.auth.map(StaticAuth::from),
        Arc::new(telemetry),
        http_metrics,
    );
    let server = axum::serve(listener, router).with_graceful_shutdown(stopped());
    tracing::info!("rucat server listening on http://{addr}");

    let signals = tokio::spawn({
        let stop = stop.clone();
        async move {
            process::shutdown_signal().await;
            let _ = stop.send(true);
        }
    });
    let watchdog = tokio::spawn(watch_monitor(monitor, stop.clone()));
    let served = server.await;
    signals.abort();
    // Stops the monitor if the server ended on its own, and waits for it to
    // finish the actions under way. Engines stay as recorded.
    let _ = stop.send(true);
    let monitor_ok = watchdog.await.unwrap_or(false);
    served.context("the server failed")?;
    anyhow::ensure!(monitor_ok, "the embedded monitor stopped unexpectedly");
    tracing::info!("rucat server stopped");
    Ok(())
}

/// Waits for the monitor (if any) to end; if it ends before a stop was asked
/// for, stops everything. Returns whether it ended as asked.
async fn watch_monitor(monitor: Option<JoinHandle<()>>, stop: watch::Sender<bool>) -> bool {
    let Some(mut monitor) = monitor else {
        return true;
    };
    let mut stopping = stop.subscribe();
    let stop_asked = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    tokio::select! {
        // A stop lets an idle monitor end at once, so both branches can be
        // ready together: the stop must win, or a clean stop looks like a crash.
        biased;
        () = stop_asked => {
            tracing::info!("stopping the embedded monitor");
            monitor.await.is_ok()
        }
        ended = &mut monitor => {
            // Under load this branch has been seen to win even after a
            // stop was asked for, so ask the flag itself: a monitor that
            // ended without panicking once a stop was asked for stopped as asked.
            if ended.is_ok() && *stop.borrow() {
                tracing::info!("stopping the embedded monitor");
                return true;
            }
            tracing::error!(panicked = ended.is_err(), "the embedded monitor stopped unexpectedly; shutting down");
            let _ = stop.send(true);
            false
        }
    }
}
