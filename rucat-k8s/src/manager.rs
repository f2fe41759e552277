//! The [`ResourceManager`] over the Kubernetes API: create the driver pod, the
//! Secret with its token and its service, read status from the [`DriverPods`] cache (answering
//! Unavailable while it is not current), read the driver's log (see [`crate::logs`]), delete.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::AsyncReadExt;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rucat_core::resource::{LiveLog, LogQuery};
use rucat_core::{
    ChangeSink, EngineId, EngineSpec, ResourceError, ResourceManager, ResourceStatus,
};
use tracing::{info, warn};

use crate::cache::DriverPods;
use crate::config::KubernetesConfig;
use crate::names;
use crate::{agent, build, logs, status};

/// How long a pod this process created may be missing from the cache (the
/// watch event may lag the create response) before it counts as gone. Only
/// until the cache first shows it: from then on, absence means gone.
const CREATE_GRACE: Duration = Duration::from_secs(30);

/// How long reading a failed driver's log for its failure reason may take;
/// past it the reason is the pod status's alone.
const REASON_READ_TIMEOUT: Duration = Duration::from_secs(5);

pub struct KubernetesResourceManager {
    pods: Api<Pod>,
    services: Api<Service>,
    secrets: Api<Secret>,
    config: KubernetesConfig,
    cache: DriverPods,
    /// Engines this process created recently, see [`CREATE_GRACE`].
    created: Mutex<HashMap<EngineId, Instant>>,
    /// The failure reason of each failed driver pod whose log was read, by
    /// pod uid, so its log is read once however often its status is asked.
    failure_reasons: Mutex<HashMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up a Kubernetes client (in-cluster service account or KUBECONFIG): {0}")]
pub struct KubernetesSetupError(#[from] kube::Error);

impl From<kube::config::InferConfigError> for KubernetesSetupError {
    fn from(err: kube::config::InferConfigError) -> Self {
        Self(kube::Error::InferConfig(err))
    }
}

impl KubernetesResourceManager {
    /// Uses `client` for the namespace of `config`, and starts watching its
    /// driver pods.
    pub fn new(client: Client, config: KubernetesConfig) -> Self {
        let pods = Api::namespaced(client.clone(), &config.namespace);
        let services = Api::namespaced(client.clone(), &config.namespace);
        let secrets = Api::namespaced(client, &config.namespace);
        let cache = DriverPods::start(pods.clone(), &config.namespace);
        Self {
            pods,
            services,
            secrets,
            config,
            cache,
            created: Mutex::default(),
            failure_reasons: Mutex::default(),
        }
    }

    /// Finds the cluster the standard way: the in-cluster service account,
    /// else `KUBECONFIG` / `~/.kube/config`; calls carry rucat's User-Agent.
    pub async fn from_environment(config: KubernetesConfig) -> Result<Self, KubernetesSetupError> {
        let mut client_config = kube::Config::infer().await?;
        agent::identify(&mut client_config);
        let client = Client::try_from(client_config)?;
        Ok(Self::new(client, config))
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    fn created(&self) -> std::sync::MutexGuard<'_, HashMap<EngineId, Instant>> {
        self.created.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Secret with the engine's token (when it has one) and the service,
    /// both owned by the pod `uid`.
    async fn create_dependents(&self, spec: &EngineSpec, uid: &str) -> Result<(), ResourceError> {
        if let Some(token) = &spec.token {
            let secret = build::secret(spec, &self.config, uid, token);
            match self.secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => {}
                // Left by an earlier attempt at this start, or by an earlier
                // start whose pod is still being collected: make it this
                // pod's, with this start's token.
                Err(err) if api_code(&err) == Some(409) => {
                    let name = names::object_name(&spec.id);
                    self.secrets
                        .replace(&name, &PostParams::default(), &secret)
                        .await
                        .map_err(|e| classify(e, "replace the engine's token Secret"))?;
                }
                Err(err) => return Err(classify(err, "create the engine's token Secret")),
            }
        }
        let service = build::service(spec, &self.config, uid);
        match self.services.create(&PostParams::default(), &service).await {
            Ok(_) => Ok(()),
            Err(err) if api_code(&err) == Some(409) => Ok(()),
            Err(err) => Err(classify(err, "create the driver pod's service")),
        }
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
                    .map_err(|e| classify(e, "read the existing driver pod"))
            }
            Err(err) => Err(classify(err, "create the driver pod")),
        }
    }
}

