//! One monitor pass over one engine: claim → act → release.
//!
//! 1. **Claim.** Compare-and-swap the engine into its claimed state (the
//!    state machine's [`Event::Claim`]) with a lease naming this monitor. Losing
//!    the race means another monitor or a user got there first: nothing to do.
//! 2. **Act.** Ask the resource manager to create, inspect or delete, within a
//!    time limit shorter than the lease, and turn the answer into an [`Event`].
//! 3. **Release.** Compare-and-swap the outcome in, against the revision the
//!    claim wrote. If anyone wrote since — a user's STOP, or a monitor that took
//!    over after our lease expired — the write is refused and logged: the newer
//!    decision stands, and the next pass sees it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::MonitorConfig;
use super::blocked;
use crate::engine::{EngineRecord, Lease};
use crate::metrics::MonitorMetrics;
use crate::resource::{ResourceError, ResourceManager, ResourceStatus};
use crate::state::{EngineState, Event, Transition, transition};
use crate::store::{Store, StoreError};
use crate::time::Timestamp;
use crate::token::EngineToken;

/// Longest wait between retries of a resource manager that is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What acting on a claimed engine concluded.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Apply `event`; `endpoint` and `error` go with it when set.
    Event {
        event: Event,
        endpoint: Option<String>,
        error: Option<String>,
    },
    /// Nothing changed; look again after the check interval.
    Unchanged,
    /// The resource manager could not be asked, or refused a step that must
    /// not be given up (a cleanup); retry with backoff.
    Retry(ResourceError),
}

impl Outcome {
    fn event(event: Event) -> Self {
        Self::Event {
            event,
            endpoint: None,
            error: None,
        }
    }

    fn failed(event: Event, reason: String) -> Self {
        Self::Event {
            event,
            endpoint: None,
            error: Some(reason),
        }
    }
}

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
}

impl Reconciler {
    pub(crate) async fn pass(&self, seen: EngineRecord) -> Pass {
        let Some(claimed) = self.claim(seen).await else {
            return Pass::ClaimLost;
        };
        let outcome = self.act(&claimed).await;
        self.release(claimed, outcome).await
    }

