//! `rucat-monitor`: drives engines through their lifecycle, beside any number
//! of servers and other monitors sharing the same store.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rucat_core::Monitor;
use rucat_monitor::config::MonitorFileConfig;
use rucat_monitor::{DEFAULT_DATA_DIR, build_resource_manager, process};

#[derive(Parser)]
#[command(version, about = "The rucat state monitor")]
struct Args {
    /// JSON config file (`check_interval_secs`, `database`, `resource_manager`, …).
    #[arg(long)]
    config_path: Option<PathBuf>,
    /// Directory of the default SQLite file and local engines.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
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
    let monitor = Monitor::new(store, resources, config.monitor_config());
    monitor.run(process::shutdown_signal()).await;
    Ok(())
}
