//! Rucat's control plane in this process — a store, the user operations and
//! a monitor on the instant resource manager — so that what is measured is
//! rucat itself, with no platform and no HTTP in the way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
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
    _dir: Option<tempfile::TempDir>,
}

/// How the monitor hears of new engines besides its scheduled checks.
#[derive(Clone, Copy, Debug)]
pub struct Wake {
    /// Every user action nudges it directly, as it would in one process.
    pub by_users: bool,
    /// It gets the store's change feed.
    pub by_feed: bool,
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
        let wake = Wake {
            by_users: true,
            by_feed: true,
        };
        let mut plane = Self::assemble(Arc::clone(&store), store, wake);
        plane._dir = Some(dir);
        Ok(plane)
    }

    /// A monitor with rucat's defaults on `monitor_side`, and user operations
    /// on `users_side`: the same store, or another handle on the same data.
    pub fn assemble(monitor_side: Arc<dyn Store>, users_side: Arc<dyn Store>, wake: Wake) -> Self {
        let (monitor_side, reached) = Watched::new(monitor_side, wake.by_feed);
        let monitor = Monitor::new(
            monitor_side,
            Arc::new(InstantResourceManager::new()),
            MonitorConfig::default(),
        );
        let mut engines = Engines::new(users_side);
        if wake.by_users {
            engines = engines.with_waker(monitor.waker());
        }
        let (stop, stopped) = oneshot::channel();
        let monitor = tokio::spawn(monitor.run(async {
            let _ = stopped.await;
        }));
        Self {
            engines,
            reached,
            stop,
            monitor,
            _dir: None,
        }
    }

    /// Creates one engine and returns how long it took until the monitor
    /// wrote it Running.
    pub async fn time_one_start(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let id = self.engines.create(request()).await?;
        loop {
            let (reached, at) = self.reached.recv().await.context("the monitor stopped")?;
            if reached == id {
                return Ok(at.duration_since(started));
            }
        }
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
