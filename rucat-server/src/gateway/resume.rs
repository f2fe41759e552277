//! Bringing an engine to Running for an RPC: at once if it runs; by
//! restarting it if it was stopped for idleness (or by a user, with
//! `auto_resume`), holding the RPC until it runs; with a refusal that says
//! what to do otherwise. What to do in each state is
//! [`rucat_core::idle::resume_step`]; this is the doing.
//!
//! Concurrent RPCs, here or on other servers, restart the engine once: a
//! restart is a compare-and-swap from the stopped state, which one of them
//! wins while the others find the engine starting and wait with it.

use std::time::{Duration, Instant};

use rucat_core::idle::{self, ResumeStep};
use rucat_core::{EngineError, EngineId, EngineRecord, Identity, Timestamp};
use tracing::{info, warn};

use super::Gateway;
use super::persist::{self, Touched};
use super::route::{self, Refusal};

/// How often a held RPC looks at its engine again.
const POLL: Duration = Duration::from_millis(100);

impl Gateway {
    /// The record of `id`, Running, with this RPC's use recorded if the
    /// engine was quiet; resumed first if it may be.
    pub(super) async fn running(
        &self,
        identity: &Identity,
        id: &EngineId,
    ) -> Result<EngineRecord, Refusal> {
        let started = Instant::now();
        let mut held = false;
        loop {
            let record = self.visible(identity, id).await?;
            match idle::resume_step(&record) {
                ResumeStep::Forward => {
                    if let Some(record) = self.note_use(record).await? {
                        if held {
                            self.inner.activity.resume_waited(started.elapsed());
                        }
                        return Ok(record);
                    }
                    // It changed under us (a monitor stopped it): decide again.
                    continue;
                }
                ResumeStep::Refuse => return Err(route::not_running(&record)),
                ResumeStep::Restart => self.restart(identity, &record).await?,
                ResumeStep::Wait => {}
            }
            held = true;
            let waited = started.elapsed();
            if waited >= self.resume_wait {
                let state = self.visible(identity, id).await?.state;
                return Err(Refusal::Resuming {
                    id: id.clone(),
                    state,
                    waited_secs: waited.as_secs(),
                });
            }
            tokio::time::sleep(POLL.min(self.resume_wait - waited)).await;
        }
    }

    /// The engine, if `identity` may see it; any other is unknown to them.
    pub(super) async fn visible(
        &self,
        identity: &Identity,
        id: &EngineId,
    ) -> Result<EngineRecord, Refusal> {
        self.inner
            .store
            .get(id)
            .await?
            .filter(|record| identity.may_see(record))
            .ok_or_else(|| Refusal::UnknownEngine(id.clone()))
    }

    /// Records use of a Running engine that was quiet; `None` if it is not
    /// Running any more.
    async fn note_use(&self, record: EngineRecord) -> Result<Option<EngineRecord>, Refusal> {
        let now = Timestamp::now();
        // An engine the gateway will not serve has no use to record.
        if !record.spec.served_by_gateway()
            || !persist::is_quiet(&record, now, self.activity_interval)
        {
            return Ok(Some(record));
        }
        let id = record.id().clone();
        match persist::touch(self.inner.store.as_ref(), &self.inner.activity, record, now).await {
            Ok(Touched::Current(record)) => Ok(Some(*record)),
            Ok(Touched::NotRunning) => Ok(None),
            Ok(Touched::Gone) => Err(Refusal::UnknownEngine(id)),
            Err(err) => Err(err.into()),
        }
    }

    async fn restart(&self, identity: &Identity, record: &EngineRecord) -> Result<(), Refusal> {
        let id = record.id();
        match self.inner.engines.restart_as(identity, id).await {
            Ok(()) => {
                info!(engine = %id, from = %record.state, user = %identity.name, "resuming the engine for a client");
                self.inner.activity.resumed();
                Ok(())
            }
            // Someone else restarted (or stopped) it first: wait and see.
            Err(EngineError::InvalidState { .. } | EngineError::Contended(_)) => Ok(()),
            Err(EngineError::NotFound(_)) => Err(Refusal::UnknownEngine(id.clone())),
            Err(EngineError::QuotaExceeded(exceeded)) => Err(Refusal::CannotResume {
                id: id.clone(),
                why: exceeded.to_string(),
            }),
            Err(err) => {
                warn!(engine = %id, %err, "cannot resume the engine");
                Err(Refusal::Store(err.to_string()))
            }
        }
    }
}
