//! The [`ResourceManager`] over the Kubernetes API, for every engine kind:
//! create the engine's main (driver) pod, then what it owns — the Secret
//! with its token, its service, its member pods — read status from the
//! [`DriverPods`] cache (answering Unavailable while it is not current),
//! read the main pod's log (see [`crate::logs`]), delete.
//!
//! Every kind's objects are built by [`crate::plan`] from the [`KubePlan`]
//! the kind gives ([`rucat_core::kind::EngineKind::kube_plan`]); nothing
//! here depends on the kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::AsyncReadExt;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rucat_core::kind::kube::KubePlan;
use rucat_core::kind::{EngineKind, Kinds};
use rucat_core::resource::{LiveLog, LogQuery};
use rucat_core::{
    ChangeSink, EngineId, EngineSpec, ResourceError, ResourceManager, ResourceStatus,
};
use tracing::{info, warn};

use crate::cache::DriverPods;
use crate::config::{KindsConfigError, KubernetesConfig};
use crate::names;
use crate::{agent, build, logs, plan, status};

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
    kinds: Kinds,
    cache: DriverPods,
    /// Engines this process created recently, see [`CREATE_GRACE`].
    created: Mutex<HashMap<EngineId, Instant>>,
    /// The failure reason of each failed driver pod whose log was read, by
    /// pod uid, so its log is read once however often its status is asked.
    failure_reasons: Mutex<HashMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KubernetesSetupError {
    #[error("cannot set up a Kubernetes client (in-cluster service account or KUBECONFIG): {0}")]
    Client(#[from] kube::Error),
    #[error(transparent)]
    Kinds(#[from] KindsConfigError),
}

impl From<kube::config::InferConfigError> for KubernetesSetupError {
    fn from(err: kube::config::InferConfigError) -> Self {
        Self::Client(kube::Error::InferConfig(err))
    }
}

/// How one engine is built: its kind and the kind's plan.
struct Blueprint {
    kind: Arc<dyn EngineKind>,
    plan: KubePlan,
}

impl KubernetesResourceManager {
    /// Uses `client` for the namespace of `config`, and starts watching its
    /// driver pods. Runs the kinds this process knows ([`Kinds::installed`]; see also [`Self::with_kinds`]).
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
            kinds: Kinds::installed().clone(),
            cache,
            created: Mutex::default(),
            failure_reasons: Mutex::default(),
        }
    }

    /// Finds the cluster the standard way: the in-cluster service account,
    /// else `KUBECONFIG` / `~/.kube/config`; calls carry rucat's User-Agent.
    pub async fn from_environment(config: KubernetesConfig) -> Result<Self, KubernetesSetupError> {
        config.check_kinds(Kinds::installed())?;
        let mut client_config = kube::Config::infer().await?;
        agent::identify(&mut client_config);
        let client = Client::try_from(client_config)?;
        Ok(Self::new(client, config))
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    /// Runs the kinds of `kinds` (e.g. the built-in ones plus a third
    /// party's); `config`'s `kinds` section must name only kinds of these
    /// (see [`KubernetesConfig::check_kinds`]).
    pub fn with_kinds(mut self, kinds: Kinds) -> Result<Self, KindsConfigError> {
        self.config.check_kinds(&kinds)?;
        self.kinds = kinds;
        Ok(self)
    }

    /// How `spec` is built, or why it cannot run here.
    fn blueprint(&self, spec: &EngineSpec) -> Result<Blueprint, ResourceError> {
        let kind = self.kinds.get(&spec.engine_type).ok_or_else(|| {
            ResourceError::Rejected(format!(
                "the Kubernetes resource manager knows no engine kind {}",
                spec.engine_type
            ))
        })?;
        let plan =
            plan::plan_for(spec, kind.as_ref(), &self.config).map_err(ResourceError::Rejected)?;
        Ok(Blueprint {
            kind: Arc::clone(kind),
            plan,
        })
    }

    fn created(&self) -> std::sync::MutexGuard<'_, HashMap<EngineId, Instant>> {
        self.created.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Secret with the engine's token (when it has one and the engine
    /// reads it), the service and the member pods, all owned by the pod
    /// `uid`; what exists already is adopted.
    async fn create_dependents(
        &self,
        spec: &EngineSpec,
        blueprint: &Blueprint,
        uid: &str,
    ) -> Result<(), ResourceError> {
        let Blueprint { kind, plan } = blueprint;
        if let Some(token) = spec.token.as_ref().filter(|_| plan::uses_token(plan)) {
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
        if let Some(service) = &plan.service {
            let service = plan::service(spec, service, &self.config, uid);
            match self.services.create(&PostParams::default(), &service).await {
                Ok(_) => {}
                Err(err) if api_code(&err) == Some(409) => {}
                Err(err) => return Err(classify(err, "create the driver pod's service")),
            }
        }
        for member in &plan.members {
            let pod = plan::member_pod(spec, kind.as_ref(), plan, member, &self.config, uid);
            self.create_member(pod, uid).await?;
        }
        Ok(())
    }

    /// One member pod: created, or adopted if an earlier attempt at this
    /// start created it (it is owned by the same main pod). One owned by an
    /// earlier start's main pod is on its way out with it: the create is
    /// tried again later.
    async fn create_member(&self, pod: Pod, main_uid: &str) -> Result<(), ResourceError> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(_) => Ok(()),
            Err(err) if api_code(&err) == Some(409) => {
                let existing = self
                    .pods
                    .get(&name)
                    .await
                    .map_err(|e| classify(e, "read an existing pod of the engine"))?;
                let ours = existing
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == main_uid);
                if ours {
                    Ok(())
                } else {
                    Err(ResourceError::Unavailable(format!(
                        "the pod {name} of an earlier start of the engine is still being removed"
                    )))
                }
            }
            Err(err) => Err(classify(err, &format!("create the pod {name}"))),
        }
    }

    /// The main (driver) pod: created, or the existing one adopted.
    async fn create_pod(&self, spec: &EngineSpec, pod: Pod) -> Result<Pod, ResourceError> {
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
    /// Any kind that has a [`KubePlan`]; a kind without one is Rejected
    /// before any call.
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        let blueprint = self.blueprint(spec)?;
        let main = plan::main_pod(spec, blueprint.kind.as_ref(), &blueprint.plan, &self.config);
        let pod = self.create_pod(spec, main).await?;
        self.created().insert(spec.id.clone(), Instant::now());
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return Err(ResourceError::Unavailable(
                "the API server returned a pod without a uid".into(),
            ));
        };
        if let Err(err) = self.create_dependents(spec, &blueprint, uid).await {
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
            let members: Vec<(String, Option<Arc<Pod>>)> = member_names(&pod)
                .map(|member| {
                    let found = self.cache.get(member);
                    (member.to_owned(), found)
                })
                .collect();
            let just_created = {
                let mut created = self.created();
                let recent = created
                    .get(id)
                    .is_some_and(|at| at.elapsed() < CREATE_GRACE);
                if members.iter().all(|(_, pod)| pod.is_some()) {
                    created.remove(id);
                }
                recent
            };
            let endpoint = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(names::ENDPOINT))
                .cloned()
                .or_else(|| {
                    plan::default_endpoint(&pod, &names::service_host(id, &self.config.namespace))
                })
                .unwrap_or_else(|| names::endpoint(id, &self.config.namespace));
            let views: Vec<(&str, Option<&Pod>)> = members
                .iter()
                .map(|(name, pod)| (name.as_str(), pod.as_deref()))
                .collect();
            let (found, culprit) =
                status::engine_status_with_members(&pod, &views, &endpoint, just_created);
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
            let failed_pod = match culprit.and_then(|i| members.get(i)) {
                Some((_, Some(member))) => Arc::clone(member),
                _ => Arc::clone(&pod),
            };
            if let ResourceStatus::Failed { reason } = &found
                && logs::log_explains_failure(&failed_pod)
            {
                return Ok(ResourceStatus::Failed {
                    reason: self.reason_with_log(id, &failed_pod, reason).await,
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
        let container = match self.cache.get(&name) {
            Some(pod) if scheduled(&pod) => status::container_name(&pod).to_owned(),
            _ => match self.pods.get_opt(&name).await {
                Ok(Some(pod)) if scheduled(&pod) => status::container_name(&pod).to_owned(),
                Ok(_) => return Ok(None),
                Err(err) => return Err(classify(err, "read the driver pod")),
            },
        };
        match self
            .pods
            .log_stream(&name, &logs::params_of(&container, &query))
            .await
        {
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
    /// `reason` with the relevant lines of the log of `pod` (the failed
    /// driver, or member), read once per pod (see `failure_reasons`). If the
    /// log cannot be read now, `reason` alone, and a later call tries again.
    async fn reason_with_log(&self, id: &EngineId, pod: &Pod, reason: &str) -> String {
        let Some(uid) = pod.metadata.uid.clone() else {
            return reason.to_owned();
        };
        if let Some(known) = self.failure_reasons().get(&uid) {
            return known.clone();
        }
        let Some(name) = pod.metadata.name.as_deref() else {
            return reason.to_owned();
        };
        let params = logs::reason_params_of(status::container_name(pod));
        let read = async {
            let stream = self.pods.log_stream(name, &params).await?;
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

/// The member pods a main pod lists (see [`names::MEMBERS`]).
fn member_names(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::MEMBERS))
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|name| !name.is_empty())
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
