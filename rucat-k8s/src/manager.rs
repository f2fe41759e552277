//! The [`ResourceManager`] over the Kubernetes API: create the driver pod and
//! its service, read status from the [`DriverPods`] cache, delete.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rucat_core::{
    ChangeSink, EngineId, EngineSpec, ResourceError, ResourceManager, ResourceStatus,
};
use tracing::{info, warn};

use crate::build;
use crate::cache::DriverPods;
use crate::config::KubernetesConfig;
use crate::names;

/// How long a pod this process created may be missing from the cache (the
/// watch event may lag the create response) before it counts as gone.
const CREATE_GRACE: Duration = Duration::from_secs(30);

pub struct KubernetesResourceManager {
    pods: Api<Pod>,
    services: Api<Service>,
    config: KubernetesConfig,
    cache: DriverPods,
    /// Engines this process created recently, see [`CREATE_GRACE`].
    created: Mutex<HashMap<EngineId, Instant>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up a Kubernetes client (in-cluster service account or KUBECONFIG): {0}")]
pub struct KubernetesSetupError(#[from] kube::Error);

impl KubernetesResourceManager {
    /// Uses `client` for the namespace of `config`, and starts watching its
    /// driver pods.
    pub fn new(client: Client, config: KubernetesConfig) -> Self {
        let pods = Api::namespaced(client.clone(), &config.namespace);
        let services = Api::namespaced(client, &config.namespace);
        let cache = DriverPods::start(pods.clone(), &config.namespace);
        Self {
            pods,
            services,
            config,
            cache,
            created: Mutex::default(),
        }
    }

    /// Finds the cluster the standard way: the in-cluster service account,
    /// else `KUBECONFIG` / `~/.kube/config`.
    pub async fn from_environment(config: KubernetesConfig) -> Result<Self, KubernetesSetupError> {
        let client = Client::try_default().await?;
        Ok(Self::new(client, config))
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    fn created(&self) -> std::sync::MutexGuard<'_, HashMap<EngineId, Instant>> {
        self.created.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The driver pod: created, or the existing one adopted.
    async fn create_pod(&self, spec: &EngineSpec) -> Result<Pod, ResourceError> {
        let pod = build::driver_pod(spec, &self.config);
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(created) => Ok(created),
            Err(err) if api_code(&err) == Some(409) => {
                info!(engine = %spec.id, "adopting the existing driver pod");
                self.pods
                    .get(&names::object_name(&spec.id))
                    .await
                    .map_err(classify)
            }
            Err(err) => Err(classify(err)),
        }
    }
}

#[async_trait]
impl ResourceManager for KubernetesResourceManager {
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        let pod = self.create_pod(spec).await?;
        self.created().insert(spec.id.clone(), Instant::now());
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return Err(ResourceError::Unavailable(
                "the API server returned a pod without a uid".into(),
            ));
        };
        let service = build::service(spec, &self.config, uid);
        match self.services.create(&PostParams::default(), &service).await {
            Ok(_) => Ok(()),
            Err(err) if api_code(&err) == Some(409) => Ok(()),
            Err(err) => {
                // Without its service the pod is unreachable: remove it, so a
                // failed create leaves nothing behind.
                let name = names::object_name(&spec.id);
                if let Err(cleanup) = self.pods.delete(&name, &DeleteParams::background()).await {
                    warn!(%cleanup, engine = %spec.id, "cannot remove the driver pod after its service failed");
                }
                self.created().remove(&spec.id);
                Err(classify(err))
            }
        }
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        if !self.cache.is_synced() {
            return Err(ResourceError::Unavailable(
                "the driver pod cache has not synced with the API server yet".into(),
            ));
        }
        let name = names::object_name(id);
        if let Some(pod) = self.cache.get(&name) {
            return Ok(crate::status::engine_status(
                &pod,
                &names::endpoint(id, &self.config.namespace),
            ));
        }
        let mut created = self.created();
        match created.get(id) {
            Some(at) if at.elapsed() < CREATE_GRACE => Ok(ResourceStatus::PENDING),
            _ => {
                created.remove(id);
                Ok(ResourceStatus::Gone)
            }
        }
    }

    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError> {
        let name = names::object_name(id);
        let params = if self.stuck_terminating(&name) {
            warn!(engine = %id, "the driver pod is stuck terminating; deleting it with no grace period");
            DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::background()
            }
        } else {
            DeleteParams::background()
        };
        for result in [
            self.pods.delete(&name, &params).await.map(drop),
            self.services
                .delete(&name, &DeleteParams::background())
                .await
                .map(drop),
        ] {
            match result {
                Ok(()) => {}
                Err(err) if api_code(&err) == Some(404) => {}
                Err(err) => return Err(classify(err)),
            }
        }
        self.created().remove(id);
        Ok(())
    }

    fn subscribe(&self, sink: ChangeSink) {
        self.cache.subscribe(sink);
    }
}

impl KubernetesResourceManager {
    /// Whether the pod is still there `force_delete_after_secs` after the end
    /// of its grace period (its `deletionTimestamp` is when that ends).
    fn stuck_terminating(&self, name: &str) -> bool {
        let Some(since) = self
            .cache
            .get(name)
            .and_then(|p| p.metadata.deletion_timestamp.clone())
        else {
            return false;
        };
        let limit = Duration::from_secs(self.config.force_delete_after_secs);
        let waited = k8s_openapi::jiff::Timestamp::now().duration_since(since.0);
        waited.as_secs() >= 0 && waited.unsigned_abs() >= limit
    }
}

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether the cluster refused this engine (a user-visible reason) or could
/// not be asked (retry later).
fn classify(err: kube::Error) -> ResourceError {
    match &err {
        kube::Error::Api(status) => match status.code {
            400 | 403 | 404 | 409 | 422 => ResourceError::Rejected(format!(
                "Kubernetes refused the engine: {} ({})",
                status.message, status.reason
            )),
            _ => ResourceError::Unavailable(format!(
                "Kubernetes API: {} ({})",
                status.message, status.code
            )),
        },
        _ => ResourceError::Unavailable(format!("Kubernetes API: {err}")),
    }
}
