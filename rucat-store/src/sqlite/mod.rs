//! A [`Store`] in one SQLite file, shared by every rucat process on the host.
//!
//! Several processes (a server and a monitor) may open the same file, so the
//! only coordination between them is SQLite's own locking: every write is a
//! single atomic statement, and the compare-and-swap lives in the `WHERE`
//! clause of that statement rather than in a read followed by a write. The
//! exception is a quota-checked write, which must read the owner's usage
//! and write in one step: it runs in a `BEGIN IMMEDIATE` transaction, which
//! takes the file's write lock before the read, so quota-checked writes in
//! every process on the file take turns. The usage is not counted from the
//! engines but read from `engine_usage`, per-owner, per-state counts that
//! triggers keep exact inside each write's statement, so a check costs the
//! same whether the owner has 10 engines or 10,000.
//!
//! Its change feed is in-process: writes made through this store are reported
//! to the monitors subscribed to it, which covers a server with its embedded
//! monitor. SQLite tells no one of other processes' writes; monitors in other
//! processes find them at their next scheduled read.

mod codec;
mod connect;
mod errors;
mod pool;
mod schema;

use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use rucat_core::quota::Usage;
use rucat_core::store::{PageQuery, Store, StoreError, Walk, usage_from_counts};
use rucat_core::{ChangeSink, ChangeSinks, EngineId, EngineRecord, EngineState, Limits, Timestamp};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use codec::{Encoded, decode, decode_count, decode_id, select_engines};
pub use connect::{OpenFailure, SqliteOpenError};
use errors::{is_primary_key_violation, unavailable};
use pool::Pool;
pub use schema::SCHEMA_VERSION;

// The statements that read many rows, each answered from an index (checked
// by `tests::every_read_uses_an_index`). The first page passes `after` as the
// empty string, which sorts before every id, so it too is a search.

/// A page of engines in every state: a walk of the primary key from `?1`.
const PAGE: &str = select_engines!("WHERE id > ?1 ORDER BY id LIMIT ?2");
/// A page of engines in state `?3`: a walk of `engines_state` from `(?3, ?1)`.
const PAGE_IN_STATE: &str = select_engines!("WHERE state = ?3 AND id > ?1 ORDER BY id LIMIT ?2");
/// As [`PAGE`] and [`PAGE_IN_STATE`], reading the index alone.
const PAGE_IDS: &str = "SELECT id FROM engines WHERE id > ?1 ORDER BY id LIMIT ?2";
const PAGE_IDS_IN_STATE: &str =
    "SELECT id FROM engines WHERE state = ?3 AND id > ?1 ORDER BY id LIMIT ?2";
/// The ids of an owner's (`?3`) engines in state `?4`: a walk of
/// `engines_owner` from `(?3, ?4, ?1)`.
const OWNED_IDS: &str =
    "SELECT id FROM engines WHERE owner = ?3 AND state = ?4 AND id > ?1 ORDER BY id LIMIT ?2";
/// The ids of the engines shared with group `?3` in state `?4`: a walk of
/// `engine_shares` from `(?3, ?4, ?1)`.
const SHARED_IDS: &str = "SELECT id FROM engine_shares \
     WHERE group_name = ?3 AND state = ?4 AND id > ?1 ORDER BY id LIMIT ?2";
/// [`SHARED_IDS`] of one owner (`?5`) only (a non-admin asking for someone
/// else's engines): the same walk, filtered.
const SHARED_OWNED_IDS: &str = "SELECT id FROM engine_shares \
     WHERE group_name = ?3 AND state = ?4 AND id > ?1 AND owner = ?5 ORDER BY id LIMIT ?2";
