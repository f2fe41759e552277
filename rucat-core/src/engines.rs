//! The user's operations on engines — create, get, list, stop, restart,
//! delete — as a library, so the REST server and any embedding application
//! share one implementation of the rules.
//!
//! Every change is a compare-and-swap on the record read just before it, so a
//! user action racing a monitor (or another user) never overwrites what it did
//! not see; on a conflict the action reads again and re-decides.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::engine::{EngineId, EngineRecord};
use crate::metrics::MonitorMetrics;
use crate::request::{CreateEngineRequest, ValidationError};
use crate::state::{EngineState, Event, Transition, transition};
use crate::store::{PageQuery, Store, StoreError};
use crate::time::Timestamp;

/// How often a user action re-reads and retries after losing a race before it
/// gives up with [`EngineError::Contended`].
const MAX_ATTEMPTS: usize = 16;

/// How often [`Engines::wait_for`] looks at the engine.
const WAIT_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationError),
    #[error("engine {0} not found")]
    NotFound(EngineId),
    /// The action is not allowed in the engine's current state.
    #[error("cannot {action} engine {id} in state {state}")]
    InvalidState {
        id: EngineId,
        action: Event,
        state: EngineState,
    },
    /// Lost the compare-and-swap race too many times in a row.
    #[error("engine {0} is changing too fast; try again")]
    Contended(EngineId),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(id) => Self::NotFound(id),
            other => Self::Store(other),
        }
    }
}

