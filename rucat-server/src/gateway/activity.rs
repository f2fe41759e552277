//! What the gateway sees of each engine's use: open streams, RPCs, bytes
//! each way and the time of the last RPC.
//!
//! Kept in memory, per engine, with atomics (an RPC costs a few relaxed
//! increments, never a store write), readable at any time through
//! [`Activity::snapshot`] and exported as metrics. An RPC counts as an open
//! stream from its arrival until both its request and its response have
//! ended, so a long-running query is activity for as long as it runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rucat_core::{EngineId, Timestamp};

/// One engine's use through this gateway since the process started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivitySnapshot {
    /// RPCs whose request or response is still streaming.
    pub open_streams: u64,
    pub rpcs: u64,
    /// Bytes of gRPC messages from clients to the engine.
    pub bytes_to_engine: u64,
    /// Bytes of gRPC messages from the engine to clients.
    pub bytes_to_clients: u64,
    /// When the last RPC arrived or ended.
    pub last_rpc: Option<Timestamp>,
}

/// Every engine's [`ActivitySnapshot`], shared by the gateway's connections.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    engines: Arc<Mutex<HashMap<EngineId, Arc<Counters>>>>,
    metrics: Option<GatewayMetrics>,
}

#[derive(Debug, Default)]
struct Counters {
    open_streams: AtomicU64,
    rpcs: AtomicU64,
    bytes_to_engine: AtomicU64,
    bytes_to_clients: AtomicU64,
    /// Milliseconds since the epoch; 0 before the first RPC.
    last_rpc_ms: AtomicU64,
    /// The latest activity this gateway wrote to the store (or found
    /// there already); 0 before any.
    persisted_ms: AtomicU64,
}

impl Activity {
    /// Activity also exported through `metrics`.
    pub fn with_metrics(metrics: GatewayMetrics) -> Self {
        Self {
            engines: Arc::default(),
            metrics: Some(metrics),
        }
    }

    /// What is known of `id`, if any RPC for it ever arrived here.
    pub fn snapshot(&self, id: &EngineId) -> Option<ActivitySnapshot> {
        let counters = self.engines().get(id).cloned()?;
        let last = counters.last_rpc_ms.load(Ordering::Relaxed);
        Some(ActivitySnapshot {
            open_streams: counters.open_streams.load(Ordering::Relaxed),
            rpcs: counters.rpcs.load(Ordering::Relaxed),
            bytes_to_engine: counters.bytes_to_engine.load(Ordering::Relaxed),
            bytes_to_clients: counters.bytes_to_clients.load(Ordering::Relaxed),
            last_rpc: i64::try_from(last)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Timestamp::from_millis),
        })
    }

    /// Records the arrival of an RPC for `id`; the stream stays open until
    /// every clone of the returned guard is dropped.
    pub(super) fn rpc_started(&self, id: &EngineId) -> Arc<Stream> {
        let counters = Arc::clone(self.engines().entry(id.clone()).or_default());
        counters.rpcs.fetch_add(1, Ordering::Relaxed);
        counters.open_streams.fetch_add(1, Ordering::Relaxed);
        touch(&counters);
        let labels = EngineLabels {
            engine: id.to_string(),
        };
        if let Some(metrics) = &self.metrics {
            metrics.rpcs.get_or_create(&labels).inc();
            metrics.open_streams.get_or_create(&labels).inc();
        }
        Arc::new(Stream {
            counters,
            metrics: self.metrics.clone().map(|m| (m, labels)),
        })
    }

    /// The engines whose use the store does not know yet, and the time to
    /// record for each: `now` while a stream is open (so that an engine in
    /// use keeps being written about, however long one query runs), else
    /// the last RPC; only where that is later than what was written.
    pub(super) fn unpersisted(&self, now: Timestamp) -> Vec<(EngineId, Timestamp)> {
        let now_ms = millis(now);
        self.engines()
            .iter()
            .filter_map(|(id, counters)| {
                let at = if counters.open_streams.load(Ordering::Relaxed) > 0 {
                    now_ms
                } else {
                    counters.last_rpc_ms.load(Ordering::Relaxed)
                };
                (at > counters.persisted_ms.load(Ordering::Relaxed))
                    .then(|| (id.clone(), timestamp(at)))
            })
            .collect()
    }

    /// The store knows of `id`'s use up to `at`.
    pub(super) fn persisted(&self, id: &EngineId, at: Timestamp) {
        let counters = Arc::clone(self.engines().entry(id.clone()).or_default());
        counters
            .persisted_ms
            .fetch_max(millis(at), Ordering::Relaxed);
    }

    pub(super) fn activity_written(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.activity_writes.inc();
        }
    }

    pub(super) fn resumed(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.resumes.inc();
        }
    }

    pub(super) fn resume_waited(&self, waited: std::time::Duration) {
        if let Some(metrics) = &self.metrics {
            metrics.resume_wait.observe(waited.as_secs_f64());
        }
    }

    fn engines(&self) -> std::sync::MutexGuard<'_, HashMap<EngineId, Arc<Counters>>> {
        self.engines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn touch(counters: &Counters) {
    counters
        .last_rpc_ms
        .fetch_max(millis(Timestamp::now()), Ordering::Relaxed);
}

