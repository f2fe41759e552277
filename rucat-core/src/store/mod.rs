//! Where engines are recorded, shared by every server and monitor.
//!
//! A store is deliberately dumb: it keeps [`EngineRecord`]s and offers one
//! write primitive, a compare-and-swap on the record's `revision`. All lifecycle
//! logic lives above it, so a new backend only has to get that primitive right;
//! [`conformance`] checks that it does.

use async_trait::async_trait;

use crate::change::ChangeSink;
use crate::engine::{EngineId, EngineRecord};
use crate::identity::Visibility;
use crate::quota::{Limits, QuotaExceeded, Usage, counts_as_running};
use crate::state::EngineState;
use crate::time::Timestamp;

mod memory;
pub use memory::MemoryStore;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
mod unreachable;
#[cfg(any(test, feature = "conformance"))]
pub use unreachable::{UNREACHABLE_REASON, Unreachable};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record changed since it was read: someone else wrote first. Read
    /// again and decide again; never overwrite.
    #[error("engine {0} was changed concurrently")]
    Conflict(EngineId),
    #[error("engine {0} not found")]
    NotFound(EngineId),
    #[error("engine {0} already exists")]
    AlreadyExists(EngineId),
    /// The backend cannot be reached or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back as an engine.
    #[error("stored engine {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
    /// A quota-checked write ([`Store::insert_within`],
    /// [`Store::compare_and_swap_within`]) would take its owner past a
    /// limit; nothing was written.
    #[error(transparent)]
    QuotaExceeded(QuotaExceeded),
}

/// Which engines a page holds: `GET /engines` and the monitor's resync read pages.
///
/// Pages are in id order. Ids are UUIDv7 hex, so id order is creation order,
/// and a walk that passes each page's last id as the next page's `after`
/// (keyset pagination on the primary key) lists every engine that exists
/// for the whole walk exactly once, whatever is created or deleted meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageQuery {
    /// Only engines whose id sorts after this one: the last id of the previous page.
    pub after: Option<EngineId>,
    /// At most this many.
    pub limit: usize,
    /// Only engines in one of these states; empty means every state.
    pub states: Vec<EngineState>,
    /// Only engines this non-admin may see: theirs and those shared with
    /// one of their groups (see [`crate::Identity::visibility`]). `None`
    /// lists every engine, as an admin sees them.
    pub visible_to: Option<Visibility>,
    /// Only engines this user owns (an admin's `?owner=`); legacy engines
    /// without an owner never match.
    pub owner: Option<String>,
}

/// One source of a page's engines, each an index walk in id order: a
/// backend answers a page by walking each (per state asked for, see
/// [`PageQuery::distinct_states`]) from `after` for at most `limit`
/// engines, and merging by id. The union of the walks is exactly what
/// [`PageQuery::admits`] keeps, so no engine the caller may not see is
/// read, however many there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk<'a> {
    /// Every engine.
    Every,
    /// The engines this user owns.
    OwnedBy(&'a str),
    /// The engines shared with `group`; only those of `owner`, if given.
    SharedWith {
        group: &'a str,
        owner: Option<&'a str>,
    },
}

impl PageQuery {
    /// The first page of up to `limit` engines in any state.
    pub fn first(limit: usize) -> Self {
        Self {
            after: None,
            limit,
            states: Vec::new(),
            visible_to: None,
            owner: None,
        }
    }

    /// Whether `record` belongs in a page of this query, its limit aside.
    pub fn admits(&self, record: &EngineRecord) -> bool {
        self.after.as_ref().is_none_or(|after| record.id() > after)
            && (self.states.is_empty() || self.states.contains(&record.state))
            && self.visible_to.as_ref().is_none_or(|v| v.admits(record))
            && self
                .owner
                .as_deref()
                .is_none_or(|owner| record.owner.as_deref() == Some(owner))
    }

    /// The walks whose union is this query's engines (see [`Walk`]): every
    /// engine; one owner's; or, for a non-admin, their own and one walk per
    /// group of theirs (of `owner` only, when an owner other than
    /// themselves is asked for). A non-admin without groups asking for
    /// someone else's engines has no walk at all: the page is empty.
    pub fn walks(&self) -> Vec<Walk<'_>> {
        match (self.owner.as_deref(), &self.visible_to) {
            (None, None) => vec![Walk::Every],
            (Some(owner), None) => vec![Walk::OwnedBy(owner)],
            (Some(owner), Some(v)) if owner == v.user => vec![Walk::OwnedBy(owner)],
            (owner, Some(v)) => {
                let own = owner.is_none().then_some(Walk::OwnedBy(v.user.as_str()));
                let shared = v.groups.iter().map(|group| Walk::SharedWith {
                    group: group.as_str(),
                    owner,
                });
                own.into_iter().chain(shared).collect()
            }
        }
    }

    /// The query for the page after one that ended with `last`.
    pub fn continue_after(&self, last: EngineId) -> Self {
        Self {
            after: Some(last),
            ..self.clone()
        }
    }

    /// The states asked for, each once, in [`EngineState::ALL`] order; every
    /// state if none was named.
    pub fn distinct_states(&self) -> Vec<EngineState> {
        EngineState::ALL
            .into_iter()
            .filter(|s| self.states.is_empty() || self.states.contains(s))
            .collect()
    }
}

/// An owner's [`Usage`] from how many of their engines are in each state,
/// as a backend counts them from an index (each state at most once).
pub fn usage_from_counts(counts: impl IntoIterator<Item = (EngineState, u64)>) -> Usage {
    let mut usage = Usage::default();
    for (state, n) in counts {
        usage.engines += n;
        if counts_as_running(state) {
            usage.running += n;
        }
    }
    usage
}

