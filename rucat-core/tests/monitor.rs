//! The monitor driving engines end to end over the in-memory store, with
//! resource managers that behave in scripted ways.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rucat_core::Limits;
use rucat_core::engine::Lease;
use rucat_core::resource::InstantResourceManager;
use rucat_core::store::MemoryStore;
use rucat_core::store::PageQuery;
use rucat_core::{
    ChangeSink, CreateEngineRequest, EngineId, EngineRecord, EngineSpec, EngineState, Engines,
    Monitor, MonitorConfig, ResourceError, ResourceManager, ResourceStatus, Store, StoreError,
    Timestamp,
};
use tokio::sync::{Semaphore, oneshot};

fn config(owner: &str) -> MonitorConfig {
    MonitorConfig {
        owner: owner.into(),
        check_interval: Duration::from_millis(20),
        lease_duration: Duration::from_secs(5),
        start_deadline: Duration::from_secs(30),
        max_concurrent: 16,
        resync_interval: Duration::from_millis(100),
    }
}

fn request(name: &str) -> CreateEngineRequest {
    CreateEngineRequest::spark(name, "4.3.0")
}

/// A monitor running in the background until the handle is dropped.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(monitor: Monitor) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(monitor.run(async {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

fn start(
    store: &Arc<MemoryStore>,
    resources: Arc<dyn ResourceManager>,
    cfg: MonitorConfig,
) -> (Engines, Running) {
    let monitor = Monitor::new(store.clone(), resources, cfg);
    let engines = Engines::new(store.clone()).with_waker(monitor.waker());
    (engines, Running::start(monitor))
}

async fn wait_for(engines: &Engines, id: &EngineId, state: EngineState) -> EngineRecord {
    engines
        .wait_for(id, state, Duration::from_secs(10))
        .await
        .unwrap()
}

#[tokio::test]
async fn full_lifecycle_on_an_instant_resource_manager() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(InstantResourceManager::new());
    let (engines, monitor) = start(&store, resources.clone(), config("m"));

    let id = engines.create(request("life")).await.unwrap();
    let running = wait_for(&engines, &id, EngineState::Running).await;
    assert_eq!(running.endpoint, Some(format!("instant://{id}")));
    assert_eq!(running.lease, None, "released after acting");

    engines.stop(&id).await.unwrap();
    let stopped = wait_for(&engines, &id, EngineState::Terminated).await;
    assert_eq!(stopped.endpoint, None);
    assert!(resources.live().is_empty());

    engines.restart(&id).await.unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    engines.stop(&id).await.unwrap();
    wait_for(&engines, &id, EngineState::Terminated).await;
    engines.delete(&id).await.unwrap();

    assert_eq!((resources.creations(), resources.deletions()), (2, 2));
    assert_eq!(resources.adoptions(), 0);
    monitor.shutdown().await;
}

/// Scripted behaviour per engine name.
#[derive(Default)]
struct Scripted {
    /// Status to report for each engine, once created.
    status: Mutex<HashMap<EngineId, ResourceStatus>>,
    reject_create: Option<String>,
    /// `create` fails as unavailable this many times first.
    unavailable_creates: AtomicU32,
    /// What `status` reports right after `create`.
    initial: Option<ResourceStatus>,
    deletes: AtomicU32,
    /// What a deleted resource reports until the test removes it; gone at
    /// once when unset.
    delete_leaves: Option<ResourceStatus>,
    creates_in_flight: AtomicU32,
    max_creates_in_flight: AtomicU32,
    create_delay: Duration,
    /// The monitor's change feed, once it subscribed.
    sink: Mutex<Option<ChangeSink>>,
    /// When set, each `status` call takes a permit first (to let a test act
    /// while a check is under way).
    gate: Option<Arc<Semaphore>>,
    status_calls: AtomicU32,
}

impl Scripted {
    fn set(&self, id: &EngineId, status: ResourceStatus) {
        self.status.lock().unwrap().insert(id.clone(), status);
    }
}

