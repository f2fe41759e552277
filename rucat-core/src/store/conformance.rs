//! The behaviour every [`Store`] must have, as a suite each backend runs
//! against itself with [`conformance_tests!`](crate::conformance_tests).
//!
//! Enabled by the `conformance` feature; a store crate adds
//! `rucat-core = { features = ["conformance"] }` to its dev-dependencies and
//! writes a [`Harness`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::{PageQuery, Store, StoreError};
use crate::change::{Change, ChangeSink};
use crate::engine::{EngineId, EngineRecord, EngineSpec, EngineType, Lease};
use crate::identity::Identity;
use crate::quota::{Limits, QuotaExceeded, QuotaKind};
use crate::state::EngineState;
use crate::time::Timestamp;

/// Opens the backend under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens the store. For a durable harness every call opens the same data.
    async fn open(&self) -> Arc<dyn Store>;
    /// Whether the data outlives every handle (checked by [`survives_reopen`]).
    fn durable(&self) -> bool;
    /// Whether two handles from [`Harness::open`] may be used at once on the
    /// same data, as two processes sharing one database do (one SQLite
    /// file, one SurrealDB server). The quota races then run across two
    /// handles, where the store's own locks are no help.
    fn shared(&self) -> bool {
        false
    }
}

/// One `#[tokio::test]` per check, each with a fresh harness from `$harness`.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@tests $harness;
            insert_then_get_round_trips,
            insert_twice_is_refused,
            missing_engines_are_not_found,
            list_is_oldest_first,
            compare_and_swap_bumps_the_revision,
            stale_revision_is_refused,
            delete_is_fenced,
            concurrent_compare_and_swap_has_one_winner,
            due_follows_schedule_and_leases,
            expired_lease_is_taken_over,
            concurrent_inserts_are_all_kept,
            survives_reopen,
            subscribers_hear_every_write,
            pages_walk_every_engine_in_id_order,
            pages_filter_by_state,
            counts_by_state,
            pages_under_concurrent_writes_list_each_lasting_engine_once,
            quota_checks_count_the_owner_and_what_the_write_adds,
            concurrent_inserts_within_a_quota_leave_exactly_the_limit,
            concurrent_restarts_within_a_quota_leave_exactly_the_limit,
            pages_filter_by_owner_and_visibility,
            legacy_records_without_an_owner_read_back,
        );
    };
    (@tests $harness:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                $crate::store::conformance::$check(&$harness).await;
            }
        )+
    };
}

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn engine(name: &str, created: Timestamp) -> EngineRecord {
    let spec = EngineSpec {
        id: EngineId::generate(),
        name: name.to_owned(),
        engine_type: EngineType::Spark,
        version: "4.3.0".to_owned(),
        configs: BTreeMap::from([("spark.executor.instances".to_owned(), "1".to_owned())]),
        token: None,
    };
    EngineRecord::new(spec, created)
}

fn lease(owner: &str, expires_at: Timestamp) -> Option<Lease> {
    Some(Lease {
        owner: owner.to_owned(),
        expires_at,
    })
}

pub async fn insert_then_get_round_trips(h: &dyn Harness) {
    let store = h.open().await;
    let mut e = engine("round-trip", T0);
    e.endpoint = Some("sc://127.0.0.1:15002".into());
    e.error = Some("quote \" and newline \n survive".into());
    e.lease = lease("monitor-1", T0.plus(Duration::from_secs(30)));
    store.insert(&e).await.unwrap();
    let got = store.get(e.id()).await.unwrap().expect("inserted engine");
    e.revision = 1;
    assert_eq!(got, e);
}

pub async fn insert_twice_is_refused(h: &dyn Harness) {
    let store = h.open().await;
    let e = engine("twice", T0);
    store.insert(&e).await.unwrap();
    let err = store.insert(&e).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists(ref id) if id == e.id()),
        "{err:?}"
    );
}

