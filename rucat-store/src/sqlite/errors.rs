//! How SQLite's failures become [`StoreError`]s.

use rucat_core::store::StoreError;
use rusqlite::ffi;

/// Any failure of SQLite itself: a lock held past the busy timeout, a full
/// disk, an I/O error. The caller may retry; the message says which it was.
pub(super) fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("SQLite: {error}"))
}

/// Whether an `INSERT` failed because the engine id is already taken.
pub(super) fn is_primary_key_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_extended_error_code() == Some(ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}
