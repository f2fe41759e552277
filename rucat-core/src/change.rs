//! Change feeds: how the parts that learn of changes as they happen tell a
//! monitor to look at an engine now rather than at its next scheduled check.
//!
//! Two kinds of part report changes:
//! - a resource manager with a watch (Kubernetes pod events, a local engine's
//!   port opening) reports that an engine's *resource* changed
//!   ([`ChangeSink::changed`]); the monitor then looks at the engine at once,
//!   whatever its schedule;
//! - a store with a change feed (SurrealDB's LIVE SELECT, or the in-process
//!   notice of the memory and SQLite stores) reports every *record* written
//!   ([`ChangeSink::recorded`]); the monitor acts on it if it is due, which is
//!   how a new engine or a user's stop is picked up within milliseconds.
//!
//! Feeds are an optimisation, never a source of truth: a change reported
//! while the monitor is swamped, or lost while a connection was down, is
//! still found by the monitor's scheduled reads of the store.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use crate::engine::{EngineId, EngineRecord};

/// What a monitor is told.
#[derive(Clone, Debug)]
pub enum Change {
    /// The engine's resource changed.
    Resource(EngineId),
    /// The engine's record was written, as it now stands.
    Record(Box<EngineRecord>),
}

/// The sending end a monitor hands to its store and resource manager.
#[derive(Clone, Debug)]
pub struct ChangeSink(mpsc::Sender<Change>);

impl ChangeSink {
    /// Reports that the engine's resource changed; returns `false` once the
    /// monitor is gone, so the reporter can drop this sink. A change reported
    /// while the monitor is swamped is dropped: the scheduled check still comes.
    pub fn changed(&self, id: &EngineId) -> bool {
        self.send(Change::Resource(id.clone()))
    }

    /// Reports that `record` was written (at `record.revision`); returns as
    /// [`ChangeSink::changed`] does.
    pub fn recorded(&self, record: &EngineRecord) -> bool {
        self.send(Change::Record(Box::new(record.clone())))
    }

    /// Whether the monitor is gone.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn send(&self, change: Change) -> bool {
        !matches!(
            self.0.try_send(change),
            Err(mpsc::error::TrySendError::Closed(_))
        )
    }

    /// A sink and the receiving end, which a monitor drains.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Change>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self(tx), rx)
    }
}

/// Every monitor subscribed to one store or resource manager: what a feed
/// keeps to tell them all, forgetting those that are gone.
#[derive(Clone, Debug, Default)]
pub struct ChangeSinks(Arc<Mutex<Vec<ChangeSink>>>);

impl ChangeSinks {
    pub fn add(&self, sink: ChangeSink) {
        self.sinks().push(sink);
    }

    /// Whether no live monitor listens, so a feed need not do any work.
    pub fn is_empty(&self) -> bool {
        let mut sinks = self.sinks();
        sinks.retain(|sink| !sink.is_closed());
        sinks.is_empty()
    }

    /// Tells every monitor that the engine's resource changed.
    pub fn changed(&self, id: &EngineId) {
        self.sinks().retain(|sink| sink.changed(id));
    }

    /// Tells every monitor that `record` was written at `revision` (stores
    /// call this after a successful write, whatever `record.revision` says).
    /// Costs nothing but a lock while no monitor listens.
    pub fn recorded(&self, record: &EngineRecord, revision: u64) {
        let mut sinks = self.sinks();
        if sinks.is_empty() {
            return;
        }
        let mut stored = record.clone();
        stored.revision = revision;
        sinks.retain(|sink| sink.recorded(&stored));
    }

    fn sinks(&self) -> MutexGuard<'_, Vec<ChangeSink>> {
        // Pushes and retains leave the list consistent even if one panicked.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::CreateEngineRequest;
    use crate::time::Timestamp;

    fn record() -> EngineRecord {
        let spec = CreateEngineRequest::spark("feed", "4.3.0")
            .validate()
            .unwrap();
        EngineRecord::new(spec, Timestamp::now())
    }

    #[tokio::test]
    async fn every_live_monitor_hears_and_gone_ones_are_forgotten() {
        let sinks = ChangeSinks::default();
        assert!(sinks.is_empty());
        let (first, mut first_rx) = ChangeSink::channel(4);
        let (second, second_rx) = ChangeSink::channel(4);
        sinks.add(first);
        sinks.add(second);
        drop(second_rx);
        assert!(!sinks.is_empty());

        let mut written = record();
        sinks.recorded(&written, 7);
        written.revision = 7;
        sinks.changed(written.id());
        match first_rx.recv().await {
            Some(Change::Record(r)) => assert_eq!(*r, written),
            other => panic!("expected the record, got {other:?}"),
        }
        match first_rx.recv().await {
            Some(Change::Resource(id)) => assert_eq!(&id, written.id()),
            other => panic!("expected the resource change, got {other:?}"),
        }
        assert_eq!(sinks.sinks().len(), 1, "the closed sink was kept");
        drop(first_rx);
        assert!(sinks.is_empty());
    }

    #[tokio::test]
    async fn a_full_monitor_drops_changes_but_stays_subscribed() {
        let (sink, mut rx) = ChangeSink::channel(1);
        let written = record();
        assert!(sink.recorded(&written));
        assert!(
            sink.recorded(&written),
            "a full channel is not a gone monitor"
        );
        assert!(rx.recv().await.is_some());
        assert!(rx.try_recv().is_err(), "the second change was dropped");
    }
}
