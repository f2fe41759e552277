//! Writing what the gateway sees of engines' use into their records,
//! sparsely (see [`rucat_core::idle`]): monitors decide idleness from the
//! store alone, so every server's view must reach it, and no more often
//! than it must.
//!
//! - When an RPC arrives for an engine whose record shows no use for an
//!   activity interval, the gateway writes before forwarding it
//!   ([`touch`]). The write is a compare-and-swap, so it either lands
//!   before a monitor's idle stop (whose release it then refuses) or finds
//!   the engine stopping, and the RPC waits for a resume instead.
//! - Every activity interval, [`write_activity`] writes each engine with a
//!   stream open (its use is now) or an RPC since the last write. Nothing
//!   happens, nothing is written.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rucat_core::store::{Store, StoreError};
use rucat_core::{EngineId, EngineRecord, Timestamp, idle};
use tracing::{debug, warn};

use super::activity::Activity;

/// How often a write that lost a race reads again and retries.
const ATTEMPTS: usize = 4;

/// What a [`touch`] found.
#[derive(Debug)]
pub(super) enum Touched {
    /// The record now knows of use at the time asked (or later): as it is
    /// in the store.
    Current(Box<EngineRecord>),
    /// The engine changed under us and is not Running any more.
    NotRunning,
    /// The engine is gone.
    Gone,
}

/// Records use of `record`'s engine at `at`, unless the store knew of use
/// since then; on a lost race, reads again.
pub(super) async fn touch(
    store: &dyn Store,
    activity: &Activity,
    mut record: EngineRecord,
    at: Timestamp,
) -> Result<Touched, StoreError> {
    let id = record.id().clone();
    for _ in 0..ATTEMPTS {
        let Some(next) = idle::touched(&record, at) else {
            if record.state != rucat_core::EngineState::Running {
                return Ok(Touched::NotRunning);
            }
            activity.persisted(&id, at);
            return Ok(Touched::Current(Box::new(record)));
        };
        match store.compare_and_swap(record.revision, &next).await {
            Ok(revision) => {
                activity.persisted(&id, at);
                activity.activity_written();
                let mut written = next;
                written.revision = revision;
                return Ok(Touched::Current(Box::new(written)));
            }
            Err(StoreError::Conflict(_)) => match store.get(&id).await? {
                Some(fresh) => record = fresh,
                None => return Ok(Touched::Gone),
            },
            Err(StoreError::NotFound(_)) => return Ok(Touched::Gone),
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::Conflict(id))
}

/// Whether `record` shows no use within `interval` of `now`: the first RPC
/// after such a quiet spell is written about before it is forwarded.
pub(super) fn is_quiet(record: &EngineRecord, now: Timestamp, interval: Duration) -> bool {
    record
        .last_activity
        .is_none_or(|at| at > now || now.since(at) >= interval)
}

/// Writes activity every `interval` until `shutdown`, then once more.
pub(super) async fn write_activity(
    store: Arc<dyn Store>,
    activity: Activity,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = ticks.tick() => flush(store.as_ref(), &activity).await,
            () = &mut shutdown => {
                flush(store.as_ref(), &activity).await;
                return;
            }
        }
    }
}

async fn flush(store: &dyn Store, activity: &Activity) {
    for (id, at) in activity.unpersisted(Timestamp::now()) {
        if let Err(err) = write_one(store, activity, &id, at).await {
            // Kept in memory: the next tick tries again.
            warn!(engine = %id, %err, "cannot record the engine's activity");
        }
    }
}

