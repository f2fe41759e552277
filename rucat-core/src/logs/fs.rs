//! The default log archive: a directory, `<dir>/<engine id>/<attempt>.log`.
//!
//! A log is written to a temporary file in its engine's directory and
//! renamed into place, so a reader (or a crash) never sees half of one; the
//! temporary names start with a dot and are never taken for attempts, and a
//! sweep removes those a crash left behind. An engine's deletion is
//! recorded in a `deleted` file in its directory, written the same way, so
//! its time survives restarts and is shared by every process using the
//! directory. Names that are not rucat's (another engine id form, other
//! files) are left alone and never read as logs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::fs;
use tokio::io::AsyncWriteExt;

use super::archive::{ArchiveReport, ArchivedAttempt, LogArchive, LogFile, SweepReport, Tombstone};
use super::{LogError, Retention, cap};
use crate::engine::EngineId;
use crate::time::Timestamp;

/// The file recording an engine's deletion time (Unix milliseconds).
const DELETED: &str = "deleted";

/// A temporary file older than this is a crash's leftover.
const STALE_TEMP: Duration = Duration::from_secs(60 * 60);

/// Makes temporary names unique within a process; the pid across processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Logs kept in a local directory.
#[derive(Clone, Debug)]
pub struct FsLogArchive {
    dir: PathBuf,
    retention: Retention,
}

impl FsLogArchive {
    /// An archive in `dir`, created when the first log is archived.
    pub fn new(dir: impl Into<PathBuf>, retention: Retention) -> Self {
        Self {
            dir: dir.into(),
            retention,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    fn engine_dir(&self, engine: &EngineId) -> PathBuf {
        self.dir.join(engine.as_str())
    }

    fn attempt_path(&self, engine: &EngineId, attempt: u32) -> PathBuf {
        self.engine_dir(engine).join(format!("{attempt}.log"))
    }

    /// Attempts in an engine directory, oldest first; empty if it is missing.
    async fn list(engine_dir: &Path) -> Result<Vec<ArchivedAttempt>, LogError> {
        let mut entries = match fs::read_dir(engine_dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LogError::io("list", engine_dir)(e)),
        };
        let mut attempts = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(LogError::io("list", engine_dir))?
        {
            let Some(attempt) = entry.file_name().to_str().and_then(attempt_of) else {
                continue;
            };
            match entry.metadata().await {
                Ok(meta) if meta.is_file() => attempts.push(ArchivedAttempt {
                    attempt,
                    bytes: meta.len(),
                }),
                Ok(_) => {}
                // Removed by retention since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("inspect", entry.path())(e)),
            }
        }
        attempts.sort_by_key(|a| a.attempt);
        Ok(attempts)
    }

    /// Removes all but the last K attempts in an engine directory.
    async fn prune(&self, engine_dir: &Path) -> Result<Vec<u32>, LogError> {
        let attempts = Self::list(engine_dir).await?;
        let excess = attempts
            .len()
            .saturating_sub(self.retention.attempts_kept());
        let mut removed = Vec::new();
        for old in &attempts[..excess] {
            let path = engine_dir.join(format!("{}.log", old.attempt));
            match fs::remove_file(&path).await {
                Ok(()) => removed.push(old.attempt),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("remove", path)(e)),
            }
        }
        Ok(removed)
    }

    /// Removes temporary files in an engine directory older than [`STALE_TEMP`].
    async fn remove_stale_temps(engine_dir: &Path, now: Timestamp) -> Result<u32, LogError> {
        let mut entries = fs::read_dir(engine_dir)
            .await
            .map_err(LogError::io("list", engine_dir))?;
        let mut removed = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(LogError::io("list", engine_dir))?
        {
            if !entry.file_name().to_str().is_some_and(is_temp_name) {
                continue;
            }
            let modified = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .map_err(LogError::io("inspect", entry.path()))?;
            if now.since(timestamp_of(modified)) >= STALE_TEMP {
                match fs::remove_file(entry.path()).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io("remove", entry.path())(e)),
                }
            }
        }
        Ok(removed)
    }

    /// Applies retention to one engine directory, adding to `report`.
    async fn sweep_engine(
        &self,
        engine: &EngineId,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), LogError> {
        let engine_dir = self.engine_dir(engine);
        if let Some(tombstone) = self.tombstone(engine).await? {
            if now >= tombstone.deleted_at.plus(self.retention.deleted_engine_ttl) {
                match fs::remove_dir_all(&engine_dir).await {
                    Ok(()) => report.engines_removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io("remove", engine_dir)(e)),
                }
                return Ok(());
            }
        }
        let removed = self.prune(&engine_dir).await?;
        report.attempts_removed += u32::try_from(removed.len()).unwrap_or(u32::MAX);
        report.stale_temp_files_removed += Self::remove_stale_temps(&engine_dir, now).await?;
        Ok(())
    }
}

