//! The state monitor: drives every due engine through its lifecycle on a
//! [`ResourceManager`].
//!
//! Any number of monitors, in any number of processes, may share one store.
//! They coordinate only through it: each engine is claimed with a lease by a
//! compare-and-swap (see [`reconcile`]), so exactly one monitor acts on an
//! engine at a time, a stale monitor's writes are refused, and the engines of
//! a monitor that died are taken over once its leases expire.
//!
//! A monitor reads the store's due list every check interval, and at once
//! whenever one of its passes ends. Between reads it listens to the change
//! feeds of its store and resource manager (see [`crate::change`]), so new
//! work and resource events are acted on within milliseconds where a feed
//! exists; the scheduled reads catch whatever a feed missed.
//!
//! Engines at rest cost no writes: Terminated and ErrorClean wait for a user,
//! and Running engines are watched rather than scheduled (see [`watch`]), so
//! a store holding only such engines is never written to by a monitor.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::change::{Change, ChangeSink};
use crate::engine::{EngineId, EngineRecord};
use crate::logs::LogArchive;
use crate::metrics::MonitorMetrics;
use crate::resource::ResourceManager;
use crate::state::EngineState;
use crate::store::Store;
use crate::time::Timestamp;

pub(crate) mod blocked;
mod reconcile;
mod watch;

use reconcile::Reconciler;
use watch::Watcher;

#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Names this monitor in leases; must be unique among live monitors.
    pub owner: String,
    /// How often starting and stopping engines are checked, and how often
    /// the due list is read when no feed reports anything.
    pub check_interval: Duration,
    /// How long a claim stays valid; another monitor takes over after it.
    pub lease_duration: Duration,
    /// How long an engine may take to become ready before it is failed.
    pub start_deadline: Duration,
    /// How many engines are acted on at once.
    pub max_concurrent: usize,
    /// How often every Running engine's resource is checked, read-only, to
    /// catch a failure that no change feed reported (see [`watch`]); also
    /// the longest such a failure goes unnoticed.
    pub resync_interval: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            owner: format!("monitor-{}-{}", std::process::id(), EngineId::generate()),
            check_interval: Duration::from_secs(1),
            lease_duration: Duration::from_secs(30),
            start_deadline: Duration::from_secs(300),
            max_concurrent: 64,
            resync_interval: Duration::from_secs(30),
        }
    }
}

pub struct Monitor {
    reconciler: Reconciler,
    wake: Arc<Notify>,
    changes: mpsc::Receiver<Change>,
    /// Given to the store when the monitor runs (see [`Store::subscribe`]).
    sink: ChangeSink,
}

/// How many reported changes may wait before further ones are dropped (the
/// scheduled checks still cover them).
const CHANGE_BACKLOG: usize = 4096;

impl Monitor {
    pub fn new(
        store: Arc<dyn Store>,
        resources: Arc<dyn ResourceManager>,
        config: MonitorConfig,
    ) -> Self {
        let (sink, changes) = ChangeSink::channel(CHANGE_BACKLOG);
        resources.subscribe(sink.clone());
        Self {
            reconciler: Reconciler {
                store,
                resources,
                config,
                metrics: None,
                logs: None,
            },
            wake: Arc::new(Notify::new()),
            changes,
            sink,
        }
    }

    /// Notifying this wakes the monitor at once, instead of at its next
    /// interval; give it to [`crate::Engines::with_waker`] in the same process
    /// when the store has no change feed (those in rucat all have one).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Records transitions, time in state and lease events into `metrics`
    /// (see [`crate::metrics`]); without it the monitor records nothing.
    pub fn with_metrics(mut self, metrics: Arc<MonitorMetrics>) -> Self {
        self.reconciler.metrics = Some(metrics);
        self
    }

    /// Copies each attempt's log into `archive` just before the monitor
    /// releases the engine's resources (a stop, an idle stop, an error
    /// cleanup), so that the log outlives them; see [`crate::logs`].
    pub fn with_log_archive(mut self, archive: Arc<dyn LogArchive>) -> Self {
        self.reconciler.logs = Some(archive);
        self
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.reconciler.config
    }