    async fn claim(&self, seen: EngineRecord) -> Option<EngineRecord> {
        let now = Timestamp::now();
        let Ok(Transition::To(state)) = transition(seen.state, Event::Claim) else {
            return None;
        };
        let takeover = seen.lease.as_ref().map(|lease| lease.owner.clone());
        if let Some(previous_owner) = &takeover {
            info!(%previous_owner, state = %seen.state, "taking over an expired lease");
        }
        let mut claimed = seen.clone();
        move_to(&mut claimed, state, now);
        if seen.state == EngineState::WaitToStart {
            // Each start gets its own secret, written with the claim so that
            // a monitor taking this start over creates the engine with the
            // same one (see `crate::token`).
            match EngineToken::generate() {
                Ok(token) => claimed.spec.token = Some(token),
                Err(err) => {
                    warn!(%err, "cannot start the engine without a token");
                    return None;
                }
            }
        }
        claimed.lease = Some(Lease {
            owner: self.config.owner.clone(),
            expires_at: now.plus(self.config.lease_duration),
        });
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

    async fn act(&self, engine: &EngineRecord) -> Outcome {
        let limit = self.config.action_timeout();
        match tokio::time::timeout(limit, self.act_unbounded(engine)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Retry(ResourceError::Unavailable(format!(
                "the resource manager did not answer within {limit:?}"
            ))),
        }
    }

    async fn act_unbounded(&self, engine: &EngineRecord) -> Outcome {
        let id = engine.id();
        match engine.state {
            EngineState::TriggerStart => match self.resources.create(&engine.spec).await {
                Ok(()) => Outcome::event(Event::ResourceCreated),
                Err(ResourceError::Rejected(reason)) => {
                    Outcome::failed(Event::CreateFailed, reason)
                }
                Err(err @ ResourceError::Unavailable(_)) => Outcome::Retry(err),
            },
            EngineState::StartInProgress | EngineState::Running => {
                match self.resources.status(id).await {
                    Ok(status) => self.judge_started(engine, status),
                    Err(err) => Outcome::Retry(err),
                }
            }
            EngineState::TriggerTermination | EngineState::ErrorTriggerClean => {
                match self.resources.delete(id).await {
                    Ok(()) => Outcome::event(Event::DeleteIssued),
                    Err(err) => Outcome::Retry(err),
                }
            }
            EngineState::TerminateInProgress | EngineState::ErrorCleanInProgress => {
                match self.resources.status(id).await {
                    Ok(ResourceStatus::Gone) => Outcome::event(Event::ResourceGone),
                    // The deletion is under way: asking again would only cost
                    // the platform a write per check.
                    Ok(ResourceStatus::Terminating) => Outcome::Unchanged,
                    // Still there and not going: deletion is idempotent, so
                    // ask again in case the first request was lost.
                    Ok(_) => match self.resources.delete(id).await {
                        Ok(()) => Outcome::Unchanged,
                        Err(err) => Outcome::Retry(err),
                    },
                    Err(err) => Outcome::Retry(err),
                }
            }
            // Claims never leave an engine in these states.
            EngineState::WaitToStart
            | EngineState::WaitToTerminate
            | EngineState::ErrorWaitToClean
            | EngineState::Terminated
            | EngineState::ErrorClean => Outcome::Unchanged,
        }
    }

    /// Turns a status of an engine that was started into an event.
    fn judge_started(&self, engine: &EngineRecord, status: ResourceStatus) -> Outcome {
        let starting = engine.state == EngineState::StartInProgress;
        match status {
            ResourceStatus::Running { endpoint } => {
                if !starting && engine.endpoint.as_deref() == Some(endpoint.as_str()) {
                    Outcome::Unchanged
                } else {
                    Outcome::Event {
                        event: Event::ResourceRunning,
                        endpoint: Some(endpoint),
                        error: None,
                    }
                }
            }
            ResourceStatus::Pending { reason } if starting => {
                let waited = Timestamp::now().since(engine.state_since);
                if waited >= self.config.start_deadline {
                    let late = format!(
                        "the engine did not become ready within the start deadline of {}",
                        humantime::format_duration(self.config.start_deadline)
                    );
                    let reason = match reason {
                        Some(last) => format!("{late}; last reason: {last}"),
                        None => late,
                    };
                    Outcome::failed(Event::StartTimedOut, reason)
                } else {
                    Outcome::Unchanged
                }
            }
            ResourceStatus::Pending { .. } => Outcome::event(Event::ResourceNotReady),
            ResourceStatus::Failed { reason } => Outcome::failed(Event::ResourceFailed, reason),
            ResourceStatus::Terminating => {
                let reason = if starting {
                    "the engine's resource is being deleted, before it was ready"
                } else {
                    "the engine's resource is being deleted, while it was running"
                };
                Outcome::failed(Event::ResourceFailed, reason.to_owned())
            }
            ResourceStatus::Gone => {
                let reason = if starting {
                    "the engine's resource disappeared before it was ready"
                } else {
                    "the engine's resource disappeared while it was running"
                };
                Outcome::failed(Event::ResourceGone, reason.to_owned())
            }
        }
    }

    async fn release(&self, claimed: EngineRecord, outcome: Outcome) -> Pass {
        let now = Timestamp::now();
        let mut next = claimed.clone();
        next.lease = None;
        let cleaning_up = claimed.state.is_cleaning_up();
        if cleaning_up && !matches!(outcome, Outcome::Retry(_)) {
            next.error = blocked::without_note(claimed.error.as_deref());
        }
        match outcome {
            Outcome::Event {
                event,
                endpoint,
                error,
            } => match transition(claimed.state, event) {
                Ok(Transition::To(state)) => {
                    move_to(&mut next, state, now);
                    if endpoint.is_some() {
                        next.endpoint = endpoint;
                    }
                    if let Some(reason) = error {
                        warn!(%state, %reason, "engine failed");
                        next.error = Some(reason);
                    }
                    if state == claimed.state {
                        next.next_action_at = Some(now.plus(self.config.check_interval));
                    }
                }
                // `act` only produces events its state allows; if that ever
                // breaks, drop the event rather than corrupt the engine.
                Ok(Transition::Removed) | Err(_) => {
                    warn!(state = %claimed.state, %event, "ignoring an event the state machine refuses");
                    next.next_action_at = Some(now.plus(self.config.check_interval));
                }
            },
            Outcome::Unchanged => next.next_action_at = Some(now.plus(self.config.check_interval)),
            Outcome::Retry(err) => {
                next.retries = claimed.retries.saturating_add(1);
                let delay = self.config.backoff(next.retries);
                match &err {
                    ResourceError::Unavailable(why) => {
                        warn!(%why, retry_in = ?delay, "resource manager unavailable");
                    }
                    ResourceError::Rejected(why) => {
                        warn!(%why, retry_in = ?delay, "resource manager refused; retrying");
                    }
                }
                if cleaning_up {
                    let remains = self.resources.describe(claimed.id());
                    let why = err.to_string();
                    next.error = Some(blocked::with_note(claimed.error.as_deref(), &why, &remains));
                }
                next.next_action_at = Some(now.plus(delay));
            }
        }
        match self.store.compare_and_swap(claimed.revision, &next).await {
            Ok(_) => {
                if next.state != claimed.state {
                    info!(from = %claimed.state, to = %next.state, "engine state changed");
                    if let Some(metrics) = &self.metrics {
                        metrics.transition(claimed.state, next.state, claimed.state_since, now);
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

/// Enters `state` if it differs, so that staying in a state (a claim or a
/// check of a watched state) keeps `state_since` and `update_time`.
fn move_to(record: &mut EngineRecord, state: EngineState, now: Timestamp) {
    if record.state != state {
        record.enter(state, now);
    }
}

impl MonitorConfig {
    /// Resource-manager calls must end well before the lease does, so that no
    /// other monitor takes over while this one still acts.
    pub(crate) fn action_timeout(&self) -> Duration {
        self.lease_duration.mul_f64(2.0 / 3.0)
    }

    pub(crate) fn backoff(&self, retries: u32) -> Duration {
        let factor = 2u32.saturating_pow(retries.saturating_sub(1).min(16));
        self.check_interval.saturating_mul(factor).min(MAX_BACKOFF)
    }
}