#[async_trait]
impl LogArchive for FsLogArchive {
    async fn archive(
        &self,
        engine: &EngineId,
        attempt: u32,
        source: &Path,
    ) -> Result<ArchiveReport, LogError> {
        if attempt == 0 {
            return Err(LogError::AttemptZero);
        }
        let mut input = fs::File::open(source)
            .await
            .map_err(LogError::io("open", source))?;
        let meta = input
            .metadata()
            .await
            .map_err(LogError::io("inspect", source))?;
        if !meta.is_file() {
            return Err(LogError::NotAFile(source.to_owned()));
        }
        let engine_dir = self.engine_dir(engine);
        fs::create_dir_all(&engine_dir)
            .await
            .map_err(LogError::io("create", &engine_dir))?;
        let target = self.attempt_path(engine, attempt);
        let cap = self.retention.max_bytes_per_attempt;
        let input = &mut input;
        let (cut, bytes) = write_atomically(&engine_dir, &target, |mut temp| async move {
            let cut = cap::copy_tail(input, meta.len(), cap, &mut temp).await?;
            let bytes = temp.metadata().await?.len();
            Ok((temp, (cut, bytes)))
        })
        .await?;
        let removed = self.prune(&engine_dir).await?;
        Ok(ArchiveReport {
            archived: ArchivedAttempt { attempt, bytes },
            cut,
            removed,
        })
    }

    async fn open(&self, engine: &EngineId, attempt: u32) -> Result<Option<LogFile>, LogError> {
        let path = self.attempt_path(engine, attempt);
        let file = match fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io("open", path)(e)),
        };
        let meta = file
            .metadata()
            .await
            .map_err(LogError::io("inspect", &path))?;
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some(LogFile {
            len: meta.len(),
            reader: Box::new(file),
        }))
    }

    async fn attempts(&self, engine: &EngineId) -> Result<Vec<ArchivedAttempt>, LogError> {
        Self::list(&self.engine_dir(engine)).await
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
        let engine_dir = self.engine_dir(engine);
        fs::create_dir_all(&engine_dir)
            .await
            .map_err(LogError::io("create", &engine_dir))?;
        let marker = engine_dir.join(DELETED);
        let bytes = tombstone.to_bytes();
        write_atomically(&engine_dir, &marker, |mut temp| async move {
            temp.write_all(&bytes).await?;
            Ok((temp, ()))
        })
        .await
    }

    async fn tombstone(&self, engine: &EngineId) -> Result<Option<Tombstone>, LogError> {
        let marker = self.engine_dir(engine).join(DELETED);
        let bytes = match fs::read(&marker).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io("read", marker)(e)),
        };
        if let Some(tombstone) = Tombstone::from_bytes(&bytes) {
            return Ok(Some(tombstone));
        }
        // A damaged record still means deleted: from when it was written,
        // readable by admins only.
        let modified = fs::metadata(&marker)
            .await
            .and_then(|m| m.modified())
            .map_err(LogError::io("inspect", &marker))?;
        tracing::warn!(marker = %marker.display(), "unreadable deletion record; using the file's time");
        Ok(Some(Tombstone {
            deleted_at: timestamp_of(modified),
            owner: None,
            share_with_groups: Default::default(),
        }))
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, LogError> {
        let mut report = SweepReport::default();
        let mut entries = match fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(LogError::io("list", &self.dir)(e)),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(LogError::io("list", &self.dir))?
        {
            let Some(engine) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<EngineId>().ok())
            else {
                continue;
            };
            if !entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if let Err(e) = self.sweep_engine(&engine, now, &mut report).await {
                tracing::warn!(%engine, "log retention: {e}");
                report.engines_failed += 1;
            }
        }
        Ok(report)
    }
}

