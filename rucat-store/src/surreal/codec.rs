//! Between an [`EngineRecord`] and a document of the `engine` table.
//!
//! As in the SQLite store, `record` holds the whole engine as JSON text, so a
//! new `EngineRecord` field needs no migration, and the other fields repeat
//! what queries filter and sort on, written from the same record by the same
//! statement. Timestamps are integer milliseconds so `due` compares numbers.
//! An absent lease, schedule, owner or sharing is an absent field (`NONE`),
//! not `NULL`.
//! `revision` is the truth and overrides the JSON on read.

use rucat_core::store::StoreError;
use rucat_core::{EngineId, EngineRecord, Timestamp};
use serde_json::{Map, Value, json};

/// The document `record` is stored as at `revision` (its own `revision` is
/// ignored).
pub(super) fn encode(record: &EngineRecord, revision: u64) -> Result<Value, StoreError> {
    let id = record.id().as_str();
    let mut stored = record.clone();
    stored.revision = revision;
    let json = serde_json::to_string(&stored)
        .map_err(|e| corrupt(id, format!("cannot be encoded: {e}")))?;
    let mut doc = Map::new();
    doc.insert("engine_id".into(), json!(id));
    doc.insert("revision".into(), json!(revision));
    doc.insert("state".into(), json!(record.state.name()));
    doc.insert("create_time".into(), json!(record.create_time.as_millis()));
    if let Some(lease) = &record.lease {
        doc.insert("lease_owner".into(), json!(lease.owner));
        doc.insert(
            "lease_expires_at".into(),
            json!(lease.expires_at.as_millis()),
        );
    }
    if let Some(at) = record.next_action_at {
        doc.insert("next_action_at".into(), json!(Timestamp::as_millis(at)));
    }
    // Absent, not empty, when there are none: documents from before owners
    // existed look the same, and the share event skips them (see `queries`).
    if let Some(owner) = &record.owner {
        doc.insert("owner".into(), json!(owner));
    }
    if !record.share_with_groups.is_empty() {
        doc.insert("share_with_groups".into(), json!(record.share_with_groups));
    }
    doc.insert("record".into(), Value::String(json));
    Ok(Value::Object(doc))
}

/// Reads a document with at least `engine_id`, `revision` and `record`. A document that is not a valid
/// engine is [`StoreError::Corrupt`], not a panic: it may have been edited by
/// hand or written by a newer rucat.
pub(super) fn decode(doc: &Value) -> Result<EngineRecord, StoreError> {
    let id = doc_id(doc)?;
    let revision = doc
        .get("revision")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .ok_or_else(|| corrupt(id, "the revision is not a positive integer"))?;
    let json = doc
        .get("record")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt(id, "the record is not text"))?;
    let mut record: EngineRecord = serde_json::from_str(json)
        .map_err(|e| corrupt(id, format!("the record is not an engine: {e}")))?;
    if record.id().as_str() != id {
        return Err(corrupt(
            id,
            format!("the record is of engine {}", record.id()),
        ));
    }
    record.revision = revision;
    Ok(record)
}

/// The engine id of a document that has at least `engine_id`.
pub(super) fn decode_id(doc: &Value) -> Result<EngineId, StoreError> {
    let id = doc_id(doc)?;
    id.parse()
        .map_err(|e| corrupt(id, format!("the id is malformed: {e}")))
}

fn doc_id(doc: &Value) -> Result<&str, StoreError> {
    doc.get("engine_id")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("<unknown>", "the engine_id is not text"))
}

fn corrupt(id: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        reason: reason.into(),
    }
}