    /// Runs until `shutdown` completes, then lets the actions under way finish
    /// (each is bounded by the lease) so none is cut off half way.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Self {
            reconciler,
            wake,
            mut changes,
            sink,
        } = self;
        let reconciler = Arc::new(reconciler);
        let config = reconciler.config.clone();
        // Before the first read: whatever that read misses, the feed reports.
        reconciler.store.subscribe(sink).await;
        info!(owner = %config.owner, "monitor started");
        let watcher = Watcher {
            store: Arc::clone(&reconciler.store),
            resources: Arc::clone(&reconciler.resources),
            config: config.clone(),
        };
        let (suspects_tx, mut suspects) = mpsc::channel(SUSPECT_BACKLOG);
        let mut passes = Passes::new(
            Arc::clone(&reconciler),
            watcher.clone(),
            suspects_tx.clone(),
        );
        let mut store_failures = 0u32;
        // When the due list is read next. A deadline rather than a sleep per
        // loop, so a steady stream of changes cannot postpone it for ever.
        let mut next_read = Instant::now();
        let mut read_now = true;
        // The first resync runs at once: engines that failed while no monitor
        // ran are found on start.
        let mut next_resync = Instant::now();
        let mut sweep: Option<JoinHandle<()>> = None;
        tokio::pin!(shutdown);
        loop {
            if read_now || Instant::now() >= next_read {
                let mut pause = config.check_interval;
                let room = passes.room();
                if room > 0 {
                    match reconciler
                        .store
                        .due(Timestamp::now(), room + passes.len())
                        .await
                    {
                        Ok(due) => {
                            store_failures = 0;
                            for engine in due {
                                passes.start(engine);
                            }
                        }
                        Err(err) => {
                            store_failures = store_failures.saturating_add(1);
                            pause = config.backoff(store_failures);
                            warn!(%err, retry_in = ?pause, "cannot read due engines");
                        }
                    }
                }
                next_read = Instant::now() + pause;
            }
            if Instant::now() >= next_resync {
                // A sweep slower than the interval is not run twice at once.
                if sweep.as_ref().is_none_or(JoinHandle::is_finished) {
                    sweep = Some(tokio::spawn(resync(watcher.clone(), suspects_tx.clone())));
                }
                next_resync = Instant::now() + config.resync_interval;
            }
            // Changes are acted on as they come, without a read of the due list.
            read_now = false;
            tokio::select! {
                () = &mut shutdown => break,
                // A finished step usually makes the next one due: look again at once.
                () = passes.finished(), if passes.len() > 0 => read_now = true,
                Some(suspect) = suspects.recv(), if passes.room() > 0 => passes.start(suspect),
                Some(change) = changes.recv() => {
                    let mut batch = vec![change];
                    while let Ok(change) = changes.try_recv() {
                        batch.push(change);
                    }
                    passes.take_changes(batch).await;
                }
                () = wake.notified() => read_now = true,
                () = tokio::time::sleep_until(next_read.min(next_resync)) => {}
            }
        }
        if let Some(sweep) = sweep {
            sweep.abort();
        }
        info!(in_flight = passes.len(), "monitor stopping");
        passes.drain().await;
        info!("monitor stopped");
    }
}

/// How many Running engines found to need a pass may wait for room; a
/// sweep that finds more waits for the monitor rather than dropping them.
const SUSPECT_BACKLOG: usize = 1024;

/// One resync sweep (see [`watch`]).
async fn resync(watcher: Watcher, suspects: mpsc::Sender<EngineRecord>) {
    let started = Instant::now();
    match watcher
        .sweep(&suspects)
        .instrument(info_span!("resync"))
        .await
    {
        Ok(sweep) => debug!(
            checked = sweep.checked,
            suspects = sweep.suspects,
            took = ?started.elapsed(),
            "resync of running engines done"
        ),
        Err(err) => warn!(%err, "cannot read the running engines to resync them"),
    }
}

