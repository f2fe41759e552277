//! Log archive backends beyond rucat-core's filesystem one, and
//! [`open_log_archive`], which picks the configured archive so neither binary
//! has to know which it is.

mod reader;
pub mod s3;

use std::sync::Arc;

use rucat_core::logs::{ArchiveConfig, FsLogArchive, LogArchive, Retention};

pub use s3::{S3LogArchive, S3SetupError};

/// The configured log archive could not be set up. The message names the
/// `logs.archive` key at fault, so an operator knows what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogArchiveSetupError {
    #[error("logs.archive.Filesystem.dir: must not be empty")]
    EmptyDir,
    /// Already names the `logs.archive.S3` key at fault.
    #[error(transparent)]
    S3(#[from] S3SetupError),
}

/// Opens the archive `config` describes, keeping logs by `retention`.
/// Nothing is created or contacted yet: a directory is made, and a bucket
/// reached, when the first log is archived.
pub fn open_log_archive(
    config: &ArchiveConfig,
    retention: Retention,
) -> Result<Arc<dyn LogArchive>, LogArchiveSetupError> {
    match config {
        ArchiveConfig::Filesystem { dir } => {
            if dir.as_os_str().is_empty() {
                return Err(LogArchiveSetupError::EmptyDir);
            }
            Ok(Arc::new(FsLogArchive::new(dir, retention)))
        }
        ArchiveConfig::S3(s3) => Ok(Arc::new(S3LogArchive::new(s3, retention)?)),
    }
}