pub async fn missing_engines_are_not_found(h: &dyn Harness) {
    let store = h.open().await;
    let ghost = engine("ghost", T0);
    assert_eq!(store.get(ghost.id()).await.unwrap(), None);
    let err = store.compare_and_swap(1, &ghost).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store.delete(ghost.id(), 1).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub async fn list_is_oldest_first(h: &dyn Harness) {
    let store = h.open().await;
    let names = ["c", "a", "b"];
    for (i, name) in names.iter().enumerate() {
        let created = T0.plus(Duration::from_secs(10 - i as u64));
        store.insert(&engine(name, created)).await.unwrap();
    }
    let records = store.list().await.unwrap();
    let listed: Vec<&str> = records.iter().map(|r| r.spec.name.as_str()).collect();
    assert_eq!(listed, ["b", "a", "c"]);
    let ids: Vec<EngineId> = records.iter().map(|r| r.id().clone()).collect();
    assert_eq!(store.list_ids().await.unwrap(), ids, "same order as list");
}

pub async fn compare_and_swap_bumps_the_revision(h: &dyn Harness) {
    let store = h.open().await;
    let mut e = engine("cas", T0);
    store.insert(&e).await.unwrap();
    e.enter(EngineState::TriggerStart, T0.plus(Duration::from_secs(1)));
    e.lease = lease("m", T0.plus(Duration::from_secs(31)));
    e.revision = 999; // ignored: the store sets it
    assert_eq!(store.compare_and_swap(1, &e).await.unwrap(), 2);
    let got = store.get(e.id()).await.unwrap().unwrap();
    assert_eq!(got.revision, 2);
    assert_eq!(got.state, EngineState::TriggerStart);
    assert_eq!(got.lease, e.lease);
    assert_eq!(store.compare_and_swap(2, &got).await.unwrap(), 3);
}

pub async fn stale_revision_is_refused(h: &dyn Harness) {
    let store = h.open().await;
    let e = engine("stale", T0);
    store.insert(&e).await.unwrap();
    let mut first = e.clone();
    first.enter(EngineState::Terminated, T0);
    store.compare_and_swap(1, &first).await.unwrap();
    let mut stale = e.clone();
    stale.enter(EngineState::TriggerStart, T0);
    let err = store.compare_and_swap(1, &stale).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let got = store.get(e.id()).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.revision),
        (EngineState::Terminated, 2),
        "the stale write changed nothing"
    );
}

