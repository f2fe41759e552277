//! The user's operations on engines — create, get, list, stop, restart,
//! delete, share — as a library, so the REST server, the Spark Connect
//! gateway and any embedding application share one implementation of the
//! rules.
//!
//! Every change is a compare-and-swap on the record read just before it, so a
//! user action racing a monitor (or another user) never overwrites what it did
//! not see; on a conflict the action reads again and re-decides.
//!
//! Each operation comes twice: `…_as(&Identity, …)` for a caller the server
//! authenticated, which sees and acts only on what [`Identity::may_see`]
//! allows (anything else is [`EngineError::NotFound`], exactly like a
//! missing engine, so ids do not leak) and is held to its [`Quotas`]; and
//! the identity-less original, for embedding applications, which acts as
//! the application itself: every engine, no quota. Both run the same code.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::engine::{EngineId, EngineRecord};
use crate::identity::Identity;
use crate::idle::{IdlePolicy, StopReason};
use crate::logs::{LogArchive, Tombstone};
use crate::metrics::MonitorMetrics;
use crate::quota::{Limits, QuotaExceeded, Quotas, counts_as_running};
use crate::request::{CreateEngineRequest, ValidationError, validate_groups};
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
    /// No such engine, or none the caller may see: the two are told apart
    /// to no one, so a user cannot probe for other users' ids.
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
    /// The caller may see the engine (it is shared with a group of theirs)
    /// but not do this to it, which only its owner or an admin may.
    #[error("only the owner of engine {id} or an admin may {action} it")]
    Forbidden { id: EngineId, action: &'static str },
    /// An idle timeout for an engine whose use rucat cannot see (clients
    /// reach it directly, not through the gateway).
    #[error(
        "engine {0} is reached directly, not through rucat's gateway, so rucat cannot see whether it is in use: its idle_timeout_secs stays 0"
    )]
    NotIdleTracked(EngineId),
    /// The write would take the engine's owner past a quota; nothing changed.
    #[error(transparent)]
    QuotaExceeded(QuotaExceeded),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(id) => Self::NotFound(id),
            StoreError::QuotaExceeded(exceeded) => Self::QuotaExceeded(exceeded),
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

/// Who an operation acts for.
#[derive(Clone, Copy)]
enum Caller<'a> {
    /// The embedding application (the identity-less methods): sees every
    /// engine and has no quota, as before rucat knew users.
    System,
    As(&'a Identity),
}

impl<'a> Caller<'a> {
    fn may_see(self, record: &EngineRecord) -> bool {
        match self {
            Self::System => true,
            Self::As(who) => who.may_see(record),
        }
    }

    /// Who stopped an engine, as its stop reason names them.
    fn name(self) -> Option<&'a str> {
        match self {
            Self::System => None,
            Self::As(who) => Some(&who.name),
        }
    }

    fn may_share(self, record: &EngineRecord) -> bool {
        match self {
            Self::System => true,
            Self::As(who) => who.may_share(record),
        }
    }
}

/// The write an operation decided on, for [`Engines::retrying`].
enum Write {
    Delete,
    /// Replace the record, held to the limits if given.
    Replace(Box<EngineRecord>, Option<Limits>),
}

/// What [`Engines::update_as`] changes; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineChanges {
    pub share_with_groups: Option<Vec<String>>,
    pub idle_timeout_secs: Option<u64>,
    pub auto_resume: Option<bool>,
}

/// User-facing engine operations over a [`Store`].
#[derive(Clone)]
pub struct Engines {
    store: Arc<dyn Store>,
    wake: Option<Arc<Notify>>,
    metrics: Option<Arc<MonitorMetrics>>,
    quotas: Arc<Quotas>,
    idle: IdlePolicy,
    logs: Option<Arc<dyn LogArchive>>,
}

impl Engines {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            wake: None,
            metrics: None,
            quotas: Arc::default(),
            idle: IdlePolicy::default(),
            logs: None,
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

