//! One monitor pass over one engine: claim → act → release. What to ask and
//! what to write is decided in [`crate::decide`]; this is the doing.
//!
//! 1. **Claim.** Compare-and-swap the engine into its claimed state (the
//!    state machine's [`Event::Claim`](crate::Event::Claim)) with a lease
//!    naming this monitor. Losing the race means another monitor or a user
//!    got there first: nothing to do.
//! 2. **Act.** Ask the resource manager what [`decide`] asks, within a time
//!    limit shorter than the lease, until it has a record to write.
//! 3. **Release.** Compare-and-swap that record in, against the revision the
//!    claim wrote. If anyone wrote since — a user's STOP, or a monitor that took
//!    over after our lease expired — the write is refused and logged: the newer
//!    decision stands, and the next pass sees it.

use std::sync::Arc;

use tracing::{debug, info, warn};

use super::MonitorConfig;
use crate::decide::{self, Call, Decision, Observed, Outcome, Verdict, decide};
use crate::engine::EngineRecord;
use crate::idle::StopReason;
use crate::logs::{self, LogArchive};
use crate::metrics::MonitorMetrics;
use crate::resource::{ResourceError, ResourceManager};
use crate::state::EngineState;
use crate::store::{Store, StoreError};
use crate::time::Timestamp;
use crate::token::EngineToken;

/// What one pass did, for the caller's bookkeeping and for tests.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Another writer won the claim.
    ClaimLost,
    /// The engine is now in `state`.
    Released {
        state: EngineState,
    },
    /// Our release was refused because someone wrote after our claim.
    ReleaseRefused,
    /// The engine vanished (deleted by a user) while we acted.
    Vanished,
    Failed(String),
}

pub(crate) struct Reconciler {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) resources: Arc<dyn ResourceManager>,
    pub(crate) config: MonitorConfig,
    pub(crate) metrics: Option<Arc<MonitorMetrics>>,
    /// Where attempts' logs are kept before their resources are released.
    pub(crate) logs: Option<Arc<dyn LogArchive>>,
}

impl Reconciler {
    pub(crate) async fn pass(&self, seen: EngineRecord) -> Pass {
        let Some(claimed) = self.claim(seen).await else {
            return Pass::ClaimLost;
        };
        let decision = self.act(&claimed).await;
        self.release(claimed, decision).await
    }

    async fn claim(&self, seen: EngineRecord) -> Option<EngineRecord> {
        let now = Timestamp::now();
        let fresh_token = || {
            EngineToken::generate()
                .inspect_err(|err| warn!(%err, "cannot start the engine without a token"))
                .ok()
        };
        let mut claimed = decide::claim(&seen, &self.config.owner, now, &self.config, fresh_token)?;
        let takeover = seen.lease.as_ref().map(|lease| lease.owner.clone());
        if let Some(previous_owner) = &takeover {
            info!(%previous_owner, state = %seen.state, "taking over an expired lease");
        }
        match self.store.compare_and_swap(seen.revision, &claimed).await {
            Ok(revision) => {
                claimed.revision = revision;
                if let Some(metrics) = &self.metrics {
                    if takeover.is_some() {
                        metrics.lease_takeover();
                    }
                    metrics.transition(seen.state, claimed.state, seen.state_since, now);
                }
                Some(claimed)
            }
            Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {
                debug!("claim lost to another writer");
                if let Some(metrics) = &self.metrics {
                    metrics.claim_conflict();
                }
                None
            }
            Err(err) => {
                warn!(%err, "claim failed");
                None
            }
        }
    }

