//! Everything the `rucat-monitor` binary does, as a library: reading its
//! configuration and building the backends it drives. `rucat-server` uses the
//! same pieces to run an embedded monitor.

pub mod backends;
pub mod config;
pub mod http;

pub use backends::{
    BackendError, ResourceManagerConfig, build_log_archive, build_resource_manager,
};
pub use config::{ConfigError, DEFAULT_DATA_DIR, MonitorFileConfig, MonitorSettings};
pub mod process;