fn millis(at: Timestamp) -> u64 {
    u64::try_from(at.as_millis()).unwrap_or(0)
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// One RPC in flight: counts its bytes, and closes its stream when dropped.
#[derive(Debug)]
pub(super) struct Stream {
    counters: Arc<Counters>,
    metrics: Option<(GatewayMetrics, EngineLabels)>,
}

/// Which way bytes flow.
#[derive(Clone, Copy, Debug)]
pub(super) enum Direction {
    ToEngine,
    ToClient,
}

impl Stream {
    pub(super) fn bytes(&self, direction: Direction, n: usize) {
        let n = n as u64;
        let counter = match direction {
            Direction::ToEngine => &self.counters.bytes_to_engine,
            Direction::ToClient => &self.counters.bytes_to_clients,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        if let Some((metrics, labels)) = &self.metrics {
            let family = match direction {
                Direction::ToEngine => &metrics.bytes_to_engine,
                Direction::ToClient => &metrics.bytes_to_clients,
            };
            family.get_or_create(labels).inc_by(n);
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.counters.open_streams.fetch_sub(1, Ordering::Relaxed);
        touch(&self.counters);
        if let Some((metrics, labels)) = &self.metrics {
            metrics.open_streams.get_or_create(labels).dec();
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EngineLabels {
    engine: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// The gateway's metrics, labelled by engine id (one series per engine
/// served since the process started).
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    rpcs: Family<EngineLabels, Counter>,
    open_streams: Family<EngineLabels, Gauge>,
    bytes_to_engine: Family<EngineLabels, Counter>,
    bytes_to_clients: Family<EngineLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    activity_writes: Counter,
    resumes: Counter,
    resume_wait: Histogram,
}

/// A resume takes from a few seconds (a local Spark) to minutes (a pod
/// on a node that must pull its image first).
const RESUME_SECONDS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

impl GatewayMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            rpcs: Family::default(),
            open_streams: Family::default(),
            bytes_to_engine: Family::default(),
            bytes_to_clients: Family::default(),
            refusals: Family::default(),
            activity_writes: Counter::default(),
            resumes: Counter::default(),
            resume_wait: Histogram::new(RESUME_SECONDS),
        };
        registry.register(
            "rucat_gateway_rpcs",
            "Spark Connect RPCs forwarded to each engine",
            metrics.rpcs.clone(),
        );
        registry.register(
            "rucat_gateway_open_streams",
            "RPCs in flight through the gateway, per engine",
            metrics.open_streams.clone(),
        );
        registry.register(
            "rucat_gateway_bytes_to_engine",
            "Bytes of gRPC messages forwarded from clients to each engine",
            metrics.bytes_to_engine.clone(),
        );
        registry.register(
            "rucat_gateway_bytes_to_clients",
            "Bytes of gRPC messages forwarded from each engine to its clients",
            metrics.bytes_to_clients.clone(),
        );
        registry.register(
            "rucat_gateway_refusals",
            "RPCs the gateway answered itself with an error, by reason",
            metrics.refusals.clone(),
        );
        registry.register(
            "rucat_gateway_activity_writes",
            "Engine activity written to the store (sparsely: at most one per engine per activity interval)",
            metrics.activity_writes.clone(),
        );
        registry.register(
            "rucat_gateway_resumes",
            "Stopped engines this gateway restarted because a client sent an RPC",
            metrics.resumes.clone(),
        );
        registry.register(
            "rucat_gateway_resume_wait_seconds",
            "How long RPCs for a resuming engine were held until it was Running",
            metrics.resume_wait.clone(),
        );
        metrics
    }

    pub(super) fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }
}

impl Activity {
    pub(super) fn refused(&self, reason: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics.refused(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_count_until_every_guard_is_dropped() {
        let activity = Activity::default();
        let id = EngineId::generate();
        assert_eq!(activity.snapshot(&id), None);
        let stream = activity.rpc_started(&id);
        let response_side = Arc::clone(&stream);
        stream.bytes(Direction::ToEngine, 10);
        response_side.bytes(Direction::ToClient, 1000);
        let open = activity.snapshot(&id).unwrap();
        assert_eq!(open.open_streams, 1);
        assert_eq!(open.rpcs, 1);
        assert_eq!((open.bytes_to_engine, open.bytes_to_clients), (10, 1000));
        assert!(open.last_rpc.is_some());
        drop(stream);
        assert_eq!(activity.snapshot(&id).unwrap().open_streams, 1);
        drop(response_side);
        assert_eq!(activity.snapshot(&id).unwrap().open_streams, 0);
        let _second = activity.rpc_started(&id);
        assert_eq!(activity.snapshot(&id).unwrap().rpcs, 2);
    }

    #[test]
    fn only_news_is_due_for_the_store() {
        let activity = Activity::default();
        let id = EngineId::generate();
        let later = Timestamp::now().plus(std::time::Duration::from_secs(60));
        assert!(activity.unpersisted(later).is_empty(), "nothing seen");
        // An open stream is use now, every time it is asked.
        let stream = activity.rpc_started(&id);
        assert_eq!(activity.unpersisted(later), vec![(id.clone(), later)]);
        activity.persisted(&id, later);
        assert!(activity.unpersisted(later).is_empty());
        let even_later = later.plus(std::time::Duration::from_secs(10));
        assert_eq!(
            activity.unpersisted(even_later),
            vec![(id.clone(), even_later)]
        );
        // Once closed, the last RPC is all there is, and it is old news.
        drop(stream);
        assert!(activity.unpersisted(even_later).is_empty());
        let other = EngineId::generate();
        drop(activity.rpc_started(&other));
        let due = activity.unpersisted(even_later);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, other);
        assert!(due[0].1 <= Timestamp::now(), "the RPC's own time");
    }
}