/// How many of owner `?1`'s engines are in each state: a primary-key search
/// of `engine_usage`, a row per state the owner has engines in, however many
/// engines that is.
const USAGE: &str = "SELECT state, n FROM engine_usage WHERE owner = ?1";
/// Engine `?1`'s state if owner `?2` owns it (counted once in [`USAGE`]),
/// else no row: one primary-key read.
const OWN_STATE: &str = "SELECT state, 1 FROM engines WHERE id = ?1 AND owner = ?2";
/// The current revision, inside a quota-checked write's transaction.
const REVISION: &str = "SELECT revision FROM engines WHERE id = ?1";
const GET: &str = select_engines!("WHERE id = ?1");
const INSERT: &str = "INSERT INTO engines (id, revision, state, create_time, lease_owner, \
     lease_expires_at, next_action_at, record, owner, shared) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
/// Binds the columns as [`INSERT`] does, and the expected revision last.
const UPDATE: &str = "UPDATE engines SET revision = ?2, state = ?3, create_time = ?4, \
     lease_owner = ?5, lease_expires_at = ?6, next_action_at = ?7, record = ?8, \
     owner = ?9, shared = ?10 \
     WHERE id = ?1 AND revision = ?11";
/// One pass over `engines_state`, the smallest index that holds every state.
const COUNT_BY_STATE: &str = "SELECT state, COUNT(*) FROM engines GROUP BY state";
/// Mirrors `EngineRecord::is_due`; the `IS NOT NULL` lets SQLite use the
/// partial index `engines_due`.
const DUE: &str = select_engines!(
    "WHERE next_action_at IS NOT NULL AND next_action_at <= ?1 \
     AND (lease_owner IS NULL OR lease_expires_at <= ?1) \
     ORDER BY next_action_at, id LIMIT ?2"
);

/// Engines recorded in a SQLite database file (WAL mode), safe to share
/// between processes.
pub struct SqliteStore {
    pool: Pool,
    feed: ChangeSinks,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file, its parent
    /// directories and the schema if needed, and upgrading an older schema.
    ///
    /// This blocks on file I/O (and on other processes holding the database
    /// lock); from async code call it through `spawn_blocking`, as
    /// [`open_store`](crate::open_store) does.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SqliteOpenError> {
        Ok(Self {
            pool: Pool::open(path.as_ref())?,
            feed: ChangeSinks::default(),
        })
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        self.pool.path()
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

/// Why a fenced write changed no row: the engine is gone or has moved on.
/// Asked after the fact rather than in the write's transaction; either answer
/// was true at some instant, which is all a caller can act on anyway.
fn missing_or_conflict(conn: &Connection, id: EngineId) -> StoreError {
    let exists = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM engines WHERE id = ?1)")
        .and_then(|mut stmt| stmt.query_row([id.as_str()], |row| row.get::<_, bool>(0)));
    match exists {
        Ok(true) => StoreError::Conflict(id),
        Ok(false) => StoreError::NotFound(id),
        Err(e) => unavailable(e),
    }
}

