//! A watch-fed, in-memory cache of the engines' driver pods (every kind's
//! main pod) and the pods rucat creates with them (Ballista's executors);
//! not the executors Spark creates, which rucat does not track.
//!
//! One watch per resource manager lists the rucat driver pods (a quorum
//! read) and then follows their changes, so `status` reads memory instead of
//! calling the API server per engine, and the monitors hear at once which
//! engine changed.
//!
//! The cache is **current** only from the end of a full list until the watch
//! next fails. A cache that missed changes would report a pod created during
//! an API server outage as missing (→ Gone) or a pod that became ready as
//! still pending (→ start deadline), and the monitor would delete a healthy
//! engine. So on any watch error — the server gone, the watch's
//! resourceVersion compacted away (410), a refused request — the cache stops
//! being current, the watch is dropped, and after a short capped
//! [`Backoff`] a new one lists everything again. A relist after every error
//! (rather than kube's resume from the last resourceVersion, which succeeds
//! silently) is what makes "current" observable; it costs one list of
//! rucat's own pods per error.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use rucat_core::{ChangeSink, ChangeSinks, EngineId};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::names;

pub struct DriverPods {
    store: Store<Pod>,
    namespace: String,
    current: Arc<AtomicBool>,
    sinks: ChangeSinks,
    task: JoinHandle<()>,
}

impl DriverPods {
    /// Starts watching the driver pods of `api`'s namespace.
    pub fn start(api: Api<Pod>, namespace: &str) -> Self {
        let writer = Writer::default();
        let store = writer.as_reader();
        let current = Arc::new(AtomicBool::new(false));
        let sinks = ChangeSinks::default();
        let follower = Follower {
            api,
            writer,
            current: Arc::clone(&current),
            sinks: sinks.clone(),
            backoff: Backoff::WATCH,
        };
        Self {
            store,
            namespace: namespace.to_owned(),
            current,
            sinks,
            task: tokio::spawn(follower.run()),
        }
    }

    /// Whether the cache holds every change up to now (a full list has
    /// arrived and the watch has not failed since); if not, a missing or
    /// unready pod proves nothing.
    pub fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Pod>> {
        self.store
            .get(&ObjectRef::new(name).within(&self.namespace))
    }

    /// Every driver pod known now.
    pub fn all(&self) -> Vec<Arc<Pod>> {
        self.store.state()
    }

    pub fn subscribe(&self, sink: ChangeSink) {
        self.sinks.add(sink);
    }
}

impl Drop for DriverPods {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The task that keeps the cache: list, watch, and on an error start over.
struct Follower {
    api: Api<Pod>,
    writer: Writer<Pod>,
    current: Arc<AtomicBool>,
    sinks: ChangeSinks,
    backoff: Backoff,
}

impl Follower {
    async fn run(mut self) {
        let config = watcher::Config::default()
            .labels(&names::driver_selector())
            .list_semantic(watcher::ListSemantic::MostRecent);
        let mut stale_since: Option<Instant> = None;
        loop {
            let events = watcher(self.api.clone(), config.clone());
            let mut events = std::pin::pin!(events);
            let error = loop {
                match events.next().await {
                    Some(Ok(event)) => {
                        if self.apply(&event)
                            && let Some(since) = stale_since.take()
                        {
                            info!(stale_for = ?since.elapsed(), "driver pod cache current again");
                        }
                    }
                    Some(Err(err)) => break err.to_string(),
                    None => break "the watch stream ended".to_owned(),
                }
            };
            self.current.store(false, Ordering::Release);
            let retry_in = self.backoff.next_delay();
            if stale_since.is_none() {
                stale_since = Some(Instant::now());
                warn!(%error, ?retry_in, "driver pod watch lost; engine status is unknown until the pods are listed again");
            } else {
                debug!(%error, ?retry_in, "driver pod watch still failing");
            }
            tokio::time::sleep(retry_in).await;
        }
    }

    /// Applies one event; true when it made the cache current.
    fn apply(&mut self, event: &watcher::Event<Pod>) -> bool {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::Delete(pod) => {
                self.writer.apply_watcher_event(event);
                if let Some(id) = engine_of(pod) {
                    self.sinks.changed(&id);
                }
                false
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {
                self.writer.apply_watcher_event(event);
                false
            }
            watcher::Event::InitDone => {
                // Every engine whose pod appeared, changed or vanished while
                // the cache was not current may be acted on now.
                let mut touched: BTreeSet<EngineId> = self.engines();
                self.writer.apply_watcher_event(event);
                touched.extend(self.engines());
                self.current.store(true, Ordering::Release);
                self.backoff.reset();
                debug!(pods = touched.len(), "driver pod cache listed");
                for id in &touched {
                    self.sinks.changed(id);
                }
                true
            }
        }
    }

    fn engines(&self) -> BTreeSet<EngineId> {
        self.writer
            .as_reader()
            .state()
            .iter()
            .filter_map(|pod| engine_of(pod))
            .collect()
    }
}

/// The engine a watched pod belongs to: its label (a member pod's name is
/// not the engine's), else its name.
fn engine_of(pod: &Pod) -> Option<EngineId> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(names::ENGINE_ID))
        .and_then(|id| id.parse().ok())
        .or_else(|| pod.metadata.name.as_deref().and_then(names::engine_of))
}
