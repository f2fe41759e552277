//! Benchmark h: what engines at rest cost. A release `rucat-server`
//! (embedded monitor, default one-second check interval, the `Markers`
//! resource manager) gets its engines through `POST /engine`; once all are
//! Running and things have settled, it is left alone — no request at all —
//! for a window as long as the monitor's default resync interval (30 s), so
//! that one read-only resync sweep falls inside it. Over the window:
//!
//! - server CPU, as a percentage of one core, from `/proc/<pid>/stat`;
//! - store writes per second: the growth of the sum of every engine's
//!   revision (each write adds one), read from outside the server;
//! - disk bytes written per second, from `/proc/<pid>/io` `write_bytes`
//!   (SQLite's WAL and checkpoints, and the server's log, which goes to a
//!   file);
//! - on a SurrealDB server: LIVE-query messages per second per monitor.
//!   Every monitor follows the engine table with a LIVE SELECT of its own,
//!   and SurrealDB sends each of them one message per engine written. The
//!   benchmark opens one more LIVE SELECT, exactly as a monitor does (a
//!   second `SurrealStore` subscribed with a change sink of its own), and
//!   counts what it receives over the window: what each monitor receives.
//!
//! The baseline is the same release `rucat-server`, same configuration,
//! with no engines, measured over the same window at the same time. Not
//! the bare axum server: the goal is that engines at rest cost nothing, so
//! the honest comparison is rucat with and without them, which leaves out
//! what an idle rucat costs for other reasons (its own timers).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rucat_core::{ChangeSink, Store};
use rucat_store::{SurrealConfig, SurrealStore};

use crate::fleet::{Db, Fleet, Usage};
use crate::procs::Binaries;
use crate::surreal_server::{Storage, SurrealServer};

/// Concurrent clients creating engines.
const CLIENTS: usize = 32;

pub struct Sizes {
    pub engines: usize,
    pub surreal_engines: usize,
    /// After all engines are Running, before the window opens.
    pub settle: Duration,
    pub window: Duration,
    /// The longest wait for all engines to be Running; the figures are
    /// measured anyway after it, and the rows say how many were.
    pub running_timeout: Duration,
}

/// One server over the window.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    pub cpu_pct: f64,
    pub writes_per_sec: f64,
    pub disk_bytes_per_sec: f64,
}

#[derive(Debug)]
pub struct Steady {
    /// Engines Running when the window opened, of `Sizes::engines`.
    pub running: usize,
    pub loaded: Quiet,
    pub idle: Quiet,
    pub surreal: SurrealSteady,
}

#[derive(Debug)]
pub struct SurrealSteady {
    pub running: usize,
    pub live_per_sec: f64,
    pub idle_live_per_sec: f64,
}

pub async fn run(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<Steady> {
    let idle = Fleet::start(bins, &work.join("idle"), &Db::Sqlite).await?;
    let loaded = Fleet::start(bins, &work.join("loaded"), &Db::Sqlite).await?;
    loaded.create(sizes.engines, CLIENTS).await?;
    let (running, _) = loaded
        .wait_running(sizes.engines, sizes.running_timeout)
        .await?;
    tokio::time::sleep(sizes.settle).await;
    let (loaded_quiet, idle_quiet) =
        tokio::try_join!(quiet(&loaded, sizes.window), quiet(&idle, sizes.window))?;
    loaded.server.terminate();
    idle.server.terminate();

    let surreal = surreal(bins, work, sizes).await?;
    Ok(Steady {
        running,
        loaded: loaded_quiet,
        idle: idle_quiet,
        surreal,
    })
}

/// `fleet`'s server over `window`, with no requests.
async fn quiet(fleet: &Fleet, window: Duration) -> anyhow::Result<Quiet> {
    let pid = fleet.server.pid();
    let (writes_before, census_before) = (fleet.census.writes().await?, Instant::now());
    let before = Usage::of(pid)?;
    tokio::time::sleep(window).await;
    let after = Usage::of(pid)?;
    let (writes_after, census_after) = (fleet.census.writes().await?, Instant::now());
    let (cpu_pct, disk_bytes_per_sec) = before.rates_until(&after);
    let census_secs = census_after.duration_since(census_before).as_secs_f64();
    Ok(Quiet {
        cpu_pct,
        writes_per_sec: writes_after.saturating_sub(writes_before) as f64 / census_secs,
        disk_bytes_per_sec,
    })
}

/// The same on a SurrealDB server (in memory): a loaded and an idle
/// `rucat-server` on two databases of it, each followed by one counting
/// LIVE query.
async fn surreal(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<SurrealSteady> {
    let server = SurrealServer::start(Storage::Memory);
    let (loaded_db, idle_db) = (server.config("loaded"), server.config("idle"));
    let idle = Fleet::start(
        bins,
        &work.join("surreal-idle"),
        &Db::Surreal(idle_db.clone()),
    )
    .await?;
    let loaded = Fleet::start(
        bins,
        &work.join("surreal-loaded"),
        &Db::Surreal(loaded_db.clone()),
    )
    .await?;
    loaded.create(sizes.surreal_engines, CLIENTS).await?;
    let (running, _) = loaded
        .wait_running(sizes.surreal_engines, sizes.running_timeout)
        .await?;
    tokio::time::sleep(sizes.settle).await;
    let (live_per_sec, idle_live_per_sec) = tokio::try_join!(
        live_messages_per_sec(&loaded_db, sizes.window),
        live_messages_per_sec(&idle_db, sizes.window)
    )?;
    loaded.server.terminate();
    idle.server.terminate();
    Ok(SurrealSteady {
        running,
        live_per_sec,
        idle_live_per_sec,
    })
}

/// Messages per second that one more LIVE query on the engine table of
/// `config`'s database receives over `window`: a `SurrealStore` of its own
/// (one live query per store), subscribed as a monitor subscribes, with a
/// sink large enough and drained fast enough that nothing is dropped.
async fn live_messages_per_sec(config: &SurrealConfig, window: Duration) -> anyhow::Result<f64> {
    let store = SurrealStore::open(config).await?;
    let (sink, mut changes) = ChangeSink::channel(1 << 20);
    let received = Arc::new(AtomicU64::new(0));
    let counter = tokio::spawn({
        let received = Arc::clone(&received);
        async move {
            while changes.recv().await.is_some() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // Returns once the live query is registered.
    store.subscribe(sink).await;
    let (before, started) = (received.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(window).await;
    let (after, secs) = (
        received.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    );
    drop(store);
    counter.abort();
    Ok((after - before) as f64 / secs)
}