#[async_trait]
impl ResourceManager for Scripted {
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        let now = self.creates_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_creates_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.create_delay).await;
        self.creates_in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.unavailable_creates.load(Ordering::SeqCst) > 0 {
            self.unavailable_creates.fetch_sub(1, Ordering::SeqCst);
            return Err(ResourceError::Unavailable("platform is down".into()));
        }
        if let Some(reason) = &self.reject_create {
            // A half-made resource that the cleanup path must remove.
            self.set(&spec.id, ResourceStatus::PENDING);
            return Err(ResourceError::Rejected(reason.clone()));
        }
        let initial = self.initial.clone().unwrap_or(ResourceStatus::Running {
            endpoint: "sc://x:1".into(),
        });
        self.status
            .lock()
            .unwrap()
            .entry(spec.id.clone())
            .or_insert(initial);
        Ok(())
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        self.status_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        Ok(self
            .status
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or(ResourceStatus::Gone))
    }

    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        let mut status = self.status.lock().unwrap();
        match &self.delete_leaves {
            Some(left) => {
                status.insert(id.clone(), left.clone());
            }
            None => {
                status.remove(id);
            }
        }
        Ok(())
    }

    fn subscribe(&self, sink: ChangeSink) {
        *self.sink.lock().unwrap() = Some(sink);
    }
}

#[tokio::test]
async fn a_terminating_resource_is_waited_for_not_deleted_again() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted {
        delete_leaves: Some(ResourceStatus::Terminating),
        ..Default::default()
    });
    let (engines, monitor) = start(&store, resources.clone(), config("m"));
    let id = engines.create(request("slow-stop")).await.unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    engines.stop(&id).await.unwrap();
    wait_for(&engines, &id, EngineState::TerminateInProgress).await;
    // Many checks (every 20 ms) while it terminates.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(resources.deletes.load(Ordering::SeqCst), 1);
    let waiting = engines.get(&id).await.unwrap();
    assert_eq!(waiting.state, EngineState::TerminateInProgress);
    assert_eq!(waiting.error, None);

    resources.status.lock().unwrap().remove(&id);
    wait_for(&engines, &id, EngineState::Terminated).await;
    assert_eq!(resources.deletes.load(Ordering::SeqCst), 1);
    monitor.shutdown().await;
}

#[tokio::test]
async fn a_running_engine_whose_resource_is_being_deleted_takes_the_cleanup_path() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted::default());
    let (engines, monitor) = start(&store, resources.clone(), config("m"));
    let id = engines.create(request("evicted")).await.unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    resources.set(&id, ResourceStatus::Terminating);
    let clean = wait_for(&engines, &id, EngineState::ErrorClean).await;
    assert_eq!(
        clean.error.as_deref(),
        Some("the engine's resource is being deleted, while it was running")
    );
    monitor.shutdown().await;
}

/// Refuses every delete until told otherwise.
struct Undeletable {
    inner: Scripted,
    refuse: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl ResourceManager for Undeletable {
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        self.inner.create(spec).await
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        self.inner.status(id).await
    }

    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(ResourceError::Rejected("forbidden".into()));
        }
        self.inner.delete(id).await
    }

    fn describe(&self, id: &EngineId) -> String {
        format!("box {id}")
    }
}

#[tokio::test]
async fn a_blocked_cleanup_shows_why_on_the_engine_until_it_finishes() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Undeletable {
        inner: Scripted {
            reject_create: Some("no such image".into()),
            ..Default::default()
        },
        refuse: true.into(),
    });
    let (engines, monitor) = start(&store, resources.clone(), config("m"));
    let id = engines.create(request("stuck")).await.unwrap();
    let noted = format!(
        "no such image; cleanup blocked, retrying: forbidden; until it succeeds, these may remain: box {id}"
    );
    wait_until(|| {
        let (engines, id, noted) = (engines.clone(), id.clone(), noted.clone());
        async move { engines.get(&id).await.unwrap().error == Some(noted) }
    })
    .await;
    let stuck = engines.get(&id).await.unwrap();
    assert_eq!(stuck.state, EngineState::ErrorTriggerClean);
    assert!(stuck.retries >= 1);

    resources.refuse.store(false, Ordering::SeqCst);
    let clean = engines
        .wait_for(&id, EngineState::ErrorClean, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        clean.error.as_deref(),
        Some("no such image"),
        "the note goes once the cleanup finished"
    );
    monitor.shutdown().await;
}