/// The stored form of a revision. Revisions count writes from 1, so one beyond
/// `i64::MAX` cannot be stored and so cannot match anything.
fn stored_revision(revision: u64) -> Option<i64> {
    i64::try_from(revision).ok()
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
        let row = Encoded::new(record, 1)?;
        let id = record.id().clone();
        self.pool
            .write(move |conn| insert_row(conn, &row, id))
            .await?;
        self.feed.recorded(record, 1);
        Ok(())
    }

    async fn insert_within(
        &self,
        record: &EngineRecord,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        if limits.is_unlimited() {
            return self.insert(record).await;
        }
        let row = Encoded::new(record, 1)?;
        let (next, limits) = (record.clone(), limits.clone());
        self.pool
            .write(move |conn| {
                let tx = write_transaction(conn)?;
                let usage = usage(&tx, &limits.owner, next.id())?;
                limits
                    .check(usage, &next, true)
                    .map_err(StoreError::QuotaExceeded)?;
                insert_row(&tx, &row, next.spec.id.clone())?;
                tx.commit().map_err(unavailable)
            })
            .await?;
        self.feed.recorded(record, 1);
        Ok(())
    }

    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        self.pool.read_here(|conn| get_row(conn, id)).await
    }

    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        self.pool
            .read(|conn| {
                let mut stmt = conn
                    .prepare_cached(select_engines!("ORDER BY create_time, id"))
                    .map_err(unavailable)?;
                collect(stmt.query([]).map_err(unavailable)?)
            })
            .await
    }

    async fn list_ids(&self) -> Result<Vec<EngineId>, StoreError> {
        self.pool
            .read(|conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT id FROM engines ORDER BY create_time, id")
                    .map_err(unavailable)?;
                collect_with(stmt.query([]).map_err(unavailable)?, decode_id)
            })
            .await
    }

    async fn page(&self, query: &PageQuery) -> Result<Vec<EngineRecord>, StoreError> {
        let query = query.clone();
        if query.walks() != [Walk::Every] {
            return self
                .pool
                .read(move |conn| {
                    let tx = conn.unchecked_transaction().map_err(unavailable)?;
                    let mut page = Vec::new();
                    for id in walked_ids(&tx, &query)? {
                        // Read in the walks' snapshot: every id is there.
                        page.extend(get_row(&tx, &id)?);
                    }
                    tx.finish().map_err(unavailable)?;
                    Ok(page)
                })
                .await;
        }
        self.pool
            .read(move |conn| {
                paged(
                    conn,
                    &query,
                    [PAGE, PAGE_IN_STATE],
                    decode,
                    EngineRecord::id,
                )
            })
            .await
    }

    async fn page_ids(&self, query: &PageQuery) -> Result<Vec<EngineId>, StoreError> {
        let query = query.clone();
        if query.walks() != [Walk::Every] {
            return self
                .pool
                .read(move |conn| {
                    let tx = conn.unchecked_transaction().map_err(unavailable)?;
                    let ids = walked_ids(&tx, &query)?;
                    tx.finish().map_err(unavailable)?;
                    Ok(ids)
                })
                .await;
        }
        self.pool
            .read(move |conn| {
                paged(
                    conn,
                    &query,
                    [PAGE_IDS, PAGE_IDS_IN_STATE],
                    decode_id,
                    |id| id,
                )
            })
            .await
    }

    async fn count_by_state(&self) -> Result<Vec<(EngineState, u64)>, StoreError> {
        self.pool
            .read(|conn| {
                let mut stmt = conn.prepare_cached(COUNT_BY_STATE).map_err(unavailable)?;
                collect_with(stmt.query([]).map_err(unavailable)?, decode_count)
            })
            .await
    }

    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError> {
        let id = next.id().clone();
        let revisions = stored_revision(expected_revision)
            .zip(expected_revision.checked_add(1).and_then(stored_revision));
        let Some((expected, new)) = revisions else {
            return self
                .pool
                .write(move |conn| Err(missing_or_conflict(conn, id)))
                .await;
        };
        let row = Encoded::new(next, new)?;
        let revision = self
            .pool
            .write(move |conn| {
                if update_row(conn, expected, &row)? == 0 {
                    return Err(missing_or_conflict(conn, id));
                }
                Ok(expected_revision + 1)
            })
            .await?;
        self.feed.recorded(next, revision);
        Ok(revision)
    }

    async fn compare_and_swap_within(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
        limits: &Limits,
    ) -> Result<u64, StoreError> {
        let revisions = stored_revision(expected_revision)
            .zip(expected_revision.checked_add(1).and_then(stored_revision));
        let (Some((expected, new)), false) = (revisions, limits.is_unlimited()) else {
            return self.compare_and_swap(expected_revision, next).await;
        };
        let row = Encoded::new(next, new)?;
        let (written, limits) = (next.clone(), limits.clone());
        let revision = self
            .pool
            .write(move |conn| {
                let tx = write_transaction(conn)?;
                let id = written.id();
                // The fence first: a stale write is a conflict, whatever
                // the quota says. Under the write lock, the answer holds.
                let current: Option<i64> = tx
                    .prepare_cached(REVISION)
                    .and_then(|mut stmt| {
                        stmt.query_row([id.as_str()], |row| row.get(0))
                            .map(Some)
                            .or_else(|e| match e {
                                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                                e => Err(e),
                            })
                    })
                    .map_err(unavailable)?;
                match current {
                    None => return Err(StoreError::NotFound(id.clone())),
                    Some(revision) if revision != expected => {
                        return Err(StoreError::Conflict(id.clone()));
                    }
                    Some(_) => {}
                }
                let usage = usage(&tx, &limits.owner, id)?;
                limits
                    .check(usage, &written, false)
                    .map_err(StoreError::QuotaExceeded)?;
                if update_row(&tx, expected, &row)? == 0 {
                    return Err(StoreError::Conflict(id.clone()));
                }
                tx.commit().map_err(unavailable)?;
                Ok(expected_revision + 1)
            })
            .await?;
        self.feed.recorded(next, revision);
        Ok(revision)
    }

    async fn delete(&self, id: &EngineId, expected_revision: u64) -> Result<(), StoreError> {
        let id = id.clone();
        let Some(expected) = stored_revision(expected_revision) else {
            return self
                .pool
                .write(move |conn| Err(missing_or_conflict(conn, id)))
                .await;
        };
        self.pool
            .write(move |conn| {
                let mut stmt = conn
                    .prepare_cached("DELETE FROM engines WHERE id = ?1 AND revision = ?2")
                    .map_err(unavailable)?;
                let changed = stmt
                    .execute(params![id.as_str(), expected])
                    .map_err(unavailable)?;
                if changed == 0 {
                    return Err(missing_or_conflict(conn, id));
                }
                Ok(())
            })
            .await
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError> {
        let now = now.as_millis();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(DUE).map_err(unavailable)?;
                collect(stmt.query(params![now, limit]).map_err(unavailable)?)
            })
            .await
    }

    async fn subscribe(&self, sink: ChangeSink) {
        self.feed.add(sink);
    }
}

