//! Choosing and building the resource manager from configuration.
//!
//! Stores are chosen in `rucat-store`; resource managers are chosen here, the
//! one crate that sees all of them, so the server and the monitor binary pick
//! backends the same way.

use std::path::Path;
use std::sync::Arc;

use rucat_core::ResourceManager;
use rucat_core::logs::{LogArchive, LogsConfig};
use rucat_core::resource::local::{LocalConfig, LocalResourceManager};
use rucat_core::resource::marker::{MarkerConfig, MarkerResourceManager};
use rucat_k8s::{KubernetesConfig, KubernetesResourceManager};
use serde::{Deserialize, Serialize};

/// `"resource_manager"` in a config file.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub enum ResourceManagerConfig {
    /// Spark Connect servers as local child processes.
    Local(LocalConfig),
    /// Spark Connect driver pods on a Kubernetes cluster.
    Kubernetes(Box<KubernetesConfig>),
    /// Marker files that are "running" the moment they exist, with a log of
    /// every creation: for benchmarks and chaos tests of rucat itself, never
    /// for real engines (see `rucat_core::resource::marker`).
    Markers(MarkerConfig),
}

impl ResourceManagerConfig {
    /// The local resource manager with its engines under `data_dir/engines`.
    pub fn local_in(data_dir: &Path) -> Self {
        Self::Local(LocalConfig {
            work_dir: data_dir.join("engines"),
            ..LocalConfig::default()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("resource_manager.Local: {0}")]
    Local(#[from] rucat_core::resource::local::LocalSetupError),
    #[error("resource_manager.Kubernetes: {0}")]
    Kubernetes(#[from] rucat_k8s::KubernetesSetupError),
    #[error("resource_manager.Markers: {0}")]
    Markers(#[from] rucat_core::resource::marker::MarkerSetupError),
    #[error(transparent)]
    LogArchive(#[from] rucat_store::LogArchiveSetupError),
}

pub async fn build_resource_manager(
    config: &ResourceManagerConfig,
) -> Result<Arc<dyn ResourceManager>, BackendError> {
    match config {
        ResourceManagerConfig::Local(local) => {
            Ok(Arc::new(LocalResourceManager::new(local.clone()).await?))
        }
        ResourceManagerConfig::Kubernetes(k8s) => Ok(Arc::new(
            KubernetesResourceManager::from_environment((**k8s).clone()).await?,
        )),
        ResourceManagerConfig::Markers(markers) => {
            Ok(Arc::new(MarkerResourceManager::new(markers.clone())?))
        }
    }
}

/// The log archive `config` names: by default the directory `logs` in
/// `data_dir`, where every process using that data directory finds it.
pub fn build_log_archive(
    config: &LogsConfig,
    data_dir: &Path,
) -> Result<Arc<dyn LogArchive>, BackendError> {
    Ok(rucat_store::open_log_archive(
        &config.archive_or_default(data_dir),
        config.retention(),
    )?)
}
