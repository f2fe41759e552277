//! `ballista-executor`: Apache Ballista's executor, built from crates.io for
//! rucat's tests.
//!
//! A thin main over the `ballista-executor` library doing what upstream's
//! `src/bin/main.rs` does, so rucat can run either this or an installed
//! upstream binary: the command line is upstream's own `Config` (same flags,
//! same defaults), and the health server answers `/healthz` (alive) and
//! `/readyz` (registered with the scheduler and heartbeating) on
//! `--bind-health-port`. One difference: logs always go to stdout
//! (`--log-dir` is accepted and ignored with a warning).

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::error::BallistaError;
use ballista_core::object_store::{runtime_env_with_s3_support, session_config_with_s3_support};
use ballista_executor::config::Config;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_executor::health::spawn_health_server;
use clap::Parser;
use tracing_subscriber::EnvFilter;

// Upstream's binary allocates with mimalloc too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ballista_core::error::Result<()> {
    // Parse before starting anything, so a bad flag exits at once (clap
    // prints the error and exits with 2).
    let opt = Config::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(opt))
}

async fn run(opt: Config) -> ballista_core::error::Result<()> {
    let health_addr: SocketAddr = format!("{}:{}", opt.bind_host, opt.bind_health_port)
        .parse()
        .map_err(|e| BallistaError::General(format!("invalid --bind-health-port address: {e}")))?;
    let log_dir = opt.log_dir.clone();

    let mut config: ExecutorProcessConfig = opt.try_into()?;
    config.override_config_producer = Some(Arc::new(session_config_with_s3_support));
    config.override_runtime_producer = Some(Arc::new(runtime_env_with_s3_support));

    // RUST_LOG wins over --log-level-setting, as upstream.
    let filter = std::env::var(EnvFilter::DEFAULT_ENV)
        .unwrap_or_else(|_| config.special_mod_log_level.clone());
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_thread_names(config.print_thread_info)
        .with_thread_ids(config.print_thread_info)
        .with_writer(std::io::stdout)
        .with_env_filter(EnvFilter::new(filter))
        .init();
    if let Some(dir) = log_dir {
        tracing::warn!("--log-dir {dir} is ignored: this build logs to stdout");
    }

    // The probes live in the binary, not the library: /healthz is liveness,
    // /readyz follows the heartbeats to the scheduler.
    let (stop_health, health_stopped) = tokio::sync::oneshot::channel();
    let health = spawn_health_server(health_addr, config.health.clone(), health_stopped);

    let result = start_executor_process(Arc::new(config)).await;

    let _ = stop_health.send(());
    if let Err(e) = health.await {
        tracing::warn!("health server task join error: {e}");
    }
    result
}
