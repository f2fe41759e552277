//! Where engines are recorded, shared by every server and monitor.
//!
//! A store is deliberately dumb: it keeps [`EngineRecord`]s and offers one
//! write primitive, a compare-and-swap on the record's `revision`. All lifecycle
//! logic lives above it, so a new backend only has to get that primitive right;
//! [`conformance`] checks that it does.

use async_trait::async_trait;

use crate::change::ChangeSink;
use crate::engine::{EngineId, EngineRecord};
use crate::time::Timestamp;

mod memory;
pub use memory::MemoryStore;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
mod unreachable;
#[cfg(any(test, feature = "conformance"))]
pub use unreachable::{UNREACHABLE_REASON, Unreachable};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record changed since it was read: someone else wrote first. Read
    /// again and decide again; never overwrite.
    #[error("engine {0} was changed concurrently")]
    Conflict(EngineId),
    #[error("engine {0} not found")]
    NotFound(EngineId),
    #[error("engine {0} already exists")]
    AlreadyExists(EngineId),
    /// The backend cannot be reached or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back as an engine.
    #[error("stored engine {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a new engine. Its stored revision is 1, whatever `record.revision` says.
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError>;

    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError>;

    /// All engines, oldest first.
    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError>;

    /// The ids of all engines, oldest first: all that `GET /engines` shows.
    /// The default reads whole records; a backend that can read the ids alone
    /// should, since decoding thousands of records is most of a list's cost.
    async fn list_ids(&self) -> Result<Vec<EngineId>, StoreError> {
        Ok(self.list().await?.into_iter().map(|r| r.spec.id).collect())
    }

    /// Replaces the engine with `next` if its stored revision is still
    /// `expected_revision`, and returns the new revision, `expected_revision + 1`.
    /// `next.revision` is ignored. Fails with [`StoreError::Conflict`] if the
    /// revision moved on and [`StoreError::NotFound`] if the engine is gone.
    /// Check and write are one atomic step: of many concurrent writers with the
    /// same expected revision, exactly one succeeds.
    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError>;

    /// Removes the engine if its stored revision is still `expected_revision`;
    /// errors as for [`Store::compare_and_swap`].
    async fn delete(&self, id: &EngineId, expected_revision: u64) -> Result<(), StoreError>;

    /// Up to `limit` engines a monitor may claim at `now` (see
    /// [`EngineRecord::is_due`]), the longest-waiting first.
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError>;

    /// Succeeds if the store answers, for readiness probes. The default looks
    /// up an id no engine can have, which every backend answers with a cheap
    /// indexed read; backends with a cheaper round trip override it.
    async fn ping(&self) -> Result<(), StoreError> {
        self.get(&EngineId::never_generated()).await.map(drop)
    }

    /// Called by each monitor before its first read of the due list. A store
    /// with a change feed keeps the sink (a [`crate::ChangeSinks`] serves
    /// several) and calls [`ChangeSink::recorded`] with every engine inserted
    /// or changed, by any writer it can see, so monitors act on new work at
    /// once (see [`crate::change`]). Return once the feed is listening, so
    /// that nothing written after the monitor's first read goes unreported
    /// (a feed that cannot start in reasonable time logs why and returns).
    /// Without a feed (the default) monitors find new work at their next
    /// scheduled [`Store::due`] read, at most a check interval later.
    async fn subscribe(&self, _sink: ChangeSink) {}
}
