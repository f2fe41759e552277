//! The state monitor: drives every due engine through its lifecycle on a
//! [`ResourceManager`].
//!
//! Any number of monitors, in any number of processes, may share one store.
//! They coordinate only through it: each engine is claimed with a lease by a
//! compare-and-swap (see [`reconcile`]), so exactly one monitor acts on an
//! engine at a time, a stale monitor's writes are refused, and the engines of
//! a monitor that died are taken over once its leases expire.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

use crate::engine::EngineId;
use crate::resource::ResourceManager;
use crate::store::Store;
use crate::time::Timestamp;

mod reconcile;

use reconcile::Reconciler;

#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Names this monitor in leases; must be unique among live monitors.
    pub owner: String,
    /// How often watched engines are checked, and the longest a monitor sleeps.
    pub check_interval: Duration,
    /// How long a claim stays valid; another monitor takes over after it.
    pub lease_duration: Duration,
    /// How long an engine may take to become ready before it is failed.
    pub start_deadline: Duration,
    /// How many engines are acted on at once.
    pub max_concurrent: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            owner: format!("monitor-{}-{}", std::process::id(), EngineId::generate()),
            check_interval: Duration::from_secs(1),
            lease_duration: Duration::from_secs(30),
            start_deadline: Duration::from_secs(300),
            max_concurrent: 64,
        }
    }
}

pub struct Monitor {
    reconciler: Arc<Reconciler>,
    wake: Arc<Notify>,
}

impl Monitor {
    pub fn new(
        store: Arc<dyn Store>,
        resources: Arc<dyn ResourceManager>,
        config: MonitorConfig,
    ) -> Self {
        Self {
            reconciler: Arc::new(Reconciler {
                store,
                resources,
                config,
            }),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notifying this wakes the monitor at once, instead of at its next
    /// interval; give it to [`crate::Engines::with_waker`] in the same process.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.reconciler.config
    }

    /// Runs until `shutdown` completes, then lets the actions under way finish
    /// (each is bounded by the lease) so none is cut off half way.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let config = &self.reconciler.config;
        info!(owner = %config.owner, "monitor started");
        let mut tasks: JoinSet<()> = JoinSet::new();
        // Engines with a pass under way, by task, so a due list read before a
        // claim landed does not start a second pass on the same engine.
        let mut in_flight: HashMap<tokio::task::Id, EngineId> = HashMap::new();
        let mut store_failures = 0u32;
        tokio::pin!(shutdown);
        loop {
            let mut pause = config.check_interval;
            let room = config.max_concurrent.saturating_sub(in_flight.len());
            if room > 0 {
                match self
                    .reconciler
                    .store
                    .due(Timestamp::now(), room + in_flight.len())
                    .await
                {
                    Ok(due) => {
                        store_failures = 0;
                        let busy: Vec<&EngineId> = in_flight.values().collect();
                        let fresh: Vec<_> = due
                            .into_iter()
                            .filter(|e| !busy.contains(&e.id()))
                            .take(room)
                            .collect();
                        for engine in fresh {
                            let id = engine.id().clone();
                            let reconciler = Arc::clone(&self.reconciler);
                            let span = info_span!("engine", id = %id);
                            let task = tasks.spawn(
                                async move {
                                    reconciler.pass(engine).await;
                                }
                                .instrument(span),
                            );
                            in_flight.insert(task.id(), id);
                        }
                    }
                    Err(err) => {
                        store_failures = store_failures.saturating_add(1);
                        pause = config.backoff(store_failures);
                        warn!(%err, retry_in = ?pause, "cannot read due engines");
                    }
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    forget(&mut in_flight, done);
                    // Collect everything else that finished, then look again at
                    // once: a finished step usually makes the next one due.
                    while let Some(done) = tasks.try_join_next_with_id() {
                        forget(&mut in_flight, done);
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        info!(in_flight = in_flight.len(), "monitor stopping");
        while let Some(done) = tasks.join_next_with_id().await {
            forget(&mut in_flight, done);
        }
        info!("monitor stopped");
    }
}

fn forget(
    in_flight: &mut HashMap<tokio::task::Id, EngineId>,
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    let task = match done {
        Ok((task, ())) => task,
        Err(err) => {
            // The engine's lease expires and any monitor retries it.
            warn!(%err, "an engine pass panicked");
            err.id()
        }
    };
    in_flight.remove(&task);
}
