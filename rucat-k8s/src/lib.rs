//! Rucat's Kubernetes resource manager: each engine is a Spark Connect driver
//! pod (client mode; Spark creates the executors) behind a headless service.
//!
//! The pieces, each with one job: [`config`] (what operators set), [`names`]
//! (deterministic names and labels), [`build`] (pod and service, pure),
//! [`status`] (pod → engine status, pure), [`cache`] (a watch-fed cache of the
//! driver pods, so `status` costs no API call, current or known not to be),
//! [`backoff`] (how soon the watch retries), [`agent`] (rucat's User-Agent),
//! [`logs`] (the driver's log: requests, answers, failure reasons, pure),
//! [`manager`] (the `ResourceManager` over the Kubernetes API) and [`rbac`]
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

pub use config::{ImageChoice, KindsConfigError, KubernetesConfig, PodOverrides};
pub use manager::{KubernetesResourceManager, KubernetesSetupError};
