//! The log archive in an S3-compatible bucket: `<prefix>/<engine id>/<attempt>.log`,
//! through the `object_store` crate.
//!
//! It keeps [`FsLogArchive`](rucat_core::logs::FsLogArchive)'s semantics
//! with what an object store gives:
//!
//! - **Atomic replacement.** A log is uploaded with a streamed multipart
//!   upload (a single PUT when it is small), which S3 makes visible only
//!   when it completes: a reader sees the old copy or the whole new one,
//!   never part of one. An upload that fails is aborted; one interrupted by
//!   a crash leaves only invisible parts, which a bucket lifecycle rule
//!   (`AbortIncompleteMultipartUpload`) removes, so a sweep has no temporary
//!   files to remove here.
//! - **Bounded memory.** Uploads go in parts of [`PART_SIZE`] with at most
//!   [`UPLOAD_CONCURRENCY`] in flight; reads are ranged GETs of a bounded
//!   size ([`reader`](super::reader)), pinned to the version opened.
//! - **Deletion.** An engine's deletion is an object `<prefix>/<engine id>/deleted`
//!   holding its [`Tombstone`], as the filesystem backend's `deleted` file
//!   does: durable, and shared by every process using the bucket. An
//!   unreadable one counts from its last-modified time, for admins only.
//! - **Foreign keys.** Keys that are not rucat's (another engine id form,
//!   other names) are left alone and never read as logs.
//! - **Secrets.** The secret access key is never in `Debug` output or an
//!   error message.

use std::fmt;
use std::io;
use std::path::Path as LocalPath;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use rucat_core::engine::EngineId;
use rucat_core::logs::cap;
use rucat_core::logs::{
    ArchiveReport, ArchivedAttempt, LogArchive, LogError, LogFile, Retention, S3ArchiveConfig,
    SweepReport, Tombstone,
};
use rucat_core::time::Timestamp;
use tokio::io::AsyncWriteExt;

use super::reader::RangedReader;

/// The object recording an engine's deletion ([`Tombstone::to_bytes`]).
const DELETED: &str = "deleted";

/// A deletion record larger than this is not one.
const MAX_TOMBSTONE: u64 = 64 * 1024;

/// The size of an upload's parts (S3's minimum is 5 MiB), and of the buffer
/// a log smaller than it is sent from in one PUT.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one upload in flight at once.
pub const UPLOAD_CONCURRENCY: usize = 2;

/// How long connecting to the service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request may take, a part's upload included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Retries of a failed request, and how long retrying may go on.
const MAX_RETRIES: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// Engines' logs in an S3-compatible bucket.
pub struct S3LogArchive {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: Option<Path>,
    endpoint: Option<String>,
    retention: Retention,
    /// Kept only to take it out of error messages, should a service echo it.
    secret: Option<rucat_core::Secret>,
    fetched: Arc<AtomicU64>,
}

impl fmt::Debug for S3LogArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3LogArchive")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix.as_ref().map(Path::as_ref))
            .field("endpoint", &self.endpoint)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// Why an [`S3LogArchive`] could not be set up: the `logs.archive.S3` key at
/// fault and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("logs.archive.S3{key}: {reason}")]
pub struct S3SetupError {
    /// `""` for the section as a whole, else `.` and the key.
    pub key: &'static str,
    pub reason: String,
}

