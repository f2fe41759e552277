//! Watch streams: newline-delimited JSON watch events over a chunked
//! response, as the real server sends them.
//!
//! A stream keeps a cursor, the resourceVersion up to which it has judged
//! every logged change. When the store moves on, it reads the log after
//! the cursor, translates each change for its selector (a change that
//! makes an object leave the selector is a `DELETED`, one that makes it
//! enter an `ADDED`, as the real watch cache does), and moves the cursor.
//! Bookmarks carry the cursor, so resuming from a bookmark never skips a
//! change.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::object::set_resource_version;
use crate::resource::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::shared::Shared;
use crate::status::ApiError;
use crate::store::{Change, LogEntry, Store};

/// Which objects a list or watch selects.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) resource: Resource,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Filter {
    pub(crate) fn selects(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(self.resource, object)
    }

    fn covers(&self, entry: &LogEntry) -> bool {
        entry.resource == self.resource
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == entry.namespace)
    }
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Start {
    /// With `ADDED` events for the current state (resourceVersion unset or
    /// "0"), followed by the bookmark that ends the initial events when
    /// this is a streaming list (`sendInitialEvents=true`).
    CurrentState { end_bookmark: bool },
    /// With the changes after this resourceVersion.
    After(u64),
}

/// A parsed watch request.
#[derive(Debug, Clone)]
pub(crate) struct WatchSpec {
    pub(crate) filter: Filter,
    pub(crate) start: Start,
    pub(crate) bookmarks: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) metadata_only: bool,
}

/// The object as the client asked to see it: whole, or (for kube's
/// metadata watches and lists) as `PartialObjectMetadata`.
pub(crate) fn present(object: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    } else {
        object.clone()
    }
}

fn line(kind: &str, object: Value) -> String {
    let mut text = json!({ "type": kind, "object": object }).to_string();
    text.push('\n');
    text
}

struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.watch_closed();
    }
}

struct State {
    shared: Arc<Shared>,
    spec: WatchSpec,
    cursor: u64,
    queue: VecDeque<String>,
    done: bool,
    rv_rx: watch::Receiver<u64>,
    close_rx: watch::Receiver<u64>,
    deadline: Option<Instant>,
    ticker: Option<Interval>,
    _open: OpenWatch,
}

impl State {
    fn bookmark(&self, end_of_initial_events: bool) -> String {
        let (kind, api_version) = if self.spec.metadata_only {
            ("PartialObjectMetadata", "meta.k8s.io/v1")
        } else {
            (self.spec.filter.resource.kind(), "v1")
        };
        let mut metadata = json!({ "resourceVersion": self.cursor.to_string() });
        if end_of_initial_events {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        line(
            "BOOKMARK",
            json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata }),
        )
    }

    /// Translates one logged change for this watcher's selector.
    fn translate(&self, entry: &LogEntry) -> Option<String> {
        if !self.spec.filter.covers(entry) {
            return None;
        }
        let filter = &self.spec.filter;
        let now = entry.change != Change::Deleted && filter.selects(&entry.object);
        let before =
            entry.change != Change::Added && entry.prev.as_ref().is_some_and(|p| filter.selects(p));
        let (kind, object) = match (before, now) {
            (false, true) => ("ADDED", entry.object.clone()),
            (true, true) => ("MODIFIED", entry.object.clone()),
            (true, false) => {
                // The previous content, at the change's resourceVersion.
                let mut last = entry.prev.clone().unwrap_or_else(|| entry.object.clone());
                set_resource_version(&mut last, entry.rv);
                ("DELETED", last)
            }
            (false, false) => return None,
        };
        Some(line(kind, present(&object, self.spec.metadata_only)))
    }

    /// Queues the changes after the cursor, or the 410 that ends the
    /// stream when they have been compacted away.
    fn pull(&mut self, store: &Store) {
        let lines: Result<Vec<String>, u64> = store
            .changes_after(self.cursor)
            .map(|entries| entries.filter_map(|e| self.translate(e)).collect());
        match lines {
            Ok(lines) => {
                self.queue.extend(lines);
                self.cursor = self.cursor.max(store.rv());
            }
            Err(oldest) => {
                let expired = ApiError::expired(format!(
                    "too old resource version: {} ({})",
                    self.cursor,
                    oldest + 1
                ));
                self.queue.push_back(line("ERROR", expired.to_status()));
                self.done = true;
            }
        }
    }
}

/// Opens a watch: the initial events are computed now (under the store
/// lock, so nothing slips between them and the cursor), the rest as the
/// store changes.
pub(crate) fn open(
    shared: Arc<Shared>,
    spec: WatchSpec,
) -> impl Stream<Item = Result<String, Infallible>> + Send + 'static {
    // Subscribe before reading, so no change is missed in between.
    let (rv_rx, close_rx) = shared.subscribe();
    shared.watch_opened();
    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let ticker = spec.bookmarks.then(|| {
        let period = shared.bookmark_interval;
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    let mut state = State {
        shared: shared.clone(),
        spec,
        cursor: 0,
        queue: VecDeque::new(),
        done: false,
        rv_rx,
        close_rx,
        deadline,
        ticker,
        _open: OpenWatch(shared.clone()),
    };
    shared.read(|store| match state.spec.start {
        Start::CurrentState { end_bookmark } => {
            let filter = &state.spec.filter;
            let initial: Vec<String> = store
                .objects_of(filter.resource, filter.namespace.as_deref())
                .filter(|(_, o)| filter.selects(o))
                .map(|(_, o)| line("ADDED", present(o, state.spec.metadata_only)))
                .collect();
            state.queue.extend(initial);
            state.cursor = store.rv();
            if end_bookmark {
                let marker = state.bookmark(true);
                state.queue.push_back(marker);
            }
        }
        Start::After(rv) => {
            state.cursor = rv;
            state.pull(store);
        }
    });
    futures::stream::unfold(state, next_line)
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn next_line(mut st: State) -> Option<(Result<String, Infallible>, State)> {
    loop {
        if let Some(line) = st.queue.pop_front() {
            return Some((Ok(line), st));
        }
        if st.done {
            return None;
        }
        tokio::select! {
            _ = st.close_rx.changed() => return None,
            _ = until(st.deadline) => {
                // The real server sends a last bookmark before a watch
                // times out, so the client resumes from the newest point.
                if st.spec.bookmarks {
                    let shared = st.shared.clone();
                    shared.read(|store| st.pull(store));
                    let bookmark = st.bookmark(false);
                    st.queue.push_back(bookmark);
                }
                st.done = true;
            }
            changed = st.rv_rx.changed() => {
                if changed.is_err() {
                    return None;
                }
                let shared = st.shared.clone();
                shared.read(|store| st.pull(store));
            }
            _ = tick(&mut st.ticker) => {
                let shared = st.shared.clone();
                shared.read(|store| st.pull(store));
                if !st.done {
                    let bookmark = st.bookmark(false);
                    st.queue.push_back(bookmark);
                }
            }
        }
    }
}
