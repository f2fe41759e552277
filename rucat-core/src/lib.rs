//! The core of rucat: the engine model, its lifecycle state machine, the
//! [`Store`](store::Store) and [`ResourceManager`](resource::ResourceManager)
//! traits, the user-facing engine operations, the monitor that drives engines
//! through their lifecycle, and a local-process resource manager.
//!
//! Nothing here talks to a database or to Kubernetes; those backends live in
//! `rucat-store` and `rucat-k8s` and plug in through the traits.

pub mod attempt;
pub mod change;
pub mod decide;
pub mod engine;
pub mod engines;
pub mod identity;
pub mod idle;
pub mod kind;
pub mod logs;
pub mod metrics;
pub mod monitor;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod quota;
pub mod request;
pub mod resource;
pub mod secret;
pub mod state;
pub mod store;
pub mod time;
pub mod token;

pub use change::{Change, ChangeSink, ChangeSinks};
pub use engine::{EngineId, EngineInfo, EngineRecord, EngineSpec, EngineType};
pub use engines::{EngineChanges, EngineError, Engines, WaitError};
pub use identity::{Identity, Role};
pub use idle::{IdlePolicy, StopReason};
pub use monitor::{Monitor, MonitorConfig};
pub use quota::{Limits, QuotaExceeded, Quotas};
pub use request::{CreateEngineRequest, ValidationError};
pub use resource::{ResourceError, ResourceManager, ResourceStatus};
pub use secret::Secret;
pub use state::{EngineState, Event, Transition};
pub use store::{Store, StoreError};
pub use time::Timestamp;
pub use token::EngineToken;
