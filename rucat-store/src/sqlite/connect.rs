//! Opening connections to the database file, and why that can fail.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::schema;

/// How long a statement waits for another connection's (or process's) lock
/// before failing with `SQLITE_BUSY`. Writes are single short statements, so
/// waiting this long means something is wrong rather than merely busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database at `path` could not be opened as a store.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct SqliteOpenError {
    path: PathBuf,
    reason: OpenFailure,
}

impl SqliteOpenError {
    pub(super) fn new(path: &Path, reason: impl Into<OpenFailure>) -> Self {
        Self {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn reason(&self) -> &OpenFailure {
        &self.reason
    }
}

/// What went wrong opening the database. The message is complete in itself
/// (no `source()` chain) so that a caller can prefix it with the setting that
/// named the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenFailure {
    #[error("cannot create directory {}: {cause}", dir.display())]
    CreateDirectory { dir: PathBuf, cause: io::Error },
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    /// WAL is what lets readers and the writer (in any process) not block each
    /// other; some file systems (network ones) cannot do it.
    #[error("the database cannot use write-ahead logging (journal_mode is {mode})")]
    NotWal { mode: String },
    #[error(
        "the schema version is {found}, which this rucat does not know \
         (it knows up to {supported}); is the file from a newer rucat?"
    )]
    UnknownSchema { found: i64, supported: i64 },
}

// By hand rather than `#[from]`, which would also make it the `source()`.
impl From<rusqlite::Error> for OpenFailure {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

/// Opens the connection that writes, and on the way makes the file a store:
/// creates it and its directory, switches it to WAL and brings its schema up to
/// date.
pub(super) fn writer(path: &Path) -> Result<Connection, SqliteOpenError> {
    create_parent(path)?;
    let fail = |reason: OpenFailure| SqliteOpenError::new(path, reason);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| fail(e.into()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail(e.into()))?;
    // SQLite does not call the busy handler for every lock taken while a new
    // file is set up (switching it to WAL needs an exclusive lock, and
    // processes opening one file at once race for it), so setting up is
    // retried for as long as a statement would wait.
    let started = std::time::Instant::now();
    loop {
        match prepare(&mut conn) {
            Err(OpenFailure::Sqlite(e)) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => break result.map_err(fail)?,
        }
    }
    Ok(conn)
}

fn prepare(conn: &mut Connection) -> Result<(), OpenFailure> {
    enable_wal(conn)?;
    // In WAL mode NORMAL loses no committed transaction when the process
    // crashes, only (rarely) the last ones on power loss, and saves an fsync
    // per commit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    schema::migrate(conn)
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Opens a connection for queries, once [`writer`] has prepared the file.
pub(super) fn reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

fn create_parent(path: &Path) -> Result<(), SqliteOpenError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|cause| {
            SqliteOpenError::new(
                path,
                OpenFailure::CreateDirectory {
                    dir: dir.to_owned(),
                    cause,
                },
            )
        }),
        _ => Ok(()),
    }
}

/// The journal mode is stored in the file, so this is a no-op for every open
/// but the first.
fn enable_wal(conn: &Connection) -> Result<(), OpenFailure> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(OpenFailure::NotWal { mode })
    }
}
