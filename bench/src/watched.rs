//! A store decorator that reports the moment each engine is written as
//! Running, so the benchmarks time create → Running exactly instead of
//! polling (a poll would both add its interval to every figure and load the
//! store under test).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use rucat_core::store::{Store, StoreError};
use rucat_core::{ChangeSink, EngineId, EngineRecord, EngineState, Limits, Timestamp};
use tokio::sync::mpsc;

/// An engine written as Running, and when that write returned.
pub type Reached = (EngineId, Instant);

pub struct Watched {
    inner: Arc<dyn Store>,
    running: mpsc::UnboundedSender<Reached>,
    /// Whether monitors get the store's change feed: off, a monitor finds
    /// new engines only at its scheduled reads (the wake-up baseline).
    feed: bool,
}

impl Watched {
    /// The decorated store and the receiving end of its Running reports.
    /// Every write of a Running record is reported, the monitor's periodic
    /// checks of a Running engine too; receivers keep the first per engine.
    /// The inner store's change feed reaches monitors only if `feed`.
    pub fn new(inner: Arc<dyn Store>, feed: bool) -> (Arc<Self>, mpsc::UnboundedReceiver<Reached>) {
        let (running, reports) = mpsc::unbounded_channel();
        (
            Arc::new(Self {
                inner,
                running,
                feed,
            }),
            reports,
        )
    }
}

impl Watched {
    /// Reports `next`, just written, if it is Running with no claim on it.
    fn report(&self, next: &EngineRecord) {
        if next.state == EngineState::Running && next.lease.is_none() {
            // The receiver may be gone once a benchmark has what it needs.
            let _ = self.running.send((next.id().clone(), Instant::now()));
        }
    }
}

#[async_trait]
impl Store for Watched {
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
        self.inner.insert(record).await
    }

    async fn insert_within(
        &self,
        record: &EngineRecord,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        self.inner.insert_within(record, limits).await
    }

    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        self.inner.get(id).await
    }

    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        self.inner.list().await
    }

    async fn list_ids(&self) -> Result<Vec<EngineId>, StoreError> {
        self.inner.list_ids().await
    }

    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError> {
        let revision = self.inner.compare_and_swap(expected_revision, next).await?;
        self.report(next);
        Ok(revision)
    }

    async fn compare_and_swap_within(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
        limits: &Limits,
    ) -> Result<u64, StoreError> {
        let revision = self
            .inner
            .compare_and_swap_within(expected_revision, next, limits)
            .await?;
        self.report(next);
        Ok(revision)
    }

    async fn delete(&self, id: &EngineId, expected_revision: u64) -> Result<(), StoreError> {
        self.inner.delete(id, expected_revision).await
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError> {
        self.inner.due(now, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn subscribe(&self, sink: ChangeSink) {
        if self.feed {
            self.inner.subscribe(sink).await;
        }
    }
}