pub async fn delete_is_fenced(h: &dyn Harness) {
    let store = h.open().await;
    let e = engine("delete", T0);
    store.insert(&e).await.unwrap();
    store.compare_and_swap(1, &e).await.unwrap();
    let err = store.delete(e.id(), 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(store.get(e.id()).await.unwrap().is_some());
    store.delete(e.id(), 2).await.unwrap();
    assert_eq!(store.get(e.id()).await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());
}

pub async fn concurrent_compare_and_swap_has_one_winner(h: &dyn Harness) {
    let store = h.open().await;
    let e = engine("race", T0);
    store.insert(&e).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&store);
            let mut claim = e.clone();
            claim.enter(EngineState::TriggerStart, T0);
            claim.lease = lease(&format!("monitor-{i}"), T0.plus(Duration::from_secs(30)));
            tokio::spawn(async move { store.compare_and_swap(1, &claim).await.map(|_| i) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(i) => winners.push(i),
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("a lost race must be a Conflict, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let got = store.get(e.id()).await.unwrap().unwrap();
    assert_eq!(got.revision, 2);
    assert_eq!(got.lease.unwrap().owner, format!("monitor-{}", winners[0]));
}

pub async fn due_follows_schedule_and_leases(h: &dyn Harness) {
    let store = h.open().await;
    let now = T0.plus(Duration::from_secs(100));
    let mut early = engine("early", T0);
    early.next_action_at = Some(T0.plus(Duration::from_secs(1)));
    let mut late = engine("late", T0);
    late.next_action_at = Some(T0.plus(Duration::from_secs(50)));
    let mut future = engine("future", T0);
    future.next_action_at = Some(now.plus(Duration::from_secs(1)));
    let mut at_rest = engine("at-rest", T0);
    at_rest.enter(EngineState::Terminated, T0);
    let mut leased = engine("leased", T0);
    leased.lease = lease("m", now.plus(Duration::from_secs(5)));
    let mut expired = engine("expired", T0);
    expired.next_action_at = Some(T0.plus(Duration::from_secs(20)));
    expired.lease = lease("m", now);
    for e in [&late, &future, &at_rest, &leased, &expired, &early] {
        store.insert(e).await.unwrap();
    }
    let names = |v: Vec<EngineRecord>| v.into_iter().map(|r| r.spec.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.due(now, 10).await.unwrap()),
        ["early", "expired", "late"]
    );
    assert_eq!(
        names(store.due(now, 2).await.unwrap()),
        ["early", "expired"]
    );
    let much_later = now.plus(Duration::from_secs(3600));
    assert_eq!(
        store.due(much_later, 10).await.unwrap().len(),
        5,
        "all but the one at rest"
    );
}

pub async fn expired_lease_is_taken_over(h: &dyn Harness) {
    let store = h.open().await;
    let e = engine("takeover", T0);
    store.insert(&e).await.unwrap();
    // Monitor A claims with a 10 s lease, then goes silent.
    let mut a = e.clone();
    a.enter(EngineState::TriggerStart, T0);
    a.lease = lease("a", T0.plus(Duration::from_secs(10)));
    let a_revision = store.compare_and_swap(1, &a).await.unwrap();
    assert!(
        store
            .due(T0.plus(Duration::from_secs(9)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // After expiry monitor B sees it due and takes it over.
    let later = T0.plus(Duration::from_secs(11));
    let due = store.due(later, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let mut b = due[0].clone();
    b.lease = lease("b", later.plus(Duration::from_secs(10)));
    let b_revision = store.compare_and_swap(due[0].revision, &b).await.unwrap();
    // A wakes up and tries to release: refused, B's claim stands.
    let mut a_release = a.clone();
    a_release.enter(EngineState::StartInProgress, later);
    a_release.lease = None;
    let err = store
        .compare_and_swap(a_revision, &a_release)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let got = store.get(e.id()).await.unwrap().unwrap();
    assert_eq!(
        (got.revision, got.lease.unwrap().owner.as_str()),
        (b_revision, "b")
    );
}

pub async fn concurrent_inserts_are_all_kept(h: &dyn Harness) {
    let store = h.open().await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert(&engine(&format!("e{i}"), T0)).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").unwrap();
    }
    assert_eq!(store.list().await.unwrap().len(), 100);
}

pub async fn survives_reopen(h: &dyn Harness) {
    if !h.durable() {
        return;
    }
    let mut e = engine("durable", T0);
    {
        let store = h.open().await;
        store.insert(&e).await.unwrap();
        e.enter(EngineState::Running, T0.plus(Duration::from_secs(5)));
        e.endpoint = Some("sc://127.0.0.1:1".into());
        store.compare_and_swap(1, &e).await.unwrap();
    }
    let store = h.open().await;
    let got = store
        .get(e.id())
        .await
        .unwrap()
        .expect("engine survives reopening");
    e.revision = 2;
    assert_eq!(got, e);
}

/// The change feed: a subscriber hears of every engine inserted or changed
/// through the store, as written and in order, and of nothing that failed.
/// Every rucat store has a feed; a backend without one fails here and should
/// implement [`Store::subscribe`].
pub async fn subscribers_hear_every_write(h: &dyn Harness) {
    let store = h.open().await;
    let (sink, mut changes) = ChangeSink::channel(64);
    store.subscribe(sink).await;

    // Listening once `subscribe` returns: the first write is heard.
    let mut e = engine("feed", T0);
    store.insert(&e).await.unwrap();
    let mut inserted = e.clone();
    e.enter(EngineState::TriggerStart, T0.plus(Duration::from_secs(1)));
    e.lease = lease("m", T0.plus(Duration::from_secs(31)));
    store.compare_and_swap(1, &e).await.unwrap();
    let refused = store.compare_and_swap(1, &e).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert!(store.insert(&e).await.is_err());
    // A write after the refused ones: once it is heard, anything the refused
    // writes reported would have been heard before it.
    let mut last = engine("last", T0);
    store.insert(&last).await.unwrap();

    let mut heard = Vec::new();
    while heard
        .last()
        .is_none_or(|r: &EngineRecord| r.id() != last.id())
    {
        heard.push(next_record(&mut changes).await);
    }
    inserted.revision = 1;
    e.revision = 2;
    last.revision = 1;
    assert_eq!(heard, vec![inserted, e, last]);
}

async fn next_record(changes: &mut tokio::sync::mpsc::Receiver<Change>) -> EngineRecord {
    match tokio::time::timeout(Duration::from_secs(10), changes.recv()).await {
        Ok(Some(Change::Record(record))) => *record,
        Ok(other) => panic!("expected a written record, got {other:?}"),
        Err(_) => panic!("no change reported within 10 s"),
    }
}

/// `n` engines named `{prefix}{i}`, the `i`th in `states[i % states.len()]`,
/// inserted in order (so in id order).
async fn insert_in_states(
    store: &dyn Store,
    prefix: &str,
    n: usize,
    states: &[EngineState],
) -> Vec<EngineRecord> {
    let mut inserted = Vec::new();
    for i in 0..n {
        let mut e = engine(&format!("{prefix}{i}"), T0);
        e.enter(states[i % states.len()], T0);
        store.insert(&e).await.unwrap();
        e.revision = 1;
        inserted.push(e);
    }
    inserted
}

/// Every page of `query`, following each page's last id, as one list of
/// ids; also checks that `page` and `page_ids` agree and that no page is
/// longer than the limit.
async fn walk(store: &dyn Store, query: &PageQuery) -> Vec<EngineId> {
    let mut query = query.clone();
    let mut walked = Vec::new();
    loop {
        let page = store.page(&query).await.unwrap();
        assert!(
            page.len() <= query.limit,
            "{query:?}: {} engines",
            page.len()
        );
        for record in &page {
            assert!(query.admits(record), "{query:?} does not admit {record:?}");
        }
        let ids: Vec<EngineId> = page.iter().map(|r| r.id().clone()).collect();
        if page.len() < query.limit {
            walked.extend(ids);
            return walked;
        }
        let last = ids.last().expect("a full page of a positive limit").clone();
        walked.extend(ids);
        query = query.continue_after(last);
    }
}

fn ids_of<'a>(records: impl IntoIterator<Item = &'a EngineRecord>) -> Vec<EngineId> {
    let mut ids: Vec<EngineId> = records.into_iter().map(|r| r.id().clone()).collect();
    ids.sort();
    ids
}

/// Pages are in id order, whole records as stored, at most `limit` long;
/// following each page's last id lists every engine once; `page_ids` lists
/// the same ids.
pub async fn pages_walk_every_engine_in_id_order(h: &dyn Harness) {
    let store = h.open().await;
    assert!(store.page(&PageQuery::first(10)).await.unwrap().is_empty());
    assert!(
        store
            .page_ids(&PageQuery::first(10))
            .await
            .unwrap()
            .is_empty()
    );
    let states = [
        EngineState::WaitToStart,
        EngineState::Running,
        EngineState::Terminated,
    ];
    let inserted = insert_in_states(store.as_ref(), "page", 7, &states).await;
    let all = ids_of(&inserted);

    for limit in [1, 2, 3, 7, 8, 1000] {
        assert_eq!(
            walk(store.as_ref(), &PageQuery::first(limit)).await,
            all,
            "limit {limit}"
        );
    }
    let first = store.page(&PageQuery::first(3)).await.unwrap();
    assert_eq!(first, inserted[..3], "whole records, as stored");
    let ids = store.page_ids(&PageQuery::first(3)).await.unwrap();
    assert_eq!(ids, all[..3]);
    let rest = PageQuery::first(10).continue_after(all[2].clone());
    assert_eq!(store.page_ids(&rest).await.unwrap(), all[3..]);
    assert_eq!(ids_of(&store.page(&rest).await.unwrap()), all[3..]);
    let past_the_end = PageQuery::first(10).continue_after(all[6].clone());
    assert!(store.page(&past_the_end).await.unwrap().is_empty());
    assert!(store.page(&PageQuery::first(0)).await.unwrap().is_empty());
    // An `after` that is no engine's id (deleted, say) still places the page.
    let gone = all[3].clone();
    let record = store.get(&gone).await.unwrap().unwrap();
    store.delete(&gone, record.revision).await.unwrap();
    let after_gone = PageQuery::first(10).continue_after(gone);
    assert_eq!(store.page_ids(&after_gone).await.unwrap(), all[4..]);
}

/// With states named, a page holds only engines in them, still in id order
/// and still complete across pages, and `page_ids` agrees.
pub async fn pages_filter_by_state(h: &dyn Harness) {
    let store = h.open().await;
    let states = [
        EngineState::Running,
        EngineState::Terminated,
        EngineState::ErrorClean,
        EngineState::Running,
        EngineState::WaitToStart,
    ];
    let inserted = insert_in_states(store.as_ref(), "filter", 20, &states).await;
    let wanted_sets: [&[EngineState]; 5] = [
        &[EngineState::Running],
        &[EngineState::Terminated, EngineState::Running],
        &[
            EngineState::ErrorClean,
            EngineState::WaitToStart,
            EngineState::ErrorClean,
        ],
        &[EngineState::StartInProgress],
        &EngineState::ALL,
    ];
    for wanted in wanted_sets {
        let expected = ids_of(inserted.iter().filter(|r| wanted.contains(&r.state)));
        for limit in [1, 3, 100] {
            let query = PageQuery {
                states: wanted.to_vec(),
                ..PageQuery::first(limit)
            };
            assert_eq!(walk(store.as_ref(), &query).await, expected, "{query:?}");
            let first = store.page_ids(&query).await.unwrap();
            assert_eq!(first, expected[..limit.min(expected.len())], "{query:?}");
        }
        if expected.len() > 2 {
            let query = PageQuery {
                states: wanted.to_vec(),
                ..PageQuery::first(100).continue_after(expected[1].clone())
            };
            assert_eq!(store.page_ids(&query).await.unwrap(), expected[2..]);
        }
    }
}

/// `count_by_state` counts every engine in its state, and follows writes.
pub async fn counts_by_state(h: &dyn Harness) {
    let store = h.open().await;
    let counts = |v: Vec<(EngineState, u64)>| -> BTreeMap<&'static str, u64> {
        let mut map = BTreeMap::new();
        for (state, n) in v {
            assert!(map.insert(state.name(), n).is_none(), "{state} twice");
        }
        map.retain(|_, n| *n > 0);
        map
    };
    assert!(counts(store.count_by_state().await.unwrap()).is_empty());
    let states = [
        EngineState::Running,
        EngineState::Terminated,
        EngineState::Running,
    ];
    let inserted = insert_in_states(store.as_ref(), "count", 7, &states).await;
    assert_eq!(
        counts(store.count_by_state().await.unwrap()),
        BTreeMap::from([("Running", 5), ("Terminated", 2)])
    );
    let mut moved = inserted[0].clone();
    moved.enter(EngineState::ErrorClean, T0);
    store.compare_and_swap(1, &moved).await.unwrap();
    store.delete(inserted[1].id(), 1).await.unwrap();
    assert_eq!(
        counts(store.count_by_state().await.unwrap()),
        BTreeMap::from([("ErrorClean", 1), ("Running", 4), ("Terminated", 1)])
    );
}

/// Keyset pagination under concurrent writes: while tasks delete engines
/// between the lasting ones and create new ones, a walk in pages of 2 lists
/// every engine that exists for the whole walk exactly once, never an id
/// twice, never an id that never existed, in strictly increasing id order;
/// with and without a state filter.
pub async fn pages_under_concurrent_writes_list_each_lasting_engine_once(h: &dyn Harness) {
    let store = h.open().await;
    let in_filter = [EngineState::Running, EngineState::Terminated];
    // Lasting and doomed engines alternate in id order, in all three states,
    // so deletions fall inside and between pages.
    let mut lasting = Vec::new();
    let mut doomed = Vec::new();
    for i in 0..60 {
        let mut e = engine(&format!("churn{i}"), T0);
        e.enter(
            [in_filter[0], in_filter[1], EngineState::WaitToStart][i % 3],
            T0,
        );
        store.insert(&e).await.unwrap();
        if i % 2 == 0 {
            lasting.push(e)
        } else {
            doomed.push(e)
        }
    }
    let ever: Arc<std::sync::Mutex<BTreeSet<EngineId>>> = Arc::new(std::sync::Mutex::new(
        lasting
            .iter()
            .chain(&doomed)
            .map(|r| r.id().clone())
            .collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let deleter = {
        let (store, stop, writes) = (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&writes));
        tokio::spawn(async move {
            for e in doomed {
                store.delete(e.id(), 1).await.unwrap();
                writes.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        })
    };
    let creator = {
        let (store, stop, writes, ever) = (
            Arc::clone(&store),
            Arc::clone(&stop),
            Arc::clone(&writes),
            Arc::clone(&ever),
        );
        tokio::spawn(async move {
            let mut i = 0;
            // Bounded, so that a walk cannot chase new engines forever.
            while !stop.load(Ordering::SeqCst) && i < 100 {
                let mut e = engine(&format!("new{i}"), T0);
                e.enter(in_filter[i % 2], T0);
                ever.lock().unwrap().insert(e.id().clone());
                store.insert(&e).await.unwrap();
                writes.fetch_add(1, Ordering::SeqCst);
                i += 1;
                tokio::task::yield_now().await;
            }
        })
    };
    while writes.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    let queries = [
        PageQuery::first(2),
        PageQuery {
            states: in_filter.to_vec(),
            ..PageQuery::first(2)
        },
    ];
    let mut walks = Vec::new();
    for query in &queries {
        walks.push(walk(store.as_ref(), query).await);
    }
    stop.store(true, Ordering::SeqCst);
    deleter.await.unwrap();
    creator.await.unwrap();
    assert!(
        writes.load(Ordering::SeqCst) > 2,
        "the walks overlapped the writes"
    );
    let ever = ever.lock().unwrap();
    for (query, walked) in queries.iter().zip(walks) {
        for pair in walked.windows(2) {
            assert!(
                pair[0] < pair[1],
                "{query:?}: {pair:?} out of order or twice"
            );
        }
        for id in &walked {
            assert!(ever.contains(id), "{query:?}: {id} never existed");
        }
        let walked: BTreeSet<EngineId> = walked.into_iter().collect();
        for e in lasting
            .iter()
            .filter(|r| query.states.is_empty() || query.states.contains(&r.state))
        {
            assert!(
                walked.contains(e.id()),
                "{query:?}: lasting engine {} missed",
                e.spec.name
            );
        }
    }
}

/// `name`, owned by `owner` (none: a legacy engine), shared with `groups`,
/// in `state`.
fn owned(name: &str, owner: Option<&str>, groups: &[&str], state: EngineState) -> EngineRecord {
    let mut e = engine(name, T0);
    e.owner = owner.map(str::to_owned);
    e.share_with_groups = groups.iter().map(|g| g.to_string()).collect();
    e.enter(state, T0);
    e
}

fn limits(owner: &str, max_engines: Option<u64>, max_running: Option<u64>) -> Limits {
    Limits {
        owner: owner.to_owned(),
        max_engines,
        max_running,
    }
}

fn exceeded(result: Result<impl std::fmt::Debug, StoreError>) -> QuotaExceeded {
    match result {
        Err(StoreError::QuotaExceeded(exceeded)) => exceeded,
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
}

/// Two handles on the same data if the harness allows it, else one twice.
async fn two_handles(h: &dyn Harness) -> [Arc<dyn Store>; 2] {
    let first = h.open().await;
    let second = if h.shared() {
        h.open().await
    } else {
        Arc::clone(&first)
    };
    [first, second]
}

/// The rule of [`Limits::check`], applied by the store to what it holds:
/// only the owner's engines count (not other users', not legacy ones); an
/// insert counts against `max_engines`, a write that makes an engine count
/// as running against `max_running`, and the engine written never counts
/// against itself; a stale fence is a conflict before any quota; a refused
/// write changes nothing; a write that adds nothing always passes.
pub async fn quota_checks_count_the_owner_and_what_the_write_adds(h: &dyn Harness) {
    let store = h.open().await;
    let (running, stopped) = (EngineState::Running, EngineState::Terminated);
    let alice = limits("alice", Some(2), Some(1));
    for (name, owner) in [("bob", Some("bob")), ("legacy", None)] {
        for i in 0..3 {
            let e = owned(&format!("{name}{i}"), owner, &[], running);
            store
                .insert_within(&e, &limits(name, None, None))
                .await
                .unwrap();
        }
    }
    let a1 = owned("a1", Some("alice"), &[], running);
    store.insert_within(&a1, &alice).await.unwrap();
    let a2 = owned("a2", Some("alice"), &[], stopped);
    store.insert_within(&a2, &alice).await.unwrap();
    let a3 = owned("a3", Some("alice"), &[], stopped);
    assert_eq!(
        exceeded(store.insert_within(&a3, &alice).await),
        QuotaExceeded {
            quota: QuotaKind::MaxEngines,
            count: 2,
            limit: 2
        }
    );
    assert_eq!(store.get(a3.id()).await.unwrap(), None, "nothing written");
    store
        .insert_within(&a3, &limits("alice", None, None))
        .await
        .expect("no limit, no count");

    // a2 restarted while a1 runs: over max_running, and nothing changes.
    let mut restarted = a2.clone();
    restarted.enter(EngineState::WaitToStart, T0);
    assert_eq!(
        exceeded(store.compare_and_swap_within(1, &restarted, &alice).await),
        QuotaExceeded {
            quota: QuotaKind::MaxRunning,
            count: 1,
            limit: 1
        }
    );
    let got = store.get(a2.id()).await.unwrap().unwrap();
    assert_eq!((got.state, got.revision), (stopped, 1));
    // A stale fence is a conflict first; a missing engine is not found.
    let err = store
        .compare_and_swap_within(7, &restarted, &alice)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let ghost = owned("ghost", Some("alice"), &[], EngineState::WaitToStart);
    let err = store
        .compare_and_swap_within(1, &ghost, &alice)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    // a1, running, written as running again: it does not count against itself.
    let mut again = a1.clone();
    again.update_time = T0.plus(Duration::from_secs(1));
    assert_eq!(
        store
            .compare_and_swap_within(1, &again, &alice)
            .await
            .unwrap(),
        2
    );
    // Stopping a1 adds nothing and passes, even over a lowered quota.
    let mut stopping = again.clone();
    stopping.enter(EngineState::WaitToTerminate, T0);
    assert_eq!(
        store
            .compare_and_swap_within(2, &stopping, &limits("alice", Some(0), Some(0)))
            .await
            .unwrap(),
        3
    );
    // Now a2 may start: a1 no longer counts as running.
    assert_eq!(
        store
            .compare_and_swap_within(1, &restarted, &alice)
            .await
            .unwrap(),
        2
    );
    // Another user's count is their own.
    let b = owned("b-new", Some("bob"), &[], EngineState::WaitToStart);
    let err = exceeded(store.insert_within(&b, &limits("bob", Some(3), None)).await);
    assert_eq!((err.quota, err.count), (QuotaKind::MaxEngines, 3));
    store
        .insert_within(&b, &limits("bob", Some(4), Some(4)))
        .await
        .unwrap();
    let err = store.insert_within(&b, &alice).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::AlreadyExists(_) | StoreError::QuotaExceeded(_)
        ),
        "{err:?}"
    );
}

/// Awaits `tasks` (writes against a limit of 3), and how many of them
/// succeeded; each of the others must have been refused as over `quota`,
/// at 3 of 3, not failed any other way.
async fn settle<T: std::fmt::Debug>(
    tasks: Vec<tokio::task::JoinHandle<Result<T, StoreError>>>,
    quota: QuotaKind,
) -> usize {
    let mut written = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => written += 1,
            Err(StoreError::QuotaExceeded(exceeded)) => assert_eq!(
                exceeded,
                QuotaExceeded {
                    quota,
                    count: 3,
                    limit: 3
                }
            ),
            Err(other) => panic!("a refused write must be QuotaExceeded, got {other:?}"),
        }
    }
    written
}

/// Quotas hold under concurrency: 20 creates at once for one owner with
/// `max_engines` 3, spread over two handles where the harness allows it,
/// leave exactly 3 engines; the other 17 are refused, each saying 3 of 3.
pub async fn concurrent_inserts_within_a_quota_leave_exactly_the_limit(h: &dyn Harness) {
    let stores = two_handles(h).await;
    // Engines of others, which must not count.
    stores[0]
        .insert(&owned("bobs", Some("bob"), &[], EngineState::Running))
        .await
        .unwrap();
    stores[0]
        .insert(&owned("legacy", None, &[], EngineState::Running))
        .await
        .unwrap();
    let quota = limits("alice", Some(3), None);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            let quota = quota.clone();
            let e = owned(
                &format!("q{i}"),
                Some("alice"),
                &[],
                EngineState::WaitToStart,
            );
            tokio::spawn(async move { store.insert_within(&e, &quota).await })
        })
        .collect();
    assert_eq!(settle(tasks, QuotaKind::MaxEngines).await, 3);
    for store in &stores {
        let alices = PageQuery {
            owner: Some("alice".into()),
            ..PageQuery::first(100)
        };
        assert_eq!(store.page_ids(&alices).await.unwrap().len(), 3);
        assert_eq!(store.list().await.unwrap().len(), 5);
    }
}

