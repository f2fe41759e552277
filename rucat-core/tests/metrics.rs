//! The lifecycle metrics as Prometheus would scrape them: a monitor driving
//! engines over the in-memory store, with coordination events forced
//! deterministically by a store that lets "another writer" in at chosen writes.

use rucat_core::store::Unreachable;
use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use rucat_core::Limits;
use rucat_core::engine::Lease;
use rucat_core::metrics::{EngineStates, MonitorMetrics, ResourceMetrics};
use rucat_core::resource::{InstantResourceManager, MeasuredResourceManager};
use rucat_core::store::MemoryStore;
use rucat_core::{
    CreateEngineRequest, EngineId, EngineRecord, EngineSpec, EngineState, Engines, Monitor,
    MonitorConfig, ResourceError, ResourceManager, ResourceStatus, Store, StoreError, Timestamp,
};
use tokio::sync::oneshot;

fn config() -> MonitorConfig {
    MonitorConfig {
        owner: "m".into(),
        check_interval: Duration::from_millis(20),
        lease_duration: Duration::from_millis(600),
        start_deadline: Duration::from_secs(30),
        max_concurrent: 16,
        resync_interval: Duration::from_millis(100),
    }
}

/// Everything a process with metrics registers, and the text a scrape gets.
struct Metrics {
    registry: Registry,
    monitor: Arc<MonitorMetrics>,
    resources: Arc<ResourceMetrics>,
    engines: EngineStates,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let monitor = Arc::new(MonitorMetrics::register(&mut registry));
        let resources = Arc::new(ResourceMetrics::register(&mut registry));
        let engines = EngineStates::register(&mut registry);
        Self {
            registry,
            monitor,
            resources,
            engines,
        }
    }

    fn text(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text
    }

    /// The value of one sample, e.g. `rucat_monitor_claim_conflicts_total`
    /// or `rucat_engines{state="Running"}`; 0 if absent.
    fn value(&self, sample: &str) -> f64 {
        sample_value(&self.text(), sample).unwrap_or(0.0)
    }
}

fn sample_value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

