//! `ballista-scheduler`: Apache Ballista's scheduler, built from crates.io for
//! rucat's tests.
//!
//! `cargo install ballista-scheduler` would build outside rucat's shared
//! target directory, without a committed lock file, and again on every
//! machine; built here, scripts/test builds it incrementally like the rest.
//! It is a thin main over the `ballista-scheduler` library doing what
//! upstream's `src/bin/main.rs` does: the command line is upstream's own `Config` (same flags, same
//! defaults), and rucat can run either this or an installed upstream binary.
//! One difference: logs always go to stdout (`--log-dir` is accepted and
//! ignored with a warning), since rucat captures each engine's stdout.

use std::sync::Arc;

use ballista_core::error::BallistaError;
use ballista_core::object_store::{session_config_with_s3_support, session_state_with_s3_support};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{Config, SchedulerConfig};
use ballista_scheduler::scheduler_process::start_server;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ballista_core::error::Result<()> {
    // Parse before starting anything, so a bad flag exits at once (clap
    // prints the error and exits with 2).
    let opt = Config::parse();
    // Planning recurses deeply; upstream gives its workers 32 MiB stacks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()?;
    runtime.block_on(run(opt))
}

async fn run(opt: Config) -> ballista_core::error::Result<()> {
    // RUST_LOG wins over --log-level-setting, as upstream.
    let filter =
        std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| opt.log_level_setting.clone());
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_thread_names(opt.print_thread_info)
        .with_thread_ids(opt.print_thread_info)
        .with_writer(std::io::stdout)
        .with_env_filter(EnvFilter::new(filter))
        .init();
    if let Some(dir) = &opt.log_dir {
        tracing::warn!("--log-dir {dir} is ignored: this build logs to stdout");
    }

    let addr = format!("{}:{}", opt.bind_host, opt.bind_port)
        .parse()
        .map_err(|e: std::net::AddrParseError| BallistaError::Configuration(e.to_string()))?;
    let config: SchedulerConfig = opt.try_into()?;
    let config = config
        .with_override_config_producer(Arc::new(session_config_with_s3_support))
        .with_override_session_builder(Arc::new(session_state_with_s3_support));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, addr, Arc::new(config)).await
}
