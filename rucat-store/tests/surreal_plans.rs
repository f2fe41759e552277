//! Every SurrealDB read that may meet many engines walks an index (or the
//! table in record-id order) and stops at its limit, as SurrealDB's own
//! `EXPLAIN` shows: against a real server, and embedded. The plans are
//! printed, so `--nocapture` shows what SurrealDB chose.

mod support;

use std::time::Duration;

use rucat_core::{EngineState, Store};
use rucat_store::{SurrealConfig, SurrealStore};

use support::surreal_server::{Storage, SurrealServer, unique_database};
use support::{T0, engine};

/// Some engines in several states, some due, some owned and shared, so the
/// planner sees tables that are not empty.
async fn fill(store: &SurrealStore) {
    let states = [
        EngineState::Running,
        EngineState::Terminated,
        EngineState::WaitToStart,
    ];
    for i in 0..30 {
        let mut e = engine(&format!("plan{i}"));
        e.owner = ["alice", "bob"].get(i % 3).map(|o| o.to_string());
        if i % 2 == 0 {
            e.share_with_groups = ["alice".to_owned(), "ml".to_owned()].into();
        }
        e.enter(
            states[i % states.len()],
            T0.plus(Duration::from_secs(i as u64)),
        );
        store.insert(&e).await.unwrap();
    }
}

fn check(plans: &[(String, String)]) {
    for (name, plan) in plans {
        println!("{name}:\n{plan}\n");
    }
    let plan = |name: &str| -> &str {
        &plans
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no plan for {name}"))
            .1
    };
    let has = |name: &str, parts: &[&str]| {
        let text = plan(name);
        for part in parts {
            assert!(text.contains(part), "{name} lacks {part:?}:\n{text}");
        }
    };
    let lacks = |name: &str, parts: &[&str]| {
        let text = plan(name);
        for part in parts {
            assert!(!text.contains(part), "{name} has {part:?}:\n{text}");
        }
    };
    // The table in record-id order (its primary key), stopping at the limit.
    has("page_first", &["TableScan", "limit: $limit"]);
    lacks("page_first", &["SortByKey", "predicate"]);
    // The record-id range after `after`, stopping at the limit (the sort
    // above it orders at most `limit` records).
    has("page_after", &["DynamicScan", "limit: $limit"]);
    lacks("page_after", &["TableScan", "Limit ["]);
    for name in ["page_in_state", "page_ids_in_state"] {
        has(
            name,
            &[
                "IndexScan",
                "index: engine_state",
                "['Running'] MoreThan",
                "limit: $limit",
            ],
        );
        lacks(name, &["TableScan", "SortByKey"]);
    }
    // One `page_in_state` each (EXPLAIN names only their top operators).
    has("page_in_states", &["[(SelectProject), (SelectProject)]"]);
    lacks("page_in_states", &["TableScan", "Union"]);
    has("count_in_state", &["IndexCountScan"]);
    has("count_by_state", &["IndexCountScan"]);
    lacks("count_by_state", &["TableScan", "IndexScan"]);
    // The due index in its order: the limit ends the walk, no sort of every
    // due engine.
    has("due", &["IndexScan", "index: engine_due", "Limit"]);
    lacks("due", &["TableScan", "SortByKey"]);
    // Owners' and groups' pages: a walk of their index from `after`, in
    // its order, stopping at the limit (filtered by owner when asked).
    has(
        "page_owned_in_state",
        &[
            "IndexScan",
            "index: engine_owner",
            "['alice', 'Running'] MoreThan",
            "limit: $limit",
        ],
    );
    has(
        "page_shared_in_state",
        &[
            "IndexScan",
            "index: engine_share_walk",
            "['alice', 'Running'] MoreThan",
            "limit: $limit",
        ],
    );
    has(
        "page_shared_owned_in_state",
        &["IndexScan", "index: engine_share_walk", "Limit"],
    );
    for name in [
        "page_owned_in_state",
        "page_shared_in_state",
        "page_shared_owned_in_state",
    ] {
        lacks(name, &["TableScan", "SortByKey", "SortTopK"]);
    }
    // A quota check's count reads the owner's entries of `engine_owner`.
    has(
        "usage",
        &["IndexScan", "index: engine_owner", "access: ['alice']"],
    );
    lacks("usage", &["TableScan"]);
}

#[tokio::test]
async fn reads_use_indexes_on_a_server() {
    let server = SurrealServer::start(Storage::Memory);
    let store = SurrealStore::open(&server.config(&unique_database("plans")))
        .await
        .unwrap();
    fill(&store).await;
    check(&store.read_plans().await.unwrap());
}

#[tokio::test]
async fn reads_use_indexes_embedded() {
    let store = SurrealStore::open(&SurrealConfig::new("mem://"))
        .await
        .unwrap();
    fill(&store).await;
    check(&store.read_plans().await.unwrap());
    // And the answers are right on a store with engines in it.
    assert_eq!(
        store.count_by_state().await.unwrap().len(),
        3,
        "three states in use"
    );
}