/// Counts `states` as [`Store::count_by_state`] answers: the states seen,
/// in [`EngineState::ALL`] order.
pub(crate) fn tally(states: impl Iterator<Item = EngineState>) -> Vec<(EngineState, u64)> {
    let mut counts = [0u64; EngineState::ALL.len()];
    for state in states {
        if let Some(i) = EngineState::ALL.iter().position(|s| *s == state) {
            counts[i] += 1;
        }
    }
    EngineState::ALL
        .into_iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a new engine. Its stored revision is 1, whatever `record.revision` says.
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError>;

    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError>;

    /// All engines, oldest first.
    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError>;

    /// The ids of all engines, oldest first: all that `GET /engines` shows.
    /// The default reads whole records; a backend that can read the ids alone
    /// should, since decoding thousands of records is most of a list's cost.
    async fn list_ids(&self) -> Result<Vec<EngineId>, StoreError> {
        Ok(self.list().await?.into_iter().map(|r| r.spec.id).collect())
    }

    /// One page of engines in id order: those `query` admits, at most
    /// `query.limit` of them. Backends answer it from an index, reading
    /// about `limit` engines per state asked for (and per [`Walk`] when the
    /// query filters by owner or visibility), however many are stored, and
    /// never reading engines of owners and groups the query leaves out.
    /// The default filters [`Store::list`], which reads every engine: fine
    /// for a small store, but backends should override it.
    async fn page(&self, query: &PageQuery) -> Result<Vec<EngineRecord>, StoreError> {
        let mut page: Vec<EngineRecord> = self
            .list()
            .await?
            .into_iter()
            .filter(|r| query.admits(r))
            .collect();
        page.sort_by(|a, b| a.id().cmp(b.id()));
        page.truncate(query.limit);
        Ok(page)
    }

    /// The ids of [`Store::page`]'s engines. The default reads whole
    /// records; a backend that can read the ids alone should.
    async fn page_ids(&self, query: &PageQuery) -> Result<Vec<EngineId>, StoreError> {
        Ok(self
            .page(query)
            .await?
            .into_iter()
            .map(|r| r.spec.id)
            .collect())
    }

    /// How many engines are in each state, read in one grouped query (for
    /// `/metrics`). Each state appears at most once, in no particular
    /// order; a state without engines may be left out. The default counts
    /// [`Store::list`]; backends should count from an index instead.
    async fn count_by_state(&self) -> Result<Vec<(EngineState, u64)>, StoreError> {
        Ok(tally(self.list().await?.iter().map(|r| r.state)))
    }

    /// Records a new engine as [`Store::insert`] does, unless its owner
    /// would then break `limits`: counts the engines whose owner is
    /// `limits.owner` (and how many of them [`crate::quota::counts_as_running`]),
    /// applies [`Limits::check`] and inserts, all in one atomic step, so that
    /// of many concurrent inserts for one owner — through this handle or any
    /// other on the same data — no more pass than the limits allow. Fails
    /// with [`StoreError::QuotaExceeded`] and writes nothing otherwise. An
    /// unlimited `limits` is a plain insert. `record` is normally
    /// `limits.owner`'s; its own `owner` field is not consulted.
    ///
    /// There is deliberately no default: counting and then inserting in
    /// two steps would let parallel creates all pass the count.
    async fn insert_within(&self, record: &EngineRecord, limits: &Limits)
    -> Result<(), StoreError>;

    /// [`Store::compare_and_swap`], unless the write would take the owner
    /// past `limits` (as [`Store::insert_within`], with `next` an update:
    /// only `max_running` applies, and only if `next` counts as running).
    /// The fence is checked first: a stale revision is a
    /// [`StoreError::Conflict`] whatever the quota says. The count leaves
    /// `next`'s own engine out, so writing a running engine as running
    /// again never counts it twice.
    async fn compare_and_swap_within(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
        limits: &Limits,
    ) -> Result<u64, StoreError>;

    /// Replaces the engine with `next` if its stored revision is still
    /// `expected_revision`, and returns the new revision, `expected_revision + 1`.
    /// `next.revision` is ignored. Fails with [`StoreError::Conflict`] if the
    /// revision moved on and [`StoreError::NotFound`] if the engine is gone.
    /// Check and write are one atomic step: of many concurrent writers with the
    /// same expected revision, exactly one succeeds.
    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError>;

    /// Removes the engine if its stored revision is still `expected_revision`;
    /// errors as for [`Store::compare_and_swap`].
    async fn delete(&self, id: &EngineId, expected_revision: u64) -> Result<(), StoreError>;

    /// Up to `limit` engines a monitor may claim at `now` (see
    /// [`EngineRecord::is_due`]), the longest-waiting first.
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError>;

    /// Succeeds if the store answers, for readiness probes. The default looks
    /// up an id no engine can have, which every backend answers with a cheap
    /// indexed read; backends with a cheaper round trip override it.
    async fn ping(&self) -> Result<(), StoreError> {
        self.get(&EngineId::never_generated()).await.map(drop)
    }

    /// Called by each monitor before its first read of the due list. A store
    /// with a change feed keeps the sink (a [`crate::ChangeSinks`] serves
    /// several) and calls [`ChangeSink::recorded`] with every engine inserted
    /// or changed, by any writer it can see, so monitors act on new work at
    /// once (see [`crate::change`]). Return once the feed is listening, so
    /// that nothing written after the monitor's first read goes unreported
    /// (a feed that cannot start in reasonable time logs why and returns).
    /// Without a feed (the default) monitors find new work at their next
    /// scheduled [`Store::due`] read, at most a check interval later.
    async fn subscribe(&self, _sink: ChangeSink) {}
}