impl S3LogArchive {
    /// An archive in the configured bucket. Credentials not in `config` come
    /// from the environment (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`,
    /// a web identity token, container or instance credentials). Nothing is
    /// sent until the archive is used.
    pub fn new(config: &S3ArchiveConfig, retention: Retention) -> Result<Self, S3SetupError> {
        let error = |key, reason: String| S3SetupError { key, reason };
        if config.bucket.is_empty() {
            return Err(error(".bucket", "must not be empty".into()));
        }
        if config.access_key_id.is_some() != config.secret_access_key.is_some() {
            return Err(error(
                "",
                "give both access_key_id and secret_access_key, or neither".into(),
            ));
        }
        let prefix = config.prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(Path::parse(prefix).map_err(|e| error(".prefix", e.to_string()))?)
        };
        if let Some(endpoint) = &config.endpoint {
            let rest = if let Some(rest) = endpoint.strip_prefix("http://") {
                if !config.allow_http {
                    return Err(error(
                        ".endpoint",
                        "an http:// endpoint needs \"allow_http\": true".into(),
                    ));
                }
                rest
            } else if let Some(rest) = endpoint.strip_prefix("https://") {
                rest
            } else {
                return Err(error(
                    ".endpoint",
                    format!("{endpoint:?} is not an http:// or https:// URL"),
                ));
            };
            if rest.is_empty() || rest.starts_with('/') {
                return Err(error(".endpoint", format!("{endpoint:?} names no host")));
            }
        }

        let client = ClientOptions::new()
            .with_allow_http(config.allow_http)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let retry = RetryConfig {
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_TIMEOUT,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret.expose_str());
        }
        let secret = config.secret_access_key.clone();
        let store: AmazonS3 = builder.build().map_err(|e| {
            let reason = scrub(e.to_string(), secret.as_ref());
            if reason.contains("ndpoint") || reason.contains("URL") {
                error(".endpoint", reason)
            } else if reason.contains("egion") {
                error(".region", reason)
            } else {
                error("", reason)
            }
        })?;
        Ok(Self {
            store: Arc::new(store),
            bucket: config.bucket.clone(),
            prefix,
            endpoint: config.endpoint.clone(),
            retention,
            secret,
            fetched: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Bytes of logs fetched from the bucket by this archive's readers so far.
    pub fn bytes_read(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    fn engine_prefix(&self, engine: &EngineId) -> Path {
        match &self.prefix {
            Some(prefix) => prefix.clone().join(engine.as_str()),
            None => Path::from_iter([engine.as_str()]),
        }
    }

    fn attempt_key(&self, engine: &EngineId, attempt: u32) -> Path {
        self.engine_prefix(engine)
            .join(format!("{attempt}.log").as_str())
    }

    fn marker_key(&self, engine: &EngineId) -> Path {
        self.engine_prefix(engine).join(DELETED)
    }

    /// A [`LogError::Backend`] saying what failed, without the secret.
    fn failed(&self, action: &str, key: &Path, e: impl fmt::Display) -> LogError {
        LogError::Backend(scrub(
            format!("cannot {action} s3://{}/{key}: {e}", self.bucket),
            self.secret.as_ref(),
        ))
    }

    /// Attempts under an engine's prefix, oldest first; empty if none.
    async fn list(&self, engine: &EngineId) -> Result<Vec<ArchivedAttempt>, LogError> {
        let dir = self.engine_prefix(engine);
        let listed = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| self.failed("list", &dir, e))?;
        let mut attempts: Vec<ArchivedAttempt> = listed
            .objects
            .iter()
            .filter_map(|meta| {
                let attempt = meta.location.filename().and_then(attempt_of)?;
                Some(ArchivedAttempt {
                    attempt,
                    bytes: meta.size,
                })
            })
            .collect();
        attempts.sort_by_key(|a| a.attempt);
        Ok(attempts)
    }

    /// Removes all but the last K attempts of an engine.
    async fn prune(&self, engine: &EngineId) -> Result<Vec<u32>, LogError> {
        let attempts = self.list(engine).await?;
        let excess = attempts
            .len()
            .saturating_sub(self.retention.attempts_kept());
        let mut removed = Vec::new();
        for old in &attempts[..excess] {
            let key = self.attempt_key(engine, old.attempt);
            match self.store.delete(&key).await {
                Ok(()) => removed.push(old.attempt),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed("remove", &key, e)),
            }
        }
        Ok(removed)
    }

    /// Removes everything under an engine's prefix, its deletion record
    /// last (so a sweep that fails part way is tried again); whether there
    /// was anything.
    async fn remove_engine(&self, engine: &EngineId) -> Result<bool, LogError> {
        let dir = self.engine_prefix(engine);
        let marker = self.marker_key(engine);
        let mut keys: Vec<Path> = self
            .store
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| self.failed("list", &dir, e))?;
        if keys.is_empty() {
            return Ok(false);
        }
        keys.sort_by_key(|key| *key == marker);
        for key in &keys {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed("remove", key, e)),
            }
        }
        Ok(true)
    }

    /// Applies retention to one engine, adding to `report`.
    async fn sweep_engine(
        &self,
        engine: &EngineId,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), LogError> {
        if let Some(tombstone) = self.tombstone(engine).await? {
            if now >= tombstone.deleted_at.plus(self.retention.deleted_engine_ttl) {
                if self.remove_engine(engine).await? {
                    report.engines_removed += 1;
                }
                return Ok(());
            }
        }
        let removed = self.prune(engine).await?;
        report.attempts_removed += u32::try_from(removed.len()).unwrap_or(u32::MAX);
        Ok(())
    }

    /// Streams the first `len` bytes of `input` (capped) into `key`.
    async fn upload(
        &self,
        input: &mut tokio::fs::File,
        len: u64,
        key: &Path,
    ) -> Result<u64, LogError> {
        let mut writer = BufWriter::with_capacity(Arc::clone(&self.store), key.clone(), PART_SIZE)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        let cap = self.retention.max_bytes_per_attempt;
        let cut = match cap::copy_tail(input, len, cap, &mut writer).await {
            Ok(cut) => cut,
            Err(e) => {
                // Writing failed before the upload completed: nothing was
                // made visible; its parts are dropped.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(
                        "log archive: {}",
                        self.failed("abort the upload of", key, abort)
                    );
                }
                return Err(self.failed("upload", key, io_message(&e)));
            }
        };
        writer
            .shutdown()
            .await
            .map_err(|e| self.failed("upload", key, io_message(&e)))?;
        Ok(cut)
    }
}