async fn write_one(
    store: &dyn Store,
    activity: &Activity,
    id: &EngineId,
    at: Timestamp,
) -> Result<(), StoreError> {
    let Some(record) = store.get(id).await? else {
        activity.persisted(id, at);
        return Ok(());
    };
    match touch(store, activity, record, at).await? {
        Touched::Current(_) => {}
        Touched::NotRunning | Touched::Gone => {
            debug!(engine = %id, "activity of an engine that is not Running: nothing to record");
            activity.persisted(id, at);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rucat_core::store::MemoryStore;
    use rucat_core::{CreateEngineRequest, EngineState};

    use super::*;

    async fn running(store: &MemoryStore, timeout: u64) -> EngineRecord {
        let spec = CreateEngineRequest::spark("e", "4.3.0").validate().unwrap();
        let mut record = EngineRecord::new(spec, Timestamp::now());
        record.enter(EngineState::Running, Timestamp::now());
        record.idle_timeout_secs = timeout;
        store.insert(&record).await.unwrap();
        store.get(record.id()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_touch_writes_once_and_survives_a_race() {
        let store = MemoryStore::new();
        let activity = Activity::default();
        let record = running(&store, 60).await;
        let at = Timestamp::now();
        // Someone wrote since we read: we read again and still record it.
        let mut other = record.clone();
        other.update_time = Timestamp::now();
        store
            .compare_and_swap(record.revision, &other)
            .await
            .unwrap();
        let Touched::Current(written) = touch(&store, &activity, record.clone(), at).await.unwrap()
        else {
            panic!("a Running engine is touched")
        };
        assert_eq!(written.last_activity, Some(at));
        let stored = store.get(record.id()).await.unwrap().unwrap();
        assert_eq!(stored.last_activity, Some(at));
        assert_eq!(stored.revision, written.revision);
        // Old news writes nothing.
        let Touched::Current(same) = touch(&store, &activity, stored.clone(), at).await.unwrap()
        else {
            panic!("still Running")
        };
        assert_eq!(same.revision, stored.revision);
        // A stopping engine is not touched.
        let mut stopping = stored.clone();
        stopping.enter(EngineState::WaitToTerminate, Timestamp::now());
        store
            .compare_and_swap(stored.revision, &stopping)
            .await
            .unwrap();
        let later = at.plus(Duration::from_secs(1));
        assert!(matches!(
            touch(&store, &activity, stored, later).await.unwrap(),
            Touched::NotRunning
        ));
    }

    #[test]
    fn quiet_means_no_use_for_an_interval() {
        let now = Timestamp::from_millis(100_000);
        let spec = CreateEngineRequest::spark("e", "4.3.0").validate().unwrap();
        let mut record = EngineRecord::new(spec, now);
        let interval = Duration::from_secs(10);
        assert!(is_quiet(&record, now, interval), "never used");
        record.last_activity = Some(Timestamp::from_millis(95_000));
        assert!(!is_quiet(&record, now, interval));
        record.last_activity = Some(Timestamp::from_millis(90_000));
        assert!(is_quiet(&record, now, interval));
    }

    #[tokio::test]
    async fn the_writer_records_open_streams_and_news_only() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let activity = Activity::default();
        let spec = CreateEngineRequest::spark("e", "4.3.0").validate().unwrap();
        let mut record = EngineRecord::new(spec, Timestamp::now());
        record.enter(EngineState::Running, Timestamp::now());
        record.idle_timeout_secs = 60;
        store.insert(&record).await.unwrap();
        let id = record.id().clone();

        flush(store.as_ref(), &activity).await;
        let quiet = store.get(&id).await.unwrap().unwrap();
        assert_eq!(quiet.last_activity, None, "nothing seen, nothing written");

        let stream = activity.rpc_started(&id);
        flush(store.as_ref(), &activity).await;
        let first = store.get(&id).await.unwrap().unwrap();
        assert!(first.last_activity.is_some());
        tokio::time::sleep(Duration::from_millis(20)).await;
        flush(store.as_ref(), &activity).await;
        let second = store.get(&id).await.unwrap().unwrap();
        assert!(
            second.last_activity > first.last_activity,
            "an open stream is use now, each time"
        );
        drop(stream);
        flush(store.as_ref(), &activity).await;
        let closed = store.get(&id).await.unwrap().unwrap();
        flush(store.as_ref(), &activity).await;
        let rest = store.get(&id).await.unwrap().unwrap();
        assert_eq!(rest.revision, closed.revision, "at rest: no writes");
    }
}
