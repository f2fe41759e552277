//! A monitor and the Kubernetes resource manager driving engines against the
//! Kubernetes API test server (real HTTP, JSON and watch streams), with the
//! test playing the kubelet.

#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;
use std::time::Duration;

use rucat_core::logs::LogArchive;
use rucat_core::store::MemoryStore;
use rucat_core::{
    CreateEngineRequest, EngineId, EngineRecord, EngineState, Engines, Monitor, MonitorConfig,
};
use rucat_k8s::{KubernetesConfig, KubernetesResourceManager, agent, names};
use rucat_k8s_testserver::{Resource, TestServer};
use tokio::sync::oneshot;

pub const NS: &str = "spark";
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Cluster {
    pub api: TestServer,
    pub engines: Engines,
    pub resources: Arc<KubernetesResourceManager>,
    stop: Option<oneshot::Sender<()>>,
    monitor: Option<tokio::task::JoinHandle<()>>,
}

/// A client of the test server as rucat builds one for a cluster: with its
/// User-Agent, and without kube's retry of 503s (which would hide an outage
/// behind the client's own retries).
pub fn client(api: &TestServer) -> kube::Client {
    let mut config = api.config(NS);
    config.default_retry = false;
    agent::identify(&mut config);
    kube::Client::try_from(config).unwrap()
}

pub fn k8s_config() -> KubernetesConfig {
    KubernetesConfig {
        namespace: NS.into(),
        service_account: Some("rucat-spark".into()),
        ..KubernetesConfig::default()
    }
}

impl Cluster {
    pub async fn start(tune: impl FnOnce(&mut MonitorConfig, &mut KubernetesConfig)) -> Self {
        Self::start_on(TestServer::start().await, tune).await
    }

    pub async fn start_on(
        api: TestServer,
        tune: impl FnOnce(&mut MonitorConfig, &mut KubernetesConfig),
    ) -> Self {
        Self::start_archiving(api, None, tune).await
    }

    /// [`Self::start_on`], the monitor archiving logs into `archive`.
    pub async fn start_archiving(
        api: TestServer,
        archive: Option<Arc<dyn LogArchive>>,
        tune: impl FnOnce(&mut MonitorConfig, &mut KubernetesConfig),
    ) -> Self {
        let mut monitor_config = MonitorConfig {
            check_interval: Duration::from_millis(100),
            lease_duration: Duration::from_secs(5),
            ..MonitorConfig::default()
        };
        let mut config = k8s_config();
        tune(&mut monitor_config, &mut config);
        let resources = Arc::new(KubernetesResourceManager::new(client(&api), config));
        let store = Arc::new(MemoryStore::new());
        let mut monitor = Monitor::new(store.clone(), resources.clone(), monitor_config);
        if let Some(archive) = archive {
            monitor = monitor.with_log_archive(archive);
        }
        let engines = Engines::new(store).with_waker(monitor.waker());
        let (stop, stopped) = oneshot::channel::<()>();
        let monitor = tokio::spawn(monitor.run(async {
            let _ = stopped.await;
        }));
        Self {
            api,
            engines,
            resources,
            stop: Some(stop),
            monitor: Some(monitor),
        }
    }

    pub async fn create(&self) -> EngineId {
        self.engines
            .create(CreateEngineRequest::spark("k8s-engine", "4.0.1"))
            .await
            .unwrap()
    }

    pub async fn wait_for(&self, id: &EngineId, state: EngineState) -> EngineRecord {
        self.engines.wait_for(id, state, WAIT).await.unwrap()
    }

    /// Waits until the driver pod exists on the server, as the kubelet would.
    pub async fn wait_for_pod(&self, id: &EngineId) {
        let name = names::object_name(id);
        for _ in 0..1200 {
            if self.api.get(NS, Resource::Pods, &name).is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the driver pod of {id} was never created");
    }

    /// Plays the kubelet: the driver pod is ready.
    pub fn set_running(&self, id: &EngineId) {
        self.api
            .set_pod_running(NS, &names::object_name(id))
            .unwrap();
    }

    /// A new engine whose driver pod is ready.
    pub async fn running_engine(&self) -> EngineId {
        let id = self.create().await;
        self.wait_for_pod(&id).await;
        self.set_running(&id);
        self.wait_for(&id, EngineState::Running).await;
        id
    }

    pub fn pod(&self, id: &EngineId) -> Option<serde_json::Value> {
        self.api.get(NS, Resource::Pods, &names::object_name(id))
    }

    pub fn service(&self, id: &EngineId) -> Option<serde_json::Value> {
        self.api
            .get(NS, Resource::Services, &names::object_name(id))
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(monitor) = self.monitor.take() {
            monitor.await.unwrap();
        }
    }
}

/// The (resource, verb) pairs, as RBAC names them (a subresource is
/// `resource/subresource`), of the calls rucat made to `api`.
pub fn permissions_used(api: &TestServer) -> std::collections::BTreeSet<(String, String)> {
    api.calls()
        .iter()
        .filter(|c| c.user_agent.as_deref() == Some(agent::USER_AGENT))
        .filter_map(|c| {
            let resource = c.resource?.plural();
            let resource = match &c.subresource {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.to_owned(),
            };
            Some((resource, c.verb.rbac()?.to_owned()))
        })
        .collect()
}

/// The (resource, verb) pairs the chart's Role grants
/// (`rucat_k8s::rbac::PERMISSIONS`).
pub fn permissions_granted() -> std::collections::BTreeSet<(String, String)> {
    rucat_k8s::rbac::PERMISSIONS
        .iter()
        .flat_map(|p| {
            p.verbs
                .iter()
                .map(|v| (p.resource.to_owned(), (*v).to_owned()))
        })
        .collect()
}
