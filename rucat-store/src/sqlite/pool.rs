//! Connections to one database file, used from async code.
//!
//! rusqlite blocks, so operations run on tokio's blocking pool, except lookups
//! of a single row, which take less time than getting there. Writes go
//! through a single connection: SQLite lets one writer at a time in anyway,
//! and queueing on an async lock here is much cheaper than contending on the
//! file lock, whose busy handler sleeps for milliseconds. Queries run on a few
//! other connections, which WAL lets proceed alongside the writer.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rucat_core::store::StoreError;
use rusqlite::Connection;
use tokio::sync::{Mutex as AsyncMutex, Semaphore};

use super::connect::{self, SqliteOpenError};
use super::errors::unavailable;

/// How many queries may run at once; also the most reader connections kept.
const READERS: usize = 4;

pub(super) struct Pool {
    path: Arc<Path>,
    writer: Arc<AsyncMutex<Connection>>,
    reader_permits: Arc<Semaphore>,
    idle_readers: Arc<Mutex<Vec<Connection>>>,
}

impl Pool {
    pub fn open(path: &Path) -> Result<Self, SqliteOpenError> {
        let writer = connect::writer(path)?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(Self {
            path: Arc::from(path),
            writer: Arc::new(AsyncMutex::new(writer)),
            reader_permits: Arc::new(Semaphore::new(READERS)),
            idle_readers: Arc::new(Mutex::new(Vec::with_capacity(READERS))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the write connection, after any writes already queued.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let conn = Arc::clone(&self.writer).lock_owned().await;
        blocking(move || f(&conn)).await
    }

    /// Runs `f` on a query connection, opening one if none is idle.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.reader_permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite store is closed".into()))?;
        let idle = Arc::clone(&self.idle_readers);
        let path = Arc::clone(&self.path);
        blocking(move || {
            let _permit = permit;
            with_reader(&idle, &path, f)
        })
        .await
    }

    /// Like [`Pool::read`], but on the calling thread: only for lookups of
    /// one row by key. In WAL mode those never wait for a writer and take
    /// microseconds, less than the two thread switches of a trip to the
    /// blocking pool, which were most of the cost of `GET /engine/{id}`.
    /// Anything that may read many rows goes through [`Pool::read`].
    pub async fn read_here<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite store is closed".into()))?;
        with_reader(&self.idle_readers, &self.path, f)
    }
}

/// Runs `f` on an idle query connection, or a new one, and keeps it for reuse.
fn with_reader<T>(
    idle: &Mutex<Vec<Connection>>,
    path: &Path,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // A panic elsewhere cannot have left the list of idle connections
    // inconsistent (it is only pushed and popped), so poison is ignored.
    let reused = idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let conn = match reused {
        Some(conn) => conn,
        None => connect::reader(path).map_err(unavailable)?,
    };
    let result = f(&conn);
    idle.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(conn);
    result
}

async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        // A panic is a bug here, not a store failure: let it surface as one.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "the SQLite operation did not finish: {e}"
        ))),
    }
}