/// A transaction that holds the file's write lock from its start, so that
/// what it reads stays true until it commits, for every process on the file.
fn write_transaction(conn: &Connection) -> Result<Transaction<'_>, StoreError> {
    Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(unavailable)
}

fn insert_row(conn: &Connection, row: &Encoded, id: EngineId) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(INSERT).map_err(unavailable)?;
    match stmt.execute(row.columns().as_slice()) {
        Ok(_) => Ok(()),
        Err(e) if is_primary_key_violation(&e) => Err(StoreError::AlreadyExists(id)),
        Err(e) => Err(unavailable(e)),
    }
}

/// Writes `row` if the stored revision is still `expected`; how many rows
/// changed (0 or 1).
fn update_row(conn: &Connection, expected: i64, row: &Encoded) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(UPDATE).map_err(unavailable)?;
    let mut params = row.columns().to_vec();
    params.push(&expected);
    stmt.execute(params.as_slice()).map_err(unavailable)
}

fn get_row(conn: &Connection, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(GET).map_err(unavailable)?;
    let mut rows = stmt.query([id.as_str()]).map_err(unavailable)?;
    rows.next().map_err(unavailable)?.map(decode).transpose()
}

/// `owner`'s engines other than `except`, as a quota check counts them:
/// the owner's counts, less `except`'s own place in them if it is stored
/// as one of the owner's engines (a restart checks the engine against the
/// others).
fn usage(conn: &Connection, owner: &str, except: &EngineId) -> Result<Usage, StoreError> {
    let mut stmt = conn.prepare_cached(USAGE).map_err(unavailable)?;
    let mut counts = collect_with(stmt.query([owner]).map_err(unavailable)?, decode_count)?;
    let mut stmt = conn.prepare_cached(OWN_STATE).map_err(unavailable)?;
    let own = stmt
        .query(params![except.as_str(), owner])
        .map_err(unavailable)?;
    for (state, _) in collect_with(own, decode_count)? {
        if let Some((_, n)) = counts.iter_mut().find(|(counted, _)| *counted == state) {
            *n = n.saturating_sub(1);
        }
    }
    Ok(usage_from_counts(counts))
}

