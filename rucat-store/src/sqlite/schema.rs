//! The database schema and its upgrades.
//!
//! `PRAGMA user_version` records how many of [`MIGRATIONS`] a file has had.
//! Opening runs the missing ones inside one `BEGIN IMMEDIATE` transaction, so
//! processes opening a new file at the same moment take turns, and the second
//! finds the work done.

use rusqlite::{Connection, TransactionBehavior};

use super::connect::OpenFailure;

/// Step `i` takes a file from schema version `i` to `i + 1`. Append only: a
/// released step never changes, since files out there already ran it.
const MIGRATIONS: &[&str] = &[
    // 1: engines as JSON, plus the fields `due` and `list` query on. The due
    // index leaves out engines at rest, which are most of them over time.
    "CREATE TABLE engines (
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
        WHERE next_action_at IS NOT NULL;",
    // 2: pages of the engines in a state, in id order (`page` with a state
    // filter, the monitor's resync of Running engines), and the per-state
    // counts of `/metrics`, read from this index alone.
    "CREATE INDEX engines_state ON engines (state, id);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(conn: &mut Connection) -> Result<(), OpenFailure> {
    // The usual case, checked without the write lock so that opening does not
    // wait for another process's writes.
    if user_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Again: another process may have migrated since the check above.
    let found = user_version(&tx)?;
    let missing = usize::try_from(found)
        .ok()
        .and_then(|done| MIGRATIONS.get(done..))
        .ok_or(OpenFailure::UnknownSchema {
            found,
            supported: SCHEMA_VERSION,
        })?;
    if missing.is_empty() {
        return Ok(());
    }
    for step in missing {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    tracing::info!(
        from = found,
        to = SCHEMA_VERSION,
        "upgraded the SQLite schema"
    );
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}
