//! The SurrealQL rucat runs. Every write is one statement whose `WHERE`
//! carries the fence, so check and write are one atomic step in SurrealDB's
//! transaction, never a read followed by a write.

/// The table, created once per database; SurrealDB 3 refuses writes to a table
/// that was never defined. The index serves `due`.
pub(super) const SCHEMA: &str = "DEFINE TABLE IF NOT EXISTS engine SCHEMALESS; \
     DEFINE INDEX IF NOT EXISTS engine_next_action ON engine FIELDS next_action_at;";

/// Fails with "already exists" if the id is taken.
pub(super) const INSERT: &str = "CREATE type::record('engine', $id) CONTENT $doc RETURN NONE";

pub(super) const GET: &str = "SELECT engine_id, revision, record FROM type::record('engine', $id)";

pub(super) const LIST: &str =
    "SELECT engine_id, revision, record, create_time FROM engine ORDER BY create_time, engine_id";

pub(super) const LIST_IDS: &str =
    "SELECT engine_id, create_time FROM engine ORDER BY create_time, engine_id";

/// Replaces the document if its revision is still `$expected`; returns the
/// new revision, or nothing if the fence did not hold (or the engine is gone).
pub(super) const COMPARE_AND_SWAP: &str = "UPDATE type::record('engine', $id) CONTENT $doc \
     WHERE revision = $expected RETURN VALUE revision";

/// Removes the document if its revision is still `$expected`; returns what
/// was removed, or nothing.
pub(super) const DELETE: &str =
    "DELETE type::record('engine', $id) WHERE revision = $expected RETURN VALUE $before.revision";

/// The current revision, if the engine exists: why a fenced write changed nothing.
pub(super) const REVISION: &str = "SELECT VALUE revision FROM type::record('engine', $id)";

/// Mirrors `EngineRecord::is_due`. Absent fields are `NONE`, which compares
/// below every number, hence the explicit checks.
pub(super) const DUE: &str = "SELECT engine_id, revision, record, next_action_at FROM engine \
     WHERE next_action_at != NONE AND next_action_at <= $now \
     AND (lease_owner = NONE OR lease_expires_at <= $now) \
     ORDER BY next_action_at, engine_id LIMIT $limit";

/// The change feed: every engine written, by anyone, as `decode` reads it.
pub(super) const LIVE: &str = "LIVE SELECT engine_id, revision, record FROM engine";