#[tokio::test]
async fn a_rejected_creation_is_cleaned_up_with_its_reason() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted {
        reject_create: Some("no such image".into()),
        ..Default::default()
    });
    let (engines, monitor) = start(&store, resources.clone(), config("m"));
    let id = engines.create(request("bad")).await.unwrap();
    let clean = wait_for(&engines, &id, EngineState::ErrorClean).await;
    assert_eq!(clean.error.as_deref(), Some("no such image"));
    assert!(resources.deletes.load(Ordering::SeqCst) >= 1);
    assert!(
        resources.status.lock().unwrap().is_empty(),
        "the half-made resource was removed"
    );
    engines.delete(&id).await.unwrap();
    monitor.shutdown().await;
}

#[tokio::test]
async fn a_start_past_its_deadline_takes_the_error_path() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted {
        initial: Some(ResourceStatus::PENDING),
        ..Default::default()
    });
    let cfg = MonitorConfig {
        start_deadline: Duration::from_millis(200),
        ..config("m")
    };
    let (engines, monitor) = start(&store, resources.clone(), cfg);
    let id = engines.create(request("slow")).await.unwrap();
    let clean = wait_for(&engines, &id, EngineState::ErrorClean).await;
    assert!(clean.error.unwrap().contains("start deadline"));
    assert!(resources.status.lock().unwrap().is_empty());
    monitor.shutdown().await;
}

#[tokio::test]
async fn a_start_past_its_deadline_records_why_it_waited() {
    let store = Arc::new(MemoryStore::new());
    let waiting = ResourceStatus::Pending {
        reason: Some("Unschedulable: 0/3 nodes are available".into()),
    };
    let resources = Arc::new(Scripted {
        initial: Some(waiting),
        ..Default::default()
    });
    let cfg = MonitorConfig {
        start_deadline: Duration::from_millis(200),
        ..config("m")
    };
    let (engines, monitor) = start(&store, resources.clone(), cfg);
    let id = engines.create(request("unschedulable")).await.unwrap();
    let clean = wait_for(&engines, &id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap();
    assert!(error.contains("start deadline of 200ms"), "{error}");
    assert!(
        error.ends_with("last reason: Unschedulable: 0/3 nodes are available"),
        "{error}"
    );
    monitor.shutdown().await;
}

#[tokio::test]
async fn a_running_engine_that_fails_is_cleaned_up() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted::default());
    let (engines, monitor) = start(&store, resources.clone(), config("m"));
    let id = engines.create(request("crash")).await.unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    resources.set(
        &id,
        ResourceStatus::Failed {
            reason: "exit code 137: OOMKilled".into(),
        },
    );
    let clean = wait_for(&engines, &id, EngineState::ErrorClean).await;
    assert_eq!(clean.error.as_deref(), Some("exit code 137: OOMKilled"));
    assert_eq!(clean.endpoint, None);
    monitor.shutdown().await;
}

#[tokio::test]
async fn a_reported_change_is_acted_on_before_the_next_check() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted::default());
    let cfg = MonitorConfig {
        check_interval: Duration::from_secs(3600),
        resync_interval: Duration::from_secs(3600),
        ..config("m")
    };
    let (engines, monitor) = start(&store, resources.clone(), cfg);
    let id = engines.create(request("watched")).await.unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    // The next scheduled check is an hour away; the change feed brings it forward.
    resources.set(
        &id,
        ResourceStatus::Failed {
            reason: "OOMKilled".into(),
        },
    );
    let sink = resources
        .sink
        .lock()
        .unwrap()
        .clone()
        .expect("the monitor subscribed");
    assert!(sink.changed(&id));
    let clean = wait_for(&engines, &id, EngineState::ErrorClean).await;
    assert_eq!(clean.error.as_deref(), Some("OOMKilled"));
    monitor.shutdown().await;
    assert!(!sink.changed(&id), "a stopped monitor closes its feed");
}

#[tokio::test]
async fn an_unavailable_platform_is_retried_with_backoff() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted {
        unavailable_creates: AtomicU32::new(3),
        ..Default::default()
    });
    let (engines, monitor) = start(&store, resources.clone(), config("m"));
    let id = engines.create(request("flaky")).await.unwrap();
    let running = wait_for(&engines, &id, EngineState::Running).await;
    assert_eq!(running.error, None);
    assert_eq!(
        resources.unavailable_creates.load(Ordering::SeqCst),
        0,
        "all three failures were retried"
    );
    monitor.shutdown().await;
}

