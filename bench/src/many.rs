//! Benchmark i: rucat with 100,000 engines in SQLite. A release
//! `rucat-server` (embedded monitor, default one-second check interval, the
//! `Markers` resource manager) gets a burst of creates through
//! `POST /engine` from concurrent clients, and is timed until the census of
//! its SQLite file (read from outside the server) counts every engine
//! Running. Then, with all of them in the store:
//!
//! - the server's peak resident memory (`VmHWM`) through the burst, against
//!   its resident memory at start, with no engines;
//! - `wrk` on `GET /engines?limit=100`, a page of the list, against
//!   `GET /engine/{id}`, one engine. A server without pagination (an older
//!   build) answers `limit` with the whole list, which is then what is
//!   measured, and the row says so;
//!
//! while the embedded monitor goes on with whatever it does with 100,000
//! Running engines. The due-list read is measured in-process ([`crate::due`]).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::fleet::{Db, Fleet};
use crate::procs::Binaries;
use crate::{rss, wrk};

/// Concurrent clients creating engines.
pub const CLIENTS: usize = 64;

/// The page size asked of `GET /engines`.
pub const PAGE: usize = 100;

pub struct Sizes {
    pub engines: usize,
    /// The longest wait for all engines to be Running; the row says how
    /// many were if they were not.
    pub running_timeout: Duration,
    pub wrk_duration: Duration,
    /// Engines in the small and the large due-list store.
    pub due_small: usize,
    pub due_large: usize,
}

#[derive(Debug)]
pub struct Many {
    /// Until the last create was answered.
    pub creates_secs: f64,
    /// Until the census counted every engine Running, or the timeout.
    pub running_secs: f64,
    pub running: usize,
    pub start_rss_mb: f64,
    pub peak_rss_mb: f64,
    pub get_rps: f64,
    pub list_rps: f64,
    /// Whether the server answered `?limit=` with a page; if not, `list_rps`
    /// is of the whole list.
    pub paged: bool,
}

pub async fn run(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<Many> {
    let fleet = Fleet::start(bins, work, &Db::Sqlite).await?;
    let pid = fleet.server.pid();
    let start_rss_mb = rss::current_mb(pid)?;

    let started = Instant::now();
    let ids = fleet.create(sizes.engines, CLIENTS).await?;
    let creates_secs = started.elapsed().as_secs_f64();
    let (running, at) = fleet
        .wait_running(sizes.engines, sizes.running_timeout)
        .await?;
    let running_secs = at.duration_since(started).as_secs_f64();
    let peak_rss_mb = rss::peak_mb(pid)?;

    let paged = answers_pages(&fleet).await?;
    let one = fleet.server.url(&format!("/engine/{}", ids[0]))?;
    let list = if paged {
        fleet.server.url(&format!("/engines?limit={PAGE}"))?
    } else {
        fleet.server.url("/engines")?
    };
    let get_rps = wrk::requests_per_sec(&one, sizes.wrk_duration, None)?;
    let list_rps = wrk::requests_per_sec(&list, sizes.wrk_duration, None)?;
    fleet.server.terminate();
    Ok(Many {
        creates_secs,
        running_secs,
        running,
        start_rss_mb,
        peak_rss_mb,
        get_rps,
        list_rps,
        paged,
    })
}

/// Whether `GET /engines?limit=2` answers at most two engines (in an array,
/// or any other shape of page) rather than the whole list.
async fn answers_pages(fleet: &Fleet) -> anyhow::Result<bool> {
    let response = reqwest::get(fleet.server.url("/engines?limit=2")?).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET /engines?limit=2: {}",
        response.status()
    );
    let body: Value = response.json().await.context("GET /engines?limit=2")?;
    Ok(body.as_array().is_none_or(|engines| engines.len() <= 2))
}
