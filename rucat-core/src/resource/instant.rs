//! A resource manager whose engines are ready the moment they are created and
//! run nothing. It measures rucat itself — the store, the monitor, the API —
//! with the platform taken out, and counts what it was asked to do so tests can
//! prove that no engine was started twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{ResourceError, ResourceManager, ResourceStatus};
use crate::engine::{EngineId, EngineSpec};

#[derive(Default)]
pub struct InstantResourceManager {
    live: Mutex<HashSet<EngineId>>,
    creations: AtomicU64,
    adoptions: AtomicU64,
    deletions: AtomicU64,
}

impl InstantResourceManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resources actually created (an adopted one is not counted).
    pub fn creations(&self) -> u64 {
        self.creations.load(Ordering::SeqCst)
    }

    /// `create` calls that found the resource already there.
    pub fn adoptions(&self) -> u64 {
        self.adoptions.load(Ordering::SeqCst)
    }

    /// Resources actually deleted.
    pub fn deletions(&self) -> u64 {
        self.deletions.load(Ordering::SeqCst)
    }

    /// Engines whose resource exists now.
    pub fn live(&self) -> HashSet<EngineId> {
        self.engines().clone()
    }

    fn engines(&self) -> MutexGuard<'_, HashSet<EngineId>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ResourceManager for InstantResourceManager {
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        let counter = if self.engines().insert(spec.id.clone()) {
            &self.creations
        } else {
            &self.adoptions
        };
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        Ok(if self.engines().contains(id) {
            ResourceStatus::Running {
                endpoint: format!("instant://{id}"),
            }
        } else {
            ResourceStatus::Gone
        })
    }

    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError> {
        if self.engines().remove(id) {
            self.deletions.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}
