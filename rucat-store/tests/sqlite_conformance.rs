//! The shared store behaviour, checked against SQLite.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rucat_core::store::Store;
use rucat_core::store::conformance::Harness;
use rucat_store::SqliteStore;
use tempfile::TempDir;

/// Every `open` is a new store on the same file, as a restarted process sees it.
struct SqliteHarness {
    _dir: TempDir,
    path: PathBuf,
}

impl SqliteHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("rucat.db");
        Self { _dir: dir, path }
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path).expect("open the SQLite store"))
    }

    fn durable(&self) -> bool {
        true
    }

    /// Two stores on one file, as two processes have them.
    fn shared(&self) -> bool {
        true
    }
}

rucat_core::conformance_tests!(SqliteHarness::new());