    /// Holds the `_as` operations to `quotas` (none by default): creating
    /// counts against the creator's `max_engines` and `max_running`, a
    /// restart against the owner's `max_running`, each checked by the store
    /// in the same atomic step as the write.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = Arc::new(quotas);
        self
    }

    /// Gives new engines idle timeouts under `policy` (by default they
    /// have none: see [`crate::idle`]).
    pub fn with_idle_policy(mut self, policy: IdlePolicy) -> Self {
        self.idle = policy;
        self
    }

    /// Tells `archive` of every engine deleted here, so that it keeps the
    /// engine's logs for its retention time and then removes them (see
    /// [`crate::logs`]).
    pub fn with_log_archive(mut self, archive: Arc<dyn LogArchive>) -> Self {
        self.logs = Some(archive);
        self
    }

    pub fn idle_policy(&self) -> &IdlePolicy {
        &self.idle
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Validates and records a new engine in `WaitToStart`; a monitor starts
    /// it. The engine has no owner, so only admins see it through the API.
    pub async fn create(&self, request: CreateEngineRequest) -> Result<EngineId, EngineError> {
        self.create_for(Caller::System, request).await
    }

    /// [`Self::create`] for `who`, who becomes the engine's owner, shared
    /// with the request's `share_with_groups`; refused with
    /// [`EngineError::QuotaExceeded`] if `who` is at a limit.
    pub async fn create_as(
        &self,
        who: &Identity,
        request: CreateEngineRequest,
    ) -> Result<EngineId, EngineError> {
        self.create_for(Caller::As(who), request).await
    }

    async fn create_for(
        &self,
        who: Caller<'_>,
        request: CreateEngineRequest,
    ) -> Result<EngineId, EngineError> {
        let (requested_idle, auto_resume) = (request.idle_timeout_secs, request.auto_resume);
        let (spec, groups) = request.validate_with_groups()?;
        let idle_timeout_secs = self
            .idle
            .resolve(requested_idle, spec.served_by_gateway())?;
        let mut record = EngineRecord::new(spec, Timestamp::now());
        record.share_with_groups = groups;
        record.idle_timeout_secs = idle_timeout_secs;
        record.auto_resume = auto_resume;
        match who {
            Caller::System => self.store.insert(&record).await?,
            Caller::As(who) => {
                record.owner = Some(who.name.clone());
                let limits = self.quotas.limits_for(who);
                self.store.insert_within(&record, &limits).await?;
            }
        }
        self.nudge();
        Ok(record.spec.id)
    }

    pub async fn get(&self, id: &EngineId) -> Result<EngineRecord, EngineError> {
        self.visible(Caller::System, id).await
    }

    /// The engine, if `who` may see it; [`EngineError::NotFound`] otherwise.
    pub async fn get_as(&self, who: &Identity, id: &EngineId) -> Result<EngineRecord, EngineError> {
        self.visible(Caller::As(who), id).await
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

    /// [`Self::page_ids`] of the engines `who` may see: `query` as given
    /// (with its `owner` filter, an admin's `?owner=`), narrowed to `who`'s
    /// visibility whatever `query.visible_to` says.
    pub async fn page_ids_as(
        &self,
        who: &Identity,
        query: &PageQuery,
    ) -> Result<Vec<EngineId>, EngineError> {
        let query = PageQuery {
            visible_to: who.visibility(),
            ..query.clone()
        };
        Ok(self.store.page_ids(&query).await?)
    }

    pub async fn stop(&self, id: &EngineId) -> Result<(), EngineError> {
        self.act(Caller::System, id, Event::Stop).await
    }

    pub async fn stop_as(&self, who: &Identity, id: &EngineId) -> Result<(), EngineError> {
        self.act(Caller::As(who), id, Event::Stop).await
    }

    pub async fn restart(&self, id: &EngineId) -> Result<(), EngineError> {
        self.act(Caller::System, id, Event::Restart).await
    }

    /// [`Self::restart`] as `who`. A restart makes the engine count as
    /// running again, so it is held to its owner's `max_running`: `who`'s
    /// own limits when `who` owns it; when someone else does (an admin, a
    /// member of a group it is shared with), the owner's limits as known
    /// from the name alone (their user override or the default: the
    /// owner's groups are not known while someone else acts). An engine
    /// without an owner has no quota.
    pub async fn restart_as(&self, who: &Identity, id: &EngineId) -> Result<(), EngineError> {
        self.act(Caller::As(who), id, Event::Restart).await
    }

    /// Forgets the engine. Allowed only where it holds no resources
    /// (`WaitToStart`, `Terminated`, `ErrorClean`): a running engine is stopped first.
    pub async fn delete(&self, id: &EngineId) -> Result<(), EngineError> {
        self.remove_for(Caller::System, id, false).await.map(drop)
    }

    pub async fn delete_as(&self, who: &Identity, id: &EngineId) -> Result<(), EngineError> {
        self.remove_for(Caller::As(who), id, false).await.map(drop)
    }

    /// Starts the deleted engine's logs' retention time. A failure leaves
    /// them in the archive (the deletion stands), so it is only logged.
    async fn logs_deleted(&self, record: &EngineRecord) {
        if let Some(archive) = &self.logs {
            let tombstone = Tombstone::of(record, Timestamp::now());
            if let Err(err) = archive.engine_deleted(record.id(), &tombstone).await {
                tracing::warn!(engine = %record.id(), %err, "cannot record the deletion in the log archive; its logs stay until removed by hand");
            }
        }
    }

    /// Forgets an engine whose resources are being released (stopping, or
    /// on the error path) without waiting for the cleanup to finish: the way
    /// out when it cannot finish, e.g. the platform refuses the deletion.
    /// Returns the record as it was, whose `error` names what may remain (see
    /// [`crate::ResourceManager::describe`]), for the caller to log. Where
    /// nothing is held (`WaitToStart`, `Terminated`, `ErrorClean`) it is
    /// [`Self::delete`]; a starting or running engine must be stopped first.
    pub async fn force_delete(&self, id: &EngineId) -> Result<EngineRecord, EngineError> {
        self.remove_for(Caller::System, id, true).await
    }

    pub async fn force_delete_as(
        &self,
        who: &Identity,
        id: &EngineId,
    ) -> Result<EngineRecord, EngineError> {
        self.remove_for(Caller::As(who), id, true).await
    }

    /// Removes the engine's record where DELETE is allowed (or, with
    /// `force`, also while its resources are being released) and returns it
    /// as it was: the record removed, read in the same compare-and-swap
    /// loop, is what the log archive's tombstone records (who owned the
    /// engine decides who may read its logs once it is gone).
    async fn remove_for(
        &self,
        who: Caller<'_>,
        id: &EngineId,
        force: bool,
    ) -> Result<EngineRecord, EngineError> {
        let removed = self
            .retrying(who, id, |record| {
                // DELETE's only transition is the removal.
                if !(force && record.state.is_cleaning_up()) {
                    allowed(record, Event::Delete)?;
                }
                Ok((Some(Write::Delete), record.clone()))
            })
            .await?;
        self.logs_deleted(&removed).await;
        Ok(removed)
    }

    /// Replaces the groups the engine is shared with (validated as a create
    /// request's `share_with_groups`): [`Self::update_as`] with only that.
    pub async fn share_as(
        &self,
        who: &Identity,
        id: &EngineId,
        groups: BTreeSet<String>,
    ) -> Result<(), EngineError> {
        let changes = EngineChanges {
            share_with_groups: Some(groups.into_iter().collect()),
            ..EngineChanges::default()
        };
        self.update_as(who, id, changes).await
    }

    /// Changes what may change after creation: whom the engine is shared
    /// with, its idle timeout (under this server's idle policy, as at
    /// creation; a Running engine is rescheduled for its new deadline) and
    /// whether it resumes whatever stopped it. Only its owner or an admin
    /// may: a member of a group it is shared with gets
    /// [`EngineError::Forbidden`], anyone else [`EngineError::NotFound`].
    /// Any state; asking for what it already has writes nothing.
    pub async fn update_as(
        &self,
        who: &Identity,
        id: &EngineId,
        changes: EngineChanges,
    ) -> Result<(), EngineError> {
        let groups = changes
            .share_with_groups
            .as_deref()
            .map(validate_groups)
            .transpose()?;
        let who = Caller::As(who);
        self.retrying(who, id, |record| {
            if !who.may_share(record) {
                return Err(EngineError::Forbidden {
                    id: id.clone(),
                    action: "change",
                });
            }
            let mut next = record.clone();
            if let Some(groups) = &groups {
                next.share_with_groups = groups.clone();
            }
            if let Some(secs) = changes.idle_timeout_secs {
                if secs > 0 && !record.spec.served_by_gateway() {
                    return Err(EngineError::NotIdleTracked(id.clone()));
                }
                next.idle_timeout_secs = self.idle.resolve(Some(secs), true)?;
                if next.state == EngineState::Running && next.lease.is_none() {
                    next.next_action_at = crate::idle::idle_deadline(&next);
                }
            }
            if let Some(auto_resume) = changes.auto_resume {
                next.auto_resume = auto_resume;
            }
            if next == *record {
                return Ok((None, ()));
            }
            next.update_time = Timestamp::now();
            Ok((Some(Write::Replace(Box::new(next), None)), ()))
        })
        .await
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

    /// The engine, if `who` may see it: an engine they may not see is
    /// missing, to them.
    async fn visible(&self, who: Caller<'_>, id: &EngineId) -> Result<EngineRecord, EngineError> {
        match self.store.get(id).await? {
            Some(record) if who.may_see(&record) => Ok(record),
            _ => Err(EngineError::NotFound(id.clone())),
        }
    }

    /// A user action (stop, restart, delete) as the state machine allows it.
    async fn act(&self, who: Caller<'_>, id: &EngineId, action: Event) -> Result<(), EngineError> {
        let moved = self
            .retrying(who, id, |record| {
                let state = match allowed(record, action)? {
                    Transition::Removed => return Ok((Some(Write::Delete), None)),
                    Transition::To(state) => state,
                };
                let now = Timestamp::now();
                let mut next = record.clone();
                next.enter(state, now);
                if action == Event::Stop {
                    next.stop_reason = Some(StopReason::User {
                        name: who.name().map(str::to_owned),
                    });
                }
                // The user's decision supersedes a monitor's claim: the
                // claimant's release will fail its compare-and-swap.
                next.lease = None;
                let starts = counts_as_running(state) && !counts_as_running(record.state);
                let limits = starts.then(|| self.limits_of_owner(who, record)).flatten();
                let moved = (record.state, state, record.state_since, now);
                Ok((Some(Write::Replace(Box::new(next), limits)), Some(moved)))
            })
            .await?;
        if let (Some((from, to, since, now)), Some(metrics)) = (moved, &self.metrics) {
            metrics.transition(from, to, since, now);
        }
        Ok(())
    }

    /// The limits a write that makes `record` count as running is held to:
    /// its owner's (see [`Self::restart_as`]); `None` where none apply.
    fn limits_of_owner(&self, who: Caller<'_>, record: &EngineRecord) -> Option<Limits> {
        let (Caller::As(who), Some(owner)) = (who, record.owner.as_deref()) else {
            return None;
        };
        let limits = if who.name == owner {
            self.quotas.limits_for(who)
        } else {
            self.quotas
                .limits_for(&Identity::user(owner, Vec::<String>::new()))
        };
        (!limits.is_unlimited()).then_some(limits)
    }

    /// The one retry loop of every change: reads the engine as `who` may
    /// see it, lets `decide` choose a write (or none) and what to return,
    /// and does the write as a compare-and-swap on the revision read; on a
    /// lost race, reads again and decides again, at most
    /// [`MAX_ATTEMPTS`] times.
    async fn retrying<T>(
        &self,
        who: Caller<'_>,
        id: &EngineId,
        mut decide: impl FnMut(&EngineRecord) -> Result<(Option<Write>, T), EngineError>,
    ) -> Result<T, EngineError> {
        for _ in 0..MAX_ATTEMPTS {
            let record = self.visible(who, id).await?;
            let (write, out) = decide(&record)?;
            let written = match write {
                None => return Ok(out),
                Some(Write::Delete) => self.store.delete(id, record.revision).await,
                Some(Write::Replace(next, None)) => self
                    .store
                    .compare_and_swap(record.revision, &next)
                    .await
                    .map(drop),
                Some(Write::Replace(next, Some(limits))) => self
                    .store
                    .compare_and_swap_within(record.revision, &next, &limits)
                    .await
                    .map(drop),
            };
            match written {
                Ok(()) => {
                    self.nudge();
                    return Ok(out);
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

/// Where `action` takes `record`, if the state machine allows it there.
fn allowed(record: &EngineRecord, action: Event) -> Result<Transition, EngineError> {
    transition(record.state, action).map_err(|e| EngineError::InvalidState {
        id: record.id().clone(),
        action,
        state: e.state,
    })
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
    async fn idle_timeouts_come_from_the_policy_and_stops_say_who() {
        let policy = IdlePolicy {
            default_timeout: Duration::from_secs(1800),
            max_timeout: Some(Duration::from_secs(3600)),
            activity_interval: Duration::from_secs(10),
        };
        let engines = engines().with_idle_policy(policy);
        let id = engines.create(request("a")).await.unwrap();
        assert_eq!(engines.get(&id).await.unwrap().idle_timeout_secs, 1800);
        let mut asked = request("b").idle_after(600);
        asked.auto_resume = true;
        let id = engines.create(asked).await.unwrap();
        let record = engines.get(&id).await.unwrap();
        assert_eq!((record.idle_timeout_secs, record.auto_resume), (600, true));
        let err = engines
            .create(request("c").idle_after(7200))
            .await
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref v) if v.field == "idle_timeout_secs"),
            "{err:?}"
        );
        // Spark 3.5 is reached directly: never idle-tracked.
        let old = engines
            .create(CreateEngineRequest::spark("d", "3.5.3"))
            .await
            .unwrap();
        assert_eq!(engines.get(&old).await.unwrap().idle_timeout_secs, 0);

        let alice = Identity::user("alice", Vec::<String>::new());
        let owned = engines.create_as(&alice, request("e")).await.unwrap();
        engines.stop_as(&alice, &owned).await.unwrap();
        let stopped = engines.get(&owned).await.unwrap();
        assert_eq!(
            stopped.stop_reason,
            Some(StopReason::User {
                name: Some("alice".into())
            })
        );
        assert_eq!(
            crate::EngineInfo::from(&stopped).stopped_reason.as_deref(),
            Some("stopped by alice")
        );
        // Kept while it starts again, but no longer shown.
        engines.restart(&owned).await.unwrap();
        let restarted = engines.get(&owned).await.unwrap();
        assert!(restarted.stop_reason.is_some());
        assert_eq!(crate::EngineInfo::from(&restarted).stopped_reason, None);
    }

    #[tokio::test]
    async fn owners_change_idle_settings_and_running_engines_are_rescheduled() {
        let policy = IdlePolicy {
            default_timeout: Duration::from_secs(1800),
            max_timeout: Some(Duration::from_secs(3600)),
            activity_interval: Duration::from_secs(10),
        };
        let engines = engines().with_idle_policy(policy);
        let alice = Identity::user("alice", ["data"]);
        let bob = Identity::user("bob", ["data"]);
        let id = engines
            .create_as(&alice, request("a").shared_with("data"))
            .await
            .unwrap();
        let mut running = engines.get(&id).await.unwrap();
        running.enter(EngineState::Running, Timestamp::now());
        running.next_action_at = crate::idle::idle_deadline(&running);
        engines
            .store()
            .compare_and_swap(running.revision, &running)
            .await
            .unwrap();
        let change = EngineChanges {
            idle_timeout_secs: Some(600),
            auto_resume: Some(true),
            ..EngineChanges::default()
        };
        engines
            .update_as(&alice, &id, change.clone())
            .await
            .unwrap();
        let changed = engines.get(&id).await.unwrap();
        assert_eq!(
            (changed.idle_timeout_secs, changed.auto_resume),
            (600, true)
        );
        assert_eq!(changed.next_action_at, crate::idle::idle_deadline(&changed));
        assert!(changed.next_action_at < running.next_action_at, "sooner");
        // The same again writes nothing; a member may not; the policy holds.
        engines
            .update_as(&alice, &id, change.clone())
            .await
            .unwrap();
        assert_eq!(engines.get(&id).await.unwrap().revision, changed.revision);
        assert!(matches!(
            engines.update_as(&bob, &id, change).await,
            Err(EngineError::Forbidden { .. })
        ));
        let too_long = EngineChanges {
            idle_timeout_secs: Some(7200),
            ..EngineChanges::default()
        };
        let err = engines.update_as(&alice, &id, too_long).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref v) if v.field == "idle_timeout_secs"),
            "{err:?}"
        );
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

    /// The identities of the who-may-do-what matrix: an admin, the owner,
    /// a member of the group the shared engine is shared with, and another
    /// user.
    fn cast() -> [(&'static str, Identity); 4] {
        [
            ("admin", Identity::admin("root")),
            ("owner", Identity::user("alice", ["data"])),
            ("member", Identity::user("bob", ["data", "ml"])),
            ("other", Identity::user("carol", ["ops"])),
        ]
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        /// Alice's, shared with nobody.
        Own,
        /// Alice's, shared with `data`.
        Shared,
        /// Created without an identity: no owner.
        Legacy,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Outcome {
        Done,
        NotFound,
        Forbidden,
    }

    fn outcome<T: std::fmt::Debug>(id: &EngineId, result: Result<T, EngineError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Done,
            Err(EngineError::NotFound(ref missing)) => {
                assert_eq!(missing, id);
                // Word for word what a missing engine gets.
                let err = result.unwrap_err().to_string();
                assert_eq!(err, EngineError::NotFound(id.clone()).to_string());
                Outcome::NotFound
            }
            Err(EngineError::Forbidden { .. }) => Outcome::Forbidden,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    /// A fresh engine of `kind`, in `state` (Terminated by a stop).
    async fn fresh(engines: &Engines, kind: Kind, stopped: bool) -> EngineId {
        let alice = Identity::user("alice", ["data"]);
        let id = match kind {
            Kind::Own => engines.create_as(&alice, request("own")).await,
            Kind::Shared => {
                let shared = request("shared").shared_with("data");
                engines.create_as(&alice, shared).await
            }
            Kind::Legacy => engines.create(request("legacy")).await,
        }
        .unwrap();
        if stopped {
            engines.stop(&id).await.unwrap();
        }
        id
    }

    #[tokio::test]
    async fn who_may_do_what() {
        let engines = engines();
        for (role, who) in cast() {
            for kind in [Kind::Own, Kind::Shared, Kind::Legacy] {
                let sees = match role {
                    "admin" => true,
                    "owner" => kind != Kind::Legacy,
                    "member" => kind == Kind::Shared,
                    _ => false,
                };
                let acts = if sees {
                    Outcome::Done
                } else {
                    Outcome::NotFound
                };
                let shares = match role {
                    "admin" => Outcome::Done,
                    "owner" if kind != Kind::Legacy => Outcome::Done,
                    _ if sees => Outcome::Forbidden,
                    _ => Outcome::NotFound,
                };
                let case = format!("{role} on {kind:?}");
                let id = fresh(&engines, kind, false).await;
                assert_eq!(
                    outcome(&id, engines.get_as(&who, &id).await),
                    acts,
                    "get: {case}"
                );
                let listed = engines
                    .page_ids_as(&who, &PageQuery::first(1000))
                    .await
                    .unwrap()
                    .contains(&id);
                assert_eq!(listed, sees, "list: {case}");
                let groups = BTreeSet::from(["ml".to_owned()]);
                assert_eq!(
                    outcome(&id, engines.share_as(&who, &id, groups).await),
                    shares,
                    "share: {case}"
                );
                assert_eq!(
                    outcome(&id, engines.stop_as(&who, &id).await),
                    acts,
                    "stop: {case}"
                );

                let id = fresh(&engines, kind, true).await;
                let restarted = engines.restart_as(&who, &id).await;
                assert_eq!(outcome(&id, restarted), acts, "restart: {case}");
                let id = fresh(&engines, kind, false).await;
                assert_eq!(
                    outcome(&id, engines.delete_as(&who, &id).await),
                    acts,
                    "delete: {case}"
                );
                let id = fresh(&engines, kind, false).await;
                let removed = engines.force_delete_as(&who, &id).await;
                assert_eq!(outcome(&id, removed), acts, "force delete: {case}");
            }
        }
        // What those who may not see an engine get is what a missing one gets.
        let ghost = EngineId::generate();
        let (_, carol) = &cast()[3];
        assert_eq!(
            outcome(&ghost, engines.get_as(carol, &ghost).await),
            Outcome::NotFound
        );
    }

    #[tokio::test]
    async fn created_engines_record_owner_and_groups() {
        let engines = engines();
        let alice = Identity::user("alice", ["data"]);
        let asked = request("a").shared_with("ml").shared_with("data");
        let id = engines.create_as(&alice, asked).await.unwrap();
        let record = engines.get_as(&alice, &id).await.unwrap();
        assert_eq!(record.owner.as_deref(), Some("alice"));
        let info = crate::EngineInfo::from(&record);
        assert_eq!(info.owner.as_deref(), Some("alice"));
        assert_eq!(
            info.share_with_groups.into_iter().collect::<Vec<_>>(),
            ["data", "ml"]
        );
        let legacy = engines.create(request("b")).await.unwrap();
        assert_eq!(engines.get(&legacy).await.unwrap().owner, None);

        let bad = request("c").shared_with("has space");
        let err = engines.create_as(&alice, bad).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref v) if v.field == "share_with_groups[0]"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn sharing_changes_who_sees_the_engine_and_nothing_else() {
        let engines = engines();
        let alice = Identity::user("alice", Vec::<String>::new());
        let bob = Identity::user("bob", ["ml"]);
        let id = engines.create_as(&alice, request("a")).await.unwrap();
        assert!(matches!(
            engines.get_as(&bob, &id).await,
            Err(EngineError::NotFound(_))
        ));
        let before = engines.get(&id).await.unwrap();
        engines
            .share_as(&alice, &id, BTreeSet::from(["ml".to_owned()]))
            .await
            .unwrap();
        let shared = engines.get_as(&bob, &id).await.unwrap();
        assert_eq!(shared.revision, before.revision + 1);
        assert_eq!(
            (shared.state, &shared.spec, &shared.owner),
            (before.state, &before.spec, &before.owner)
        );
        // The same groups again: nothing to write.
        engines
            .share_as(&alice, &id, BTreeSet::from(["ml".to_owned()]))
            .await
            .unwrap();
        assert_eq!(engines.get(&id).await.unwrap().revision, shared.revision);
        // Bob sees it but may not share it further.
        let err = engines
            .share_as(
                &bob,
                &id,
                BTreeSet::from(["ml".to_owned(), "ops".to_owned()]),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::Forbidden {
                    action: "change",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("only the owner"), "{err}");
        let err = engines
            .share_as(&alice, &id, BTreeSet::from([" ".to_owned()]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref v) if v.field == "share_with_groups[0]"),
            "{err:?}"
        );
        engines
            .share_as(&alice, &id, BTreeSet::new())
            .await
            .unwrap();
        assert!(engines.get_as(&bob, &id).await.is_err());
    }

    #[tokio::test]
    async fn pages_list_what_the_caller_may_see_and_admins_filter_by_owner() {
        let engines = engines();
        let alice = Identity::user("alice", ["data"]);
        let bob = Identity::user("bob", ["data"]);
        let admin = Identity::admin("root");
        let a = engines.create_as(&alice, request("a")).await.unwrap();
        let shared = request("s").shared_with("data");
        let s = engines.create_as(&alice, shared).await.unwrap();
        let b = engines.create_as(&bob, request("b")).await.unwrap();
        let legacy = engines.create(request("l")).await.unwrap();
        let page = |who: &Identity, owner: Option<&str>| {
            let (engines, who) = (engines.clone(), who.clone());
            let query = PageQuery {
                owner: owner.map(str::to_owned),
                // Ignored: the caller's own visibility applies.
                visible_to: Identity::admin("x").visibility(),
                ..PageQuery::first(100)
            };
            async move { engines.page_ids_as(&who, &query).await.unwrap() }
        };
        assert_eq!(
            page(&admin, None).await,
            [a.clone(), s.clone(), b.clone(), legacy]
        );
        assert_eq!(page(&admin, Some("alice")).await, [a.clone(), s.clone()]);
        assert_eq!(page(&alice, None).await, [a.clone(), s.clone()]);
        assert_eq!(page(&bob, None).await, [s.clone(), b.clone()]);
        assert_eq!(page(&bob, Some("alice")).await, [s]);
        assert!(
            page(&Identity::user("carol", ["ops"]), None)
                .await
                .is_empty()
        );
    }

    fn quotas(json: &str) -> Quotas {
        serde_json::from_str(json).unwrap()
    }

    #[tokio::test]
    async fn creates_and_restarts_are_held_to_the_owners_quotas() {
        let engines = engines().with_quotas(quotas(
            r#"{"default": {"max_engines": 3, "max_running": 1},
                "groups": {"big": {"max_running": 5}}}"#,
        ));
        let alice = Identity::user("alice", ["data"]);
        let bob = Identity::user("bob", ["data"]);
        let admin = Identity::admin("root");
        let first = engines
            .create_as(&alice, request("a").shared_with("data"))
            .await
            .unwrap();
        // A new engine starts, so it counts as running too.
        let err = engines.create_as(&alice, request("b")).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::QuotaExceeded(QuotaExceeded {
                    quota: crate::quota::QuotaKind::MaxRunning,
                    count: 1,
                    limit: 1
                })
            ),
            "{err:?}"
        );
        engines.stop_as(&alice, &first).await.unwrap();
        let shared = request("c").shared_with("data");
        let second = engines.create_as(&alice, shared).await.unwrap();
        // Restarting the first while the second starts: over max_running,
        // for the owner, a group member and an admin alike.
        for who in [&alice, &bob, &admin] {
            let err = engines.restart_as(who, &first).await.unwrap_err();
            assert!(
                matches!(err, EngineError::QuotaExceeded(_)),
                "{who}: {err:?}"
            );
        }
        assert_eq!(
            engines.get(&first).await.unwrap().state,
            EngineState::Terminated,
            "a refused restart changes nothing"
        );
        // Stopping never is refused; then the restart fits.
        engines.stop_as(&bob, &second).await.unwrap();
        engines.restart_as(&bob, &first).await.unwrap();
        // max_engines: a third engine, then no fourth.
        engines.stop_as(&alice, &first).await.unwrap();
        engines.create_as(&alice, request("d")).await.unwrap();
        let err = engines.create_as(&alice, request("e")).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::QuotaExceeded(QuotaExceeded {
                    quota: crate::quota::QuotaKind::MaxEngines,
                    count: 3,
                    limit: 3
                })
            ),
            "{err:?}"
        );
        // Bob's engines are counted apart; the identity-less create has no quota.
        engines.create_as(&bob, request("f")).await.unwrap();
        for name in ["g", "h", "i", "j"] {
            engines.create(request(name)).await.unwrap();
        }
        // A group override raises the owner's own limit; another acting
        // for the owner knows only the owner's name, so the default applies.
        let carol = Identity::user("carol", ["big"]);
        let c1 = engines.create_as(&carol, request("c1")).await.unwrap();
        let c2 = engines.create_as(&carol, request("c2")).await.unwrap();
        engines.stop_as(&carol, &c2).await.unwrap();
        let err = engines.restart_as(&admin, &c2).await.unwrap_err();
        assert!(matches!(err, EngineError::QuotaExceeded(_)), "{err:?}");
        engines.restart_as(&carol, &c2).await.unwrap();
        engines.stop_as(&carol, &c1).await.unwrap();
    }
}