/// The passes under way, at most `max_concurrent`, never two on one engine.
struct Passes {
    reconciler: Arc<Reconciler>,
    watcher: Watcher,
    /// Where Running engines found to need a pass wait for room.
    suspects: mpsc::Sender<EngineRecord>,
    tasks: JoinSet<()>,
    engines: HashMap<tokio::task::Id, EngineId>,
}

impl Passes {
    fn new(
        reconciler: Arc<Reconciler>,
        watcher: Watcher,
        suspects: mpsc::Sender<EngineRecord>,
    ) -> Self {
        Self {
            reconciler,
            watcher,
            suspects,
            tasks: JoinSet::new(),
            engines: HashMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.engines.len()
    }

    fn room(&self) -> usize {
        self.reconciler
            .config
            .max_concurrent
            .saturating_sub(self.len())
    }

    /// Starts a pass unless one is under way on the engine or there is no
    /// room (a due list read before a claim landed can repeat an engine).
    fn start(&mut self, engine: EngineRecord) {
        if self.room() == 0 || self.engines.values().any(|id| id == engine.id()) {
            return;
        }
        let id = engine.id().clone();
        let reconciler = Arc::clone(&self.reconciler);
        let span = info_span!("engine", id = %id);
        let task = self.tasks.spawn(
            async move {
                reconciler.pass(engine).await;
            }
            .instrument(span),
        );
        self.engines.insert(task.id(), id);
    }

    /// Acts on reported changes: written records that are due now, and
    /// engines whose resource changed, ahead of their schedule.
    async fn take_changes(&mut self, batch: Vec<Change>) {
        let now = Timestamp::now();
        // The latest revision of each written engine; older ones are stale.
        let mut written: HashMap<EngineId, Box<EngineRecord>> = HashMap::new();
        let mut resources = Vec::new();
        for change in batch {
            match change {
                Change::Record(record) => match written.get(record.id()) {
                    Some(seen) if seen.revision >= record.revision => {}
                    _ => {
                        written.insert(record.id().clone(), record);
                    }
                },
                Change::Resource(id) => resources.push(id),
            }
        }
        for record in written.into_values() {
            // Our own claims and releases come back here too: leased or not
            // yet due, they are skipped.
            if record.is_due(now) {
                self.start(*record);
            }
        }
        self.expedite(resources, now).await;
    }

    /// Looks at engines whose resource just changed, ahead of their schedule:
    /// a due one gets a pass, a Running one a read-only check first.
    async fn expedite(&mut self, mut changed: Vec<EngineId>, now: Timestamp) {
        changed.sort();
        changed.dedup();
        for id in changed {
            match self.reconciler.store.get(&id).await {
                Ok(Some(engine))
                    if engine.next_action_at.is_some()
                        && engine.lease.as_ref().is_none_or(|l| l.expires_at <= now) =>
                {
                    self.start(engine);
                }
                Ok(Some(engine)) if engine.state == EngineState::Running => {
                    if let Some(suspect) = self.watcher.check(engine).await {
                        // A full backlog is left to the next resync.
                        let _ = self.suspects.try_send(suspect);
                    }
                }
                Ok(_) => {}
                Err(err) => warn!(%err, engine = %id, "cannot read a changed engine"),
            }
        }
    }

    /// Waits for one pass to end and collects every other that has ended.
    async fn finished(&mut self) {
        if let Some(done) = self.tasks.join_next_with_id().await {
            self.forget(done);
        }
        while let Some(done) = self.tasks.try_join_next_with_id() {
            self.forget(done);
        }
    }

    async fn drain(&mut self) {
        while let Some(done) = self.tasks.join_next_with_id().await {
            self.forget(done);
        }
    }

    fn forget(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let task = match done {
            Ok((task, ())) => task,
            Err(err) => {
                // The engine's lease expires and any monitor retries it.
                warn!(%err, "an engine pass panicked");
                err.id()
            }
        };
        self.engines.remove(&task);
    }
}
