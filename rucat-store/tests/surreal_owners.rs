//! Owners, sharing and quotas on a real SurrealDB server: a database
//! written before owners existed, why a quota-checked transaction writes its
//! owner's document, and quotas holding across several clients, round after
//! round.

mod support;

use std::future::IntoFuture;
use std::sync::Arc;

use rucat_core::store::{PageQuery, Store, StoreError};
use rucat_core::{EngineRecord, EngineState, Identity, Limits};
use rucat_store::{SurrealConfig, SurrealStore};
use serde_json::Value;
use surrealdb::Surreal;
use surrealdb::engine::any::{self, Any};
use surrealdb::opt::auth::Root;

use support::surreal_server::{PASS, Storage, SurrealServer, USER, unique_database};
use support::{T0, engine};

/// A plain client of `config`'s database, as another tool would connect.
async fn raw(config: &SurrealConfig) -> Surreal<Any> {
    let db = any::connect(config.uri.as_str()).await.unwrap();
    db.signin(Root {
        username: USER.to_owned(),
        password: PASS.to_owned(),
    })
    .await
    .unwrap();
    let (ns, database) = (&config.namespace, &config.database);
    db.query(format!(
        "DEFINE NAMESPACE IF NOT EXISTS {ns}; USE NS {ns}; DEFINE DATABASE IF NOT EXISTS {database}"
    ))
    .await
    .unwrap()
    .check()
    .unwrap();
    db.use_ns(ns.as_str())
        .use_db(database.as_str())
        .await
        .unwrap();
    db
}

async fn open(config: &SurrealConfig) -> SurrealStore {
    match SurrealStore::open(config).await {
        Ok(store) => store,
        Err(e) => panic!("open the SurrealDB store: {e}"),
    }
}

fn owned(name: &str, owner: &str, state: EngineState) -> EngineRecord {
    let mut e = engine(name);
    e.owner = Some(owner.to_owned());
    e.enter(state, T0);
    e
}

#[tokio::test]
async fn a_database_from_before_owners_reads_and_pages() {
    let server = SurrealServer::start(Storage::Memory);
    let config = server.config(&unique_database("legacy"));
    // The schema and a document as rucat wrote them before owners existed.
    let db = raw(&config).await;
    db.query(
        "DEFINE TABLE IF NOT EXISTS engine SCHEMALESS; \
         DEFINE INDEX IF NOT EXISTS engine_due ON engine FIELDS next_action_at, engine_id; \
         DEFINE INDEX IF NOT EXISTS engine_state ON engine FIELDS state, engine_id;",
    )
    .await
    .unwrap()
    .check()
    .unwrap();
    let mut legacy = engine("legacy");
    legacy.revision = 1;
    let json = serde_json::to_string(&legacy).unwrap();
    assert!(!json.contains("owner") && !json.contains("share_with_groups"));
    db.query(
        "CREATE type::record('engine', $id) CONTENT { engine_id: $id, revision: 1, \
         state: $state, create_time: $created, next_action_at: $created, record: $record }",
    )
    .bind(serde_json::json!({
        "id": legacy.id().as_str(),
        "state": legacy.state.name(),
        "created": T0.as_millis(),
        "record": json,
    }))
    .await
    .unwrap()
    .check()
    .unwrap();

    let store = open(&config).await;
    assert_eq!(store.get(legacy.id()).await.unwrap(), Some(legacy.clone()));
    assert_eq!(
        store.page_ids(&PageQuery::first(10)).await.unwrap(),
        [legacy.id().clone()]
    );
    let mut alices = owned("alices", "alice", EngineState::WaitToStart);
    alices.share_with_groups = ["data".to_owned()].into();
    let quota = Limits {
        owner: "alice".into(),
        max_engines: Some(1),
        max_running: Some(1),
    };
    store.insert_within(&alices, &quota).await.unwrap();
    for (query, expected) in [
        (
            PageQuery {
                owner: Some("alice".into()),
                ..PageQuery::first(10)
            },
            vec![alices.id().clone()],
        ),
        (
            PageQuery {
                visible_to: Identity::user("bob", ["data"]).visibility(),
                ..PageQuery::first(10)
            },
            vec![alices.id().clone()],
        ),
        (
            PageQuery {
                visible_to: Identity::user("carol", ["ops"]).visibility(),
                ..PageQuery::first(10)
            },
            vec![],
        ),
    ] {
        assert_eq!(store.page_ids(&query).await.unwrap(), expected, "{query:?}");
    }
    // The legacy engine neither counts against anyone nor stops being written.
    let mut stopped = legacy.clone();
    stopped.enter(EngineState::Terminated, T0);
    assert_eq!(store.compare_and_swap(1, &stopped).await.unwrap(), 2);
    let read = store.get(legacy.id()).await.unwrap().unwrap();
    assert_eq!((read.owner, read.state), (None, EngineState::Terminated));
}

