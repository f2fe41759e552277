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
///
/// Owners and sharing: `engine_owner` serves an owner's pages (a walk per
/// state, as `engine_state` does) and the usage a quota check counts.
/// Documents written before owners existed lack `owner` and stay out of
/// it: only admins see them. SurrealDB indexes no element of an array
/// field that a query can use, so `engine_share` holds one document per
/// engine and group it is shared with (`group_name`, `state`, `engine_id`,
/// `owner`), walked by `engine_share_walk` for pages of what a group's
/// members see. The event `engine_shares` keeps it in step with each
/// engine's `share_with_groups` and `state`, inside the transaction of the
/// write that changes them; engines shared with no one (most) skip it.
/// `engine_quota` holds one document per owner that every quota-checked
/// write of that owner's engines writes (see [`QUOTA_CHECK`]).
pub(super) const SCHEMA: &str = "DEFINE TABLE IF NOT EXISTS engine SCHEMALESS; \
     DEFINE INDEX IF NOT EXISTS engine_due ON engine FIELDS next_action_at, engine_id; \
     REMOVE INDEX IF EXISTS engine_next_action ON engine; \
     DEFINE INDEX IF NOT EXISTS engine_state ON engine FIELDS state, engine_id; \
     DEFINE INDEX IF NOT EXISTS engine_owner ON engine FIELDS owner, state, engine_id; \
     DEFINE TABLE IF NOT EXISTS engine_share SCHEMALESS; \
     DEFINE INDEX IF NOT EXISTS engine_share_walk ON engine_share \
         FIELDS group_name, state, engine_id; \
     DEFINE TABLE IF NOT EXISTS engine_quota SCHEMALESS; \
     DEFINE EVENT IF NOT EXISTS engine_shares ON engine \
         WHEN $before.share_with_groups != NONE OR $after.share_with_groups != NONE \
         THEN { \
             FOR $g IN ($before.share_with_groups ?? []) { \
                 DELETE type::record('engine_share', [$g, $before.engine_id]) \
             }; \
             FOR $g IN ($after.share_with_groups ?? []) { \
                 CREATE type::record('engine_share', [$g, $after.engine_id]) CONTENT { \
                     group_name: $g, state: $after.state, \
                     engine_id: $after.engine_id, owner: $after.owner \
                 } \
             }; \
         };";

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

/// The first statements of a quota-checked write, in its transaction: a
/// write to the owner's `engine_quota` document, then the owner's engines
/// other than `$id` counted per state (from `engine_owner`), then the
/// engine's current revision (none if it does not exist).
///
/// SurrealDB's transactions are optimistic snapshots: two that each count
/// and then write a different engine would both commit (write skew), and
/// both could pass a limit that only one may. The write to the owner's
/// document makes every pair of quota-checked transactions for one owner
/// conflict, so one of them fails at commit and counts again.
pub(super) const QUOTA_CHECK: &str = concat!(
    "UPSERT type::record('engine_quota', $owner) SET writes += 1 RETURN NONE; ",
    usage!(),
    "; SELECT VALUE revision FROM type::record('engine', $id);"
);

/// How many of `$owner`'s engines other than `$id` are in each state, from
/// `engine_owner`: the usage a quota check counts.
macro_rules! usage {
    () => {
        "SELECT state, count() AS count FROM engine \
         WHERE owner = $owner AND engine_id != $id GROUP BY state"
    };
}
use usage;

/// [`QUOTA_CHECK`]'s count alone, for `EXPLAIN`.
pub(super) const USAGE: &str = usage!();

/// One walk of a page filtered by owner or visibility (see `Walk`): the ids
/// of the engines in `state` from `key` (an owner or a group, the name of a
/// bound variable; `None` for every engine), of `owner` only if given,
/// after `$after`, at most `$limit`, from `engine_owner`, `engine_share_walk`
/// or `engine_state`.
pub(super) fn walk(
    source: WalkSource,
    key: &str,
    owner: Option<&str>,
    state: EngineState,
) -> String {
    let state = state.name();
    let (table, filter) = match source {
        WalkSource::Every => ("engine", String::new()),
        WalkSource::Owner => ("engine", format!("owner = ${key} AND ")),
        WalkSource::Group => ("engine_share", format!("group_name = ${key} AND ")),
    };
    let owner = owner.map_or(String::new(), |var| format!(" AND owner = ${var}"));
    format!(
        "SELECT VALUE engine_id FROM {table} WHERE {filter}state = '{state}' \
         AND engine_id > $after{owner} ORDER BY engine_id LIMIT $limit"
    )
}

/// Where a [`walk`] reads.
#[derive(Clone, Copy)]
pub(super) enum WalkSource {
    Every,
    Owner,
    Group,
}

/// The ids of a filtered page: the `walks`' ids merged, each once, in id
/// order, at most `$limit`; one statement, so one snapshot.
pub(super) fn walked_ids(walks: &[String]) -> String {
    let walks: Vec<String> = walks.iter().map(|w| format!("({w})")).collect();
    format!(
        "array::slice(array::sort(array::distinct(array::flatten([{}]))), 0, $limit)",
        walks.join(", ")
    )
}

/// The documents of the engines `ids` (a [`walked_ids`] expression) names,
/// in the same statement as the walks.
pub(super) fn walked_docs(ids: &str, fields: &str) -> String {
    format!("SELECT {fields} FROM array::map({ids}, |$i| type::record('engine', $i))")
}

/// The change feed: every engine written, by anyone, as `decode` reads it.
pub(super) const LIVE: &str = "LIVE SELECT engine_id, revision, record FROM engine";
