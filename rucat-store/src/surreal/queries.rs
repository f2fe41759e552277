//! The SurrealQL rucat runs. Every write is one statement whose `WHERE`
//! carries the fence, so check and write are one atomic step in SurrealDB's
//! transaction, never a read followed by a write.

use rucat_core::EngineState;

/// The table, created once per database; SurrealDB 3 refuses writes to a table
/// that was never defined. `engine_due` serves `due` in its order, so a read
/// of the due list stops after `limit` engines instead of sorting every due
/// one; it replaces `engine_next_action` (on `next_action_at` alone), which
/// earlier versions defined. `engine_state` serves pages of the engines in
/// a state and the per-state counts. `tests/surreal_plans.rs` checks, with
/// SurrealDB's `EXPLAIN`, that every read uses them.
pub(super) const SCHEMA: &str = "DEFINE TABLE IF NOT EXISTS engine SCHEMALESS; \
     DEFINE INDEX IF NOT EXISTS engine_due ON engine FIELDS next_action_at, engine_id; \
     REMOVE INDEX IF EXISTS engine_next_action ON engine; \
     DEFINE INDEX IF NOT EXISTS engine_state ON engine FIELDS state, engine_id;";

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
/// below every number, hence the explicit checks. A walk of `engine_due` in
/// its order, stopping once `$limit` engines pass the lease filter.
pub(super) const DUE: &str = "SELECT engine_id, revision, record, next_action_at FROM engine \
     WHERE next_action_at != NONE AND next_action_at <= $now \
     AND (lease_owner = NONE OR lease_expires_at <= $now) \
     ORDER BY next_action_at, engine_id LIMIT $limit";

/// The fields `decode` reads, and those `decode_id` reads.
pub(super) const RECORD_FIELDS: &str = "engine_id, revision, record";
pub(super) const ID_FIELDS: &str = "engine_id";

/// The first page of engines in every state: the table in record-id order,
/// which is id order, stopping after `$limit`.
pub(super) fn page_first(fields: &str) -> String {
    format!("SELECT {fields} FROM engine ORDER BY id LIMIT $limit")
}

/// A later page of engines in every state: the record-id range after
/// `$after`, stopping after `$limit`. (`WHERE id > …` would scan the table
/// from its start.)
pub(super) fn page_after(fields: &str) -> String {
    format!("SELECT {fields} FROM type::record('engine', $after>..) ORDER BY id LIMIT $limit")
}

/// A page of the engines in `state`: the range of `engine_state` after
/// `(state, $after)`, stopping after `$limit` (`$after` is `""` for the
/// first page). The state is written as a literal, which lets SurrealDB's
/// planner pick the index when it plans rather than when it runs.
pub(super) fn page_in_state(fields: &str, state: EngineState) -> String {
    format!(
        "SELECT {fields} FROM engine WHERE state = '{}' AND engine_id > $after \
         ORDER BY engine_id LIMIT $limit",
        state.name()
    )
}

/// [`page_in_state`] for each of `states`, in one statement (so one snapshot
/// and one round trip) answering one page per state.
pub(super) fn page_in_states(fields: &str, states: &[EngineState]) -> String {
    let selects: Vec<String> = states
        .iter()
        .map(|s| format!("({})", page_in_state(fields, *s)))
        .collect();
    format!("RETURN [{}]", selects.join(", "))
}

/// How many engines are in `state`: a count of `engine_state`'s keys.
pub(super) fn count_in_state(state: EngineState) -> String {
    format!(
        "SELECT count() FROM engine WHERE state = '{}' GROUP ALL",
        state.name()
    )
}

/// [`count_in_state`] for every state of [`EngineState::ALL`], in that
/// order, in one statement: SurrealDB's `GROUP BY state` would read every
/// document instead.
pub(super) fn count_by_state() -> String {
    let counts: Vec<String> = EngineState::ALL
        .into_iter()
        .map(|s| format!("({})", count_in_state(s)))
        .collect();
    format!("RETURN [{}]", counts.join(", "))
}

/// The change feed: every engine written, by anyone, as `decode` reads it.
pub(super) const LIVE: &str = "LIVE SELECT engine_id, revision, record FROM engine";
