//! A watch-fed, in-memory cache of the engines' driver pods.
//!
//! One watcher per resource manager lists the rucat driver pods once and then
//! follows a watch stream (re-listing with backoff after any error), so
//! `status` reads memory instead of calling the API server per engine. Through
//! an API server outage it keeps serving the last state it saw — the
//! SQL-backed-cache idea: a flaky control plane should not look like failing
//! engines — and it tells the monitors which engine changed, so they act on a
//! pod event at once instead of at their next check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rucat_core::{ChangeSink, ChangeSinks};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::names;

pub struct DriverPods {
    store: Store<Pod>,
    namespace: String,
    synced: Arc<AtomicBool>,
    sinks: ChangeSinks,
    task: JoinHandle<()>,
}

impl DriverPods {
    /// Starts watching the driver pods of `api`'s namespace.
    pub fn start(api: Api<Pod>, namespace: &str) -> Self {
        let (store, writer) = reflector::store();
        let synced = Arc::new(AtomicBool::new(false));
        let sinks = ChangeSinks::default();
        let config = watcher::Config::default().labels(&names::driver_selector());
        let events = watcher(api, config).default_backoff().reflect(writer);
        let task = tokio::spawn({
            let (synced, sinks) = (Arc::clone(&synced), sinks.clone());
            async move {
                let mut events = std::pin::pin!(events);
                while let Some(event) = events.next().await {
                    match event {
                        Ok(event) => on_event(&event, &synced, &sinks),
                        // The watcher re-lists after its backoff; the cache
                        // keeps the last state it saw meanwhile.
                        Err(err) => warn!(%err, "driver pod watch interrupted; retrying"),
                    }
                }
            }
        });
        Self {
            store,
            namespace: namespace.to_owned(),
            synced,
            sinks,
            task,
        }
    }

    /// Whether the first full list has arrived; before that, a missing pod
    /// proves nothing.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
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

fn on_event(event: &watcher::Event<Pod>, synced: &AtomicBool, sinks: &ChangeSinks) {
    let pod = match event {
        watcher::Event::Apply(pod)
        | watcher::Event::Delete(pod)
        | watcher::Event::InitApply(pod) => pod,
        watcher::Event::InitDone => {
            synced.store(true, Ordering::Release);
            debug!("driver pod cache synced");
            return;
        }
        watcher::Event::Init => return,
    };
    let Some(id) = pod.metadata.name.as_deref().and_then(names::engine_of) else {
        return;
    };
    sinks.changed(&id);
}
