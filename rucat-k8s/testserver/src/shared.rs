//! State shared by the HTTP handlers, the open watch streams and the
//! [`TestServer`](crate::TestServer) handle.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::calls::{Call, Verb};
use crate::resource::Resource;
use crate::status::ApiError;
use crate::store::{Retention, Store};

pub(crate) struct Shared {
    store: Mutex<Store>,
    /// The newest resourceVersion; watch streams wait on it.
    rv_tx: watch::Sender<u64>,
    /// Bumped whenever the kubelet harness appends log lines; follow
    /// streams wait on it (and on `rv_tx`, for their container's end).
    log_tx: watch::Sender<u64>,
    /// Bumped to end every open watch stream (unavailability, shutdown,
    /// or a test's explicit request).
    close_tx: watch::Sender<u64>,
    unavailable: AtomicBool,
    calls: Mutex<Vec<Call>>,
    /// Failures to answer the next matching requests with, in order.
    injected: Mutex<Vec<(Verb, Resource, ApiError)>>,
    /// Failures to answer every matching request with, until cleared.
    standing: Mutex<Vec<(Verb, Resource, ApiError)>>,
    open_watches: AtomicUsize,
    pub(crate) bookmark_interval: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data for a test
    // server's purposes; keep serving rather than cascade panics.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(retention: Retention, bookmark_interval: Duration) -> Self {
        Self {
            store: Mutex::new(Store::new(retention)),
            rv_tx: watch::Sender::new(0),
            log_tx: watch::Sender::new(0),
            close_tx: watch::Sender::new(0),
            unavailable: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
            injected: Mutex::new(Vec::new()),
            standing: Mutex::new(Vec::new()),
            open_watches: AtomicUsize::new(0),
            bookmark_interval,
        }
    }

    /// Runs `f` on the store; wakes the watch streams if it wrote.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let (out, rv) = {
            let mut store = lock(&self.store);
            let out = f(&mut store);
            (out, store.rv())
        };
        // Only ever forwards: a writer that lost the race to notify is
        // covered by the later writer's notification.
        self.rv_tx.send_if_modified(|current| {
            let newer = rv > *current;
            if newer {
                *current = rv;
            }
            newer
        });
        out
    }

    /// Runs `f` on the store without writing.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&lock(&self.store))
    }

    /// Receivers for "the resourceVersion moved" and "close now".
    pub(crate) fn subscribe(&self) -> (watch::Receiver<u64>, watch::Receiver<u64>) {
        (self.rv_tx.subscribe(), self.close_tx.subscribe())
    }

    /// Receivers for "the resourceVersion moved", "log lines were
    /// appended" and "close now".
    pub(crate) fn subscribe_logs(
        &self,
    ) -> (
        watch::Receiver<u64>,
        watch::Receiver<u64>,
        watch::Receiver<u64>,
    ) {
        (
            self.rv_tx.subscribe(),
            self.log_tx.subscribe(),
            self.close_tx.subscribe(),
        )
    }

    /// Wakes the follow streams after log lines were appended.
    pub(crate) fn log_written(&self) {
        self.log_tx.send_modify(|generation| *generation += 1);
    }

    /// Ends every open watch stream (and log follow).
    pub(crate) fn close_watches(&self) {
        self.close_tx.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn is_unavailable(&self) -> bool {
        self.unavailable.load(Ordering::SeqCst)
    }

    pub(crate) fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
        if unavailable {
            self.close_watches();
        }
    }

    pub(crate) fn inject(&self, verb: Verb, resource: Resource, error: ApiError) {
        lock(&self.injected).push((verb, resource, error));
    }

    pub(crate) fn inject_standing(&self, verb: Verb, resource: Resource, error: ApiError) {
        let mut standing = lock(&self.standing);
        standing.retain(|(v, r, _)| (*v, *r) != (verb, resource));
        standing.push((verb, resource, error));
    }

    pub(crate) fn clear_standing(&self) {
        lock(&self.standing).clear();
    }

    /// The failure injected for this call, if any: a one-off (each answers
    /// one call) first, else a standing one.
    pub(crate) fn take_injected(&self, call: &Call) -> Option<ApiError> {
        let matches = |(verb, resource, _): &(Verb, Resource, ApiError)| {
            *verb == call.verb && Some(*resource) == call.resource
        };
        let mut injected = lock(&self.injected);
        if let Some(at) = injected.iter().position(matches) {
            return Some(injected.remove(at).2);
        }
        drop(injected);
        lock(&self.standing)
            .iter()
            .find(|entry| matches(entry))
            .map(|(_, _, error)| error.clone())
    }

    pub(crate) fn record(&self, call: Call) {
        lock(&self.calls).push(call);
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    pub(crate) fn reset_calls(&self) {
        lock(&self.calls).clear();
    }

    pub(crate) fn open_watches(&self) -> usize {
        self.open_watches.load(Ordering::SeqCst)
    }

    pub(crate) fn watch_opened(&self) {
        self.open_watches.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn watch_closed(&self) {
        self.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}
