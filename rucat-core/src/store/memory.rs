//! A store in process memory: for tests, benchmarks and embedding applications
//! that need no durability. Its change feed is in-process: every write is
//! reported to the monitors subscribed to this store.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Store, StoreError};
use crate::change::{ChangeSink, ChangeSinks};
use crate::engine::{EngineId, EngineRecord};
use crate::time::Timestamp;

#[derive(Default)]
pub struct MemoryStore {
    engines: Mutex<HashMap<EngineId, EngineRecord>>,
    feed: ChangeSinks,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn engines(&self) -> MutexGuard<'_, HashMap<EngineId, EngineRecord>> {
        // A panic while holding the lock cannot leave a record half-written
        // (every write replaces a whole record), so a poisoned map is still valid.
        self.engines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn check_revision(
    stored: Option<&EngineRecord>,
    id: &EngineId,
    expected: u64,
) -> Result<(), StoreError> {
    match stored {
        None => Err(StoreError::NotFound(id.clone())),
        Some(r) if r.revision != expected => Err(StoreError::Conflict(id.clone())),
        Some(_) => Ok(()),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
        {
            let mut engines = self.engines();
            if engines.contains_key(record.id()) {
                return Err(StoreError::AlreadyExists(record.id().clone()));
            }
            let mut stored = record.clone();
            stored.revision = 1;
            engines.insert(record.id().clone(), stored);
        }
        self.feed.recorded(record, 1);
        Ok(())
    }

    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        Ok(self.engines().get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        let mut all: Vec<EngineRecord> = self.engines().values().cloned().collect();
        all.sort_by(|a, b| (a.create_time, a.id()).cmp(&(b.create_time, b.id())));
        Ok(all)
    }

    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError> {
        let revision = {
            let mut engines = self.engines();
            check_revision(engines.get(next.id()), next.id(), expected_revision)?;
            let mut stored = next.clone();
            stored.revision = expected_revision + 1;
            engines.insert(next.id().clone(), stored);
            expected_revision + 1
        };
        self.feed.recorded(next, revision);
        Ok(revision)
    }

    async fn delete(&self, id: &EngineId, expected_revision: u64) -> Result<(), StoreError> {
        let mut engines = self.engines();
        check_revision(engines.get(id), id, expected_revision)?;
        engines.remove(id);
        Ok(())
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError> {
        let mut due: Vec<EngineRecord> = self
            .engines()
            .values()
            .filter(|r| r.is_due(now))
            .cloned()
            .collect();
        due.sort_by_key(|r| r.next_action_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn subscribe(&self, sink: ChangeSink) {
        self.feed.add(sink);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance::Harness;

    struct Memory;

    #[async_trait]
    impl Harness for Memory {
        async fn open(&self) -> Arc<dyn Store> {
            Arc::new(MemoryStore::new())
        }
        fn durable(&self) -> bool {
            false
        }
    }

    crate::conformance_tests!(Memory);
}
