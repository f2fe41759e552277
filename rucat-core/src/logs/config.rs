//! `"logs"` in both binaries' config files: where engines' logs are
//! archived and how long they are kept. Defined once here so that the
//! server (which serves logs) and every monitor (which archives them) read
//! it the same way: they must point at the same archive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::Retention;
use crate::secret::Secret;

/// `"logs"`: every key has a default, so an absent section archives into
/// `<data_dir>/logs` with the default [`Retention`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Where archived logs go; a directory under the data directory unless
    /// given.
    pub archive: Option<ArchiveConfig>,
    /// The last this many attempts of each engine keep their logs (at least 1).
    pub keep_attempts: u32,
    /// How long a deleted engine's logs stay readable, in seconds.
    pub deleted_engine_ttl_secs: u64,
    /// Each attempt keeps at most its last this many bytes.
    pub max_bytes_per_attempt: u64,
    /// How often logs past their retention are removed, in seconds (at least 1).
    pub sweep_interval_secs: u64,
}

impl Default for LogsConfig {
    fn default() -> Self {
        let retention = Retention::default();
        Self {
            archive: None,
            keep_attempts: retention.keep_attempts,
            deleted_engine_ttl_secs: retention.deleted_engine_ttl.as_secs(),
            max_bytes_per_attempt: retention.max_bytes_per_attempt,
            sweep_interval_secs: 60 * 60,
        }
    }
}

/// `"logs": {"archive": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ArchiveConfig {
    /// A local (or shared, mounted) directory.
    Filesystem { dir: PathBuf },
    /// An S3-compatible object store.
    S3(S3ArchiveConfig),
}

/// An S3-compatible bucket. Credentials not given here come from the
/// environment the way AWS tools take them (`AWS_ACCESS_KEY_ID`, a web
/// identity token, an instance profile).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3ArchiveConfig {
    pub bucket: String,
    /// Key prefix of every log, e.g. `rucat/logs`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// An S3-compatible service's URL (MinIO, Ceph, …); AWS when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Allows an `http://` endpoint (a test server, a service inside the
    /// cluster's network).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_prefix() -> String {
    "rucat/logs".to_owned()
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// A value of `"logs"` that breaks a rule: the key and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("logs.{key}: {reason}")]
pub struct LogsConfigError {
    pub key: &'static str,
    pub reason: &'static str,
}

impl LogsConfig {
    /// The rules serde cannot say.
    pub fn check(&self) -> Result<(), LogsConfigError> {
        let error = |key, reason| Err(LogsConfigError { key, reason });
        if self.keep_attempts == 0 {
            return error("keep_attempts", "must be at least 1");
        }
        if self.sweep_interval_secs == 0 {
            return error("sweep_interval_secs", "must be at least 1");
        }
        if self.max_bytes_per_attempt < 1024 {
            return error("max_bytes_per_attempt", "must be at least 1024");
        }
        if let Some(ArchiveConfig::S3(s3)) = &self.archive {
            if s3.bucket.is_empty() {
                return error("archive.S3.bucket", "must not be empty");
            }
            if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
                return error(
                    "archive.S3",
                    "give both access_key_id and secret_access_key, or neither",
                );
            }
        }
        Ok(())
    }

    pub fn retention(&self) -> Retention {
        Retention {
            keep_attempts: self.keep_attempts,
            deleted_engine_ttl: Duration::from_secs(self.deleted_engine_ttl_secs),
            max_bytes_per_attempt: self.max_bytes_per_attempt,
        }
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs)
    }

    /// The archive to use: as configured, else `<data_dir>/logs`.
    pub fn archive_or_default(&self, data_dir: &Path) -> ArchiveConfig {
        self.archive
            .clone()
            .unwrap_or_else(|| ArchiveConfig::Filesystem {
                dir: data_dir.join("logs"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LogsConfig, String> {
        let config: LogsConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        config.check().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn an_empty_section_is_the_default_retention_under_the_data_dir() {
        let config = parse("{}").unwrap();
        assert_eq!(config.retention(), Retention::default());
        assert_eq!(config.sweep_interval(), Duration::from_secs(3600));
        assert_eq!(
            config.archive_or_default(Path::new("/data")),
            ArchiveConfig::Filesystem {
                dir: PathBuf::from("/data/logs")
            }
        );
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            r#"{"archive": {"S3": {"bucket": "b", "endpoint": "http://127.0.0.1:9000",
                "access_key_id": "k", "secret_access_key": "s", "allow_http": true}},
                "keep_attempts": 2, "deleted_engine_ttl_secs": 60,
                "max_bytes_per_attempt": 4096, "sweep_interval_secs": 5}"#,
        )
        .unwrap();
        assert_eq!(
            config.retention(),
            Retention {
                keep_attempts: 2,
                deleted_engine_ttl: Duration::from_secs(60),
                max_bytes_per_attempt: 4096
            }
        );
        let Some(ArchiveConfig::S3(s3)) = &config.archive else {
            panic!("{config:?}")
        };
        assert_eq!(s3.prefix, "rucat/logs");
        assert_eq!(s3.region, "us-east-1");
        assert!(s3.allow_http);
        assert!(!format!("{config:?}").contains("\"s\""), "{config:?}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, expected) in [
            (
                r#"{"keep_attempts": 0}"#,
                "logs.keep_attempts: must be at least 1",
            ),
            (
                r#"{"sweep_interval_secs": 0}"#,
                "logs.sweep_interval_secs: must be at least 1",
            ),
            (
                r#"{"max_bytes_per_attempt": 10}"#,
                "logs.max_bytes_per_attempt: must be at least 1024",
            ),
            (
                r#"{"archive": {"S3": {"bucket": ""}}}"#,
                "logs.archive.S3.bucket: must not be empty",
            ),
            (
                r#"{"archive": {"S3": {"bucket": "b", "access_key_id": "k"}}}"#,
                "logs.archive.S3: give both",
            ),
            (r#"{"archive": {"Disk": {}}}"#, "unknown variant `Disk`"),
            (r#"{"keep": 1}"#, "unknown field `keep`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