/// The count of an owner's engines, then a new engine, in one transaction.
async fn count_then_create(
    tx: &surrealdb::method::Transaction<Any>,
    lock: bool,
    name: &str,
) -> u64 {
    let lock = if lock {
        "UPSERT engine_quota:alice SET writes += 1 RETURN NONE;"
    } else {
        "RETURN NONE;"
    };
    let mut response = tx
        .query(format!(
            "{lock} SELECT count() AS count FROM engine WHERE owner = 'alice' GROUP ALL; \
             CREATE type::record('engine', $name) CONTENT {{ engine_id: $name, owner: 'alice' }} \
             RETURN NONE;"
        ))
        .bind(serde_json::json!({ "name": name }))
        .into_future()
        .await
        .unwrap();
    let counts: Vec<Value> = response.take(1).unwrap();
    counts
        .first()
        .and_then(|c| c.get("count"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Why a quota-checked transaction writes its owner's document: without it,
/// two transactions that each count an owner's engines (0) and create one
/// both commit, as SurrealDB's snapshot isolation allows (write skew), and
/// together pass a limit of 1; with it, the second commit fails.
#[tokio::test]
async fn concurrent_counts_commit_together_unless_they_write_the_owner() {
    let server = SurrealServer::start(Storage::Memory);
    let config = server.config(&unique_database("skew"));
    drop(open(&config).await);
    let (a, b) = (raw(&config).await, raw(&config).await);
    for lock in [false, true] {
        let first = a.clone().begin().await.unwrap();
        let second = b.clone().begin().await.unwrap();
        let suffix = if lock { "locked" } else { "free" };
        let before = count_then_create(&first, lock, &format!("a_{suffix}")).await;
        assert_eq!(
            count_then_create(&second, lock, &format!("b_{suffix}")).await,
            before,
            "both see the same count"
        );
        first.commit().await.unwrap();
        let second = second.commit().await;
        if lock {
            let err = second.expect_err("the second writer of the owner's document conflicts");
            assert!(err.to_string().to_lowercase().contains("conflict"), "{err}");
        } else {
            second.expect("without the owner's document, both commit");
        }
    }
    let mut response = a
        .query("SELECT VALUE engine_id FROM engine ORDER BY engine_id")
        .await
        .unwrap();
    let created: Vec<String> = response.take(0).unwrap();
    assert_eq!(created, ["a_free", "a_locked", "b_free"]);
}

/// Quotas hold across four clients of one server, round after round: each
/// round 20 creates at once for a new owner with `max_engines` 3, then 20
/// restarts at once of that owner's stopped engines with `max_running` 5
/// (of which the 3 created already use 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_hold_across_clients_round_after_round() {
    let server = SurrealServer::start(Storage::Memory);
    let config = server.config(&unique_database("rounds"));
    let mut clients: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        clients.push(Arc::new(open(&config).await));
    }
    for round in 0..4 {
        let owner = format!("user{round}");
        let creates = Limits {
            owner: owner.clone(),
            max_engines: Some(3),
            max_running: None,
        };
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = Arc::clone(&clients[i % clients.len()]);
                let (limits, e) = (
                    creates.clone(),
                    owned(&format!("c{i}"), &owner, EngineState::WaitToStart),
                );
                tokio::spawn(async move { store.insert_within(&e, &limits).await })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => created += 1,
                Err(StoreError::QuotaExceeded(q)) => assert_eq!((q.count, q.limit), (3, 3)),
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(created, 3, "round {round}");

        let mut stopped = Vec::new();
        for i in 0..20 {
            let e = owned(&format!("s{i}"), &owner, EngineState::Terminated);
            clients[0].insert(&e).await.unwrap();
            stopped.push(e);
        }
        // The three created engines count as running: of the restarts,
        // only two fit under 5.
        let restarts = Limits {
            owner: owner.clone(),
            max_engines: None,
            max_running: Some(5),
        };
        let tasks: Vec<_> = stopped
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                let store = Arc::clone(&clients[i % clients.len()]);
                let limits = restarts.clone();
                e.enter(EngineState::WaitToStart, T0);
                tokio::spawn(async move { store.compare_and_swap_within(1, &e, &limits).await })
            })
            .collect();
        let mut started = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => started += 1,
                Err(StoreError::QuotaExceeded(q)) => assert_eq!((q.count, q.limit), (5, 5)),
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(started, 2, "round {round}: 3 were starting already");
        let starting = PageQuery {
            owner: Some(owner.clone()),
            states: vec![EngineState::WaitToStart],
            ..PageQuery::first(100)
        };
        assert_eq!(clients[3].page_ids(&starting).await.unwrap().len(), 5);
    }
}