#[tokio::test]
async fn engines_are_handled_concurrently() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted {
        create_delay: Duration::from_millis(200),
        ..Default::default()
    });
    let (engines, monitor) = start(&store, resources.clone(), config("m"));
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(engines.create(request(&format!("c{i}"))).await.unwrap());
    }
    for id in &ids {
        wait_for(&engines, id, EngineState::Running).await;
    }
    assert!(
        resources.max_creates_in_flight.load(Ordering::SeqCst) > 1,
        "creations overlapped"
    );
    monitor.shutdown().await;
}

#[tokio::test]
async fn a_dead_monitors_claim_is_taken_over_after_its_lease() {
    let store = Arc::new(MemoryStore::new());
    let engines = Engines::new(store.clone());
    let id = engines.create(request("orphan")).await.unwrap();
    // A monitor claimed the engine, then died without releasing it.
    let mut orphan = engines.get(&id).await.unwrap();
    let revision = orphan.revision;
    orphan.enter(EngineState::TriggerStart, Timestamp::now());
    orphan.lease = Some(Lease {
        owner: "dead".into(),
        expires_at: Timestamp::now().plus(Duration::from_millis(300)),
    });
    store.compare_and_swap(revision, &orphan).await.unwrap();

    let resources = Arc::new(InstantResourceManager::new());
    let (engines, monitor) = start(&store, resources.clone(), config("heir"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before_expiry = engines.get(&id).await.unwrap();
    assert_eq!(
        before_expiry.state,
        EngineState::TriggerStart,
        "the live lease is respected"
    );
    assert_eq!(before_expiry.lease.unwrap().owner, "dead");
    wait_for(&engines, &id, EngineState::Running).await;
    assert_eq!(resources.creations(), 1);
    monitor.shutdown().await;
}

#[tokio::test]
async fn a_stale_monitors_release_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let gate = Arc::new(Semaphore::new(0));
    let resources = Arc::new(Scripted {
        gate: Some(gate.clone()),
        initial: Some(ResourceStatus::PENDING),
        ..Default::default()
    });
    let (engines, monitor) = start(&store, resources.clone(), config("m"));
    let id = engines.create(request("stale")).await.unwrap();
    // The monitor's first check of the starting engine blocks on the gate
    // with its claim held; meanwhile the user stops the engine.
    wait_until(|| async {
        let record = engines.get(&id).await.unwrap();
        record.state == EngineState::StartInProgress && record.lease.is_some()
    })
    .await;
    engines.stop(&id).await.unwrap();
    gate.add_permits(1000); // the check ends; its release must be refused
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = engines.get(&id).await.unwrap().state;
    assert!(
        !matches!(after, EngineState::StartInProgress | EngineState::Running),
        "the stop was not overwritten: {after}"
    );
    let stopped = wait_for(&engines, &id, EngineState::Terminated).await;
    assert_eq!(stopped.lease, None);
    assert_eq!(resources.deletes.load(Ordering::SeqCst), 1);
    monitor.shutdown().await;
}

async fn wait_until<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition never held");
}

#[tokio::test]
async fn two_monitors_start_each_engine_once() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(InstantResourceManager::new());
    let (engines, first) = start(&store, resources.clone(), config("one"));
    let (_, second) = start(&store, resources.clone(), config("two"));
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(engines.create(request(&format!("e{i}"))).await.unwrap());
    }
    for id in &ids {
        wait_for(&engines, id, EngineState::Running).await;
    }
    assert_eq!((resources.creations(), resources.adoptions()), (20, 0));
    first.shutdown().await;
    second.shutdown().await;
}

/// With the store's change feed, new work is taken up at once: this monitor
/// reads its due list only every hour, and nothing wakes it but the feed.
#[tokio::test]
async fn the_store_feed_wakes_the_monitor_long_before_its_interval() {
    let store = Arc::new(MemoryStore::new());
    let cfg = MonitorConfig {
        check_interval: Duration::from_secs(3600),
        ..config("feed")
    };
    let monitor = Running::start(Monitor::new(
        store.clone(),
        Arc::new(InstantResourceManager::new()),
        cfg,
    ));
    let engines = Engines::new(store.clone());
    let first = engines.create(request("first")).await.unwrap();
    wait_for(&engines, &first, EngineState::Running).await;
    // Long enough for the reads that follow the first engine's passes: the
    // next engine can only be found through the feed.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let second = engines.create(request("second")).await.unwrap();
    wait_for(&engines, &second, EngineState::Running).await;
    engines.stop(&second).await.unwrap();
    wait_for(&engines, &second, EngineState::Terminated).await;
    monitor.shutdown().await;
}

