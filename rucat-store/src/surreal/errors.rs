//! How SurrealDB's failures become [`StoreError`]s.

use rucat_core::EngineId;
use rucat_core::store::StoreError;
use surrealdb::types::{ErrorDetails, QueryError};

/// A failure of the database or of the connection to it: the server is down,
/// restarting or overloaded. The caller may retry.
pub(super) fn unavailable(error: &surrealdb::Error) -> StoreError {
    StoreError::Unavailable(format!("SurrealDB: {error}"))
}

/// Whether the transaction lost an optimistic-concurrency race. SurrealDB's
/// embedded engines report the loser of a conditional write race this way
/// instead of as a write that matched nothing.
pub(super) fn is_transaction_conflict(error: &surrealdb::Error) -> bool {
    matches!(
        error.details(),
        ErrorDetails::Query(Some(QueryError::TransactionConflict))
    ) || error.message().contains("Transaction conflict")
        || error.message().contains("transaction conflict")
}

/// A conditional write that errored: a lost race is a [`StoreError::Conflict`]
/// (never a success), anything else the store being unavailable.
pub(super) fn write_failed(id: &EngineId, error: &surrealdb::Error) -> StoreError {
    if is_transaction_conflict(error) {
        StoreError::Conflict(id.clone())
    } else {
        unavailable(error)
    }
}

/// Whether a `CREATE` failed because the record is already there.
pub(super) fn is_already_exists(error: &surrealdb::Error) -> bool {
    error.is_already_exists() || error.message().contains("already exists")
}