/// The ids of `query`'s page when it filters by owner or visibility: one
/// indexed walk of at most `limit` ids per [`Walk`] and state, merged by
/// id. Run it in a transaction, so that the walks see one snapshot.
fn walked_ids(conn: &Connection, query: &PageQuery) -> Result<Vec<EngineId>, StoreError> {
    let after = query.after.as_ref().map_or("", EngineId::as_str);
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let states = query.distinct_states();
    let mut ids = Vec::new();
    for walk in query.walks() {
        let (sql, key, owner) = match walk {
            Walk::Every => (PAGE_IDS_IN_STATE, None, None),
            Walk::OwnedBy(owner) => (OWNED_IDS, Some(owner), None),
            Walk::SharedWith { group, owner: None } => (SHARED_IDS, Some(group), None),
            Walk::SharedWith {
                group,
                owner: Some(owner),
            } => (SHARED_OWNED_IDS, Some(group), Some(owner)),
        };
        let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
        for state in &states {
            let rows = match (key, owner) {
                (None, _) => stmt.query(params![after, limit, state.name()]),
                (Some(key), None) => stmt.query(params![after, limit, key, state.name()]),
                (Some(key), Some(owner)) => {
                    stmt.query(params![after, limit, key, state.name(), owner])
                }
            }
            .map_err(unavailable)?;
            ids.extend(collect_with(rows, decode_id)?);
        }
    }
    ids.sort();
    ids.dedup();
    ids.truncate(query.limit);
    Ok(ids)
}

fn collect(rows: rusqlite::Rows<'_>) -> Result<Vec<EngineRecord>, StoreError> {
    collect_with(rows, decode)
}

fn collect_with<T>(
    mut rows: rusqlite::Rows<'_>,
    read: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(unavailable)? {
        items.push(read(row)?);
    }
    Ok(items)
}