/// Writes `target` through a temporary file in `dir` that `write` fills
/// (and hands back) and that is synced and renamed into place; removed if
/// anything fails.
async fn write_atomically<T, F, Fut>(dir: &Path, target: &Path, write: F) -> Result<T, LogError>
where
    F: FnOnce(fs::File) -> Fut,
    Fut: std::future::Future<Output = io::Result<(fs::File, T)>>,
{
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("log");
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = async {
        let file = fs::File::create(&temp)
            .await
            .map_err(LogError::io("create", &temp))?;
        let (mut file, value) = write(file).await.map_err(LogError::io("write", &temp))?;
        file.flush().await.map_err(LogError::io("write", &temp))?;
        file.sync_all().await.map_err(LogError::io("sync", &temp))?;
        drop(file);
        fs::rename(&temp, target)
            .await
            .map_err(LogError::io("rename into place", target))?;
        // The rename itself is durable once the directory is synced.
        let dir_handle = fs::File::open(dir)
            .await
            .map_err(LogError::io("open", dir))?;
        dir_handle
            .sync_all()
            .await
            .map_err(LogError::io("sync", dir))?;
        Ok(value)
    }
    .await;
    if result.is_err() {
        let _ = fs::remove_file(&temp).await;
    }
    result
}

/// The attempt a file name holds, if it is `<attempt>.log` as written here.
fn attempt_of(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".log")?;
    let attempt: u32 = digits.parse().ok()?;
    (attempt > 0 && attempt.to_string() == digits).then_some(attempt)
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn timestamp_of(time: SystemTime) -> Timestamp {
    let millis = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::cap::cut_note;
    use crate::logs::read::{Selection, select};
    use crate::logs::redact::Redactor;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn archive_in(dir: &Path, retention: Retention) -> Arc<dyn LogArchive> {
        Arc::new(FsLogArchive::new(dir.join("logs"), retention))
    }

    fn source(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn read_back(
        archive: &dyn LogArchive,
        engine: &EngineId,
        attempt: u32,
    ) -> Option<String> {
        let mut log = archive.open(engine, attempt).await.unwrap()?;
        let mut text = String::new();
        log.reader.read_to_string(&mut text).await.unwrap();
        assert_eq!(log.len, text.len() as u64);
        Some(text)
    }

    fn numbers(attempts: &[ArchivedAttempt]) -> Vec<u32> {
        attempts.iter().map(|a| a.attempt).collect()
    }

    #[tokio::test]
    async fn archived_logs_read_back_per_attempt() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = archive_in(tmp.path(), Retention::default());
        let engine = EngineId::generate();
        let first = source(tmp.path(), "1", "first run\n");
        let second = source(tmp.path(), "2", "second run\n");

        let report = archive.archive(&engine, 1, &first).await.unwrap();
        assert_eq!(
            report,
            ArchiveReport {
                archived: ArchivedAttempt {
                    attempt: 1,
                    bytes: 10
                },
                cut: 0,
                removed: vec![]
            }
        );
        archive.archive(&engine, 2, &second).await.unwrap();
        assert_eq!(
            read_back(&*archive, &engine, 1).await.unwrap(),
            "first run\n"
        );
        assert_eq!(
            read_back(&*archive, &engine, 2).await.unwrap(),
            "second run\n"
        );
        assert_eq!(
            archive.attempts(&engine).await.unwrap(),
            vec![
                ArchivedAttempt {
                    attempt: 1,
                    bytes: 10
                },
                ArchivedAttempt {
                    attempt: 2,
                    bytes: 11
                }
            ]
        );
        // Archiving an attempt again replaces it.
        archive.archive(&engine, 2, &first).await.unwrap();
        assert_eq!(
            read_back(&*archive, &engine, 2).await.unwrap(),
            "first run\n"
        );

        // The tail of an archived log, redacted, through the archive's reader.
        let secret = source(tmp.path(), "3", "a\ntoken=s3cret\nb\n");
        archive.archive(&engine, 3, &secret).await.unwrap();
        let log = archive.open(&engine, 3).await.unwrap().unwrap();
        let mut text = String::new();
        select(log.reader, Selection::Tail(2), Redactor::new(["s3cret"]))
            .await
            .unwrap()
            .read_to_string(&mut text)
            .await
            .unwrap();
        assert_eq!(text, "token=<redacted>\nb\n");
    }

    #[tokio::test]
    async fn what_is_missing_is_none_or_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = archive_in(tmp.path(), Retention::default());
        let engine = EngineId::generate();
        // No archive directory at all yet.
        assert!(archive.open(&engine, 1).await.unwrap().is_none());
        assert!(archive.attempts(&engine).await.unwrap().is_empty());
        assert_eq!(archive.tombstone(&engine).await.unwrap(), None);
        assert_eq!(
            archive.sweep(Timestamp::now()).await.unwrap(),
            SweepReport::default()
        );

        archive
            .archive(&engine, 1, &source(tmp.path(), "log", "x\n"))
            .await
            .unwrap();
        assert!(archive.open(&engine, 2).await.unwrap().is_none());
        assert!(archive.open(&engine, 0).await.unwrap().is_none());
        assert!(
            archive
                .open(&EngineId::generate(), 1)
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            archive
                .archive(&engine, 0, &source(tmp.path(), "log", "x\n"))
                .await,
            Err(LogError::AttemptZero)
        ));
        assert!(matches!(
            archive
                .archive(&engine, 2, &tmp.path().join("absent"))
                .await,
            Err(LogError::Io { action: "open", .. })
        ));
        assert!(matches!(
            archive.archive(&engine, 2, tmp.path()).await,
            Err(LogError::NotAFile(_))
        ));
        assert_eq!(numbers(&archive.attempts(&engine).await.unwrap()), [1]);
    }

    #[tokio::test]
    async fn temp_files_and_foreign_names_are_never_attempts() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = archive_in(tmp.path(), Retention::default());
        let engine = EngineId::generate();
        archive
            .archive(&engine, 1, &source(tmp.path(), "log", "x\n"))
            .await
            .unwrap();
        let engine_dir = tmp.path().join("logs").join(engine.as_str());
        // An archive under way (or interrupted): its temp file.
        std::fs::write(engine_dir.join(".2.log.1.0.tmp"), "half a lo").unwrap();
        for name in ["01.log", "0.log", "x.log", "3.txt", "4294967296.log"] {
            std::fs::write(engine_dir.join(name), "?").unwrap();
        }
        std::fs::create_dir(engine_dir.join("5.log")).unwrap();
        assert_eq!(numbers(&archive.attempts(&engine).await.unwrap()), [1]);
        assert!(archive.open(&engine, 5).await.unwrap().is_none());
        // No temp file remains after archiving.
        let names: Vec<String> = std::fs::read_dir(&engine_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert_eq!(names, [".2.log.1.0.tmp"]);

        // A sweep removes the temp file once stale, and leaves the rest.
        let soon = Timestamp::now().plus(Duration::from_secs(60));
        assert_eq!(archive.sweep(soon).await.unwrap(), SweepReport::default());
        let later = Timestamp::now().plus(STALE_TEMP + Duration::from_secs(60));
        let report = archive.sweep(later).await.unwrap();
        assert_eq!(report.stale_temp_files_removed, 1);
        assert!(!engine_dir.join(".2.log.1.0.tmp").exists());
        assert!(engine_dir.join("x.log").exists());
    }

    #[tokio::test]
    async fn only_the_last_attempts_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let retention = Retention {
            keep_attempts: 3,
            ..Retention::default()
        };
        let archive = archive_in(tmp.path(), retention);
        let engine = EngineId::generate();
        let other = EngineId::generate();
        let log = source(tmp.path(), "log", "x\n");
        archive.archive(&other, 1, &log).await.unwrap();
        for attempt in 1..=3 {
            let report = archive.archive(&engine, attempt, &log).await.unwrap();
            assert!(report.removed.is_empty());
        }
        let report = archive.archive(&engine, 4, &log).await.unwrap();
        assert_eq!(report.removed, [1]);
        let report = archive.archive(&engine, 6, &log).await.unwrap();
        assert_eq!(report.removed, [2]);
        assert_eq!(
            numbers(&archive.attempts(&engine).await.unwrap()),
            [3, 4, 6]
        );
        assert_eq!(numbers(&archive.attempts(&other).await.unwrap()), [1]);

        // A smaller K applies at the next sweep; zero still keeps one.
        let stricter = archive_in(
            tmp.path(),
            Retention {
                keep_attempts: 0,
                ..retention
            },
        );
        let report = stricter.sweep(Timestamp::now()).await.unwrap();
        assert_eq!(report.attempts_removed, 2);
        assert_eq!(numbers(&stricter.attempts(&engine).await.unwrap()), [6]);
        assert_eq!(numbers(&stricter.attempts(&other).await.unwrap()), [1]);
    }

    #[tokio::test]
    async fn deleted_engines_logs_are_kept_for_their_time_then_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let retention = Retention {
            deleted_engine_ttl: 7 * DAY,
            ..Retention::default()
        };
        let archive = archive_in(tmp.path(), retention);
        let deleted = EngineId::generate();
        let alive = EngineId::generate();
        let never_logged = EngineId::generate();
        let log = source(tmp.path(), "log", "x\n");
        archive.archive(&deleted, 1, &log).await.unwrap();
        archive.archive(&alive, 1, &log).await.unwrap();

        let at = Timestamp::from_millis(1_764_000_000_000);
        let tombstone = |at| Tombstone {
            deleted_at: at,
            owner: Some("alice".into()),
            share_with_groups: ["data".to_owned()].into(),
        };
        archive
            .engine_deleted(&deleted, &tombstone(at))
            .await
            .unwrap();
        archive
            .engine_deleted(&never_logged, &tombstone(at))
            .await
            .unwrap();
        // Recording it again keeps the first time.
        archive
            .engine_deleted(&deleted, &tombstone(at.plus(3 * DAY)))
            .await
            .unwrap();
        assert_eq!(
            archive.tombstone(&deleted).await.unwrap(),
            Some(tombstone(at))
        );
        // Durable: another archive on the same directory sees it.
        let reopened = archive_in(tmp.path(), retention);
        assert_eq!(
            reopened.tombstone(&deleted).await.unwrap(),
            Some(tombstone(at))
        );

        // Still readable within the time.
        let report = reopened
            .sweep(at.plus(7 * DAY - Duration::from_millis(1)))
            .await
            .unwrap();
        assert_eq!(report.engines_removed, 0);
        assert_eq!(read_back(&*reopened, &deleted, 1).await.unwrap(), "x\n");

        // A log archived after the deletion (a cleanup still under way) goes too.
        reopened.archive(&never_logged, 1, &log).await.unwrap();
        let report = reopened.sweep(at.plus(7 * DAY)).await.unwrap();
        assert_eq!(report.engines_removed, 2);
        assert!(reopened.open(&deleted, 1).await.unwrap().is_none());
        assert!(reopened.attempts(&never_logged).await.unwrap().is_empty());
        assert_eq!(reopened.tombstone(&deleted).await.unwrap(), None);
        assert!(!tmp.path().join("logs").join(deleted.as_str()).exists());
        assert_eq!(read_back(&*reopened, &alive, 1).await.unwrap(), "x\n");
    }

    #[tokio::test]
    async fn sweeps_ignore_foreign_entries_and_survive_damaged_records() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = archive_in(tmp.path(), Retention::default());
        let engine = EngineId::generate();
        archive
            .archive(&engine, 1, &source(tmp.path(), "log", "x\n"))
            .await
            .unwrap();
        let root = tmp.path().join("logs");
        std::fs::create_dir(root.join("not-an-engine")).unwrap();
        std::fs::create_dir(root.join("0123456789ABCDEF0123456789ABCDEF")).unwrap();
        std::fs::write(root.join(EngineId::generate().as_str()), "a file").unwrap();
        std::fs::write(root.join(engine.as_str()).join(DELETED), "garbage").unwrap();

        // A damaged deletion record counts from when it was written, and
        // gives the logs to admins only.
        let written = archive.tombstone(&engine).await.unwrap().unwrap();
        assert!(Timestamp::now().since(written.deleted_at) < Duration::from_secs(60));
        assert_eq!(written.owner, None);
        let report = archive.sweep(Timestamp::now()).await.unwrap();
        assert_eq!(report, SweepReport::default());
        let report = archive.sweep(Timestamp::now().plus(8 * DAY)).await.unwrap();
        assert_eq!(report.engines_removed, 1);
        assert!(root.join("not-an-engine").exists());
        assert!(root.join("0123456789ABCDEF0123456789ABCDEF").exists());
    }

    #[tokio::test]
    async fn big_logs_keep_their_tail_from_a_line_start() {
        let tmp = tempfile::tempdir().unwrap();
        let cap = 1024 * 1024;
        let archive = archive_in(
            tmp.path(),
            Retention {
                max_bytes_per_attempt: cap,
                ..Retention::default()
            },
        );
        let engine = EngineId::generate();
        // About 3 MiB of numbered 100-byte lines.
        let text: String = (0..30_000).map(|i| format!("{i:>99}\n")).collect();
        let report = archive
            .archive(&engine, 1, &source(tmp.path(), "log", &text))
            .await
            .unwrap();
        let kept = read_back(&*archive, &engine, 1).await.unwrap();
        let (note, body) = kept.split_once('\n').unwrap();
        // The largest whole-line tail within the cap: 10,485 lines of 100 bytes.
        let kept_lines = usize::try_from(cap / 100).unwrap();
        assert_eq!(report.cut, text.len() as u64 - (kept_lines as u64) * 100);
        assert_eq!(format!("{note}\n"), cut_note(report.cut, cap));
        assert_eq!(body, &text[text.len() - kept_lines * 100..]);
        assert!(body.starts_with(&format!("{:>99}\n", 30_000 - kept_lines)));
        assert_eq!(report.archived.bytes, kept.len() as u64);
        assert!(report.archived.bytes <= cap + note.len() as u64 + 1);
    }
}