/// The same for `max_running`, with restarts: 20 stopped engines of one
/// owner restarted at once (`Terminated` to `WaitToStart`) with
/// `max_running` 3 leave exactly 3 starting.
pub async fn concurrent_restarts_within_a_quota_leave_exactly_the_limit(h: &dyn Harness) {
    let stores = two_handles(h).await;
    let mut stopped = Vec::new();
    for i in 0..20 {
        let e = owned(
            &format!("r{i}"),
            Some("alice"),
            &[],
            EngineState::Terminated,
        );
        stores[0].insert(&e).await.unwrap();
        stopped.push(e);
    }
    stores[0]
        .insert(&owned("bobs", Some("bob"), &[], EngineState::Running))
        .await
        .unwrap();
    let quota = limits("alice", Some(20), Some(3));
    let tasks: Vec<_> = stopped
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            let store = Arc::clone(&stores[i % 2]);
            let quota = quota.clone();
            e.enter(EngineState::WaitToStart, T0.plus(Duration::from_secs(1)));
            tokio::spawn(async move {
                let written = store.compare_and_swap_within(1, &e, &quota).await;
                written.inspect(|revision| assert_eq!(*revision, 2))
            })
        })
        .collect();
    assert_eq!(settle(tasks, QuotaKind::MaxRunning).await, 3);
    let starting = PageQuery {
        owner: Some("alice".into()),
        states: vec![EngineState::WaitToStart],
        ..PageQuery::first(100)
    };
    for store in &stores {
        assert_eq!(store.page_ids(&starting).await.unwrap().len(), 3);
    }
}

