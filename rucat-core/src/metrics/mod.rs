//! Prometheus metrics of the engine lifecycle, for operators who want to see
//! what rucat does without reading logs.
//!
//! Nothing here is global: an application creates a
//! [`prometheus_client::registry::Registry`], registers the metric sets it
//! wants into it and hands them to the parts that record them
//! ([`crate::Monitor::with_metrics`], [`crate::Engines::with_metrics`],
//! [`crate::resource::MeasuredResourceManager`]). An application that never
//! does pays nothing: every recording site is behind an `Option`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rucat_engines` | gauge | `state` |
//! | `rucat_store_up` | gauge | |
//! | `rucat_engine_transitions_total` | counter | `from`, `to` |
//! | `rucat_engine_state_duration_seconds` | histogram | `state` |
//! | `rucat_monitor_claim_conflicts_total` | counter | |
//! | `rucat_monitor_lease_takeovers_total` | counter | |
//! | `rucat_monitor_releases_refused_total` | counter | |
//! | `rucat_engine_idle_stops_total` | counter | |
//! | `rucat_resource_manager_call_duration_seconds` | histogram | `operation` |
//! | `rucat_resource_manager_errors_total` | counter | `operation`, `kind` |

mod engines;
mod lifecycle;
mod resource;

pub use engines::EngineStates;
pub use lifecycle::MonitorMetrics;
pub(crate) use resource::CallOutcome;
pub use resource::{Operation, ResourceMetrics};

/// The content type of [`prometheus_client::encoding::text::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