/// A monitor with metrics, running until dropped or shut down.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(
        store: Arc<dyn Store>,
        resources: Arc<dyn ResourceManager>,
        metrics: &Metrics,
    ) -> (Engines, Self) {
        let measured = Arc::new(MeasuredResourceManager::new(
            resources,
            metrics.resources.clone(),
        ));
        let monitor =
            Monitor::new(store.clone(), measured, config()).with_metrics(metrics.monitor.clone());
        let engines = Engines::new(store)
            .with_waker(monitor.waker())
            .with_metrics(metrics.monitor.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(monitor.run(async {
            let _ = stopped.await;
        }));
        (
            engines,
            Self {
                stop: Some(stop),
                task,
            },
        )
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

async fn wait_for(engines: &Engines, id: &EngineId, state: EngineState) -> EngineRecord {
    engines
        .wait_for(id, state, Duration::from_secs(10))
        .await
        .unwrap()
}

fn transition(from: &str, to: &str) -> String {
    format!("rucat_engine_transitions_total{{from=\"{from}\",to=\"{to}\"}}")
}

#[tokio::test]
async fn a_lifecycle_counts_every_transition_and_time_in_each_state() {
    let metrics = Metrics::new();
    let store = Arc::new(MemoryStore::new());
    let (engines, monitor) = Running::start(
        store.clone(),
        Arc::new(InstantResourceManager::new()),
        &metrics,
    );
    let id = engines
        .create(CreateEngineRequest::spark("life", "4.3.0"))
        .await
        .unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    engines.stop(&id).await.unwrap();
    wait_for(&engines, &id, EngineState::Terminated).await;
    monitor.shutdown().await;

    for (from, to) in [
        ("WaitToStart", "TriggerStart"),
        ("TriggerStart", "StartInProgress"),
        ("StartInProgress", "Running"),
        ("Running", "WaitToTerminate"), // the user's stop
        ("WaitToTerminate", "TriggerTermination"),
        ("TriggerTermination", "TerminateInProgress"),
        ("TerminateInProgress", "Terminated"),
    ] {
        assert_eq!(
            metrics.value(&transition(from, to)),
            1.0,
            "{from} -> {to}\n{}",
            metrics.text()
        );
    }
    let running = r#"rucat_engine_state_duration_seconds_count{state="Running"}"#;
    assert_eq!(metrics.value(running), 1.0);
    let running_sum = r#"rucat_engine_state_duration_seconds_sum{state="Running"}"#;
    assert!(metrics.value(running_sum) >= 0.03, "{}", metrics.text());
    assert_eq!(
        metrics.value(r#"rucat_engine_state_duration_seconds_count{state="Terminated"}"#),
        0.0,
        "an engine still in a state is not observed in it"
    );

    let calls = |op: &str| {
        metrics.value(&format!(
            "rucat_resource_manager_call_duration_seconds_count{{operation=\"{op}\"}}"
        ))
    };
    assert_eq!(calls("create"), 1.0);
    assert!(calls("status") >= 1.0 && calls("delete") >= 1.0);
    assert!(
        !metrics
            .text()
            .contains("rucat_resource_manager_errors_total{"),
        "no call failed"
    );
    for counter in [
        "rucat_monitor_claim_conflicts_total",
        "rucat_monitor_lease_takeovers_total",
        "rucat_monitor_releases_refused_total",
    ] {
        assert_eq!(metrics.value(counter), 0.0, "{counter}");
    }

    metrics.engines.refresh(store.as_ref()).await.unwrap();
    for state in EngineState::ALL {
        let expected = if state == EngineState::Terminated {
            1.0
        } else {
            0.0
        };
        let sample = format!("rucat_engines{{state=\"{state}\"}}");
        assert_eq!(
            sample_value(&metrics.text(), &sample),
            Some(expected),
            "{sample}"
        );
    }
    assert_eq!(metrics.value("rucat_store_up"), 1.0);
}

/// A memory store into which "another writer" slips a write (one that
/// changes nothing but the revision) just before the `nth` compare-and-swap.
struct Interfering {
    inner: MemoryStore,
    nth: usize,
    writes: AtomicUsize,
}

impl Interfering {
    fn before_write(nth: usize) -> Self {
        Self {
            inner: MemoryStore::new(),
            nth,
            writes: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Store for Interfering {
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
        self.inner.insert(record).await
    }
    async fn insert_within(
        &self,
        record: &EngineRecord,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        self.inner.insert_within(record, limits).await
    }
    async fn compare_and_swap_within(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
        limits: &Limits,
    ) -> Result<u64, StoreError> {
        self.inner
            .compare_and_swap_within(expected_revision, next, limits)
            .await
    }
    async fn get(&self, id: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        self.inner.get(id).await
    }
    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        self.inner.list().await
    }
    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            let current = self.inner.get(next.id()).await?.expect("the engine exists");
            self.inner
                .compare_and_swap(current.revision, &current)
                .await?;
        }
        self.inner.compare_and_swap(expected_revision, next).await
    }
    async fn delete(&self, id: &EngineId, expected_revision: u64) -> Result<(), StoreError> {
        self.inner.delete(id, expected_revision).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError> {
        self.inner.due(now, limit).await
    }
}

#[tokio::test]
async fn a_claim_lost_to_another_writer_is_a_conflict() {
    let metrics = Metrics::new();
    // The first write is the monitor's first claim.
    let store = Arc::new(Interfering::before_write(1));
    let (engines, monitor) = Running::start(
        store.clone(),
        Arc::new(InstantResourceManager::new()),
        &metrics,
    );
    let id = engines
        .create(CreateEngineRequest::spark("contested", "4.3.0"))
        .await
        .unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    monitor.shutdown().await;
    assert_eq!(metrics.value("rucat_monitor_claim_conflicts_total"), 1.0);
    assert_eq!(metrics.value("rucat_monitor_releases_refused_total"), 0.0);
    assert_eq!(
        metrics.value(&transition("WaitToStart", "TriggerStart")),
        1.0,
        "the lost claim is not a transition"
    );
}

#[tokio::test]
async fn a_release_after_another_write_is_refused_and_the_lease_taken_over() {
    let metrics = Metrics::new();
    // Write 1 claims; write 2 is that claim's release.
    let store = Arc::new(Interfering::before_write(2));
    let (engines, monitor) = Running::start(
        store.clone(),
        Arc::new(InstantResourceManager::new()),
        &metrics,
    );
    let id = engines
        .create(CreateEngineRequest::spark("stale", "4.3.0"))
        .await
        .unwrap();
    // The refused release leaves the claim's lease in place: the engine
    // moves on only once a monitor takes it over after the lease expires.
    wait_for(&engines, &id, EngineState::Running).await;
    monitor.shutdown().await;
    assert_eq!(metrics.value("rucat_monitor_releases_refused_total"), 1.0);
    assert_eq!(metrics.value("rucat_monitor_lease_takeovers_total"), 1.0);
    assert_eq!(
        metrics.value(&transition("TriggerStart", "StartInProgress")),
        1.0
    );
}

#[tokio::test]
async fn claiming_an_engine_with_an_expired_lease_is_a_takeover() {
    let metrics = Metrics::new();
    let store = Arc::new(MemoryStore::new());
    let id = Engines::new(store.clone())
        .create(CreateEngineRequest::spark("orphan", "4.3.0"))
        .await
        .unwrap();
    let mut orphan = store.get(&id).await.unwrap().unwrap();
    let revision = orphan.revision;
    orphan.enter(EngineState::TriggerStart, Timestamp::now());
    orphan.lease = Some(Lease {
        owner: "dead".into(),
        expires_at: Timestamp::now(),
    });
    store.compare_and_swap(revision, &orphan).await.unwrap();

    let (engines, monitor) = Running::start(
        store.clone(),
        Arc::new(InstantResourceManager::new()),
        &metrics,
    );
    wait_for(&engines, &id, EngineState::Running).await;
    monitor.shutdown().await;
    assert_eq!(metrics.value("rucat_monitor_lease_takeovers_total"), 1.0);
    assert_eq!(metrics.value("rucat_monitor_claim_conflicts_total"), 0.0);
}

/// Fails `status` as unavailable, rejects `create` and never answers `delete`.
struct Failing;

#[async_trait]
impl ResourceManager for Failing {
    async fn create(&self, _: &EngineSpec) -> Result<(), ResourceError> {
        Err(ResourceError::Rejected("no".into()))
    }
    async fn status(&self, _: &EngineId) -> Result<ResourceStatus, ResourceError> {
        Err(ResourceError::Unavailable("down".into()))
    }
    async fn delete(&self, _: &EngineId) -> Result<(), ResourceError> {
        pending().await
    }
}

#[tokio::test]
async fn resource_manager_errors_and_abandoned_calls_are_counted_by_operation() {
    let metrics = Metrics::new();
    let measured = MeasuredResourceManager::new(Arc::new(Failing), metrics.resources.clone());
    let spec = CreateEngineRequest::spark("x", "4.3.0").validate().unwrap();
    assert!(measured.create(&spec).await.is_err());
    assert!(measured.status(&spec.id).await.is_err());
    assert!(measured.status(&spec.id).await.is_err());
    let gave_up = tokio::time::timeout(Duration::from_millis(20), measured.delete(&spec.id)).await;
    assert!(gave_up.is_err());

    let errors = |op: &str, kind: &str| {
        metrics.value(&format!(
            "rucat_resource_manager_errors_total{{operation=\"{op}\",kind=\"{kind}\"}}"
        ))
    };
    assert_eq!(errors("create", "rejected"), 1.0);
    assert_eq!(errors("status", "unavailable"), 2.0);
    assert_eq!(errors("delete", "abandoned"), 1.0);
    let delete_seconds = r#"rucat_resource_manager_call_duration_seconds_sum{operation="delete"}"#;
    assert!(metrics.value(delete_seconds) >= 0.02, "{}", metrics.text());
}

#[tokio::test]
async fn an_unreadable_store_drops_the_engine_counts_instead_of_going_stale() {
    let metrics = Metrics::new();
    let store = MemoryStore::new();
    metrics.engines.refresh(&store).await.unwrap();
    assert!(
        metrics
            .text()
            .contains(r#"rucat_engines{state="Running"} 0"#)
    );

    assert!(metrics.engines.refresh(&Unreachable).await.is_err());
    assert!(
        !metrics.text().contains("rucat_engines{"),
        "{}",
        metrics.text()
    );
    assert_eq!(sample_value(&metrics.text(), "rucat_store_up"), Some(0.0));
}

#[tokio::test]
async fn ping_answers_for_a_reachable_store_only() {
    assert!(MemoryStore::new().ping().await.is_ok());
    assert!(matches!(
        Unreachable.ping().await,
        Err(StoreError::Unavailable(_))
    ));
}