/// Counts the writes that reach a store.
struct CountingStore {
    inner: MemoryStore,
    writes: AtomicU32,
}

impl CountingStore {
    fn writes(&self) -> u32 {
        self.writes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn insert(&self, record: &EngineRecord) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert(record).await
    }
    async fn insert_within(
        &self,
        record: &EngineRecord,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_within(record, limits).await
    }
    async fn compare_and_swap_within(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
        limits: &Limits,
    ) -> Result<u64, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
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
    async fn page(&self, query: &PageQuery) -> Result<Vec<EngineRecord>, StoreError> {
        self.inner.page(query).await
    }
    async fn compare_and_swap(
        &self,
        expected_revision: u64,
        next: &EngineRecord,
    ) -> Result<u64, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.compare_and_swap(expected_revision, next).await
    }
    async fn delete(&self, id: &EngineId, expected_revision: u64) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(id, expected_revision).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<EngineRecord>, StoreError> {
        self.inner.due(now, limit).await
    }
    async fn subscribe(&self, sink: ChangeSink) {
        self.inner.subscribe(sink).await;
    }
}

/// The quiet control plane: Running engines whose resources report nothing
/// new cost no store write at all, however many checks pass; yet a resource
/// that fails without a word is found by the resync, and one whose manager
/// reports the change is found at once.
#[tokio::test]
async fn running_engines_at_rest_cost_no_writes_yet_failures_are_found() {
    let store = Arc::new(CountingStore {
        inner: MemoryStore::new(),
        writes: AtomicU32::new(0),
    });
    let resources = Arc::new(Scripted::default());
    let cfg = MonitorConfig {
        resync_interval: Duration::from_millis(200),
        ..config("quiet")
    };
    let monitor = Monitor::new(store.clone(), resources.clone(), cfg.clone());
    let engines = Engines::new(store.clone()).with_waker(monitor.waker());
    let monitor = Running::start(monitor);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(engines.create(request(&format!("q{i}"))).await.unwrap());
    }
    for id in &ids {
        wait_for(&engines, id, EngineState::Running).await;
    }
    // Let the last passes release.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (writes, checks) = (
        store.writes(),
        resources.status_calls.load(Ordering::SeqCst),
    );
    // 50 check intervals and 5 resyncs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(store.writes(), writes, "no write at rest");
    let resynced = resources.status_calls.load(Ordering::SeqCst) - checks;
    assert!(
        resynced >= 3 * ids.len() as u32,
        "the resync kept checking every engine: {resynced} status calls"
    );

    // A silent failure: no change reported; the resync finds it.
    let silent = &ids[0];
    let failed_at = std::time::Instant::now();
    resources.set(
        silent,
        ResourceStatus::Failed {
            reason: "segfault".into(),
        },
    );
    let clean = wait_for(&engines, silent, EngineState::ErrorClean).await;
    assert_eq!(clean.error.as_deref(), Some("segfault"));
    let found_in = failed_at.elapsed();
    assert!(
        found_in < cfg.resync_interval + Duration::from_secs(1),
        "found within the resync interval: {found_in:?}"
    );

    // Only the failed engine was written.
    for id in &ids[1..] {
        let record = engines.get(id).await.unwrap();
        assert_eq!(
            (record.state, record.revision),
            (EngineState::Running, 5),
            "{id}"
        );
    }
    monitor.shutdown().await;
}

/// A resource that failed while no monitor ran is found as soon as one starts:
/// its first resync runs at once, whatever the interval.
#[tokio::test]
async fn a_failure_while_no_monitor_ran_is_found_on_start() {
    let store = Arc::new(MemoryStore::new());
    let resources = Arc::new(Scripted::default());
    let (engines, first) = start(&store, resources.clone(), config("first"));
    let id = engines.create(request("orphan")).await.unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    first.shutdown().await;

    resources.set(&id, ResourceStatus::Gone);
    let cfg = MonitorConfig {
        check_interval: Duration::from_secs(3600),
        resync_interval: Duration::from_secs(3600),
        ..config("second")
    };
    let (engines, second) = start(&store, resources.clone(), cfg);
    let clean = wait_for(&engines, &id, EngineState::ErrorClean).await;
    assert_eq!(
        clean.error.as_deref(),
        Some("the engine's resource disappeared while it was running")
    );
    second.shutdown().await;
}

