//! What the SQLite store promises beyond the shared conformance suite: sharing
//! a file between processes, its schema, and what it does with a bad file.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rucat_core::engine::Lease;
use rucat_core::store::{PageQuery, Store, StoreError};
use rucat_core::{EngineRecord, EngineState, Identity, Limits};
use rucat_store::sqlite::{OpenFailure, SCHEMA_VERSION, SqliteStore};
use rusqlite::Connection;
use tempfile::TempDir;

use support::{T0, engine};

fn db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rucat.db");
    (dir, path)
}

/// A plain connection, to look at the file the way another tool would.
fn inspect(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_have_one_compare_and_swap_winner() {
    let (_dir, path) = db();
    let server: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let monitor: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let e = engine("race");
    server.insert(&e).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &server } else { &monitor });
            let mut claim = e.clone();
            claim.enter(EngineState::TriggerStart, T0);
            claim.lease = Some(Lease {
                owner: format!("monitor-{i}"),
                expires_at: T0.plus(Duration::from_secs(30)),
            });
            tokio::spawn(async move { store.compare_and_swap(1, &claim).await.map(|_| i) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("a lost race must be a Conflict, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    for store in [&server, &monitor] {
        let got = store.get(e.id()).await.unwrap().unwrap();
        assert_eq!(got.revision, 2);
        assert_eq!(got.lease.unwrap().owner, format!("monitor-{}", winners[0]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_from_one_store_are_seen_by_another() {
    let (_dir, path) = db();
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    let e = engine("shared");
    a.insert(&e).await.unwrap();
    assert_eq!(b.get(e.id()).await.unwrap().unwrap().spec.name, "shared");
    let err = b.insert(&e).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    b.delete(e.id(), 1).await.unwrap();
    assert_eq!(a.get(e.id()).await.unwrap(), None);
}

#[test]
fn opening_creates_the_current_schema_in_wal_mode() {
    let (dir, _) = db();
    let path = dir.path().join("new/dirs/rucat.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.path(), path);
    let conn = inspect(&path);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn reopening_an_existing_file_keeps_its_engines() {
    let (_dir, path) = db();
    let e = engine("kept");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert(&e).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);
    let version: i64 = inspect(&path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn processes_opening_a_new_file_at_once_all_succeed() {
    let (_dir, path) = db();
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    SqliteStore::open(&path).map(drop)
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap().unwrap();
        }
    });
}

#[test]
fn a_schema_from_a_newer_rucat_is_refused() {
    let (_dir, path) = db();
    drop(SqliteStore::open(&path).unwrap());
    inspect(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(err.reason(), OpenFailure::UnknownSchema { found, .. } if *found == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("newer rucat"), "{err}");
}

#[test]
fn a_directory_that_cannot_be_created_is_a_clear_error() {
    let (dir, _) = db();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let path = file.join("sub/rucat.db");
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.path(), path);
    assert!(
        matches!(err.reason(), OpenFailure::CreateDirectory { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("cannot create directory"), "{message}");
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let (_dir, path) = db();
    std::fs::write(
        &path,
        "this is not a database, but it is long enough to look at",
    )
    .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err.reason(), OpenFailure::Sqlite(_)), "{err:?}");
    assert!(err.to_string().contains("not a database"), "{err}");
}

#[tokio::test]
async fn query_columns_follow_every_write() {
    let (_dir, path) = db();
    let store = SqliteStore::open(&path).unwrap();
    let mut e = engine("columns");
    store.insert(&e).await.unwrap();
    let later = T0.plus(Duration::from_secs(7));
    e.enter(EngineState::TriggerStart, later);
    e.lease = Some(Lease {
        owner: "m1".into(),
        expires_at: later.plus(Duration::from_secs(30)),
    });
    store.compare_and_swap(1, &e).await.unwrap();
    let row = inspect(&path)
        .query_row(
            "SELECT revision, state, create_time, lease_owner, lease_expires_at, \
             next_action_at, json_extract(record, '$.revision') FROM engines WHERE id = ?1",
            [e.id().as_str()],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            },
        )
        .unwrap();
    let expires = later.plus(Duration::from_secs(30)).as_millis();
    assert_eq!(
        row,
        (
            2,
            "TriggerStart".to_owned(),
            T0.as_millis(),
            Some("m1".to_owned()),
            Some(expires),
            Some(later.as_millis()),
            2
        )
    );
}

#[tokio::test]
async fn the_revision_column_is_the_truth() {
    let (_dir, path) = db();
    let store = SqliteStore::open(&path).unwrap();
    let e = engine("revision");
    store.insert(&e).await.unwrap();
    inspect(&path)
        .execute(
            "UPDATE engines SET revision = 41 WHERE id = ?1",
            [e.id().as_str()],
        )
        .unwrap();
    assert_eq!(store.get(e.id()).await.unwrap().unwrap().revision, 41);
    assert_eq!(store.compare_and_swap(41, &e).await.unwrap(), 42);
}

#[tokio::test]
async fn unreadable_rows_are_corrupt_not_a_panic() {
    let (_dir, path) = db();
    let store = SqliteStore::open(&path).unwrap();
    let cases = [
        ("record = 'not json'", "not an engine"),
        ("record = x'00'", "not text"),
        ("revision = 'two'", "revision"),
        ("revision = 0", "revision"),
        (
            "record = json_set(record, '$.spec.id', '0123456789abcdef0123456789abcdef')",
            "of engine 0123456789abcdef0123456789abcdef",
        ),
        (
            "record = json_set(record, '$.spec.id', 'other')",
            "an engine id is 32 lowercase hexadecimal digits",
        ),
    ];
    for (damage, reason_part) in cases {
        let e = engine("damaged");
        store.insert(&e).await.unwrap();
        inspect(&path)
            .execute(
                &format!("UPDATE engines SET {damage} WHERE id = ?1"),
                [e.id().as_str()],
            )
            .unwrap();
        let err = store.get(e.id()).await.unwrap_err();
        match &err {
            StoreError::Corrupt { id, reason } => {
                assert_eq!(id, e.id().as_str(), "{damage}");
                assert!(reason.contains(reason_part), "{damage}: {reason}");
            }
            other => panic!("{damage}: expected Corrupt, got {other:?}"),
        }
        assert!(store.list().await.is_err(), "{damage}");
        // Removing the damaged row through the store still works.
        inspect(&path)
            .execute("UPDATE engines SET revision = 1, record = '{}'", [])
            .unwrap();
        store.delete(e.id(), 1).await.unwrap();
    }
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_is_unavailable() {
    let (_dir, path) = db();
    let store = SqliteStore::open(&path).unwrap();
    let blocker = inspect(&path);
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    let err = store.insert(&engine("blocked")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "waited for the lock"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    store.insert(&engine("unblocked")).await.unwrap();
}

#[test]
fn due_uses_its_index() {
    let (_dir, path) = db();
    drop(SqliteStore::open(&path).unwrap());
    let plan: Vec<String> = inspect(&path)
        .prepare(
            "EXPLAIN QUERY PLAN SELECT id FROM engines \
             WHERE next_action_at IS NOT NULL AND next_action_at <= ?1 \
             AND (lease_owner IS NULL OR lease_expires_at <= ?1) \
             ORDER BY next_action_at, id LIMIT ?2",
        )
        .unwrap()
        .query_map([0, 10], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("engines_due"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

/// A file as rucat wrote it before owners existed: schema version 2, as
/// its two migrations made it, with engines whose JSON has no owner.
const SCHEMA_2: &str = "PRAGMA journal_mode = WAL;
    CREATE TABLE engines (
        id TEXT PRIMARY KEY NOT NULL,
        revision INTEGER NOT NULL,
        state TEXT NOT NULL,
        create_time INTEGER NOT NULL,
        lease_owner TEXT,
        lease_expires_at INTEGER,
        next_action_at INTEGER,
        record TEXT NOT NULL
    );
    CREATE INDEX engines_due ON engines (next_action_at, id)
        WHERE next_action_at IS NOT NULL;
    CREATE INDEX engines_state ON engines (state, id);
    PRAGMA user_version = 2;";

/// Writes `record` into a schema-2 file as that rucat did (all but its
/// JSON, which a schema-2 build wrote without `owner` and groups unless
/// it already knew them).
fn insert_at_schema_2(conn: &Connection, record: &EngineRecord) {
    let mut stored = record.clone();
    stored.revision = 1;
    conn.execute(
        "INSERT INTO engines (id, revision, state, create_time, next_action_at, record) \
         VALUES (?1, 1, ?2, ?3, ?4, ?5)",
        rusqlite::params![
            record.id().as_str(),
            record.state.name(),
            record.create_time.as_millis(),
            record.next_action_at.map(|t| t.as_millis()),
            serde_json::to_string(&stored).unwrap(),
        ],
    )
    .unwrap();
}

#[tokio::test]
async fn a_file_from_before_owners_is_migrated_on_open() {
    let (_dir, path) = db();
    let legacy = engine("legacy");
    // The JSON of a record without owner or groups is what rucat wrote
    // before it knew users.
    let json = serde_json::to_value(&legacy).unwrap();
    assert!(json.get("owner").is_none() && json.get("share_with_groups").is_none());
    // One written by a build that knew owners but not this schema.
    let mut known = engine("known");
    known.owner = Some("alice".into());
    known.share_with_groups = ["data".to_owned()].into();
    {
        let conn = inspect(&path);
        conn.execute_batch(SCHEMA_2).unwrap();
        insert_at_schema_2(&conn, &legacy);
        insert_at_schema_2(&conn, &known);
    }

    let store = SqliteStore::open(&path).unwrap();
    let version: i64 = inspect(&path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let read = store.get(legacy.id()).await.unwrap().unwrap();
    assert_eq!((&read.owner, read.share_with_groups.len()), (&None, 0));
    let columns = |id: &str| {
        inspect(&path)
            .query_row(
                "SELECT owner, shared FROM engines WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .unwrap()
    };
    assert_eq!(columns(legacy.id().as_str()), (None, None));
    assert_eq!(
        columns(known.id().as_str()),
        (Some("alice".to_owned()), Some(r#"["data"]"#.to_owned()))
    );

    // Only an unfiltered page lists the legacy engine; the other is found
    // by its owner and by its group.
    let page = |query: PageQuery| {
        let store = &store;
        async move { store.page_ids(&query).await.unwrap() }
    };
    assert_eq!(page(PageQuery::first(10)).await.len(), 2);
    let alices = PageQuery {
        owner: Some("alice".into()),
        ..PageQuery::first(10)
    };
    assert_eq!(page(alices).await, [known.id().clone()]);
    for who in [
        Identity::user("alice", Vec::<String>::new()),
        Identity::user("bob", ["data"]),
    ] {
        let visible = PageQuery {
            visible_to: who.visibility(),
            ..PageQuery::first(10)
        };
        assert_eq!(page(visible).await, [known.id().clone()], "{who}");
    }
    let nobody = PageQuery {
        visible_to: Identity::user("carol", ["ops"]).visibility(),
        ..PageQuery::first(10)
    };
    assert!(page(nobody).await.is_empty());

    // Old engines go on being written; new ones count against quotas.
    let mut stopped = read.clone();
    stopped.enter(EngineState::Terminated, T0);
    store.compare_and_swap(1, &stopped).await.unwrap();
    assert_eq!(columns(legacy.id().as_str()), (None, None));
    let mut alices_new = engine("new");
    alices_new.owner = Some("alice".into());
    let one = Limits {
        owner: "alice".into(),
        max_engines: Some(1),
        max_running: None,
    };
    let err = store.insert_within(&alices_new, &one).await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err:?}");
    let two = Limits {
        max_engines: Some(2),
        ..one
    };
    store.insert_within(&alices_new, &two).await.unwrap();
}

/// The groups table follows every write of a shared engine, in the
/// statement that writes it: what a group's pages read.
#[tokio::test]
async fn engine_shares_follow_groups_state_and_deletion() {
    let (_dir, path) = db();
    let store = SqliteStore::open(&path).unwrap();
    let shares = || {
        let conn = inspect(&path);
        let mut stmt = conn
            .prepare("SELECT group_name, state, owner FROM engine_shares ORDER BY group_name")
            .unwrap();
        stmt.query_map([], |r| {
            Ok(format!(
                "{}/{}/{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?.unwrap_or_default()
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
    };
    let mut e = engine("shared");
    e.owner = Some("alice".into());
    e.share_with_groups = ["data".to_owned(), "ml".to_owned()].into();
    store.insert(&e).await.unwrap();
    assert_eq!(shares(), ["data/WaitToStart/alice", "ml/WaitToStart/alice"]);
    e.enter(EngineState::Terminated, T0);
    e.share_with_groups = ["ops".to_owned()].into();
    store.compare_and_swap(1, &e).await.unwrap();
    assert_eq!(shares(), ["ops/Terminated/alice"]);
    e.share_with_groups.clear();
    store.compare_and_swap(2, &e).await.unwrap();
    assert!(shares().is_empty());
    e.share_with_groups = ["data".to_owned()].into();
    store.compare_and_swap(3, &e).await.unwrap();
    assert_eq!(shares(), ["data/Terminated/alice"]);
    store.delete(e.id(), 4).await.unwrap();
    assert!(shares().is_empty());
}