/// A page for `query`, read with `[every_state, in_state]` (statements
/// binding `after`, `limit` and, for the second, a state). Several states
/// are one indexed walk each, of at most `limit` rows, merged by id: a
/// walk of the primary key filtered by state would read every engine in
/// the other states, and `state IN (…)` would sort all the matching rows.
/// The walks run in one read transaction, so they see one snapshot.
fn paged<T>(
    conn: &Connection,
    query: &PageQuery,
    [every_state, in_state]: [&str; 2],
    read: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
    id: impl Fn(&T) -> &EngineId,
) -> Result<Vec<T>, StoreError> {
    let after = query.after.as_ref().map_or("", EngineId::as_str);
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let states = query.distinct_states();
    if states.len() == EngineState::ALL.len() {
        let mut stmt = conn.prepare_cached(every_state).map_err(unavailable)?;
        return collect_with(
            stmt.query(params![after, limit]).map_err(unavailable)?,
            read,
        );
    }
    let tx = conn.unchecked_transaction().map_err(unavailable)?;
    let mut items = Vec::new();
    {
        let mut stmt = tx.prepare_cached(in_state).map_err(unavailable)?;
        for state in states {
            let rows = stmt
                .query(params![after, limit, state.name()])
                .map_err(unavailable)?;
            items.extend(collect_with(rows, &read)?);
        }
    }
    tx.finish().map_err(unavailable)?;
    items.sort_by(|a, b| id(a).cmp(id(b)));
    items.truncate(query.limit);
    Ok(items)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rucat_core::{EngineSpec, EngineType};

    use super::*;
    use EngineState::{Running, Terminated, WaitToStart};

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn engine(owner: Option<&str>) -> EngineRecord {
        let spec = EngineSpec {
            id: EngineId::generate(),
            name: "counted".to_owned(),
            engine_type: EngineType::Spark,
            version: "4.3.0".to_owned(),
            configs: BTreeMap::new(),
            token: None,
        };
        let mut record = EngineRecord::new(spec, T0);
        record.owner = owner.map(str::to_owned);
        record
    }

    /// `(owner, state, n)` rows of `sql`, in order.
    fn rows(conn: &Connection, sql: &str) -> Vec<(String, String, i64)> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// `engine_usage` holds exactly what counting the engines answers (and
    /// so no row at 0), and that is `expected`.
    fn assert_counts(path: &Path, expected: &[(&str, EngineState, i64)]) {
        let expected: Vec<_> = expected
            .iter()
            .map(|(owner, state, n)| ((*owner).to_owned(), state.name().to_owned(), *n))
            .collect();
        assert_eq!(exact_counts(path), expected);
    }

    fn exact_counts(path: &Path) -> Vec<(String, String, i64)> {
        let conn = Connection::open(path).unwrap();
        let kept = rows(
            &conn,
            "SELECT owner, state, n FROM engine_usage ORDER BY owner, state",
        );
        let counted = rows(
            &conn,
            "SELECT owner, state, COUNT(*) FROM engines WHERE owner IS NOT NULL \
             GROUP BY owner, state ORDER BY owner, state",
        );
        assert_eq!(kept, counted);
        kept
    }

    /// The per-owner counts stay exact from a file made at schema 3 through
    /// every kind of write, and quota checks read them.
    #[tokio::test]
    async fn usage_counts_stay_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rucat.db");
        // A file as a schema-3 build left it, with engines of two owners
        // and one of no one.
        let alice_running = engine(Some("alice"));
        let bob = engine(Some("bob"));
        {
            let conn = Connection::open(&path).unwrap();
            for step in &schema::MIGRATIONS[..3] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            let mut stopped = engine(Some("alice"));
            stopped.enter(EngineState::Terminated, T0);
            for record in [&alice_running, &stopped, &bob, &engine(None)] {
                let row = Encoded::new(record, 1).unwrap();
                insert_row(&conn, &row, record.id().clone()).unwrap();
            }
            let mut running = alice_running.clone();
            running.enter(EngineState::Running, T0);
            let row = Encoded::new(&running, 2).unwrap();
            assert_eq!(update_row(&conn, 1, &row).unwrap(), 1);
        }

        let store = SqliteStore::open(&path).unwrap();
        assert_counts(
            &path,
            &[
                ("alice", Running, 1),
                ("alice", Terminated, 1),
                ("bob", WaitToStart, 1),
            ],
        );

        // Inserts, with a quota and without, and of no one's.
        let limits = Limits {
            owner: "alice".into(),
            max_engines: Some(10),
            max_running: Some(10),
        };
        let alice_new = engine(Some("alice"));
        store.insert_within(&alice_new, &limits).await.unwrap();
        store.insert(&engine(Some("alice"))).await.unwrap();
        let nobodys = engine(None);
        store.insert(&nobodys).await.unwrap();
        let after_inserts = [
            ("alice", Running, 1),
            ("alice", Terminated, 1),
            ("alice", WaitToStart, 2),
            ("bob", WaitToStart, 1),
        ];
        assert_counts(&path, &after_inserts);
        // An insert refused by its quota or its id leaves the counts be.
        let full = Limits {
            max_engines: Some(4),
            ..limits.clone()
        };
        let err = store.insert_within(&engine(Some("alice")), &full).await;
        assert!(matches!(err, Err(StoreError::QuotaExceeded(_))), "{err:?}");
        let err = store.insert(&alice_new).await;
        assert!(matches!(err, Err(StoreError::AlreadyExists(_))), "{err:?}");

        // What a quota check reads: everything but the engine written.
        let conn = Connection::open(&path).unwrap();
        let running = Usage {
            engines: 4,
            running: 3,
        };
        assert_eq!(usage(&conn, "alice", bob.id()).unwrap(), running);
        assert_eq!(
            usage(&conn, "alice", alice_new.id()).unwrap(),
            Usage {
                engines: 3,
                running: 2,
            }
        );
        // Another owner's engine is not subtracted from alice's counts.
        assert_eq!(usage(&conn, "bob", alice_new.id()).unwrap().engines, 1);
        assert_eq!(usage(&conn, "carol", bob.id()).unwrap(), Usage::default());

        // State changes move a count, through either compare-and-swap;
        // a write that keeps owner and state moves nothing.
        let mut stopping = alice_new.clone();
        stopping.enter(EngineState::Terminated, T0);
        store.compare_and_swap(1, &stopping).await.unwrap();
        let mut restarted = stopping.clone();
        restarted.enter(EngineState::WaitToStart, T0);
        store
            .compare_and_swap_within(2, &restarted, &limits)
            .await
            .unwrap();
        let mut leased = restarted.clone();
        leased.next_action_at = None;
        store.compare_and_swap(3, &leased).await.unwrap();
        let mut nobody_running = nobodys.clone();
        nobody_running.enter(EngineState::Running, T0);
        store.compare_and_swap(1, &nobody_running).await.unwrap();
        // A stale write changes nothing.
        let err = store.compare_and_swap(1, &stopping).await;
        assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
        assert_counts(&path, &after_inserts);

        // An owner change moves the engine between owners, and to or
        // from no one.
        let mut bobs_now = leased.clone();
        bobs_now.owner = Some("bob".into());
        store.compare_and_swap(4, &bobs_now).await.unwrap();
        let mut alices_now = nobody_running.clone();
        alices_now.owner = Some("alice".into());
        store.compare_and_swap(2, &alices_now).await.unwrap();
        let mut disowned = bob.clone();
        disowned.owner = None;
        store.compare_and_swap(1, &disowned).await.unwrap();
        assert_counts(
            &path,
            &[
                ("alice", Running, 2),
                ("alice", Terminated, 1),
                ("alice", WaitToStart, 1),
                ("bob", WaitToStart, 1),
            ],
        );

        // Deletes, down to no row for an owner with no engine left.
        store.delete(bobs_now.id(), 5).await.unwrap();
        store.delete(disowned.id(), 2).await.unwrap();
        store.delete(alice_running.id(), 2).await.unwrap();
        let err = store.delete(alices_now.id(), 1).await;
        assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
        assert_counts(
            &path,
            &[
                ("alice", Running, 1),
                ("alice", Terminated, 1),
                ("alice", WaitToStart, 1),
            ],
        );
    }

    /// The plan SQLite picks for `sql`, one line per step.
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let count = stmt.parameter_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter((0..count).map(|_| "0")))
            .unwrap();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps
    }

    /// Every statement that may read many rows reads them from an index (or
    /// a table without rowid, which is its primary key's index), in the
    /// order it answers in: no table scan, no sort of the matches.
    #[test]
    fn every_read_uses_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rucat.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let cases = [
            (PAGE, "sqlite_autoindex_engines_1 (id>?)"),
            (PAGE_IDS, "COVERING INDEX sqlite_autoindex_engines_1 (id>?)"),
            (PAGE_IN_STATE, "engines_state (state=? AND id>?)"),
            (
                PAGE_IDS_IN_STATE,
                "COVERING INDEX engines_state (state=? AND id>?)",
            ),
            (COUNT_BY_STATE, "COVERING INDEX engines_state"),
            (
                OWNED_IDS,
                "COVERING INDEX engines_owner (owner=? AND state=? AND id>?)",
            ),
            (
                SHARED_IDS,
                "engine_shares USING PRIMARY KEY (group_name=? AND state=? AND id>?)",
            ),
            (
                SHARED_OWNED_IDS,
                "engine_shares USING PRIMARY KEY (group_name=? AND state=? AND id>?)",
            ),
            (USAGE, "engine_usage USING PRIMARY KEY (owner=?)"),
            (OWN_STATE, "sqlite_autoindex_engines_1 (id=?)"),
            (DUE, "engines_due (next_action_at>? AND next_action_at<?)"),
        ];
        for (sql, index) in cases {
            let steps = plan(&conn, sql);
            let text = steps.join("\n");
            println!("{sql}\n  {}", steps.join("\n  "));
            assert!(text.contains(index), "{sql}: {text}");
            assert!(!text.contains("TEMP B-TREE"), "{sql}: {text}");
            for step in &steps {
                let indexed = step.contains("INDEX") || step.contains("PRIMARY KEY");
                assert!(indexed, "{sql}: {text}");
            }
        }
    }
}
