//! The SurrealDB change feed across clients: a monitor hears of engines
//! written by another client of the server (another rucat process) within
//! milliseconds, and the feed comes back by itself after the server restarts.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rucat_core::resource::InstantResourceManager;
use rucat_core::{
    Change, ChangeSink, CreateEngineRequest, EngineState, Engines, Monitor, MonitorConfig, Store,
    StoreError,
};
use rucat_store::SurrealStore;
use tokio::sync::mpsc;

use support::engine;
use support::surreal_server::{Storage, SurrealServer, unique_database};

fn request(name: &str) -> CreateEngineRequest {
    CreateEngineRequest::spark(name, "4.3.0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_takes_up_another_clients_engine_at_once() {
    let server = SurrealServer::start(Storage::Memory);
    let config = server.config(&unique_database("feed"));
    let monitor_side: Arc<dyn Store> = Arc::new(SurrealStore::open(&config).await.unwrap());
    let user_side: Arc<dyn Store> = Arc::new(SurrealStore::open(&config).await.unwrap());

    // The due list is read only every hour: only the feed can wake it.
    let monitor = Monitor::new(
        monitor_side,
        Arc::new(InstantResourceManager::new()),
        MonitorConfig {
            check_interval: Duration::from_secs(3600),
            ..MonitorConfig::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));

    let engines = Engines::new(user_side);
    let timeout = Duration::from_secs(10);
    let first = engines.create(request("first")).await.unwrap();
    engines
        .wait_for(&first, EngineState::Running, timeout)
        .await
        .unwrap();
    // Past the reads that follow the first engine's passes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = engines.create(request("second")).await.unwrap();
    engines
        .wait_for(&second, EngineState::Running, timeout)
        .await
        .unwrap();
    engines.stop(&second).await.unwrap();
    engines
        .wait_for(&second, EngineState::Terminated, timeout)
        .await
        .unwrap();

    let _ = stop.send(());
    running.await.unwrap();
}

/// Inserts engines through `writer` until `changes` reports one.
async fn heard_within(
    writer: &dyn Store,
    changes: &mut mpsc::Receiver<Change>,
    limit: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < limit {
        match writer.insert(&engine("probe")).await {
            Ok(()) | Err(StoreError::Unavailable(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        if let Ok(Some(Change::Record(_))) =
            tokio::time::timeout(Duration::from_millis(300), changes.recv()).await
        {
            return Ok(());
        }
    }
    Err(format!("nothing heard within {limit:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_resumes_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = SurrealServer::start(Storage::SurrealKv(dir.path().join("data")));
    let config = server.config(&unique_database("feed_restart"));
    let listener = SurrealStore::open(&config).await.unwrap();
    let writer = SurrealStore::open(&config).await.unwrap();
    let (sink, mut changes) = ChangeSink::channel(64);
    listener.subscribe(sink).await;
    heard_within(&writer, &mut changes, Duration::from_secs(5))
        .await
        .expect("the feed listens once subscribe returns");

    server.kill();
    server.restart();
    // Reports from before the restart are gone with it.
    while changes.try_recv().is_ok() {}
    heard_within(&writer, &mut changes, Duration::from_secs(60))
        .await
        .expect("the feed subscribes again after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_ends_with_its_store() {
    let store = SurrealStore::open(&rucat_store::SurrealConfig::new("mem://"))
        .await
        .unwrap();
    let (sink, mut changes) = ChangeSink::channel(8);
    store.subscribe(sink).await;
    drop(store);
    // The feed task held the only sender: once it ends, the channel closes.
    let closed = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
    assert!(
        matches!(closed, Ok(None)),
        "the feed outlived its store: {closed:?}"
    );
}
