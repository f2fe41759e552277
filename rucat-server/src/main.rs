//! `rucat-server`: the REST API, and by default an embedded monitor that
//! drives the engines, in one process.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use hyper_util::service::TowerToHyperService;
use rucat_core::logs::EngineLogs;
use rucat_core::metrics::{MonitorMetrics, ResourceMetrics};
use rucat_core::resource::MeasuredResourceManager;
use rucat_core::{Engines, Monitor, ResourceManager};
use rucat_monitor::http::Telemetry;
use rucat_monitor::{build_log_archive, build_resource_manager, process};
use rucat_server::api::{self, HttpMetrics};
use rucat_server::auth::{self, AuthMetrics, Authenticator};
use rucat_server::config::{self, Cli};
use rucat_server::gateway::{Activity, Gateway, GatewayMetrics};
use rucat_server::serve::{self, Protocol};
use rucat_server::tls::Alpn;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    process::init_tracing();
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return Ok(auth::hash::run(command)?);
    }
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
    let audit = api::Audit::register(
        telemetry.registry_mut(),
        settings.audit.user_metrics_limit.into(),
    );
    let log_archive = build_log_archive(&settings.logs, &settings.data_dir)
        .context("cannot set up the log archive")?;
    let engines = Engines::new(store.clone())
        .with_metrics(Arc::clone(&lifecycle))
        .with_quotas(settings.quotas.clone())
        .with_idle_policy(settings.idle.policy())
        .with_log_archive(Arc::clone(&log_archive));

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

    // The resource manager serves live logs too, so a server without a
    // monitor builds one if it can, and serves archived logs only if not.
    let resources = match build_resource_manager(&settings.resource_manager).await {
        Ok(resources) => Some(Arc::new(MeasuredResourceManager::new(
            resources,
            Arc::new(ResourceMetrics::register(telemetry.registry_mut())),
        ))),
        Err(err) if !settings.embedded_monitor => {
            tracing::warn!(%err, "cannot reach the engines' platform; serving archived logs only");
            None
        }
        Err(err) => return Err(err).context("cannot set up the resource manager"),
    };
    let monitor = match (&resources, settings.embedded_monitor) {
        (Some(resources), true) => {
            // The store's change feed tells it of every API write at once.
            let monitor = Monitor::new(
                store.clone(),
                resources.clone(),
                settings.monitor.monitor_config(),
            )
            .with_metrics(lifecycle)
            .with_log_archive(Arc::clone(&log_archive));
            Some(tokio::spawn(monitor.run(stopped())))
        }
        _ => None,
    };
    let logs = EngineLogs::new(
        engines.clone(),
        resources.map(|r| r as Arc<dyn ResourceManager>),
        Arc::clone(&log_archive),
    );
    tokio::spawn(rucat_core::logs::sweep_every(
        log_archive,
        settings.logs.sweep_interval(),
        stopped(),
    ));

    let rest_tls = settings
        .tls
        .as_ref()
        .map(|t| t.load(Alpn::Http))
        .transpose()?;
    let gateway_tls = settings
        .tls
        .as_ref()
        .map(|t| t.load(Alpn::Http2))
        .transpose()?;
    let scheme = if rest_tls.is_some() { "https" } else { "http" };
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let gateway_listener = TcpListener::bind(settings.gateway_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (gateway.listen)",
                settings.gateway_listen
            )
        })?;
    let gateway_addr = gateway_listener
        .local_addr()
        .context("cannot read the gateway's bound address")?;
    let advertised = settings.advertised(gateway_addr);

    let auth = settings.auth.map(|config| {
        Authenticator::new(config).with_metrics(AuthMetrics::register(telemetry.registry_mut()))
    });
    if let Some(auth) = auth.clone() {
        // A JWT issuer's keys, fetched now so a wrong URL shows at start.
        tokio::spawn(async move { auth.prefetch().await });
    }
    let activity = Activity::with_metrics(GatewayMetrics::register(telemetry.registry_mut()));
    let gateway = Gateway::new(engines.clone(), auth.clone(), activity)
        .with_setup_timeout(settings.timeouts.header_read)
        .with_resume_wait(settings.idle.resume_wait());
    let router = api::with_audit(
        api::through_gateway(
            api::observed_router(engines, auth, Arc::new(telemetry), http_metrics),
            advertised.clone(),
        ),
        audit,
    );
    let router = api::with_logs(router, logs);
    let router = api::with_timeouts(router, settings.timeouts.request_limits());
    let rest = serve::serve(
        listener,
        rest_tls,
        Protocol::http(&settings.timeouts),
        TowerToHyperService::new(router),
        stopped(),
    );
    let gateway = gateway.serve(gateway_listener, gateway_tls, stopped());
    tracing::info!("rucat server listening on {scheme}://{addr}");
    tracing::info!(
        "Spark Connect gateway listening on {gateway_addr}; engines are reached at {}",
        advertised.endpoint_pattern()
    );
    let server = async {
        tokio::join!(rest, gateway);
    };

    let signals = tokio::spawn({
        let stop = stop.clone();
        async move {
            process::shutdown_signal().await;
            let _ = stop.send(true);
        }
    });
    let watchdog = tokio::spawn(watch_monitor(monitor, stop.clone()));
    server.await;
    signals.abort();
    // Stops the monitor if the server ended on its own, and waits for it to
    // finish the actions under way. Engines stay as recorded.
    let _ = stop.send(true);
    let monitor_ok = watchdog.await.unwrap_or(false);
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
