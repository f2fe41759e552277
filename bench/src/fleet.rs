//! What benchmarks h and i share: a release `rucat-server` (embedded
//! monitor, default one-second check interval, the `Markers` resource
//! manager, so an engine is Running as soon as its marker file exists) on
//! SQLite or a SurrealDB server, engines created through its REST API by
//! concurrent clients, a census of the store read from outside the server,
//! and the server's CPU time and disk writes from `/proc`.
//!
//! The census reads the store as a second client would — never through the
//! server's API, which would add load to what is measured — and only
//! between measurement windows. It reads only columns and fields that the
//! store has had from the start (`state`, `revision`), so it works as well
//! on a file written by an older build (`--compare-bin-dir`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rucat_core::{EngineState, Store};
use rucat_store::{DatabaseConfig, SurrealConfig, SurrealStore};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::procs::{Binaries, Process};
use crate::wrk;

/// How often the census looks while waiting for engines to be Running.
const POLL: Duration = Duration::from_millis(500);

/// The server's store.
#[derive(Clone)]
pub enum Db {
    /// `<dir>/rucat.db`, the server's default.
    Sqlite,
    /// A database on a SurrealDB server.
    Surreal(SurrealConfig),
}

/// A `rucat-server` on the `Markers` resource manager under `dir`, with
/// the census of its store.
pub struct Fleet {
    pub server: Process,
    pub census: Census,
}

impl Fleet {
    pub async fn start(bins: &Binaries, dir: &Path, db: &Db) -> anyhow::Result<Self> {
        let mut config = json!({
            "resource_manager": {"Markers": {"dir": dir.join("markers")}},
        });
        if let Db::Surreal(surreal) = db {
            config["database"] = serde_json::to_value(DatabaseConfig::Surreal(surreal.clone()))?;
        }
        let server = bins.start_server(dir, &config)?;
        let census = match db {
            Db::Sqlite => Census::Sqlite(dir.join("rucat.db")),
            Db::Surreal(config) => Census::Surreal(Arc::new(SurrealStore::open(config).await?)),
        };
        Ok(Self { server, census })
    }

    /// Creates `count` engines through `POST /engine`, `clients` requests at
    /// a time; returns their ids.
    pub async fn create(&self, count: usize, clients: usize) -> anyhow::Result<Vec<String>> {
        let http = reqwest::Client::new();
        let url = self.server.url("/engine")?;
        create_many(count, clients, move |_| create_request(&http, &url)).await
    }

    /// Waits until `count` engines are Running or `timeout` has passed;
    /// returns how many are, and when the census saw that.
    pub async fn wait_running(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<(usize, Instant)> {
        let started = Instant::now();
        loop {
            let running = self.census.running().await?;
            if running >= count || started.elapsed() >= timeout {
                return Ok((running, Instant::now()));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// `count` creates, `clients` at a time: `request(i)` is the `i`th (from
/// `count - 1` down to 0, in no particular order across clients). Returns
/// the new engines' ids.
pub async fn create_many(
    count: usize,
    clients: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> anyhow::Result<Vec<String>> {
    let request = Arc::new(request);
    let left = Arc::new(AtomicUsize::new(count));
    let workers: Vec<_> = (0..clients.min(count).max(1))
        .map(|_| {
            let (request, left) = (Arc::clone(&request), Arc::clone(&left));
            tokio::spawn(async move {
                let mut ids = Vec::new();
                while let Ok(n) =
                    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                {
                    ids.push(created(request(n - 1)).await?);
                }
                anyhow::Ok(ids)
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(count);
    for worker in workers {
        ids.extend(worker.await??);
    }
    Ok(ids)
}

/// The benchmarks' `POST /engine` to `url`.
pub fn create_request(http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    http.post(url)
        .header("content-type", "application/json")
        .body(wrk::CREATE_BODY)
}

/// One `POST /engine` of the benchmarks' request; the new engine's id.
pub async fn create_one(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    created(create_request(http, url)).await
}

/// Sends a `POST /engine`; the new engine's id.
pub async fn created(request: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let response = request.send().await?;
    ensure!(
        response.status().is_success(),
        "POST /engine: {}",
        response.status()
    );
    let body: Value = response.json().await?;
    Ok(body["id"].as_str().context("an id")?.to_owned())
}

/// Reads a server's store from outside it.
pub enum Census {
    /// The SQLite file, opened read-only for each look.
    Sqlite(PathBuf),
    /// A client of the same SurrealDB database.
    Surreal(Arc<SurrealStore>),
}

impl Census {
    /// Engines recorded Running.
    pub async fn running(&self) -> anyhow::Result<usize> {
        Ok(self.look().await?.running)
    }

    /// The sum of every engine's revision: each store write (create or
    /// compare-and-swap) adds one, so its growth over a window with no
    /// creates or deletes is the number of writes.
    pub async fn writes(&self) -> anyhow::Result<u64> {
        Ok(self.look().await?.revisions)
    }

    async fn look(&self) -> anyhow::Result<Look> {
        match self {
            Census::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sqlite_look(&path)).await?
            }
            Census::Surreal(store) => {
                let engines = store.list().await?;
                Ok(Look {
                    running: engines
                        .iter()
                        .filter(|e| e.state == EngineState::Running)
                        .count(),
                    revisions: engines.iter().map(|e| e.revision).sum(),
                })
            }
        }
    }
}

struct Look {
    running: usize,
    revisions: u64,
}

fn sqlite_look(path: &Path) -> anyhow::Result<Look> {
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let (running, revisions): (i64, i64) = conn.query_row(
        "SELECT count(*) FILTER (WHERE state = 'Running'), coalesce(sum(revision), 0) \
         FROM engines",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(Look {
        running: usize::try_from(running)?,
        revisions: u64::try_from(revisions)?,
    })
}

/// A process's CPU time and bytes written to storage so far, from
/// `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/io` (write_bytes:
/// what it caused to be written to disk, counted when pages are dirtied,
/// so a write the kernel has not flushed yet counts too).
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    at: Instant,
    cpu_secs: f64,
    write_bytes: u64,
}

impl Usage {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
        let ticks = cpu_ticks(&stat).context("utime and stime in /proc/<pid>/stat")?;
        let write_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|n| n.trim().parse().ok())
            .context("write_bytes in /proc/<pid>/io")?;
        Ok(Self {
            at: Instant::now(),
            cpu_secs: ticks as f64 / clock_ticks_per_sec(),
            write_bytes,
        })
    }

    /// CPU as a percentage of one core, and disk bytes written per second,
    /// from `self` to `later`.
    pub fn rates_until(&self, later: &Usage) -> (f64, f64) {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        (
            100.0 * (later.cpu_secs - self.cpu_secs) / secs,
            later.write_bytes.saturating_sub(self.write_bytes) as f64 / secs,
        )
    }
}

/// utime + stime: fields 14 and 15 of `/proc/<pid>/stat`, counted after the
/// command name, which is in parentheses and may hold spaces.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_past_a_name_with_spaces() {
        let stat = "42 (rucat server) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(12));
    }

    #[test]
    fn this_process_has_usage() {
        let usage = Usage::of(std::process::id()).unwrap();
        assert!(usage.cpu_secs >= 0.0);
    }
}
