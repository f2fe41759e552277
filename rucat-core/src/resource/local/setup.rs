//! Why the local resource manager cannot run engines: found when it is
//! built (each kind locates its installation then; see
//! [`crate::kind::EngineKind::locate`]), so that a missing or unreadable
//! Spark is reported at startup rather than as a failure of every engine.

use std::path::PathBuf;

/// Why the local resource manager cannot run engines on this machine.
#[derive(Debug, thiserror::Error)]
pub enum LocalSetupError {
    #[error(
        "cannot find Spark: {0}; set `spark_home` in the configuration or SPARK_HOME, \
         or install pyspark (pip install \"pyspark[connect]\")"
    )]
    SparkNotFound(String),
    #[error("no spark-submit at {0}")]
    SparkSubmitMissing(PathBuf),
    #[error(
        "cannot tell the Spark version under {0}: it has neither a RELEASE file \
         nor a jars/spark-core_*.jar"
    )]
    VersionUnknown(PathBuf),
    #[error("cannot use the work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the work directory {0} is not valid UTF-8, which Spark's configuration requires")]
    WorkDirNotUtf8(PathBuf),
    /// A kind other than Spark cannot be run on this machine.
    #[error("cannot run {kind} engines: {reason}")]
    KindUnavailable { kind: String, reason: String },
}
