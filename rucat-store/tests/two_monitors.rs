//! Two monitors, each with its own connection to one SQLite file (as two
//! processes would have), share the work without ever starting an engine twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rucat_core::resource::InstantResourceManager;
use rucat_core::{CreateEngineRequest, EngineState, Engines, Monitor, MonitorConfig, Store};
use rucat_store::SqliteStore;
use tokio::sync::oneshot;

fn monitor(
    store: Arc<dyn Store>,
    resources: Arc<InstantResourceManager>,
    owner: &str,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let config = MonitorConfig {
        owner: owner.into(),
        check_interval: Duration::from_millis(50),
        ..MonitorConfig::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(Monitor::new(store, resources, config).run(async {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn wait_all(engines: &Engines, state: EngineState) {
    let started = Instant::now();
    loop {
        let all = engines.list().await.unwrap();
        if all.iter().all(|e| e.state == state) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not all {state}: {:?}",
            all.iter().map(|e| e.state).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_monitors_on_one_file_start_each_engine_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rucat.db");
    let server_store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let resources = Arc::new(InstantResourceManager::new());
    let first = monitor(
        Arc::new(SqliteStore::open(&path).unwrap()),
        resources.clone(),
        "first",
    );
    let second = monitor(
        Arc::new(SqliteStore::open(&path).unwrap()),
        resources.clone(),
        "second",
    );

    let engines = Engines::new(server_store);
    for i in 0..20 {
        let request = CreateEngineRequest::spark(format!("engine-{i}"), "4.3.0");
        engines.create(request).await.unwrap();
    }
    wait_all(&engines, EngineState::Running).await;
    assert_eq!(resources.creations(), 20, "each engine created once");
    assert_eq!(
        resources.adoptions(),
        0,
        "no second create call, not even an adopted one"
    );

    for engine in engines.list().await.unwrap() {
        engines.stop(engine.id()).await.unwrap();
    }
    wait_all(&engines, EngineState::Terminated).await;
    assert_eq!(resources.deletions(), 20);
    assert!(resources.live().is_empty());

    for (stop, task) in [first, second] {
        let _ = stop.send(());
        task.await.unwrap();
    }
}
