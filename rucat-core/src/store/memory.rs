//! A store in process memory: for tests, benchmarks and embedding applications
//! that need no durability. Its change feed is in-process: every write is
//! reported to the monitors subscribed to this store.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{PageQuery, Store, StoreError, tally};
use crate::change::{ChangeSink, ChangeSinks};
use crate::engine::{EngineId, EngineRecord};
use crate::quota::{Limits, Usage};
use crate::state::EngineState;
use crate::time::Timestamp;

/// Engines are kept in id order, so a page is a walk of the map from `after`.
#[derive(Default)]
pub struct MemoryStore {
    engines: Mutex<BTreeMap<EngineId, EngineRecord>>,
    feed: ChangeSinks,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn engines(&self) -> MutexGuard<'_, BTreeMap<EngineId, EngineRecord>> {
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

/// `limits.owner`'s engines other than `except`, counted under the lock
/// that the write then happens under: a walk of every engine, which is fine
/// for a store in memory.
fn usage(engines: &BTreeMap<EngineId, EngineRecord>, limits: &Limits, except: &EngineId) -> Usage {
    let mut usage = Usage::default();
    engines
        .values()
        .filter(|r| r.id() != except && r.owner.as_deref() == Some(limits.owner.as_str()))
        .for_each(|r| usage.add(r));
    usage
}

/// The engines of `query`'s page: a walk of the map from `query.after`,
/// filtered (in memory, a scan of what follows `after` costs little).
fn page<'a>(
    engines: &'a BTreeMap<EngineId, EngineRecord>,
    query: &'a PageQuery,
) -> impl Iterator<Item = &'a EngineRecord> {
    let from = query
        .after
        .as_ref()
        .map_or(Bound::Unbounded, Bound::Excluded);
    engines
        .range((from, Bound::Unbounded))
        .map(|(_, r)| r)
        .filter(|r| query.admits(r))
        .take(query.limit)
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
        self.insert_within(record, &Limits::none("")).await
    }

    async fn insert_within(
        &self,
        record: &EngineRecord,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        {
            let mut engines = self.engines();
            if engines.contains_key(record.id()) {
                return Err(StoreError::AlreadyExists(record.id().clone()));
            }
            if !limits.is_unlimited() {
                let usage = usage(&engines, limits, record.id());
                limits
                    .check(usage, record, true)
                    .map_err(StoreError::QuotaExceeded)?;
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

    async fn page(&self, query: &PageQuery) -> Result<Vec<EngineRecord>, StoreError> {
        Ok(page(&self.engines(), query).cloned().collect())
    }

    async fn page_ids(&self, query: &PageQuery) -> Result<Vec<EngineId>, StoreError> {
        Ok(page(&self.engines(), query)
            .map(|r| r.id().clone())
            .collect())
    }

    async fn count_by_state(&self) -> Result<Vec<(EngineState, u64)>, StoreError> {
        Ok(tally(self.engines().values().map(|r| r.state)))
    }

    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError> {
        self.compare_and_swap_within(expected_revision, next, &Limits::none(""))
            .await
    }

    async fn compare_and_swap_within(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
        limits: &Limits,
    ) -> Result<u64, StoreError> {
        let revision = {
            let mut engines = self.engines();
            check_revision(engines.get(next.id()), next.id(), expected_revision)?;
            if !limits.is_unlimited() {
                let usage = usage(&engines, limits, next.id());
                limits
                    .check(usage, next, false)
                    .map_err(StoreError::QuotaExceeded)?;
            }
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

    /// The trait's default `page`, `page_ids`, `count_by_state` (and
    /// `list_ids`), as a third-party store that implements only the
    /// required methods gets them.
    mod defaults {
        use super::*;

        struct Required(MemoryStore);

        #[async_trait]
        impl Store for Required {
            async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
                self.0.insert(record).await
            }
            async fn insert_within(
                &self,
                record: &EngineRecord,
                limits: &Limits,
            ) -> Result<(), StoreError> {
                self.0.insert_within(record, limits).await
            }
            async fn compare_and_swap_within(
                &self,
                expected_revision: u64,
                next: &EngineRecord,
                limits: &Limits,
            ) -> Result<u64, StoreError> {
                self.0
                    .compare_and_swap_within(expected_revision, next, limits)
                    .await
            }
            async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
                self.0.get(id).await
            }
            async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
                self.0.list().await
            }
            async fn compare_and_swap(
                &self,
                expected_revision: u64,
                next: &EngineRecord,
            ) -> Result<u64, StoreError> {
                self.0.compare_and_swap(expected_revision, next).await
            }
            async fn delete(
                &self,
                id: &EngineId,
                expected_revision: u64,
            ) -> Result<(), StoreError> {
                self.0.delete(id, expected_revision).await
            }
            async fn due(
                &self,
                now: Timestamp,
                limit: usize,
            ) -> Result<Vec<EngineRecord>, StoreError> {
                self.0.due(now, limit).await
            }
            async fn subscribe(&self, sink: ChangeSink) {
                self.0.subscribe(sink).await
            }
        }

        struct Defaults;

        #[async_trait]
        impl Harness for Defaults {
            async fn open(&self) -> Arc<dyn Store> {
                Arc::new(Required(MemoryStore::new()))
            }
            fn durable(&self) -> bool {
                false
            }
        }

        crate::conformance_tests!(Defaults);
    }
}