#[async_trait]
impl ResourceManager for KubernetesResourceManager {
    /// Spark only: the Kubernetes resource manager does not yet ask the
    /// engine's kind ([`rucat_core::kind`]) how to run it, so it refuses
    /// other kinds rather than start a Spark driver for them.
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        if spec.engine_type != rucat_core::EngineType::Spark {
            return Err(ResourceError::Rejected(format!(
                "the Kubernetes resource manager runs only Spark engines, not {}",
                spec.engine_type
            )));
        }
        let pod = self.create_pod(spec).await?;
        self.created().insert(spec.id.clone(), Instant::now());
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return Err(ResourceError::Unavailable(
                "the API server returned a pod without a uid".into(),
            ));
        };
        if let Err(err) = self.create_dependents(spec, uid).await {
            // Without its token or its service the pod cannot serve: remove
            // it (what was made of them goes with it), so a failed create
            // leaves nothing behind.
            let name = names::object_name(&spec.id);
            if let Err(cleanup) = self.pods.delete(&name, &DeleteParams::background()).await
                && api_code(&cleanup) != Some(404)
            {
                warn!(%cleanup, engine = %spec.id, "cannot remove the driver pod after creating what it needs failed");
            }
            self.created().remove(&spec.id);
            return Err(err);
        }
        Ok(())
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        if !self.cache.is_current() {
            return Err(ResourceError::Unavailable(
                "the driver pod cache is not current (the watch is reconnecting to the API server)"
                    .into(),
            ));
        }
        let name = names::object_name(id);
        if let Some(pod) = self.cache.get(&name) {
            self.created().remove(id);
            let found = status::engine_status(&pod, &names::endpoint(id, &self.config.namespace));
            if found == ResourceStatus::Terminating && self.stuck_terminating(&pod) {
                // Failed, not Terminating: the monitor then deletes again,
                // and `delete` forces it.
                return Ok(ResourceStatus::Failed {
                    reason: format!(
                        "the driver pod is still terminating {} s after its grace period ended",
                        self.config.force_delete_after_secs
                    ),
                });
            }
            if let ResourceStatus::Failed { reason } = &found
                && logs::log_explains_failure(&pod)
            {
                return Ok(ResourceStatus::Failed {
                    reason: self.reason_with_log(id, &pod, reason).await,
                });
            }
            return Ok(found);
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
        let stuck = self
            .cache
            .get(&name)
            .is_some_and(|pod| self.stuck_terminating(&pod));
        let params = if stuck {
            warn!(engine = %id, "the driver pod is stuck terminating; deleting it with no grace period");
            DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::background()
            }
        } else {
            DeleteParams::background()
        };
        // A 404 means already gone: deleting what does not exist is done.
        for (result, action) in [
            (
                self.pods.delete(&name, &params).await.map(drop),
                "delete the driver pod",
            ),
            (
                self.services
                    .delete(&name, &DeleteParams::background())
                    .await
                    .map(drop),
                "delete the driver pod's service",
            ),
        ] {
            match result {
                Ok(()) => {}
                Err(err) if api_code(&err) == Some(404) => {}
                Err(err) => return Err(classify(err, action)),
            }
        }
        self.created().remove(id);
        Ok(())
    }

    async fn log(&self, id: &EngineId, query: LogQuery) -> Result<Option<LiveLog>, ResourceError> {
        let name = names::object_name(id);
        // For a pod no node has taken yet the API server answers with an
        // empty log, but there is none yet. The cache shows most pods
        // scheduled; only when it does not (it may lag) is the pod read.
        let scheduled = |pod: &Pod| {
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|node| !node.is_empty())
        };
        if !self.cache.get(&name).is_some_and(|pod| scheduled(&pod)) {
            match self.pods.get_opt(&name).await {
                Ok(Some(pod)) if scheduled(&pod) => {}
                Ok(_) => return Ok(None),
                Err(err) => return Err(classify(err, "read the driver pod")),
            }
        }
        match self.pods.log_stream(&name, &logs::params(&query)).await {
            Ok(stream) => Ok(Some(Box::pin(logs::TokioRead::new(stream)))),
            Err(err) if logs::means_no_log(&err) => Ok(None),
            Err(err) => Err(classify(err, "read the driver pod's log")),
        }
    }

    fn subscribe(&self, sink: ChangeSink) {
        self.cache.subscribe(sink);
    }

    fn describe(&self, id: &EngineId) -> String {
        let name = names::object_name(id);
        format!(
            "pod {name} and service {name} in namespace {} (label {}={id})",
            self.config.namespace,
            names::ENGINE_ID
        )
    }
}

