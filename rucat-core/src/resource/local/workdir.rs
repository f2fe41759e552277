//! An engine's work directory, `<work_dir>/<engine id>/`: everything the
//! engine writes and everything rucat knows about it.
//!
//! Several rucat processes (a server and monitors) may manage the same engines,
//! so the directory, not memory, is the truth: files are replaced atomically
//! (write a temporary file, then rename) so readers never see half a record,
//! and a lock file serialises the operations that start or stop the engine.

use std::fs::File;
use std::io::{self, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::process::Exit;
use crate::engine::{EngineId, EngineType};
use crate::kind::ReadyCheck;

const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// `remove_dir_all` can race with a process that is still writing a last file
/// (the reaper of another rucat process recording the exit status).
const REMOVE_ATTEMPTS: u32 = 5;

/// Where a running engine can be found, kept in `process.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ProcessRecord {
    /// Also the id of its process group.
    pub pid: u32,
    pub port: u16,
    /// The engine's kind; absent in records written before rucat knew
    /// other kinds than Spark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EngineType>,
    /// The engine's other processes, in its process group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<CompanionRecord>,
}

impl ProcessRecord {
    /// What must pass before the engine is Running: its port accepts
    /// connections, and each companion's own check.
    pub fn ready_checks(&self) -> Vec<ReadyCheck> {
        let main = ReadyCheck::Listening { port: self.port };
        let companions = self.companions.iter().filter_map(|c| c.ready.clone());
        std::iter::once(main).chain(companions).collect()
    }
}

/// One of an engine's [companion](crate::kind::Companion) processes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CompanionRecord {
    pub name: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadyCheck>,
}

#[derive(Clone, Debug)]
pub(super) struct EngineDir {
    root: PathBuf,
}

/// Held while an operation starts or stops the engine; released on drop, or by
/// the kernel if the process holding it dies.
pub(super) type EngineLock = Flock<File>;

