//! A store that is never there, for tests of what rucat does when its store
//! is down: readiness probes, error responses, metrics refreshes.

use async_trait::async_trait;

use super::{Store, StoreError};
use crate::engine::{EngineId, EngineRecord};
use crate::quota::Limits;
use crate::time::Timestamp;

/// What every operation of [`Unreachable`] fails with. It names a file path,
/// as real backend errors do, so a test can check that the path never
/// reaches a client.
pub const UNREACHABLE_REASON: &str = "disk I/O failed at /secret/path/rucat.db";

/// Every operation fails as [`StoreError::Unavailable`] with [`UNREACHABLE_REASON`].
pub struct Unreachable;

fn unavailable() -> StoreError {
    StoreError::Unavailable(UNREACHABLE_REASON.to_owned())
}

#[async_trait]
impl Store for Unreachable {
    async fn insert(&self, _: &EngineRecord) -> Result<(), StoreError> {
        Err(unavailable())
    }
    async fn insert_within(&self, _: &EngineRecord, _: &Limits) -> Result<(), StoreError> {
        Err(unavailable())
    }
    async fn compare_and_swap_within(
        &self,
        _: u64,
        _: &EngineRecord,
        _: &Limits,
    ) -> Result<u64, StoreError> {
        Err(unavailable())
    }
    async fn get(&self, _: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        Err(unavailable())
    }
    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        Err(unavailable())
    }
    async fn compare_and_swap(&self, _: u64, _: &EngineRecord) -> Result<u64, StoreError> {
        Err(unavailable())
    }
    async fn delete(&self, _: &EngineId, _: u64) -> Result<(), StoreError> {
        Err(unavailable())
    }
    async fn due(&self, _: Timestamp, _: usize) -> Result<Vec<EngineRecord>, StoreError> {
        Err(unavailable())
    }
}
