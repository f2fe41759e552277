//! A [`Store`] in one SQLite file, shared by every rucat process on the host.
//!
//! Several processes (a server and a monitor) may open the same file, so the
//! only coordination between them is SQLite's own locking: every write is a
//! single atomic statement, and the compare-and-swap lives in the `WHERE`
//! clause of that statement rather than in a read followed by a write.
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
use rucat_core::store::{PageQuery, Store, StoreError};
use rucat_core::{ChangeSink, ChangeSinks, EngineId, EngineRecord, EngineState, Timestamp};
use rusqlite::{Connection, params};

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
            .write(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "INSERT INTO engines (id, revision, state, create_time, lease_owner, \
                         lease_expires_at, next_action_at, record) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(unavailable)?;
                match stmt.execute(params![
                    row.id,
                    row.revision,
                    row.state,
                    row.create_time,
                    row.lease_owner,
                    row.lease_expires_at,
                    row.next_action_at,
                    row.record,
                ]) {
                    Ok(_) => Ok(()),
                    Err(e) if is_primary_key_violation(&e) => Err(StoreError::AlreadyExists(id)),
                    Err(e) => Err(unavailable(e)),
                }
            })
            .await?;
        self.feed.recorded(record, 1);
        Ok(())
    }

    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        self.pool
            .read_here(|conn| {
                let mut stmt = conn
                    .prepare_cached(select_engines!("WHERE id = ?1"))
                    .map_err(unavailable)?;
                let mut rows = stmt.query([id.as_str()]).map_err(unavailable)?;
                rows.next().map_err(unavailable)?.map(decode).transpose()
            })
            .await
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
                let mut stmt = conn
                    .prepare_cached(
                        "UPDATE engines SET revision = ?3, state = ?4, create_time = ?5, \
                         lease_owner = ?6, lease_expires_at = ?7, next_action_at = ?8, \
                         record = ?9 \
                         WHERE id = ?1 AND revision = ?2",
                    )
                    .map_err(unavailable)?;
                let changed = stmt
                    .execute(params![
                        row.id,
                        expected,
                        row.revision,
                        row.state,
                        row.create_time,
                        row.lease_owner,
                        row.lease_expires_at,
                        row.next_action_at,
                        row.record,
                    ])
                    .map_err(unavailable)?;
                if changed == 0 {
                    return Err(missing_or_conflict(conn, id));
                }
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
    use super::*;

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

    /// Every statement that may read many rows reads them from an index,
    /// in the order it answers in: no table scan, no sort of the matches.
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
            (DUE, "engines_due (next_action_at>? AND next_action_at<?)"),
        ];
        for (sql, index) in cases {
            let steps = plan(&conn, sql);
            let text = steps.join("\n");
            println!("{sql}\n  {}", steps.join("\n  "));
            assert!(text.contains(index), "{sql}: {text}");
            assert!(!text.contains("TEMP B-TREE"), "{sql}: {text}");
            for step in &steps {
                assert!(step.contains("INDEX"), "{sql}: {text}");
            }
        }
    }
}
