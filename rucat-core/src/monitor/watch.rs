//! Watching Running engines without writing.
//!
//! A Running engine is not scheduled (see [`crate::decide`]): no monitor
//! claims it while its resource stays as recorded. Its resource is checked
//! instead, read-only, in two ways:
//!
//! - **Changes.** A resource manager with a change feed (the Kubernetes pod
//!   watch, the local manager's exits of the processes it started) reports
//!   an engine whose resource changed, and the monitor checks it at once.
//! - **Resync.** Every [`MonitorConfig::resync_interval`], and once when the
//!   monitor starts, a sweep reads the Running engines from the store, a page
//!   at a time, and asks the resource manager for each one's status. It
//!   catches what no feed reports: a feed that missed an event, a resource
//!   manager without a feed, or a local engine that died while no monitor
//!   was running.
//!
//! Either way only an engine whose record would change (failed, gone, not
//! ready, a new endpoint) is handed to a pass, which claims it and looks
//! again before writing. Every monitor sweeps every Running engine: the checks
//! cost reads only, and the claim decides which monitor acts.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::debug;

use super::MonitorConfig;
use crate::decide;
use crate::engine::EngineRecord;
use crate::resource::ResourceManager;
use crate::state::EngineState;
use crate::store::{PageQuery, Store, StoreError};
use crate::time::Timestamp;

/// Running engines read from the store per page of a sweep.
const PAGE: usize = 1000;

#[derive(Clone)]
pub(crate) struct Watcher {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) resources: Arc<dyn ResourceManager>,
    pub(crate) config: MonitorConfig,
}

/// What a sweep did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Sweep {
    pub(crate) checked: usize,
    pub(crate) suspects: usize,
}

impl Watcher {
    /// Checks every Running engine and sends those that need a pass to
    /// `suspects`. Sending waits while the monitor has no room for passes,
    /// so a sweep that finds many never drops one.
    pub(crate) async fn sweep(
        &self,
        suspects: &mpsc::Sender<EngineRecord>,
    ) -> Result<Sweep, StoreError> {
        let mut sweep = Sweep::default();
        let mut query = PageQuery {
            states: vec![EngineState::Running],
            ..PageQuery::first(PAGE)
        };
        loop {
            let page = self.store.page(&query).await?;
            let next = match page.last() {
                Some(last) if page.len() == PAGE => Some(query.continue_after(last.id().clone())),
                _ => None,
            };
            for record in page {
                sweep.checked += 1;
                if let Some(suspect) = self.check(record).await {
                    sweep.suspects += 1;
                    if suspects.send(suspect).await.is_err() {
                        return Ok(sweep);
                    }
                }
            }
            match next {
                Some(next) => query = next,
                None => return Ok(sweep),
            }
        }
    }

    /// The record back if the engine needs a pass: it is Running, nobody
    /// holds or has scheduled it, and its resource is not as recorded. A
    /// resource manager that cannot answer changes nothing; the next sweep
    /// asks again.
    pub(crate) async fn check(&self, record: EngineRecord) -> Option<EngineRecord> {
        if record.state != EngineState::Running
            || record.lease.is_some()
            || record.next_action_at.is_some()
        {
            // Held by a pass, or scheduled: the due list covers it.
            return None;
        }
        let limit = self.config.action_timeout();
        let status = match tokio::time::timeout(limit, self.resources.status(record.id())).await {
            Ok(Ok(status)) => status,
            Ok(Err(err)) => {
                debug!(engine = %record.id(), %err, "cannot check a running engine");
                return None;
            }
            Err(_) => {
                debug!(engine = %record.id(), "no status within {limit:?}");
                return None;
            }
        };
        decide::needs_pass(&record, &status, Timestamp::now(), &self.config).then_some(record)
    }
}