#[async_trait]
impl LogArchive for S3LogArchive {
    async fn archive(
        &self,
        engine: &EngineId,
        attempt: u32,
        source: &LocalPath,
    ) -> Result<ArchiveReport, LogError> {
        if attempt == 0 {
            return Err(LogError::AttemptZero);
        }
        let local = |action| {
            let path = source.to_owned();
            move |source| LogError::Io {
                action,
                path,
                source,
            }
        };
        let mut input = tokio::fs::File::open(source).await.map_err(local("open"))?;
        let meta = input.metadata().await.map_err(local("inspect"))?;
        if !meta.is_file() {
            return Err(LogError::NotAFile(source.to_owned()));
        }
        let len = meta.len();
        let key = self.attempt_key(engine, attempt);
        let cut = self.upload(&mut input, len, &key).await?;
        let cap = self.retention.max_bytes_per_attempt;
        let bytes = if cut > 0 {
            len - cut + cap::cut_note(cut, cap).len() as u64
        } else {
            len
        };
        let removed = self.prune(engine).await?;
        Ok(ArchiveReport {
            archived: ArchivedAttempt { attempt, bytes },
            cut,
            removed,
        })
    }

    async fn open(&self, engine: &EngineId, attempt: u32) -> Result<Option<LogFile>, LogError> {
        if attempt == 0 {
            return Ok(None);
        }
        let key = self.attempt_key(engine, attempt);
        let meta = match self.store.head(&key).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed("open", &key, e)),
        };
        let reader = RangedReader::new(
            Arc::clone(&self.store),
            key,
            meta.e_tag,
            meta.size,
            Arc::clone(&self.fetched),
        );
        Ok(Some(LogFile {
            len: meta.size,
            reader: Box::new(reader),
        }))
    }

    async fn attempts(&self, engine: &EngineId) -> Result<Vec<ArchivedAttempt>, LogError> {
        self.list(engine).await
    }

    async fn engine_deleted(
        &self,
        engine: &EngineId,
        tombstone: &Tombstone,
    ) -> Result<(), LogError> {
        if self.tombstone(engine).await?.is_some() {
            return Ok(());
        }
        // Recorded even with no logs yet: one archived after the deletion
        // (by a cleanup still under way) is then removed in time too.
        let key = self.marker_key(engine);
        let payload = PutPayload::from(tombstone.to_bytes());
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        // Only if absent, so the first time wins a race too; a service that
        // cannot put conditionally gets a plain put, as a directory does.
        match self.store.put_opts(&key, payload.clone(), create).await {
            Ok(_)
            | Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(()),
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => {
                self.store
                    .put(&key, payload)
                    .await
                    .map_err(|e| self.failed("record the deletion in", &key, e))?;
                Ok(())
            }
            Err(e) => Err(self.failed("record the deletion in", &key, e)),
        }
    }

    async fn tombstone(&self, engine: &EngineId) -> Result<Option<Tombstone>, LogError> {
        let key = self.marker_key(engine);
        let got = match self.store.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed("read", &key, e)),
        };
        let modified = got.meta.last_modified.timestamp_millis();
        let bytes = if got.meta.size <= MAX_TOMBSTONE {
            got.bytes()
                .await
                .map_err(|e| self.failed("read", &key, e))?
        } else {
            bytes::Bytes::new()
        };
        if let Some(tombstone) = Tombstone::from_bytes(&bytes) {
            return Ok(Some(tombstone));
        }
        // A damaged record still means deleted: from when it was written,
        // readable by admins only.
        tracing::warn!(%key, "unreadable deletion record; using the object's time");
        Ok(Some(Tombstone {
            deleted_at: Timestamp::from_millis(modified),
            owner: None,
            share_with_groups: Default::default(),
        }))
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, LogError> {
        let mut report = SweepReport::default();
        let root = self.prefix.clone().unwrap_or_default();
        let listed = self
            .store
            .list_with_delimiter(self.prefix.as_ref())
            .await
            .map_err(|e| self.failed("list", &root, e))?;
        for dir in listed.common_prefixes {
            let Some(engine) = dir
                .filename()
                .and_then(|name| name.parse::<EngineId>().ok())
            else {
                continue;
            };
            if let Err(e) = self.sweep_engine(&engine, now, &mut report).await {
                tracing::warn!(%engine, "log retention: {e}");
                report.engines_failed += 1;
            }
        }
        Ok(report)
    }
}

