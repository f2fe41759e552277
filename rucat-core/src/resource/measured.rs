//! A decorator that measures any resource manager, so that every backend —
//! the local one, Kubernetes, a third-party plugin — gets the same latency
//! and error metrics without instrumenting itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{ChangeSink, LiveLog, LogQuery, ResourceError, ResourceManager, ResourceStatus};
use crate::engine::{EngineId, EngineSpec};
use crate::metrics::{CallOutcome, Operation, ResourceMetrics};

pub struct MeasuredResourceManager {
    inner: Arc<dyn ResourceManager>,
    metrics: Arc<ResourceMetrics>,
}

impl MeasuredResourceManager {
    pub fn new(inner: Arc<dyn ResourceManager>, metrics: Arc<ResourceMetrics>) -> Self {
        Self { inner, metrics }
    }

    async fn measure<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, ResourceError>>,
    ) -> Result<T, ResourceError> {
        let mut in_flight = InFlight {
            metrics: &self.metrics,
            operation,
            started: Instant::now(),
            done: false,
        };
        let result = call.await;
        in_flight.done = true;
        let outcome = match &result {
            Ok(_) => CallOutcome::Ok,
            Err(err) => CallOutcome::Failed(err),
        };
        self.metrics
            .record(operation, in_flight.started.elapsed(), outcome);
        result
    }
}

/// Records a call that was dropped before it answered — the monitor gives up
/// on calls that outlast its action timeout — which would otherwise be the
/// slowest calls missing from the histogram.
struct InFlight<'a> {
    metrics: &'a ResourceMetrics,
    operation: Operation,
    started: Instant,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.record(
                self.operation,
                self.started.elapsed(),
                CallOutcome::Abandoned,
            );
        }
    }
}

#[async_trait]
impl ResourceManager for MeasuredResourceManager {
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        self.measure(Operation::Create, self.inner.create(spec))
            .await
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        self.measure(Operation::Status, self.inner.status(id)).await
    }

    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError> {
        self.measure(Operation::Delete, self.inner.delete(id)).await
    }

    fn subscribe(&self, sink: ChangeSink) {
        self.inner.subscribe(sink);
    }

    fn describe(&self, id: &EngineId) -> String {
        self.inner.describe(id)
    }

    async fn log(&self, id: &EngineId, query: LogQuery) -> Result<Option<LiveLog>, ResourceError> {
        self.inner.log(id, query).await
    }
}