    /// Asks the resource manager what [`decide`] wants to know until it has
    /// a record to write; all of it within [`MonitorConfig::action_timeout`].
    async fn act(&self, claimed: &EngineRecord) -> Decision {
        let limit = self.config.action_timeout();
        let mut observed = Observed::Claimed;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match decide(claimed, observed, Timestamp::now(), &self.config) {
                Verdict::Write(decision) => return *decision,
                Verdict::Ask(call) => {
                    observed =
                        match tokio::time::timeout_at(deadline, self.ask(claimed, call)).await {
                            Ok(observed) => observed,
                            Err(_) => self.failed(
                                claimed,
                                ResourceError::Unavailable(format!(
                                    "the resource manager did not answer within {limit:?}"
                                )),
                            ),
                        };
                }
            }
        }
    }

    async fn ask(&self, engine: &EngineRecord, call: Call) -> Observed {
        let id = engine.id();
        let answer = match call {
            Call::Create => self
                .resources
                .create(&engine.spec)
                .await
                .map(|()| Observed::Created),
            Call::Status => self.resources.status(id).await.map(Observed::Status),
            Call::Delete => {
                // The first delete of a stop or a cleanup; later ones (a lost
                // request) find the resource already going.
                if matches!(
                    engine.state,
                    EngineState::TriggerTermination | EngineState::ErrorTriggerClean
                ) {
                    self.keep_log(engine).await;
                }
                self.resources
                    .delete(id)
                    .await
                    .map(|()| Observed::DeleteIssued)
            }
        };
        answer.unwrap_or_else(|error| self.failed(engine, error))
    }

    /// Archives the engine's current log, within half the action's time so
    /// that the delete always gets its turn: a log that cannot be kept is
    /// logged and counted, never a reason to keep an engine's resources.
    async fn keep_log(&self, engine: &EngineRecord) {
        let Some(archive) = &self.logs else {
            return;
        };
        let limit = self.config.action_timeout() / 2;
        let kept = tokio::time::timeout(
            limit,
            logs::archive_current(self.resources.as_ref(), archive.as_ref(), engine),
        )
        .await;
        let outcome = match kept {
            Ok(Ok(Some(report))) => {
                info!(
                    attempt = report.archived.attempt,
                    bytes = report.archived.bytes,
                    cut = report.cut,
                    "engine log archived"
                );
                "archived"
            }
            Ok(Ok(None)) => "none",
            Ok(Err(err)) => {
                warn!(%err, "engine log not archived");
                "failed"
            }
            Err(_) => {
                warn!(?limit, "engine log not archived: copying it took too long");
                "failed"
            }
        };
        if let Some(metrics) = &self.metrics {
            metrics.log_archived(outcome);
        }
    }

    fn failed(&self, engine: &EngineRecord, error: ResourceError) -> Observed {
        Observed::Failed {
            error,
            remains: self.resources.describe(engine.id()),
        }
    }

    async fn release(&self, claimed: EngineRecord, decision: Decision) -> Pass {
        let Decision { next, outcome } = decision;
        match &outcome {
            Outcome::Moved(_) if next.state.is_error() && !claimed.state.is_error() => {
                let reason = next.error.as_deref().unwrap_or_default();
                warn!(state = %next.state, %reason, "engine failed");
            }
            Outcome::Retry(err) => {
                let retry_in = next
                    .next_action_at
                    .map(|at| at.since(Timestamp::now()))
                    .unwrap_or_default();
                match err {
                    ResourceError::Unavailable(why) => {
                        warn!(%why, ?retry_in, "resource manager unavailable");
                    }
                    ResourceError::Rejected(why) => {
                        warn!(%why, ?retry_in, "resource manager refused; retrying");
                    }
                }
            }
            Outcome::Ignored => {
                warn!(state = %claimed.state, "ignoring an observation that does not fit the state");
            }
            Outcome::Moved(_) | Outcome::Unchanged => {}
        }
        match self.store.compare_and_swap(claimed.revision, &next).await {
            Ok(_) => {
                if next.state != claimed.state {
                    let reason = next.stop_reason.as_ref().map(ToString::to_string);
                    info!(from = %claimed.state, to = %next.state, reason, "engine state changed");
                    if matches!(next.stop_reason, Some(StopReason::Idle { .. }))
                        && claimed.state == EngineState::Running
                    {
                        if let Some(metrics) = &self.metrics {
                            metrics.idle_stop();
                        }
                    }
                    if let Some(metrics) = &self.metrics {
                        metrics.transition(
                            claimed.state,
                            next.state,
                            claimed.state_since,
                            next.update_time,
                        );
                    }
                }
                Pass::Released { state: next.state }
            }
            Err(StoreError::Conflict(_)) => {
                warn!("release refused: the engine changed after our claim (lease superseded)");
                if let Some(metrics) = &self.metrics {
                    metrics.release_refused();
                }
                Pass::ReleaseRefused
            }
            Err(StoreError::NotFound(_)) => Pass::Vanished,
            Err(err) => {
                warn!(%err, "release failed; the lease will expire and the engine be retried");
                Pass::Failed(err.to_string())
            }
        }
    }
}
