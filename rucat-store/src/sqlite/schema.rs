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
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 3: owners and sharing. `owner` and `shared` (the groups, as a JSON
    // array; NULL when none) repeat the record's fields as the other
    // columns do, filled here from the records already stored: those from
    // before owners existed have neither, so their owner stays NULL and
    // only admins see them. `engines_owner` answers an owner's pages (a
    // walk per state, as `engines_state` does), and until step 4 the usage
    // a quota check counts. `engine_shares` holds one row per engine and group it
    // is shared with, in the same order (with its owner, for a non-admin
    // asking for someone else's engines), for pages of what a group's
    // members see; triggers keep it in step with `shared`, `state` and
    // `owner` inside the statement that writes the engine, so every write stays
    // one atomic statement, and engines shared with no one (most) cost
    // nothing more.
    "ALTER TABLE engines ADD COLUMN owner TEXT;
    ALTER TABLE engines ADD COLUMN shared TEXT;
    UPDATE engines SET
        owner = json_extract(record, '$.owner'),
        shared = CASE WHEN json_array_length(record, '$.share_with_groups') > 0
            THEN json_extract(record, '$.share_with_groups') END
        WHERE json_valid(record);
    CREATE INDEX engines_owner ON engines (owner, state, id);
    CREATE TABLE engine_shares (
        group_name TEXT NOT NULL,
        state TEXT NOT NULL,
        id TEXT NOT NULL,
        owner TEXT,
        PRIMARY KEY (group_name, state, id)
    ) WITHOUT ROWID;
    CREATE INDEX engine_shares_id ON engine_shares (id);
    INSERT OR IGNORE INTO engine_shares (group_name, state, id, owner)
        SELECT g.value, e.state, e.id, e.owner FROM engines e, json_each(e.shared) g
        WHERE e.shared IS NOT NULL;
    CREATE TRIGGER engines_shared_insert AFTER INSERT ON engines
        WHEN NEW.shared IS NOT NULL
    BEGIN
        INSERT OR IGNORE INTO engine_shares (group_name, state, id, owner)
            SELECT value, NEW.state, NEW.id, NEW.owner FROM json_each(NEW.shared);
    END;
    CREATE TRIGGER engines_shared_update AFTER UPDATE ON engines
        WHEN OLD.shared IS NOT NULL OR NEW.shared IS NOT NULL
    BEGIN
        DELETE FROM engine_shares WHERE id = OLD.id;
        INSERT OR IGNORE INTO engine_shares (group_name, state, id, owner)
            SELECT value, NEW.state, NEW.id, NEW.owner FROM json_each(NEW.shared);
    END;
    CREATE TRIGGER engines_shared_delete AFTER DELETE ON engines
        WHEN OLD.shared IS NOT NULL
    BEGIN
        DELETE FROM engine_shares WHERE id = OLD.id;
    END;",
    // 4: how many engines each owner has in each state, for quota checks.
    // Counting them from `engines_owner` on every quota-checked write cost
    // as much as the owner had engines (a create at 10,000 engines ran at a
    // tenth of the speed of one without a quota); this table answers in a
    // few rows whatever the number. Filled from the rows already stored,
    // then kept exact by triggers inside the statement that writes the
    // engine, as `engine_shares` is, so every write stays one atomic
    // statement; an update that changes neither owner nor state (most:
    // leases, revisions, next actions) touches nothing here. Engines
    // without an owner count against no one and are left out. A count
    // reaching 0 is deleted rather than kept: one more primary-key write on
    // a decrement, and the table then holds exactly what counting the
    // engines would answer, with nothing left behind for owners who no
    // longer have engines in a state.
    "CREATE TABLE engine_usage (
        owner TEXT NOT NULL,
        state TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (owner, state)
    ) WITHOUT ROWID;
    INSERT INTO engine_usage (owner, state, n)
        SELECT owner, state, COUNT(*) FROM engines WHERE owner IS NOT NULL
        GROUP BY owner, state;
    CREATE TRIGGER engines_usage_insert AFTER INSERT ON engines
        WHEN NEW.owner IS NOT NULL
    BEGIN
        INSERT INTO engine_usage (owner, state, n) VALUES (NEW.owner, NEW.state, 1)
            ON CONFLICT (owner, state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER engines_usage_update AFTER UPDATE ON engines
        WHEN OLD.owner IS NOT NEW.owner OR OLD.state IS NOT NEW.state
    BEGIN
        UPDATE engine_usage SET n = n - 1 WHERE owner = OLD.owner AND state = OLD.state;
        DELETE FROM engine_usage WHERE owner = OLD.owner AND state = OLD.state AND n <= 0;
        INSERT INTO engine_usage (owner, state, n)
            SELECT NEW.owner, NEW.state, 1 WHERE NEW.owner IS NOT NULL
            ON CONFLICT (owner, state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER engines_usage_delete AFTER DELETE ON engines
        WHEN OLD.owner IS NOT NULL
    BEGIN
        UPDATE engine_usage SET n = n - 1 WHERE owner = OLD.owner AND state = OLD.state;
        DELETE FROM engine_usage WHERE owner = OLD.owner AND state = OLD.state AND n <= 0;
    END;",
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
