//! Benchmark f: how soon a monitor takes up an engine that someone else
//! wrote — with the store's change feed, against the same monitor without it
//! (which finds the engine at its next scheduled read of the due list; it
//! checks every second, rucat's default).
//!
//! "Someone else" is what the feed is for. On SurrealDB it is another client
//! of the same server, as another rucat process would be: SurrealDB pushes
//! the write to the monitor's LIVE query. SQLite tells no other process, so
//! there it is the monitor's own store handle written by user operations
//! that do not wake the monitor directly (`Engines` without a waker): the
//! in-process feed. Engines are created one at a time, each [`IDLE`] after
//! the previous one is Running, and timed until their Running record is
//! written. The pause matters: a monitor reads the due list again the moment
//! a pass ends, so an engine created right then is found without any feed;
//! new work usually arrives at an idle monitor.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rucat_core::Store;
use rucat_store::{SqliteStore, SurrealStore};

use crate::control_plane::{ControlPlane, Wake};
use crate::overhead::Latencies;
use crate::surreal_server::{Storage, SurrealServer};

/// How long the monitor is left idle before each engine is created.
const IDLE: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WakeStore {
    /// A SQLite file; the writer shares the monitor's handle.
    Sqlite,
    /// A SurrealDB server on loopback; the writer is a second client.
    SurrealServer,
}

pub async fn run(kind: WakeStore, feed: bool, engines: usize) -> anyhow::Result<Latencies> {
    let dir = tempfile::tempdir()?;
    let (_server, monitor_side, users_side) = open(kind, dir.path()).await?;
    let wake = Wake {
        by_users: false,
        by_feed: feed,
    };
    let mut plane = ControlPlane::assemble(monitor_side, users_side, wake);
    let mut times = Vec::with_capacity(engines);
    for _ in 0..engines {
        tokio::time::sleep(IDLE).await;
        times.push(plane.time_one_start().await?);
    }
    plane.stop().await?;
    Ok(Latencies::of(times))
}

/// The monitor's store and the users' store, and the server behind them if any.
async fn open(
    kind: WakeStore,
    dir: &Path,
) -> anyhow::Result<(Option<SurrealServer>, Arc<dyn Store>, Arc<dyn Store>)> {
    match kind {
        WakeStore::Sqlite => {
            let path = dir.join("rucat.db");
            let store: Arc<dyn Store> =
                Arc::new(tokio::task::spawn_blocking(move || SqliteStore::open(path)).await??);
            Ok((None, Arc::clone(&store), store))
        }
        WakeStore::SurrealServer => {
            // The tests' server: in memory, on a free loopback port.
            let server = SurrealServer::start(Storage::Memory);
            let config = server.config("rucat");
            let monitor_side = Arc::new(SurrealStore::open(&config).await?);
            let users_side = Arc::new(SurrealStore::open(&config).await?);
            Ok((Some(server), monitor_side, users_side))
        }
    }
}
