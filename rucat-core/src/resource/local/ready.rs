//! Telling monitors the moment a starting engine accepts connections, and
//! the moment its process ends: it is Running as soon as it can serve rather
//! than at a monitor's next check, and a Running engine that dies is cleaned
//! up at once rather than at the monitors' next resync. Only the processes
//! this process started can be watched this way (it is their parent); the
//! others, adopted after a restart, are found by the resync.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::process;
use crate::change::{ChangeSink, ChangeSinks};
use crate::engine::EngineId;

/// How often a starting engine's port is tried.
const POLL: Duration = Duration::from_millis(100);
/// Starts slower than this are left to the monitors' own checks.
const LIMIT: Duration = Duration::from_secs(600);

/// The monitors to tell, shared with the tasks that watch starting engines.
#[derive(Clone, Default)]
pub(super) struct Readiness {
    sinks: ChangeSinks,
}

impl Readiness {
    pub fn subscribe(&self, sink: ChangeSink) {
        self.sinks.add(sink);
    }

    /// Watches an engine just launched on `port`: reports it when it accepts
    /// connections, and again when its process ends (`exited` turns true).
    pub fn watch(&self, id: EngineId, port: u16, mut exited: watch::Receiver<bool>) {
        if self.sinks.is_empty() {
            return;
        }
        let readiness = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let ended = tokio::select! {
                    // Also when the reaper is gone without a word: nothing
                    // more will be learnt by waiting.
                    _ = exited.wait_for(|done| *done) => true,
                    () = tokio::time::sleep(POLL) => false,
                };
                if ended {
                    readiness.sinks.changed(&id);
                    return;
                }
                if process::accepts_connections(port).await {
                    break;
                }
                if started.elapsed() >= LIMIT {
                    break;
                }
            }
            readiness.sinks.changed(&id);
            // Running: its end is the next thing to report.
            if exited.wait_for(|done| *done).await.is_ok() {
                readiness.sinks.changed(&id);
            }
        });
    }
}
