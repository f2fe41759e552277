//! Benchmark i, the due list: how long a monitor's read of what is due
//! takes as the store grows, measured in this process on rucat's
//! `SqliteStore` (a file in a temporary directory, written through the
//! store itself) by calling `Store::due` directly.
//!
//! The file holds `engines` engines: 1% due (just created, due now) and 99%
//! at rest, as a quiet monitor leaves them — Running (watched, not
//! scheduled: no `next_action_at`), Terminated and ErrorClean in turn. Two
//! reads are timed, each the p50 of many:
//!
//! - the first [`EQUAL`] due engines: as many as 1% of 1,000, so a read of
//!   1,000 engines and one of 100,000 return the same records, and any
//!   difference is the cost of finding them among the engines at rest —
//!   O(due) against O(engines);
//! - the monitor's own read, as many as it acts on at once (64 by
//!   default), for reference: at 1,000 engines it returns the 10 due ones.
//!
//! This runs the current build's store only: it is no measure of a server
//! binary, so `--compare-bin-dir` has no "(before)" of it.

use std::sync::Arc;
use std::time::Instant;

use rucat_core::{CreateEngineRequest, EngineRecord, EngineState, MonitorConfig, Store, Timestamp};
use rucat_store::SqliteStore;
use serde::{Deserialize, Serialize};

use crate::overhead::Latencies;

/// Due engines returned by the equal-size read: 1% of 1,000.
pub const EQUAL: usize = 10;

/// Reads timed per figure, after as many unmeasured ones.
const READS: usize = 200;

/// Inserts in flight while the file is filled.
const IN_FLIGHT: usize = 16;

#[derive(Debug, Serialize, Deserialize)]
pub struct DueRead {
    /// The first [`EQUAL`] due engines.
    pub equal_ms: f64,
    /// The monitor's read of up to `max_concurrent`.
    pub monitor_ms: f64,
    pub monitor_limit: usize,
}

pub async fn run(engines: usize) -> anyhow::Result<DueRead> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("rucat.db");
    let store: Arc<SqliteStore> =
        Arc::new(tokio::task::spawn_blocking(move || SqliteStore::open(path)).await??);
    fill(&store, engines).await?;
    let monitor_limit = MonitorConfig::default().max_concurrent;
    Ok(DueRead {
        equal_ms: p50_ms(&store, EQUAL).await?,
        monitor_ms: p50_ms(&store, monitor_limit).await?,
        monitor_limit,
    })
}

/// Writes `engines` engines, every hundredth due and the rest at rest.
async fn fill(store: &Arc<SqliteStore>, engines: usize) -> anyhow::Result<()> {
    let spec = CreateEngineRequest::spark("bench", "4.3.0");
    let at_rest = [
        EngineState::Running,
        EngineState::Terminated,
        EngineState::ErrorClean,
    ];
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..engines {
        let now = Timestamp::now();
        let mut record = EngineRecord::new(spec.clone().validate()?, now);
        if i % 100 != 0 {
            let state = at_rest[i % at_rest.len()];
            record.enter(state, now);
            match state {
                EngineState::Running => record.endpoint = Some("127.0.0.1:15002".into()),
                EngineState::ErrorClean => record.error = Some("the driver exited".into()),
                _ => {}
            }
            record.next_action_at = None;
        }
        let store = Arc::clone(store);
        writes.spawn(async move { store.insert(&record).await });
        while writes.len() >= IN_FLIGHT {
            writes.join_next().await.expect("writes in flight")??;
        }
    }
    while let Some(write) = writes.join_next().await {
        write??;
    }
    Ok(())
}

/// The p50 of [`READS`] reads of up to `limit` due engines.
async fn p50_ms(store: &SqliteStore, limit: usize) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(READS);
    for round in 0..2 * READS {
        let started = Instant::now();
        let due = store.due(Timestamp::now(), limit).await?;
        let took = started.elapsed();
        anyhow::ensure!(!due.is_empty(), "engines are due");
        if round >= READS {
            times.push(took);
        }
    }
    Ok(Latencies::of(times).p50_ms)
}

/// Read times at two sizes, each filled and read in a process of its own
/// (`rucat-bench due --engines N`), so neither inherits the other's cache.
pub fn sizes(small: usize, large: usize) -> anyhow::Result<(DueRead, DueRead)> {
    let read = |engines: usize| -> anyhow::Result<DueRead> {
        crate::procs::run_json(&["due", "--engines", &engines.to_string()])
    };
    Ok((read(small)?, read(large)?))
}