/// The same with real processes: a local engine whose process was killed
/// while no monitor ran (so no parent saw it die) is found by the next
/// monitor's first resync, through the process record the engine left.
#[tokio::test]
async fn a_local_engine_killed_while_no_monitor_ran_is_found_on_restart() {
    use rucat_core::resource::local::{LocalConfig, LocalResourceManager, fake};
    let root = tempfile::tempdir().unwrap();
    let local = LocalConfig {
        work_dir: root.path().join("engines"),
        spark_home: Some(fake::spark_home(root.path(), fake::SERVER).unwrap()),
        stop_grace_secs: 1,
        ..LocalConfig::default()
    };
    let store = Arc::new(MemoryStore::new());

    let first = Arc::new(LocalResourceManager::new(local.clone()).await.unwrap());
    let (engines, monitor) = start(&store, first.clone(), config("first"));
    let id = engines.create(request("local")).await.unwrap();
    wait_for(&engines, &id, EngineState::Running).await;
    let pid = first.pid(&id).await.unwrap().expect("a process");
    monitor.shutdown().await;
    drop(first);

    // SIGKILL to the engine's process group, with no monitor running.
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    // Dead, not dying: a process still exiting may answer on its port.
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    wait_until(|| async { !proc_dir.exists() }).await;

    let second = Arc::new(LocalResourceManager::new(local).await.unwrap());
    let cfg = MonitorConfig {
        check_interval: Duration::from_secs(3600),
        resync_interval: Duration::from_secs(3600),
        ..config("second")
    };
    let (engines, monitor) = start(&store, second, cfg);
    let clean = wait_for(&engines, &id, EngineState::ErrorClean).await;
    let error = clean.error.unwrap_or_default();
    assert!(error.contains("Spark"), "{error}");
    monitor.shutdown().await;
}

/// An engine nobody uses is stopped by the monitor once its idle timeout
/// passes, with the reason recorded; activity written in time keeps it.
#[tokio::test]
async fn an_idle_engine_is_stopped_and_activity_keeps_one_running() {
    let store = Arc::new(MemoryStore::new());
    let (engines, monitor) = start(
        &store,
        Arc::new(InstantResourceManager::new()),
        config("m1"),
    );
    let policy = rucat_core::IdlePolicy {
        default_timeout: Duration::from_secs(3),
        max_timeout: None,
        activity_interval: Duration::from_secs(1),
    };
    let engines = engines.with_idle_policy(policy);
    let idle = engines.create(request("idle")).await.unwrap();
    let busy = engines.create(request("busy")).await.unwrap();
    let never = engines
        .create(request("never").idle_after(0))
        .await
        .unwrap();
    for id in [&idle, &busy, &never] {
        wait_for(&engines, id, EngineState::Running).await;
    }
    // A gateway's sparse activity writes, every second, for `busy` only.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let record = engines.get(&busy).await.unwrap();
        if let Some(next) = rucat_core::idle::touched(&record, Timestamp::now()) {
            let _ = store.compare_and_swap(record.revision, &next).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let stopped = wait_for(&engines, &idle, EngineState::Terminated).await;
    let reason = rucat_core::EngineInfo::from(&stopped).stopped_reason;
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.starts_with("idle for ")),
        "{reason:?}"
    );
    // The run is one attempt, which ran and was stopped for that reason.
    let [attempt] = stopped.attempts.as_slice() else {
        panic!("one attempt: {:?}", stopped.attempts)
    };
    assert_eq!(attempt.number, 1);
    assert!(attempt.running_at.is_some() && attempt.ended_at.is_some());
    assert_eq!(attempt.outcome, Some(rucat_core::attempt::Outcome::Stopped));
    assert_eq!(attempt.reason, reason);
    assert_eq!(
        engines.get(&busy).await.unwrap().state,
        EngineState::Running
    );
    assert_eq!(
        engines.get(&never).await.unwrap().state,
        EngineState::Running
    );
    monitor.shutdown().await;
}