impl EngineDir {
    pub fn new(work_dir: &Path, id: &EngineId) -> Self {
        Self {
            root: work_dir.join(id.as_str()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn local_dir(&self) -> PathBuf {
        self.root.join("local")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn warehouse_dir(&self) -> PathBuf {
        self.root.join("warehouse")
    }

    /// The main process's log, `engine.log`, which users read.
    pub fn log_file(&self) -> PathBuf {
        self.log_file_of(None)
    }

    /// The log of the main process (`None`) or of a named companion.
    pub fn log_file_of(&self, companion: Option<&str>) -> PathBuf {
        match companion {
            None => self.root.join("engine.log"),
            Some(name) => self.root.join(format!("{name}.log")),
        }
    }

    fn process_file(&self) -> PathBuf {
        self.root.join("process.json")
    }

    fn exit_file(&self, companion: Option<&str>) -> PathBuf {
        match companion {
            None => self.root.join("exit_status"),
            Some(name) => self.root.join(format!("{name}.exit_status")),
        }
    }

    fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    pub async fn exists(&self) -> io::Result<bool> {
        tokio::fs::try_exists(&self.root).await
    }

    /// Creates the directory and the subdirectories Spark is told to use.
    pub async fn prepare(&self) -> io::Result<()> {
        for dir in [self.local_dir(), self.tmp_dir(), self.warehouse_dir()] {
            tokio::fs::create_dir_all(dir).await?;
        }
        Ok(())
    }

    /// Takes the engine's lock, waiting at most `wait` for another holder.
    /// `None` if the directory is gone (deleted by whoever held the lock).
    pub async fn lock(&self, wait: Duration) -> io::Result<Option<EngineLock>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let file = match open_lock_file(&self.lock_file()) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                // A lock on a file that a delete has since unlinked protects
                // nothing: look again.
                Ok(lock) if self.is_current_lock_file(&lock)? => return Ok(Some(lock)),
                Ok(_) => {}
                Err((_, Errno::EWOULDBLOCK)) if tokio::time::Instant::now() < deadline => {}
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "another operation on the engine has held {} for over {wait:?}",
                            self.lock_file().display()
                        ),
                    ));
                }
                Err((_, e)) => return Err(e.into()),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn is_current_lock_file(&self, lock: &EngineLock) -> io::Result<bool> {
        let held = lock.metadata()?;
        match std::fs::metadata(self.lock_file()) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The engine's log, opened for appending so that a restarted engine does
    /// not erase why the previous one failed.
    pub async fn open_log(&self, companion: Option<&str>) -> io::Result<File> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file_of(companion))
            .await?;
        Ok(file.into_std().await)
    }

    /// `None` until a process has been started.
    pub async fn read_process(&self) -> io::Result<Option<ProcessRecord>> {
        let Some(text) = read_optional(&self.process_file()).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", self.process_file().display()),
            )
        })
    }

    pub async fn write_process(&self, record: ProcessRecord) -> io::Result<()> {
        let json = serde_json::to_vec(&record).map_err(io::Error::other)?;
        write_atomically(&self.process_file(), &json).await
    }

    /// `None` while the process runs, or if nobody saw it end.
    pub async fn read_exit(&self, companion: Option<&str>) -> io::Result<Option<Exit>> {
        Ok(read_optional(&self.exit_file(companion))
            .await?
            .and_then(|text| Exit::from_record(&text)))
    }

    /// Never recreates a deleted directory: writing into a missing one fails.
    pub async fn write_exit(&self, companion: Option<&str>, exit: Exit) -> io::Result<()> {
        write_atomically(&self.exit_file(companion), exit.to_record().as_bytes()).await
    }

    /// The last `max_bytes` of a process's log, from a line start; empty if
    /// there is no log.
    pub async fn log_tail(&self, companion: Option<&str>, max_bytes: u64) -> io::Result<String> {
        let mut file = match tokio::fs::File::open(self.log_file_of(companion)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata().await?.len();
        let start = len.saturating_sub(max_bytes);
        file.seek(SeekFrom::Start(start)).await?;
        let mut bytes = Vec::new();
        file.take(max_bytes).read_to_end(&mut bytes).await?;
        let text = String::from_utf8_lossy(&bytes);
        let text = match text.split_once('\n') {
            Some((_partial, rest)) if start > 0 => rest,
            _ => &text,
        };
        Ok(text.to_owned())
    }

    /// Removes the directory and everything in it; fine if it is already gone.
    pub async fn remove(&self) -> io::Result<()> {
        let mut attempt = 1;
        loop {
            match tokio::fs::remove_dir_all(&self.root).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if attempt >= REMOVE_ATTEMPTS => return Err(e),
                Err(e) => tracing::debug!(dir = %self.root.display(), "retrying removal: {e}"),
            }
            attempt += 1;
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

async fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Readers in other processes see the old content or the new, never a mix.
/// The temporary name is unique so that concurrent writers do not collide.
async fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::now_v7().simple()));
    tokio::fs::write(&tmp, content).await?;
    if let Err(e) = tokio::fs::rename(&tmp, path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_dir(work: &Path) -> EngineDir {
        EngineDir::new(work, &EngineId::generate())
    }

    #[tokio::test]
    async fn records_round_trip_and_are_absent_at_first() {
        let work = tempfile::tempdir().unwrap();
        let dir = engine_dir(work.path());
        assert!(!dir.exists().await.unwrap());
        dir.prepare().await.unwrap();
        assert_eq!(dir.read_process().await.unwrap(), None);
        assert_eq!(dir.read_exit(None).await.unwrap(), None);
        let record = ProcessRecord {
            pid: 42,
            port: 15002,
            kind: Some(EngineType::Ballista),
            companions: vec![CompanionRecord {
                name: "executor-1".into(),
                pid: 43,
                ready: Some(ReadyCheck::HttpOk {
                    port: 15004,
                    path: "/readyz".into(),
                }),
            }],
        };
        dir.write_process(record.clone()).await.unwrap();
        assert_eq!(dir.read_process().await.unwrap(), Some(record));
        // A record written before kinds reads as one without a kind.
        tokio::fs::write(dir.path().join("process.json"), r#"{"pid":7,"port":15003}"#)
            .await
            .unwrap();
        let old = dir.read_process().await.unwrap().unwrap();
        assert_eq!((old.pid, old.port, old.kind), (7, 15003, None));
        assert!(old.companions.is_empty());
        dir.write_exit(None, Exit::Code(1)).await.unwrap();
        dir.write_exit(Some("executor-1"), Exit::Code(2))
            .await
            .unwrap();
        assert_eq!(dir.read_exit(None).await.unwrap(), Some(Exit::Code(1)));
        assert_eq!(
            dir.read_exit(Some("executor-1")).await.unwrap(),
            Some(Exit::Code(2))
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[tokio::test]
    async fn exit_status_is_not_written_into_a_removed_dir() {
        let work = tempfile::tempdir().unwrap();
        let dir = engine_dir(work.path());
        dir.prepare().await.unwrap();
        dir.remove().await.unwrap();
        dir.remove().await.unwrap();
        assert!(dir.write_exit(None, Exit::Code(0)).await.is_err());
        assert!(!dir.exists().await.unwrap());
    }

    #[tokio::test]
    async fn the_log_tail_starts_at_a_line() {
        let work = tempfile::tempdir().unwrap();
        let dir = engine_dir(work.path());
        dir.prepare().await.unwrap();
        assert_eq!(dir.log_tail(None, 100).await.unwrap(), "");
        std::fs::write(dir.log_file(), "first line\nsecond\nthird\n").unwrap();
        std::fs::write(dir.log_file_of(Some("executor-1")), "other\n").unwrap();
        assert_eq!(dir.log_tail(None, 12).await.unwrap(), "third\n");
        assert_eq!(
            dir.log_tail(Some("executor-1"), 100).await.unwrap(),
            "other\n"
        );
        assert_eq!(
            dir.log_tail(None, 1000).await.unwrap(),
            "first line\nsecond\nthird\n"
        );
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_and_gone_with_the_dir() {
        let work = tempfile::tempdir().unwrap();
        let dir = engine_dir(work.path());
        assert!(dir.lock(Duration::ZERO).await.unwrap().is_none());
        dir.prepare().await.unwrap();
        let held = dir.lock(Duration::ZERO).await.unwrap().unwrap();
        let err = dir.lock(Duration::from_millis(100)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(held);
        assert!(dir.lock(Duration::ZERO).await.unwrap().is_some());
    }
}