/// The attempt a key's last part holds, if it is `<attempt>.log` as written here.
fn attempt_of(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".log")?;
    let attempt: u32 = digits.parse().ok()?;
    (attempt > 0 && attempt.to_string() == digits).then_some(attempt)
}

/// An upload's I/O error: object_store's own error when it is one.
fn io_message(e: &io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

/// `message` with the secret, should it be there, replaced.
fn scrub(message: String, secret: Option<&rucat_core::Secret>) -> String {
    match secret.map(rucat_core::Secret::expose_str) {
        Some(secret) if !secret.is_empty() && message.contains(secret) => {
            message.replace(secret, "<redacted>")
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_names_are_rucats_only() {
        assert_eq!(attempt_of("1.log"), Some(1));
        assert_eq!(attempt_of("4294967295.log"), Some(u32::MAX));
        for name in [
            "0.log",
            "01.log",
            "x.log",
            "3.txt",
            "4294967296.log",
            "deleted",
        ] {
            assert_eq!(attempt_of(name), None, "{name}");
        }
    }

    #[test]
    fn secrets_are_scrubbed() {
        let secret = rucat_core::Secret::new("s3cr3t");
        assert_eq!(
            scrub("bad s3cr3t here".into(), Some(&secret)),
            "bad <redacted> here"
        );
        assert_eq!(scrub("fine".into(), None), "fine");
    }
}
