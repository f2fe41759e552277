//! Rucat's control plane in this process — a store, the user operations and
//! a monitor on the instant resource manager — so that what is measured is
//! rucat itself, with no platform and no HTTP in the way.

use std::sync::Arc;

use rucat_core::resource::InstantResourceManager;
use rucat_core::store::MemoryStore;
use rucat_core::{Engines, Monitor, MonitorConfig, Store};
use rucat_store::{SqliteStore, SurrealConfig, SurrealStore};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::watched::{Reached, Watched};

/// The store a benchmark runs on; the in-memory one is the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// A SQLite file (WAL, as rucat uses it) in a temporary directory.
    Sqlite,
    /// SurrealDB embedded on disk (`surrealkv://`) in a temporary directory.
    Surreal,
    /// The in-memory store: rucat's logic without any storage cost.
    Memory,
}

pub struct ControlPlane {
    pub engines: Engines,
    /// Engines written as Running, as they are.
    pub reached: mpsc::UnboundedReceiver<Reached>,
    stop: oneshot::Sender<()>,
    monitor: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl ControlPlane {
    /// The monitor runs with rucat's defaults (64 engines at once, checks
    /// every second) and is woken by every user action, as the server's
    /// embedded monitor is.
    pub async fn start(kind: StoreKind) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = match kind {
            StoreKind::Memory => Arc::new(MemoryStore::new()),
            StoreKind::Sqlite => {
                let path = dir.path().join("rucat.db");
                Arc::new(tokio::task::spawn_blocking(move || SqliteStore::open(path)).await??)
            }
            StoreKind::Surreal => {
                let uri = format!("surrealkv://{}", dir.path().join("surreal").display());
                Arc::new(SurrealStore::open(&SurrealConfig::new(uri)).await?)
            }
        };
        let (store, reached) = Watched::new(store);
        let monitor = Monitor::new(
            store.clone(),
            Arc::new(InstantResourceManager::new()),
            MonitorConfig::default(),
        );
        let engines = Engines::new(store).with_waker(monitor.waker());
        let (stop, stopped) = oneshot::channel();
        let monitor = tokio::spawn(monitor.run(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            engines,
            reached,
            stop,
            monitor,
            _dir: dir,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.monitor.await?;
        Ok(())
    }
}

/// A valid create request; names need not be unique.
pub fn request() -> rucat_core::CreateEngineRequest {
    rucat_core::CreateEngineRequest::spark("bench", "4.3.0")
}
