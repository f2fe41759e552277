//! Between an [`EngineRecord`] and a row of `engines`.
//!
//! The `record` column holds the whole engine as JSON, so adding a field to
//! `EngineRecord` needs no migration. The other columns repeat the few fields
//! that queries filter and sort on; they are written from the same record in
//! the same statement, so they cannot drift from the JSON. `revision` is the
//! exception: the column is the truth, and it overrides the JSON on read.

use rucat_core::store::StoreError;
use rucat_core::{EngineId, EngineRecord, EngineState, Timestamp};
use rusqlite::ToSql;
use rusqlite::types::ValueRef;

use super::errors::unavailable;

/// Selects the columns [`decode`] reads, in its order, followed by `$rest`.
macro_rules! select_engines {
    ($rest:literal) => {
        concat!("SELECT id, revision, record FROM engines ", $rest)
    };
}
pub(super) use select_engines;

/// A record ready to be bound to an `INSERT` or `UPDATE` of `engines`.
pub(super) struct Encoded {
    pub id: String,
    pub revision: i64,
    pub state: &'static str,
    pub create_time: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub next_action_at: Option<i64>,
    pub record: String,
    pub owner: Option<String>,
    /// The groups the engine is shared with, as a JSON array; `None` when
    /// it is shared with no one.
    pub shared: Option<String>,
}

impl Encoded {
    /// `record` as it is stored at `revision` (its own `revision` is ignored).
    pub fn new(record: &EngineRecord, revision: i64) -> Result<Self, StoreError> {
        let id = record.id().as_str().to_owned();
        let mut stored = record.clone();
        stored.revision = u64::try_from(revision).map_err(|_| StoreError::Corrupt {
            id: id.clone(),
            reason: format!("revision {revision} is negative"),
        })?;
        let json = serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt {
            id: id.clone(),
            reason: format!("cannot be encoded: {e}"),
        })?;
        let lease = record.lease.as_ref();
        let shared = (!record.share_with_groups.is_empty())
            .then(|| serde_json::to_string(&record.share_with_groups))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                id: id.clone(),
                reason: format!("the groups cannot be encoded: {e}"),
            })?;
        Ok(Self {
            id,
            revision,
            state: record.state.name(),
            create_time: record.create_time.as_millis(),
            lease_owner: lease.map(|l| l.owner.clone()),
            lease_expires_at: lease.map(|l| l.expires_at.as_millis()),
            next_action_at: record.next_action_at.map(Timestamp::as_millis),
            record: json,
            owner: record.owner.clone(),
            shared,
        })
    }
}

impl Encoded {
    /// The columns, in the order `INSERT` and `UPDATE` bind them (`?1` to
    /// `?10`): id, revision, state, create_time, lease_owner,
    /// lease_expires_at, next_action_at, record, owner, shared.
    pub fn columns(&self) -> [&dyn ToSql; 10] {
        [
            &self.id,
            &self.revision,
            &self.state,
            &self.create_time,
            &self.lease_owner,
            &self.lease_expires_at,
            &self.next_action_at,
            &self.record,
            &self.owner,
            &self.shared,
        ]
    }
}

/// Reads a row selected by [`select_engines`]. A row that is not a valid
/// engine is [`StoreError::Corrupt`], not a panic: the file may have been
/// edited, or written by a newer rucat.
pub(super) fn decode(row: &rusqlite::Row<'_>) -> Result<EngineRecord, StoreError> {
    let id = row.get_ref(0).map_err(unavailable)?;
    let revision = row.get_ref(1).map_err(unavailable)?;
    let json = row.get_ref(2).map_err(unavailable)?;
    let id = match id {
        ValueRef::Text(text) => String::from_utf8_lossy(text),
        other => {
            return Err(corrupt(
                format!("<{}>", other.data_type()),
                "the id is not text",
            ));
        }
    };
    let revision = match revision {
        ValueRef::Integer(n) => u64::try_from(n).ok().filter(|&n| n > 0),
        _ => None,
    }
    .ok_or_else(|| corrupt(id.to_string(), "the revision is not a positive integer"))?;
    let ValueRef::Text(json) = json else {
        return Err(corrupt(id.to_string(), "the record is not text"));
    };
    let mut record: EngineRecord = serde_json::from_slice(json)
        .map_err(|e| corrupt(id.to_string(), format!("the record is not an engine: {e}")))?;
    if record.id().as_str() != id {
        return Err(corrupt(
            id.to_string(),
            format!("the record is of engine {}", record.id()),
        ));
    }
    record.revision = revision;
    Ok(record)
}

/// The engine id in a row's first column, for queries that need nothing else.
pub(super) fn decode_id(row: &rusqlite::Row<'_>) -> Result<EngineId, StoreError> {
    match row.get_ref(0).map_err(unavailable)? {
        ValueRef::Text(text) => {
            let id = String::from_utf8_lossy(text);
            id.parse()
                .map_err(|e| corrupt(id.to_string(), format!("the id is malformed: {e}")))
        }
        other => Err(corrupt(
            format!("<{}>", other.data_type()),
            "the id is not text",
        )),
    }
}

/// A row of `SELECT state, COUNT(*) … GROUP BY state`. A state this rucat
/// does not know is [`StoreError::Corrupt`], as a record in it would be.
pub(super) fn decode_count(row: &rusqlite::Row<'_>) -> Result<(EngineState, u64), StoreError> {
    let state = match row.get_ref(0).map_err(unavailable)? {
        ValueRef::Text(text) => String::from_utf8_lossy(text),
        other => {
            return Err(corrupt(
                format!("<engines in a state of type {}>", other.data_type()),
                "the state is not text",
            ));
        }
    };
    let known = EngineState::from_name(&state).ok_or_else(|| {
        corrupt(
            format!("<engines in state {state:?}>"),
            "the state is not one this rucat knows",
        )
    })?;
    let count: i64 = row.get(1).map_err(unavailable)?;
    Ok((known, u64::try_from(count).unwrap_or_default()))
}

fn corrupt(id: String, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id,
        reason: reason.into(),
    }
}
