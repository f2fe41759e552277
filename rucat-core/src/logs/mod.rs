//! Engine logs that outlive their engine: the one home of the log archive.
//!
//! A user needs an engine's log most when the engine is gone: it failed, or
//! it was stopped and its work directory (locally) or pod (on Kubernetes)
//! removed with it. So a resource manager hands each finished run's log to a
//! [`LogArchive`] before it removes the engine's resources, and rucat serves
//! it from there.
//!
//! - **Attempts.** Every start of an engine is an attempt, numbered from 1
//!   (as in [`crate::attempt`]), and each has its own log: a log is keyed by
//!   `(EngineId, attempt)`, so a restart never overwrites the log that
//!   explains why the previous run failed.
//! - **Pluggable.** [`LogArchive`] is a trait of whole-object operations an
//!   object store can also do (put a finished file, read with a seekable
//!   ranged reader, list, delete): [`FsLogArchive`] keeps logs in a
//!   directory; an S3-compatible backend (`object_store`, whose
//!   `buffered::BufReader` is a tokio `AsyncRead + AsyncSeek`) can implement
//!   the same trait.
//! - **Retention** ([`Retention`]). Logs are bounded three ways, so an
//!   archive cannot grow without end: the last K attempts of an engine are
//!   kept, a deleted engine's logs are kept for a while, still readable by whoever could see the engine
//!   ([`LogArchive::engine_deleted`] with a [`Tombstone`],
//!   then [`LogArchive::sweep`]), and each attempt keeps at most its last
//!   `max_bytes_per_attempt` bytes ([`cap`]): the end of a log is where a
//!   failure is explained.
//! - **Bounded memory.** Logs can be hundreds of megabytes. Nothing here
//!   reads one whole: archiving streams, [`read::tail_start`] reads backwards
//!   in fixed chunks and [`read::since_start`] scans forwards in fixed chunks;
//!   both only find where to start, and the caller streams from there.
//! - **Secrets.** Spark may print what it was given, including the engine's
//!   own [`crate::EngineToken`]. Everything served goes through a
//!   [`Redactor`], which replaces given secrets with `<redacted>` even when
//!   they straddle two reads. Archives keep the log as written, so redaction
//!   covers secrets learned after archiving too.

pub mod archive;
pub mod cap;
pub mod config;
pub mod follow;
pub mod fs;
pub mod keep;
pub mod open;
pub mod read;
pub mod reason;
pub mod redact;

use std::path::PathBuf;
use std::time::Duration;

pub use archive::{
    ArchiveReport, ArchivedAttempt, LogArchive, LogFile, LogRead, SweepReport, Tombstone,
};
pub use config::{ArchiveConfig, LogsConfig, LogsConfigError, S3ArchiveConfig};
pub use fs::FsLogArchive;
pub use keep::{KeepError, archive_current, sweep_every};
pub use open::{EngineLogs, LogBody, LogRequest, OpenLogError, Source};
pub use read::{Selection, select, since_start, tail_start};
pub use redact::{Redacted, Redactor};

/// How much of engines' logs an archive keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The last this many attempts of an engine are kept; older ones are
    /// removed when a newer one is archived. At least one is always kept.
    pub keep_attempts: u32,
    /// How long a deleted engine's logs stay readable before a sweep
    /// removes them.
    pub deleted_engine_ttl: Duration,
    /// Each attempt keeps at most its last this many bytes (from a line
    /// boundary, after a first line saying how much was cut).
    pub max_bytes_per_attempt: u64,
}

impl Retention {
    /// [`Retention::keep_attempts`], never below one: archiving an attempt
    /// and removing it at once would only lose the log.
    pub fn attempts_kept(&self) -> usize {
        usize::try_from(self.keep_attempts.max(1)).unwrap_or(usize::MAX)
    }
}

impl Default for Retention {
    /// The last 5 attempts, deleted engines' logs for 7 days, 64 MiB an attempt.
    fn default() -> Self {
        Self {
            keep_attempts: 5,
            deleted_engine_ttl: Duration::from_secs(7 * 24 * 60 * 60),
            max_bytes_per_attempt: 64 * 1024 * 1024,
        }
    }
}

/// What can go wrong keeping or reading logs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The log to archive is not a regular file.
    #[error("{} is not a log file", .0.display())]
    NotAFile(PathBuf),
    /// Attempts are numbered from 1.
    #[error("attempt 0 does not exist: attempts are numbered from 1")]
    AttemptZero,
    /// A backend's own failure (an object store's, say).
    #[error("log archive: {0}")]
    Backend(String),
}

impl LogError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