/// `owner` and `visible_to` in pages: exactly what [`PageQuery::admits`]
/// keeps, in id order, complete across pages, alone and with states; and
/// the pages follow writes that change an engine's groups or state.
pub async fn pages_filter_by_owner_and_visibility(h: &dyn Harness) {
    let store = h.open().await;
    use EngineState::{Running, Terminated, WaitToStart};
    let specs: [(Option<&str>, &[&str], EngineState); 10] = [
        (Some("alice"), &[], Running),
        (Some("alice"), &["data"], Terminated),
        (Some("bob"), &["data", "ml"], Running),
        (Some("bob"), &[], Running),
        (None, &[], Running),
        (Some("alice"), &["ml"], WaitToStart),
        (Some("carol"), &["ops"], Terminated),
        (Some("bob"), &["ml"], Terminated),
        (None, &["data"], Running),
        (Some("alice"), &["data", "ops"], Running),
    ];
    let mut inserted = Vec::new();
    for round in 0..2 {
        for (i, (owner, groups, state)) in specs.iter().enumerate() {
            let e = owned(&format!("v{round}-{i}"), *owner, groups, *state);
            store.insert(&e).await.unwrap();
            inserted.push(e);
        }
    }
    let visible = |who: Identity| who.visibility();
    let queries: Vec<(Option<&str>, Option<crate::identity::Visibility>)> = vec![
        (Some("alice"), None),
        (Some("nobody"), None),
        (None, visible(Identity::user("alice", Vec::<String>::new()))),
        (None, visible(Identity::user("bob", ["data"]))),
        (None, visible(Identity::user("dave", ["ml", "ops"]))),
        (None, visible(Identity::user("erin", ["nothing"]))),
        (Some("alice"), visible(Identity::user("bob", ["ml", "ops"]))),
        (Some("bob"), visible(Identity::user("bob", ["ops"]))),
        (
            Some("carol"),
            visible(Identity::user("dave", Vec::<String>::new())),
        ),
    ];
    let state_sets: [&[EngineState]; 3] = [&[], &[Running], &[Terminated, WaitToStart]];
    let check = |inserted: Vec<EngineRecord>| {
        let store = Arc::clone(&store);
        let queries = queries.clone();
        async move {
            for (owner, visible_to) in &queries {
                for states in state_sets {
                    let base = PageQuery {
                        owner: owner.map(str::to_owned),
                        visible_to: visible_to.clone(),
                        states: states.to_vec(),
                        ..PageQuery::first(1)
                    };
                    let expected = ids_of(inserted.iter().filter(|r| base.admits(r)));
                    for limit in [1, 2, 100] {
                        let query = PageQuery {
                            limit,
                            ..base.clone()
                        };
                        assert_eq!(walk(store.as_ref(), &query).await, expected, "{query:?}");
                        let first = store.page_ids(&query).await.unwrap();
                        assert_eq!(first, expected[..limit.min(expected.len())], "{query:?}");
                    }
                }
            }
        }
    };
    check(inserted.clone()).await;

    // Share one engine differently, move another's state, delete a third.
    let mut reshared = inserted[1].clone();
    reshared.share_with_groups = ["ml".to_owned()].into();
    reshared.revision = store.compare_and_swap(1, &reshared).await.unwrap();
    inserted[1] = reshared;
    let mut unshared = inserted[2].clone();
    unshared.share_with_groups.clear();
    unshared.enter(Terminated, T0);
    unshared.revision = store.compare_and_swap(1, &unshared).await.unwrap();
    inserted[2] = unshared;
    let mut moved = inserted[9].clone();
    moved.enter(Terminated, T0);
    moved.revision = store.compare_and_swap(1, &moved).await.unwrap();
    inserted[9] = moved;
    let gone = inserted.remove(12);
    store.delete(gone.id(), 1).await.unwrap();
    check(inserted).await;
}

/// A record written before engines had owners (no `owner`, no groups)
/// reads back as one without, and only unfiltered pages list it.
pub async fn legacy_records_without_an_owner_read_back(h: &dyn Harness) {
    let store = h.open().await;
    let legacy = owned("legacy", None, &[], EngineState::Running);
    store.insert(&legacy).await.unwrap();
    let got = store.get(legacy.id()).await.unwrap().unwrap();
    assert_eq!((got.owner, got.share_with_groups.len()), (None, 0));
    assert_eq!(
        store.page_ids(&PageQuery::first(10)).await.unwrap(),
        [legacy.id().clone()]
    );
    for query in [
        PageQuery {
            owner: Some(String::new()),
            ..PageQuery::first(10)
        },
        PageQuery {
            visible_to: Identity::user("", [""]).visibility(),
            ..PageQuery::first(10)
        },
    ] {
        assert!(
            store.page_ids(&query).await.unwrap().is_empty(),
            "{query:?}"
        );
    }
}
