//! How the resource manager answers: latency and errors per operation,
//! recorded by [`crate::resource::MeasuredResourceManager`].

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::resource::ResourceError;

/// The resource-manager operations that are measured.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Operation {
    Create,
    Status,
    Delete,
}

impl Operation {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Status => "status",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    operation: &'static str,
    /// `rejected` (the monitor gives up on the engine), `unavailable` (it
    /// retries) or `abandoned` (the call outlasted the monitor's patience).
    kind: &'static str,
}

/// Calls end well within the monitor's action timeout (20 s by default).
const CALL_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
];

fn call_histogram() -> Histogram {
    Histogram::new(CALL_SECONDS)
}

#[derive(Debug)]
pub struct ResourceMetrics {
    duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
}

impl ResourceMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            duration: Family::new_with_constructor(call_histogram),
            errors: Family::default(),
        };
        // Every operation shows from the start, so a dashboard sees "no calls
        // yet" as 0 rather than as a missing series.
        for operation in [Operation::Create, Operation::Status, Operation::Delete] {
            drop(metrics.duration.get_or_create(&OperationLabels {
                operation: operation.name(),
            }));
        }
        registry.register(
            "rucat_resource_manager_call_duration_seconds",
            "How long resource-manager calls took, failed ones included",
            metrics.duration.clone(),
        );
        registry.register(
            "rucat_resource_manager_errors",
            "Resource-manager calls that failed",
            metrics.errors.clone(),
        );
        metrics
    }

    pub(crate) fn record(&self, operation: Operation, took: Duration, outcome: CallOutcome<'_>) {
        let labels = OperationLabels {
            operation: operation.name(),
        };
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        let kind = match outcome {
            CallOutcome::Ok => return,
            CallOutcome::Failed(ResourceError::Rejected(_)) => "rejected",
            CallOutcome::Failed(ResourceError::Unavailable(_)) => "unavailable",
            CallOutcome::Abandoned => "abandoned",
        };
        self.errors
            .get_or_create(&ErrorLabels {
                operation: operation.name(),
                kind,
            })
            .inc();
    }
}

/// How a measured call ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CallOutcome<'a> {
    Ok,
    Failed(&'a ResourceError),
    /// Dropped before it answered (the caller timed out).
    Abandoned,
}
