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
use rucat_core::store::{Store, StoreError};
use rucat_core::{ChangeSink, ChangeSinks, EngineId, EngineRecord, Timestamp};
use rusqlite::{Connection, params};

use codec::{Encoded, decode, decode_id, select_engines};
pub use connect::{OpenFailure, SqliteOpenError};
use errors::{is_primary_key_violation, unavailable};
use pool::Pool;
pub use schema::SCHEMA_VERSION;

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
                let mut rows = stmt.query([]).map_err(unavailable)?;
                let mut ids = Vec::new();
                while let Some(row) = rows.next().map_err(unavailable)? {
                    ids.push(decode_id(row)?);
                }
                Ok(ids)
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
                // Mirrors `EngineRecord::is_due`; the `IS NOT NULL` lets SQLite
                // use the partial index `engines_due`.
                let mut stmt = conn
                    .prepare_cached(select_engines!(
                        "WHERE next_action_at IS NOT NULL AND next_action_at <= ?1 \
                         AND (lease_owner IS NULL OR lease_expires_at <= ?1) \
                         ORDER BY next_action_at, id LIMIT ?2"
                    ))
                    .map_err(unavailable)?;
                collect(stmt.query(params![now, limit]).map_err(unavailable)?)
            })
            .await
    }

    async fn subscribe(&self, sink: ChangeSink) {
        self.feed.add(sink);
    }
}

fn collect(mut rows: rusqlite::Rows<'_>) -> Result<Vec<EngineRecord>, StoreError> {
    let mut records = Vec::new();
    while let Some(row) = rows.next().map_err(unavailable)? {
        records.push(decode(row)?);
    }
    Ok(records)
}
