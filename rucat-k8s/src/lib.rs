//! Rucat's Kubernetes resource manager, for every engine kind. An engine is
//! what its kind's [`rucat_core::kind::kube::KubePlan`] says: a main pod,
//! pods owned by it and a headless service — a Spark Connect driver in
//! client mode (Spark creates the executors), a `sail spark server`, or a
//! Ballista scheduler and its executors.
//!
//! The pieces, each with one job: [`config`] (what operators set), [`names`]
//! (deterministic names and labels), [`plan`] (a kind's plan as pods and a
//! service, pure), [`build`] (Spark's pods through it, and the token
//! Secret, pure), [`status`]
//! (pods → engine status, pure), [`cache`] (a watch-fed cache of the main
//! and member pods, so `status` costs no API call, current or known not to
//! be), [`backoff`] (how soon the watch retries), [`agent`] (rucat's
//! User-Agent), [`logs`] (the main pod's log: requests, answers, failure
//! reasons, pure), [`manager`] (the `ResourceManager` over the Kubernetes
//! API, the same for every kind once the objects are built) and [`rbac`]
//! (the access it needs).

pub mod agent;
pub mod backoff;
pub mod build;
pub mod cache;
pub mod config;
#[cfg(test)]
mod golden;
pub mod logs;
pub mod manager;
pub mod names;
pub mod plan;
pub mod rbac;
pub mod status;

pub use config::{ComponentConfig, KindsConfigError, KubernetesConfig, PodOverrides};
pub use manager::{KubernetesResourceManager, KubernetesSetupError};