impl KubernetesResourceManager {
    /// `reason` with the relevant lines of the failed driver's log, read
    /// once per pod (see `failure_reasons`). If the log cannot be read now,
    /// `reason` alone, and a later call tries again.
    async fn reason_with_log(&self, id: &EngineId, pod: &Pod, reason: &str) -> String {
        let Some(uid) = pod.metadata.uid.clone() else {
            return reason.to_owned();
        };
        if let Some(known) = self.failure_reasons().get(&uid) {
            return known.clone();
        }
        let name = names::object_name(id);
        let read = async {
            let stream = self.pods.log_stream(&name, &logs::reason_params()).await?;
            let mut tail = Vec::new();
            // limitBytes bounds what the server sends; this bounds what is
            // kept if it sends more.
            let bound = u64::try_from(logs::REASON_TAIL_BYTES).unwrap_or(u64::MAX);
            stream
                .take(bound)
                .read_to_end(&mut tail)
                .await
                .map_err(kube::Error::ReadEvents)?;
            Ok::<_, kube::Error>(tail)
        };
        let full = match tokio::time::timeout(REASON_READ_TIMEOUT, read).await {
            Ok(Ok(tail)) => {
                let tail = String::from_utf8_lossy(&tail);
                logs::with_log(reason, &rucat_core::logs::reason::summarize_log(&tail))
            }
            Ok(Err(err)) if logs::means_no_log(&err) => reason.to_owned(),
            Ok(Err(err)) => {
                warn!(%err, engine = %id, "cannot read the failed driver's log for its failure reason");
                return reason.to_owned();
            }
            Err(_) => {
                warn!(engine = %id, "reading the failed driver's log for its failure reason timed out");
                return reason.to_owned();
            }
        };
        // Forget the pods that are gone, then remember this one.
        let live: std::collections::HashSet<String> = self
            .cache
            .all()
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let mut known = self.failure_reasons();
        known.retain(|uid, _| live.contains(uid));
        known.insert(uid, full.clone());
        full
    }

    fn failure_reasons(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.failure_reasons
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn stuck_terminating(&self, pod: &Pod) -> bool {
        status::stuck_terminating(
            pod,
            k8s_openapi::jiff::Timestamp::now(),
            Duration::from_secs(self.config.force_delete_after_secs),
        )
    }
}

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether the cluster refused `action` (retrying as is will not help: the
/// reason is shown to the user) or could not be asked (retry later), in
/// words that say which.
fn classify(err: kube::Error, action: &str) -> ResourceError {
    let kube::Error::Api(status) = &err else {
        return ResourceError::Unavailable(format!("cannot reach Kubernetes to {action}: {err}"));
    };
    let said = format!("{} ({} {})", status.message, status.code, status.reason);
    match status.code {
        // RBAC (a missing Role), or a quota or admission policy.
        403 => ResourceError::Rejected(format!("Kubernetes forbids rucat to {action}: {said}")),
        // Credentials that expired or were rotated: the client reloads them.
        401 => ResourceError::Unavailable(format!(
            "Kubernetes did not accept rucat's credentials to {action}: {said}"
        )),
        // The namespace does not exist (objects' own 404s are handled by
        // their callers: a delete's means gone).
        404 => ResourceError::Rejected(format!("cannot {action}: {said}")),
        400 | 409 | 422 => {
            ResourceError::Rejected(format!("Kubernetes refused to {action}: {said}"))
        }
        _ => ResourceError::Unavailable(format!("Kubernetes could not {action}: {said}")),
    }
}
