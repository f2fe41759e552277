//! The log archive's contract, kept to what both a directory and an object
//! store can do, so either can hold rucat's logs: a finished attempt's log
//! goes in whole from a local file, comes out through a seekable reader
//! (ranged reads on an object store), and whole engines' logs are listed and
//! removed. No appends and no partial rewrites.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncSeek};

use super::LogError;
use serde::{Deserialize, Serialize};

use crate::engine::{EngineId, EngineRecord};
use crate::time::Timestamp;

/// A reader over an archived log: seekable, so a reader can start at the
/// tail or at a time without reading what comes before.
pub trait LogRead: AsyncRead + AsyncSeek + Send + Unpin {}

impl<T: AsyncRead + AsyncSeek + Send + Unpin> LogRead for T {}

/// An archived attempt's log, open for reading.
pub struct LogFile {
    /// Its length in bytes when it was opened (an archived log never changes).
    pub len: u64,
    /// Positioned at its start.
    pub reader: Box<dyn LogRead>,
}

impl fmt::Debug for LogFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFile").field("len", &self.len).finish()
    }
}

/// One attempt whose log is in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchivedAttempt {
    pub attempt: u32,
    /// The archived log's length (after any cut).
    pub bytes: u64,
}

/// What [`LogArchive::archive`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The attempt as archived.
    pub archived: ArchivedAttempt,
    /// Bytes cut from the start of the log to keep it within the size cap.
    pub cut: u64,
    /// Older attempts removed to keep the last K.
    pub removed: Vec<u32>,
}

/// What an archive keeps of a deleted engine: when it was deleted (for
/// retention) and whom it belonged to, so that the users who could see the
/// engine (see [`crate::Identity::may_see_owned`]) can still read its logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub deleted_at: Timestamp,
    /// `None`: an engine without owner, whose logs only admins read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub share_with_groups: BTreeSet<String>,
}

impl Tombstone {
    /// The tombstone of `record`, deleted at `at`.
    pub fn of(record: &EngineRecord, at: Timestamp) -> Self {
        Self {
            deleted_at: at,
            owner: record.owner.clone(),
            share_with_groups: record.share_with_groups.clone(),
        }
    }

    /// Reads what [`Tombstone::to_bytes`] wrote. An earlier archive wrote
    /// only the time in Unix milliseconds: that engine had no owner.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if let Ok(tombstone) = serde_json::from_slice(bytes) {
            return Some(tombstone);
        }
        let millis = std::str::from_utf8(bytes)
            .ok()?
            .trim()
            .parse::<i64>()
            .ok()?;
        Some(Self {
            deleted_at: Timestamp::from_millis(millis),
            owner: None,
            share_with_groups: BTreeSet::new(),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings and a timestamp always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What [`LogArchive::sweep`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Deleted engines whose logs outlived their time.
    pub engines_removed: u32,
    /// Attempts beyond the last K of an engine (after a retention change).
    pub attempts_removed: u32,
    /// Leftovers of archiving interrupted by a crash.
    pub stale_temp_files_removed: u32,
    /// Engines the sweep could not finish; logged, and tried again next time.
    pub engines_failed: u32,
}

/// Where engines' logs are kept after their engines are gone.
///
/// Object-safe, to be shared as `Arc<dyn LogArchive>`. Reads of what is not
/// there (an unknown engine, an attempt never archived or already removed)
/// are `Ok(None)` or empty, not errors: a log is often legitimately missing.
#[async_trait]
pub trait LogArchive: Send + Sync {
    /// Stores a finished attempt's log from the local file `source`,
    /// replacing any earlier copy of that attempt, atomically: a reader sees
    /// the old copy or the whole new one. Keeps the last
    /// [`max_bytes_per_attempt`](super::Retention::max_bytes_per_attempt)
    /// bytes, and then only the engine's last
    /// [`keep_attempts`](super::Retention::keep_attempts) attempts.
    async fn archive(
        &self,
        engine: &EngineId,
        attempt: u32,
        source: &Path,
    ) -> Result<ArchiveReport, LogError>;

    /// Opens an attempt's log for reading; `None` if it is not archived.
    async fn open(&self, engine: &EngineId, attempt: u32) -> Result<Option<LogFile>, LogError>;

    /// An engine's archived attempts, oldest first; empty if none.
    async fn attempts(&self, engine: &EngineId) -> Result<Vec<ArchivedAttempt>, LogError>;

    /// Records, durably, that the engine was deleted, with who may still
    /// read its logs: they stay readable until a [`sweep`](LogArchive::sweep)
    /// at least [`deleted_engine_ttl`](super::Retention::deleted_engine_ttl)
    /// after [`Tombstone::deleted_at`]. Recording it again keeps the first.
    async fn engine_deleted(
        &self,
        engine: &EngineId,
        tombstone: &Tombstone,
    ) -> Result<(), LogError>;

    /// The engine's tombstone, if it was recorded deleted.
    async fn tombstone(&self, engine: &EngineId) -> Result<Option<Tombstone>, LogError>;

    /// Applies retention as of `now`: removes deleted engines' logs past
    /// their time, attempts beyond the last K, and leftovers of interrupted
    /// archiving.
    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, LogError>;
}