/// [`Engines::wait_for`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The engine did not get there in time; `last` is how it was then
    /// (its `error` often says why).
    #[error("engine {} is {}, not {wanted}, after {waited:?}", last.id(), last.state)]
    TimedOut {
        wanted: EngineState,
        waited: Duration,
        last: Box<EngineRecord>,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// User-facing engine operations over a [`Store`].
#[derive(Clone)]
pub struct Engines {
    store: Arc<dyn Store>,
    wake: Option<Arc<Notify>>,
    metrics: Option<Arc<MonitorMetrics>>,
}

impl Engines {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            wake: None,
            metrics: None,
        }
    }

    /// Also nudges an in-process monitor after every change, so it acts at
    /// once instead of at its next interval (see `Monitor::waker`). Only a
    /// store without a change feed needs this: rucat's stores report every
    /// write to their monitors themselves (see [`crate::change`]).
    pub fn with_waker(mut self, wake: Arc<Notify>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Records the transitions users make (stop, restart) into `metrics`,
    /// beside those monitors make (see [`crate::metrics`]).
    pub fn with_metrics(mut self, metrics: Arc<MonitorMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Validates and records a new engine in `WaitToStart`; a monitor starts it.
    pub async fn create(&self, request: CreateEngineRequest) -> Result<EngineId, EngineError> {
        let spec = request.validate()?;
        let record = EngineRecord::new(spec, Timestamp::now());
        self.store.insert(&record).await?;
        self.nudge();
        Ok(record.spec.id)
    }

    pub async fn get(&self, id: &EngineId) -> Result<EngineRecord, EngineError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(id.clone()))
    }

    pub async fn list(&self) -> Result<Vec<EngineRecord>, EngineError> {
        Ok(self.store.list().await?)
    }

    /// The ids of all engines, oldest first; much cheaper than [`Engines::list`].
    pub async fn list_ids(&self) -> Result<Vec<EngineId>, EngineError> {
        Ok(self.store.list_ids().await?)
    }

    /// One page of engine ids in id order, which is creation order (see
    /// [`PageQuery`]): what `GET /engines` lists. Unlike [`Engines::list_ids`]
    /// it reads at most `query.limit` engines, from the store's indexes.
    pub async fn page_ids(&self, query: &PageQuery) -> Result<Vec<EngineId>, EngineError> {
        Ok(self.store.page_ids(query).await?)
    }

    pub async fn stop(&self, id: &EngineId) -> Result<(), EngineError> {
        self.act(id, Event::Stop).await
    }

    pub async fn restart(&self, id: &EngineId) -> Result<(), EngineError> {
        self.act(id, Event::Restart).await
    }

    /// Forgets the engine. Allowed only where it holds no resources
    /// (`WaitToStart`, `Terminated`, `ErrorClean`): a running engine is stopped first.
    pub async fn delete(&self, id: &EngineId) -> Result<(), EngineError> {
        self.act(id, Event::Delete).await
    }

    /// Forgets an engine whose resources are being released (stopping, or
    /// on the error path) without waiting for the cleanup to finish: the way
    /// out when it cannot finish, e.g. the platform refuses the deletion.
    /// Returns the record as it was, whose `error` names what may remain (see
    /// [`crate::ResourceManager::describe`]), for the caller to log. Where
    /// nothing is held (`WaitToStart`, `Terminated`, `ErrorClean`) it is
    /// [`Self::delete`]; a starting or running engine must be stopped first.
    pub async fn force_delete(&self, id: &EngineId) -> Result<EngineRecord, EngineError> {
        for _ in 0..MAX_ATTEMPTS {
            let record = self.get(id).await?;
            if !record.state.is_cleaning_up() {
                transition(record.state, Event::Delete).map_err(|e| EngineError::InvalidState {
                    id: id.clone(),
                    action: Event::Delete,
                    state: e.state,
                })?;
            }
            match self.store.delete(id, record.revision).await {
                Ok(()) => {
                    self.nudge();
                    return Ok(record);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(EngineError::Contended(id.clone()))
    }

    /// Waits until the engine is in `state`, for applications that drive
    /// engines through the library rather than a UI that polls.
    pub async fn wait_for(
        &self,
        id: &EngineId,
        state: EngineState,
        timeout: Duration,
    ) -> Result<EngineRecord, WaitError> {
        let started = Instant::now();
        loop {
            let record = self.get(id).await?;
            if record.state == state {
                return Ok(record);
            }
            if started.elapsed() >= timeout {
                return Err(WaitError::TimedOut {
                    wanted: state,
                    waited: timeout,
                    last: Box::new(record),
                });
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    async fn act(&self, id: &EngineId, action: Event) -> Result<(), EngineError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut record = self.get(id).await?;
            let next = transition(record.state, action).map_err(|e| EngineError::InvalidState {
                id: id.clone(),
                action,
                state: e.state,
            })?;
            let written = match next {
                Transition::Removed => self.store.delete(id, record.revision).await,
                Transition::To(state) => {
                    let (revision, from, since) =
                        (record.revision, record.state, record.state_since);
                    let now = Timestamp::now();
                    record.enter(state, now);
                    // The user's decision supersedes a monitor's claim: the
                    // claimant's release will fail its compare-and-swap.
                    record.lease = None;
                    let written = self.store.compare_and_swap(revision, &record).await;
                    if let (Ok(_), Some(metrics)) = (&written, &self.metrics) {
                        metrics.transition(from, state, since, now);
                    }
                    written.map(drop)
                }
            };
            match written {
                Ok(()) => {
                    self.nudge();
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(EngineError::Contended(id.clone()))
    }

    fn nudge(&self) {
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn engines() -> Engines {
        Engines::new(Arc::new(MemoryStore::new()))
    }

    fn request(name: &str) -> CreateEngineRequest {
        CreateEngineRequest::spark(name, "4.3.0")
    }

    #[tokio::test]
    async fn create_records_a_waiting_engine() {
        let engines = engines();
        let id = engines.create(request("a")).await.unwrap();
        let record = engines.get(&id).await.unwrap();
        assert_eq!(record.state, EngineState::WaitToStart);
        assert_eq!(record.revision, 1);
        assert!(record.is_due(Timestamp::now()));
    }

    #[tokio::test]
    async fn invalid_requests_are_not_recorded() {
        let engines = engines();
        let err = engines.create(request("Bad Name")).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref v) if v.field == "name"),
            "{err:?}"
        );
        assert!(engines.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn actions_follow_the_state_machine() {
        let engines = engines();
        let id = engines.create(request("a")).await.unwrap();
        let err = engines.restart(&id).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::InvalidState {
                    state: EngineState::WaitToStart,
                    action: Event::Restart,
                    ..
                }
            ),
            "{err:?}"
        );
        engines.stop(&id).await.unwrap();
        let stopped = engines.get(&id).await.unwrap();
        assert_eq!(stopped.state, EngineState::Terminated);
        assert_eq!(stopped.next_action_at, None, "nothing for a monitor to do");
        engines.restart(&id).await.unwrap();
        assert_eq!(
            engines.get(&id).await.unwrap().state,
            EngineState::WaitToStart
        );
        engines.delete(&id).await.unwrap();
        assert!(matches!(
            engines.get(&id).await,
            Err(EngineError::NotFound(_))
        ));
        assert!(matches!(
            engines.stop(&id).await,
            Err(EngineError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_user_action_supersedes_a_monitor_lease() {
        let engines = engines();
        let id = engines.create(request("a")).await.unwrap();
        let mut running = engines.get(&id).await.unwrap();
        let revision = running.revision;
        running.enter(EngineState::Running, Timestamp::now());
        running.lease = Some(crate::engine::Lease {
            owner: "m".into(),
            expires_at: Timestamp::now().plus(std::time::Duration::from_secs(60)),
        });
        let claimed = engines
            .store()
            .compare_and_swap(revision, &running)
            .await
            .unwrap();
        engines.stop(&id).await.unwrap();
        let stopped = engines.get(&id).await.unwrap();
        assert_eq!(stopped.state, EngineState::WaitToTerminate);
        assert_eq!(stopped.lease, None);
        assert!(
            stopped.revision > claimed,
            "the monitor's release will be refused"
        );
    }

    #[tokio::test]
    async fn waiting_ends_with_the_last_state_seen() {
        let engines = engines();
        let id = engines.create(request("a")).await.unwrap();
        let err = engines
            .wait_for(&id, EngineState::Running, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(
            matches!(err, WaitError::TimedOut { ref last, .. } if last.state == EngineState::WaitToStart),
            "{err:?}"
        );
        let record = engines
            .wait_for(&id, EngineState::WaitToStart, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(record.id(), &id);
    }

    /// Moves the engine to `state` as a monitor would.
    async fn put(engines: &Engines, id: &EngineId, state: EngineState, error: Option<&str>) {
        let mut record = engines.get(id).await.unwrap();
        record.enter(state, Timestamp::now());
        record.error = error.map(str::to_owned);
        engines
            .store()
            .compare_and_swap(record.revision, &record)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn force_delete_forgets_an_engine_only_on_the_cleanup_path() {
        let engines = engines();
        let id = engines.create(request("a")).await.unwrap();
        put(&engines, &id, EngineState::Running, None).await;
        let err = engines.force_delete(&id).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::InvalidState {
                    state: EngineState::Running,
                    ..
                }
            ),
            "{err:?}"
        );

        let blocked =
            "cleanup blocked, retrying: forbidden; until it succeeds, these may remain: pod p";
        put(&engines, &id, EngineState::ErrorTriggerClean, Some(blocked)).await;
        assert!(
            engines.delete(&id).await.is_err(),
            "a plain delete still waits for the cleanup"
        );
        let removed = engines.force_delete(&id).await.unwrap();
        assert_eq!(removed.state, EngineState::ErrorTriggerClean);
        assert_eq!(removed.error.as_deref(), Some(blocked));
        assert!(matches!(
            engines.get(&id).await,
            Err(EngineError::NotFound(_))
        ));

        let at_rest = engines.create(request("b")).await.unwrap();
        engines.force_delete(&at_rest).await.unwrap();
        assert!(engines.get(&at_rest).await.is_err());
    }

    #[tokio::test]
    async fn concurrent_stops_apply_once() {
        let engines = engines();
        let id = engines.create(request("a")).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (engines, id) = (engines.clone(), id.clone());
                tokio::spawn(async move { engines.stop(&id).await })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => ok += 1,
                Err(EngineError::InvalidState {
                    state: EngineState::Terminated,
                    ..
                }) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(ok, 1);
    }
}
