//! The example plugin driven through a whole lifecycle by the real monitor
//! over a real SQLite file.

use std::sync::Arc;
use std::time::Duration;

use rucat_core::{
    CreateEngineRequest, EngineId, EngineRecord, EngineState, Engines, Monitor, MonitorConfig,
};
use rucat_examples::CommandResourceManager;
use rucat_store::sqlite::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn monitor_config() -> MonitorConfig {
    MonitorConfig {
        check_interval: Duration::from_millis(100),
        ..MonitorConfig::default()
    }
}

fn request(name: &str) -> CreateEngineRequest {
    CreateEngineRequest::spark(name, "4.3.0")
}

async fn wait_for(engines: &Engines, id: &EngineId, state: EngineState) -> EngineRecord {
    engines
        .wait_for(id, state, Duration::from_secs(15))
        .await
        .unwrap()
}

async fn http_get(endpoint: &str) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn a_command_engine_goes_through_its_whole_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("rucat.db")).unwrap());
    let resources = Arc::new(CommandResourceManager::new(
        "python3",
        ["-m", "http.server", "{port}", "--bind", "127.0.0.1"],
    ));
    let monitor = Monitor::new(store.clone(), resources.clone(), monitor_config());
    let engines = Engines::new(store).with_waker(monitor.waker());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));

    let id = engines.create(request("web")).await.unwrap();
    let record = wait_for(&engines, &id, EngineState::Running).await;
    let endpoint = record.endpoint.expect("a running engine has an endpoint");
    assert!(http_get(&endpoint).await.starts_with("HTTP/1.0 200"));
    let first_pid = resources.pid(&id).await.unwrap();

    engines.stop(&id).await.unwrap();
    wait_for(&engines, &id, EngineState::Terminated).await;
    assert!(!alive(first_pid), "the command was stopped");

    engines.restart(&id).await.unwrap();
    let record = wait_for(&engines, &id, EngineState::Running).await;
    assert!(
        http_get(record.endpoint.as_deref().unwrap())
            .await
            .starts_with("HTTP/1.0 200")
    );
    let second_pid = resources.pid(&id).await.unwrap();
    assert_ne!(first_pid, second_pid);

    engines.stop(&id).await.unwrap();
    wait_for(&engines, &id, EngineState::Terminated).await;
    engines.delete(&id).await.unwrap();
    assert!(engines.get(&id).await.is_err());
    assert!(!alive(second_pid));

    let _ = stop.send(());
    running.await.unwrap();
}

#[tokio::test]
async fn a_command_that_exits_ends_in_error_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("rucat.db")).unwrap());
    let resources = Arc::new(CommandResourceManager::new("sh", ["-c", "exit 3"]));
    let monitor = Monitor::new(store.clone(), resources, monitor_config());
    let engines = Engines::new(store).with_waker(monitor.waker());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));

    let id = engines.create(request("exits")).await.unwrap();
    let record = wait_for(&engines, &id, EngineState::ErrorClean).await;
    assert!(record.error.unwrap().contains("exit status: 3"));
    engines.delete(&id).await.unwrap();

    let _ = stop.send(());
    running.await.unwrap();
}
