//! Keeping logs: copying an attempt's live log into the archive before its
//! resources go (done by the monitor, which alone knows the attempt
//! number), and sweeping the archive on a timer.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use super::read::READ_CHUNK;
use super::{ArchiveReport, LogArchive, LogError, Redactor};
use crate::engine::EngineRecord;
use crate::resource::{LogQuery, ResourceError, ResourceManager};
use crate::time::Timestamp;

/// Why a log could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("cannot read the engine's log: {0}")]
    Resource(#[from] ResourceError),
    #[error("cannot copy the engine's log: {0}")]
    Spool(#[from] io::Error),
    #[error(transparent)]
    Archive(#[from] LogError),
}

/// Makes spool file names unique within a process; the pid across processes.
static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Copies the log of `record`'s current attempt, as its resource manager has
/// it now, into `archive`, with the engine's token redacted (a later
/// attempt has another token, so an archived log cannot rely on redaction
/// when it is read). `Ok(None)` when there is nothing to keep: the engine
/// never started, or the platform has no log for it.
///
/// The log goes through a spool file in the system's temporary directory,
/// because an archive takes a finished file (see [`LogArchive::archive`]).
pub async fn archive_current(
    resources: &dyn ResourceManager,
    archive: &dyn LogArchive,
    record: &EngineRecord,
) -> Result<Option<ArchiveReport>, KeepError> {
    let Some(attempt) = record.attempts.last().map(|a| a.number) else {
        return Ok(None);
    };
    let id = record.id();
    let Some(mut live) = resources.log(id, LogQuery::WHOLE).await? else {
        return Ok(None);
    };
    let spool = std::env::temp_dir().join(format!(
        ".rucat-log-{id}-{attempt}-{}-{}",
        std::process::id(),
        SPOOL_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _remove = RemoveOnDrop(spool.clone());
    let mut file = tokio::fs::File::create(&spool).await?;
    let mut redactor = Redactor::new(record.spec.token.iter().map(|t| t.expose()));
    let mut chunk = vec![0; READ_CHUNK];
    let mut out = Vec::with_capacity(READ_CHUNK);
    loop {
        let n = live.read(&mut chunk).await?;
        if n == 0 {
            redactor.finish(&mut out);
        } else {
            redactor.push(&chunk[..n], &mut out);
        }
        file.write_all(&out).await?;
        out.clear();
        if n == 0 {
            break;
        }
    }
    file.flush().await?;
    drop(file);
    Ok(Some(archive.archive(id, attempt, &spool).await?))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Applies the archive's retention now and every `interval` until
/// `shutdown`. Several processes may sweep one archive: sweeping is
/// idempotent.
pub async fn sweep_every(
    archive: Arc<dyn LogArchive>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let sweeping = async {
        loop {
            match archive.sweep(Timestamp::now()).await {
                Ok(report) => {
                    let removed = report.engines_removed
                        + report.attempts_removed
                        + report.stale_temp_files_removed;
                    if removed > 0 || report.engines_failed > 0 {
                        info!(
                            engines_removed = report.engines_removed,
                            attempts_removed = report.attempts_removed,
                            stale_temp_files_removed = report.stale_temp_files_removed,
                            engines_failed = report.engines_failed,
                            "log archive swept"
                        );
                    }
                }
                Err(err) => warn!(%err, "cannot sweep the log archive; trying again later"),
            }
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        () = sweeping => {}
        () = shutdown => {}
    }
}
