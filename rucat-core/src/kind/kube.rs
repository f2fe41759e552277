//! What an engine kind needs on Kubernetes, said by the kind in plain terms
//! (no Kubernetes types: embedders of rucat-core need not compile them).
//!
//! A kind answers [`super::EngineKind::kube_plan`] with a [`KubePlan`]: the
//! engine's pods (one main pod, plus pods owned by it), the service in front
//! of the main pod, and the endpoint users get. The Kubernetes resource
//! manager (the `rucat-k8s` crate) turns the plan into objects,
//! names and labels them, applies the operator's overrides (namespace,
//! labels, annotations, node selector, tolerations, resources, grace
//! period), and creates, watches and deletes them the same way for every
//! kind. So the kind says *what* runs; rucat-k8s decides *where* and *how it
//! is tracked*.
//!
//! Images are named per component (e.g. Ballista's `scheduler` and
//! `executor`): the kind lists them with their default templates in
//! [`super::EngineKind::kube_images`], operators may override each per
//! version, and a [`PodPlan`] names the component it runs.

use std::collections::BTreeMap;

use crate::engine::EngineSpec;

/// Everything a kind needs to plan an engine on Kubernetes, decided by the
/// resource manager and its operator.
#[derive(Clone, Copy)]
pub struct KubeContext<'a> {
    pub spec: &'a EngineSpec,
    /// The name of the engine's main pod and service, e.g. `rucat-0123…`.
    pub name: &'a str,
    pub namespace: &'a str,
    /// The DNS name of the engine's service, e.g.
    /// `rucat-0123….engines.svc`: where other pods of the engine and
    /// clients reach its main pod.
    pub service_host: &'a str,
    /// The account pods with [`PodPlan::api_access`] run as, if the
    /// operator set one.
    pub service_account: Option<&'a str>,
    /// The image of one of the kind's components for the engine's version,
    /// as the operator configured it: for pods the engine starts itself
    /// (Spark's executors).
    pub image: &'a dyn Fn(&str) -> String,
    /// The labels rucat gives the engine's objects of a role: for pods the
    /// engine starts itself, so rucat knows them as the engine's.
    pub labels_for: &'a dyn Fn(&str) -> BTreeMap<String, String>,
    /// The kind's own settings from the operator's configuration (Spark:
    /// `spark_submit`, `spark35_connect_package`).
    pub settings: &'a BTreeMap<String, String>,
}

impl KubeContext<'_> {
    /// See [`KubeContext::labels_for`].
    pub fn labels(&self, role: &str) -> BTreeMap<String, String> {
        (self.labels_for)(role)
    }
}

impl std::fmt::Debug for KubeContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeContext")
            .field("engine", &self.spec.id)
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("service_host", &self.service_host)
            .field("service_account", &self.service_account)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// An engine on Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubePlan {
    /// The engine's main pod: it carries the engine's name, its log is the
    /// engine's log, and every other object of the engine is owned by it, so
    /// deleting it removes the engine.
    pub main: PodPlan,
    /// Further pods, owned by the main pod (Ballista's executors). The engine
    /// is running when every pod is ready, and fails when any of them fails.
    pub members: Vec<PodPlan>,
    /// The headless service in front of the main pod, named like the engine.
    pub service: Option<ServicePlan>,
    /// Where users (or rucat's gateway, for kinds it serves) connect once the
    /// engine runs, e.g. `sc://rucat-0123….engines.svc:50051`.
    pub endpoint: String,
    /// The engine checks no token although users reach it through the
    /// gateway (Sail): its main pod must accept connections from the
    /// gateway only. Its pods are labelled so a NetworkPolicy (the Helm
    /// chart's) can say so.
    pub gateway_only: bool,
}

/// One pod with one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    /// Tells the pod among the engine's, as a DNS label: members are named
    /// `<engine>-<role>` (e.g. `executor-1`); status messages name it ("the
    /// executor-1 container ended").
    pub role: String,
    /// The container's name, e.g. `executor`.
    pub container: String,
    /// The component whose image the container runs, one of the kind's
    /// [`super::EngineKind::kube_images`].
    pub image: &'static str,
    /// The program, if not the image's entrypoint.
    pub command: Option<Vec<String>>,
    /// Arguments; `$(NAME)` is replaced by the container's variable `NAME`
    /// (Kubernetes does it), e.g. `$(POD_IP)`.
    pub args: Vec<String>,
    pub env: Vec<EnvPlan>,
    pub ports: Vec<PortPlan>,
    /// When the pod counts as ready.
    pub readiness: Readiness,
    /// The pod calls the Kubernetes API (Spark's driver creates its
    /// executors): it runs as the operator's service account. Other pods
    /// get no API token at all.
    pub api_access: bool,
}

/// An environment variable of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvPlan {
    pub name: String,
    pub value: EnvValue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    /// The engine's token, read from its Secret: never in the pod spec,
    /// which anyone who may read pods sees.
    Token,
    /// The pod's IP, known only once it runs, e.g. for an address the pod
    /// advertises to others.
    PodIp,
}

impl EnvPlan {
    pub fn plain(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: EnvValue::Plain(value.into()),
        }
    }
}

/// A named container port (exposed by the service too, if it is the main
/// pod's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    /// A DNS label of at most 15 characters, e.g. `grpc`.
    pub name: String,
    pub port: u16,
}

impl PortPlan {
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        Self {
            name: name.into(),
            port,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Ready when the port accepts connections.
    Tcp { port: u16 },
    /// Ready when `GET path` on the port answers 2xx or 3xx.
    Http { path: String, port: u16 },
}

/// The service in front of the main pod: headless (its name resolves to
/// the pod's IP) and published before the pod is ready, so the engine's
/// other pods can resolve it while it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePlan {
    pub ports: Vec<PortPlan>,
}

/// A component's image: its name among the kind's and the image for
/// versions the operator did not configure (`{version}` replaced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KubeImage {
    pub component: &'static str,
    pub default_template: &'static str,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A context for the engine `spec` whose service is `rucat-x.ns.svc`.
    pub(crate) fn context(spec: &EngineSpec) -> KubeContext<'_> {
        static SETTINGS: BTreeMap<String, String> = BTreeMap::new();
        KubeContext {
            spec,
            name: "rucat-x",
            namespace: "ns",
            service_host: "rucat-x.ns.svc",
            service_account: None,
            image: &|component| format!("{component}:image"),
            labels_for: &|role| BTreeMap::from([("role".to_owned(), role.to_owned())]),
            settings: &SETTINGS,
        }
    }
}
